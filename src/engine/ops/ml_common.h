// Shared pieces of the ONNX-ML operators: post transforms with onnxruntime's semantics
// (ml_common.h there), so scores match the reference runtime bit for bit where possible.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

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
  float v = 2 / (3.14159f * 0.147f) + 0.5f * lg;
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

}  // namespace serveml::engine
