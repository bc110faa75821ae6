"""Convolution and fused dense kernels through `serveml run`, compared with onnxruntime.

The engine runs float Conv through a direct register-blocked kernel (weights packed at load)
when the geometry suits it and through im2col + GEMM otherwise; a Relu after a Conv is fused
into it. These cases walk the edges of both paths: output-channel counts that leave a partial
register block, rows narrower and wider than one vector, strides, dilations, asymmetric pads,
groups, depthwise, 1-D, weights computed by the graph instead of stored, batch 0/1/many.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_engine_run import assert_matches_ort, ort_run, serveml_run

RNG = np.random.default_rng(7)


def conv_model(c, m, kernel, *, group=1, strides=None, pads=None, dilations=None, bias=True,
               relu=False, weight_input=False, spatial=2):
    """Builds X [N, c, ...] -> Conv(W [m, c/group, *kernel]) [-> Relu] -> Y."""
    w = RNG.standard_normal((m, c // group, *kernel)).astype(np.float32) * 0.3
    b = RNG.standard_normal(m).astype(np.float32)
    attrs = {"kernel_shape": list(kernel), "group": group}
    if strides:
        attrs["strides"] = strides
    if pads:
        attrs["pads"] = pads
    if dilations:
        attrs["dilations"] = dilations
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", c] + ["?"] * spatial)]
    inits = []
    w_name = "W"
    nodes = []
    if weight_input:
        # W = Wc * 1: the product is computed at run time (not constant-folded, its input
        # is a graph input), so the kernel packs the weights per run.
        inputs.append(helper.make_tensor_value_info("S", TensorProto.FLOAT, [1]))
        inits.append(numpy_helper.from_array(w, "Wc"))
        nodes.append(helper.make_node("Mul", ["Wc", "S"], ["W"]))
    else:
        inits.append(numpy_helper.from_array(w, w_name))
    conv_in = ["X", w_name]
    if bias:
        inits.append(numpy_helper.from_array(b, "B"))
        conv_in.append("B")
    conv_out = "C" if relu else "Y"
    nodes.append(helper.make_node("Conv", conv_in, [conv_out], **attrs))
    if relu:
        nodes.append(helper.make_node("Relu", ["C"], ["Y"]))
    graph = helper.make_graph(nodes, "conv", inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


CASES = {
    # (c, m, kernel, spatial size, extra attrs)
    "3to16_3x3_same": (3, 16, (3, 3), (32, 32), {"pads": [1, 1, 1, 1]}),
    "16to32_3x3_same": (16, 32, (3, 3), (16, 16), {"pads": [1, 1, 1, 1]}),
    "partial_channel_block": (5, 13, (3, 3), (9, 20), {"pads": [1, 1, 1, 1]}),
    "one_output_channel": (4, 1, (3, 3), (8, 8), {}),
    "row_wider_than_vectors": (2, 9, (3, 3), (7, 37), {"pads": [0, 2, 1, 0]}),
    "narrow_row_im2col": (3, 8, (3, 3), (12, 5), {"pads": [1, 1, 1, 1]}),
    "kernel_5x5": (4, 8, (5, 5), (14, 18), {"pads": [2, 2, 2, 2]}),
    "kernel_1x7": (6, 10, (1, 7), (6, 24), {"pads": [0, 3, 0, 3]}),
    "vertical_stride": (3, 8, (3, 3), (17, 16), {"strides": [2, 1], "pads": [1, 1, 1, 1]}),
    "stride_2x2": (3, 8, (3, 3), (17, 16), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "dilation_2": (4, 12, (3, 3), (20, 20), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    "groups_2": (8, 12, (3, 3), (10, 18), {"group": 2, "pads": [1, 1, 1, 1]}),
    "depthwise": (8, 8, (3, 3), (10, 18), {"group": 8, "pads": [1, 1, 1, 1]}),
    "pointwise_1x1": (16, 24, (1, 1), (8, 8), {}),
    "no_bias": (3, 10, (3, 3), (8, 16), {"bias": False}),
    "conv1d": (4, 9, (5,), (40,), {"pads": [2, 2]}),
}


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_matches_onnxruntime(tmp_path, name, relu):
    c, m, kernel, size, extra = CASES[name]
    extra = dict(extra)
    model = conv_model(c, m, kernel, relu=relu, spatial=len(size), **extra)
    for batch in (1, 3):
        x = RNG.standard_normal((batch, c, *size)).astype(np.float32)
        assert_matches_ort(model, [x], tmp_path / f"b{batch}", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["16to32_3x3_same", "partial_channel_block", "groups_2"])
def test_conv_with_computed_weights_matches_onnxruntime(tmp_path, name):
    c, m, kernel, size, extra = CASES[name]
    model = conv_model(c, m, kernel, weight_input=True, spatial=len(size), **extra)
    x = RNG.standard_normal((2, c, *size)).astype(np.float32)
    assert_matches_ort(model, [x, np.array([1.5], np.float32)], tmp_path, rtol=1e-4, atol=1e-4)


def test_conv_batch_zero_and_special_values(tmp_path):
    model = conv_model(3, 16, (3, 3), pads=[1, 1, 1, 1], relu=True)
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    x[0, 0, 3, 4] = np.inf
    x[1, 2, 7, 7] = -np.inf
    x[1, 1, 0, 0] = np.nan
    assert_matches_ort(model, [x], tmp_path / "special", rtol=1e-4, atol=1e-4)
    empty = np.zeros((0, 3, 16, 16), np.float32)
    assert_matches_ort(model, [empty], tmp_path / "empty")


def test_benchmark_cnn_matches_onnxruntime(tmp_path):
    """The model bench/engine times: Conv-Relu-MaxPool-Conv-Relu-GlobalAveragePool-Flatten-Gemm."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "engine"))
    import bench_engine
    model, _ = bench_engine.cnn_model()
    for batch in (1, 32):
        x = RNG.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        assert_matches_ort(model, [x], tmp_path / f"b{batch}", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
@pytest.mark.parametrize("rows,k,n", [(1, 8, 5), (64, 256, 256)])
def test_fused_dense_relu_matches_onnxruntime_on_special_values(tmp_path, op, rows, k, n):
    """Gemm/MatMul + Relu run fused (small sizes in our kernel, large ones through oneDNN);
    NaN must come out as NaN and infinities keep their Relu values, as in onnxruntime."""
    w = (RNG.standard_normal((k, n)) * 0.2).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    if op == "Gemm":
        inits.append(numpy_helper.from_array(RNG.standard_normal(n).astype(np.float32), "B"))
        dense = helper.make_node("Gemm", ["X", "W", "B"], ["H"])
    else:
        dense = helper.make_node("MatMul", ["X", "W"], ["H"])
    graph = helper.make_graph(
        [dense, helper.make_node("Relu", ["H"], ["Y"])], "dense",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = RNG.standard_normal((rows + 2, k)).astype(np.float32)
    x[0, 0] = np.nan
    x[1, :] = np.inf
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    ref = ort_run(model, [x])["Y"]
    np.testing.assert_array_equal(np.isnan(ours["Y"]), np.isnan(ref))
    np.testing.assert_allclose(ours["Y"], ref, rtol=1e-4, atol=1e-4)
