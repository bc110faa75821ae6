// Vectorised in-place Relu for float buffers, used by the kernels that apply a fused Relu
// after their main loop (Gemm, MatMul, Conv's GEMM path). Same values as ReluOf (kernel.h):
// negative values become 0, NaN stays NaN. AVX-512 picked at run time; other CPUs take the
// portable loop.
//
// Thread safety: may be called concurrently.
#pragma once

#include <cstdint>

namespace serveml::engine {

// p[i] = ReluOf(p[i]) for i < n.
void ReluInPlace(float* p, int64_t n);

}  // namespace serveml::engine
