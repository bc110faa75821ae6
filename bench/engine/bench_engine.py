#!/usr/bin/env python3
"""Per-inference latency of the ServeML engine vs onnxruntime, same machine, same run.

Ours: `serveml run MODEL --bench RUNS --batch N` (hidden benchmark mode: times Model::Run in
C++ after a warm-up and prints the median). onnxruntime: the Python package, one
InferenceSession per model with intra_op_num_threads=1 and inter_op_num_threads=1, timed per
sess.run() call after a warm-up. onnxruntime's Python per-call overhead (measured on an
Identity model) is printed too so the small-model rows can be read fairly: it is included in
its numbers, while ours are measured inside the process.

Rows: MLP 64-256-256-10 (batch 1, 64), a small CNN (batch 1, 32), logistic regression via
skl2onnx (batch 1, 1000), and 100-tree random forest / gradient boosting (depth 8, 20
features; batch 1, 1000) when the engine's operator table has the ONNX-ML tree operators, and
the integer GEMMs MatMulInteger and QLinearMatMul of uint8 A [N, 1024] by a constant int8
B [1024, 1024] (batch 256; zero points 128 for A, 3 for B), and QLinearConv of uint8
X [N, 64, 56, 56] by a constant int8 W [64, 64, 3, 3], pads 1 (a ResNet layer; batch 1; zero
points 128 for X, 3 for W).

Usage: bench_engine.py [--binary PATH] [--runs 2000] [--warmup 200]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)


def _init(name, *shape, scale=0.1):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def mlp_model():
    nodes = [helper.make_node("Gemm", ["X", "w1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["Y"])]
    inits = [_init("w1", 64, 256), _init("b1", 256), _init("w2", 256, 256), _init("b2", 256),
             _init("w3", 256, 10), _init("b3", 10)]
    return _model(nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 64])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 10])], inits), 64


def cnn_model():
    nodes = [helper.make_node("Conv", ["X", "c1w", "c1b"], ["c1"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["Y"], transB=1)]
    inits = [_init("c1w", 16, 3, 3, 3), _init("c1b", 16), _init("c2w", 32, 16, 3, 3),
             _init("c2b", 32), _init("fw", 10, 32), _init("fb", 10)]
    return _model(nodes,
                  [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3, 32, 32])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 10])], inits), None


def identity_model():
    return _model([helper.make_node("Identity", ["X"], ["Y"])],
                  [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1])],
                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1])], [])


def _skl_data(n_features):
    X = RNG.standard_normal((2000, n_features)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + 0.3 * RNG.standard_normal(2000) > 0).astype(np.int64)
    return X, y


def _to_onnx(est, X):
    from skl2onnx import to_onnx
    m = to_onnx(est, X[:1], options={id(est): {"zipmap": False}}, target_opset={"": 17,
                                                                                  "ai.onnx.ml": 3})
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return m


def logreg_model():
    from sklearn.linear_model import LogisticRegression
    X, y = _skl_data(20)
    return _to_onnx(LogisticRegression(max_iter=500).fit(X, y), X)


def forest_model():
    from sklearn.ensemble import RandomForestClassifier
    X, y = _skl_data(20)
    return _to_onnx(RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)
                    .fit(X, y), X)


def gboost_model():
    from sklearn.ensemble import GradientBoostingClassifier
    X, y = _skl_data(20)
    return _to_onnx(GradientBoostingClassifier(n_estimators=100, max_depth=8, random_state=0)
                    .fit(X, y), X)


def _int_gemm_model(op: str, k=1024, n=1024):
    b = numpy_helper.from_array(RNG.integers(-128, 128, size=(k, n)).astype(np.int8), "b")
    za = numpy_helper.from_array(np.array(128, np.uint8), "za")
    zb = numpy_helper.from_array(np.array(3, np.int8), "zb")
    x = helper.make_tensor_value_info("X", TensorProto.UINT8, ["N", k])
    if op == "MatMulInteger":
        node = helper.make_node(op, ["X", "b", "za", "zb"], ["Y"])
        y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["N", n])
        return _model([node], [x], [y], [b, za, zb])
    scales = [numpy_helper.from_array(np.array(v, np.float32), name)
              for name, v in [("sa", 0.02), ("sb", 0.01), ("sy", 0.5)]]
    zy = numpy_helper.from_array(np.array(128, np.uint8), "zy")
    node = helper.make_node(op, ["X", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["Y"])
    y = helper.make_tensor_value_info("Y", TensorProto.UINT8, ["N", n])
    return _model([node], [x], [y], [b, za, zb, zy, *scales])


def matmul_integer_model():
    return _int_gemm_model("MatMulInteger")


def qlinear_matmul_model():
    return _int_gemm_model("QLinearMatMul")


def qlinear_conv_model(c=64, m=64, hw=56):
    w = numpy_helper.from_array(RNG.integers(-128, 128, size=(m, c, 3, 3)).astype(np.int8), "w")
    inits = [w, numpy_helper.from_array(np.array(128, np.uint8), "zx"),
             numpy_helper.from_array(np.array(3, np.int8), "zw"),
             numpy_helper.from_array(np.array(128, np.uint8), "zy")]
    inits += [numpy_helper.from_array(np.array(v, np.float32), name)
              for name, v in [("sx", 0.02), ("sw", 0.01), ("sy", 0.5)]]
    node = helper.make_node("QLinearConv", ["X", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["Y"],
                            kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("X", TensorProto.UINT8, ["N", c, hw, hw])
    y = helper.make_tensor_value_info("Y", TensorProto.UINT8, ["N", m, hw, hw])
    return _model([node], [x], [y], inits)


def random_input(model: onnx.ModelProto, shape: tuple[int, ...]) -> np.ndarray:
    """Float inputs standard normal; 8-bit integer inputs uniform over the type. (`serveml run
    --bench` feeds integer inputs as zeros; integer GEMM time does not depend on the values.)"""
    elem = model.graph.input[0].type.tensor_type.elem_type
    if elem in (TensorProto.UINT8, TensorProto.INT8):
        dt = np.uint8 if elem == TensorProto.UINT8 else np.int8
        info = np.iinfo(dt)
        return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)
    return RNG.standard_normal(shape).astype(np.float32)


def input_shape(model: onnx.ModelProto, batch: int) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(batch if i == 0 and not d.dim_value else (d.dim_value or 1)
                 for i, d in enumerate(dims))


def time_ort(model: onnx.ModelProto, x: np.ndarray, runs: int, warmup: int) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        sess.run(None, feed)
        times.append(clock() - t0)
    return statistics.median(times) / 1e3


ENGINE_ISA_SEEN: set[str] = set()


def time_ours(binary: Path, model_path: Path, batch: int, runs: int, warmup: int,
              isa: str | None = None) -> float | str:
    env = dict(os.environ)
    if isa:
        env["SERVEML_ENGINE_ISA"] = isa
    proc = subprocess.run([str(binary), "run", str(model_path), "--bench", str(runs), "--batch",
                           str(batch), "--warmup", str(warmup)], capture_output=True, text=True,
                          timeout=600, env=env)
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ENGINE_ISA_SEEN.add(out.get("isa", "?"))
    return out["median_us"]


def cpu_description() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni")
            if f in flags]
    return f"{model}, {os.cpu_count()} cores; ISA flags: {' '.join(have) or 'none of avx2/avx512'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path,
                    default=Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml")))
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--only", default=None, help="run only rows whose name contains this")
    ap.add_argument("--isa", default=os.environ.get("SERVEML_ENGINE_ISA"),
                    help="run ServeML's kernels at this level (portable|avx2|avx512|avx512vnni, "
                         "SERVEML_ENGINE_ISA); onnxruntime cannot be capped and runs natively")
    args = ap.parse_args()
    if args.runs < 1000:
        print("note: fewer than 1000 runs per row", file=sys.stderr)
    if not args.binary.exists():
        print(f"serveml binary not found at {args.binary}", file=sys.stderr)
        return 2

    rows = [("mlp 64-256-256-10", mlp_model, [1, 64]),
            ("cnn 3x32x32", cnn_model, [1, 32]),
            ("logistic regression", logreg_model, [1, 1000]),
            ("random forest 100x d8", forest_model, [1, 1000]),
            ("gradient boosting 100x d8", gboost_model, [1, 1000]),
            ("matmulinteger u8 x s8 1024", matmul_integer_model, [256]),
            ("qlinearmatmul u8 x s8 1024", qlinear_matmul_model, [256]),
            ("qlinearconv u8 x s8 56x56x64", qlinear_conv_model, [1])]
    with tempfile.TemporaryDirectory() as tmp:
        ident = identity_model()
        overhead = time_ort(ident, np.zeros((1, 1), np.float32), args.runs, args.warmup)
        print(f"onnxruntime {ort.__version__} per-call overhead (Identity [1,1], Python "
              f"sess.run): {overhead:.2f} us")
        print(f"CPU: {cpu_description()}")
        print(f"{'model':28s} {'batch':>5s} {'ours us':>10s} {'ort us':>10s} {'ratio':>7s} "
              f"{'net':>6s}")
        for name, build, batches in rows:
            if args.only and args.only not in name:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built = build()
            model = built[0] if isinstance(built, tuple) else built
            path = Path(tmp) / (name.split()[0] + ".onnx")
            path.write_bytes(model.SerializeToString())
            for b in batches:
                x = random_input(model, input_shape(model, b))
                ours = time_ours(args.binary, path, b, args.runs, args.warmup, args.isa)
                if isinstance(ours, str):
                    print(f"{name:28s} {b:5d}    skipped: {ours[:110]}")
                    continue
                theirs = time_ort(model, x, args.runs, args.warmup)
                net = ours / max(theirs - overhead, 1e-9)
                print(f"{name:28s} {b:5d} {ours:10.2f} {theirs:10.2f} {ours / theirs:7.2f} "
                      f"{net:6.2f}", flush=True)
        print("ratio = ours / onnxruntime (median per inference); net = the same with "
              "onnxruntime's Python per-call overhead (above) subtracted, <= 1.0 is the target. "
              "Ours are timed inside the process.")
        print(f"ServeML engine ISA: {', '.join(sorted(ENGINE_ISA_SEEN)) or '?'}"
              + ("" if not args.isa else f" (requested {args.isa})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
