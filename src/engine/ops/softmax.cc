// Softmax and LogSoftmax. Opset < 13: the input is coerced to 2-D at `axis` (default 1)
// and normalised over the flattened trailing block. Opset >= 13: along one axis
// (default -1).
#include <algorithm>
#include <cmath>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

template <typename T>
void SoftmaxBlock(const T* x, T* y, int64_t n, int64_t stride, bool log) {
  T mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i * stride]);
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    T e = std::exp(x[i * stride] - mx);
    if (!log) y[i * stride] = e;
    sum += e;
  }
  if (log) {
    const T lse = std::log(sum);
    for (int64_t i = 0; i < n; ++i) y[i * stride] = x[i * stride] - mx - lse;
  } else {
    const T inv = T(1) / sum;
    for (int64_t i = 0; i < n; ++i) y[i * stride] *= inv;
  }
}

// Hardmax: 1 at the first maximum of the block, 0 elsewhere.
template <typename T>
void HardmaxBlock(const T* x, T* y, int64_t n, int64_t stride) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i * stride] > x[best * stride]) best = i;
  }
  for (int64_t i = 0; i < n; ++i) y[i * stride] = i == best ? T(1) : T(0);
}

class SoftmaxKernel final : public Kernel {
 public:
  SoftmaxKernel(int64_t axis, bool coerce_2d, bool log, const char* name)
      : axis_(axis), coerce_2d_(coerce_2d), log_(log), name_(name) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    const int64_t rank = static_cast<int64_t>(x->rank());
    // A scalar behaves like a 1-element vector.
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, std::max<int64_t>(rank, 1)));
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) {
      if (d < axis)
        outer *= x->dim(d);
      else if (d == axis || coerce_2d_)
        n *= x->dim(d);
      else
        inner *= x->dim(d);
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor out, NewTensor(x->dtype(), x->shape()));
      if (n > 0) {
        const T* px = x->data<T>();
        T* py = out.data<T>();
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) {
            const int64_t base = o * n * inner + i;
            if (hard_) {
              HardmaxBlock(px + base, py + base, n, inner);
            } else {
              SoftmaxBlock(px + base, py + base, n, inner, log_);
            }
          }
        }
      }
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    });
  }

 private:
  int64_t axis_;
  bool coerce_2d_;
  bool log_;
  const char* name_;

 public:
  bool hard_ = false;
};

}  // namespace

Result<KernelPtr> MakeSoftmax(const KernelInit& init) {
  const bool coerce = init.opset < 13;
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", coerce ? 1 : -1));
  const bool log = init.node.op_type == "LogSoftmax";
  return KernelPtr(new SoftmaxKernel(axis, coerce, log, log ? "LogSoftmax" : "Softmax"));
}

}  // namespace serveml::engine

namespace serveml::engine {

Result<KernelPtr> MakeHardmax(const KernelInit& init) {
  const bool coerce = init.opset < 13;
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", coerce ? 1 : -1));
  auto k = std::make_unique<SoftmaxKernel>(axis, coerce, false, "Hardmax");
  k->hard_ = true;
  return KernelPtr(std::move(k));
}

}  // namespace serveml::engine
