"""End-to-end tests of the inference engine through `serveml run`.

Every expectation comes from an independent reference: onnxruntime for models built with
onnx.helper and converted from scikit-learn by skl2onnx, and the expected outputs shipped with
ONNX's own backend node test cases. Nothing here compares against numbers our engine made.
"""
from __future__ import annotations

import collections
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml"))
NODE_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"

# --------------------------------------------------------------------------------------------
# helpers


def _binary() -> Path:
    if not BINARY.exists():
        pytest.fail(f"serveml binary not found at {BINARY} (set SERVEML_BINARY)")
    return BINARY


def serveml_run(model: onnx.ModelProto | Path, inputs: list[np.ndarray], tmp: Path,
                names: list[str] | None = None, env: dict | None = None,
                timeout: float = 60) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `serveml run` on the model with the given inputs (positional unless `names`),
    with extra environment variables `env`; returns the process and {output name: ndarray}."""
    tmp.mkdir(parents=True, exist_ok=True)
    if isinstance(model, Path):
        model_path = model
        proto = onnx.load(str(model))
    else:
        proto = model
        model_path = tmp / "model.onnx"
        model_path.write_bytes(model.SerializeToString())
    args = [str(_binary()), "run", str(model_path)]
    for i, arr in enumerate(inputs):
        p = tmp / f"in_{i}.pb"
        p.write_bytes(numpy_helper.from_array(arr).SerializeToString())
        if names:
            args += ["--input", f"{names[i]}={p}"]
        else:
            args.append(str(p))
    out_dir = tmp / "out"
    args += ["--output-dir", str(out_dir)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    outputs = {}
    if proc.returncode == 0:
        for o in proto.graph.output:
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in o.name)
            t = TensorProto()
            t.ParseFromString((out_dir / f"{safe}.pb").read_bytes())
            outputs[o.name] = numpy_helper.to_array(t)
    return proc, outputs


def ort_run(model: onnx.ModelProto, inputs: list[np.ndarray]) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), inputs)}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def zipmap_keys(model: onnx.ModelProto, output_name: str) -> list:
    for n in model.graph.node:
        if n.op_type == "ZipMap" and output_name in n.output:
            for a in n.attribute:
                if a.name == "classlabels_int64s":
                    return list(a.ints)
                if a.name == "classlabels_strings":
                    return [s.decode() for s in a.strings]
    return []


def assert_matches_ort(model: onnx.ModelProto, inputs: list[np.ndarray], tmp: Path,
                       rtol=1e-5, atol=1e-6):
    proc, ours = serveml_run(model, inputs, tmp)
    assert proc.returncode == 0, proc.stderr
    ref = ort_run(model, inputs)
    assert set(ours) == set(ref)
    for name, expected in ref.items():
        got = ours[name]
        if isinstance(expected, list):  # ZipMap: list of {label: prob}
            keys = zipmap_keys(model, name)
            expected = np.array([[d[k] for k in keys] for d in expected], dtype=np.float32)
            expected = expected.reshape(len(inputs[0]) if inputs[0].ndim > 1 else 1, len(keys))
        expected = np.asarray(expected)
        if expected.dtype.kind in "OUS":
            got_s = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b)(got) \
                if got.size else got
            assert got.shape == expected.shape, name
            assert got_s.tolist() == expected.astype(str).tolist(), name
        elif expected.dtype.kind in "iub":
            assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
            assert got.shape == expected.shape, (name, got.shape, expected.shape)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=name)
    return ours


RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------------------------
# models built with onnx.helper, compared with onnxruntime


def mlp_model(opset: int, n_in=4, hidden=8, n_out=3, use_gemm=False) -> onnx.ModelProto:
    w1 = numpy_helper.from_array(rand(n_in, hidden), "w1")
    b1 = numpy_helper.from_array(rand(hidden), "b1")
    w2 = numpy_helper.from_array(rand(hidden, n_out), "w2")
    b2 = numpy_helper.from_array(rand(n_out), "b2")
    if use_gemm:
        first = [helper.make_node("Gemm", ["X", "w1", "b1"], ["h0"], alpha=0.5, beta=2.0)]
    else:
        first = [helper.make_node("MatMul", ["X", "w1"], ["m1"]),
                 helper.make_node("Add", ["m1", "b1"], ["h0"])]
    nodes = first + [
        helper.make_node("Relu", ["h0"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
        helper.make_node("Tanh", ["h1"], ["t"]),
        helper.make_node("Sigmoid", ["t"], ["sig"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_out]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("sig", TensorProto.FLOAT, ["N", hidden])],
        [w1, b1, w2, b2])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("batch", [0, 1, 7])
@pytest.mark.parametrize("use_gemm", [False, True])
def test_helper_mlp_matches_onnxruntime(tmp_path, opset, batch, use_gemm):
    m = mlp_model(opset, use_gemm=use_gemm)
    assert_matches_ort(m, [rand(batch, 4)], tmp_path)


def test_softmax_opset11_coerces_to_2d(tmp_path):
    g = helper.make_graph(
        [helper.make_node("Softmax", ["X"], ["Y"], axis=1),
         helper.make_node("LogSoftmax", ["X"], ["Z"])],
        "sm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Z", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 7
    assert_matches_ort(m, [rand(2, 3, 4)], tmp_path)


def test_broadcasting_and_reshape_family(tmp_path):
    shape = numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Mul", ["A", "B"], ["ab"]),           # [2,3,4] * [3,1]
         helper.make_node("Sub", ["ab", "C"], ["abc"]),          # - [4]
         helper.make_node("Div", ["abc", "D"], ["abcd"]),        # / scalar
         helper.make_node("Abs", ["abcd"], ["a1"]),
         helper.make_node("Sqrt", ["a1"], ["a2"]),
         helper.make_node("Exp", ["a2"], ["a3"]),
         helper.make_node("Log", ["a3"], ["a4"]),
         helper.make_node("Neg", ["a4"], ["a5"]),
         helper.make_node("Reshape", ["a5", "shape"], ["r"]),
         helper.make_node("Flatten", ["abcd"], ["f"], axis=2),
         helper.make_node("Concat", ["r", "r"], ["cat"], axis=1),
         helper.make_node("Cast", ["cat"], ["ci"], to=TensorProto.INT32),
         helper.make_node("Cast", ["ci"], ["cd"], to=TensorProto.DOUBLE),
         helper.make_node("Identity", ["cd"], ["out"])],
        "bc",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [2, 3, 4]),
         helper.make_tensor_value_info("B", TensorProto.FLOAT, [3, 1]),
         helper.make_tensor_value_info("C", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("D", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("f", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("out", TensorProto.DOUBLE, None)],
        [shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    a = rand(2, 3, 4) * 4
    assert_matches_ort(m, [a, rand(3, 1), rand(4), np.array(1.5, dtype=np.float32)], tmp_path)


def test_batched_matmul_broadcast_and_int_arith(tmp_path):
    g = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"]),
         helper.make_node("Add", ["I", "J"], ["K"]),
         helper.make_node("Mul", ["K", "J"], ["L"])],
        "bm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [2, 1, 3, 4]),
         helper.make_tensor_value_info("B", TensorProto.FLOAT, [5, 4, 2]),
         helper.make_tensor_value_info("I", TensorProto.INT64, [3, 1]),
         helper.make_tensor_value_info("J", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("L", TensorProto.INT64, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    i = RNG.integers(-100, 100, (3, 1)).astype(np.int64)
    j = RNG.integers(-100, 100, (4,)).astype(np.int64)
    assert_matches_ort(m, [rand(2, 1, 3, 4), rand(5, 4, 2), i, j], tmp_path)


def _ml_model(nodes, inputs, outputs, opset=13):
    g = helper.make_graph(nodes, "ml", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_linear_classifier_single_row_binary(tmp_path, post, labels):
    # One coefficient row and two labels: onnxruntime emits two score columns.
    kw = {"classlabels_ints": [3, 7]} if labels == "ints" else {"classlabels_strings": ["no", "yes"]}
    node = helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=[0.5, -1.0, 0.25], intercepts=[0.1],
                            post_transform=post, **kw)
    ltype = TensorProto.INT64 if labels == "ints" else TensorProto.STRING
    m = _ml_model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
                  [helper.make_tensor_value_info("label", ltype, ["N"]),
                   helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])])
    assert_matches_ort(m, [rand(6, 3)], tmp_path)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
def test_linear_classifier_multiclass_post_transforms(tmp_path, post):
    node = helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=rand(3 * 4).tolist(), intercepts=[0.0, 0.5, -0.5],
                            classlabels_ints=[10, 20, 30], post_transform=post)
    m = _ml_model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
                  [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                   helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])])
    x = rand(9, 4)
    x[0] = 0  # exercise SOFTMAX_ZERO's zero handling
    assert_matches_ort(m, [x], tmp_path)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer(tmp_path, norm):
    node = helper.make_node("Normalizer", ["X"], ["Y"], domain="ai.onnx.ml", norm=norm)
    m = _ml_model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 5])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 5])])
    x = rand(4, 5)
    x[1] = 0
    assert_matches_ort(m, [x], tmp_path)


def test_linear_regressor_multi_target(tmp_path):
    node = helper.make_node("LinearRegressor", ["X"], ["Y"], domain="ai.onnx.ml", targets=2,
                            coefficients=rand(2 * 3).tolist(), intercepts=[1.0, -2.0])
    m = _ml_model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])])
    assert_matches_ort(m, [rand(5, 3)], tmp_path)


# --------------------------------------------------------------------------------------------
# scikit-learn models converted by skl2onnx, compared with onnxruntime


def _skl():
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    return to_onnx


def _fit_data(kind: str, n=80, f=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)).astype(np.float32)
    if kind == "binary_int":
        y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(np.int64)
    elif kind == "multi_int":
        y = np.digitize(X[:, 0] + X[:, 2], [-0.5, 0.5]).astype(np.int64)
    elif kind == "binary_str":
        y = np.where(X[:, 1] > 0, "spam", "ham")
    elif kind == "multi_str":
        y = np.array(["setosa", "versicolor", "virginica"])[np.digitize(X[:, 0], [-0.4, 0.4])]
    else:
        y = X @ np.array([1.5, -2.0, 0.5, 3.0], dtype=np.float32) + 0.25
    return X, y


CLASSIFIER_LABELS = ["binary_int", "multi_int", "binary_str", "multi_str"]


@pytest.mark.parametrize("labels", CLASSIFIER_LABELS)
@pytest.mark.parametrize("zipmap", [True, False])
def test_sklearn_logistic_regression(tmp_path, labels, zipmap):
    to_onnx = _skl()
    from sklearn.linear_model import LogisticRegression
    X, y = _fit_data(labels)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    opts = None if zipmap else {id(clf): {"zipmap": False}}
    m = to_onnx(clf, X[:1], options=opts)
    ours = assert_matches_ort(m, [X[:13]], tmp_path)
    # And the engine agrees with scikit-learn itself.
    label = next(v for k, v in ours.items() if v.dtype.kind in "iOSU")
    if label.dtype.kind == "O":
        label = np.array([s.decode() if isinstance(s, bytes) else s for s in label])
    assert label.tolist() == clf.predict(X[:13]).tolist()


@pytest.mark.parametrize("batch", [0, 1, 10])
def test_sklearn_linear_regression(tmp_path, batch):
    to_onnx = _skl()
    from sklearn.linear_model import LinearRegression
    X, y = _fit_data("regression")
    reg = LinearRegression().fit(X, y)
    m = to_onnx(reg, X[:1])
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    ours = assert_matches_ort(m, [X[:batch]], tmp_path)
    if batch:
        np.testing.assert_allclose(next(iter(ours.values())).reshape(-1),
                                   reg.predict(X[:batch]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("labels", CLASSIFIER_LABELS)
@pytest.mark.parametrize("zipmap", [True, False])
def test_sklearn_mlp_classifier(tmp_path, labels, zipmap):
    to_onnx = _skl()
    from sklearn.neural_network import MLPClassifier
    X, y = _fit_data(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0).fit(X, y)
    opts = None if zipmap else {id(clf): {"zipmap": False}}
    m = to_onnx(clf, X[:1], options=opts)
    assert_matches_ort(m, [X[:11]], tmp_path)


def test_sklearn_mlp_regressor(tmp_path):
    to_onnx = _skl()
    from sklearn.neural_network import MLPRegressor
    X, y = _fit_data("regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, y)
    m = to_onnx(reg, X[:1])
    ours = assert_matches_ort(m, [X[:17]], tmp_path)
    np.testing.assert_allclose(next(iter(ours.values())).reshape(-1), reg.predict(X[:17]),
                               rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# CLI behaviour and errors


def test_named_inputs_and_sanitized_output_names(tmp_path):
    g = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["out/with:odd chars"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("out/with:odd chars", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    a, b = np.array([1, 2], np.float32), np.array([10, 20], np.float32)
    proc, outs = serveml_run(m, [b, a], tmp_path, names=["b", "a"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "out_with_odd_chars.pb").exists()
    np.testing.assert_array_equal(outs["out/with:odd chars"], a - b)


def test_unsupported_operator_is_named(tmp_path):
    g = helper.make_graph(
        [helper.make_node("DFT", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    proc, _ = serveml_run(m, [rand(1, 1, 3, 3), rand(1, 1, 2, 2)], tmp_path)
    assert proc.returncode == 1
    assert "unsupported operator 'DFT' (domain ai.onnx, opset 17)" in proc.stderr


def test_wrong_input_shape_and_garbage_model(tmp_path):
    m = mlp_model(13)
    proc, _ = serveml_run(m, [rand(2, 5)], tmp_path)
    assert proc.returncode == 1
    assert "input 'X' must have shape [?, 4]" in proc.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    proc = subprocess.run([str(_binary()), "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "malformed protobuf" in proc.stderr
    proc = subprocess.run([str(_binary()), "run"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_external_data_rejected(tmp_path):
    t = numpy_helper.from_array(rand(2, 2), "w")
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    e = t.external_data.add()
    e.key, e.value = "location", "weights.bin"
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    proc, _ = serveml_run(m, [rand(2, 2)], tmp_path)
    assert proc.returncode == 1
    assert "external data is not supported" in proc.stderr


# --------------------------------------------------------------------------------------------
# ONNX backend node test cases for the operators the engine implements

CLAIMED_OPS = {
    "": ["Abs", "Add", "ArgMax", "Cast", "Concat", "Constant", "Div", "Exp", "Flatten", "Gemm",
         "Identity", "Log", "LogSoftmax", "MatMul", "Mul", "Neg", "Relu", "Reshape", "Sigmoid",
         "Softmax", "Sqrt", "Sub", "Tanh"],
    "ai.onnx.ml": ["ArrayFeatureExtractor", "LinearClassifier", "LinearRegressor", "Normalizer",
                   "ZipMap"],
}
CASE_PREFIXES = {op.lower(): op for ops in CLAIMED_OPS.values() for op in ops}
SUPPORTED_ELEM_TYPES = set(range(1, 14))


def _case_op(name: str) -> str | None:
    body = name[len("test_"):]
    for prefix in sorted(CASE_PREFIXES, key=len, reverse=True):
        if body == prefix or body.startswith(prefix + "_"):
            return CASE_PREFIXES[prefix]
    return None


def _backend_cases():
    if not NODE_DATA.is_dir():
        return []
    cases = []
    for d in sorted(NODE_DATA.iterdir()):
        op = _case_op(d.name)
        if not op or not (d / "model.onnx").exists():
            continue
        # Attribute a case to the op only if the op is in it (test_constant_pad is Pad's).
        if op not in {n.op_type for n in onnx.load(str(d / "model.onnx")).graph.node}:
            continue
        cases.append(pytest.param(d, op, id=d.name))
    return cases


def _skip_reason(model: onnx.ModelProto) -> str | None:
    """A reason to skip a case that needs something outside the engine's claims."""
    claimed = {(d, op) for d, ops in CLAIMED_OPS.items() for op in ops}
    missing = sorted({n.op_type for n in model.graph.node
                      if (n.domain if n.domain != "ai.onnx" else "", n.op_type) not in claimed})
    if missing:
        return "needs unimplemented operator(s): " + ", ".join(missing)
    for v in list(model.graph.input) + list(model.graph.output):
        which = v.type.WhichOneof("value")
        if which != "tensor_type":
            return f"non-tensor graph value '{v.name}' ({which})"
        if v.type.tensor_type.elem_type not in SUPPORTED_ELEM_TYPES:
            name = TensorProto.DataType.Name(v.type.tensor_type.elem_type)
            return f"element type {name} is not supported"
    for n in model.graph.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i not in SUPPORTED_ELEM_TYPES:
                return f"Cast to {TensorProto.DataType.Name(a.i)} is not supported"
            if a.name == "sparse_value":
                return "sparse constants are not supported"
    return None


BACKEND_RESULTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _backend_summary(request):
    yield
    if not BACKEND_RESULTS:
        return
    lines = ["", "ONNX backend node cases (op: passed / failed / skipped):"]
    for op in sorted(BACKEND_RESULTS):
        c = BACKEND_RESULTS[op]
        lines.append(f"  {op:22s} {c['passed']:3d} / {c['failed']:3d} / {c['skipped']:3d}")
    total = sum(BACKEND_RESULTS.values(), collections.Counter())
    lines.append(f"  {'TOTAL':22s} {total['passed']:3d} / {total['failed']:3d} / "
                 f"{total['skipped']:3d}")
    text = "\n".join(lines)
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if capman:
        with capman.global_and_fixture_disabled():
            print(text)
    else:
        print(text)


@pytest.mark.parametrize("case_dir,op", _backend_cases())
def test_onnx_backend_node_case(tmp_path, case_dir: Path, op: str):
    model = onnx.load(str(case_dir / "model.onnx"))
    reason = _skip_reason(model)
    if reason:
        BACKEND_RESULTS[op]["skipped"] += 1
        pytest.skip(reason)
    ok = False
    try:
        for ds in sorted(case_dir.glob("test_data_set_*")):
            inputs = []
            for i in range(len(list(ds.glob("input_*.pb")))):
                t = TensorProto()
                t.ParseFromString((ds / f"input_{i}.pb").read_bytes())
                inputs.append(numpy_helper.to_array(t))
            proc, ours = serveml_run(case_dir / "model.onnx", inputs, tmp_path / ds.name)
            assert proc.returncode == 0, proc.stderr
            for k, o in enumerate(model.graph.output):
                t = TensorProto()
                t.ParseFromString((ds / f"output_{k}.pb").read_bytes())
                expected = numpy_helper.to_array(t)
                got = ours[o.name]
                assert got.dtype == expected.dtype, (o.name, got.dtype, expected.dtype)
                assert got.shape == expected.shape, (o.name, got.shape, expected.shape)
                if expected.dtype.kind in "fc":
                    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-7,
                                               err_msg=o.name)
                else:
                    np.testing.assert_array_equal(got, expected, err_msg=o.name)
        ok = True
    finally:
        BACKEND_RESULTS[op]["passed" if ok else "failed"] += 1
