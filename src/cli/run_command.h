// `serveml run MODEL --input NAME=FILE.pb ... --output-dir DIR`: runs an ONNX model once
// without a server, reading inputs as serialized ONNX TensorProto files and writing each
// output as DIR/<output name>.pb. This is how conformance suites drive the engine.
#pragma once

namespace serveml::cli {

// argv[0] is "run". Returns the process exit code (0 ok, 1 model error, 2 usage error);
// errors are printed to stderr.
int RunModelCommand(int argc, char** argv);

}  // namespace serveml::cli
