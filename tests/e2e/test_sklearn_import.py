"""scikit-learn pickles and joblib files through the real server: each estimator is trained
with the real scikit-learn, saved with pickle.dump (protocols 2-5) and joblib.dump (plain and
compressed), deployed via POST /api/v1/deploy, and its predictions / probabilities compared
with predict() / predict_proba(); the converted graph downloaded from
GET /api/v1/deployments/{id}/onnx must give the same answers under onnxruntime.

Estimators whose ONNX-ML operators the engine does not run yet are skipped with the
engine's message (the import itself still has to succeed up to that point)."""
from __future__ import annotations

import io
import pickle
import warnings

import joblib
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Server, register
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                              GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (ElasticNet, Lasso, LinearRegression, LogisticRegression,
                                  Ridge, SGDClassifier, SGDRegressor)
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (MaxAbsScaler, MinMaxScaler, Normalizer, PolynomialFeatures,
                                   RobustScaler, StandardScaler)
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

warnings.filterwarnings("ignore")

PROBA_ATOL = 1e-5


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("sklearn-data")
    srv = Server(data, ["--max-body-mb", "64", "--quota-deployments", "10000"]).start()
    yield register(srv.url, "sk")
    assert srv.stop() == 0, srv.logs()[-4000:]


# ---- datasets ---------------------------------------------------------------------------

def _split(X, y, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    cut = int(len(X) * 0.75)
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]]


def dataset(name):
    if name == "iris":
        X, y = datasets.load_iris(return_X_y=True)
    elif name == "iris_str":
        X, y = datasets.load_iris(return_X_y=True)
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    elif name == "cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
    elif name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        y = y + 10  # labels that are not 0..C-1
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
    elif name == "friedman":
        X, y = datasets.make_friedman1(n_samples=300, random_state=0)
    elif name == "counts":  # non-negative features for MultinomialNB
        X, y = datasets.load_digits(return_X_y=True)
    else:
        raise KeyError(name)
    return _split(np.asarray(X, dtype=np.float64), y)


def perturbed(X, seed=1):
    rng = np.random.default_rng(seed)
    return X + rng.normal(scale=0.05 * (X.std(axis=0) + 1e-9), size=X.shape)


# ---- saving -----------------------------------------------------------------------------

SAVERS = ["pickle2", "pickle3", "pickle4", "pickle5", "joblib0", "joblib3", "joblib_xz",
          "joblib_bz2", "joblib_gzip", "joblib_lzma"]


def save(model, how: str) -> tuple[bytes, str]:
    if how.startswith("pickle"):
        return pickle.dumps(model, protocol=int(how[-1])), "model.pkl"
    buf = io.BytesIO()
    compress = {"joblib0": 0, "joblib3": 3, "joblib_xz": ("xz", 3), "joblib_bz2": ("bz2", 3),
                "joblib_gzip": ("gzip", 3), "joblib_lzma": ("lzma", 3)}[how]
    joblib.dump(model, buf, compress=compress)
    return buf.getvalue(), "model.joblib"


# ---- checking ---------------------------------------------------------------------------

def deploy(client, model, how, name="m"):
    data, filename = save(model, how)
    d = client.deploy(data, name=name, filename=filename)
    return d


def skip_if_engine_lacks_op(d):
    msg = d.get("error_message") or ""
    if d["status"] == "failed" and ("operator" in msg.lower() and "support" in msg.lower()):
        pytest.skip("engine operator not available yet: " + msg[:300])


def predict(client, dep_id, X):
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in X]
    r = client.predict(dep_id, rows)
    assert r.status_code == 200, r.text
    return r.json()


def check(client, model, X, how="pickle5", kind=None, proba=True, onnx_check=True):
    d = deploy(client, model, how)
    skip_if_engine_lacks_op(d)
    assert d["status"] == "active", d.get("error_message")
    meta = d["model_metadata"]
    assert meta["framework"] == "sklearn"
    body = predict(client, d["id"], X)
    is_clf = hasattr(model, "classes_")
    if is_clf:
        want = model.predict(X)
        got = np.array(body["predictions"])
        assert got.tolist() == want.tolist(), (got[:10], want[:10])
        if proba and hasattr(model, "predict_proba"):
            assert "probabilities" in body
            np.testing.assert_allclose(np.array(body["probabilities"]), model.predict_proba(X),
                                       atol=PROBA_ATOL)
    else:
        want = model.predict(X) if hasattr(model, "predict") else model.transform(X)
        got = np.array(body["predictions"], dtype=np.float64)
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=2e-4,
                                   atol=2e-4 * (np.abs(want).max() + 1))
    if onnx_check:
        r = client.get(f"/api/v1/deployments/{d['id']}/onnx")
        assert r.status_code == 200, r.text
        sess = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
        # float64 for graphs that compare in double (HistGradientBoosting), else float32.
        in_type = np.float64 if sess.get_inputs()[0].type == "tensor(double)" else np.float32
        outs = sess.run(None, {"input": X.astype(in_type)})
        names = [o.name for o in sess.get_outputs()]
        if is_clf:
            assert outs[names.index("label")].tolist() == model.predict(X).tolist()
            if "probabilities" in names:
                np.testing.assert_allclose(outs[names.index("probabilities")],
                                           model.predict_proba(X), atol=PROBA_ATOL)
    return d


# ---- cases ------------------------------------------------------------------------------

CLASSIFIERS = [
    ("logreg_multinomial", lambda: LogisticRegression(max_iter=5000), "iris"),
    ("logreg_binary", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), "cancer"),
    ("logreg_ovr_liblinear", lambda: LogisticRegression(solver="liblinear"), "iris_str"),
    ("logreg_wine_labels", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), "wine"),
    ("sgd_log", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=0)), "iris"),
    ("sgd_hinge", lambda: make_pipeline(StandardScaler(), SGDClassifier(random_state=0)), "wine"),
    ("sgd_modified_huber", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="modified_huber", random_state=0)), "cancer"),
    ("linear_svc", lambda: make_pipeline(StandardScaler(), LinearSVC()), "iris"),
    ("tree_clf", lambda: DecisionTreeClassifier(random_state=0), "iris"),
    ("tree_clf_str", lambda: DecisionTreeClassifier(max_depth=4, random_state=0), "iris_str"),
    ("forest_clf", lambda: RandomForestClassifier(n_estimators=20, random_state=0), "wine"),
    ("forest_clf_binary", lambda: RandomForestClassifier(n_estimators=10, random_state=0), "cancer"),
    ("extra_trees_clf", lambda: ExtraTreesClassifier(n_estimators=10, random_state=0), "iris"),
    ("gb_clf_binary", lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), "cancer"),
    ("gb_clf_multi", lambda: GradientBoostingClassifier(n_estimators=10, random_state=0), "iris"),
    ("hgb_clf", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "iris"),
    ("hgb_clf_binary", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "cancer"),
    ("mlp_clf", lambda: make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300, random_state=0)), "iris"),
    ("gaussian_nb", lambda: GaussianNB(), "wine"),
    ("multinomial_nb", lambda: MultinomialNB(), "counts"),
    ("bernoulli_nb", lambda: BernoulliNB(binarize=4.0), "counts"),
]

REGRESSORS = [
    ("linreg", lambda: LinearRegression(), "diabetes"),
    ("ridge", lambda: Ridge(alpha=0.5), "diabetes"),
    ("lasso", lambda: Lasso(alpha=0.01), "friedman"),
    ("elasticnet", lambda: ElasticNet(alpha=0.01), "friedman"),
    ("sgd_reg", lambda: make_pipeline(StandardScaler(), SGDRegressor(random_state=0)), "friedman"),
    ("linear_svr", lambda: make_pipeline(StandardScaler(), LinearSVR(random_state=0, max_iter=5000)), "friedman"),
    ("poly_ridge", lambda: make_pipeline(PolynomialFeatures(2), Ridge()), "friedman"),
    ("pca_linreg", lambda: make_pipeline(PCA(5, whiten=True), LinearRegression()), "diabetes"),
    ("scalers", lambda: make_pipeline(MinMaxScaler(), MaxAbsScaler(), RobustScaler(), Normalizer(), LinearRegression()), "friedman"),
    ("tree_reg", lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "diabetes"),
    ("forest_reg", lambda: RandomForestRegressor(n_estimators=10, random_state=0), "friedman"),
    ("extra_trees_reg", lambda: ExtraTreesRegressor(n_estimators=10, random_state=0), "friedman"),
    ("gb_reg", lambda: GradientBoostingRegressor(n_estimators=20, random_state=0), "diabetes"),
    ("hgb_reg", lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0), "friedman"),
    ("mlp_reg", lambda: make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=500, random_state=0)), "friedman"),
]


@pytest.mark.parametrize("case", CLASSIFIERS + REGRESSORS, ids=[c[0] for c in CLASSIFIERS + REGRESSORS])
def test_estimator(client, case):
    name, make, ds = case
    Xtr, ytr, Xte = dataset(ds)
    model = make().fit(Xtr, ytr)
    # Rotate through the file formats so every saver meets several estimators.
    how = SAVERS[sum(map(ord, name)) % len(SAVERS)]
    X = np.vstack([Xte, perturbed(Xte)])
    check(client, model, X, how=how)


@pytest.mark.parametrize("how", SAVERS)
def test_every_saver(client, how):
    Xtr, ytr, Xte = dataset("iris_str")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(Xtr, ytr)
    d = check(client, model, Xte, how=how)
    assert d["model_metadata"]["model_type"] == "Pipeline(StandardScaler, LogisticRegression)"


def test_nan_inputs_with_imputer(client):
    Xtr, ytr, Xte = dataset("cancer")
    rng = np.random.default_rng(0)
    Xtr = Xtr.copy()
    Xtr[rng.random(Xtr.shape) < 0.1] = np.nan
    Xte = Xte.copy()
    Xte[rng.random(Xte.shape) < 0.2] = np.nan
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(max_iter=5000)).fit(Xtr, ytr)
    check(client, model, Xte, how="joblib3")


def test_nan_inputs_native_missing_support(client):
    Xtr, ytr, Xte = dataset("iris")
    rng = np.random.default_rng(0)
    Xtr = Xtr.copy()
    Xtr[rng.random(Xtr.shape) < 0.1] = np.nan
    Xte = Xte.copy()
    Xte[rng.random(Xte.shape) < 0.2] = np.nan
    for model in [HistGradientBoostingClassifier(max_iter=10, random_state=0),
                  DecisionTreeClassifier(random_state=0)]:
        model.fit(Xtr, ytr)
        check(client, model, Xte, how="pickle5")


def test_column_transformer_named_features(client):
    pd = pytest.importorskip("pandas")
    Xtr, ytr, Xte = dataset("diabetes")
    cols = [f"f{i}" for i in range(Xtr.shape[1])]
    dtr = pd.DataFrame(Xtr, columns=cols)
    ct = ColumnTransformer([("scale", StandardScaler(), cols[:4]),
                            ("minmax", MinMaxScaler(), [4, 5])], remainder="passthrough")
    model = Pipeline([("ct", ct), ("ridge", Ridge())]).fit(dtr, ytr)
    d = deploy(client, model, "pickle4")
    assert d["status"] == "active", d
    want = model.predict(pd.DataFrame(Xte, columns=cols))
    body = predict(client, d["id"], Xte)
    np.testing.assert_allclose(body["predictions"], want, rtol=2e-4, atol=1e-2)
    # Named features: one row as an object.
    r = client.post(f"/api/v1/predict/{d['id']}", json={"data": dict(zip(cols, map(float, Xte[0])))})
    assert r.status_code == 200, r.text
    assert abs(r.json()["prediction"] - want[0]) < 1e-2 * (abs(want[0]) + 1)


def test_unsupported_estimator_is_named(client):
    from sklearn.neighbors import NearestCentroid
    Xtr, ytr, _ = dataset("iris")
    d = deploy(client, NearestCentroid().fit(Xtr, ytr), "pickle5")
    assert d["status"] == "failed"
    msg = str(d)
    assert "NearestCentroid" in msg and "skl2onnx" in msg


def test_not_an_estimator(client):
    d = client.deploy(pickle.dumps({"weights": [1, 2, 3]}, protocol=4), filename="model.pkl")
    assert d["status"] == "failed"
    assert "not a scikit-learn estimator" in str(d)


def test_string_labels_with_commas_and_backslashes(client):
    Xtr, ytr, Xte = dataset("iris")
    names = np.array(["setosa, small", "versi\\color", "virginica,,"])
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(Xtr, names[ytr])
    check(client, model, Xte)
    d = deploy(client, model, "pickle4", name="labels")
    assert d["model_metadata"]["classes"] == list(model.classes_)


# ---- hostile corpus -----------------------------------------------------------------------

def test_hostile_corpus(client, tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
    from make_corpus import corpus

    marker = tmp_path / "PWNED"
    expect = corpus(tmp_path / "corpus", str(marker))
    assert len(expect) >= 25
    for name, fragment in sorted(expect.items()):
        data = (tmp_path / "corpus" / name).read_bytes()
        d = client.deploy(data, name=name[:60], filename=name)
        if fragment is None:  # bit flips: anything but a crash (usually rejected)
            assert d["status"] in ("failed", "active"), (name, d)
        else:
            assert d["status"] == "failed", (name, d)
            msg = d.get("error_message") or ""
            assert msg, (name, d)
            assert fragment in msg, (name, msg)
        # The server keeps serving after each file.
        assert client.get("/health").status_code == 200
    assert not marker.exists(), "a hostile pickle ran code"
    # And a good model still deploys afterwards.
    Xtr, ytr, Xte = dataset("iris")
    check(client, LogisticRegression(max_iter=1000).fit(Xtr, ytr), Xte)
