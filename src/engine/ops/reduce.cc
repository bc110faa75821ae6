// Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare (axes as an
// attribute before opset 13 for ReduceSum and 18 for the others, as an optional input after;
// keepdims; noop_with_empty_axes) and the index reductions ArgMax/ArgMin (axis, keepdims,
// select_last_index).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class Red { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// Accumulator type: double for floating point (matches references within tolerance and
// avoids drift on long axes), the element type for integers.
template <typename T>
using AccOf = std::conditional_t<std::is_floating_point_v<T>, double, T>;

template <Red kOp, typename A>
A Identity() {
  if constexpr (kOp == Red::kMax) {
    if constexpr (std::is_floating_point_v<A>) return -std::numeric_limits<A>::infinity();
    return std::numeric_limits<A>::lowest();
  } else if constexpr (kOp == Red::kMin) {
    if constexpr (std::is_floating_point_v<A>) return std::numeric_limits<A>::infinity();
    return std::numeric_limits<A>::max();
  } else if constexpr (kOp == Red::kProd) {
    return A(1);
  } else {
    return A(0);
  }
}

template <Red kOp, typename A>
inline A Combine(A acc, A v) {
  if constexpr (kOp == Red::kMax) {
    if constexpr (std::is_floating_point_v<A>) {
      if (std::isnan(v) || std::isnan(acc)) return std::numeric_limits<A>::quiet_NaN();
    }
    return v > acc ? v : acc;
  } else if constexpr (kOp == Red::kMin) {
    if constexpr (std::is_floating_point_v<A>) {
      if (std::isnan(v) || std::isnan(acc)) return std::numeric_limits<A>::quiet_NaN();
    }
    return v < acc ? v : acc;
  } else if constexpr (kOp == Red::kProd) {
    return acc * v;
  } else if constexpr (kOp == Red::kL1) {
    return acc + (v < A(0) ? A(0) - v : v);
  } else if constexpr (kOp == Red::kL2 || kOp == Red::kSumSquare) {
    return acc + v * v;
  } else {
    return acc + v;
  }
}

// Collapsed iteration space: alternating runs of kept and reduced dims.
// Shapes hold the per-dim values inline, so planning allocates nothing for ordinary ranks.
struct ReducePlan {
  Shape dims;        // collapsed input dims
  Shape reduced;     // per collapsed dim: 1 if reduced, else 0
  Shape out_stride;  // output element stride per collapsed dim (0 if reduced)
  int64_t out_numel = 1;
  int64_t reduce_count = 1;
};

// `mask[d]` is 1 where input dim d is reduced.
ReducePlan MakeReducePlan(std::span<const int64_t> shape, const Shape& mask) {
  ReducePlan p;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!p.dims.empty() && p.reduced.back() == mask[i]) {
      p.dims.back() *= shape[i];
    } else {
      p.dims.push_back(shape[i]);
      p.reduced.push_back(mask[i]);
    }
  }
  p.out_stride.assign(p.dims.size(), 0);
  int64_t s = 1;
  for (size_t i = p.dims.size(); i-- > 0;) {
    if (p.reduced[i]) {
      p.reduce_count *= p.dims[i];
    } else {
      p.out_stride[i] = s;
      s *= p.dims[i];
    }
  }
  p.out_numel = s;
  return p;
}

template <Red kOp, typename T>
void ReduceTyped(const Tensor& x, const ReducePlan& p, Tensor* out) {
  using A = AccOf<T>;
  const T* px = x.data<T>();
  T* po = out->data<T>();
  const int64_t n_out = out->numel();
  std::vector<A> acc(static_cast<size_t>(n_out), Identity<kOp, A>());
  if constexpr (kOp == Red::kLogSumExp) {
    // Two passes: the max per output, then sum of exp(x - max).
    std::vector<A> mx(static_cast<size_t>(n_out), -std::numeric_limits<A>::infinity());
    auto walk = [&](auto&& fn) {
      const size_t k = p.dims.size();
      Shape idx(k, 0);  // inline for ordinary ranks
      int64_t o = 0;
      const int64_t n = x.numel();
      for (int64_t i = 0; i < n; ++i) {
        fn(i, o);
        for (size_t d = k; d-- > 0;) {
          ++idx[d];
          o += p.out_stride[d];
          if (idx[d] < p.dims[d]) break;
          o -= p.out_stride[d] * p.dims[d];
          idx[d] = 0;
        }
      }
    };
    walk([&](int64_t i, int64_t o) {
      const A v = static_cast<A>(px[i]);
      if (v > mx[o]) mx[o] = v;
    });
    walk([&](int64_t i, int64_t o) {
      if (std::isinf(mx[o])) return;
      acc[o] += std::exp(static_cast<A>(px[i]) - mx[o]);
    });
    for (int64_t o = 0; o < n_out; ++o) {
      po[o] = static_cast<T>(std::isinf(mx[o]) ? mx[o] : mx[o] + std::log(acc[o]));
    }
    return;
  } else {
    const size_t k = p.dims.size();
    const int64_t n = x.numel();
    if (k == 0) {
      if (n == 1) acc[0] = Combine<kOp, A>(acc[0], static_cast<A>(px[0]));
    } else if (p.reduced[k - 1] && p.out_stride[k - 1] == 0) {
      // Innermost run is reduced: contiguous inner sums.
      const int64_t len = p.dims[k - 1];
      Shape idx(k, 0);  // inline for ordinary ranks
      int64_t o = 0;
      for (int64_t base = 0; base < n; base += len) {
        A a = acc[o];
        const T* row = px + base;
        for (int64_t j = 0; j < len; ++j) a = Combine<kOp, A>(a, static_cast<A>(row[j]));
        acc[o] = a;
        for (size_t d = k - 1; d-- > 0;) {
          ++idx[d];
          o += p.out_stride[d];
          if (idx[d] < p.dims[d]) break;
          o -= p.out_stride[d] * p.dims[d];
          idx[d] = 0;
        }
      }
    } else {
      // Innermost run is kept: accumulate rows into the output row.
      const int64_t len = p.dims[k - 1];
      Shape idx(k, 0);  // inline for ordinary ranks
      int64_t o = 0;
      for (int64_t base = 0; base < n; base += len) {
        A* arow = acc.data() + o;
        const T* row = px + base;
        for (int64_t j = 0; j < len; ++j)
          arow[j] = Combine<kOp, A>(arow[j], static_cast<A>(row[j]));
        for (size_t d = k - 1; d-- > 0;) {
          ++idx[d];
          o += p.out_stride[d];
          if (idx[d] < p.dims[d]) break;
          o -= p.out_stride[d] * p.dims[d];
          idx[d] = 0;
        }
      }
    }
    for (int64_t o = 0; o < n_out; ++o) {
      A v = acc[o];
      if constexpr (kOp == Red::kMean) {
        v = p.reduce_count
                ? v / static_cast<A>(p.reduce_count)
                : (std::is_floating_point_v<A> ? std::numeric_limits<A>::quiet_NaN() : A(0));
      } else if constexpr (kOp == Red::kL2) {
        v = static_cast<A>(std::sqrt(static_cast<double>(v)));
      } else if constexpr (kOp == Red::kLogSum) {
        v = static_cast<A>(std::log(static_cast<double>(v)));
      }
      po[o] = static_cast<T>(v);
    }
  }
}

template <Red kOp>
class ReduceKernel final : public Kernel {
 public:
  ReduceKernel(const char* name, bool axes_input, std::vector<int64_t> axes, bool keepdims,
               bool noop_empty)
      : name_(name),
        axes_input_(axes_input),
        axes_(std::move(axes)),
        keepdims_(keepdims),
        noop_empty_(noop_empty) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    std::vector<int64_t> input_axes;  // only when axes come from an input
    std::span<const int64_t> axes = axes_;
    if (axes_input_ && ctx.input(1)) {
      ASSIGN_OR_RETURN(input_axes, ReadInt64s(*ctx.input(1), "axes"));
      axes = input_axes;
    }
    const int64_t rank = static_cast<int64_t>(x->rank());
    Shape mask(static_cast<size_t>(rank), 0);  // 1 = reduced
    if (axes.empty()) {
      if (noop_empty_) {
        *ctx.outputs[0] = *x;
        return Status::Ok();
      }
      mask.assign(static_cast<size_t>(rank), 1);
    }
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(a, rank));
      mask[static_cast<size_t>(ax)] = 1;
    }
    Shape out_shape;
    for (int64_t d = 0; d < rank; ++d) {
      if (!mask[d]) {
        out_shape.push_back(x->dim(d));
      } else if (keepdims_) {
        out_shape.push_back(1);
      }
    }
    auto run = [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor out, NewTensor(x->dtype(), out_shape));
      if (out.numel() > 0) {
        ReducePlan plan = MakeReducePlan(x->shape(), mask);
        ReduceTyped<kOp, T>(*x, plan, &out);
      }
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    };
    if constexpr (kOp == Red::kMax || kOp == Red::kMin) {
      return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), name_, run);
    } else if constexpr (kOp == Red::kLogSum || kOp == Red::kLogSumExp) {
      return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, run);
    } else {
      return Dispatch<float, double, int32_t, int64_t, uint32_t, uint64_t>(x->dtype(), name_, run);
    }
  }

 private:
  const char* name_;
  bool axes_input_;
  std::vector<int64_t> axes_;
  bool keepdims_;
  bool noop_empty_;
};

class ArgKernel final : public Kernel {
 public:
  ArgKernel(bool is_max, int64_t axis, bool keepdims, bool last)
      : is_max_(is_max), axis_(axis), keepdims_(keepdims), last_(last) {}

  Status Run(KernelContext& ctx) const override {
    const char* name = is_max_ ? "ArgMax" : "ArgMin";
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name) + " needs an input");
    const int64_t rank = static_cast<int64_t>(x->rank());
    if (rank == 0) return InvalidInput(std::string(name) + " input must have rank >= 1");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, rank));
    const int64_t n = x->dim(axis);
    if (n == 0) return InvalidInput(std::string(name) + " over an empty axis");
    int64_t outer = 1, inner = 1;
    Shape out_shape;
    for (int64_t d = 0; d < rank; ++d) {
      if (d < axis) outer *= x->dim(d);
      if (d > axis) inner *= x->dim(d);
      if (d != axis) {
        out_shape.push_back(x->dim(d));
      } else if (keepdims_) {
        out_shape.push_back(1);
      }
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(DType::kInt64, std::move(out_shape)));
    int64_t* po = out.data<int64_t>();
    RETURN_IF_ERROR(Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      const T* px = x->data<T>();
      const bool is_max = is_max_, last = last_;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const T* base = px + o * n * inner + i;
          T best = base[0];
          int64_t best_i = 0;
          for (int64_t j = 1; j < n; ++j) {
            const T v = base[j * inner];
            const bool better = is_max ? v > best : v < best;
            if (better || (last && v == best)) {
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
  bool is_max_;
  int64_t axis_;
  bool keepdims_;
  bool last_;
};

template <Red kOp>
Result<KernelPtr> MakeReduceOp(const KernelInit& init, const char* name, int64_t input_opset) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t keepdims, attrs.Int("keepdims", 1));
  ASSIGN_OR_RETURN(int64_t noop, attrs.Int("noop_with_empty_axes", 0));
  const bool axes_input = init.opset >= input_opset;
  std::vector<int64_t> axes;
  if (!axes_input) {
    ASSIGN_OR_RETURN(axes, attrs.Ints("axes"));
    noop = 0;
  } else if (attrs.Has("axes")) {
    return InvalidInput(std::string(name) + " takes axes as an input from opset " +
                        std::to_string(input_opset));
  }
  return KernelPtr(
      new ReduceKernel<kOp>(name, axes_input, std::move(axes), keepdims != 0, noop != 0));
}

}  // namespace

Result<KernelPtr> MakeReduce(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (op == "ReduceSum") return MakeReduceOp<Red::kSum>(init, "ReduceSum", 13);
  if (op == "ReduceMean") return MakeReduceOp<Red::kMean>(init, "ReduceMean", 18);
  if (op == "ReduceMax") return MakeReduceOp<Red::kMax>(init, "ReduceMax", 18);
  if (op == "ReduceMin") return MakeReduceOp<Red::kMin>(init, "ReduceMin", 18);
  if (op == "ReduceProd") return MakeReduceOp<Red::kProd>(init, "ReduceProd", 18);
  if (op == "ReduceL1") return MakeReduceOp<Red::kL1>(init, "ReduceL1", 18);
  if (op == "ReduceL2") return MakeReduceOp<Red::kL2>(init, "ReduceL2", 18);
  if (op == "ReduceLogSum") return MakeReduceOp<Red::kLogSum>(init, "ReduceLogSum", 18);
  if (op == "ReduceLogSumExp") {
    return MakeReduceOp<Red::kLogSumExp>(init, "ReduceLogSumExp", 18);
  }
  if (op == "ReduceSumSquare") {
    return MakeReduceOp<Red::kSumSquare>(init, "ReduceSumSquare", 18);
  }
  return Internal("MakeReduce: unexpected op " + op);
}

Result<KernelPtr> MakeArgMax(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  ASSIGN_OR_RETURN(int64_t keepdims, attrs.Int("keepdims", 1));
  ASSIGN_OR_RETURN(int64_t last, attrs.Int("select_last_index", 0));
  return KernelPtr(new ArgKernel(init.node.op_type == "ArgMax", axis, keepdims != 0, last != 0));
}

}  // namespace serveml::engine
