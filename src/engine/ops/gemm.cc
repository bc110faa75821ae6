#include "engine/ops/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <utility>

#include "engine/isa.h"
#include "engine/ops/relu_simd.h"
#include "engine/ops/simd_target.h"

#ifdef SERVEML_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>

#include <dnnl.hpp>
#endif

namespace serveml::engine {
namespace {

// C[m, n] = alpha * A[m, k] * B[k, n] + beta * C, small m: row of C stays in cache while
// rows of B stream through (axpy form, vectorises over n). Compiled once per ISA below (the
// body is inlined into each), picked by the engine's dispatch (isa.h).
__attribute__((always_inline)) inline void SmallSgemmNNBody(int64_t m, int64_t n, int64_t k,
                                                            float alpha, const float* __restrict a,
                                                            int64_t lda, const float* __restrict b,
                                                            int64_t ldb, float beta,
                                                            float* __restrict c, int64_t ldc) {
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

#define SERVEML_SMALL_SGEMM_ARGS                                                        \
  int64_t m, int64_t n, int64_t k, float alpha, const float *__restrict a, int64_t lda, \
      const float *__restrict b, int64_t ldb, float beta, float *__restrict c, int64_t ldc
SERVEML_SIMD_BEGIN("avx512f")
void SmallSgemmNNAvx512(SERVEML_SMALL_SGEMM_ARGS) {
  SmallSgemmNNBody(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
SERVEML_SIMD_END
SERVEML_SIMD_BEGIN("avx2")
void SmallSgemmNNAvx2(SERVEML_SMALL_SGEMM_ARGS) {
  SmallSgemmNNBody(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
SERVEML_SIMD_END
void SmallSgemmNNPortable(SERVEML_SMALL_SGEMM_ARGS) {
  SmallSgemmNNBody(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#undef SERVEML_SMALL_SGEMM_ARGS

using SmallSgemmFn = void (*)(int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                              int64_t, float, float*, int64_t);

void SmallSgemmNN(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  static const SmallSgemmFn fn = UseIsa(Isa::kAvx512) ? SmallSgemmNNAvx512
                                 : UseIsa(Isa::kAvx2) ? SmallSgemmNNAvx2
                                                      : SmallSgemmNNPortable;
  fn(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#ifdef SERVEML_HAVE_DNNL
void OneThreadForThisThread() {
  (void)ActiveIsa();  // caps oneDNN first when SERVEML_ENGINE_ISA lowers the level
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

#ifdef SERVEML_HAVE_DNNL
namespace {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// One matmul primitive for one M, with the weights (and bias) in the layout it expects.
struct MatmulEntry {
  int64_t m;
  uint64_t id;  // process-unique, never reused (keys the per-thread memory objects)
  dnnl::matmul prim;
  dnnl::memory weights;
  dnnl::memory bias;  // empty without bias
  dnnl::memory::desc src_md, dst_md, scratch_md;
};

// The src/dst/scratchpad memory objects of one entry on the calling thread, re-pointed at
// each call's buffers (set_data_handle) instead of created per call. A few entries per
// thread, most recently used first; keyed by MatmulEntry::id so an entry of an unloaded
// model is never confused with a new one.
struct ThreadMemories {
  uint64_t id = 0;
  dnnl::memory src, dst, scratch;
};
constexpr size_t kThreadMemoryEntries = 16;

ThreadMemories& MemoriesFor(const MatmulEntry& e, const dnnl::engine& eng, void* scratch) {
  thread_local std::vector<ThreadMemories> cache;
  for (size_t i = 0; i < cache.size(); ++i) {
    if (cache[i].id == e.id) {
      if (i != 0)
        std::rotate(cache.begin(), cache.begin() + static_cast<std::ptrdiff_t>(i),
                    cache.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return cache.front();
    }
  }
  ThreadMemories t;
  t.id = e.id;
  t.src = dnnl::memory(e.src_md, eng, DNNL_MEMORY_NONE);
  t.dst = dnnl::memory(e.dst_md, eng, DNNL_MEMORY_NONE);
  t.scratch = dnnl::memory(e.scratch_md, eng, scratch);
  if (cache.size() == kThreadMemoryEntries) cache.pop_back();
  cache.insert(cache.begin(), std::move(t));
  return cache.front();
}

}  // namespace

struct ConstBSgemm::Cache {
  std::mutex mu;
  std::vector<std::unique_ptr<MatmulEntry>> entries;  // guarded by mu; entries never move
  bool full = false;                                  // guarded by mu

  // The entry for `m`, built on first use; null past the cache size or if oneDNN fails.
  const MatmulEntry* Get(const ConstBSgemm& g, int64_t m) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& e : entries) {
      if (e->m == m) return e.get();
    }
    if (full) return nullptr;
    if (entries.size() >= static_cast<size_t>(kMaxCachedShapes)) {
      full = true;
      return nullptr;
    }
    try {
      using dnnl::memory;
      using tag = memory::format_tag;
      const auto f32 = memory::data_type::f32;
      const dnnl::engine& eng = CpuEngine();
      auto e = std::make_unique<MatmulEntry>();
      e->m = m;
      static std::atomic<uint64_t> next_id{1};
      e->id = next_id.fetch_add(1, std::memory_order_relaxed);
      e->src_md = memory::desc({m, g.k_}, f32, tag::ab);
      e->dst_md = memory::desc({m, g.n_}, f32, tag::ab);
      const memory::desc w_any({g.k_, g.n_}, f32, tag::any);
      const memory::desc b_md({1, g.n_}, f32, tag::ab);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      // A fused Relu runs after the matmul (ReluInPlace): oneDNN's relu post-op turns NaN
      // into 0, where onnxruntime, numpy and PyTorch keep NaN.
      const dnnl::matmul::desc d = g.bias_.empty()
                                       ? dnnl::matmul::desc(e->src_md, w_any, e->dst_md)
                                       : dnnl::matmul::desc(e->src_md, w_any, b_md, e->dst_md);
      const dnnl::matmul::primitive_desc pd(d, attr, eng);
      e->prim = dnnl::matmul(pd);
      e->scratch_md = pd.scratchpad_desc();
      for (const auto& other : entries) {  // same layout as an earlier M: share it
        if (other->weights.get_desc() == pd.weights_desc()) e->weights = other->weights;
      }
      if (!e->weights) {
        OneThreadForThisThread();
        memory user({{g.k_, g.n_}, f32, tag::ab}, eng, g.w_.get());
        e->weights = memory(pd.weights_desc(), eng);
        dnnl::stream s(eng);
        dnnl::reorder(user, e->weights).execute(s, user, e->weights);
        s.wait();
      }
      if (!g.bias_.empty()) e->bias = memory(b_md, eng, const_cast<float*>(g.bias_.data()));
      entries.push_back(std::move(e));
      return entries.back().get();
    } catch (const std::exception&) {
      full = true;  // oneDNN cannot serve this product: Sgemm from now on
      return nullptr;
    }
  }
};
#else
struct ConstBSgemm::Cache {};
#endif

ConstBSgemm::ConstBSgemm(std::vector<float> w, int64_t k, int64_t n, std::vector<float> bias)
    : w_(static_cast<float*>(
          ::operator new (std::max<size_t>(w.size(), 1) * sizeof(float), std::align_val_t{64}))),
      bias_(std::move(bias)),
      k_(k),
      n_(n),
      cache_(std::make_unique<Cache>()) {
  std::copy(w.begin(), w.end(), w_.get());  // aligned rows stream faster through the kernels
}

void ConstBSgemm::AlignedFree::operator()(float* p) const {
  ::operator delete (p, std::align_val_t{64});
}

ConstBSgemm::~ConstBSgemm() = default;

void ConstBSgemm::Run(const float* x, int64_t m, float* y) const {
  if (m == 0 || n_ == 0) return;
#ifdef SERVEML_HAVE_DNNL
  // Below ~0.5M multiply-adds the primitive's fixed cost (about a microsecond) outweighs what
  // the prepacked weights save.
  constexpr int64_t kMinWork = int64_t{1} << 19;
  if (m > kSmallM && k_ > 0 && m * n_ * k_ >= kMinWork) {
    if (const MatmulEntry* e = cache_->Get(*this, m)) {
      try {
        OneThreadForThisThread();
        const dnnl::engine& eng = CpuEngine();
        thread_local dnnl::stream stream(eng);
        thread_local std::vector<char> scratch;
        const size_t scratch_bytes = e->scratch_md.get_size();
        if (scratch.size() < scratch_bytes) scratch.resize(scratch_bytes);
        ThreadMemories& mem = MemoriesFor(*e, eng, scratch.data());
        mem.src.set_data_handle(const_cast<float*>(x));
        mem.dst.set_data_handle(y);
        mem.scratch.set_data_handle(scratch.data());  // the buffer may have grown
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, mem.src.get()},
                                   {DNNL_ARG_WEIGHTS, e->weights.get()},
                                   {DNNL_ARG_DST, mem.dst.get()},
                                   {DNNL_ARG_SCRATCHPAD, mem.scratch.get()},
                                   {DNNL_ARG_BIAS, e->bias ? e->bias.get() : nullptr}};
        // The C entry point: no argument map to build on every call.
        dnnl::error::wrap_c_api(
            dnnl_primitive_execute(e->prim.get(), stream.get(), e->bias ? 5 : 4, args),
            "matmul execution failed");
        stream.wait();
        if (relu_) ReluInPlace(y, m * n_);
        return;
      } catch (const std::exception&) {
        // fall through to Sgemm
      }
    }
  }
#endif
  float beta = 0.0f;
  if (!bias_.empty()) {
    for (int64_t i = 0; i < m; ++i) std::copy(bias_.begin(), bias_.end(), y + i * n_);
    beta = 1.0f;
  }
  if (k_ == 0) {
    if (bias_.empty()) std::fill(y, y + m * n_, 0.0f);
  } else {
    Sgemm(false, false, m, n_, k_, 1.0f, x, k_, w_.get(), n_, beta, y, n_);
  }
  if (relu_) ReluInPlace(y, m * n_);
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
