// Index reductions: ArgMax (axis, keepdims, select_last_index).
#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

class ArgMaxKernel final : public Kernel {
 public:
  ArgMaxKernel(int64_t axis, bool keepdims, bool last)
      : axis_(axis), keepdims_(keepdims), last_(last) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("ArgMax needs an input");
    const int64_t rank = static_cast<int64_t>(x->rank());
    if (rank == 0) return InvalidInput("ArgMax input must have rank >= 1");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, rank));
    const int64_t n = x->dim(axis);
    if (n == 0) return InvalidInput("ArgMax over an empty axis");
    int64_t outer = 1, inner = 1;
    std::vector<int64_t> out_shape;
    for (int64_t d = 0; d < rank; ++d) {
      if (d < axis) outer *= x->dim(d);
      if (d > axis) inner *= x->dim(d);
      if (d != axis)
        out_shape.push_back(x->dim(d));
      else if (keepdims_)
        out_shape.push_back(1);
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(DType::kInt64, std::move(out_shape)));
    int64_t* po = out.data<int64_t>();
    RETURN_IF_ERROR(Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), "ArgMax", [&](auto tag) {
      using T = decltype(tag);
      const T* px = x->data<T>();
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const T* base = px + o * n * inner + i;
          T best = base[0];
          int64_t best_i = 0;
          for (int64_t j = 1; j < n; ++j) {
            const T v = base[j * inner];
            if (v > best || (last_ && v == best)) {
              best = v;
              best_i = j;
            }
          }
          po[o * inner + i] = best_i;
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  int64_t axis_;
  bool keepdims_;
  bool last_;
};

}  // namespace

Result<KernelPtr> MakeArgMax(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  ASSIGN_OR_RETURN(int64_t keepdims, attrs.Int("keepdims", 1));
  ASSIGN_OR_RETURN(int64_t last, attrs.Int("select_last_index", 0));
  return KernelPtr(new ArgMaxKernel(axis, keepdims != 0, last != 0));
}

}  // namespace serveml::engine
