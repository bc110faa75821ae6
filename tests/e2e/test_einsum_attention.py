"""Einsum, Attention and RotaryEmbedding through `serveml run`, compared with onnxruntime on
random inputs: Einsum equations ONNX's backend cases do not cover (batched and transposed
products, diagonals, traces, ellipsis broadcasting, three operands, integer types), and
Attention / RotaryEmbedding (opset 23) with grouped-query heads, masks, KV cache and the
optional outputs. The few Einsum equations onnxruntime cannot run are compared with
numpy.einsum (see NUMPY_EINSUM_CASES).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from test_engine_run import ort_run, serveml_run

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(20240613)


def _model(op: str, opset: int, inputs: list[tuple[str, np.ndarray | None]], outputs: list[str],
           **attrs) -> onnx.ModelProto:
    """One-node model; an input given as (name, None) is an omitted optional input."""
    node = helper.make_node(op, [n if a is not None else "" for n, a in inputs], outputs, **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
        for n, a in inputs if a is not None
    ]
    out_type = helper.np_dtype_to_tensor_dtype(inputs[0][1].dtype)  # outputs share X/Q's type
    graph_outputs = [helper.make_tensor_value_info(o, out_type, None) for o in outputs if o]
    graph = helper.make_graph([node], op.lower(), graph_inputs, graph_outputs)
    # IR 10 keeps the model loadable by the installed onnxruntime.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _random(shape, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def _check(model: onnx.ModelProto, feeds: list[np.ndarray], tmp, rtol=1e-4, atol=1e-5):
    proc, got = serveml_run(model, feeds, tmp)
    assert proc.returncode == 0, proc.stderr
    want = ort_run(model, feeds)
    assert set(got) == set(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype, name
        assert got[name].shape == expected.shape, name
        if np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(got[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], expected, rtol=rtol, atol=atol, err_msg=name)


EINSUM_CASES = [
    ("bij,bjk->bik", [(3, 4, 5), (3, 5, 6)]),
    ("ij->ji", [(4, 7)]),
    ("ii->i", [(5, 5)]),
    ("ii", [(5, 5)]),  # implicit output: trace
    ("...ij,...jk", [(2, 3, 4, 5), (2, 3, 5, 2)]),
    ("i,i->", [(9,)] * 2),
    ("i,j->ij", [(4,), (3,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 8), (2, 3, 6, 8)]),
    ("bhqk,bhkd->bqhd", [(2, 3, 4, 6), (2, 3, 6, 8)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),
    ("ijk->", [(2, 3, 4)]),
    ("bii->bi", [(3, 4, 4)]),
    ("iij,jk->ik", [(3, 3, 4), (4, 2)]),
    ("ij,ij->ij", [(3, 4)] * 2),
    ("ji,jk->ik", [(5, 3), (5, 4)]),
    ("ik,jk->ij", [(3, 5), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("i...->...", [(3, 2, 4)]),
]

# Equations onnxruntime 1.23 rejects or gets wrong (ellipses of different ranks or with size-1
# dims: "Ellipsis represents incompatible dimensions"; "ijk->kj": a size mismatch in its
# output copy; empty operands: a floating point exception): compared with numpy.einsum, which
# is what ONNX's reference implementation runs.
NUMPY_EINSUM_CASES = [
    ("...ij,...jk", [(2, 3, 4, 5), (3, 5, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 4, 5), (3, 5, 2)]),
    ("ijk->kj", [(2, 3, 4)]),
    ("abc,cd->abd", [(0, 3, 4), (4, 2)]),
    ("ij,jk->ik", [(3, 0), (0, 2)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_float_matches_onnxruntime(equation, shapes, tmp_path):
    feeds = [_random(s, np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(feeds))]
    model = _model("Einsum", 12, list(zip(names, feeds)), ["y"], equation=equation)
    _check(model, feeds, tmp_path)


@pytest.mark.parametrize("equation,shapes", NUMPY_EINSUM_CASES,
                         ids=[c[0] for c in NUMPY_EINSUM_CASES])
def test_einsum_float_matches_numpy(equation, shapes, tmp_path):
    feeds = [_random(s, np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(feeds))]
    model = _model("Einsum", 12, list(zip(names, feeds)), ["y"], equation=equation)
    proc, got = serveml_run(model, feeds, tmp_path)
    assert proc.returncode == 0, proc.stderr
    want = np.einsum(equation, *feeds)
    assert got["y"].shape == want.shape
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
@pytest.mark.parametrize("equation,shapes", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ij->j", [(3, 5)]),
    ("...ij,...jk", [(2, 3, 4), (2, 4, 2)]),
])
def test_einsum_other_types_match_onnxruntime(equation, shapes, dtype, tmp_path):
    feeds = [_random(s, dtype) for s in shapes]
    names = [f"x{i}" for i in range(len(feeds))]
    model = _model("Einsum", 12, list(zip(names, feeds)), ["y"], equation=equation)
    _check(model, feeds, tmp_path, rtol=1e-10, atol=1e-10)


def test_einsum_rejects_bad_equation(tmp_path):
    x = _random((3, 3), np.float32)
    model = _model("Einsum", 12, [("x", x)], ["y"], equation="ij,jk->ik")  # 2 terms, 1 input
    proc, _ = serveml_run(model, [x], tmp_path)
    assert proc.returncode != 0
    assert "Einsum" in proc.stderr


def test_einsum_rejects_mismatched_sizes(tmp_path):
    a, b = _random((3, 4), np.float32), _random((5, 2), np.float32)
    model = _model("Einsum", 12, [("a", a), ("b", b)], ["y"], equation="ij,jk->ik")
    proc, _ = serveml_run(model, [a, b], tmp_path)
    assert proc.returncode != 0
    assert "size" in proc.stderr


ATTENTION_CASES = {
    # name: (Q, K, V shapes, attributes, extra inputs)
    "4d_gqa_causal": ([(2, 8, 5, 16), (2, 2, 5, 16), (2, 2, 5, 12)], {"is_causal": 1}, {}),
    "3d_gqa_mask_float": ([(2, 5, 64), (2, 7, 32), (2, 7, 32)],
                          {"q_num_heads": 4, "kv_num_heads": 2}, {"mask": (5, 7)}),
    "4d_bool_mask_4d": ([(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8)], {},
                        {"mask_bool": (2, 3, 4, 6)}),
    "4d_past_causal_scaled": ([(1, 4, 3, 8), (1, 2, 3, 8), (1, 2, 3, 8)],
                              {"is_causal": 1, "scale": 0.2}, {"past": 5}),
    "3d_past_softcap": ([(2, 3, 24), (2, 3, 24), (2, 3, 24)],
                        {"q_num_heads": 3, "kv_num_heads": 3, "softcap": 2.5},
                        {"past": 4, "mask": (3, 7)}),
}


@pytest.mark.parametrize("case", list(ATTENTION_CASES))
def test_attention_matches_onnxruntime(case, tmp_path):
    shapes, attrs, extra = ATTENTION_CASES[case]
    q, k, v = (_random(s, np.float32) for s in shapes)
    mask = None
    if "mask" in extra:
        mask = _random(extra["mask"], np.float32)
    elif "mask_bool" in extra:
        mask = RNG.random(extra["mask_bool"]) < 0.7
        mask[..., 0] = True  # keep every row attending somewhere
    past_k = past_v = None
    if "past" in extra:
        four_d = len(shapes[0]) == 4
        batch = shapes[1][0]
        kv_heads = shapes[1][1] if four_d else attrs["kv_num_heads"]
        head_k = shapes[1][3] if four_d else shapes[1][2] // kv_heads
        head_v = shapes[2][3] if four_d else shapes[2][2] // kv_heads
        past_k = _random((batch, kv_heads, extra["past"], head_k), np.float32)
        past_v = _random((batch, kv_heads, extra["past"], head_v), np.float32)
    inputs = [("Q", q), ("K", k), ("V", v), ("attn_mask", mask), ("past_key", past_k),
              ("past_value", past_v)]
    while inputs[-1][1] is None:
        inputs.pop()
    outputs = ["Y", "present_key", "present_value"] if past_k is not None else ["Y"]
    model = _model("Attention", 23, inputs, outputs, **attrs)
    _check(model, [a for _, a in inputs if a is not None], tmp_path)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_qk_matmul_output(mode, tmp_path):
    q = _random((2, 3, 4, 8), np.float32)
    k = _random((2, 3, 6, 8), np.float32)
    v = _random((2, 3, 6, 8), np.float32)
    mask = _random((4, 6), np.float32)
    inputs = [("Q", q), ("K", k), ("V", v), ("attn_mask", mask)]
    model = _model("Attention", 23, inputs, ["Y", "", "", "qk"], qk_matmul_output_mode=mode,
                   softcap=3.0)
    _check(model, [q, k, v, mask], tmp_path)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
def test_rotary_embedding_matches_onnxruntime(interleaved, rotary_dim, tmp_path):
    x = _random((2, 3, 5, 8), np.float32)  # [batch, heads, seq, head_size]
    half = (rotary_dim or 8) // 2
    angles = RNG.random((16, half)).astype(np.float32) * 3
    cos, sin = np.cos(angles), np.sin(angles)
    pos = RNG.integers(0, 16, size=(2, 5)).astype(np.int64)
    attrs = {"interleaved": interleaved}
    if rotary_dim:
        attrs["rotary_embedding_dim"] = rotary_dim
        attrs["num_heads"] = 3  # onnxruntime wants it with rotary_embedding_dim
    inputs = [("X", x), ("cos", cos), ("sin", sin), ("pos", pos)]
    model = _model("RotaryEmbedding", 23, inputs, ["Y"], **attrs)
    _check(model, [x, cos, sin, pos], tmp_path)


def test_rotary_embedding_3d_without_position_ids(tmp_path):
    x = _random((2, 5, 32), np.float32)  # [batch, seq, heads * head_size], 4 heads
    angles = RNG.random((2, 5, 4)).astype(np.float32) * 3
    cos, sin = np.cos(angles), np.sin(angles)
    model = _model("RotaryEmbedding", 23, [("X", x), ("cos", cos), ("sin", sin)], ["Y"],
                   num_heads=4)
    _check(model, [x, cos, sin], tmp_path)
