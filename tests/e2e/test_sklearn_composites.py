"""Categorical encoders (OneHotEncoder, OrdinalEncoder), ColumnTransformer on named
DataFrame columns, and the ensembles VotingClassifier / VotingRegressor /
StackingClassifier / StackingRegressor through the real server.

Each model is trained with the real scikit-learn on integer-coded categorical data (and
numeric columns), saved with pickle or joblib, deployed, and compared with predict() (exact
labels; regression within 1e-4 relative), predict_proba() (1e-5 absolute) or transform()
on held-out rows that include categories never seen in training and missing values; the
downloaded ONNX graph must give the same answers under onnxruntime."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor, StackingClassifier,
                              StackingRegressor, VotingClassifier, VotingRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeCV
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from test_sklearn_import import client, dataset, perturbed, predict, save  # noqa: F401

warnings.filterwarnings("ignore")

PROBA_ATOL = 1e-5
REG_RTOL = 1e-4


# ---- data -------------------------------------------------------------------------------

def categorical(n=400, seed=0, unseen=False, missing=False):
    """Columns 0-2 integer-coded categories (skewed frequencies, one binary), columns 3-4
    numeric. With `unseen`, a quarter of the rows carry categories absent from training;
    with `missing`, some category cells are NaN."""
    rng = np.random.default_rng(seed)
    c0 = rng.choice([0, 1, 2, 3, 4, 5], size=n, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
    c1 = rng.choice([10, 20], size=n)
    c2 = rng.choice([-3, 1, 2, 7, 8, 9, 11], size=n, p=[0.4, 0.2, 0.2, 0.1, 0.05, 0.03, 0.02])
    x3 = rng.normal(size=n)
    x4 = rng.uniform(-2, 2, size=n)
    X = np.column_stack([c0, c1, c2, x3, x4]).astype(np.float64)
    if unseen:
        rows = rng.random(n) < 0.25
        X[rows, 0] = rng.choice([6, 9, -1], size=rows.sum())
        rows = rng.random(n) < 0.1
        X[rows, 2] = 100
    if missing:
        X[rng.random(n) < 0.1, 0] = np.nan
        X[rng.random(n) < 0.05, 2] = np.nan
    score = (X[:, 0] % 3 == 1) * 1.5 + (X[:, 1] == 20) - 0.3 * np.nan_to_num(X[:, 2]) / 5 + X[:, 3]
    y3 = np.digitize(score + rng.normal(scale=0.4, size=n), [0.0, 1.2])
    return X, y3, score + 0.5 * X[:, 4]


CAT = [0, 1, 2]
NUM = [3, 4]


# ---- checking ---------------------------------------------------------------------------

def deploy_ok(client, model, how):
    data, filename = save(model, how)
    d = client.deploy(data, name="c", filename=filename)
    assert d["status"] == "active", d.get("error_message")
    return d


def onnx_outputs(client, dep_id, X):
    r = client.get(f"/api/v1/deployments/{dep_id}/onnx")
    assert r.status_code == 200, r.text
    sess = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if "double" in inp.type else np.float32
    outs = sess.run(None, {inp.name: X.astype(dtype)})
    return dict(zip([o.name for o in sess.get_outputs()], outs))


def check_model(client, model, X, how="pickle5"):
    d = deploy_ok(client, model, how)
    body = predict(client, d["id"], X)
    onnx = onnx_outputs(client, d["id"], X)
    if hasattr(model, "classes_"):
        want = model.predict(X)
        assert np.array(body["predictions"]).tolist() == want.tolist()
        assert onnx["label"].tolist() == want.tolist()
        if hasattr(model, "predict_proba"):
            p = model.predict_proba(X)
            np.testing.assert_allclose(np.array(body["probabilities"]), p, atol=PROBA_ATOL)
            np.testing.assert_allclose(onnx["probabilities"], p, atol=PROBA_ATOL)
        else:
            assert "probabilities" not in onnx
    elif hasattr(model, "predict"):
        want = model.predict(X)
        tol = dict(rtol=REG_RTOL, atol=REG_RTOL * (np.abs(want).max() + 1))
        np.testing.assert_allclose(np.array(body["predictions"], dtype=float).reshape(want.shape),
                                   want, **tol)
        np.testing.assert_allclose(onnx["variable"].reshape(want.shape), want, **tol)
    else:
        want = model.transform(X)
        want = want.toarray() if hasattr(want, "toarray") else want
        got = np.array(body["predictions"], dtype=float).reshape(want.shape)
        np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(onnx["variable"].reshape(want.shape), want, atol=1e-6,
                                   equal_nan=True)
    return d


def deploy_fails(client, model, *fragments):
    data, filename = save(model, "pickle5")
    d = client.deploy(data, name="bad", filename=filename)
    assert d["status"] == "failed", d
    msg = d.get("error_message") or ""
    for f in fragments:
        assert f in msg, msg


# ---- encoders ---------------------------------------------------------------------------

ENCODERS = [
    ("onehot_ignore", lambda: OneHotEncoder(handle_unknown="ignore"), False),
    ("onehot_drop_first", lambda: OneHotEncoder(drop="first", handle_unknown="ignore"), False),
    ("onehot_if_binary", lambda: OneHotEncoder(drop="if_binary", sparse_output=False,
                                               handle_unknown="ignore"), False),
    ("onehot_drop_array", lambda: OneHotEncoder(drop=[3, 20, 1], handle_unknown="ignore"), False),
    ("onehot_min_freq", lambda: OneHotEncoder(min_frequency=30,
                                              handle_unknown="infrequent_if_exist"), False),
    ("onehot_max_cat_ignore", lambda: OneHotEncoder(max_categories=3, handle_unknown="ignore"), False),
    ("onehot_infrequent_drop", lambda: OneHotEncoder(min_frequency=0.1, drop="first",
                                                     handle_unknown="infrequent_if_exist"), False),
    ("onehot_nan", lambda: OneHotEncoder(handle_unknown="ignore"), True),
    ("onehot_nan_infrequent", lambda: OneHotEncoder(max_categories=4,
                                                    handle_unknown="infrequent_if_exist"), True),
    ("ordinal_unknown", lambda: OrdinalEncoder(handle_unknown="use_encoded_value",
                                               unknown_value=-1), False),
    ("ordinal_nan", lambda: OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                           encoded_missing_value=-2), True),
    ("ordinal_nan_default", lambda: OrdinalEncoder(handle_unknown="use_encoded_value",
                                                   unknown_value=99), True),
    ("ordinal_infrequent", lambda: OrdinalEncoder(min_frequency=25, handle_unknown="use_encoded_value",
                                                  unknown_value=-1), True),
]


@pytest.mark.parametrize("case", ENCODERS, ids=[c[0] for c in ENCODERS])
def test_encoder_transform(client, case):
    name, make, missing = case
    Xtr, _, _ = categorical(missing=missing)
    Xte, _, _ = categorical(n=150, seed=1, unseen=True, missing=missing)
    enc = make().fit(Xtr[:, CAT])
    check_model(client, enc, Xte[:, CAT], how="joblib3" if "nan" in name else "pickle4")


def test_encoder_handle_unknown_error_known_rows(client):
    # handle_unknown='error': known categories encode as scikit-learn does.
    Xtr, _, _ = categorical()
    Xte, _, _ = categorical(n=100, seed=2)
    for enc in [OneHotEncoder(drop="if_binary"), OrdinalEncoder()]:
        check_model(client, enc.fit(Xtr[:, CAT]), Xte[:, CAT])


def test_onehot_logistic_pipeline(client):
    Xtr, ytr, _ = categorical()
    Xte, _, _ = categorical(n=200, seed=3, unseen=True)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                          LogisticRegression(max_iter=2000)).fit(Xtr[:, CAT], ytr)
    d = check_model(client, model, Xte[:, CAT], how="joblib_gzip")
    assert d["model_metadata"]["model_type"] == "Pipeline(OneHotEncoder, LogisticRegression)"


def test_ordinal_tree_pipeline(client):
    Xtr, ytr, _ = categorical(missing=True)
    Xte, _, _ = categorical(n=200, seed=4, unseen=True, missing=True)
    model = make_pipeline(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                         encoded_missing_value=-5),
                          DecisionTreeClassifier(max_depth=5, random_state=0)).fit(Xtr[:, CAT], ytr)
    check_model(client, model, Xte[:, CAT], how="pickle3")


def test_column_transformer_onehot_and_scaler(client):
    Xtr, ytr, _ = categorical()
    Xte, _, _ = categorical(n=200, seed=5, unseen=True)
    labels = np.array(["low", "mid", "high"])
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=10), CAT),
                            ("num", StandardScaler(), NUM)])
    model = make_pipeline(ct, LogisticRegression(max_iter=2000)).fit(Xtr, labels[ytr])
    check_model(client, model, Xte, how="pickle2")


def test_column_transformer_dataframe_named_features(client):
    pd = pytest.importorskip("pandas")
    cols = ["color", "size", "shape", "weight", "height"]
    Xtr, ytr, yreg = categorical()
    Xte, _, _ = categorical(n=120, seed=6, unseen=True)
    dtr = pd.DataFrame(Xtr, columns=cols).astype({"color": "int64", "size": "int64",
                                                  "shape": "int64"})
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "size", "shape"]),
                            ("num", StandardScaler(), ["weight"])], remainder="passthrough")
    for model, how in [(make_pipeline(ct, LogisticRegression(max_iter=2000)).fit(dtr, ytr), "pickle5"),
                       (make_pipeline(ct, Ridge()).fit(dtr, yreg), "joblib3")]:
        data, filename = save(model, how)
        d = client.deploy(data, name="df", filename=filename)
        assert d["status"] == "active", d.get("error_message")
        dte = pd.DataFrame(Xte, columns=cols)
        want = model.predict(dte)
        rows = [dict(zip(cols, map(float, r))) for r in Xte]
        r = client.predict(d["id"], rows)
        assert r.status_code == 200, r.text
        got = np.array(r.json()["predictions"])
        if hasattr(model, "classes_"):
            assert got.tolist() == want.tolist()
            np.testing.assert_allclose(r.json()["probabilities"], model.predict_proba(dte),
                                       atol=PROBA_ATOL)
        else:
            np.testing.assert_allclose(got.astype(float), want, rtol=REG_RTOL,
                                       atol=REG_RTOL * (np.abs(want).max() + 1))
        one = client.predict(d["id"], rows[0])
        assert one.status_code == 200, one.text
        if hasattr(model, "classes_"):
            assert one.json()["prediction"] == want[0]
        # The same rows without names, in training column order.
        assert predict(client, d["id"], Xte)["predictions"] == r.json()["predictions"]


def test_column_transformer_pandas_index_columns(client):
    # Columns chosen as a pandas Index (df.columns[...], select_dtypes(...).columns).
    pd = pytest.importorskip("pandas")
    cols = ["color", "size", "shape", "weight", "height"]
    Xtr, ytr, _ = categorical()
    Xte, _, _ = categorical(n=100, seed=8, unseen=True)
    dtr = pd.DataFrame(Xtr, columns=cols).astype({c: "int64" for c in cols[:3]})
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"),
                             dtr.select_dtypes("int64").columns),
                            ("num", StandardScaler(), dtr.columns[3:])])
    model = make_pipeline(ct, LogisticRegression(max_iter=2000)).fit(dtr, ytr)
    assert isinstance(model[0].transformers_[0][2], pd.Index)
    d = deploy_ok(client, model, "pickle4")
    dte = pd.DataFrame(Xte, columns=cols)
    rows = [dict(zip(cols, map(float, r))) for r in Xte]
    r = client.predict(d["id"], rows)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == model.predict(dte).tolist()
    np.testing.assert_allclose(r.json()["probabilities"], model.predict_proba(dte), atol=PROBA_ATOL)


def test_string_categories_rejected(client):
    X = np.array([["red", "s"], ["blue", "m"], ["red", "l"], ["green", "m"]], dtype=object)
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(X, [0, 1, 0, 1])
    deploy_fails(client, model, "OneHotEncoder", "strings", "'blue'")
    deploy_fails(client, OrdinalEncoder().fit(X), "OrdinalEncoder", "strings")


# ---- ensembles --------------------------------------------------------------------------

def lr():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))


def test_voting_soft_weighted(client):
    for ds, how in [("iris_str", "pickle4"), ("wine", "joblib_xz"), ("cancer", "pickle5")]:
        Xtr, ytr, Xte = dataset(ds)
        model = VotingClassifier([("lr", lr()),
                                  ("rf", RandomForestClassifier(n_estimators=15, random_state=0)),
                                  ("nb", GaussianNB())], voting="soft", weights=[2, 1, 0.5])
        model.fit(Xtr, ytr)
        check_model(client, model, np.vstack([Xte, perturbed(Xte)]), how=how)


def test_voting_hard(client):
    # Three-way disagreements tie: the smallest encoded class wins, as in scikit-learn.
    Xtr, ytr, Xte = dataset("iris_str")
    X = np.vstack([Xte, perturbed(Xte, seed=3), perturbed(Xte, seed=4) * 1.1])
    for weights in [None, [1, 1, 1], [0.1, 0.2, 0.3], [1, 2, 1]]:
        model = VotingClassifier([("lr", lr()), ("tree", DecisionTreeClassifier(max_depth=2, random_state=0)),
                                  ("nb", GaussianNB()), ("drop_me", "drop")],
                                 voting="hard", weights=None if weights is None else weights + [5])
        model.fit(Xtr, ytr)
        check_model(client, model, X, how="pickle2")


def test_voting_regressor(client):
    Xtr, ytr, Xte = dataset("diabetes")
    model = VotingRegressor([("lin", LinearRegression()),
                             ("rf", RandomForestRegressor(n_estimators=10, random_state=0)),
                             ("gb", GradientBoostingRegressor(n_estimators=20, random_state=0))],
                            weights=[1, 2, 3]).fit(Xtr, ytr)
    check_model(client, model, Xte, how="joblib_bz2")


def test_stacking_classifier_proba(client):
    for ds, passthrough in [("cancer", False), ("iris_str", True), ("wine", False)]:
        Xtr, ytr, Xte = dataset(ds)
        model = StackingClassifier(
            [("lr", lr()), ("rf", RandomForestClassifier(n_estimators=10, random_state=0)),
             ("nb", GaussianNB())],
            final_estimator=LogisticRegression(max_iter=5000), passthrough=passthrough, cv=3)
        model.fit(Xtr, ytr)
        check_model(client, model, np.vstack([Xte, perturbed(Xte)]), how="pickle5")


def test_stacking_classifier_methods(client):
    # 'auto' picks decision_function for LinearSVC; explicit 'decision_function' and
    # 'predict'; a tree as the final estimator.
    for ds in ["cancer", "iris"]:
        Xtr, ytr, Xte = dataset(ds)
        for method, final in [("auto", LogisticRegression(max_iter=5000)),
                              ("decision_function", RandomForestClassifier(n_estimators=10, random_state=0)),
                              ("predict", LogisticRegression(max_iter=5000))]:
            ests = [("svc", make_pipeline(StandardScaler(), LinearSVC())),
                    ("lr", lr())]
            if method != "decision_function":
                ests.append(("tree", DecisionTreeClassifier(max_depth=3, random_state=0)))
            model = StackingClassifier(ests, final_estimator=final, stack_method=method, cv=3)
            model.fit(Xtr, ytr)
            check_model(client, model, Xte, how="joblib0")


def test_stacking_regressor(client):
    Xtr, ytr, Xte = dataset("friedman")
    for passthrough in [False, True]:
        model = StackingRegressor(
            [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=5, random_state=0)),
             ("rf", RandomForestRegressor(n_estimators=10, random_state=0))],
            final_estimator=RidgeCV(), passthrough=passthrough, cv=3).fit(Xtr, ytr)
        check_model(client, model, Xte, how="pickle4")


def test_stacking_over_categorical_pipeline(client):
    Xtr, ytr, _ = categorical()
    Xte, _, _ = categorical(n=200, seed=7, unseen=True)
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), CAT),
                              ("num", StandardScaler(), NUM)])
    stack = StackingClassifier([("lr", LogisticRegression(max_iter=2000)),
                                ("gb", GradientBoostingClassifier(n_estimators=10, random_state=0))],
                               final_estimator=LogisticRegression(max_iter=2000), cv=3)
    model = Pipeline([("prep", prep), ("stack", stack)]).fit(Xtr, np.array([5, 7, 9])[ytr])
    check_model(client, model, Xte, how="joblib_lzma")
    vote = VotingClassifier([("lr", make_pipeline(prep, LogisticRegression(max_iter=2000))),
                             ("ord", make_pipeline(OrdinalEncoder(handle_unknown="use_encoded_value",
                                                                  unknown_value=-1),
                                                   DecisionTreeClassifier(max_depth=4, random_state=0)))],
                            voting="soft").fit(Xtr, ytr)
    check_model(client, vote, Xte, how="pickle5")


def test_unsupported_options_are_named(client):
    Xtr, ytr, _ = dataset("iris")
    stack = StackingClassifier([("gb", GradientBoostingClassifier(n_estimators=5, random_state=0)),
                                ("lr", LogisticRegression(max_iter=2000))],
                               stack_method="decision_function", cv=3).fit(Xtr, ytr)
    deploy_fails(client, stack, "decision_function", "GradientBoostingClassifier")


def test_malformed_composites_fail_cleanly(client):
    Xtr, ytr, _ = dataset("iris")
    cyclic = VotingClassifier([("lr", LogisticRegression(max_iter=500)), ("nb", GaussianNB())])
    cyclic.fit(Xtr, ytr)
    cyclic.estimators_ = [cyclic]
    deploy_fails(client, cyclic, "nested too deeply")
    stack = StackingClassifier([("nb", GaussianNB())], cv=3).fit(Xtr, ytr)
    stack.final_estimator_ = stack
    deploy_fails(client, stack)
    vote = VotingClassifier([("nb", GaussianNB()), ("lr", LogisticRegression(max_iter=500))],
                            voting="soft").fit(Xtr, ytr)
    vote.estimators_ = [vote.estimators_[0], {"weights": [1, 2]}]
    deploy_fails(client, vote, "expected a scikit-learn estimator")
    vote.estimators_ = [GaussianNB().fit(Xtr, ytr + 10)]  # classes not encoded 0..C-1
    deploy_fails(client, vote, "encoded labels")
    Xc, _, _ = categorical()
    enc = OneHotEncoder(drop="first").fit(Xc[:, CAT])
    enc._drop_idx_after_grouping = np.array([99, None, 0], dtype=object)
    deploy_fails(client, enc, "OneHotEncoder", "out of range")
    enc = OrdinalEncoder().fit(Xc[:, CAT])
    enc.categories_ = enc.categories_[:2]
    deploy_fails(client, enc, "OrdinalEncoder", "categories_")
    enc = OneHotEncoder(min_frequency=30).fit(Xc[:, CAT])
    enc._default_to_infrequent_mappings = [np.array([0, 7])] * 3
    deploy_fails(client, enc, "OneHotEncoder", "infrequent")
    assert client.get("/health").status_code == 200
