"""Test models, made with the real frameworks at test time (nothing binary is checked in)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph, opset=OPSET, ml=False, props=None):
    imports = [helper.make_opsetid("", opset)]
    if ml:
        imports.append(helper.make_opsetid("ai.onnx.ml", 3))
    m = helper.make_model(graph, opset_imports=imports, producer_name="serveml-tests")
    m.ir_version = 8
    if props:
        helper.set_model_props(m, props)
    onnx.checker.check_model(m)
    return m


def mlp(n_in=4, hidden=16, n_out=3, seed=0, softmax=False):
    """x[N,n_in] -> Gemm -> Relu -> Gemm (-> Softmax) -> y[N,n_out]."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(n_in, hidden)).astype(np.float32)
    b1 = rng.normal(size=(hidden,)).astype(np.float32)
    w2 = rng.normal(size=(hidden, n_out)).astype(np.float32)
    b2 = rng.normal(size=(n_out,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits" if softmax else "y"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    g = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    return _model(g)


def linear_named(feature_names):
    """y[N,1] = x @ w + b, with feature names in metadata_props."""
    n = len(feature_names)
    w = np.arange(1, n + 1, dtype=np.float32).reshape(n, 1)
    b = np.array([0.5], dtype=np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return _model(g, props={"feature_names": ",".join(feature_names)})


def image_model(c=2, h=3, w=3, n_out=2, seed=1):
    """x[N,C,H,W] -> Flatten -> Gemm -> y[N,n_out]."""
    rng = np.random.default_rng(seed)
    wt = rng.normal(size=(c * h * w, n_out)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "w"], ["y"])],
        "image",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(wt, "w")])
    return _model(g)


def two_outputs():
    """Two float outputs: y1 = x*2 [N,3], y2 = sigmoid(x) [N,3] -> answered as `outputs`."""
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y1"]), helper.make_node("Sigmoid", ["x"], ["y2"])],
        "multi",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 3])],
        [two])
    return _model(g)


def sklearn_logreg(labels="int", zipmap=True, seed=0):
    """A LogisticRegression on iris converted by skl2onnx. Returns (onnx model, sklearn model, X)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    if labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = LogisticRegression(max_iter=500, random_state=seed).fit(X, y)
    options = {id(clf): {"zipmap": zipmap}}
    onx = to_onnx(clf, X[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    return onx, clf, X


def serialize(m) -> bytes:
    return m.SerializeToString()
