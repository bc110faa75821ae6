// Parametric and smooth activations: LeakyRelu, Elu, Selu, Celu, ThresholdedRelu,
// HardSigmoid, HardSwish, Softplus, Softsign, Gelu (none/tanh), Mish, Shrink, Clip (attribute
// form < 11, input form >= 11) and PRelu (slope broadcast to X).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class Act {
  kLeakyRelu,
  kElu,
  kSelu,
  kCelu,
  kThresholdedRelu,
  kHardSigmoid,
  kHardSwish,
  kSoftplus,
  kSoftsign,
  kGelu,
  kGeluTanh,
  kMish,
  kShrink
};

struct ActParams {
  float alpha = 0, beta = 0, gamma = 0;
};

template <Act kAct, typename T>
inline T Activate(T x, const ActParams& p) {
  const T alpha = static_cast<T>(p.alpha);
  if constexpr (kAct == Act::kLeakyRelu) {
    return x < T(0) ? alpha * x : x;
  } else if constexpr (kAct == Act::kElu) {
    return x < T(0) ? alpha * (std::exp(x) - T(1)) : x;
  } else if constexpr (kAct == Act::kSelu) {
    const T gamma = static_cast<T>(p.gamma);
    return x > T(0) ? gamma * x : gamma * (alpha * std::exp(x) - alpha);
  } else if constexpr (kAct == Act::kCelu) {
    return std::max(T(0), x) + std::min(T(0), alpha * (std::exp(x / alpha) - T(1)));
  } else if constexpr (kAct == Act::kThresholdedRelu) {
    return x > alpha ? x : T(0);
  } else if constexpr (kAct == Act::kHardSigmoid) {
    return std::max(T(0), std::min(T(1), alpha * x + static_cast<T>(p.beta)));
  } else if constexpr (kAct == Act::kHardSwish) {
    return x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5)));
  } else if constexpr (kAct == Act::kSoftplus) {
    return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  } else if constexpr (kAct == Act::kSoftsign) {
    return x / (T(1) + std::fabs(x));
  } else if constexpr (kAct == Act::kGelu) {
    return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2)));
  } else if constexpr (kAct == Act::kGeluTanh) {
    const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
    return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
  } else if constexpr (kAct == Act::kMish) {
    const T sp = x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    return x * std::tanh(sp);
  } else {  // kShrink: alpha = lambd, beta = bias
    const T bias = static_cast<T>(p.beta);
    return x < -alpha ? x + bias : (x > alpha ? x - bias : T(0));
  }
}

template <Act kAct>
class ActivationKernel final : public Kernel {
 public:
  ActivationKernel(const char* name, ActParams p) : name_(name), p_(p) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    const ActParams p = p_;
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, [&](auto tag) {
      using T = decltype(tag);
      return UnaryMap<T, T>(
          *x, x->dtype(), [&p](T v) { return Activate<kAct, T>(v, p); }, ctx.outputs[0]);
    });
  }

 private:
  const char* name_;
  ActParams p_;
};

// Clip. Opset < 11: bounds from attributes; >= 11: optional scalar inputs 1 and 2.
class ClipKernel final : public Kernel {
 public:
  ClipKernel(bool attr_form, float lo, float hi) : attr_form_(attr_form), lo_(lo), hi_(hi) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Clip needs an input");
    return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), "Clip", [&](auto tag) -> Status {
      using T = decltype(tag);
      T lo = std::numeric_limits<T>::lowest();
      T hi = std::numeric_limits<T>::max();
      if (attr_form_) {
        if constexpr (!std::is_floating_point_v<T>) {
          return InvalidInput("Clip before opset 11 takes float and double tensors, not " +
                              std::string(DTypeName(x->dtype())));
        }
        lo = static_cast<T>(lo_);
        hi = static_cast<T>(hi_);
      } else {
        for (int k = 1; k <= 2; ++k) {
          const Tensor* b = ctx.input(static_cast<size_t>(k));
          if (!b) continue;
          if (b->dtype() != x->dtype() || b->numel() != 1) {
            return InvalidInput("Clip bounds must be scalars of the input's element type");
          }
          (k == 1 ? lo : hi) = b->data<T>()[0];
        }
      }
      return UnaryMap<T, T>(
          *x, x->dtype(),
          [lo, hi](T v) {
            if constexpr (std::is_floating_point_v<T>) {
              if (std::isnan(v)) return v;
            }
            const T low = v < lo ? lo : v;  // min > max gives max, as the spec says
            return low > hi ? hi : low;
          },
          ctx.outputs[0]);
    });
  }

 private:
  bool attr_form_;
  float lo_, hi_;
};

class PReluKernel final : public Kernel {
 public:
  // legacy (opset < 7): a 1-D slope of length C applies per channel (axis 1).
  explicit PReluKernel(bool legacy) : legacy_(legacy) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* s = ctx.input(1);
    RETURN_IF_ERROR(SameDType(x, s, "PRelu"));
    Tensor channel_slope;
    if (legacy_ && s->rank() == 1 && x->rank() >= 2 && s->dim(0) == x->dim(1) && s->dim(0) != 1) {
      std::vector<int64_t> shape(x->rank() - 1, 1);
      shape[0] = s->dim(0);
      channel_slope = s->Reshaped(std::move(shape));
      s = &channel_slope;
    }
    if (!CanBroadcastTo(s->shape(), x->shape())) {
      return InvalidInput("PRelu slope of shape " + ShapeToString(s->shape()) +
                          " cannot be broadcast to " + ShapeToString(x->shape()));
    }
    return Dispatch<float, double, int32_t, int64_t>(x->dtype(), "PRelu", [&](auto tag) {
      using T = decltype(tag);
      return BinaryMap<T, T, T>(
          *x, *s, x->dtype(), [](T v, T slope) { return v < T(0) ? static_cast<T>(slope * v) : v; },
          ctx.outputs[0]);
    });
  }

 private:
  bool legacy_;
};

}  // namespace

Result<KernelPtr> MakeActivation(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  if (init.node.input.size() != 1) return InvalidInput(op + " needs exactly one input");
  NodeAttrs attrs(init.node);
  ActParams p;
  if (op == "LeakyRelu") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 0.01f));
    return KernelPtr(new ActivationKernel<Act::kLeakyRelu>("LeakyRelu", p));
  }
  if (op == "Elu") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 1.0f));
    return KernelPtr(new ActivationKernel<Act::kElu>("Elu", p));
  }
  if (op == "Selu") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 1.67326319217681884765625f));
    ASSIGN_OR_RETURN(p.gamma, attrs.Float("gamma", 1.05070102214813232421875f));
    return KernelPtr(new ActivationKernel<Act::kSelu>("Selu", p));
  }
  if (op == "Celu") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 1.0f));
    if (p.alpha == 0) return InvalidInput("Celu alpha must not be 0");
    return KernelPtr(new ActivationKernel<Act::kCelu>("Celu", p));
  }
  if (op == "ThresholdedRelu") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 1.0f));
    return KernelPtr(new ActivationKernel<Act::kThresholdedRelu>("ThresholdedRelu", p));
  }
  if (op == "HardSigmoid") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("alpha", 0.2f));
    ASSIGN_OR_RETURN(p.beta, attrs.Float("beta", 0.5f));
    return KernelPtr(new ActivationKernel<Act::kHardSigmoid>("HardSigmoid", p));
  }
  if (op == "HardSwish") return KernelPtr(new ActivationKernel<Act::kHardSwish>("HardSwish", p));
  if (op == "Softplus") return KernelPtr(new ActivationKernel<Act::kSoftplus>("Softplus", p));
  if (op == "Softsign") return KernelPtr(new ActivationKernel<Act::kSoftsign>("Softsign", p));
  if (op == "Mish") return KernelPtr(new ActivationKernel<Act::kMish>("Mish", p));
  if (op == "Gelu") {
    ASSIGN_OR_RETURN(std::string approx, attrs.String("approximate", "none"));
    if (approx == "none") return KernelPtr(new ActivationKernel<Act::kGelu>("Gelu", p));
    if (approx == "tanh") return KernelPtr(new ActivationKernel<Act::kGeluTanh>("Gelu", p));
    return InvalidInput("Gelu approximate must be 'none' or 'tanh', got '" + approx + "'");
  }
  if (op == "Shrink") {
    ASSIGN_OR_RETURN(p.alpha, attrs.Float("lambd", 0.5f));
    ASSIGN_OR_RETURN(p.beta, attrs.Float("bias", 0.0f));
    return KernelPtr(new ActivationKernel<Act::kShrink>("Shrink", p));
  }
  return Internal("MakeActivation: unexpected op " + op);
}

Result<KernelPtr> MakeClip(const KernelInit& init) {
  if (init.node.input.empty() || init.node.input.size() > 3) {
    return InvalidInput("Clip needs 1 to 3 inputs");
  }
  if (init.opset < 11) {
    NodeAttrs attrs(init.node);
    ASSIGN_OR_RETURN(float lo, attrs.Float("min", std::numeric_limits<float>::lowest()));
    ASSIGN_OR_RETURN(float hi, attrs.Float("max", std::numeric_limits<float>::max()));
    return KernelPtr(new ClipKernel(true, lo, hi));
  }
  return KernelPtr(new ClipKernel(false, 0, 0));
}

Result<KernelPtr> MakePRelu(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("PRelu needs exactly two inputs");
  return KernelPtr(new PReluKernel(init.opset < 7));
}

}  // namespace serveml::engine
