// `serveml run MODEL --input NAME=FILE.pb ... --output-dir DIR`: runs an ONNX model once
// without a server, reading inputs as serialized ONNX TensorProto files and writing each
// output as DIR/<output name>.pb. This is how conformance suites drive the engine.
//
// Hidden benchmark mode (bench/engine/bench_engine.py): `--bench RUNS [--batch N]
// [--warmup W]` times RUNS calls of Model::Run (after W warm-up calls, default 200) on the
// given inputs, or on generated random inputs with dynamic batch dims set to N, and prints
// one JSON line {"batch", "runs", "median_us", "p10_us", "p90_us", "mean_us"}.
#pragma once

namespace serveml::cli {

// argv[0] is "run". Returns the process exit code (0 ok, 1 model error, 2 usage error);
// errors are printed to stderr.
int RunModelCommand(int argc, char** argv);

}  // namespace serveml::cli
