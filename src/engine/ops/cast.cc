// Cast between the numeric types, bool and float16 (string only to string).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/float16.h"
#include "engine/kernel.h"
#include "engine/onnx/tensor_proto.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// Float -> integer without UB: NaN gives 0, out-of-range values saturate.
template <typename D, typename S>
inline D FloatToInt(S s) {
  if (std::isnan(s)) return 0;
  if (s <= static_cast<S>(std::numeric_limits<D>::lowest())) {
    return std::numeric_limits<D>::lowest();
  }
  if (s >= static_cast<S>(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
  return static_cast<D>(s);
}

template <typename D, typename S>
inline D Convert(S s) {
  if constexpr (std::is_same_v<S, Half>) {
    return Convert<D>(HalfToFloat(s.bits));
  } else if constexpr (std::is_same_v<D, Half>) {
    if constexpr (std::is_same_v<S, bool>) {
      return Half{FloatToHalf(s ? 1.0f : 0.0f)};
    } else {
      return Half{FloatToHalf(static_cast<float>(s))};
    }
  } else if constexpr (std::is_same_v<D, bool>) {
    return s != S(0);
  } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<S>) {
    return FloatToInt<D>(s);
  } else {
    return static_cast<D>(s);
  }
}

template <typename S, typename D>
void CastLoop(const Tensor& x, Tensor* out) {
  const S* src = x.data<S>();
  D* dst = out->data<D>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) dst[i] = Convert<D>(src[i]);
}

#define SERVEML_CAST_TYPES SERVEML_NUMERIC_TYPES, bool, Half

class CastKernel final : public Kernel {
 public:
  explicit CastKernel(DType to) : to_(to) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Cast needs an input");
    if (x->dtype() == to_) {
      *ctx.outputs[0] = *x;
      return Status::Ok();
    }
    if (x->dtype() == DType::kString || to_ == DType::kString) {
      return InvalidInput("Cast between string and " +
                          std::string(DTypeName(x->dtype() == DType::kString ? to_ : x->dtype())) +
                          " is not supported");
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(to_, x->shape()));
    RETURN_IF_ERROR(Dispatch<SERVEML_CAST_TYPES>(x->dtype(), "Cast", [&](auto src) {
      using S = decltype(src);
      return Dispatch<SERVEML_CAST_TYPES>(to_, "Cast", [&](auto dst) {
        CastLoop<S, decltype(dst)>(*x, &out);
        return Status::Ok();
      });
    }));
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  DType to_;
};

}  // namespace

Result<KernelPtr> MakeCast(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t to, attrs.RequiredInt("to"));
  if (to < 0 || to > 1000 || !IsKnownDType(static_cast<int32_t>(to))) {
    return Unsupported("Cast to " + onnx::OnnxTypeName(static_cast<int32_t>(to)) +
                       " is not supported");
  }
  return KernelPtr(new CastKernel(static_cast<DType>(to)));
}

}  // namespace serveml::engine
