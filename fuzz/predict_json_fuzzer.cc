// libFuzzer target: the JSON request codec of POST /api/v1/predict/{id} on arbitrary bodies,
// against the three signature shapes it serves (named tabular features, one rank-3 tensor,
// one column-wide input per feature). Errors are expected; crashes, hangs and sanitizer
// reports are bugs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/predict_codec.h"

namespace {

using serveml::DType;
using serveml::engine::TensorInfo;
using serveml::runtime::ModelSignature;

TensorInfo Info(const char* name, DType dtype, std::vector<int64_t> shape) {
  TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.has_shape = true;
  return t;
}

const ModelSignature& Tabular() {
  static const ModelSignature s = [] {
    ModelSignature s;
    s.inputs.push_back(Info("X", DType::kFloat32, {-1, 4}));
    s.outputs.push_back(Info("y", DType::kFloat32, {-1, 1}));
    s.feature_names = {"sepal_length", "sepal_width", "petal_length", "petal_width"};
    return s;
  }();
  return s;
}

const ModelSignature& Tensor3() {
  static const ModelSignature s = [] {
    ModelSignature s;
    s.inputs.push_back(Info("image", DType::kFloat64, {-1, 2, 3}));
    s.outputs.push_back(Info("y", DType::kFloat32, {-1, 2}));
    return s;
  }();
  return s;
}

const ModelSignature& PerFeatureInputs() {
  static const ModelSignature s = [] {
    ModelSignature s;
    s.inputs.push_back(Info("age", DType::kInt64, {-1, 1}));
    s.inputs.push_back(Info("income", DType::kFloat32, {-1, 1}));
    s.inputs.push_back(Info("city", DType::kString, {-1, 1}));
    s.outputs.push_back(Info("y", DType::kFloat32, {-1, 1}));
    s.feature_names = {"age", "income", "city"};
    s.features_are_inputs = true;
    return s;
  }();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)serveml::api::ParsePredictRequest(body, Tabular());
  (void)serveml::api::ParsePredictRequest(body, Tensor3());
  (void)serveml::api::ParsePredictRequest(body, PerFeatureInputs());
  return 0;
}
