"""ONNX models that are legal but costly, made with onnx.helper at test time.

Each one exercises one limit: memory while importing, CPU or wall time while importing, a
prediction's timeout_seconds, a prediction's memory_mb. Probe inputs are zeros, so models
whose cost depends on their input validate quickly and cost only when a request asks.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits=(), name="m", opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="serveml-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def memory_hog(elements: int = 1 << 28) -> bytes:
    """Needs `elements` float32 at load (a folded ConstantOfShape) and at every run."""
    shape = numpy_helper.from_array(np.array([elements], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["big"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
        helper.make_node("Add", ["x", "s"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], [shape])


def _loop_body(width: int = 256):
    """Loop body: v <- v + 1 over a [width] vector, condition unchanged."""
    one = numpy_helper.from_array(np.ones([width], dtype=np.float32), "one")
    return helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Add", ["v", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [width])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [width])],
        [one])


def busy_probe(trips: int = 1 << 40) -> bytes:
    """Spins a Loop of `trips` cheap steps on every run, the probe run included (the
    engine's own loop budget ends it after 30 s)."""
    inits = [numpy_helper.from_array(np.array(trips, dtype=np.int64), "M"),
             numpy_helper.from_array(np.array(True), "T"),
             numpy_helper.from_array(np.zeros([256], dtype=np.float32), "v0")]
    nodes = [
        helper.make_node("Loop", ["M", "T", "v0"], ["vN"], body=_loop_body()),
        helper.make_node("ReduceSum", ["vN"], ["s"], keepdims=1),
        helper.make_node("Add", ["x", "s"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)


def slow_on_request() -> bytes:
    """x[1,1] -> a Loop of int(x) steps: instant for the probe (x = 0), as slow as asked."""
    inits = [numpy_helper.from_array(np.array(True), "T"),
             numpy_helper.from_array(np.zeros([256], dtype=np.float32), "v0"),
             numpy_helper.from_array(np.array([], dtype=np.int64), "scalar")]
    nodes = [
        helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["xi", "scalar"], ["M"]),
        helper.make_node("Loop", ["M", "T", "v0"], ["vN"], body=_loop_body()),
        helper.make_node("ReduceSum", ["vN"], ["s"], keepdims=1),
        helper.make_node("Add", ["x", "s"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)


def wide_per_row(width: int = 4096) -> bytes:
    """x[N,1] -> x @ W (a [N, width] float intermediate, visible to shape inference) -> row
    sums [N,1] = x * sum(W). W is 0..width-1 so the sums are exact in float32 for small x."""
    w = numpy_helper.from_array(np.arange(width, dtype=np.float32).reshape(1, width), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["wide"]),
        helper.make_node("ReduceSum", ["wide", "axes"], ["y"], keepdims=1),
    ]
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], [w, axes])


def big_on_request(width: int = 4096) -> bytes:
    """x[1,1] -> a [int(x), width] float tensor: empty for the probe, int(x)*width*4 bytes
    for a request."""
    inits = [numpy_helper.from_array(np.array([width], dtype=np.int64), "w"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "one")]
    nodes = [
        helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["xi", "one"], ["rows"]),
        helper.make_node("Concat", ["rows", "w"], ["shape"], axis=0),
        helper.make_node("ConstantOfShape", ["shape"], ["big"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
        helper.make_node("Reshape", ["s", "one"], ["s1"]),
        helper.make_node("Add", ["x", "s1"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
