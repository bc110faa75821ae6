"""RNN, GRU and LSTM through `serveml run`, compared with onnxruntime on random inputs.

Covers what ONNX's backend cases leave out: both directions at once, sequence_lens, initial
states, peepholes, GRU linear_before_reset 0 and 1, layout=1, batch 1 / 5 / 10 (the last above
the small-GEMM row limit), weights as initializers and as graph inputs, parametric activations
with clip, input_forget, partial output lists, opset 7 and float64. onnxruntime has no float64
kernels for these operators: float64 results are compared with its float32 run on the same
(float32-representable) values, at a float32 tolerance. Nor does it run layout=1: those cases
are compared with its run of the layout-0 model on the transposed inputs, outputs transposed
back.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_engine_run import ort_run, serveml_run

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
RTOL, ATOL = 1e-4, 1e-5


def recurrent_case(op: str, *, hidden=4, input_size=3, seq=5, batch=3, direction="forward",
                   layout=0, dtype=np.float32, opset=22, bias=True, lens=None, initial_h=False,
                   initial_c=False, peepholes=False, outputs=("Y", "Y_h"),
                   const_weights=False, seed=0, **attrs):
    """A one-node model and its positional inputs. `lens`: per-batch sequence lengths or
    None; `outputs`: names of Y, Y_h(, Y_c), "" for an omitted one."""
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT

    def rand(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32).astype(dtype)

    x_shape = (batch, seq, input_size) if layout else (seq, batch, input_size)
    state_shape = (batch, nd, hidden) if layout else (nd, batch, hidden)
    values = {"X": rand(*x_shape),
              "W": rand(nd, g * hidden, input_size, scale=0.5),
              "R": rand(nd, g * hidden, hidden, scale=0.5)}
    if bias:
        values["B"] = rand(nd, 2 * g * hidden, scale=0.5)
    if lens is not None:
        values["sequence_lens"] = np.asarray(lens, dtype=np.int32)
    if initial_h:
        values["initial_h"] = rand(*state_shape)
    if initial_c:
        values["initial_c"] = rand(*state_shape)
    if peepholes:
        values["P"] = rand(nd, 3 * hidden, scale=0.5)
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    if op == "LSTM":
        order += ["initial_c", "P"]
    node_inputs = [n if n in values else "" for n in order]
    while node_inputs[-1] == "":
        node_inputs.pop()
    if opset >= 14:
        attrs["layout"] = layout
    node = helper.make_node(op, node_inputs, list(outputs), hidden_size=hidden,
                            direction=direction, **attrs)
    initializers, graph_inputs, feeds = [], [], []
    for name in order:
        if name not in values:
            continue
        v = values[name]
        if const_weights and name in ("W", "R", "B", "P"):
            initializers.append(numpy_helper.from_array(v, name))
            continue
        t = TensorProto.INT32 if name == "sequence_lens" else elem
        graph_inputs.append(helper.make_tensor_value_info(name, t, list(v.shape)))
        feeds.append(v)
    graph_outputs = [helper.make_tensor_value_info(o, elem, None) for o in outputs if o]
    graph = helper.make_graph([node], "recurrent", graph_inputs, graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feeds


def to_float32(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.DOUBLE:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    for i, init in enumerate(m.graph.initializer):
        if init.data_type == TensorProto.DOUBLE:
            arr = numpy_helper.to_array(init).astype(np.float32)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    return m


def reference(model: onnx.ModelProto, feeds: list[np.ndarray]) -> dict:
    """onnxruntime's outputs for the model, via float32 and layout 0 where it needs them."""
    if feeds[0].dtype == np.float64:
        model = to_float32(model)
        feeds = [f.astype(np.float32) if f.dtype == np.float64 else f for f in feeds]
    node = model.graph.node[0]
    if not any(a.name == "layout" and a.i == 1 for a in node.attribute):
        return ort_run(model, feeds)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for a in m.graph.node[0].attribute:
        if a.name == "layout":
            a.i = 0
    batch_first = ("X", "initial_h", "initial_c")  # [batch, seq|dirs, ...] -> [seq|dirs, batch, ...]
    feeds = [f.transpose(1, 0, 2) if vi.name in batch_first else f
             for vi, f in zip(m.graph.input, feeds)]
    for vi, f in zip(m.graph.input, feeds):
        vi.CopyFrom(helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type,
                                                  list(f.shape)))
    ref = ort_run(m, feeds)
    y_name = node.output[0]
    return {k: v.transpose(2, 0, 1, 3) if k == y_name else v.transpose(1, 0, 2)
            for k, v in ref.items()}


def check(model, feeds, tmp_path):
    proc, ours = serveml_run(model, feeds, tmp_path)
    assert proc.returncode == 0, proc.stderr
    dtype = feeds[0].dtype
    ref = reference(model, feeds)
    assert set(ours) == set(ref)
    for name, expected in ref.items():
        got = ours[name]
        assert got.dtype == dtype, (name, got.dtype)
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    return ours


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("const_weights", [False, True])
def test_lstm_bidirectional_lens_peepholes(tmp_path, layout, const_weights):
    model, feeds = recurrent_case("LSTM", direction="bidirectional", batch=4, seq=6,
                                  lens=[6, 3, 1, 4], initial_h=True, initial_c=True,
                                  peepholes=True, outputs=("Y", "Y_h", "Y_c"), layout=layout,
                                  const_weights=const_weights)
    ours = check(model, feeds, tmp_path)
    y = ours["Y"]
    if layout == 0:  # steps past a sequence's length are zero in both directions
        assert not y[3:, :, 1].any() and not y[1:, :, 2].any()


@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("const_weights", [False, True])
def test_gru_bidirectional(tmp_path, lbr, layout, const_weights):
    model, feeds = recurrent_case("GRU", direction="bidirectional", hidden=5, batch=3,
                                  lens=[5, 2, 4], initial_h=True, linear_before_reset=lbr,
                                  layout=layout, const_weights=const_weights, seed=lbr)
    check(model, feeds, tmp_path)


@pytest.mark.parametrize("batch", [1, 5, 10])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_rnn_batches(tmp_path, batch, direction, layout):
    model, feeds = recurrent_case("RNN", direction=direction, batch=batch, hidden=6,
                                  input_size=4, initial_h=batch > 1, layout=layout,
                                  seed=batch)
    check(model, feeds, tmp_path)


def test_rnn_zero_length_keeps_initial_state(tmp_path):
    model, feeds = recurrent_case("RNN", direction="reverse", batch=3, lens=[0, 5, 2],
                                  initial_h=True)
    ours = check(model, feeds, tmp_path)
    assert not ours["Y"][:, :, 0].any()


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("layout", [0, 1])
def test_float64(tmp_path, op, layout):
    extra = {"initial_c": True, "peepholes": True, "outputs": ("Y", "Y_h", "Y_c")} \
        if op == "LSTM" else {}
    model, feeds = recurrent_case(op, direction="bidirectional", dtype=np.float64, batch=2,
                                  lens=[5, 3], initial_h=True, layout=layout, **extra)
    check(model, feeds, tmp_path)


@pytest.mark.parametrize("op,activations,alpha,beta", [
    ("RNN", ["Relu"], [], []),
    ("RNN", ["LeakyRelu", "ThresholdedRelu"], [0.2, 0.1], []),
    ("GRU", ["HardSigmoid", "Softsign"], [0.3], [0.4]),
    ("GRU", ["Sigmoid", "ScaledTanh", "HardSigmoid", "Elu"], [0.9, 0.25, 0.7], [1.1, 0.45]),
    ("LSTM", ["Sigmoid", "Affine", "Softplus"], [0.6], [0.1]),
    ("LSTM", ["HardSigmoid", "Tanh", "Elu", "Sigmoid", "Softsign", "Tanh"], [0.25, 0.8],
     [0.55]),
])
def test_activations_and_clip(tmp_path, op, activations, alpha, beta):
    direction = "bidirectional" if len(activations) > {"RNN": 1, "GRU": 2, "LSTM": 3}[op] \
        else "forward"
    lists = {k: v for k, v in (("activation_alpha", alpha), ("activation_beta", beta)) if v}
    model, feeds = recurrent_case(op, direction=direction, activations=activations, clip=1.5,
                                  initial_h=True, seed=len(activations), **lists)
    check(model, feeds, tmp_path)


@pytest.mark.parametrize("outputs", [("", "Y_h", "Y_c"), ("Y",), ("", "", "Y_c")])
def test_lstm_input_forget_partial_outputs(tmp_path, outputs):
    model, feeds = recurrent_case("LSTM", direction="reverse", input_forget=1, peepholes=True,
                                  lens=[2, 5, 4], outputs=outputs, const_weights=True)
    check(model, feeds, tmp_path)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_opset7(tmp_path, op):
    model, feeds = recurrent_case(op, opset=7, direction="bidirectional", initial_h=True,
                                  lens=[5, 4, 1])
    check(model, feeds, tmp_path)
