"""Model files written by an older scikit-learn (1.3, from .venv-sklearn13/) through the real
server. tests/compat/make_sklearn_models.py runs inside that venv: it trains each estimator
with scikit-learn 1.3, saves it with pickle and joblib, and records what scikit-learn 1.3
predicts. Each file is deployed here and the served predictions must match those records:
classes exactly, probabilities to 1e-5, regression outputs to 1e-4 relative.

The old venv is made by scripts/setup-sklearn13-venv.sh (part of `make deps`). Without it the
test skips locally and fails under CI (CI=true)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Server, register

OLD_PYTHON = REPO / ".venv-sklearn13" / "bin" / "python"
GENERATOR = REPO / "tests" / "compat" / "make_sklearn_models.py"
PROBA_ATOL = 1e-5
REG_RTOL = 1e-4


def _cases() -> list[str]:
    # The case names, read from the generator without importing scikit-learn here.
    import ast
    tree = ast.parse(GENERATOR.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CASES":
            return [elt.elts[0].value for elt in node.value.elts]
    raise AssertionError("CASES not found in " + str(GENERATOR))


CASES = _cases()


@pytest.fixture(scope="module")
def old_models(tmp_path_factory) -> tuple[Path, dict]:
    if not OLD_PYTHON.exists():
        reason = (f"{OLD_PYTHON.relative_to(REPO)} is missing: run scripts/setup-sklearn13-venv.sh "
                  "(or `make deps`) to create the scikit-learn 1.3 venv")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("sklearn13-models")
    r = subprocess.run([str(OLD_PYTHON), str(GENERATOR), str(out)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sklearn"].startswith("1.3."), manifest
    return out, manifest


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("sklearn13-data")
    srv = Server(data, ["--max-body-mb", "64", "--quota-deployments", "10000"]).start()
    yield register(srv.url, "sk13")
    assert srv.stop() == 0, srv.logs()[-4000:]


def _rows(X):
    return [[None if np.isnan(v) else float(v) for v in row] for row in X]


@pytest.mark.parametrize("saver", ["pkl", "joblib"])
@pytest.mark.parametrize("name", CASES)
def test_old_sklearn_file(old_models, client, name, saver):
    out, manifest = old_models
    data = (out / f"{name}.{saver}").read_bytes()
    d = client.deploy(data, name=f"{name}-{saver}", filename=f"model.{saver}")
    assert d["status"] == "active", d.get("error_message")
    assert d["model_metadata"]["framework"] == "sklearn"
    want = np.load(out / f"{name}.npz", allow_pickle=False)
    r = client.predict(d["id"], _rows(want["X"]))
    assert r.status_code == 200, r.text
    body = r.json()
    if manifest["cases"][name] == "classifier":
        got = np.array(body["predictions"])
        assert got.tolist() == want["predictions"].tolist(), (name, got[:10], want["predictions"][:10])
        if "probabilities" in want.files:
            np.testing.assert_allclose(np.array(body["probabilities"]), want["probabilities"],
                                       rtol=0, atol=PROBA_ATOL, err_msg=name)
    else:
        got = np.array(body["predictions"], dtype=np.float64).reshape(want["predictions"].shape)
        np.testing.assert_allclose(got, want["predictions"], rtol=REG_RTOL, atol=1e-9, err_msg=name)


# ---- HistGradientBoosting decides in float64 --------------------------------------------
# scikit-learn's HistGradientBoosting compares float64 inputs with float64 thresholds (after
# scalers and SimpleImputer, which keep float64). The converted graph reads float64 so that
# inputs at a threshold and one double above it go where scikit-learn sends them; these rows
# would split differently if the inputs were rounded to float32.

def _threshold_rows(X, predictors):
    """Rows of X with one feature set to a split threshold t, or to nextafter(t, +inf)."""
    rows = []
    seen = set()
    for per_iter in predictors:
        for p in per_iter:
            for node in p.nodes:
                if node["is_leaf"] or not np.isfinite(node["num_threshold"]):
                    continue
                f, t = int(node["feature_idx"]), float(node["num_threshold"])
                if (f, t) in seen:
                    continue
                seen.add((f, t))
                for v in (t, np.nextafter(t, np.inf)):
                    row = X[len(rows) % len(X)].copy()
                    row[f] = v
                    rows.append(row)
    return np.array(rows)


def _hgb_cases():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.impute import SimpleImputer
    return {
        "hgb_clf_binary": (lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
                           load_breast_cancer),
        "hgb_clf_multi": (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), load_iris),
        "hgb_reg": (lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0), load_diabetes),
        "scaler_hgb_clf": (lambda: make_pipeline(StandardScaler(), HistGradientBoostingClassifier(
            max_iter=30, random_state=0)), load_breast_cancer),
        "imputer_minmax_hgb_reg": (lambda: make_pipeline(SimpleImputer(), MinMaxScaler(),
                                                         HistGradientBoostingRegressor(
                                                             max_iter=30, random_state=0)), load_diabetes),
    }


@pytest.mark.parametrize("name", sorted(_hgb_cases()))
def test_hist_gradient_boosting_float64_splits(client, name):
    import onnxruntime as ort
    make, load = _hgb_cases()[name]
    X, y = load(return_X_y=True)
    model = make().fit(X, y)
    pipeline = hasattr(model, "steps")
    hgb = model[-1] if pipeline else model
    Xt = model[:-1].transform(X) if pipeline else X
    rows = _threshold_rows(Xt, hgb._predictors)
    if pipeline:
        # Back through the scalers: inputs that land on (or within an ulp of) a threshold
        # after scaling. SimpleImputer leaves complete rows as they are.
        for step in reversed(list(model[:-1])):
            if type(step).__name__ != "SimpleImputer":
                rows = step.inverse_transform(rows)
        rows = np.vstack([rows, np.where(np.eye(len(rows[0]))[:5] == 1, np.nan, rows[:5])])
    assert len(rows) > 50
    d = client.deploy(pickle.dumps(model, protocol=5), name=name, filename="model.pkl")
    assert d["status"] == "active", d.get("error_message")
    r = client.predict(d["id"], _rows(rows))
    assert r.status_code == 200, r.text
    body = r.json()
    onx = client.get(f"/api/v1/deployments/{d['id']}/onnx").content
    sess = ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(double)"
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": rows})))
    if hasattr(model, "classes_"):
        want = model.predict(rows).tolist()
        assert body["predictions"] == want
        assert outs["label"].tolist() == want
        np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), rtol=0, atol=1e-6)
        np.testing.assert_allclose(outs["probabilities"], model.predict_proba(rows), rtol=0, atol=1e-6)
    else:
        want = model.predict(rows)
        np.testing.assert_allclose(np.ravel(body["predictions"]), want, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.ravel(outs["variable"]), want, rtol=1e-6, atol=1e-9)
    if not pipeline:
        # The same rows rounded to float32 would not all decide alike: the test has teeth.
        r32 = rows.astype(np.float32).astype(np.float64)
        if hasattr(model, "classes_"):
            assert np.abs(model.predict_proba(r32) - model.predict_proba(rows)).max() > 1e-6
        else:
            assert np.abs(model.predict(r32) - model.predict(rows)).max() > 1e-6


# ---- versions ----------------------------------------------------------------------------

def test_unknown_version_error_names_supported_versions(client):
    import sklearn
    from sklearn.neighbors import NearestCentroid
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    data = pickle.dumps(NearestCentroid().fit(X, y), protocol=4)
    old = sklearn.__version__.encode()
    assert data.count(old) == 1
    fake = b"0.19.1"
    data = data.replace(b"\x8c" + bytes([len(old)]) + old, b"\x8c" + bytes([len(fake)]) + fake)
    d = client.deploy(data, name="old-version", filename="model.pkl")
    assert d["status"] == "failed"
    msg = d.get("error_message") or ""
    assert "NearestCentroid" in msg
    assert "scikit-learn 0.19.1" in msg and "1.3 to 1.7" in msg, msg
