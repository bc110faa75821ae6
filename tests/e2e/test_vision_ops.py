"""End-to-end tests of the vision operators GridSample, NonMaxSuppression and Unique through
`serveml run`, compared with onnxruntime on the same models and random inputs.

GridSample covers every mode x padding_mode x align_corners combination in both spellings
(opset 16: bilinear/bicubic, opset 20: linear/cubic), on 2-D and 3-D inputs, with grid
points inside and outside [-1, 1]. One combination has two readings: cubic with border
padding. The ONNX reference implementation clamps an out-of-range sampling coordinate to the
border before taking the 4x4 cubic taps; onnxruntime and PyTorch keep the coordinate and
clamp each tap index. The engine follows PyTorch (the models using GridSample come from it),
so that combination is checked against onnxruntime like the rest, and
test_gridsample_cubic_border_differs_from_onnx_reference pins the difference.
NonMaxSuppression and Unique run on random
data with ties and duplicates; their integer outputs must match exactly.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from test_engine_run import assert_matches_ort, serveml_run

RNG = np.random.default_rng(20240611)


def _model(node: onnx.NodeProto, inputs: list[tuple[str, int, list]],
           outputs: list[tuple[str, int, list | None]], opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


# --------------------------------------------------------------------------------------------
# GridSample

MODES = {16: ("bilinear", "nearest", "bicubic"), 20: ("linear", "nearest", "cubic")}


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode_index", [0, 1, 2], ids=["linear", "nearest", "cubic"])
@pytest.mark.parametrize("opset", [16, 20])
def test_gridsample_2d_matches_onnxruntime(tmp_path, opset, mode_index, padding_mode,
                                           align_corners):
    mode = MODES[opset][mode_index]
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    # Points well outside [-1, 1] exercise the padding modes (reflection folds several times).
    grid = RNG.uniform(-2.5, 2.5, size=(2, 4, 6, 2)).astype(np.float32)
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode=mode,
                            padding_mode=padding_mode, align_corners=align_corners)
    model = _model(node, [("X", TensorProto.FLOAT, list(x.shape)),
                          ("grid", TensorProto.FLOAT, list(grid.shape))],
                   [("Y", TensorProto.FLOAT, None)], opset)
    assert_matches_ort(model, [x, grid], tmp_path, rtol=1e-4, atol=1e-5)


def test_gridsample_cubic_border_differs_from_onnx_reference(tmp_path):
    """Out-of-range points with cubic + border: we (and onnxruntime) differ from the ONNX
    reference's clamped coordinate; in-range points agree with both."""
    from onnx.reference import ReferenceEvaluator
    x = RNG.standard_normal((1, 1, 5, 7)).astype(np.float32)
    # Unnormalised x 6.7 and -0.8: just past the border (6.5, -0.5), where a tap of the
    # 4x4 window still lands inside the image.
    outside = np.array([[[[1.0571, 0.3], [-1.0857, -0.2]]]], np.float32)  # [1, 1, 2, 2]
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode="cubic",
                            padding_mode="border", align_corners=0)
    model = _model(node, [("X", TensorProto.FLOAT, list(x.shape)),
                          ("grid", TensorProto.FLOAT, list(outside.shape))],
                   [("Y", TensorProto.FLOAT, None)], 20)
    proc, ours = serveml_run(model, [x, outside], tmp_path)
    assert proc.returncode == 0, proc.stderr
    reference = ReferenceEvaluator(model).run(None, {"X": x, "grid": outside})[0]
    assert not np.allclose(ours["Y"], reference, rtol=1e-4, atol=1e-5)
    assert_matches_ort(model, [x, outside], tmp_path / "ort", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_gridsample_3d_matches_onnxruntime(tmp_path, mode, padding_mode, align_corners):
    x = RNG.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    grid = RNG.uniform(-1.8, 1.8, size=(1, 2, 3, 4, 3)).astype(np.float32)
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], mode=mode,
                            padding_mode=padding_mode, align_corners=align_corners)
    model = _model(node, [("X", TensorProto.FLOAT, list(x.shape)),
                          ("grid", TensorProto.FLOAT, list(grid.shape))],
                   [("Y", TensorProto.FLOAT, None)], 20)
    assert_matches_ort(model, [x, grid], tmp_path, rtol=1e-4, atol=1e-5)


def test_gridsample_rejects_mismatched_grid(tmp_path):
    x = np.zeros((1, 1, 4, 4), np.float32)
    grid = np.zeros((1, 3, 3, 3), np.float32)  # last dim must be 2 for a 2-D input
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"])
    model = _model(node, [("X", TensorProto.FLOAT, None), ("grid", TensorProto.FLOAT, None)],
                   [("Y", TensorProto.FLOAT, None)], 20)
    proc, _ = serveml_run(model, [x, grid], tmp_path)
    assert proc.returncode != 0
    assert "grid shape" in proc.stderr


# --------------------------------------------------------------------------------------------
# NonMaxSuppression


def _random_boxes(batches: int, n: int, center_point: bool) -> np.ndarray:
    xy = RNG.uniform(0, 10, size=(batches, n, 2))
    wh = RNG.uniform(0.5, 4, size=(batches, n, 2))
    if center_point:
        return np.concatenate([xy, wh], axis=2).astype(np.float32)
    # [y1, x1, y2, x2], corners flipped for some boxes
    b = np.concatenate([xy[..., ::-1], xy[..., ::-1] + wh[..., ::-1]], axis=2)
    flip = RNG.random((batches, n)) < 0.3
    b[flip] = b[flip][:, [2, 3, 0, 1]]
    return b.astype(np.float32)


@pytest.mark.parametrize("center_point_box", [0, 1])
@pytest.mark.parametrize("with_score_threshold", [False, True])
def test_nonmaxsuppression_matches_onnxruntime(tmp_path, center_point_box,
                                               with_score_threshold):
    batches, classes, n = 2, 3, 60
    boxes = _random_boxes(batches, n, center_point_box == 1)
    # Scores on a coarse grid give many ties (broken by box index).
    scores = (RNG.integers(0, 20, size=(batches, classes, n)) / 20).astype(np.float32)
    inputs = [boxes, scores, np.array([7], np.int64), np.array([0.4], np.float32)]
    names = ["boxes", "scores", "max_out", "iou"]
    types = [TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.INT64, TensorProto.FLOAT]
    if with_score_threshold:
        inputs.append(np.array([0.3], np.float32))
        names.append("score_thr")
        types.append(TensorProto.FLOAT)
    node = helper.make_node("NonMaxSuppression", names, ["selected"],
                            center_point_box=center_point_box)
    model = _model(node, [(nm, t, list(a.shape)) for nm, t, a in zip(names, types, inputs)],
                   [("selected", TensorProto.INT64, None)], 11)
    ours = assert_matches_ort(model, inputs, tmp_path)
    assert ours["selected"].shape[0] > 0


def test_nonmaxsuppression_without_optional_inputs_selects_nothing(tmp_path):
    boxes = _random_boxes(1, 10, False)
    scores = RNG.random((1, 2, 10)).astype(np.float32)
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["selected"])
    model = _model(node, [("boxes", TensorProto.FLOAT, [1, 10, 4]),
                          ("scores", TensorProto.FLOAT, [1, 2, 10])],
                   [("selected", TensorProto.INT64, None)], 10)
    ours = assert_matches_ort(model, [boxes, scores], tmp_path)
    assert ours["selected"].shape == (0, 3)


# --------------------------------------------------------------------------------------------
# Unique

UNIQUE_OUTPUTS = ["Y", "indices", "inverse_indices", "counts"]


@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_unique_flat_matches_onnxruntime(tmp_path, dtype, sorted_):
    x = RNG.integers(-5, 6, size=(4, 9)).astype(dtype)
    node = helper.make_node("Unique", ["X"], UNIQUE_OUTPUTS, sorted=sorted_)
    t = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = _model(node, [("X", t, list(x.shape))],
                   [(o, t if o == "Y" else TensorProto.INT64, None) for o in UNIQUE_OUTPUTS],
                   11)
    assert_matches_ort(model, [x], tmp_path)


@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unique_axis_matches_onnxruntime(tmp_path, axis, sorted_):
    # Few distinct values so that slices repeat along every axis.
    x = RNG.integers(0, 2, size=(6, 5, 2)).astype(np.float32)
    x[3] = x[0]
    x[:, 4] = x[:, 1]
    node = helper.make_node("Unique", ["X"], UNIQUE_OUTPUTS, sorted=sorted_, axis=axis)
    model = _model(node, [("X", TensorProto.FLOAT, list(x.shape))],
                   [(o, TensorProto.FLOAT if o == "Y" else TensorProto.INT64, None)
                    for o in UNIQUE_OUTPUTS], 11)
    assert_matches_ort(model, [x], tmp_path)
