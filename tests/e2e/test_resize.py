"""Resize (and the deprecated Upsample) through `serveml run`, compared with onnxruntime on
random inputs: bilinear/nearest/cubic, the coordinate transformation modes, scales and sizes
(including `axes`, so one model serves several batch sizes), roi with extrapolation,
antialiasing, float64 and uint8 data, and the opset-10 / Upsample forms. ONNX's own backend
cases for Resize run in tests/ops/run_conformance.py.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_engine_run import assert_matches_ort, serveml_run

RNG = np.random.default_rng(2024)

_ELEM = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
         np.uint8: TensorProto.UINT8}


def resize_model(rank: int, *, scales=None, sizes=None, roi=None, axes=None, opset=19,
                 dtype=np.float32, op="Resize", **attrs) -> onnx.ModelProto:
    """X (rank dims, all symbolic) -> Resize -> Y; scales / sizes / roi are initializers."""
    elem = _ELEM[dtype]
    inits, ins = [], ["X"]
    if op == "Upsample" or opset < 11:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        ins.append("scales")
    else:
        if roi is None and opset < 13:
            roi = []  # roi is a required input before opset 13 (may be empty)
        if roi is not None:
            inits.append(numpy_helper.from_array(np.array(roi, np.float32), "roi"))
        ins.append("roi" if roi is not None else "")
        if scales is not None:
            inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        ins.append("scales" if scales is not None else "")
        if sizes is not None:
            inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
            ins.append("sizes")
    if axes is not None:
        attrs["axes"] = axes
    node = helper.make_node(op, ins, ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "resize",
        [helper.make_tensor_value_info("X", elem, [f"d{i}" for i in range(rank)])],
        [helper.make_tensor_value_info("Y", elem, None)], initializer=inits)
    return with_ir(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def with_ir(model: onnx.ModelProto) -> onnx.ModelProto:
    model.ir_version = 9  # onnxruntime reads IR versions up to 11; onnx.helper writes newer
    return model


def rand(shape, dtype=np.float32):
    if dtype == np.uint8:
        return RNG.integers(0, 256, size=shape, dtype=np.uint8)
    return RNG.standard_normal(shape).astype(dtype)


NCHW = (2, 3, 7, 9)

CASES = {
    # name: (input shape, model kwargs)
    "bilinear_half_pixel_up2": (NCHW, dict(scales=[1, 1, 2, 2], mode="linear")),
    "bilinear_half_pixel_down05": ((2, 3, 8, 10), dict(scales=[1, 1, 0.5, 0.5], mode="linear")),
    "bilinear_half_pixel_frac": (NCHW, dict(scales=[1, 1, 1.7, 0.6], mode="linear")),
    "bilinear_align_corners": (NCHW, dict(sizes=[2, 3, 13, 4], mode="linear",
                                          coordinate_transformation_mode="align_corners")),
    "bilinear_asymmetric": (NCHW, dict(scales=[1, 1, 2.5, 1.5], mode="linear",
                                       coordinate_transformation_mode="asymmetric")),
    "bilinear_pytorch_half_pixel": (
        NCHW, dict(sizes=[2, 3, 1, 5], mode="linear",
                   coordinate_transformation_mode="pytorch_half_pixel")),
    "nearest_asymmetric_floor_up": (NCHW, dict(scales=[1, 1, 2, 3], mode="nearest",
                                               coordinate_transformation_mode="asymmetric",
                                               nearest_mode="floor")),
    "nearest_asymmetric_floor_down": (NCHW, dict(scales=[1, 1, 0.5, 0.75], mode="nearest",
                                                 coordinate_transformation_mode="asymmetric",
                                                 nearest_mode="floor")),
    "nearest_half_pixel_default": (NCHW, dict(scales=[1, 1, 1.5, 0.75], mode="nearest")),
    "nearest_round_prefer_ceil": (NCHW, dict(sizes=[2, 3, 11, 5], mode="nearest",
                                             nearest_mode="round_prefer_ceil")),
    "nearest_ceil_align_corners": (NCHW, dict(sizes=[2, 3, 10, 4], mode="nearest",
                                              nearest_mode="ceil",
                                              coordinate_transformation_mode="align_corners")),
    "cubic_align_corners_up": (NCHW, dict(scales=[1, 1, 2, 2], mode="cubic",
                                          coordinate_transformation_mode="align_corners")),
    "cubic_half_pixel_down": ((1, 2, 12, 9), dict(scales=[1, 1, 0.5, 0.7], mode="cubic")),
    "cubic_exclude_outside": (NCHW, dict(scales=[1, 1, 1.5, 2], mode="cubic",
                                         cubic_coeff_a=-0.5, exclude_outside=1)),
    "linear_antialias_down": ((1, 2, 16, 12), dict(scales=[1, 1, 0.4, 0.5], mode="linear",
                                                   antialias=1)),
    "cubic_antialias_down": ((1, 2, 16, 12), dict(sizes=[1, 2, 5, 7], mode="cubic",
                                                  antialias=1)),
    "tf_crop_and_resize": (NCHW, dict(sizes=[2, 3, 6, 8], roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2],
                                      mode="linear", extrapolation_value=7.5,
                                      coordinate_transformation_mode="tf_crop_and_resize")),
    "not_larger_axes": (NCHW, dict(sizes=[20, 20], axes=[2, 3], mode="linear",
                                   keep_aspect_ratio_policy="not_larger")),
    "not_smaller_axes": (NCHW, dict(sizes=[4, 4], axes=[2, 3], mode="nearest",
                                    keep_aspect_ratio_policy="not_smaller")),
    "linear_3d_last_axis": ((4, 5, 11), dict(scales=[1, 1, 1.8], mode="linear")),
    "linear_2d": ((5, 13), dict(scales=[1.4, 0.7], mode="linear")),
    "identity_scales": (NCHW, dict(scales=[1, 1, 1, 1], mode="linear")),
    "uint8_nearest": (NCHW, dict(scales=[1, 1, 2, 2], mode="nearest", dtype=np.uint8)),
    "resize10_nearest": (NCHW, dict(scales=[1, 1, 2, 3], mode="nearest", opset=10)),
    "resize10_linear": (NCHW, dict(scales=[1, 1, 2, 2], mode="linear", opset=10)),
    "upsample9_nearest": (NCHW, dict(scales=[1, 1, 2, 2], mode="nearest", opset=9,
                                     op="Upsample")),
    "opset11_bilinear": (NCHW, dict(scales=[1, 1, 2, 2], mode="linear", opset=11)),
    "opset13_sizes_cubic": (NCHW, dict(sizes=[2, 3, 9, 5], mode="cubic", opset=13)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_resize_matches_onnxruntime(tmp_path, name):
    shape, kw = CASES[name]
    dtype = kw.get("dtype", np.float32)
    model = resize_model(len(shape), **kw)
    assert_matches_ort(model, [rand(shape, dtype)], tmp_path, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_resize_sizes_with_axes_any_batch(tmp_path, batch, mode):
    """One model, sizes for the spatial axes only: the batch dimension passes through."""
    model = resize_model(4, sizes=[10, 6], axes=[2, 3], mode=mode)
    assert_matches_ort(model, [rand((batch, 3, 7, 9))], tmp_path / str(batch),
                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_resize_sizes_full_rank(tmp_path, batch):
    model = resize_model(4, sizes=[batch, 3, 14, 5], mode="linear")
    assert_matches_ort(model, [rand((batch, 3, 7, 9))], tmp_path, rtol=1e-5, atol=1e-5)


def test_resize_runtime_scales_input(tmp_path):
    """scales fed at run time (not an initializer): the taps are computed per run."""
    node = helper.make_node("Resize", ["X", "", "S"], ["Y"], mode="linear")
    graph = helper.make_graph(
        [node], "resize",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", "C", "H", "W"]),
         helper.make_tensor_value_info("S", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = with_ir(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]))
    for i, s in enumerate(([1, 1, 2, 2], [1, 1, 0.5, 1.25])):
        x = rand((1, 2, 6, 8))
        assert_matches_ort(model, [x, np.array(s, np.float32)], tmp_path / str(i),
                           rtol=1e-5, atol=1e-5)


def test_resize_rejects_scales_and_sizes_together(tmp_path):
    model = resize_model(4, scales=[1, 1, 2, 2], sizes=[1, 1, 4, 4], mode="linear")
    proc, _ = serveml_run(model, [rand((1, 1, 2, 2))], tmp_path)
    assert proc.returncode != 0
    assert "scales or sizes" in proc.stderr


def test_resize_rejects_wrong_scales_length(tmp_path):
    model = resize_model(4, scales=[2, 2], mode="nearest")
    proc, _ = serveml_run(model, [rand((1, 1, 2, 2))], tmp_path)
    assert proc.returncode != 0
    assert "scales has 2 values" in proc.stderr


# onnxruntime has no float64 Resize and rejects negative axes; ONNX's reference evaluator
# (the source of the backend test data) is the reference for these.
@pytest.mark.parametrize("kw", [
    dict(scales=[1, 1, 2, 0.5], mode="linear", dtype=np.float64),
    dict(sizes=[5, 3], axes=[-1, -2], mode="cubic", dtype=np.float64),
    dict(sizes=[4, 4], axes=[-2, -1], mode="nearest", keep_aspect_ratio_policy="not_smaller"),
    dict(scales=[0.7], axes=[3], mode="linear",
         coordinate_transformation_mode="half_pixel_symmetric"),
    dict(scales=[1, 1, 0.6, 0.6], mode="nearest", coordinate_transformation_mode="asymmetric"),
], ids=["float64_bilinear", "float64_cubic_neg_axes", "not_smaller_neg_axes",
        "half_pixel_symmetric", "nearest_asymmetric_0p6"])
def test_resize_matches_onnx_reference(tmp_path, kw):
    from onnx.reference import ReferenceEvaluator

    dtype = kw.get("dtype", np.float32)
    model = resize_model(4, **kw)
    x = rand(NCHW, dtype)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    if "axes" in kw:  # the reference evaluator handles only non-negative axes
        kw = dict(kw, axes=[a % 4 for a in kw["axes"]])
    (expected,) = ReferenceEvaluator(resize_model(4, **kw)).run(None, {"X": x})
    assert ours["Y"].dtype == expected.dtype
    assert ours["Y"].shape == expected.shape
    np.testing.assert_allclose(ours["Y"], expected, rtol=1e-6, atol=1e-6)
