"""Quantized ONNX models on the engine (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv), against the ONNX reference evaluator
(exact integer arithmetic) and, where its kernels are exact on this CPU, onnxruntime.

A float MLP and a small CNN built with onnx.helper are quantized with
onnxruntime.quantization (dynamic; static in QDQ and in QOperator format) and run on random
inputs. Every integer value the quantized graph computes is also exposed as a graph output and
compared exactly; float outputs are compared with a tolerance (see `_compare`). Without VNNI,
onnxruntime's u8 x s8 kernels saturate int16 pair sums (see int_oracles.py); there its answer is
recorded, not asserted.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference.op_run import OpRun

from int_oracles import check_onnxruntime, graph_saturation
from test_engine_run import ort_run, serveml_run

ort = pytest.importorskip("onnxruntime")
quant = pytest.importorskip("onnxruntime.quantization")

RNG = np.random.default_rng(2024)
OPSET = 13


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr, name)


def mlp_model(n_in=16, hidden=32, n_out=8) -> onnx.ModelProto:
    w1 = RNG.standard_normal((n_in, hidden)).astype(np.float32) * 0.3
    b1 = RNG.standard_normal(hidden).astype(np.float32) * 0.1
    w2 = RNG.standard_normal((hidden, n_out)).astype(np.float32) * 0.3
    b2 = RNG.standard_normal(n_out).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def cnn_model() -> onnx.ModelProto:
    w1 = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b1 = RNG.standard_normal(8).astype(np.float32) * 0.1
    w2 = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32) * 0.2  # group 2
    b2 = RNG.standard_normal(6).astype(np.float32) * 0.1
    wf = RNG.standard_normal((6 * 4 * 4, 5)).astype(np.float32) * 0.2
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1],
                         group=2),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Reshape", ["r2", "flat_shape"], ["f"]),
        helper.make_node("MatMul", ["f", "wf"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2), _init("wf", wf),
         _init("flat_shape", np.array([-1, 6 * 4 * 4], np.int64))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


MODELS = {"mlp": (mlp_model, (16,)), "cnn": (cnn_model, (3, 8, 8))}


class _Reader(quant.CalibrationDataReader):
    def __init__(self, input_shape, n=16):
        rng = np.random.default_rng(7)
        self._batches = iter(
            [{"x": rng.standard_normal((2, *input_shape)).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self._batches, None)


def _quantize(kind: str, mode: str, tmp) -> onnx.ModelProto:
    build, shape = MODELS[kind]
    src, dst = tmp / f"{kind}_float.onnx", tmp / f"{kind}_{mode}.onnx"
    onnx.save(build(), str(src))
    ops = ["MatMul", "Conv"]
    if mode == "dynamic":
        # onnxruntime's ConvInteger takes uint8 weights only
        weight_type = quant.QuantType.QUInt8 if kind == "cnn" else quant.QuantType.QInt8
        quant.quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops,
                               weight_type=weight_type)
    else:
        fmt = quant.QuantFormat.QDQ if mode == "qdq" else quant.QuantFormat.QOperator
        quant.quantize_static(str(src), str(dst), _Reader(shape), quant_format=fmt,
                              op_types_to_quantize=ops, activation_type=quant.QuantType.QUInt8,
                              weight_type=quant.QuantType.QInt8,
                              per_channel=(kind == "cnn"))
    return onnx.load(str(dst))


def _expose_integer_values(model: onnx.ModelProto) -> onnx.ModelProto:
    """Adds every integer-typed node output (quantized activations, int32 accumulators) to the
    graph outputs, so they can be compared exactly."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    have = {o.name for o in model.graph.output}
    ints = {TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in have and types.get(name) in ints:
                model.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
                have.add(name)
    return model


def _output_scale(model: onnx.ModelProto, output: str) -> float:
    """The scale of the last DequantizeLinear on the way to `output` (through float operators
    such as a bias Add), i.e. one quantization step of the value the output is made from."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer[output]
    while node.op_type != "DequantizeLinear":
        node = producer[next(i for i in node.input if i in producer)]
    return float(np.max(inits[node.input[1]]))


def _compare(ours: dict, ref: dict, float_tol: float, int_tol: int = 0):
    assert set(ours) == set(ref)
    for name, expected in ref.items():
        got = ours[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        if np.issubdtype(expected.dtype, np.integer):
            diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
            assert diff.max(initial=0) <= int_tol, f"{name}: {np.count_nonzero(diff)} differ"
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=float_tol, err_msg=name)


def _op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


class QLinearMatMul(OpRun):
    """Replaces the reference evaluator's QLinearMatMul (it picks operators by class name):
    QLinearMatMul as the installed reference evaluator computes it (int32 accumulation,
    requantization by a_scale * b_scale / y_scale rounded half to even), but saturating the result
    to the output type as the operator's definition says (y = saturate(...)): onnx 1.20's
    reference casts without clipping, so out-of-range values wrap (onnx/onnx#7835)."""

    op_domain = ""

    def _run(self, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
        acc = np.matmul(a.astype(np.int64) - a_zero_point.astype(np.int64),
                        b.astype(np.int64) - b_zero_point.astype(np.int64))
        acc = acc.astype(np.uint32).view(np.int32) if acc.ndim else acc.astype(np.int32)
        y = np.rint(acc * (a_scale * b_scale / y_scale)) + y_zero_point
        info = np.iinfo(y_zero_point.dtype)
        return (np.clip(y, info.min, info.max).astype(y_zero_point.dtype),)


def _reference_run(model: onnx.ModelProto, x: np.ndarray) -> dict:
    """The graph on ONNX's reference evaluator: {output name: value}. The quantizer writes opset
    13, and the installed evaluator implements DequantizeLinear from opset 19 only, so the graph
    is first converted to opset 21 with onnx's version converter (for these uint8/int8
    tensors, QuantizeLinear/DequantizeLinear 21 compute what 13 does; the other operators here
    are unchanged). Integer operators are evaluated exactly (int32 accumulation of the
    zero-point-subtracted operands); QLinearMatMul with the saturating `QLinearMatMul` above."""
    from onnx import version_converter
    from onnx.reference import ReferenceEvaluator

    converted = version_converter.convert_version(model, 21)
    evaluator = ReferenceEvaluator(converted, new_ops=[QLinearMatMul])
    names = [o.name for o in converted.graph.output]
    return dict(zip(names, evaluator.run(names, {"x": x})))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("mode", ["dynamic", "qdq", "qoperator"])
@pytest.mark.parametrize("batch", [1, 5])
def test_quantized_model_matches_reference(tmp_path, record_property, kind, mode, batch):
    model = _quantize(kind, mode, tmp_path)
    ops = _op_types(model)
    if mode == "dynamic":
        assert {"DynamicQuantizeLinear", "ConvInteger" if kind == "cnn" else "MatMulInteger"} <= ops
    elif mode == "qdq":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert {"QuantizeLinear", "DequantizeLinear", "QLinearMatMul"} <= ops
        if kind == "cnn":
            assert "QLinearConv" in ops
    model = _expose_integer_values(model)
    shape = MODELS[kind][1]
    x = RNG.standard_normal((batch, *shape)).astype(np.float32)
    proc, ours = serveml_run(model, [x], tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    # Dynamic and QOperator graphs compute every integer value exactly: integer operators, and
    # QuantizeLinear/requantization rounding half to even from the same float32 values (the
    # reference multiplies the int32 accumulator by the requantization scale in float64, the
    # engine in float32; no value here lies close enough to a rounding boundary for that to
    # matter). Every float output comes from integers by the same float32 operations (Cast, Mul,
    # Add; DequantizeLinear), so they agree to rounding.
    float_tol, int_tol = 1e-5, 0
    if mode == "qdq":
        # Between DequantizeLinear and QuantizeLinear the engine runs float Conv/MatMul, and the
        # other side either does too (summing in another order) or, as onnxruntime does, fuses
        # the group into its integer kernels. Either way the float value before QuantizeLinear
        # may differ in its last bits, so a value on a rounding boundary can land one step away:
        # quantized values may differ by 1 and the final output by one quantization step of the
        # last DequantizeLinear. (In practice they agree exactly; the tolerance keeps the test
        # from depending on it.)
        float_tol, int_tol = 1.0001 * _output_scale(model, "y"), 1
    reference = _reference_run(model, x)
    _compare(ours, reference, float_tol, int_tol)
    # onnxruntime as a second oracle, asserted where none of its integer kernels can saturate on
    # this CPU (operand ranges from the reference run's integer values)
    check_onnxruntime(f"{kind} {mode} model", ours, ort_run(model, [x]),
                      graph_saturation(model, reference),
                      compare=lambda got, ref: _compare(got, ref, float_tol, int_tol),
                      record_property=record_property)


def _single_node_model(node, inputs, outputs, inits, opset):
    graph = helper.make_graph([node], "q", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


@pytest.mark.parametrize("dtype,onnx_type", [(np.uint8, TensorProto.UINT8),
                                             (np.int8, TensorProto.INT8),
                                             (np.int16, TensorProto.INT16),
                                             (np.int32, TensorProto.INT32)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_dequantize_per_axis_matches_reference(tmp_path, dtype, onnx_type, axis):
    from onnx.reference import ReferenceEvaluator

    shape = (3, 4, 5)
    n = shape[axis]
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    x = RNG.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    scale = RNG.uniform(0.01, 0.5, size=n).astype(np.float32)
    zp = RNG.integers(lo, hi, size=n, endpoint=True).astype(dtype)
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=axis)
    model = _single_node_model(
        node, [helper.make_tensor_value_info("x", onnx_type, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [_init("s", scale), _init("z", zp)], 21)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(ours["y"], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("out_type,np_type", [(TensorProto.UINT8, np.uint8),
                                              (TensorProto.INT8, np.int8),
                                              (TensorProto.UINT16, np.uint16),
                                              (TensorProto.INT16, np.int16)])
@pytest.mark.parametrize("axis,block_size", [(0, 2), (1, 3), (-1, 4), (2, 5)])
def test_blocked_quantize_matches_reference(tmp_path, out_type, np_type, axis, block_size):
    from onnx.reference import ReferenceEvaluator

    shape = [4, 6, 5]
    ax = axis % 3
    sshape = list(shape)
    sshape[ax] = -(-shape[ax] // block_size)  # a partial last block when it does not divide
    # multiples of 1/8 over power-of-two scales: many quotients are exactly halfway between two
    # steps (rounding half to even), some saturate
    x = (np.round(RNG.standard_normal(shape) * 320) / 8).astype(np.float32)
    x.flat[:4] = np.array([1e6, -1e6, 0.5, -2.5], np.float32)
    scale = RNG.choice(np.array([0.25, 0.5, 1.0, 2.0], np.float32), size=sshape)
    info = np.iinfo(np_type)
    zp = RNG.integers(max(info.min, -20), min(info.max, 20), size=sshape,
                      endpoint=True).astype(np_type)
    zp.flat[0] = 0
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=axis,
                            block_size=block_size)
    model = _single_node_model(
        node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", out_type, shape)],
        [_init("s", scale), _init("z", zp)], 21)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert ours["y"].dtype == expected.dtype
    np.testing.assert_array_equal(ours["y"], expected)


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("a_shape,b_shape", [((1, 1), (1, 1)), ((7, 33), (33, 19)),
                                             ((2, 3, 5, 17), (17, 40)), ((2, 1, 4, 6), (3, 6, 5)),
                                             ((9,), (9, 4)), ((4, 0), (0, 3)), ((130, 70), (70, 70))])
@pytest.mark.parametrize("b_zp_kind", ["none", "scalar", "per_column"])
def test_matmul_integer_shapes_match_reference(tmp_path, a_type, b_type, a_shape, b_shape,
                                               b_zp_kind):
    """MatMulInteger on odd k, partial 16-column panels, partial 4-row tiles, batch broadcast,
    1-D promotion and empty k; B and its zero point as initializers (packed at load)."""
    from onnx.reference import ReferenceEvaluator

    def rnd(shape, t):
        info = np.iinfo(t)
        return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(t)

    a = rnd(a_shape, a_type)
    b = rnd(b_shape, b_type)
    inits, inputs = [_init("b", b)], ["a", "b", "za"]
    za = rnd((), a_type)
    if b_zp_kind == "scalar":
        inits.append(_init("zb", rnd((), b_type)))
        inputs.append("zb")
    elif b_zp_kind == "per_column":
        inits.append(_init("zb", rnd((b_shape[-1],), b_type)))
        inputs.append("zb")
    inits.append(_init("za", za))
    node = helper.make_node("MatMulInteger", inputs, ["y"])
    a_info = helper.make_tensor_value_info("a", helper.np_dtype_to_tensor_dtype(a.dtype),
                                           list(a_shape))
    model = _single_node_model(node, [a_info],
                               [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
                               inits, 10)
    proc, ours = serveml_run(model, [a], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (expected,) = ReferenceEvaluator(model).run(None, {"a": a})
    assert ours["y"].dtype == np.int32
    np.testing.assert_array_equal(ours["y"], expected)


@pytest.mark.parametrize("x_type", [np.uint8, np.int8])
@pytest.mark.parametrize("geometry", [
    dict(x=(1, 4, 9, 9), w=(6, 2, 3, 3), group=2, strides=[2, 1], pads=[1, 0, 2, 1]),
    dict(x=(2, 3, 11), w=(5, 3, 4), dilations=[2], pads=[3, 1]),
    dict(x=(1, 2, 5, 6, 4), w=(4, 2, 2, 3, 2), strides=[1, 2, 1], pads=[0, 1, 1, 0, 1, 0]),
    dict(x=(1, 3, 7, 7), w=(4, 3, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(x=(3, 20, 6, 6), w=(17, 20, 1, 1)),
], ids=["grouped_2d", "dilated_1d", "3d", "same_upper", "pointwise"])
@pytest.mark.parametrize("op", ["ConvInteger", "QLinearConv"])
def test_integer_convolutions_match_reference(tmp_path, x_type, geometry, op):
    """ConvInteger and QLinearConv (per-output-channel weight scales and zero points, bias) over
    1-3 spatial dims, groups, strides, dilations, explicit and automatic padding."""
    from onnx.reference import ReferenceEvaluator

    g = dict(geometry)
    x_shape, w_shape = g.pop("x"), g.pop("w")
    m = w_shape[0]
    x = RNG.integers(0 if x_type == np.uint8 else -128, 256 if x_type == np.uint8 else 128,
                     size=x_shape).astype(x_type)
    w = RNG.integers(0, 256, size=w_shape).astype(np.uint8)
    x_type_id = helper.np_dtype_to_tensor_dtype(np.dtype(x_type))
    x_zp = np.array(100 if x_type == np.uint8 else -3, x_type)
    # per output channel for 2-D convolutions; the reference handles per-channel weight
    # parameters only for 4-D weights, so other ranks use per-tensor ones
    per_channel = len(w_shape) == 4
    w_zp = RNG.integers(100, 156, size=m if per_channel else ()).astype(np.uint8)
    w_scale = RNG.uniform(0.002, 0.01, size=m if per_channel else ()).astype(np.float32)
    if op == "ConvInteger":
        inits = [_init("w", w), _init("xz", x_zp), _init("wz", w_zp)]
        node = helper.make_node(op, ["x", "w", "xz", "wz"], ["y"], **g)
        out_type = TensorProto.INT32
    else:
        # scales chosen so most outputs stay inside the output range (a few saturate)
        inits = [_init("xs", np.array(0.02, np.float32)), _init("xz", x_zp), _init("w", w),
                 _init("ws", w_scale),
                 _init("wz", w_zp), _init("ys", np.array(0.05, np.float32)),
                 _init("yz", np.array(128, np.uint8)),
                 _init("bias", RNG.integers(-2000, 2000, size=m).astype(np.int32))]
        node = helper.make_node(op, ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"], ["y"],
                                **g)
        out_type = TensorProto.UINT8
    model = _single_node_model(node, [helper.make_tensor_value_info("x", x_type_id, list(x_shape))],
                               [helper.make_tensor_value_info("y", out_type, None)], inits, 10)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert ours["y"].shape == expected.shape and ours["y"].dtype == expected.dtype
    np.testing.assert_array_equal(ours["y"], expected)
