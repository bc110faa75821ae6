"""When onnxruntime's 8-bit integer kernels give the exact answer on this CPU, and a record of
where they may not.

Integer and quantized results are judged against exact arithmetic (numpy int64, or ONNX's
reference evaluator). onnxruntime is a second oracle, asserted only where it is exact too:

* u8 x u8: its x86 kernels widen both operands to 16 bits and multiply-add with vpmaddwd
  (32-bit pair sums): exact on every x86 CPU.
* u8 x s8 with AVX-512 VNNI or AVX-VNNI: vpdpbusds adds the four 8-bit products straight into
  the 32-bit accumulator: exact (it saturates only where int32 itself would overflow, which the
  cases compared with onnxruntime stay far from).
* u8 x s8 without VNNI (AVX2, or AVX-512 without VNNI): vpmaddubsw adds each pair of adjacent
  products a0*b0 + a1*b1 into an int16 and saturates it at [-32768, 32767] (onnxruntime documents
  this; it is why its quantizer has `reduce_range`). The products are of the raw stored values,
  before zero points are subtracted, so the answer is exact only when
  2 * max(u8 operand) * max|s8 operand| <= 32767.
* any other signedness (an int8 left operand): no bound is claimed; onnxruntime is not asserted
  without VNNI.

Where onnxruntime may saturate, `check_onnxruntime` records the difference (in `DIFFERENCES`,
as an `OnnxruntimeMaySaturate` warning, and in the test's junit properties) instead of asserting.

SERVEML_TEST_ASSUME_NO_VNNI=1 makes the detection report "no VNNI" whatever the CPU has, so the
rule's AVX2 side can be exercised on a VNNI machine.
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Callable

import numpy as np

ASSUME_NO_VNNI_ENV = "SERVEML_TEST_ASSUME_NO_VNNI"
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
INT16_MAX = 32767

# (what, reason, summary of the difference) for every comparison with onnxruntime that was
# recorded instead of asserted in this session.
DIFFERENCES: list[tuple[str, str, str]] = []


class OnnxruntimeMaySaturate(UserWarning):
    """A comparison with onnxruntime that was recorded, not asserted."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The x86 feature flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def has_vnni() -> bool:
    """True when the CPU advertises AVX-512 VNNI or AVX-VNNI, unless SERVEML_TEST_ASSUME_NO_VNNI=1.
    Without the flags (or /proc/cpuinfo) the answer is False: onnxruntime is then asserted only
    where no kernel can saturate."""
    if os.environ.get(ASSUME_NO_VNNI_ENV, "") not in ("", "0"):
        return False
    return bool(VNNI_FLAGS & cpu_flags())


def _max_abs(values: np.ndarray) -> int:
    return int(np.abs(np.asarray(values).astype(np.int64)).max(initial=0))


def gemm_saturation(left: np.ndarray, right: np.ndarray) -> str | None:
    """Why onnxruntime's integer GEMM (or convolution) of the stored 8-bit operands `left` (the
    data: A of MatMulInteger/QLinearMatMul, X of ConvInteger/QLinearConv) and `right` (B or W) may
    differ from exact arithmetic on this CPU; None when it cannot."""
    lt, rt = np.asarray(left).dtype, np.asarray(right).dtype
    if lt == np.uint8 and rt == np.uint8:
        return None  # widened to 16 bits, vpmaddwd: exact
    if has_vnni():
        return None
    if lt == np.uint8 and rt == np.int8:
        bound = 2 * _max_abs(left) * _max_abs(right)
        if bound <= INT16_MAX:
            return None
        return (f"no VNNI: u8 x s8 pair sums can reach {bound} > {INT16_MAX}, where "
                "onnxruntime's vpmaddubsw saturates")
    return f"no VNNI: {lt} x {rt} operands, no saturation bound claimed"


# The 8-bit operands of onnxruntime's integer GEMM/convolution kernels in a graph: integer
# operators directly; float Conv/MatMul/Gemm whose two inputs are DequantizeLinear outputs (QDQ
# form, which onnxruntime fuses into QLinearConv/QLinearMatMul).
_INTEGER_OPERANDS = {"MatMulInteger": (0, 1), "ConvInteger": (0, 1), "QLinearMatMul": (0, 3),
                     "QLinearConv": (0, 3)}


def graph_saturation(model, values: dict[str, np.ndarray]) -> list[str]:
    """`gemm_saturation` for every integer GEMM/convolution onnxruntime runs for `model` (an
    onnx.ModelProto), with the operand values taken from `values` (name -> array: initializers
    and every intermediate integer tensor, e.g. from an exact reference run). Empty when
    onnxruntime is exact for the whole graph on this CPU."""
    from onnx import numpy_helper

    known = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    known.update(values)
    producer = {o: n for n in model.graph.node for o in n.output}
    reasons = []
    for node in model.graph.node:
        if node.op_type in _INTEGER_OPERANDS:
            names = [node.input[i] for i in _INTEGER_OPERANDS[node.op_type]]
        elif node.op_type in ("Conv", "MatMul", "Gemm"):
            feeders = [producer.get(i) for i in node.input[:2]]
            if not all(f is not None and f.op_type == "DequantizeLinear" for f in feeders):
                continue
            names = [f.input[0] for f in feeders]
        else:
            continue
        missing = [n for n in names if n not in known]
        where = f"{node.op_type} {node.name or node.output[0]}"
        if missing:
            if not has_vnni():
                reasons.append(f"{where}: operand values unknown ({', '.join(missing)})")
            continue
        reason = gemm_saturation(known[names[0]], known[names[1]])
        if reason:
            reasons.append(f"{where}: {reason}")
    return reasons


def _summary(ours, theirs) -> str:
    if isinstance(theirs, dict):
        return "; ".join(f"{k}: {_summary(ours.get(k), v)}" for k, v in theirs.items())
    a, b = np.asarray(ours), np.asarray(theirs)
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    n = int(np.count_nonzero(diff))
    return "equal" if n == 0 else f"{n} of {diff.size} differ, by up to {diff.max():g}"


def check_onnxruntime(what: str, ours, theirs, saturation: str | list[str] | None,
                      compare: Callable[[object, object], None] = np.testing.assert_array_equal,
                      record_property: Callable[[str, object], None] | None = None) -> bool:
    """Asserts `compare(ours, theirs)` when onnxruntime is exact here (`saturation` empty or
    None); otherwise records how the two differ and returns False without asserting."""
    if not saturation:
        compare(ours, theirs)
        return True
    reason = saturation if isinstance(saturation, str) else "; ".join(saturation)
    summary = _summary(ours, theirs)
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    what = f"{test}: {what}" if test else what
    DIFFERENCES.append((what, reason, summary))
    if record_property is not None:
        record_property("onnxruntime_not_asserted", f"{reason} -> {summary}")
    warnings.warn(OnnxruntimeMaySaturate(
        f"{what}: onnxruntime not asserted ({reason}); vs ServeML: {summary}"), stacklevel=2)
    return False
