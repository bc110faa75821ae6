// Dense matrix products for the kernels (MatMul, Gemm, Conv, ConvTranspose). Row-major:
// C[M,N] = alpha * op(A) * op(B) + beta * C, lda/ldb/ldc are row strides as stored.
//
// float: small M (<= kSmallM rows, e.g. batch-1 inference) with op(A) = A and op(B) = B runs
// an in-house kernel compiled for AVX-512 / AVX2 / baseline and picked at load time
// (GCC target_clones); everything else goes to oneDNN's dnnl_sgemm when the build has it
// (SERVEML_HAVE_DNNL), else OpenBLAS. double: OpenBLAS. Libraries run single-threaded: the
// server's own threads share the cores.
//
// Thread safety: all functions may be called concurrently.
#pragma once

#include <cstdint>

namespace serveml::engine {

inline constexpr int64_t kSmallM = 8;

// Sets the BLAS libraries to one thread (once per process; per calling thread for OpenMP).
void InitBlasThreads();

void Sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void Dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
           int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// Which library serves large float products: "oneDNN" or "OpenBLAS" (for reports).
const char* SgemmBackendName();

}  // namespace serveml::engine
