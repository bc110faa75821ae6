"""XGBoost and LightGBM models converted to ONNX by onnxmltools, run through `serveml run`
and compared with onnxruntime on the same files.

This checks the engine on the graphs another converter writes (TreeEnsembleClassifier/
Regressor with its own post transforms, base values and casts), independently of ServeML's
own XGBoost/LightGBM importers: random rows, rows sitting exactly on split thresholds, NaN
(the libraries' missing value), +-inf, and batches of 0, 1 and 1000.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from test_engine_run import ort_run, serveml_run

onnxmltools = pytest.importorskip("onnxmltools")
xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: E402

RNG = np.random.default_rng(11)
N_FEATURES = 8


def _data(kind: str):
    x = RNG.standard_normal((600, N_FEATURES)).astype(np.float32)
    x[RNG.random(x.shape) < 0.05] = np.nan  # the libraries learn a default direction
    score = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])
    if kind == "binary":
        y = (score > 0).astype(np.int64)
    elif kind == "multiclass":
        y = np.digitize(score, [-0.7, 0.0, 0.7]).astype(np.int64)
    else:
        y = score.astype(np.float32)
    return x, y


def _thresholds(model: onnx.ModelProto) -> np.ndarray:
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    for a in node.attribute:
        if a.name == "nodes_values":
            return np.array(a.floats, dtype=np.float32)
    return np.zeros(0, np.float32)


def _probe_rows(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Random rows, rows on exact split thresholds and one ulp either side, NaN and +-inf."""
    rows = [x[:200]]
    th = _thresholds(model)
    th = th[np.isfinite(th)]
    if th.size:
        picks = RNG.choice(th, size=(60, N_FEATURES))
        rows += [picks, np.nextafter(picks, np.float32(np.inf)),
                 np.nextafter(picks, np.float32(-np.inf))]
    special = np.tile(x[:1], (6, 1))
    special[0, :] = np.nan
    special[1, :] = np.inf
    special[2, :] = -np.inf
    special[3, ::2] = np.nan
    special[4, 1::2] = np.inf
    special[5, :] = 0.0
    rows.append(special)
    return np.concatenate(rows).astype(np.float32)


def _assert_same(model: onnx.ModelProto, x: np.ndarray, tmp_path):
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    ref = ort_run(model, [x])
    assert set(ours) == set(ref)
    for name, expected in ref.items():
        expected = np.asarray(expected)
        got = ours[name]
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        if expected.dtype.kind in "iu":
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def _xgb(kind):
    x, y = _data(kind)
    params = dict(n_estimators=40, max_depth=5, learning_rate=0.3, random_state=0)
    est = (xgboost.XGBRegressor(**params) if kind == "regression"
           else xgboost.XGBClassifier(**params))
    est.fit(x, y)
    model = onnxmltools.convert_xgboost(
        est, initial_types=[("X", FloatTensorType([None, N_FEATURES]))], target_opset=15)
    return model, x


def _lgbm(kind):
    x, y = _data(kind)
    params = dict(n_estimators=40, num_leaves=15, learning_rate=0.2, random_state=0,
                  verbose=-1)
    est = (lightgbm.LGBMRegressor(**params) if kind == "regression"
           else lightgbm.LGBMClassifier(**params))
    est.fit(x, y)
    kwargs = {} if kind == "regression" else {"zipmap": False}
    model = onnxmltools.convert_lightgbm(
        est, initial_types=[("X", FloatTensorType([None, N_FEATURES]))], target_opset=15,
        **kwargs)
    return model, x


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_converted_boosting_model_matches_onnxruntime(tmp_path, library, kind):
    model, x = (_xgb if library == "xgboost" else _lgbm)(kind)
    _assert_same(model, _probe_rows(model, x), tmp_path / "probe")
    _assert_same(model, x[:1], tmp_path / "one")
    big = np.tile(x, (2, 1))[:1000]
    _assert_same(model, big, tmp_path / "thousand")
    _assert_same(model, np.zeros((0, N_FEATURES), np.float32), tmp_path / "empty")
