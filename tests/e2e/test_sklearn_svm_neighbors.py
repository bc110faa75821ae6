"""Kernel SVMs (SVC, NuSVC, SVR, NuSVR, OneClassSVM) and k-nearest neighbours
(KNeighborsClassifier / KNeighborsRegressor) through the real server: trained with the real
scikit-learn, saved with pickle / joblib, deployed, and compared with predict() (exact labels,
regression within 1e-4 relative) and predict_proba() (1e-5 absolute) on held-out and perturbed
rows; the downloaded ONNX graph must give the same answers under onnxruntime.

Neighbour queries are compared on rows without exact distance ties (continuous data, or
grid-valued data with a small perturbation): at an exact tie for the k-th neighbour the
served graph keeps the lower training index, like sklearn's brute-force search, while a
KDTree/BallTree may keep the other one."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM
from test_sklearn_import import client, dataset, deploy, perturbed, predict  # noqa: F401

warnings.filterwarnings("ignore")

PROBA_ATOL = 1e-5
REG_RTOL = 1e-4


def check(client, model, X, how="pickle5"):
    d = deploy(client, model, how)
    assert d["status"] == "active", d.get("error_message")
    body = predict(client, d["id"], X)
    r = client.get(f"/api/v1/deployments/{d['id']}/onnx")
    assert r.status_code == 200, r.text
    sess = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {"input": X.astype(np.float32)})))
    if hasattr(model, "classes_"):
        want = model.predict(X).tolist()
        assert np.array(body["predictions"]).tolist() == want
        assert outs["label"].tolist() == want
        if hasattr(model, "predict_proba"):
            p = model.predict_proba(X)
            np.testing.assert_allclose(np.array(body["probabilities"]), p, atol=PROBA_ATOL)
            np.testing.assert_allclose(outs["probabilities"], p, atol=PROBA_ATOL)
        else:
            assert "probabilities" not in outs
    else:
        want = np.asarray(model.predict(X), dtype=np.float64)
        atol = REG_RTOL * (np.abs(want).max() + 1e-9)
        got = np.array(body["predictions"], dtype=np.float64).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=REG_RTOL, atol=atol)
        np.testing.assert_allclose(outs["variable"].reshape(want.shape), want, rtol=REG_RTOL,
                                   atol=atol)
    return d


def scaled(make):
    return lambda: make_pipeline(StandardScaler(), make())


CLASSIFIERS = [
    ("svc_rbf", lambda: SVC(), "iris", "pickle5"),
    ("svc_rbf_unscaled_binary", lambda: SVC(), "cancer", "joblib3"),
    ("svc_linear_binary", scaled(lambda: SVC(kernel="linear")), "cancer", "pickle4"),
    ("svc_poly_str_ovo", lambda: SVC(kernel="poly", degree=3, coef0=1.0, gamma="auto",
                                     decision_function_shape="ovo"), "iris_str", "joblib_xz"),
    ("svc_sigmoid", scaled(lambda: SVC(kernel="sigmoid", gamma=0.02, coef0=0.5)), "cancer",
     "pickle2"),
    ("svc_float_gamma", lambda: SVC(gamma=0.5, C=3.0), "iris", "pickle3"),
    ("svc_wine_labels", scaled(lambda: SVC()), "wine", "joblib0"),
    ("svc_break_ties", scaled(lambda: SVC(kernel="linear", break_ties=True)), "wine",
     "pickle5"),
    ("svc_proba_multi", lambda: SVC(probability=True, random_state=0), "iris", "joblib_gzip"),
    ("svc_proba_binary", scaled(lambda: SVC(probability=True, random_state=0)), "cancer",
     "pickle5"),
    ("svc_proba_str_poly", scaled(lambda: SVC(kernel="poly", degree=2, probability=True,
                                              random_state=0)), "iris_str", "joblib_bz2"),
    ("svc_proba_wine", scaled(lambda: SVC(probability=True, random_state=1)), "wine",
     "pickle4"),
    ("svc_proba_break_ties", scaled(lambda: SVC(probability=True, break_ties=True,
                                                random_state=0)), "wine", "joblib3"),
    ("nusvc", lambda: NuSVC(nu=0.3), "iris", "pickle5"),
    ("nusvc_proba", scaled(lambda: NuSVC(nu=0.2, probability=True, random_state=0)), "wine",
     "joblib_lzma"),
    ("knn_uniform", lambda: KNeighborsClassifier(), "iris", "pickle5"),
    ("knn_distance_str", lambda: KNeighborsClassifier(7, weights="distance"), "iris_str",
     "joblib3"),
    ("knn_brute_binary", lambda: KNeighborsClassifier(4, algorithm="brute"), "cancer",
     "pickle4"),
    ("knn_kdtree_manhattan", scaled(lambda: KNeighborsClassifier(6, p=1,
                                                                 algorithm="kd_tree")),
     "wine", "joblib_xz"),
    ("knn_balltree_manhattan_distance", lambda: KNeighborsClassifier(
        5, metric="manhattan", weights="distance", algorithm="ball_tree"), "cancer", "pickle3"),
    ("knn_minkowski_p3", scaled(lambda: KNeighborsClassifier(5, p=3)), "wine", "pickle5"),
    ("knn_chebyshev", lambda: KNeighborsClassifier(3, metric="chebyshev"), "iris", "pickle2"),
    ("knn_euclidean_k1", lambda: KNeighborsClassifier(1, metric="euclidean"), "wine",
     "joblib0"),
]

REGRESSORS = [
    ("svr_rbf", scaled(lambda: SVR(C=50.0, epsilon=1.0)), "diabetes", "pickle5"),
    ("svr_linear", lambda: SVR(kernel="linear", C=10.0), "friedman", "joblib3"),
    ("svr_poly", scaled(lambda: SVR(kernel="poly", degree=2, coef0=1.0)), "friedman",
     "pickle4"),
    ("svr_sigmoid", scaled(lambda: SVR(kernel="sigmoid", gamma=0.05, C=5.0)), "friedman",
     "pickle3"),
    ("nusvr", scaled(lambda: NuSVR(nu=0.5, C=20.0)), "diabetes", "joblib_xz"),
    ("knn_reg_uniform", lambda: KNeighborsRegressor(), "diabetes", "pickle5"),
    ("knn_reg_distance", lambda: KNeighborsRegressor(8, weights="distance"), "friedman",
     "joblib_gzip"),
    ("knn_reg_manhattan", lambda: KNeighborsRegressor(3, p=1, algorithm="brute"), "friedman",
     "pickle4"),
]

CASES = CLASSIFIERS + REGRESSORS


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_estimator(client, case):
    name, make, ds, how = case
    Xtr, ytr, Xte = dataset(ds)
    model = make().fit(Xtr, ytr)
    if ds.startswith("iris"):
        # Iris values lie on a 0.1 grid: held-out rows often have several training rows at
        # exactly the same distance. Perturbed rows do not.
        X = np.vstack([perturbed(Xte, seed=1), perturbed(Xte, seed=2)])
    else:
        X = np.vstack([Xte, perturbed(Xte)])
    check(client, model, X, how=how)


def test_knn_multioutput_regressor(client):
    Xtr, ytr, Xte = dataset("friedman")
    Y = np.c_[ytr, np.sin(ytr), -2 * ytr]
    for weights in ["uniform", "distance"]:
        model = KNeighborsRegressor(4, weights=weights).fit(Xtr, Y)
        check(client, model, np.vstack([Xte, perturbed(Xte)]), how="joblib3")


def test_knn_many_features(client):
    """Wide inputs take the other distance layout for non-euclidean metrics."""
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=300, n_features=80, n_informative=10, random_state=0)
    Xtr, ytr, Xte = X[:220], y[:220], X[220:]
    for model in [KNeighborsClassifier(5, p=1, weights="distance"),
                  KNeighborsClassifier(4, metric="chebyshev"),
                  KNeighborsRegressor(6, p=3)]:
        model.fit(Xtr, ytr.astype(np.float64) if isinstance(model, KNeighborsRegressor) else ytr)
        check(client, model, np.vstack([Xte, perturbed(Xte)]), how="joblib3")


def test_knn_zero_distance_queries(client):
    """Queries equal to training rows: 'distance' weights give those rows weight 1."""
    Xtr, ytr, _ = dataset("cancer")
    Xtr = Xtr.astype(np.float32).astype(np.float64)  # exactly representable as served
    for model in [KNeighborsClassifier(5, weights="distance"),
                  KNeighborsRegressor(5, weights="distance")]:
        model.fit(Xtr, ytr.astype(np.float64) if isinstance(model, KNeighborsRegressor) else ytr)
        check(client, model, Xtr[:40], how="pickle5")


def test_one_class_svm(client):
    Xtr, _, Xte = dataset("cancer")
    # (Rows with a decision value within float32 rounding of 0 would be ambiguous; these
    # models have none among the compared rows.)
    for scaler, kernel, gamma in [(StandardScaler(), "rbf", "scale"),
                                  (MinMaxScaler(), "linear", "scale"),
                                  (StandardScaler(), "sigmoid", 0.01)]:
        model = make_pipeline(scaler, OneClassSVM(kernel=kernel, nu=0.1, gamma=gamma))
        model.fit(Xtr)
        X = np.vstack([Xte, perturbed(Xte), Xte * 3])
        d = deploy(client, model, "pickle5")
        assert d["status"] == "active", d.get("error_message")
        got = np.array(predict(client, d["id"], X)["predictions"], dtype=np.float64).ravel()
        assert got.tolist() == model.predict(X).astype(np.float64).tolist()


def test_svm_public_attributes_only(client):
    """Files without libsvm's internal _dual_coef_/_intercept_ use the public attributes,
    whose sign is flipped for binary classifiers."""
    for ds in ["cancer", "iris"]:
        Xtr, ytr, Xte = dataset(ds)
        svc = SVC(kernel="rbf", probability=True, random_state=0)
        model = make_pipeline(StandardScaler(), svc).fit(Xtr, ytr)
        X = np.vstack([perturbed(Xte, seed=1), perturbed(Xte, seed=2)])
        pinned = model.predict(X), model.predict_proba(X)
        del svc._dual_coef_, svc._intercept_
        d = deploy(client, model, "pickle5")
        assert d["status"] == "active", d.get("error_message")
        body = predict(client, d["id"], X)
        assert body["predictions"] == pinned[0].tolist()
        np.testing.assert_allclose(body["probabilities"], pinned[1], atol=PROBA_ATOL)


def test_model_types(client):
    Xtr, ytr, _ = dataset("iris")
    d = deploy(client, SVC(probability=True).fit(Xtr, ytr), "pickle5")
    assert d["model_metadata"]["model_type"] == "SVC"
    d = deploy(client, make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(Xtr, ytr),
               "pickle5")
    assert d["model_metadata"]["model_type"] == "Pipeline(StandardScaler, KNeighborsClassifier)"


# ---- hostile / unsupported files ---------------------------------------------------------

def _failed(client, model, fragment):
    d = client.deploy(pickle.dumps(model, protocol=5), name="bad", filename="model.pkl")
    assert d["status"] == "failed", d
    msg = d.get("error_message") or ""
    assert fragment in msg, msg
    assert client.get("/health").status_code == 200


def test_inconsistent_svm_files_fail_cleanly(client):
    Xtr, ytr, _ = dataset("iris")
    m = SVC().fit(Xtr, ytr)
    m._n_support = m._n_support + np.array([5, 0, 0], dtype=m._n_support.dtype)
    _failed(client, m, "n_support_")

    m = SVC().fit(Xtr, ytr)
    m._n_support = m._n_support[:2].copy()
    _failed(client, m, "n_support_ has 2 entries for 3 classes")

    m = SVC().fit(Xtr, ytr)
    m._dual_coef_ = m._dual_coef_[:, :-3].copy()
    _failed(client, m, "dual_coef_")

    m = SVC().fit(Xtr, ytr)
    m._intercept_ = m._intercept_[:1].copy()
    _failed(client, m, "intercept_")

    m = SVC(probability=True).fit(Xtr, ytr)
    m._probA = m._probA[:2].copy()
    _failed(client, m, "probA_")

    m = SVC().fit(Xtr, ytr)
    m.support_vectors_ = m.support_vectors_[:, :3].copy()
    _failed(client, m, "support_vectors_")

    m = SVC(kernel="precomputed").fit(Xtr @ Xtr.T, ytr)
    _failed(client, m, "kernel 'precomputed' is not supported")

    m = SVR().fit(Xtr, ytr.astype(float))
    m.support_vectors_ = m.support_vectors_[:0].copy()
    _failed(client, m, "no support vectors")


def test_inconsistent_knn_files_fail_cleanly(client):
    Xtr, ytr, _ = dataset("iris")
    m = KNeighborsClassifier(3).fit(Xtr, ytr)
    m.n_neighbors = len(Xtr) + 1
    _failed(client, m, "larger than the")

    m = KNeighborsClassifier(3).fit(Xtr, ytr)
    m._y = m._y[:-4].copy()
    _failed(client, m, "_y has")

    m = KNeighborsClassifier(3).fit(Xtr, ytr)
    m._y = m._y + 7
    _failed(client, m, "class index")

    m = KNeighborsRegressor(3).fit(Xtr, ytr)
    m._fit_X = m._fit_X[:, :2].copy()
    _failed(client, m, "_fit_X")

    m = KNeighborsClassifier(3, metric="cosine", algorithm="brute").fit(Xtr, ytr)
    _failed(client, m, "metric 'cosine' is not supported")

    m = KNeighborsClassifier(3, weights=lambda d: d).fit(Xtr, ytr)
    m.weights = "custom"
    _failed(client, m, "weights 'custom' are not supported")
