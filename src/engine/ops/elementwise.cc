// Elementwise operators: binary arithmetic with multidirectional broadcasting (Add, Sub,
// Mul, Div) and unary math (Relu, Sigmoid, Tanh, Exp, Log, Abs, Neg, Sqrt).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernel.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class BinaryOp { kAdd, kSub, kMul, kDiv };

template <BinaryOp kOp, typename T>
inline T Apply(T a, T b, bool* div_zero) {
  if constexpr (kOp == BinaryOp::kAdd) {
    if constexpr (std::is_integral_v<T>) {  // wrap instead of signed-overflow UB
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  } else if constexpr (kOp == BinaryOp::kSub) {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
    } else {
      return a - b;
    }
  } else if constexpr (kOp == BinaryOp::kMul) {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      if constexpr (sizeof(T) < sizeof(int)) {
        return static_cast<T>(static_cast<unsigned>(static_cast<U>(a)) *
                              static_cast<unsigned>(static_cast<U>(b)));
      } else {
        return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
      }
    } else {
      return a * b;
    }
  } else {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) {
        *div_zero = true;
        return 0;
      }
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) {  // avoid INT_MIN / -1 overflow
          using U = std::make_unsigned_t<T>;
          return static_cast<T>(U{0} - static_cast<U>(a));
        }
      }
      return static_cast<T>(a / b);
    } else {
      return a / b;
    }
  }
}

template <BinaryOp kOp, typename T>
Status RunBinaryTyped(const Tensor& a, const Tensor& b, Tensor* out) {
  bool div_zero = false;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (a.shape() == b.shape()) {
    ASSIGN_OR_RETURN(Tensor o, NewTensor(a.dtype(), a.shape()));
    T* po = o.data<T>();
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) po[i] = Apply<kOp>(pa[i], pb[i], &div_zero);
    *out = std::move(o);
  } else {
    Shape shape;
    RETURN_IF_ERROR(BroadcastShape(a.shape(), b.shape(), &shape));
    ASSIGN_OR_RETURN(Tensor o, NewTensor(a.dtype(), shape));
    T* po = o.data<T>();
    BroadcastPlan plan = MakeBroadcastPlan(a.shape(), b.shape(), shape);
    ForEachBroadcastRun(
        plan, [&](int64_t oa, int64_t ob, int64_t oo, int64_t len, int64_t sa, int64_t sb) {
          const T* x = pa + oa;
          const T* y = pb + ob;
          T* z = po + oo;
          if (sa && sb) {
            for (int64_t i = 0; i < len; ++i) z[i] = Apply<kOp>(x[i], y[i], &div_zero);
          } else if (sb) {
            const T xv = x[0];
            for (int64_t i = 0; i < len; ++i) z[i] = Apply<kOp>(xv, y[i], &div_zero);
          } else if (sa) {
            const T yv = y[0];
            for (int64_t i = 0; i < len; ++i) z[i] = Apply<kOp>(x[i], yv, &div_zero);
          } else {
            const T v = Apply<kOp>(x[0], y[0], &div_zero);
            for (int64_t i = 0; i < len; ++i) z[i] = v;
          }
        });
    *out = std::move(o);
  }
  if (div_zero) return InvalidInput("integer division by zero");
  return Status::Ok();
}

template <BinaryOp kOp>
class BinaryKernel final : public Kernel {
 public:
  // legacy_axis >= 0: opset < 7 broadcast=1 with an axis — B's dims align with A's at it.
  explicit BinaryKernel(const char* name, int64_t legacy_axis = -1)
      : name_(name), legacy_axis_(legacy_axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (!a || !b) return InvalidInput(std::string(name_) + " needs two inputs");
    Tensor b_aligned;
    if (legacy_axis_ >= 0) {
      const int64_t ra = static_cast<int64_t>(a->rank()), rb = static_cast<int64_t>(b->rank());
      if (legacy_axis_ + rb > ra) {
        return InvalidInput(std::string(name_) + " broadcast axis does not fit B's rank");
      }
      std::vector<int64_t> shape = b->shape();
      shape.resize(static_cast<size_t>(ra - legacy_axis_), 1);
      b_aligned = b->Reshaped(std::move(shape));
      b = &b_aligned;
    }
    if (a->dtype() != b->dtype()) {
      return InvalidInput(std::string(name_) + " inputs have different element types (" +
                          std::string(DTypeName(a->dtype())) + " and " +
                          std::string(DTypeName(b->dtype())) + ")");
    }
    return Dispatch<SERVEML_NUMERIC_TYPES>(a->dtype(), name_, [&](auto tag) {
      return RunBinaryTyped<kOp, decltype(tag)>(*a, *b, ctx.outputs[0]);
    });
  }

 private:
  const char* name_;
  int64_t legacy_axis_;
};

// ---- unary ----

enum class UnaryOp { kRelu, kSigmoid, kTanh, kExp, kLog, kAbs, kNeg, kSqrt };

template <UnaryOp kOp, typename T>
inline T ApplyUnary(T x) {
  if constexpr (kOp == UnaryOp::kRelu) {
    return ReluOf(x);
  } else if constexpr (kOp == UnaryOp::kSigmoid) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  } else if constexpr (kOp == UnaryOp::kTanh) {
    return std::tanh(x);
  } else if constexpr (kOp == UnaryOp::kExp) {
    return std::exp(x);
  } else if constexpr (kOp == UnaryOp::kLog) {
    return std::log(x);
  } else if constexpr (kOp == UnaryOp::kSqrt) {
    return std::sqrt(x);
  } else if constexpr (kOp == UnaryOp::kAbs) {
    if constexpr (std::is_unsigned_v<T>) {
      return x;
    } else if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return x < 0 ? static_cast<T>(U{0} - static_cast<U>(x)) : x;
    } else {
      return std::fabs(x);
    }
  } else {  // kNeg
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(U{0} - static_cast<U>(x));
    } else {
      return -x;
    }
  }
}

template <UnaryOp kOp, typename T>
Status RunUnaryTyped(const Tensor& x, Tensor* out) {
  ASSIGN_OR_RETURN(Tensor o, NewTensor(x.dtype(), x.shape()));
  const T* px = x.data<T>();
  T* po = o.data<T>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = ApplyUnary<kOp, T>(px[i]);
  *out = std::move(o);
  return Status::Ok();
}

template <UnaryOp kOp>
class UnaryKernel final : public Kernel {
 public:
  explicit UnaryKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    Tensor* out = ctx.outputs[0];
    auto run = [&](auto tag) { return RunUnaryTyped<kOp, decltype(tag)>(*x, out); };
    if constexpr (kOp == UnaryOp::kRelu) {
      return Dispatch<SERVEML_FLOAT_TYPES, int8_t, int16_t, int32_t, int64_t>(x->dtype(), name_,
                                                                              run);
    } else if constexpr (kOp == UnaryOp::kAbs || kOp == UnaryOp::kNeg) {
      if (kOp == UnaryOp::kNeg) {
        return Dispatch<SERVEML_FLOAT_TYPES, int8_t, int16_t, int32_t, int64_t>(x->dtype(), name_,
                                                                                run);
      }
      return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), name_, run);
    } else {
      return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, run);
    }
  }

 private:
  const char* name_;
};

}  // namespace

Result<KernelPtr> MakeBinaryElementwise(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.size() != 2) return InvalidInput(op + " needs exactly two inputs");
  int64_t axis = -1;
  if (init.opset < 7) {
    NodeAttrs attrs(init.node);
    ASSIGN_OR_RETURN(int64_t broadcast, attrs.Int("broadcast", 0));
    if (broadcast != 0 && attrs.Has("axis")) {
      ASSIGN_OR_RETURN(axis, attrs.Int("axis", 0));
      if (axis < 0) return Unsupported(op + " with a negative legacy broadcast axis");
    }
  }
  if (op == "Add") return KernelPtr(new BinaryKernel<BinaryOp::kAdd>("Add", axis));
  if (op == "Sub") return KernelPtr(new BinaryKernel<BinaryOp::kSub>("Sub", axis));
  if (op == "Mul") return KernelPtr(new BinaryKernel<BinaryOp::kMul>("Mul", axis));
  if (op == "Div") return KernelPtr(new BinaryKernel<BinaryOp::kDiv>("Div", axis));
  return Internal("MakeBinaryElementwise: unexpected op " + op);
}

Result<KernelPtr> MakeUnaryElementwise(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.size() != 1) return InvalidInput(op + " needs exactly one input");
  if (op == "Relu") return KernelPtr(new UnaryKernel<UnaryOp::kRelu>("Relu"));
  if (op == "Sigmoid") return KernelPtr(new UnaryKernel<UnaryOp::kSigmoid>("Sigmoid"));
  if (op == "Tanh") return KernelPtr(new UnaryKernel<UnaryOp::kTanh>("Tanh"));
  if (op == "Exp") return KernelPtr(new UnaryKernel<UnaryOp::kExp>("Exp"));
  if (op == "Log") return KernelPtr(new UnaryKernel<UnaryOp::kLog>("Log"));
  if (op == "Abs") return KernelPtr(new UnaryKernel<UnaryOp::kAbs>("Abs"));
  if (op == "Neg") return KernelPtr(new UnaryKernel<UnaryOp::kNeg>("Neg"));
  if (op == "Sqrt") return KernelPtr(new UnaryKernel<UnaryOp::kSqrt>("Sqrt"));
  return Internal("MakeUnaryElementwise: unexpected op " + op);
}

}  // namespace serveml::engine
