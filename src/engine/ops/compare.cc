// Comparison (Equal, Less, Greater, LessOrEqual, GreaterOrEqual -> bool, with broadcasting)
// and logical operators (And, Or, Xor, Not on bool tensors).
#include <string>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class CmpOp { kEq, kLt, kGt, kLe, kGe };

template <CmpOp kOp, typename T>
inline bool Compare(const T& a, const T& b) {
  if constexpr (kOp == CmpOp::kEq) {
    return a == b;
  } else if constexpr (kOp == CmpOp::kLt) {
    return a < b;
  } else if constexpr (kOp == CmpOp::kGt) {
    return a > b;
  } else if constexpr (kOp == CmpOp::kLe) {
    return a <= b;
  } else {
    return a >= b;
  }
}

template <CmpOp kOp>
class CompareKernel final : public Kernel {
 public:
  explicit CompareKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(SameDType(a, b, name_));
    if (a->dtype() == DType::kString) {
      if constexpr (kOp != CmpOp::kEq) {
        return UnsupportedType(a->dtype(), name_);
      } else {
        return BinaryMapStrings<bool>(
            *a, *b, DType::kBool, [](const std::string& x, const std::string& y) { return x == y; },
            ctx.outputs[0]);
      }
    }
    return Dispatch<SERVEML_NUMERIC_TYPES, bool>(a->dtype(), name_, [&](auto tag) {
      using T = decltype(tag);
      return BinaryMap<T, T, bool>(
          *a, *b, DType::kBool, [](T x, T y) { return Compare<kOp, T>(x, y); }, ctx.outputs[0]);
    });
  }

 private:
  const char* name_;
};

enum class LogicOp { kAnd, kOr, kXor };

template <LogicOp kOp>
class LogicKernel final : public Kernel {
 public:
  explicit LogicKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(SameDType(a, b, name_));
    if (a->dtype() != DType::kBool) return UnsupportedType(a->dtype(), name_);
    return BinaryMap<bool, bool, bool>(
        *a, *b, DType::kBool,
        [](bool x, bool y) {
          if constexpr (kOp == LogicOp::kAnd) {
            return x && y;
          } else if constexpr (kOp == LogicOp::kOr) {
            return x || y;
          } else {
            return x != y;
          }
        },
        ctx.outputs[0]);
  }

 private:
  const char* name_;
};

class NotKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Not needs an input");
    if (x->dtype() != DType::kBool) return UnsupportedType(x->dtype(), "Not");
    return UnaryMap<bool, bool>(
        *x, DType::kBool, [](bool v) { return !v; }, ctx.outputs[0]);
  }
};

enum class BitOp { kAnd, kOr, kXor };

template <BitOp kOp>
class BitwiseKernel final : public Kernel {
 public:
  explicit BitwiseKernel(const char* name) : name_(name) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(SameDType(a, b, name_));
    return Dispatch<SERVEML_INT_TYPES>(a->dtype(), name_, [&](auto tag) {
      using T = decltype(tag);
      return BinaryMap<T, T, T>(
          *a, *b, a->dtype(),
          [](T x, T y) -> T {
            if constexpr (kOp == BitOp::kAnd) {
              return static_cast<T>(x & y);
            } else if constexpr (kOp == BitOp::kOr) {
              return static_cast<T>(x | y);
            } else {
              return static_cast<T>(x ^ y);
            }
          },
          ctx.outputs[0]);
    });
  }

 private:
  const char* name_;
};

class BitwiseNotKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("BitwiseNot needs an input");
    return Dispatch<SERVEML_INT_TYPES>(x->dtype(), "BitwiseNot", [&](auto tag) {
      using T = decltype(tag);
      return UnaryMap<T, T>(
          *x, x->dtype(), [](T v) { return static_cast<T>(~v); }, ctx.outputs[0]);
    });
  }
};

}  // namespace

Result<KernelPtr> MakeBitwise(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (op == "BitwiseNot") return KernelPtr(new BitwiseNotKernel());
  if (init.node.input.size() != 2) return InvalidInput(op + " needs exactly two inputs");
  if (op == "BitwiseAnd") return KernelPtr(new BitwiseKernel<BitOp::kAnd>("BitwiseAnd"));
  if (op == "BitwiseOr") return KernelPtr(new BitwiseKernel<BitOp::kOr>("BitwiseOr"));
  if (op == "BitwiseXor") return KernelPtr(new BitwiseKernel<BitOp::kXor>("BitwiseXor"));
  return Internal("MakeBitwise: unexpected op " + op);
}

Result<KernelPtr> MakeCompare(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.size() != 2) return InvalidInput(op + " needs exactly two inputs");
  if (op == "Equal") return KernelPtr(new CompareKernel<CmpOp::kEq>("Equal"));
  if (op == "Less") return KernelPtr(new CompareKernel<CmpOp::kLt>("Less"));
  if (op == "Greater") return KernelPtr(new CompareKernel<CmpOp::kGt>("Greater"));
  if (op == "LessOrEqual") return KernelPtr(new CompareKernel<CmpOp::kLe>("LessOrEqual"));
  if (op == "GreaterOrEqual") return KernelPtr(new CompareKernel<CmpOp::kGe>("GreaterOrEqual"));
  return Internal("MakeCompare: unexpected op " + op);
}

Result<KernelPtr> MakeLogical(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (op == "Not") {
    if (init.node.input.size() != 1) return InvalidInput("Not needs exactly one input");
    return KernelPtr(new NotKernel());
  }
  if (init.node.input.size() != 2) return InvalidInput(op + " needs exactly two inputs");
  if (op == "And") return KernelPtr(new LogicKernel<LogicOp::kAnd>("And"));
  if (op == "Or") return KernelPtr(new LogicKernel<LogicOp::kOr>("Or"));
  if (op == "Xor") return KernelPtr(new LogicKernel<LogicOp::kXor>("Xor"));
  return Internal("MakeLogical: unexpected op " + op);
}

}  // namespace serveml::engine
