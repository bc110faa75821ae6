// Elementwise math beyond the four arithmetic ops: Pow, Mod, BitShift, the variadic
// Min/Max/Sum/Mean (with broadcasting), and unary math (Reciprocal, Floor, Ceil, Round, Sign,
// IsNaN, IsInf, Erf, trigonometric and hyperbolic functions).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// ---- Pow: base T, exponent T1 (possibly a different type); result has the base's type ----

template <typename T>
T CastPowResult(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return 0;
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      return std::numeric_limits<T>::max();
    }
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
      return std::numeric_limits<T>::lowest();
    }
  }
  return static_cast<T>(v);
}

class PowKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (!a || !b) return InvalidInput("Pow needs two inputs");
    return Dispatch<float, double, int32_t, int64_t>(a->dtype(), "Pow", [&](auto ta) {
      using T = decltype(ta);
      return Dispatch<float, double, int32_t, int64_t>(b->dtype(), "Pow", [&](auto tb) {
        using U = decltype(tb);
        if constexpr (std::is_same_v<T, float> && std::is_same_v<U, float>) {
          return BinaryMap<T, U, T>(
              *a, *b, a->dtype(),
              [](float x, float y) { return y == 2.0f ? x * x : std::pow(x, y); }, ctx.outputs[0]);
        } else {
          return BinaryMap<T, U, T>(
              *a, *b, a->dtype(),
              [](T x, U y) {
                return CastPowResult<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
              },
              ctx.outputs[0]);
        }
      });
    });
  }
};

// ---- Mod ----

class ModKernel final : public Kernel {
 public:
  explicit ModKernel(bool fmod) : fmod_(fmod) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(SameDType(a, b, "Mod"));
    bool div_zero = false;
    Status st = Dispatch<SERVEML_NUMERIC_TYPES>(a->dtype(), "Mod", [&](auto tag) -> Status {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>) {
        if (!fmod_) return InvalidInput("Mod on floating-point inputs requires fmod=1");
        return BinaryMap<T, T, T>(
            *a, *b, a->dtype(), [](T x, T y) { return std::fmod(x, y); }, ctx.outputs[0]);
      } else {
        const bool c_style = fmod_;
        return BinaryMap<T, T, T>(
            *a, *b, a->dtype(),
            [&div_zero, c_style](T x, T y) -> T {
              if (y == 0) {
                div_zero = true;
                return 0;
              }
              if constexpr (std::is_signed_v<T>) {
                if (y == -1) return 0;  // avoids INT_MIN % -1
                T r = static_cast<T>(x % y);
                if (!c_style && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
                return r;
              } else {
                (void)c_style;  // unsigned: both conventions agree
                return static_cast<T>(x % y);
              }
            },
            ctx.outputs[0]);
      }
    });
    RETURN_IF_ERROR(st);
    if (div_zero) return InvalidInput("integer modulo by zero");
    return Status::Ok();
  }

 private:
  bool fmod_;
};

// ---- BitShift ----

class BitShiftKernel final : public Kernel {
 public:
  explicit BitShiftKernel(bool left) : left_(left) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(SameDType(a, b, "BitShift"));
    return Dispatch<uint8_t, uint16_t, uint32_t, uint64_t>(a->dtype(), "BitShift", [&](auto tag) {
      using T = decltype(tag);
      const bool left = left_;
      return BinaryMap<T, T, T>(
          *a, *b, a->dtype(),
          [left](T x, T y) -> T {
            if (y >= sizeof(T) * 8) return 0;
            return left ? static_cast<T>(x << y) : static_cast<T>(x >> y);
          },
          ctx.outputs[0]);
    });
  }

 private:
  bool left_;
};

// ---- variadic Min / Max / Sum / Mean ----

enum class VarOp { kMin, kMax, kSum, kMean };

template <VarOp kOp, typename T>
inline T VarApply(T x, T y) {
  if constexpr (kOp == VarOp::kMin || kOp == VarOp::kMax) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<T>::quiet_NaN();
    }
    if constexpr (kOp == VarOp::kMin) {
      return y < x ? y : x;
    } else {
      return y > x ? y : x;
    }
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(x) + static_cast<U>(y));
  } else {
    return x + y;
  }
}

template <VarOp kOp>
class VariadicKernel final : public Kernel {
 public:
  explicit VariadicKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const size_t n = ctx.num_inputs();
    if (n == 0 || !ctx.input(0)) return InvalidInput(std::string(name_) + " needs inputs");
    const Tensor* first = ctx.input(0);
    for (size_t i = 1; i < n; ++i) RETURN_IF_ERROR(SameDType(first, ctx.input(i), name_));
    auto run = [&](auto tag) -> Status {
      using T = decltype(tag);
      Tensor acc = *first;
      for (size_t i = 1; i < n; ++i) {
        Tensor next;
        auto apply = [](T x, T y) { return VarApply<kOp>(x, y); };
        RETURN_IF_ERROR((BinaryMap<T, T, T>(acc, *ctx.input(i), first->dtype(), apply, &next)));
        acc = std::move(next);
      }
      if constexpr (kOp == VarOp::kMean) {
        if (n > 1) {
          const T inv = T(n);
          T* p = acc.data<T>();
          for (int64_t i = 0; i < acc.numel(); ++i) p[i] /= inv;
        }
      }
      *ctx.outputs[0] = std::move(acc);
      return Status::Ok();
    };
    if constexpr (kOp == VarOp::kMin || kOp == VarOp::kMax) {
      return Dispatch<SERVEML_NUMERIC_TYPES>(first->dtype(), name_, run);
    } else if constexpr (kOp == VarOp::kSum) {
      return Dispatch<float, double, int32_t, int64_t>(first->dtype(), name_, run);
    } else {
      return Dispatch<SERVEML_FLOAT_TYPES>(first->dtype(), name_, run);
    }
  }

 private:
  const char* name_;
};

// ---- unary math ----

enum class MathOp {
  kReciprocal,
  kFloor,
  kCeil,
  kRound,
  kSign,
  kErf,
  kSin,
  kCos,
  kTan,
  kAsin,
  kAcos,
  kAtan,
  kSinh,
  kCosh,
  kAsinh,
  kAcosh,
  kAtanh
};

template <MathOp kOp, typename T>
inline T MathApply(T x) {
  if constexpr (kOp == MathOp::kSign) {
    if constexpr (std::is_unsigned_v<T>) {
      return x > 0 ? T(1) : T(0);
    } else {
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(x)) return x;
      }
      return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0));
    }
  } else if constexpr (kOp == MathOp::kReciprocal) {
    return T(1) / x;
  } else if constexpr (kOp == MathOp::kFloor) {
    return std::floor(x);
  } else if constexpr (kOp == MathOp::kCeil) {
    return std::ceil(x);
  } else if constexpr (kOp == MathOp::kRound) {
    return std::nearbyint(x);  // default rounding mode: half to even
  } else if constexpr (kOp == MathOp::kErf) {
    return std::erf(x);
  } else if constexpr (kOp == MathOp::kSin) {
    return std::sin(x);
  } else if constexpr (kOp == MathOp::kCos) {
    return std::cos(x);
  } else if constexpr (kOp == MathOp::kTan) {
    return std::tan(x);
  } else if constexpr (kOp == MathOp::kAsin) {
    return std::asin(x);
  } else if constexpr (kOp == MathOp::kAcos) {
    return std::acos(x);
  } else if constexpr (kOp == MathOp::kAtan) {
    return std::atan(x);
  } else if constexpr (kOp == MathOp::kSinh) {
    return std::sinh(x);
  } else if constexpr (kOp == MathOp::kCosh) {
    return std::cosh(x);
  } else if constexpr (kOp == MathOp::kAsinh) {
    return std::asinh(x);
  } else if constexpr (kOp == MathOp::kAcosh) {
    return std::acosh(x);
  } else {
    return std::atanh(x);
  }
}

template <MathOp kOp>
class MathKernel final : public Kernel {
 public:
  explicit MathKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    auto run = [&](auto tag) {
      using T = decltype(tag);
      return UnaryMap<T, T>(
          *x, x->dtype(), [](T v) { return MathApply<kOp, T>(v); }, ctx.outputs[0]);
    };
    if constexpr (kOp == MathOp::kSign) {
      return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), name_, run);
    } else {
      return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, run);
    }
  }

 private:
  const char* name_;
};

class IsNaNKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("IsNaN needs an input");
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "IsNaN", [&](auto tag) {
      using T = decltype(tag);
      return UnaryMap<T, bool>(
          *x, DType::kBool, [](T v) { return std::isnan(v); }, ctx.outputs[0]);
    });
  }
};

class IsInfKernel final : public Kernel {
 public:
  IsInfKernel(bool neg, bool pos) : neg_(neg), pos_(pos) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("IsInf needs an input");
    const bool neg = neg_, pos = pos_;
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "IsInf", [&](auto tag) {
      using T = decltype(tag);
      return UnaryMap<T, bool>(
          *x, DType::kBool,
          [neg, pos](T v) { return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg)); },
          ctx.outputs[0]);
    });
  }

 private:
  bool neg_, pos_;
};

}  // namespace

Result<KernelPtr> MakePow(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("Pow needs exactly two inputs");
  return KernelPtr(new PowKernel());
}

Result<KernelPtr> MakeMod(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("Mod needs exactly two inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t fmod, attrs.Int("fmod", 0));
  return KernelPtr(new ModKernel(fmod != 0));
}

Result<KernelPtr> MakeBitShift(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("BitShift needs exactly two inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string dir, attrs.String("direction", ""));
  if (dir != "LEFT" && dir != "RIGHT") {
    return InvalidInput("BitShift direction must be LEFT or RIGHT, got '" + dir + "'");
  }
  return KernelPtr(new BitShiftKernel(dir == "LEFT"));
}

Result<KernelPtr> MakeVariadicElementwise(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.empty()) return InvalidInput(op + " needs at least one input");
  if (op == "Min") return KernelPtr(new VariadicKernel<VarOp::kMin>("Min"));
  if (op == "Max") return KernelPtr(new VariadicKernel<VarOp::kMax>("Max"));
  if (op == "Sum") return KernelPtr(new VariadicKernel<VarOp::kSum>("Sum"));
  if (op == "Mean") return KernelPtr(new VariadicKernel<VarOp::kMean>("Mean"));
  return Internal("MakeVariadicElementwise: unexpected op " + op);
}

Result<KernelPtr> MakeUnaryMath(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.size() != 1) return InvalidInput(op + " needs exactly one input");
#define SERVEML_MATH(name, e) \
  if (op == name) return KernelPtr(new MathKernel<MathOp::e>(name));
  SERVEML_MATH("Reciprocal", kReciprocal)
  SERVEML_MATH("Floor", kFloor)
  SERVEML_MATH("Ceil", kCeil)
  SERVEML_MATH("Round", kRound)
  SERVEML_MATH("Sign", kSign)
  SERVEML_MATH("Erf", kErf)
  SERVEML_MATH("Sin", kSin)
  SERVEML_MATH("Cos", kCos)
  SERVEML_MATH("Tan", kTan)
  SERVEML_MATH("Asin", kAsin)
  SERVEML_MATH("Acos", kAcos)
  SERVEML_MATH("Atan", kAtan)
  SERVEML_MATH("Sinh", kSinh)
  SERVEML_MATH("Cosh", kCosh)
  SERVEML_MATH("Asinh", kAsinh)
  SERVEML_MATH("Acosh", kAcosh)
  SERVEML_MATH("Atanh", kAtanh)
#undef SERVEML_MATH
  if (op == "IsNaN") return KernelPtr(new IsNaNKernel());
  if (op == "IsInf") {
    NodeAttrs attrs(init.node);
    ASSIGN_OR_RETURN(int64_t neg, attrs.Int("detect_negative", 1));
    ASSIGN_OR_RETURN(int64_t pos, attrs.Int("detect_positive", 1));
    return KernelPtr(new IsInfKernel(neg != 0, pos != 0));
  }
  return Internal("MakeUnaryMath: unexpected op " + op);
}

}  // namespace serveml::engine
