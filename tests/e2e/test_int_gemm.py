"""The engine's integer GEMM (src/engine/ops/qlinear.cc) through MatMulInteger and QLinearMatMul,
compared exactly with numpy's int64 matmul of the zero-point-subtracted operands.

On AVX-512 VNNI machines the GEMM multiplies the raw 8-bit values (int8 A mapped to uint8, uint8 B
to int8) in 8-row x 32-column tiles over k in steps of 4 and applies the zero points afterwards
from row and column sums, so the cases cover: k not a multiple of 4, n not a multiple of 32, m
not a multiple of 8 and m = 1, per-row A and per-column B zero points, every int8/uint8
combination, operands at their extremes, k large enough for big intermediate sums, results that
overflow int32 (which wrap modulo 2^32), and B both constant (packed at load) and a graph input
(packed per run).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_engine_run import ort_run, serveml_run

RNG = np.random.default_rng(4242)


def _tensor_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _model(node, inputs, output_type, inits, opset) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", output_type, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _values(shape, dtype, fill: str) -> np.ndarray:
    info = np.iinfo(dtype)
    if fill == "max":
        return np.full(shape, info.max, dtype)
    if fill == "min":
        return np.full(shape, info.min, dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _exact(a, za, b, zb) -> np.ndarray:
    """(A - za) @ (B - zb) in int64, wrapped to int32 like the engine's int32 accumulation."""
    acc = np.matmul(a.astype(np.int64) - za.astype(np.int64), b.astype(np.int64) - zb.astype(
        np.int64))
    return acc.astype(np.uint32).view(np.int32) if acc.ndim else acc.astype(np.int32)


def _matmul_integer(a, b, za, zb, b_const: bool) -> onnx.ModelProto:
    """MatMulInteger(a, b, za, zb) with A a graph input, B an initializer when `b_const` (else a
    second graph input) and both zero points initializers."""
    inputs = [helper.make_tensor_value_info("a", _tensor_type(a.dtype), list(a.shape))]
    inits = [numpy_helper.from_array(za, "za"), numpy_helper.from_array(zb, "zb")]
    if b_const:
        inits.append(numpy_helper.from_array(b, "b"))
    else:
        inputs.append(helper.make_tensor_value_info("b", _tensor_type(b.dtype), list(b.shape)))
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
    return _model(node, inputs, TensorProto.INT32, inits, 10)


def _run_matmul_integer(tmp_path, a, b, za, zb, b_const):
    model = _matmul_integer(a, b, za, zb, b_const)
    proc, ours = serveml_run(model, [a] if b_const else [a, b], tmp_path)
    assert proc.returncode == 0, proc.stderr
    return model, ours["y"]


SHAPES = [(1, 1, 1), (1, 5, 33), (1, 64, 32), (3, 7, 31), (8, 4, 32), (9, 13, 65), (17, 130, 70),
          (24, 256, 96), (2, 3, 1), (40, 33, 17)]


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("m,k,n", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
@pytest.mark.parametrize("b_const", [True, False], ids=["b_const", "b_input"])
def test_matmul_integer_per_row_and_column_zero_points(tmp_path, a_type, b_type, m, k, n,
                                                       b_const):
    a, b = _values((m, k), a_type, "random"), _values((k, n), b_type, "random")
    za, zb = _values((m,), a_type, "random"), _values((n,), b_type, "random")
    _, got = _run_matmul_integer(tmp_path, a, b, za, zb, b_const)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _exact(a, za[:, None], b, zb))


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_const", [True, False], ids=["b_const", "b_input"])
def test_matmul_integer_scalar_zero_points_batched(tmp_path, a_type, b_type, b_const):
    """Broadcast batches of A over one B; scalar zero points."""
    a, b = _values((2, 3, 11, 37), a_type, "random"), _values((37, 45), b_type, "random")
    za, zb = _values((), a_type, "random"), _values((), b_type, "random")
    _, got = _run_matmul_integer(tmp_path, a, b, za, zb, b_const)
    np.testing.assert_array_equal(got, _exact(a, za, b, zb))


# (A fill, A zero point fill, B fill, B zero point fill): every operand at an extreme, so each
# (a - za) and (b - zb) is +-255 (or 0) and sums over k = 4096 reach +-2.7e8; with a = za the
# result is 0 while the raw products and the zero-point corrections are large and cancel.
EXTREMES = [("max", "min", "max", "min"), ("min", "max", "max", "min"),
            ("max", "min", "min", "max"), ("min", "max", "min", "max"),
            ("max", "max", "min", "min"), ("random", "min", "random", "max")]


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("fills", EXTREMES, ids=["-".join(f) for f in EXTREMES])
@pytest.mark.parametrize("b_const", [True, False], ids=["b_const", "b_input"])
def test_matmul_integer_extremes_large_k(tmp_path, a_type, b_type, fills, b_const):
    m, k, n = 9, 4096, 35
    a, b = _values((m, k), a_type, fills[0]), _values((k, n), b_type, fills[2])
    za, zb = _values((m,), a_type, fills[1]), _values((n,), b_type, fills[3])
    _, got = _run_matmul_integer(tmp_path, a, b, za, zb, b_const)
    expected = _exact(a, za[:, None], b, zb)
    np.testing.assert_array_equal(got, expected)
    if fills[0] != "random" and fills[0] != fills[1]:
        assert np.abs(expected).max() >= 255 * 255 * k // 2  # the sums really are big
    if a_type == np.uint8 and b_const:
        # onnxruntime too (uint8 A with a scalar zero point only; za is uniform here)
        model, got = _run_matmul_integer(tmp_path / "ort", a, b, za[0], zb, True)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got, ort_run(model, [a])["y"])


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
def test_matmul_integer_int32_overflow_wraps(tmp_path, a_type, b_type):
    """k = 40000 at the extremes: 255 * 255 * k exceeds int32; the result wraps modulo 2^32."""
    m, k, n = 3, 40000, 19
    a, b = _values((m, k), a_type, "max"), _values((k, n), b_type, "min")
    za, zb = _values((m,), a_type, "min"), _values((n,), b_type, "max")
    a[1] = _values((k,), a_type, "random")
    _, got = _run_matmul_integer(tmp_path, a, b, za, zb, True)
    np.testing.assert_array_equal(got, _exact(a, za[:, None], b, zb))


def _requantize(acc: np.ndarray, mult: np.ndarray, zy, out_type) -> np.ndarray:
    """float32(acc) * mult rounded half to even, plus the output zero point, saturated."""
    info = np.iinfo(out_type)
    v = np.rint(acc.astype(np.float32) * mult) + np.int64(zy)
    return np.clip(v, info.min, info.max).astype(out_type)


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("m,k,n", [(1, 3, 5), (7, 33, 70), (16, 300, 64), (5, 4096, 33)])
@pytest.mark.parametrize("per_column", [False, True], ids=["scalar_b", "per_column_b"])
@pytest.mark.parametrize("y_scale", [0.4, 0.01], ids=["in_range", "saturating"])
def test_qlinear_matmul_matches_exact_requantization(tmp_path, a_type, b_type, m, k, n,
                                                     per_column, y_scale):
    a, b = _values((m, k), a_type, "random"), _values((k, n), b_type, "random")
    za = _values((), a_type, "random")
    zb = _values((n,) if per_column else (), b_type, "random")
    sa = np.array(0.05, np.float32)
    sb = RNG.uniform(0.001, 0.01, size=(n,) if per_column else ()).astype(np.float32)
    sy = np.array(y_scale * np.sqrt(k), np.float32)  # 0.01: many outputs saturate
    zy = np.array(3, a_type)
    inits = [numpy_helper.from_array(x, name) for x, name in
             [(sa, "sa"), (za, "za"), (b, "b"), (sb, "sb"), (zb, "zb"), (sy, "sy"), (zy, "zy")]]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    model = _model(node, [helper.make_tensor_value_info("a", _tensor_type(a_type), [m, k])],
                   _tensor_type(a_type), inits, 21)
    proc, ours = serveml_run(model, [a], tmp_path)
    assert proc.returncode == 0, proc.stderr
    mult = ((sa * sb).astype(np.float32) / sy).astype(np.float32)
    expected = _requantize(_exact(a, za, b, zb), mult, zy, a_type)
    assert ours["y"].dtype == expected.dtype
    np.testing.assert_array_equal(ours["y"], expected)
    info = np.iinfo(a_type)
    if y_scale < 0.1 and k > 3:
        assert np.isin(expected, [info.min, info.max]).mean() > 0.25
