// Cast between the numeric types, bool and float16, and between strings and numbers
// (string -> number parses like strtod/strtoll, "INF"/"NaN" included; number -> string
// prints floats as numpy's str() does: shortest round-trip digits, positional for
// 1e-4 <= |x| < 1e16, else scientific).
#include <charconv>
#include <cmath>
#include <cstdlib>
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

template <typename F>
std::string FloatToString(F v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  // sci = [-]d[.ddd]e[+-]XX
  const size_t e = sci.find('e');
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  if (v == 0 || (exp10 >= -4 && exp10 < 16)) {
    std::string mant = sci.substr(0, e);
    const bool neg = !mant.empty() && mant[0] == '-';
    if (neg) mant.erase(0, 1);
    std::string digits;
    for (char c : mant) {
      if (c != '.') digits += c;
    }
    std::string out;
    if (exp10 >= 0) {
      const size_t int_len = static_cast<size_t>(exp10) + 1;
      if (digits.size() <= int_len) {
        out = digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    }
    return neg ? "-" + out : out;
  }
  return sci;
}

template <typename T>
std::string NumberToString(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "True" : "False";
  } else if constexpr (std::is_same_v<T, Half>) {
    return FloatToString(HalfToFloat(v.bits));
  } else if constexpr (std::is_floating_point_v<T>) {
    return FloatToString(v);
  } else {
    return std::to_string(v);
  }
}

template <typename T>
T StringToNumber(const std::string& s) {
  if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Half>) {
    const double d = std::strtod(s.c_str(), nullptr);
    return Convert<T>(d);
  } else if constexpr (std::is_same_v<T, bool>) {
    return !(s.empty() || s == "0" || s == "false" || s == "False");
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<T>(std::strtoll(s.c_str(), nullptr, 10));
  } else {
    return static_cast<T>(std::strtoull(s.c_str(), nullptr, 10));
  }
}

class CastKernel final : public Kernel {
 public:
  explicit CastKernel(DType to) : to_(to) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Cast needs an input");
    DType to_ = this->to_;
    if (to_ == DType::kUndefined) {  // CastLike: the target type is input 1's
      if (!ctx.input(1)) return InvalidInput("CastLike needs a target_type input");
      to_ = ctx.input(1)->dtype();
    }
    if (x->dtype() == to_) {
      *ctx.outputs[0] = *x;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(to_, x->shape()));
    if (x->dtype() == DType::kString) {
      RETURN_IF_ERROR(Dispatch<SERVEML_CAST_TYPES>(to_, "Cast", [&](auto dst) {
        using D = decltype(dst);
        const auto& src = x->strings();
        D* d = out.data<D>();
        for (int64_t i = 0; i < x->numel(); ++i) d[i] = StringToNumber<D>(src[i]);
        return Status::Ok();
      }));
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    }
    if (to_ == DType::kString) {
      RETURN_IF_ERROR(Dispatch<SERVEML_CAST_TYPES>(x->dtype(), "Cast", [&](auto src) {
        using S = decltype(src);
        const S* p = x->data<S>();
        auto& d = out.strings();
        for (int64_t i = 0; i < x->numel(); ++i) d[i] = NumberToString(p[i]);
        return Status::Ok();
      }));
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    }
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
  if (init.node.op_type == "CastLike") {
    if (init.node.input.size() != 2) return InvalidInput("CastLike needs two inputs");
    return KernelPtr(new CastKernel(DType::kUndefined));
  }
  ASSIGN_OR_RETURN(int64_t to, attrs.RequiredInt("to"));
  if (to < 0 || to > 1000 || !IsKnownDType(static_cast<int32_t>(to))) {
    return Unsupported("Cast to " + onnx::OnnxTypeName(static_cast<int32_t>(to)) +
                       " is not supported");
  }
  return KernelPtr(new CastKernel(static_cast<DType>(to)));
}

}  // namespace serveml::engine
