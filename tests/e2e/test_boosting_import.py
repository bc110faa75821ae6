"""XGBoost (JSON, UBJSON) and LightGBM (text) models through the real server.

Each model is trained here with the real library, saved the way users save it, deployed
through `POST /api/v1/deploy`, and its `predictions` / `probabilities` are compared with the
library's own predict / predict_proba (never with our numbers): exact classes, probabilities
to 1e-5 absolute, regression to 1e-5 relative. The rows include NaN (sent as JSON null),
zeros, values exactly on split thresholds and, for LightGBM, values inside its zero range.
The converted graph downloaded from `GET /api/v1/deployments/{id}/onnx` must give the same
answers in onnxruntime.
"""
from __future__ import annotations

import json
import uuid

import numpy as np
import onnxruntime as ort
import pytest

from conftest import Server, register

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

N_FEATURES = 20
LGB_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


@pytest.fixture(scope="module")
def boost_user(tmp_path_factory):
    data = tmp_path_factory.mktemp("boosting-data")
    srv = Server(data).start()
    yield register(srv.url, "boost")
    rc = srv.stop()
    assert rc == 0, srv.logs()[-4000:]


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.10] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    return X


X_TRAIN = make_data(1500, 1)
X_TEST = make_data(200, 2)
_lin = np.nan_to_num(X_TRAIN[:, 0]) + 0.7 * np.nan_to_num(X_TRAIN[:, 1]) ** 2 - np.nan_to_num(X_TRAIN[:, 2])
Y_REG = _lin + np.random.default_rng(3).normal(size=len(_lin)) * 0.2
Y_BIN = (_lin > 0.4).astype(int)
Y_MC = np.digitize(_lin, [-0.5, 0.8])
Y_COUNT = np.random.default_rng(4).poisson(np.exp(0.3 * np.clip(_lin, -3, 3)))


def with_edge_rows(X, thresholds, extra_rows=()):
    """X plus rows that sit exactly on split thresholds, all-NaN, all-zero, and extras."""
    rows = [X]
    edge = X[: max(1, min(len(thresholds), 60))].copy()
    for i in range(len(edge)):
        if thresholds:
            f, t = thresholds[i % len(thresholds)]
            edge[i, f] = t
            f2, t2 = thresholds[(7 * i + 3) % len(thresholds)]
            edge[i, f2] = t2
    rows.append(edge)
    rows.append(np.full((1, N_FEATURES), np.nan))
    rows.append(np.zeros((1, N_FEATURES)))
    rows.extend(np.atleast_2d(r) for r in extra_rows)
    return np.vstack(rows)


def to_json_rows(X):
    return [[None if np.isnan(v) else float(v) for v in row] for row in X]


def xgb_thresholds(booster):
    model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    trees = (model.get("model") or model["gbtree"]["model"])["trees"]
    out = []
    for t in trees:
        for k, left in enumerate(t["left_children"]):
            if left != -1:
                out.append((t["split_indices"][k], float(np.float32(t["split_conditions"][k]))))
    return out


def lgb_thresholds(booster):
    out = []

    def walk(node):
        if "split_feature" in node:
            out.append((node["split_feature"], float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for t in booster.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return out


def deploy(user, path, filename):
    with open(path, "rb") as f:
        d = user.deploy(f.read(), name="boost-" + uuid.uuid4().hex[:6], filename=filename)
    assert d["status"] == "active", d
    return d


def predict(user, dep_id, X):
    r = user.predict(dep_id, to_json_rows(X))
    assert r.status_code == 200, r.text
    return r.json()


def onnx_session(user, dep_id):
    r = user.get(f"/api/v1/deployments/{dep_id}/onnx")
    assert r.status_code == 200, r.text
    return ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])


def ort_outputs(sess, X, dtype):
    outs = sess.run(None, {sess.get_inputs()[0].name: X.astype(dtype)})
    if len(outs) == 2:
        labels, probs = outs
        if isinstance(probs, list):  # ZipMap: a list of {class: probability}
            probs = np.array([[row[k] for k in sorted(row)] for row in probs])
        return np.asarray(labels), np.asarray(probs)
    return None, np.asarray(outs[0])


def check_classifier(body, labels_ref, proba_ref, where):
    labels = np.asarray(body["predictions"])
    probs = np.asarray(body["probabilities"], dtype=np.float64)
    assert probs.shape == proba_ref.shape, where
    np.testing.assert_allclose(probs, proba_ref, rtol=0, atol=1e-5, err_msg=where)
    np.testing.assert_array_equal(labels, labels_ref, err_msg=where)


def check_regressor(values, ref, where):
    values = np.asarray(values, dtype=np.float64).reshape(ref.shape)
    np.testing.assert_allclose(values, ref, rtol=1e-5, atol=1e-5, err_msg=where)


# ----------------------------------------------------------------------------- XGBoost

def binary_proba(p):
    p = np.asarray(p, dtype=np.float64)
    return np.column_stack([1 - p, p])


XGB_CASES = [
    # (id, kind, params, rounds, label source, file extension)
    ("binary-logistic-d2-json", "booster", {"objective": "binary:logistic", "max_depth": 2}, 40, "bin", "json"),
    ("binary-logistic-d6-ubj", "booster", {"objective": "binary:logistic", "max_depth": 6}, 25, "bin", "ubj"),
    ("binary-logitraw-json", "booster", {"objective": "binary:logitraw", "max_depth": 3}, 20, "bin", "json"),
    ("multi-softprob-ubj", "booster", {"objective": "multi:softprob", "num_class": 3, "max_depth": 4}, 15, "mc", "ubj"),
    ("multi-softmax-json", "booster", {"objective": "multi:softmax", "num_class": 3, "max_depth": 3}, 15, "mc", "json"),
    ("reg-squarederror-d8-json", "booster", {"objective": "reg:squarederror", "max_depth": 8}, 20, "reg", "json"),
    ("reg-absoluteerror-ubj", "booster", {"objective": "reg:absoluteerror", "max_depth": 4}, 20, "reg", "ubj"),
    ("reg-logistic-json", "booster", {"objective": "reg:logistic", "max_depth": 3}, 20, "prob", "json"),
    ("count-poisson-ubj", "booster", {"objective": "count:poisson", "max_depth": 4}, 25, "count", "ubj"),
    ("reg-gamma-json", "booster", {"objective": "reg:gamma", "max_depth": 3}, 20, "count1", "json"),
    ("reg-tweedie-json", "booster", {"objective": "reg:tweedie", "max_depth": 3}, 20, "count", "json"),
    ("dart-binary-json", "booster", {"objective": "binary:logistic", "booster": "dart", "max_depth": 3,
                                     "rate_drop": 0.3, "skip_drop": 0.0}, 20, "bin", "json"),
    ("forest-regression-ubj", "booster", {"objective": "reg:squarederror", "max_depth": 4,
                                          "num_parallel_tree": 4, "subsample": 0.7,
                                          "colsample_bynode": 0.7}, 5, "reg", "ubj"),
]

LABELS = {"bin": Y_BIN, "mc": Y_MC, "reg": Y_REG, "prob": Y_BIN * 0.8 + 0.1, "count": Y_COUNT,
          "count1": Y_COUNT + 1.0}


@pytest.mark.parametrize("case", XGB_CASES, ids=[c[0] for c in XGB_CASES])
def test_xgboost_booster_matches_xgboost_predict(boost_user, tmp_path, case):
    name, _, params, rounds, label, ext = case
    params = {"eta": 0.3, "seed": 0, **params}
    bst = xgb.train(params, xgb.DMatrix(X_TRAIN, label=LABELS[label]), rounds)
    path = tmp_path / f"model.{ext}"
    bst.save_model(str(path))
    # XGBoost reads features as float32: send values that are exactly float32.
    X = with_edge_rows(X_TEST, xgb_thresholds(bst)).astype(np.float32).astype(np.float64)
    ref = bst.predict(xgb.DMatrix(X))

    d = deploy(boost_user, path, path.name)
    meta = d["model_metadata"]
    assert meta["framework"] == "xgboost"
    objective = params["objective"]
    body = predict(boost_user, d["id"], X)
    sess = onnx_session(boost_user, d["id"])
    ort_labels, ort_values = ort_outputs(sess, X, np.float32)
    if objective == "binary:logistic":
        assert meta["model_type"] == "XGBClassifier(binary:logistic)"
        labels = (ref > 0.5).astype(int)
        check_classifier(body, labels, binary_proba(ref), name)
        np.testing.assert_allclose(ort_values, binary_proba(ref), atol=1e-5)
        np.testing.assert_array_equal(ort_labels, labels)
    elif objective.startswith("multi:"):
        assert meta["model_type"] == f"XGBClassifier({objective})"
        assert meta["classes"] == [0, 1, 2]
        if objective == "multi:softprob":
            check_classifier(body, ref.argmax(axis=1), ref, name)
            np.testing.assert_allclose(ort_values, ref, atol=1e-5)
        else:  # softmax: Booster.predict gives the class
            np.testing.assert_array_equal(body["predictions"], ref.astype(int))
            margins = bst.predict(xgb.DMatrix(X), output_margin=True)
            e = np.exp(margins - margins.max(axis=1, keepdims=True))
            np.testing.assert_allclose(body["probabilities"], e / e.sum(axis=1, keepdims=True), atol=1e-5)
        np.testing.assert_array_equal(ort_labels, np.asarray(body["predictions"]))
    else:
        assert meta["model_type"] == f"XGBRegressor({objective})"
        check_regressor(body["predictions"], ref, name)
        check_regressor(ort_values, ref, name + " (onnxruntime)")


def test_xgboost_sklearn_wrappers_with_early_stopping_and_feature_names(boost_user, tmp_path):
    names = [f"f{i}" for i in range(N_FEATURES)]
    X = with_edge_rows(X_TEST, []).astype(np.float32).astype(np.float64)

    clf = xgb.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.3,
                            early_stopping_rounds=5, eval_metric="mlogloss")
    clf.fit(X_TRAIN[:1000], Y_MC[:1000], eval_set=[(X_TRAIN[1000:], Y_MC[1000:])], verbose=False)
    assert clf.best_iteration < 199  # early stopping kicked in: the file holds extra trees
    named = clf.get_booster().copy()  # names on a copy: clf itself predicts on plain arrays
    named.feature_names = names
    named.save_model(str(tmp_path / "clf.json"))
    d = deploy(boost_user, tmp_path / "clf.json", "clf.json")
    assert d["model_metadata"]["feature_names"] == names
    assert d["model_metadata"]["classes"] == [0, 1, 2]
    body = predict(boost_user, d["id"], X)
    check_classifier(body, clf.predict(X), clf.predict_proba(X), "XGBClassifier multiclass")
    # Named features in any order give the same answer.
    row = {n: (None if np.isnan(v) else float(v)) for n, v in reversed(list(zip(names, X[0])))}
    one = boost_user.post(f"/api/v1/predict/{d['id']}", json={"data": row}).json()
    assert one["prediction"] == int(clf.predict(X[:1])[0])

    bin_clf = xgb.XGBClassifier(n_estimators=30, max_depth=5)
    bin_clf.fit(X_TRAIN, Y_BIN)
    bin_clf.save_model(str(tmp_path / "bin.ubj"))
    d = deploy(boost_user, tmp_path / "bin.ubj", "bin.ubj")
    body = predict(boost_user, d["id"], X)
    check_classifier(body, bin_clf.predict(X), bin_clf.predict_proba(X), "XGBClassifier binary")

    reg = xgb.XGBRegressor(n_estimators=40, max_depth=6)
    reg.fit(X_TRAIN, Y_REG)
    reg.save_model(str(tmp_path / "reg.json"))
    d = deploy(boost_user, tmp_path / "reg.json", "reg.json")
    assert d["model_metadata"]["model_type"] == "XGBRegressor(reg:squarederror)"
    check_regressor(predict(boost_user, d["id"], X)["predictions"], reg.predict(X), "XGBRegressor")


def test_xgboost_multi_target_regression(boost_user, tmp_path):
    Y = np.column_stack([Y_REG, np.nan_to_num(X_TRAIN[:, 3]) * 2 + 1])
    bst = xgb.train({"objective": "reg:squarederror", "max_depth": 4,
                     "multi_strategy": "one_output_per_tree"}, xgb.DMatrix(X_TRAIN, label=Y), 15)
    bst.save_model(str(tmp_path / "mt.ubj"))
    X = with_edge_rows(X_TEST, xgb_thresholds(bst)).astype(np.float32).astype(np.float64)
    ref = bst.predict(xgb.DMatrix(X))
    d = deploy(boost_user, tmp_path / "mt.ubj", "mt.ubj")
    check_regressor(predict(boost_user, d["id"], X)["predictions"], ref, "multi-target")

    bst = xgb.train({"objective": "reg:squarederror", "max_depth": 2, "tree_method": "hist",
                     "multi_strategy": "multi_output_tree"}, xgb.DMatrix(X_TRAIN, label=Y), 2)
    bst.save_model(str(tmp_path / "vector_leaf.json"))
    deploy_expect_failure(boost_user, (tmp_path / "vector_leaf.json").read_bytes(),
                          "vector_leaf.json", "multi_output_tree")


# ----------------------------------------------------------------------------- LightGBM

LGB_CASES = [
    # (id, params, rounds, labels)
    ("binary-31", {"objective": "binary"}, 30, "bin"),
    ("binary-sigmoid2-zero-as-missing", {"objective": "binary", "sigmoid": 2.0, "zero_as_missing": True}, 25, "bin"),
    ("multiclass-15", {"objective": "multiclass", "num_class": 3, "num_leaves": 15}, 20, "mc"),
    ("multiclassova", {"objective": "multiclassova", "num_class": 3, "num_leaves": 7}, 20, "mc"),
    ("regression-63", {"objective": "regression", "num_leaves": 63}, 30, "reg"),
    ("regression-zero-as-missing", {"objective": "regression", "zero_as_missing": True}, 30, "reg"),
    ("regression-no-missing", {"objective": "regression", "use_missing": False}, 20, "reg"),
    ("regression-l1", {"objective": "regression_l1"}, 20, "reg"),
    ("huber", {"objective": "huber"}, 20, "reg"),
    ("quantile", {"objective": "quantile", "alpha": 0.7}, 20, "reg"),
    ("poisson", {"objective": "poisson"}, 25, "count"),
    ("gamma", {"objective": "gamma"}, 20, "count1"),
    ("tweedie-zero-as-missing", {"objective": "tweedie", "zero_as_missing": True}, 20, "count"),
    ("cross-entropy", {"objective": "cross_entropy"}, 20, "prob"),
    ("random-forest", {"objective": "regression", "boosting": "rf", "bagging_freq": 1,
                       "bagging_fraction": 0.7, "feature_fraction": 0.7}, 10, "reg"),
]


def lgb_extra_rows():
    rows = []
    for v in (1e-36, -1e-36, LGB_ZERO, -LGB_ZERO, 2e-35, -2e-35, 5e-324):
        rows.append(np.full(N_FEATURES, v))
    return rows


@pytest.mark.parametrize("case", LGB_CASES, ids=[c[0] for c in LGB_CASES])
def test_lightgbm_booster_matches_lightgbm_predict(boost_user, tmp_path, case):
    name, params, rounds, label = case
    params = {"verbose": -1, "seed": 0, "min_data_in_leaf": 10, **params}
    booster = lgb.train(params, lgb.Dataset(X_TRAIN, LABELS[label]), rounds)
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    X = with_edge_rows(X_TEST, lgb_thresholds(booster), lgb_extra_rows())
    ref = booster.predict(X)

    d = deploy(boost_user, path, "model.txt")
    meta = d["model_metadata"]
    assert meta["framework"] == "lightgbm"
    assert meta["feature_names"] == [f"Column_{i}" for i in range(N_FEATURES)]
    body = predict(boost_user, d["id"], X)
    sess = onnx_session(boost_user, d["id"])
    ort_labels, ort_values = ort_outputs(sess, X, np.float64)
    objective = params["objective"]
    if objective == "binary":
        assert meta["model_type"] == "LGBMClassifier(binary)"
        proba = binary_proba(ref)
        check_classifier(body, proba.argmax(axis=1), proba, name)
        np.testing.assert_allclose(ort_values, proba, atol=1e-5)
        np.testing.assert_array_equal(ort_labels, proba.argmax(axis=1))
    elif objective.startswith("multiclass"):
        assert meta["model_type"] == f"LGBMClassifier({objective})"
        assert meta["classes"] == [0, 1, 2]
        check_classifier(body, ref.argmax(axis=1), ref, name)
        np.testing.assert_allclose(ort_values, ref, atol=1e-5)
        np.testing.assert_array_equal(ort_labels, ref.argmax(axis=1))
    else:
        assert meta["model_type"].startswith("LGBMRegressor(")
        check_regressor(body["predictions"], ref, name)
        check_regressor(ort_values, ref, name + " (onnxruntime)")


def test_lightgbm_sklearn_wrappers(boost_user, tmp_path):
    X = with_edge_rows(X_TEST, [], lgb_extra_rows())
    clf = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1)
    clf.fit(X_TRAIN, Y_MC)
    clf.booster_.save_model(str(tmp_path / "clf.txt"))
    d = deploy(boost_user, tmp_path / "clf.txt", "clf.txt")
    check_classifier(predict(boost_user, d["id"], X), clf.predict(X), clf.predict_proba(X),
                     "LGBMClassifier multiclass")

    bin_clf = lgb.LGBMClassifier(n_estimators=30, verbose=-1)
    bin_clf.fit(X_TRAIN, Y_BIN)
    bin_clf.booster_.save_model(str(tmp_path / "bin.txt"))
    d = deploy(boost_user, tmp_path / "bin.txt", "bin.txt")
    check_classifier(predict(boost_user, d["id"], X), bin_clf.predict(X), bin_clf.predict_proba(X),
                     "LGBMClassifier binary")

    reg = lgb.LGBMRegressor(n_estimators=40, verbose=-1)
    reg.fit(X_TRAIN, Y_REG)
    reg.booster_.save_model(str(tmp_path / "reg.txt"))
    d = deploy(boost_user, tmp_path / "reg.txt", "reg.txt")
    check_regressor(predict(boost_user, d["id"], X)["predictions"], reg.predict(X), "LGBMRegressor")


def one_split_model(threshold: str, decision_type: int) -> str:
    """A one-tree LightGBM text model splitting feature 0 (leaf 1 left, leaf 2 right)."""
    return ("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
            "max_feature_idx=2\nobjective=regression\nfeature_names=a b c\n"
            "feature_infos=none none none\ntree_sizes=0\n\nTree=0\nnum_leaves=2\nnum_cat=0\n"
            f"split_feature=0\nsplit_gain=1\nthreshold={threshold}\n"
            f"decision_type={decision_type}\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
            "leaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\ninternal_weight=0\n"
            "internal_count=2\nis_linear=0\nshrinkage=1\n\n\nend of trees\n\n"
            "feature_importances:\n\nparameters:\nend of parameters\n\npandas_categorical:null\n")


@pytest.mark.parametrize("threshold", ["0.5", "-0.5", "0", "1e-36", "-1.0000000180025095e-35",
                                       "1.0000000180025095e-35"])
def test_lightgbm_missing_value_rules_every_decision_type(boost_user, threshold):
    """Each missing type (None, Zero, NaN) x default side, on NaN, zeros, the zero range and
    values around the threshold, against lightgbm's own predict."""
    t = float(threshold)
    xs = [np.nan, 0.0, -0.0, 1e-36, -1e-36, LGB_ZERO, -LGB_ZERO, 2e-35, -2e-35, 5e-324, t,
          np.nextafter(t, 1.0), np.nextafter(t, -1.0), 0.25, -0.25, 0.75, -0.75]
    X = np.array([[x, 0.0, 0.0] for x in xs])
    for decision_type in (0, 2, 4, 6, 8, 10):
        text = one_split_model(threshold, decision_type)
        ref = lgb.Booster(model_str=text).predict(X)
        d = deploy_bytes(boost_user, text.encode(), "split.txt")
        got = predict(boost_user, d["id"], X)["predictions"]
        np.testing.assert_array_equal(got, ref, err_msg=f"threshold {threshold} type {decision_type}")


def deploy_bytes(user, data: bytes, filename: str):
    d = user.deploy(data, name="boost-" + uuid.uuid4().hex[:6], filename=filename)
    assert d["status"] == "active", d
    return d


# ----------------------------------------------------------------------------- refusals

def deploy_expect_failure(user, data: bytes, filename: str, needle: str):
    d = user.deploy(data, name="bad-" + uuid.uuid4().hex[:6], filename=filename)
    assert d["status"] == "failed", d
    assert needle in d["error_message"], d["error_message"]


def test_unsupported_and_broken_models_fail_with_a_clear_message(boost_user, tmp_path):
    bst = xgb.train({"objective": "rank:pairwise", "max_depth": 2},
                    xgb.DMatrix(X_TRAIN[:100], label=Y_BIN[:100], group=[50, 50]), 2)
    bst.save_model(str(tmp_path / "rank.json"))
    deploy_expect_failure(boost_user, (tmp_path / "rank.json").read_bytes(), "rank.json", "rank:pairwise")

    good = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                     xgb.DMatrix(X_TRAIN, label=Y_BIN), 3)
    good.save_model(str(tmp_path / "good.ubj"))
    ubj = (tmp_path / "good.ubj").read_bytes()
    deploy_expect_failure(boost_user, ubj[: len(ubj) // 2], "cut.ubj", "UBJSON")

    category = np.arange(300) % 5
    cat = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
                    lgb.Dataset(np.column_stack([category, X_TRAIN[:300, :2]]),
                                np.isin(category, [1, 3]).astype(int), categorical_feature=[0]), 5)
    cat.save_model(str(tmp_path / "cat.txt"))
    deploy_expect_failure(boost_user, (tmp_path / "cat.txt").read_bytes(), "cat.txt", "categorical")

    deploy_expect_failure(boost_user, b"tree\nversion=v4\n", "cut.txt", "LightGBM model")

    # The server keeps serving after refusing them.
    assert boost_user.get("/api/v1/deployments").status_code == 200
