"""The engine's integer GEMM (src/engine/ops/qlinear.cc) through MatMulInteger and QLinearMatMul,
compared exactly with numpy's int64 matmul of the zero-point-subtracted operands, and through
ConvInteger and QLinearConv, compared with an int64 correlation of the zero-point-padded input.
Those exact references are what the tests assert. onnxruntime, where it supports the types, is a
second oracle asserted only where its kernels are exact on this CPU: without VNNI its u8 x s8
kernels saturate int16 pair sums (see int_oracles.py), and there the difference is recorded
instead.

On AVX-512 VNNI machines the GEMM multiplies the raw 8-bit values (int8 A mapped to uint8, uint8 B
to int8) in 8-row x 32-column tiles over k in steps of 4 and applies the zero points afterwards
from row and column sums, so the cases cover: k not a multiple of 4, n not a multiple of 32, m
not a multiple of 8 and m = 1, per-row A and per-column B zero points, every int8/uint8
combination, operands at their extremes, k large enough for big intermediate sums, results that
overflow int32 (which wrap modulo 2^32), and B both constant (packed at load) and a graph input
(packed per run).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from int_oracles import check_onnxruntime, gemm_saturation
from test_engine_run import ort_run, serveml_run

RNG = np.random.default_rng(4242)
# On the ASan/UBSan binary (about 10x slower) the conv grid keeps per-channel weight zero points
# only: the scalar case is the same code with a zero stride.
SANITIZED = os.environ.get("SERVEML_SANITIZED") == "1"


def _tensor_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _model(node, inputs, output_type, inits, opset) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", output_type, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _operands(operands: dict, zero_points: dict, second_const: bool):
    """Graph inputs and initializers for (left, right) operands and their zero points: the left
    operand is a graph input, the right one an initializer when `second_const` (else a second
    graph input), the zero points initializers."""
    (left, a), (right, b) = operands.items()
    inputs = [helper.make_tensor_value_info(left, _tensor_type(a.dtype), list(a.shape))]
    inits = [numpy_helper.from_array(v, name) for name, v in zero_points.items()]
    if second_const:
        inits.append(numpy_helper.from_array(b, right))
    else:
        inputs.append(helper.make_tensor_value_info(right, _tensor_type(b.dtype), list(b.shape)))
    return inputs, inits


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
    inputs, inits = _operands({"a": a, "b": b}, {"za": za, "zb": zb}, b_const)
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
def test_matmul_integer_extremes_large_k(tmp_path, record_property, a_type, b_type, fills,
                                         b_const):
    m, k, n = 9, 4096, 35
    a, b = _values((m, k), a_type, fills[0]), _values((k, n), b_type, fills[2])
    za, zb = _values((m,), a_type, fills[1]), _values((n,), b_type, fills[3])
    _, got = _run_matmul_integer(tmp_path, a, b, za, zb, b_const)
    expected = _exact(a, za[:, None], b, zb)
    np.testing.assert_array_equal(got, expected)
    if fills[0] != "random" and fills[0] != fills[1]:
        assert np.abs(expected).max() >= 255 * 255 * k // 2  # the sums really are big
    if a_type == np.uint8 and b_const:
        # onnxruntime too (uint8 A with a scalar zero point only; za is uniform here), asserted
        # where its kernels are exact on this CPU
        model, got = _run_matmul_integer(tmp_path / "ort", a, b, za[0], zb, True)
        np.testing.assert_array_equal(got, expected)
        check_onnxruntime("MatMulInteger", got, ort_run(model, [a])["y"], gemm_saturation(a, b),
                          record_property=record_property)


def _pair_saturating_matmul(a, za, b, zb) -> np.ndarray:
    """A model of a u8 x s8 kernel without VNNI (vpmaddubsw): the raw products of adjacent k
    pairs are summed into an int16 with saturation, then accumulated in 32 bits; the zero points
    are applied afterwards from row and column sums."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    k = a.shape[1] + a.shape[1] % 2
    a64 = np.pad(a64, [(0, 0), (0, k - a.shape[1])])
    b64 = np.pad(b64, [(0, k - b.shape[0]), (0, 0)])
    prods = a64[:, :, None] * b64[None, :, :]
    pairs = np.clip(prods[:, 0::2] + prods[:, 1::2], -32768, 32767).sum(axis=1)
    return (pairs - zb * a64.sum(axis=1)[:, None] - za * b64.sum(axis=0)[None, :]
            + k * za * zb)


def test_onnxruntime_saturation_rule(monkeypatch):
    """The rule in int_oracles.py that decides where onnxruntime is asserted: u8 x u8 and VNNI
    are exact; u8 x s8 without VNNI only while 2 * max(u8) * max|s8| <= 32767, which is where a
    pair-saturating kernel still gives the exact answer."""
    import int_oracles

    u8 = np.full((2, 4096), 255, np.uint8)
    s8 = np.full((4096, 3), 127, np.int8)
    small_u8, small_s8 = np.full((2, 64), 128, np.uint8), np.full((64, 3), 127, np.int8)
    monkeypatch.delenv(int_oracles.ASSUME_NO_VNNI_ENV, raising=False)
    monkeypatch.setattr(int_oracles, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert int_oracles.has_vnni()
    assert int_oracles.gemm_saturation(u8, s8) is None
    monkeypatch.setenv(int_oracles.ASSUME_NO_VNNI_ENV, "1")
    assert not int_oracles.has_vnni()
    monkeypatch.delenv(int_oracles.ASSUME_NO_VNNI_ENV)
    monkeypatch.setattr(int_oracles, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not int_oracles.has_vnni()
    assert int_oracles.gemm_saturation(u8, u8.T.copy()) is None
    assert int_oracles.gemm_saturation(small_u8, small_s8) is None  # 2 * 128 * 127 = 32512
    assert "64770" in int_oracles.gemm_saturation(u8, s8)  # 2 * 255 * 127
    assert int_oracles.gemm_saturation(s8.T.copy(), s8) is not None  # no bound claimed
    # inside the bound the pair-saturating kernel is exact; outside it is not: a = 255, za = 0,
    # b = 127, zb = -128, k = 4096 gives 255 * 255 * 4096 = 266,342,400 exactly and 200,800,256
    # with saturated pair sums
    za, zb = np.int64(3), np.int64(-5)
    np.testing.assert_array_equal(_pair_saturating_matmul(small_u8, za, small_s8, zb),
                                  _exact(small_u8, za, small_s8, zb))
    assert _exact(u8, np.uint8(0), s8, np.int8(-128))[0, 0] == 266_342_400
    assert _pair_saturating_matmul(u8, 0, s8, -128)[0, 0] == 200_800_256


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


# ---------------------------------------------------------------------------------------------
# ConvInteger and QLinearConv: one GEMM per image and group, weights [mg, kdim] as the left
# operand (per-output-channel zero points = per row) and the im2col matrix as the right one. On
# VNNI machines im2col takes the raw input with padded taps set to the input zero point, and the
# zero-point terms come from sums over that padded matrix, so the cases cover nonzero input zero
# points with explicit and SAME padding, strides, dilations, groups (depthwise too), 1-D and 2-D,
# channel counts and output sizes that are not multiples of 4/8/32, batch > 1, weights both
# constant (packed at load) and a graph input, and operands at their extremes.


def _same_pads(in_sizes, kernel, strides, dilations, auto_pad):
    begin, end = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return begin + end


def _conv_exact(x, zx, w, zw, strides, pads, dilations, group) -> np.ndarray:
    """Correlation of (x - zx), padded with 0 (x padded with zx), by (w - zw[m]) in int64,
    wrapped to int32."""
    nd = x.ndim - 2
    xs = np.pad(x.astype(np.int64) - np.int64(zx),
                [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    wz = w.astype(np.int64) - np.asarray(zw, np.int64).reshape((-1,) + (1,) * (nd + 1))
    kshape = w.shape[2:]
    out = [(xs.shape[2 + i] - dilations[i] * (kshape[i] - 1) - 1) // strides[i] + 1
           for i in range(nd)]
    n, c, m = x.shape[0], x.shape[1], w.shape[0]
    cg, mg = c // group, m // group
    y = np.zeros((n, m, *out), np.int64)
    for tap in np.ndindex(*kshape):
        sl = tuple(slice(tap[i] * dilations[i],
                         tap[i] * dilations[i] + strides[i] * (out[i] - 1) + 1, strides[i])
                   for i in range(nd))
        patch = xs[(slice(None), slice(None)) + sl]
        for g in range(group):
            wt = wz[(slice(g * mg, (g + 1) * mg), slice(None)) + tap]
            y[:, g * mg:(g + 1) * mg] += np.einsum("nc...,mc->nm...",
                                                   patch[:, g * cg:(g + 1) * cg], wt)
    return y.astype(np.uint32).view(np.int32)


# (x shape, w shape, attributes): group from the attributes (default 1).
CONV_CASES = {
    "2d_3x3_pad1": ((1, 5, 9, 11), (7, 5, 3, 3), {"pads": [1, 1, 1, 1]}),
    "2d_64ch_70out": ((1, 64, 13, 13), (70, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
    "2d_batch3_stride2_asym_pads": ((3, 6, 10, 9), (9, 6, 3, 2),
                                    {"pads": [2, 0, 1, 3], "strides": [2, 3]}),
    "2d_dilation2_pad2": ((2, 3, 12, 12), (5, 3, 3, 3),
                          {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    "2d_same_upper_stride2": ((1, 4, 9, 10), (6, 4, 3, 3),
                              {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "2d_same_lower": ((2, 3, 7, 8), (5, 3, 4, 2), {"auto_pad": "SAME_LOWER"}),
    "2d_groups3": ((2, 9, 8, 7), (12, 3, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    "2d_depthwise": ((2, 13, 9, 9), (13, 1, 3, 3), {"group": 13, "pads": [1, 1, 1, 1]}),
    "2d_depthwise_mult2_stride2": ((1, 5, 11, 10), (10, 1, 5, 5),
                                   {"group": 5, "pads": [2, 2, 2, 2], "strides": [2, 2]}),
    "2d_1x1": ((2, 33, 6, 7), (17, 33, 1, 1), {}),
    "2d_pad_beyond_kernel": ((1, 2, 3, 4), (3, 2, 2, 2), {"pads": [3, 2, 3, 2]}),
    "1d_pad_stride": ((2, 7, 41), (11, 7, 5), {"pads": [3, 1], "strides": [2]}),
    "1d_same_dilated_groups": ((1, 6, 50), (4, 3, 3),
                               {"auto_pad": "SAME_UPPER", "dilations": [3], "group": 2}),
    "3d_pad": ((1, 3, 5, 6, 7), (4, 3, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0]}),
    "3d_one_output_plane": ((2, 2, 3, 5, 6), (3, 2, 3, 3, 3), {"pads": [0, 1, 1, 0, 1, 1]}),
    "3d_one_output_plane_padded": ((1, 4, 1, 6, 5), (5, 4, 3, 3, 3),
                                   {"pads": [1, 1, 1, 1, 1, 1]}),
    # more output pixels than one chunk of the VNNI path (512 KiB of im2col), chunk boundaries
    # inside output rows
    "2d_multi_chunk": ((1, 300, 20, 23), (5, 300, 3, 3), {"pads": [1, 1, 1, 1]}),
    "2d_multi_chunk_stride2": ((1, 256, 41, 45), (6, 256, 3, 3),
                               {"pads": [1, 0, 2, 1], "strides": [2, 2]}),
    "2d_multi_chunk_valid": ((1, 300, 20, 23), (5, 300, 3, 3), {}),
    "1d_multi_chunk": ((2, 64, 2000), (3, 64, 7), {"pads": [6, 6], "dilations": [2]}),
    "1d_multi_chunk_asym": ((1, 64, 1999), (3, 64, 7), {"pads": [3, 2], "dilations": [2]}),
}


def _conv_attrs(x, w, attrs):
    nd = x.ndim - 2
    strides = attrs.get("strides", [1] * nd)
    dilations = attrs.get("dilations", [1] * nd)
    if "auto_pad" in attrs:
        pads = _same_pads(x.shape[2:], w.shape[2:], strides, dilations, attrs["auto_pad"])
    else:
        pads = attrs.get("pads", [0] * (2 * nd))
    return strides, pads, dilations, attrs.get("group", 1)


def _run_conv_integer(tmp_path, x, zx, w, zw, attrs, w_const):
    inputs, inits = _operands({"x": x, "w": w}, {"zx": zx, "zw": zw}, w_const)
    node = helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"],
                            kernel_shape=list(w.shape[2:]), **attrs)
    model = _model(node, inputs, TensorProto.INT32, inits, 10)
    proc, ours = serveml_run(model, [x] if w_const else [x, w], tmp_path)
    assert proc.returncode == 0, proc.stderr
    return model, ours["y"]


@pytest.mark.parametrize("x_type", [np.uint8, np.int8])
@pytest.mark.parametrize("w_type", [np.uint8, np.int8])
@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("per_channel", [True] if SANITIZED else [False, True],
                         ids=["per_channel_w_zp"] if SANITIZED else ["scalar_w_zp",
                                                                     "per_channel_w_zp"])
@pytest.mark.parametrize("w_const", [True, False], ids=["w_const", "w_input"])
def test_conv_integer_matches_exact(tmp_path, x_type, w_type, case, per_channel, w_const):
    x_shape, w_shape, attrs = CONV_CASES[case]
    x, w = _values(x_shape, x_type, "random"), _values(w_shape, w_type, "random")
    zx = _values((), x_type, "random")
    zw = _values((w_shape[0],) if per_channel else (), w_type, "random")
    expected = _conv_exact(x, zx, w, zw, *_conv_attrs(x, w, attrs))
    _, got = _run_conv_integer(tmp_path, x, zx, w, zw, attrs, w_const)
    assert got.dtype == np.int32
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", ["2d_3x3_pad1", "2d_groups3", "2d_depthwise", "1d_pad_stride",
                                  "2d_same_upper_stride2"])
@pytest.mark.parametrize("w_const", [True, False], ids=["w_const", "w_input"])
def test_conv_integer_uint8_matches_onnxruntime(tmp_path, record_property, case, w_const):
    x_shape, w_shape, attrs = CONV_CASES[case]
    x, w = _values(x_shape, np.uint8, "random"), _values(w_shape, np.uint8, "random")
    zx, zw = np.array(131, np.uint8), np.array(7, np.uint8)
    model, got = _run_conv_integer(tmp_path, x, zx, w, zw, attrs, w_const)
    np.testing.assert_array_equal(got, _conv_exact(x, zx, w, zw, *_conv_attrs(x, w, attrs)))
    # u8 x u8: onnxruntime's kernels are exact on every x86 CPU (int_oracles.py)
    check_onnxruntime("ConvInteger", got, ort_run(model, [x] if w_const else [x, w])["y"],
                      gemm_saturation(x, w), record_property=record_property)


@pytest.mark.parametrize("x_type", [np.uint8, np.int8])
@pytest.mark.parametrize("w_type", [np.uint8, np.int8])
@pytest.mark.parametrize("fills", EXTREMES, ids=["-".join(f) for f in EXTREMES])
def test_conv_integer_extremes_padded(tmp_path, x_type, w_type, fills):
    """Every (x - zx) and (w - zw) at +-255 over kdim = 300 * 9 with padding: the padded taps
    must contribute exactly 0 while their raw values (the zero point) are extreme."""
    x_shape, w_shape = (1, 300, 6, 5), (11, 300, 3, 3)
    attrs = {"pads": [1, 2, 1, 0], "strides": [1, 2]}
    x, w = _values(x_shape, x_type, fills[0]), _values(w_shape, w_type, fills[2])
    zx = _values((), x_type, fills[1])
    zw = _values((w_shape[0],), w_type, fills[3])
    expected = _conv_exact(x, zx, w, zw, *_conv_attrs(x, w, attrs))
    _, got = _run_conv_integer(tmp_path, x, zx, w, zw, attrs, True)
    np.testing.assert_array_equal(got, expected)
    if fills[0] != "random" and fills[0] != fills[1]:
        assert np.abs(expected).max() >= 255 * 255 * 300 * 4


@pytest.mark.parametrize("x_type", [np.uint8, np.int8])
@pytest.mark.parametrize("w_type", [np.uint8, np.int8])
@pytest.mark.parametrize("case", ["2d_64ch_70out", "2d_batch3_stride2_asym_pads",
                                  "2d_depthwise_mult2_stride2", "2d_groups3", "1d_pad_stride",
                                  "2d_same_lower", "2d_multi_chunk_stride2"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["scalar_w", "per_channel_w"])
@pytest.mark.parametrize("y_scale", [0.4, 0.01], ids=["in_range", "saturating"])
def test_qlinear_conv_matches_exact_requantization(tmp_path, record_property, x_type, w_type,
                                                   case, per_channel, y_scale):
    x_shape, w_shape, attrs = CONV_CASES[case]
    m = w_shape[0]
    x, w = _values(x_shape, x_type, "random"), _values(w_shape, w_type, "random")
    zx = _values((), x_type, "random")
    zw = _values((m,) if per_channel else (), w_type, "random")
    sx = np.array(0.05, np.float32)
    sw = RNG.uniform(0.001, 0.01, size=(m,) if per_channel else ()).astype(np.float32)
    kdim = int(np.prod(w_shape[1:]))
    sy = np.array(y_scale * np.sqrt(kdim), np.float32)
    zy = np.array(3, x_type)
    bias = RNG.integers(-20000, 20000, size=(m,)).astype(np.int32)
    inits = [numpy_helper.from_array(v, name) for v, name in
             [(sx, "sx"), (zx, "zx"), (w, "w"), (sw, "sw"), (zw, "zw"), (sy, "sy"), (zy, "zy"),
              (bias, "bias")]]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"],
                            ["y"], kernel_shape=list(w_shape[2:]), **attrs)
    model = _model(node, [helper.make_tensor_value_info("x", _tensor_type(x_type), list(x_shape))],
                   _tensor_type(x_type), inits, 10)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    acc = _conv_exact(x, zx, w, zw, *_conv_attrs(x, w, attrs))
    acc = (acc.astype(np.int64) + bias.reshape((-1,) + (1,) * (x.ndim - 2))).astype(
        np.uint32).view(np.int32)
    mult = ((sx * sw).astype(np.float32) / sy).astype(np.float32)
    mult = mult.reshape((-1,) + (1,) * (x.ndim - 2)) if per_channel else mult
    expected = _requantize(acc, mult, zy, x_type)
    assert ours["y"].dtype == expected.dtype
    np.testing.assert_array_equal(ours["y"], expected)
    if x_type == np.uint8 and w_type == np.int8 and not per_channel:
        check_onnxruntime("QLinearConv", ours["y"], ort_run(model, [x])["y"],
                          gemm_saturation(x, w), record_property=record_property)
