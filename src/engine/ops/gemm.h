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
#include <memory>
#include <type_traits>
#include <vector>

namespace serveml::engine {

inline constexpr int64_t kSmallM = 8;

// Sets the BLAS libraries to one thread (once per process; per calling thread for OpenMP).
void InitBlasThreads();

void Sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void Dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
           int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// C[m, n] = alpha * op(A) * op(B) + beta * C for any arithmetic T, row-major; lda/ldb/ldc are
// the row strides as stored. float and double go through Sgemm/Dgemm; other types (integer
// MatMul, Einsum) through a plain loop in T's own arithmetic. With beta == 0, C is only
// written.
template <typename T>
void GemmAny(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
             const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else if constexpr (std::is_same_v<T, double>) {
    Dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        T acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          const T av = ta ? a[p * lda + i] : a[i * lda + p];
          const T bv = tb ? b[j * ldb + p] : b[p * ldb + j];
          acc = static_cast<T>(acc + av * bv);
        }
        const T prev = beta == T(0) ? T(0) : static_cast<T>(beta * c[i * ldc + j]);
        c[i * ldc + j] = static_cast<T>(alpha * acc + prev);
      }
    }
  }
}

// Y[M, N] = X[M, K] * W[K, N] (+ bias[N]) for a W fixed at load (Gemm with a constant B).
// With oneDNN, M > kSmallM (and at least ~0.5M multiply-adds) runs its matmul primitive with W
// reordered once into the layout the primitive prefers and the bias (and a Relu, SetRelu)
// applied in the same pass; primitives are built on first use of an M and kept (up to
// kMaxCachedShapes distinct M; later ones take Sgemm). Small M and builds without oneDNN run
// Sgemm.
class ConstBSgemm {
 public:
  static constexpr int kMaxCachedShapes = 16;
  // w: [k, n] row-major; bias: empty or n values.
  ConstBSgemm(std::vector<float> w, int64_t k, int64_t n, std::vector<float> bias);
  ~ConstBSgemm();
  ConstBSgemm(const ConstBSgemm&) = delete;
  ConstBSgemm& operator=(const ConstBSgemm&) = delete;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  // Applies Relu (v > 0 ? v : 0) to every result from now on. Only before the first Run.
  void SetRelu() { relu_ = true; }
  // y[m, n] = x[m, k] * W (+ bias), both row-major and dense. Thread-safe.
  void Run(const float* x, int64_t m, float* y) const;

 private:
  struct Cache;
  struct AlignedFree {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], AlignedFree> w_;  // k * n values, 64-byte aligned
  std::vector<float> bias_;
  int64_t k_, n_;
  bool relu_ = false;
  std::unique_ptr<Cache> cache_;
};

// Which library serves large float products: "oneDNN" or "OpenBLAS" (for reports).
const char* SgemmBackendName();

}  // namespace serveml::engine
