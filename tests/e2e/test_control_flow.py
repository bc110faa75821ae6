"""Control flow (If, Loop, Scan) through `serveml run`, compared with onnxruntime.

The models are built with onnx.helper: branches that capture values of the enclosing graph,
loops with a trip count computed from the input, loop-carried state and scan outputs, Scan
over the sequence axis in both directions, an If nested in a Loop body, and hostile files
(subgraphs nested too deep, a Loop whose scan output would grow without bound) that must
fail with a clear error instead of crashing.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from test_engine_run import _binary, ort_run  # noqa: E402
from test_engine_run import serveml_run as shared_serveml_run  # noqa: E402

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def serveml_run(model: onnx.ModelProto, inputs: list[np.ndarray], tmp: Path,
                env: dict | None = None):
    """The shared runner, with room for the slow hostile cases on a sanitized binary."""
    return shared_serveml_run(model, inputs, tmp, env=env, timeout=120)


def assert_matches_ort(model: onnx.ModelProto, inputs: list[np.ndarray], tmp: Path):
    onnx.checker.check_model(model, full_check=True)
    proc, ours = serveml_run(model, inputs, tmp)
    assert proc.returncode == 0, proc.stderr
    ref = ort_run(model, inputs)
    assert set(ours) == set(ref)
    for name, expected in ref.items():
        got = ours[name]
        assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def make_model(graph: onnx.GraphProto, opset: int) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def const(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------------------
# If


def if_model(opset: int) -> onnx.ModelProto:
    # cond = ReduceSum(x) > 0, computed in the graph; both branches capture `scaled` (an
    # intermediate of the outer graph) and `x` (a graph input).
    then_g = helper.make_graph(
        [helper.make_node("Add", ["scaled", "x"], ["t0"]),
         helper.make_node("Relu", ["t0"], ["then_out"])],
        "then", [], [vi("then_out", F, None)])
    else_g = helper.make_graph(
        [const("k", np.array(3.0, np.float32)),
         helper.make_node("Sub", ["scaled", "k"], ["else_out"])],
        "else", [], [vi("else_out", F, None)])
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["scaled"]),
         helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),  # over all axes
         helper.make_node("Greater", ["s", "zero"], ["cond"]),
         helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Mul", ["y", "scaled"], ["z"])],
        "if_graph", [vi("x", F, [2, 3])], [vi("z", F, [2, 3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    return make_model(g, opset)


@pytest.mark.parametrize("opset", [11, 13, 16, 19, 21])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_on_computed_condition_with_outer_capture(tmp_path, opset, sign):
    x = np.abs(rand(2, 3)) * sign
    assert_matches_ort(if_model(opset), [x], tmp_path)


def test_if_with_constant_condition_is_folded(tmp_path):
    # The condition and the captured value are constants: the If runs once at load.
    then_g = helper.make_graph([helper.make_node("Neg", ["w"], ["a"])], "then", [],
                               [vi("a", F, None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["w"], ["b"])], "else", [],
                               [vi("b", F, None)])
    g = helper.make_graph(
        [const("c", np.array(True)),
         helper.make_node("If", ["c"], ["v"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Add", ["x", "v"], ["y"])],
        "g", [vi("x", F, [3])], [vi("y", F, [3])],
        [numpy_helper.from_array(np.array([1, 2, 3], np.float32), "w")])
    assert_matches_ort(make_model(g, 17), [rand(3)], tmp_path)


# --------------------------------------------------------------------------------------------
# Loop


def loop_model(opset: int, with_cond: bool) -> onnx.ModelProto:
    # Trip count = number of rows of x (computed from the input's shape); the body adds row
    # i of x (captured) to the carried state and emits state * i as a scan output. With
    # `with_cond`, the loop also stops once the state's sum exceeds the `limit` input.
    body_nodes = [
        helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
        helper.make_node("Add", ["state_in", "row"], ["state_out"]),
        helper.make_node("Cast", ["i"], ["i_f"], to=F),
        helper.make_node("Mul", ["state_out", "i_f"], ["scan_out"]),
    ]
    if with_cond:
        body_nodes += [helper.make_node("ReduceSum", ["state_out"], ["total"], keepdims=0),
                       helper.make_node("Less", ["total", "limit"], ["cond_out"])]
    else:
        body_nodes += [helper.make_node("Identity", ["cond_in"], ["cond_out"])]
    body = helper.make_graph(
        body_nodes, "body",
        [vi("i", I64, []), vi("cond_in", B, []), vi("state_in", F, [4])],
        [vi("cond_out", B, []), vi("state_out", F, [4]), vi("scan_out", F, [4])])
    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Gather", ["shape", "zero_i"], ["m"], axis=0),
         helper.make_node("Loop", ["m", "true" if with_cond else "", "init"],
                          ["final", "scans"], body=body)],
        "loop_graph", [vi("x", F, ["N", 4]), vi("init", F, [4])] +
        ([vi("limit", F, [])] if with_cond else []),
        [vi("final", F, [4]), vi("scans", F, [None, 4])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
         numpy_helper.from_array(np.array(True), "true")])
    return make_model(g, opset)


@pytest.mark.parametrize("opset", [11, 13, 16, 19, 21])
@pytest.mark.parametrize("rows", [0, 1, 5])
def test_loop_carried_state_and_scan_output(tmp_path, opset, rows):
    x, init = np.abs(rand(rows, 4, seed=rows)), rand(4, seed=7)
    assert_matches_ort(loop_model(opset, with_cond=False), [x, init], tmp_path)


def test_loop_stops_on_condition(tmp_path):
    x, init = np.abs(rand(9, 4, seed=3)), np.zeros(4, np.float32)
    limit = np.array(5.0, np.float32)
    assert_matches_ort(loop_model(17, with_cond=True), [x, init, limit], tmp_path)


def test_if_nested_in_loop(tmp_path):
    # Even iterations add the captured `delta`, odd ones subtract twice the carried value's
    # mean; the If sits in the Loop body and captures the body's and the outer graph's values.
    then_g = helper.make_graph([helper.make_node("Add", ["acc_in", "delta"], ["t"])], "then", [],
                               [vi("t", F, None)])
    else_g = helper.make_graph(
        [helper.make_node("ReduceMean", ["acc_in"], ["mean"], keepdims=1),
         helper.make_node("Mul", ["mean", "two"], ["m2"]),
         helper.make_node("Sub", ["acc_in", "m2"], ["e"])], "else", [], [vi("e", F, None)])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two_i"], ["parity"]),
         helper.make_node("Equal", ["parity", "zero_i"], ["even"]),
         helper.make_node("If", ["even"], ["acc_out"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["trace"])],
        "body", [vi("i", I64, []), vi("cond_in", B, []), vi("acc_in", F, [3])],
        [vi("cond_out", B, []), vi("acc_out", F, [3]), vi("trace", F, [3])])
    g = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "acc0"], ["acc", "traces"], body=body)],
        "g", [vi("n", I64, []), vi("acc0", F, [3]), vi("delta", F, [3])],
        [vi("acc", F, [3]), vi("traces", F, [None, 3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(2, np.int64), "two_i"),
         numpy_helper.from_array(np.array(0, np.int64), "zero_i")])
    m = make_model(g, 17)
    for n in (0, 1, 6):
        assert_matches_ort(m, [np.array(n, np.int64), rand(3, seed=1), rand(3, seed=2)],
                           tmp_path / str(n))


# --------------------------------------------------------------------------------------------
# Scan


@pytest.mark.parametrize("opset", [9, 11, 16, 19, 21])
def test_scan_over_sequence_axis(tmp_path, opset):
    # x is [batch, seq, feat]; scanning axis 1 forward and reverse with a running sum (the
    # state) and two scan outputs stacked on axes 1 and 0 (the second in reverse order).
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "xt"], ["s_mid"]),
         helper.make_node("Add", ["s_mid", "rt"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "w"], ["y1"]),
         helper.make_node("Identity", ["xt"], ["y2"])],
        "body", [vi("s_in", F, [2, 3]), vi("xt", F, [2, 3]), vi("rt", F, [2, 3])],
        [vi("s_out", F, [2, 3]), vi("y1", F, [2, 3]), vi("y2", F, [2, 3])])
    g = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x", "x"], ["s", "ys", "xs"], body=body,
                          num_scan_inputs=2, scan_input_axes=[1, -2],
                          scan_input_directions=[0, 1], scan_output_axes=[1, 0],
                          scan_output_directions=[0, 1])],
        "g", [vi("s0", F, [2, 3]), vi("x", F, [2, "T", 3]), vi("w", F, [3])],
        [vi("s", F, [2, 3]), vi("ys", F, [2, None, 3]), vi("xs", F, [None, 2, 3])])
    m = make_model(g, opset)
    assert_matches_ort(m, [rand(2, 3), rand(2, 5, 3, seed=1), rand(3, seed=2)], tmp_path)


# --------------------------------------------------------------------------------------------
# Hostile inputs


def nested_if_model(levels: int) -> onnx.ModelProto:
    inner = helper.make_graph([helper.make_node("Identity", ["x"], ["o0"])], "b0", [],
                              [vi("o0", F, None)])
    for k in range(1, levels + 1):
        other = helper.make_graph([helper.make_node("Neg", ["x"], [f"n{k}"])], f"e{k}", [],
                                  [vi(f"n{k}", F, None)])
        inner = helper.make_graph(
            [helper.make_node("If", ["c"], [f"o{k}"], then_branch=inner, else_branch=other)],
            f"b{k}", [], [vi(f"o{k}", F, None)])
    g = helper.make_graph(list(inner.node), "g", [vi("c", B, []), vi("x", F, [2])],
                          [vi(f"o{levels}", F, [2])])
    return make_model(g, 17)


def test_moderately_nested_if_runs(tmp_path):
    assert_matches_ort(nested_if_model(8), [np.array(True), rand(2)], tmp_path)


@pytest.mark.parametrize("levels", [17, 30])
def test_deeply_nested_if_is_refused(tmp_path, levels):
    proc, _ = serveml_run(nested_if_model(levels), [np.array(True), rand(2)], tmp_path)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "subgraphs are nested more than 16 levels deep" in proc.stderr, proc.stderr


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    def varint(v: int) -> bytes:
        out = b""
        while True:
            b, v = v & 0x7F, v >> 7
            out += bytes([b | (0x80 if v else 0)])
            if not v:
                return out
    return varint(num << 3 | 2) + varint(len(payload)) + payload


@pytest.mark.parametrize("levels", [40, 5000])
def test_hostile_nesting_beyond_the_parser_limit(tmp_path, levels):
    # Built on the wire directly (the Python protobuf runtime refuses such depths): If nodes
    # whose then_branch holds the next If, `levels` deep.
    graph = _field(12, _field(1, b"o"))  # GraphProto.output
    for _ in range(levels):
        attr = _field(1, b"then_branch") + _field(6, graph) + bytes([20 << 3, 5])  # type GRAPH
        node = _field(1, b"c") + _field(2, b"o") + _field(4, b"If") + _field(5, attr)
        graph = _field(1, node) + _field(12, _field(1, b"o"))
    model = bytes([1 << 3, 8]) + _field(8, bytes([2 << 3, 17])) + _field(7, graph)
    path = tmp_path / "deep.onnx"
    path.write_bytes(model)
    proc = subprocess.run([str(_binary()), "run", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "nesting deeper than 32" in proc.stderr, proc.stderr


def test_unbounded_scan_output_is_capped(tmp_path):
    # Each iteration emits the same 16 MiB tensor as a scan output (no new memory per
    # iteration); the accumulated scan output passes the per-node cap long before the trip
    # count, and the run fails with a clear error.
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["big"], ["scan_out"])],
        "body", [vi("i", I64, []), vi("cond_in", B, [])],
        [vi("cond_out", B, []), vi("scan_out", F, None)])
    g = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                          value=numpy_helper.from_array(np.array([1.0], np.float32))),
         helper.make_node("Loop", ["m", ""], ["scans"], body=body)],
        "g", [vi("m", I64, []), vi("shape", I64, [1])], [vi("scans", F, None)])
    proc, _ = serveml_run(make_model(g, 17),
                          [np.array(1 << 40, np.int64), np.array([4 << 20], np.int64)], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "scan output 'scan_out' exceeds the limit" in proc.stderr, proc.stderr


def test_endless_loop_is_stopped_by_the_time_budget(tmp_path):
    # No trip count and a condition the body passes through unchanged: nothing in the model
    # ever stops it. The engine's per-Loop wall-clock budget (here 1 s) does.
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body", [vi("i", I64, []), vi("cond_in", B, []), vi("acc_in", F, [1])],
        [vi("cond_out", B, []), vi("acc_out", F, [1])],
        [numpy_helper.from_array(np.array([1.0], np.float32), "one")])
    g = helper.make_graph(
        [helper.make_node("Loop", ["", "c", "acc0"], ["acc"], body=body)],
        "g", [vi("c", B, []), vi("acc0", F, [1])], [vi("acc", F, [1])])
    proc, _ = serveml_run(make_model(g, 17), [np.array(True), np.zeros(1, np.float32)],
                          tmp_path, env={"SERVEML_ENGINE_LOOP_SECONDS": "1"})
    assert proc.returncode == 1, proc.stderr
    assert "the loop ran longer than 1 s" in proc.stderr, proc.stderr


def test_long_scan_is_stopped_by_the_time_budget(tmp_path):
    # A Scan over 4M steps (a few seconds of body runs) against a 0.2 s budget.
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x_t"], ["acc_out"])],
        "body", [vi("acc_in", F, []), vi("x_t", F, [])], [vi("acc_out", F, [])])
    g = helper.make_graph(
        [helper.make_node("Scan", ["acc0", "xs"], ["acc"], body=body, num_scan_inputs=1)],
        "g", [vi("acc0", F, []), vi("xs", F, [None])], [vi("acc", F, [])])
    proc, _ = serveml_run(make_model(g, 17),
                          [np.array(0.0, np.float32), np.ones(1 << 22, np.float32)], tmp_path,
                          env={"SERVEML_ENGINE_LOOP_SECONDS": "0.2"})
    assert proc.returncode == 1, proc.stderr
    assert "the scan ran longer than 0.2 s" in proc.stderr, proc.stderr
    assert f"of {1 << 22} steps" in proc.stderr, proc.stderr


def test_sequence_typed_branch_is_unsupported(tmp_path):
    then_g = helper.make_graph([helper.make_node("SequenceConstruct", ["x"], ["s"])], "then", [],
                               [helper.make_tensor_sequence_value_info("s", F, None)])
    else_g = helper.make_graph([helper.make_node("SequenceConstruct", ["x", "x"], ["t"])],
                               "else", [], [helper.make_tensor_sequence_value_info("t", F, None)])
    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["seq"], then_branch=then_g, else_branch=else_g)],
        "g", [vi("c", B, []), vi("x", F, [2])],
        [helper.make_tensor_sequence_value_info("seq", F, None)])
    proc, _ = serveml_run(make_model(g, 17), [np.array(True), rand(2)], tmp_path)
    assert proc.returncode == 1
    assert "has type seq(tensor(float))" in proc.stderr and "not supported" in proc.stderr, \
        proc.stderr
