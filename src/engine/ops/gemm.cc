#include "engine/ops/gemm.h"

#include <cblas.h>

#include <cstdlib>
#include <mutex>

#ifdef SERVEML_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#endif

namespace serveml::engine {
namespace {

// C[m, n] = alpha * A[m, k] * B[k, n] + beta * C, small m: row of C stays in cache while
// rows of B stream through (axpy form, vectorises over n).
__attribute__((target_clones("avx512f", "avx2", "default"))) void SmallSgemmNN(
    int64_t m, int64_t n, int64_t k, float alpha, const float* __restrict a, int64_t lda,
    const float* __restrict b, int64_t ldb, float beta, float* __restrict c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* __restrict ci = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) ci[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
    const float* ai = a + i * lda;
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {  // four rows of B per pass: fewer loads/stores of C
      const float a0 = alpha * ai[p], a1 = alpha * ai[p + 1];
      const float a2 = alpha * ai[p + 2], a3 = alpha * ai[p + 3];
      const float* b0 = b + p * ldb;
      const float* b1 = b0 + ldb;
      const float* b2 = b1 + ldb;
      const float* b3 = b2 + ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
    }
    for (; p < k; ++p) {
      const float av = alpha * ai[p];
      const float* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

#ifdef SERVEML_HAVE_DNNL
void OneThreadForThisThread() {
  static std::once_flag once;
  // No ITT task annotations (VTune hooks) around every call: they cost ~5 % of a small GEMM.
  std::call_once(once, [] { setenv("DNNL_ITT_TASK_LEVEL", "0", /*overwrite=*/0); });
  thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}
#endif

}  // namespace

void InitBlasThreads() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

const char* SgemmBackendName() {
#ifdef SERVEML_HAVE_DNNL
  return "oneDNN";
#else
  return "OpenBLAS";
#endif
}

void Sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (!ta && !tb && m <= kSmallM) {
    SmallSgemmNN(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#ifdef SERVEML_HAVE_DNNL
  OneThreadForThisThread();
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  InitBlasThreads();
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
#endif
}

void Dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
           int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  InitBlasThreads();
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace serveml::engine
