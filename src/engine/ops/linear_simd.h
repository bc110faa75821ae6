// Vectorised pieces of the ONNX-ML linear models (ml_linear.cc): per-row dot-product scores
// and the logistic post transform. AVX-512 and AVX2 kernels picked at run time by the
// engine's ISA (isa.h); the portable code gives the same results up to float rounding.
//
// Thread safety: all functions may be called concurrently.
#pragma once

#include <cstdint>

namespace serveml::engine {

// scores[i, j] = (bias ? bias[j] : 0) + sum over p of x[i, p] * w[j, p], for x [n, f] and
// w [targets, f] row-major; scores is [n, targets].
void LinearRowScores(const float* x, int64_t n, int64_t f, const float* w, const float* bias,
                     int64_t targets, float* scores);

// v[i] = 1 / (1 + exp(-v[i])), computed as onnxruntime's ML logistic: e = 1 / (1 +
// exp(-|v|)), then e for v >= 0 and 1 - e for v < 0. NaN stays NaN.
void LogisticInPlace(float* v, int64_t n);

}  // namespace serveml::engine
