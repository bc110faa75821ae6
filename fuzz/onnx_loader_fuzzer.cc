// libFuzzer target: arbitrary bytes into Model::LoadOnnx and, when a model loads, one Run on
// generated probe inputs (declared shapes, dynamic dims 1; small values). The engine must
// return a Status for anything it is given: no crash, no sanitizer report, no hang.
//
// Build and run with fuzz/run.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace {

constexpr int64_t kMaxProbeElements = 1 << 16;

bool ProbeInputs(const serveml::engine::Model& model, std::vector<serveml::Tensor>* out) {
  for (const auto& info : model.inputs()) {
    std::vector<int64_t> shape = info.shape;
    int64_t n = 1;
    for (int64_t& d : shape) {
      if (d < 0) d = 1;
      if (d > kMaxProbeElements) return false;
      n *= d;
      if (n > kMaxProbeElements) return false;
    }
    const serveml::DType dt =
        info.dtype == serveml::DType::kUndefined ? serveml::DType::kFloat32 : info.dtype;
    serveml::Tensor t(dt, shape);
    if (dt == serveml::DType::kFloat32) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.5f * static_cast<float>(i % 7);
    } else if (dt == serveml::DType::kInt64) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = i % 3;
    }
    out->push_back(std::move(t));
  }
  return true;
}

}  // namespace

// Legal models can ask for seconds of work (a 2^28-element Tile, a 128x128 convolution
// kernel, a Loop running to its 30 s budget); under ASan that is a hang to libFuzzer. The
// engine's own limits are lowered so every unit stays well inside the per-unit timeout.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  serveml::engine::SetTensorElementLimit(int64_t{1} << 22);
  serveml::engine::SetNodeWorkLimit(2e7);
  setenv("SERVEML_ENGINE_LOOP_SECONDS", "1", /*overwrite=*/1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto loaded = serveml::engine::Model::LoadOnnx(bytes);
  if (!loaded.ok()) return 0;
  std::vector<serveml::Tensor> inputs;
  if (!ProbeInputs(**loaded, &inputs)) return 0;
  auto outputs = (*loaded)->Run(inputs);
  (void)outputs;
  return 0;
}
