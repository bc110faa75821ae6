// TopK (k as an attribute before opset 10, as an input after; axis, largest, sorted). Ties
// keep the lower index first, as the reference implementation does.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

class TopKKernel final : public Kernel {
 public:
  TopKKernel(int64_t k_attr, int64_t axis, bool largest)
      : k_attr_(k_attr), axis_(axis), largest_(largest) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("TopK needs an input");
    int64_t k = k_attr_;
    if (k < 0) {
      if (!ctx.input(1)) return InvalidInput("TopK needs K");
      ASSIGN_OR_RETURN(std::vector<int64_t> kv, ReadInt64s(*ctx.input(1), "TopK K"));
      if (kv.size() != 1) return InvalidInput("TopK K must have one element");
      k = kv[0];
    }
    const int64_t r = static_cast<int64_t>(x->rank());
    if (r == 0) return InvalidInput("TopK input must have rank >= 1");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    const int64_t len = x->dim(axis);
    if (k < 0 || k > len) {
      return InvalidInput("TopK K=" + std::to_string(k) + " is out of range for an axis of size " +
                          std::to_string(len));
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
    for (int64_t d = axis + 1; d < r; ++d) inner *= x->dim(d);
    std::vector<int64_t> shape = x->shape();
    shape[axis] = k;
    return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), "TopK", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor vals, NewTensor(x->dtype(), shape));
      ASSIGN_OR_RETURN(Tensor idxs, NewTensor(DType::kInt64, shape));
      const T* px = x->data<T>();
      T* pv = vals.data<T>();
      int64_t* pi = idxs.data<int64_t>();
      std::vector<int64_t> order(static_cast<size_t>(len));
      const bool largest = largest_;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const T* base = px + o * len * inner + i;
          std::iota(order.begin(), order.end(), 0);
          auto before = [&](int64_t a, int64_t b) {
            const T va = base[a * inner], vb = base[b * inner];
            if constexpr (std::is_floating_point_v<T>) {
              // NaN sorts as the largest value.
              const bool na = std::isnan(va), nb = std::isnan(vb);
              if (na || nb) {
                if (na && nb) return a < b;
                return largest ? na : nb;
              }
            }
            if (va != vb) return largest ? va > vb : va < vb;
            return a < b;
          };
          std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
          for (int64_t j = 0; j < k; ++j) {
            const int64_t at = (o * k + j) * inner + i;
            pv[at] = base[order[j] * inner];
            pi[at] = order[j];
          }
        }
      }
      *ctx.outputs[0] = std::move(vals);
      if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(idxs);
      return Status::Ok();
    });
  }

 private:
  int64_t k_attr_;  // -1 when K is an input
  int64_t axis_;
  bool largest_;
};

}  // namespace

Result<KernelPtr> MakeTopK(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", -1));
  ASSIGN_OR_RETURN(int64_t largest, attrs.Int("largest", 1));
  int64_t k = -1;
  if (init.opset < 10) {
    ASSIGN_OR_RETURN(k, attrs.RequiredInt("k"));
  }
  return KernelPtr(new TopKKernel(k, axis, largest != 0));
}

}  // namespace serveml::engine
