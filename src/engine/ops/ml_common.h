// Shared pieces of the ONNX-ML operators: post transforms with onnxruntime's semantics
// (ml_common.h there), so scores match the reference runtime bit for bit where possible.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/onnx/onnx_proto.h"

namespace serveml::engine {

enum class PostTransform { kNone, kLogistic, kSoftmax, kSoftmaxZero, kProbit };

Result<PostTransform> ParsePostTransform(const std::string& s);

inline float MlLogistic(float v) {
  float e = 1.0f / (1.0f + std::exp(-std::abs(v)));
  return v < 0 ? 1.0f - e : e;
}

inline float MlErfInv(float x) {
  float sgn = x < 0 ? -1.0f : 1.0f;
  x = (1 - x) * (1 + x);
  float lg = std::log(x);
  float v = 2 / (static_cast<float>(M_PI) * 0.147f) + 0.5f * lg;  // as onnxruntime
  float v2 = 1 / (0.147f) * lg;
  float v3 = -v + std::sqrt(v * v - v2);
  return sgn * std::sqrt(v3);
}

inline float MlProbit(float v) { return 1.41421356f * MlErfInv(2 * v - 1); }

inline void MlSoftmax(float* s, int64_t n) {
  float mx = -std::numeric_limits<float>::max();
  for (int64_t i = 0; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    s[i] = std::exp(s[i] - mx);
    sum += s[i];
  }
  for (int64_t i = 0; i < n; ++i) s[i] /= sum;
}

// Softmax that leaves (near-)zero scores at zero-ish, as onnxruntime's ComputeSoftmaxZero.
inline void MlSoftmaxZero(float* s, int64_t n) {
  float mx = -std::numeric_limits<float>::max();
  for (int64_t i = 0; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  const float exp_neg_max = std::exp(-mx);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (s[i] > 0.0000001f || s[i] < -0.0000001f) {
      s[i] = std::exp(s[i] - mx);
      sum += s[i];
    } else {
      s[i] *= exp_neg_max;
    }
  }
  for (int64_t i = 0; i < n; ++i) s[i] /= sum;
}

// Applies `t` in place to `rows` rows of `cols` scores (cols >= 2 semantics; for cols == 1
// only PROBIT changes the score, as in onnxruntime).
void ApplyPostTransform(PostTransform t, float* scores, int64_t rows, int64_t cols);

// Copies a float/double/int32/int64 [N,F] (or [F]) tensor into floats.
Status InputAsFloat(const Tensor& x, std::vector<float>* buf, const float** data);

// The TENSOR attribute `name` of `node` as a Tensor, or nullopt when absent. InvalidInput
// when the attribute has another type or the tensor is malformed.
Result<std::optional<Tensor>> TensorAttr(const onnx::NodeProto& node, std::string_view name);

// A list of reals given either as a FLOATS attribute or as a float/double TENSOR attribute
// (the `*_as_tensor` / opset-4+ spelling). Values are widened to double exactly, so
// `is_double` tells which precision the model meant.
struct RealList {
  std::vector<double> values;
  bool present = false;    // either attribute was given
  bool is_double = false;  // given as a double tensor
};

// Reads `floats_name` (FLOATS) and/or `tensor_name` (TENSOR); giving both is InvalidInput.
// Either name may be empty to skip it.
Result<RealList> ReadRealList(const onnx::NodeProto& node, std::string_view floats_name,
                              std::string_view tensor_name);

// Rows and features of a classic-ML input: [N, F] or [F] (one row). InvalidInput otherwise.
Status MlRowsAndFeatures(const Tensor& x, std::string_view op, int64_t* rows, int64_t* features);

}  // namespace serveml::engine
