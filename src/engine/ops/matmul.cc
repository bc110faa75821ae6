// Gemm and MatMul. float/double go through gemm.h (small-M in-house kernel, oneDNN or
// OpenBLAS, single-threaded); integer types use a plain loop. A float Gemm with a constant B,
// transA=0, alpha=1 and no C or a constant row-vector C (the dense-layer form) runs through
// ConstBSgemm (B^T made at load for transB=1, beta*C as its bias); other Gemms with a
// constant float B and transB=1 keep a pre-transposed copy of B made at load.
#include <algorithm>
#include <climits>
#include <memory>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

Status CheckBlasDims(int64_t m, int64_t n, int64_t k) {
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX) {
    return InvalidInput("matrix dimensions exceed the supported size");
  }
  return Status::Ok();
}

#define SERVEML_GEMM_TYPES float, double, int32_t, int64_t, uint32_t, uint64_t

class GemmKernel final : public Kernel {
 public:
  // `b_t`: when defined, B^T materialised at load (B was a constant with transB=1).
  // `dense`: when set, the whole product for float inputs (A * B + beta * C, see MakeGemm).
  GemmKernel(float alpha, float beta, bool ta, bool tb, Tensor b_t,
             std::unique_ptr<ConstBSgemm> dense)
      : alpha_(alpha),
        beta_(beta),
        ta_(ta),
        tb_(tb),
        b_t_(std::move(b_t)),
        dense_(std::move(dense)) {}

  bool FuseRelu() override {
    relu_ = true;
    if (dense_) dense_->SetRelu();
    return true;
  }

  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    const Tensor* c = ctx.input(2);
    bool tb_ = this->tb_;
    if (b_t_.defined()) {
      b = &b_t_;
      tb_ = false;
    }
    if (!a || !b) return InvalidInput("Gemm needs inputs A and B");
    if (a->rank() != 2 || b->rank() != 2) {
      return InvalidInput("Gemm inputs must be 2-D, got " + ShapeToString(a->shape()) + " and " +
                          ShapeToString(b->shape()));
    }
    if (a->dtype() != b->dtype() || (c && c->dtype() != a->dtype())) {
      return InvalidInput("Gemm inputs have different element types");
    }
    const int64_t m = ta_ ? a->dim(1) : a->dim(0);
    const int64_t k = ta_ ? a->dim(0) : a->dim(1);
    const int64_t kb = tb_ ? b->dim(1) : b->dim(0);
    const int64_t n = tb_ ? b->dim(0) : b->dim(1);
    if (k != kb) {
      return InvalidInput(
          "Gemm shapes " + ShapeToString(a->shape()) + " and " + ShapeToString(b->shape()) +
          " do not match (transA=" + std::to_string(ta_) + ", transB=" + std::to_string(tb_) + ")");
    }
    RETURN_IF_ERROR(CheckBlasDims(m, n, k));
    RETURN_IF_ERROR(CheckWork(
        "Gemm", static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k)));
    const Shape out_shape{m, n};
    if (c && !CanBroadcastTo(c->shape(), out_shape)) {
      return InvalidInput("Gemm C of shape " + ShapeToString(c->shape()) +
                          " cannot be broadcast to " + ShapeToString(out_shape));
    }
    if (dense_ && a->dtype() == DType::kFloat32 && k == dense_->k() && n == dense_->n()) {
      ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, out_shape));
      dense_->Run(a->data<float>(), m, y.data<float>());
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    }
    return Dispatch<SERVEML_GEMM_TYPES>(a->dtype(), "Gemm", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(a->dtype(), out_shape));
      T* py = y.data<T>();
      const bool use_c = c && beta_ != 0.0f;
      if (use_c) {
        // Y = beta * broadcast(C), then Y += alpha * A' B'.
        const T* pc = c->data<T>();
        const T beta = SaturatingCast<T>(beta_);
        const size_t cr = c->rank();
        const int64_t c_rows = cr == 2 ? c->dim(0) : 1;
        const int64_t c_cols = cr >= 1 ? c->dim(cr - 1) : 1;
        for (int64_t i = 0; i < m; ++i) {
          const T* crow = pc + (c_rows == 1 ? 0 : i) * c_cols;
          for (int64_t j = 0; j < n; ++j) {
            py[i * n + j] = static_cast<T>(beta * crow[c_cols == 1 ? 0 : j]);
          }
        }
      }
      if (k > 0) {
        GemmAny<T>(ta_, tb_, m, n, k, SaturatingCast<T>(alpha_), a->data<T>(), a->dim(1),
                   b->data<T>(), b->dim(1), use_c ? T(1) : T(0), py, n);
      } else if (!use_c) {
        std::fill(py, py + m * n, T(0));  // the buffer is not cleared beforehand
      }
      if (relu_) {
        ApplyRelu(py, m * n);
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  float alpha_, beta_;
  bool ta_, tb_;
  Tensor b_t_;
  std::unique_ptr<ConstBSgemm> dense_;
  bool relu_ = false;  // Relu fused at load (Kernel::FuseRelu)
};

class MatMulKernel final : public Kernel {
 public:
  bool FuseRelu() override {
    relu_ = true;
    return true;
  }

  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (!a || !b) return InvalidInput("MatMul needs two inputs");
    if (a->dtype() != b->dtype()) return InvalidInput("MatMul inputs have different types");
    if (a->rank() == 0 || b->rank() == 0) return InvalidInput("MatMul inputs must not be scalars");
    // Promote 1-D operands as numpy does; the added dims are dropped from the result.
    std::vector<int64_t> as = a->shape(), bs = b->shape();
    const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
    if (a_vec) as.insert(as.begin(), 1);
    if (b_vec) bs.push_back(1);
    const int64_t m = as[as.size() - 2], k = as.back();
    const int64_t kb = bs[bs.size() - 2], n = bs.back();
    if (k != kb) {
      return InvalidInput("MatMul shapes " + ShapeToString(a->shape()) + " and " +
                          ShapeToString(b->shape()) + " do not match");
    }
    RETURN_IF_ERROR(CheckBlasDims(m, n, k));
    std::span<const int64_t> a_batch(as.data(), as.size() - 2);
    std::span<const int64_t> b_batch(bs.data(), bs.size() - 2);
    std::vector<int64_t> batch;
    RETURN_IF_ERROR(BroadcastShape(a_batch, b_batch, &batch));
    RETURN_IF_ERROR(CheckWork("MatMul", Volume(batch) * static_cast<double>(m) *
                                            static_cast<double>(n) * static_cast<double>(k)));
    Shape out_shape = batch;
    if (!a_vec) out_shape.push_back(m);
    if (!b_vec) out_shape.push_back(n);

    return Dispatch<SERVEML_GEMM_TYPES>(a->dtype(), "MatMul", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(a->dtype(), out_shape));
      T* py = y.data<T>();
      const T* pa = a->data<T>();
      const T* pb = b->data<T>();
      if (y.numel() == 0) {
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      }
      if (k == 0) {  // the buffer is not cleared beforehand
        std::fill(py, py + y.numel(), T(0));
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      }
      int64_t a_batch_n = 1;
      for (int64_t d : a_batch) a_batch_n *= d;
      int64_t b_batch_n = 1;
      for (int64_t d : b_batch) b_batch_n *= d;
      if (b_batch_n == 1 &&
          static_cast<int64_t>(batch.size()) == static_cast<int64_t>(a_batch.size())) {
        // B is one matrix: fold A's batch into its rows, one GEMM call.
        const int64_t rows = a_batch_n * m;
        RETURN_IF_ERROR(CheckBlasDims(rows, n, k));
        GemmAny<T>(false, false, rows, n, k, T(1), pa, k, pb, n, T(0), py, n);
      } else {
        BroadcastPlan plan = MakeBroadcastPlan(a_batch, b_batch, batch);
        int64_t out_index = 0;
        ForEachBroadcastRun(plan, [&](int64_t oa, int64_t ob, int64_t, int64_t len, int64_t sa,
                                      int64_t sb) {
          for (int64_t i = 0; i < len; ++i) {
            const T* ma = pa + (oa + i * sa) * m * k;
            const T* mb = pb + (ob + i * sb) * k * n;
            GemmAny<T>(false, false, m, n, k, T(1), ma, k, mb, n, T(0), py + out_index * m * n, n);
            ++out_index;
          }
        });
      }
      if (relu_) {
        ApplyRelu(py, y.numel());
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  bool relu_ = false;  // Relu fused at load (Kernel::FuseRelu)
};

}  // namespace

Result<KernelPtr> MakeGemm(const KernelInit& init) {
  if (init.node.input.size() < 2 || init.node.input.size() > 3) {
    return InvalidInput("Gemm needs 2 or 3 inputs");
  }
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(float alpha, attrs.Float("alpha", 1.0f));
  ASSIGN_OR_RETURN(float beta, attrs.Float("beta", 1.0f));
  ASSIGN_OR_RETURN(int64_t ta, attrs.Int("transA", 0));
  ASSIGN_OR_RETURN(int64_t tb, attrs.Int("transB", 0));
  Tensor b_t;
  const Tensor* b = init.const_inputs.size() > 1 ? init.const_inputs[1] : nullptr;
  const Tensor* c = init.const_inputs.size() > 2 ? init.const_inputs[2] : nullptr;
  const bool has_c = init.node.input.size() > 2 && !init.node.input[2].empty();
  if (b && b->rank() == 2 && b->dtype() == DType::kFloat32 && ta == 0 && alpha == 1.0f) {
    // The dense-layer form: C absent, ignored (beta = 0), or a constant broadcast row.
    const int64_t k = tb != 0 ? b->dim(1) : b->dim(0);
    const int64_t n = tb != 0 ? b->dim(0) : b->dim(1);
    std::vector<float> bias;
    bool ok = !has_c || beta == 0.0f;
    if (!ok && c && c->dtype() == DType::kFloat32 && c->rank() <= 2 &&
        (c->rank() < 2 || c->dim(0) == 1) && (c->numel() == n || c->numel() == 1)) {
      const float* pc = c->data<float>();
      bias.resize(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) bias[j] = beta * pc[c->numel() == 1 ? 0 : j];
      ok = true;
    }
    if (ok && k > 0 && n > 0 && k <= INT_MAX && n <= INT_MAX) {
      std::vector<float> w(static_cast<size_t>(k * n));
      const float* src = b->data<float>();
      if (tb != 0) {
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < k; ++j) w[j * n + i] = src[i * k + j];
        }
      } else {
        std::copy(src, src + k * n, w.begin());
      }
      return KernelPtr(
          new GemmKernel(alpha, beta, ta != 0, tb != 0, Tensor(),
                         std::make_unique<ConstBSgemm>(std::move(w), k, n, std::move(bias))));
    }
  }
  if (tb != 0 && b && b->rank() == 2 && b->dtype() == DType::kFloat32) {
    ASSIGN_OR_RETURN(b_t, NewTensor(DType::kFloat32, {b->dim(1), b->dim(0)}));
    const float* src = b->data<float>();
    float* dst = b_t.data<float>();
    const int64_t rows = b->dim(0), cols = b->dim(1);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] = src[i * cols + j];
    }
  }
  return KernelPtr(new GemmKernel(alpha, beta, ta != 0, tb != 0, std::move(b_t), nullptr));
}

Result<KernelPtr> MakeMatMul(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("MatMul needs exactly two inputs");
  return KernelPtr(new MatMulKernel());
}

}  // namespace serveml::engine
