"""The linear-model kernels (ops/linear_simd.cc: per-row scores and the logistic transform,
AVX-512, AVX2 and portable) over odd feature counts and tails, target counts around the
4-wide blocks, and edge values, against numpy in float64. make test runs this file at every
SERVEML_ENGINE_ISA level the machine has."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from test_engine_run import serveml_run


def linear_classifier(w: np.ndarray, b: np.ndarray, post: str):
    targets, f = w.shape
    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=w.astype(np.float32).ravel().tolist(),
        intercepts=b.astype(np.float32).tolist(), classlabels_ints=list(range(targets)),
        post_transform=post, multi_class=1 if targets > 1 else 0)
    graph = helper.make_graph(
        [node], "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", f])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", targets])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ai.onnx.ml", 3)])


def assert_close(ours, x, w, b, post):
    """Within float32 rounding of the sums: each of f products and the bias may be off by
    2^-24 of its magnitude per step (any summation order), plus the logistic's ~1 ulp; the
    logistic's slope is at most 1/4."""
    want = reference_scores(x, w, b, post)
    f = w.shape[1]
    bound = (f + 1) * 2.0 ** -24 * (np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
                                    + np.abs(b))
    tol = (bound if post == "NONE" else 0.25 * bound) + 2.0 ** -23 * np.abs(want) + 1e-7
    err = np.abs(ours.astype(np.float64) - want)
    assert (err <= tol).all(), (err.max(), np.argwhere(err > tol)[:5])


def reference_scores(x, w, b, post):
    s = x.astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float64)
    if post == "LOGISTIC":
        with np.errstate(over="ignore"):
            s = 1.0 / (1.0 + np.exp(-s))
    return s


@pytest.mark.parametrize("f", [1, 3, 7, 8, 9, 15, 16, 17, 33])
@pytest.mark.parametrize("targets", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
def test_linear_scores_match_numpy(tmp_path, f, targets, post):
    rng = np.random.default_rng(f * 100 + targets)
    w = rng.normal(size=(targets, f)).astype(np.float32)
    b = rng.normal(size=targets).astype(np.float32)
    x = rng.normal(size=(37, f)).astype(np.float32)
    x[0] = 0.0
    x[1] = -0.0
    x[2] = 1.0
    # Scores far into both tails of the logistic (saturation, the exp clamp near -87.3).
    x[3] = 200.0 * np.sign(w[0])
    x[4] = -200.0 * np.sign(w[0])
    x[5] = 87.0 / max(1, f) / np.maximum(np.abs(w[0]), 1e-3) * np.sign(w[0])
    x[6] = -x[5]
    proc, out = serveml_run(linear_classifier(w, b, post), [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_close(out["scores"], x, w, b, post)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
def test_nan_rows_give_nan_scores(tmp_path, post):
    rng = np.random.default_rng(7)
    w = rng.normal(size=(5, 9)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    x = rng.normal(size=(20, 9)).astype(np.float32)
    x[3, 8] = np.nan  # in the tail lanes
    x[11, 0] = np.nan
    proc, out = serveml_run(linear_classifier(w, b, post), [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    nan_rows = np.isnan(out["scores"]).all(axis=1)
    assert nan_rows.tolist() == [i in (3, 11) for i in range(20)]
    ok = ~nan_rows
    assert_close(out["scores"][ok], x[ok], w, b, post)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_batch_sizes(tmp_path, n):
    rng = np.random.default_rng(n)
    w = rng.normal(size=(3, 20)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    proc, out = serveml_run(linear_classifier(w, b, "LOGISTIC"), [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_close(out["scores"].reshape(n, 3), x, w, b, "LOGISTIC")
    want = reference_scores(x, w, b, "LOGISTIC")
    if n:
        assert out["label"].tolist() == np.argmax(want, axis=1).tolist()
