// NegativeLogLikelihoodLoss (opsets 12, 13, 22) and SoftmaxCrossEntropyLoss (opsets 12, 13)
// for float and double.
//
// Input [N, C, d1, ..., dk] (k >= 0), target [N, d1, ..., dk] (int32 or int64), optional
// weight [C]. Each position's loss is -w[t] * x[n, t, d] (x = log_softmax(scores) along C for
// SoftmaxCrossEntropyLoss) with w = 1 without weights; a position whose target equals
// `ignore_index` (when the attribute is given) has loss 0 and weight 0. Reductions: "none"
// (shape of target), "sum", "mean" (sum / sum of the positions' weights, so ignored positions
// do not count; 0/0 gives NaN as in onnxruntime). A target outside [0, C) that is not ignored
// is an error. SoftmaxCrossEntropyLoss's optional second output is the log-probabilities,
// shape of the input. Sums accumulate in double.
#include <cmath>
#include <limits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class Reduction { kNone, kSum, kMean };

class LossKernel final : public Kernel {
 public:
  LossKernel(const char* name, bool softmax, Reduction reduction, bool has_ignore,
             int64_t ignore_index, bool log_prob_output)
      : name_(name),
        softmax_(softmax),
        reduction_(reduction),
        has_ignore_(has_ignore),
        ignore_index_(ignore_index),
        log_prob_output_(log_prob_output) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* target = ctx.input(1);
    const Tensor* weight = ctx.input(2);
    if (!x || !target) return InvalidInput(std::string(name_) + " needs scores and labels");
    if (x->rank() < 2) {
      return InvalidInput(std::string(name_) + " input must have shape [N, C, ...], got " +
                          ShapeToString(x->shape()));
    }
    const int64_t n = x->dim(0), c = x->dim(1);
    bool target_ok = target->rank() + 1 == x->rank() && target->dim(0) == n;
    for (size_t d = 1; target_ok && d < target->rank(); ++d) {
      target_ok = target->dim(d) == x->dim(d + 1);
    }
    if (!target_ok) {
      return InvalidInput(std::string(name_) + " target shape " + ShapeToString(target->shape()) +
                          " does not match input shape " + ShapeToString(x->shape()) +
                          " (expected the input's without dim 1)");
    }
    if (weight) {
      if (weight->dtype() != x->dtype()) {
        return InvalidInput(std::string(name_) + " weight must have the input's element type");
      }
      if (weight->rank() != 1 || weight->dim(0) != c) {
        return InvalidInput(std::string(name_) + " weight must have shape [" + std::to_string(c) +
                            "], got " + ShapeToString(weight->shape()));
      }
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, [&](auto tag) -> Status {
      using T = decltype(tag);
      return Dispatch<int32_t, int64_t>(target->dtype(), name_, [&](auto ttag) -> Status {
        using L = decltype(ttag);
        return Compute<T, L>(ctx, *x, *target, weight, n, c);
      });
    });
  }

 private:
  template <typename T, typename L>
  Status Compute(KernelContext& ctx, const Tensor& x, const Tensor& target, const Tensor* weight,
                 int64_t n, int64_t c) const {
    int64_t inner = 1;  // d1 * ... * dk
    for (size_t d = 2; d < x.rank(); ++d) inner *= x.dim(d);
    const T* px = x.data<T>();
    // Log-probabilities for SoftmaxCrossEntropyLoss (log_softmax along dim 1).
    Tensor log_prob;
    if (softmax_) {
      ASSIGN_OR_RETURN(log_prob, NewTensor(x.dtype(), x.shape()));
      T* lp = log_prob.data<T>();
      for (int64_t i = 0; i < n && c > 0; ++i) {
        for (int64_t d = 0; d < inner; ++d) {
          const int64_t base = i * c * inner + d;
          T mx = px[base];
          for (int64_t k = 1; k < c; ++k) mx = std::max(mx, px[base + k * inner]);
          double sum = 0;
          for (int64_t k = 0; k < c; ++k) sum += std::exp(double(px[base + k * inner] - mx));
          const double lse = std::log(sum);
          for (int64_t k = 0; k < c; ++k) {
            lp[base + k * inner] = static_cast<T>(double(px[base + k * inner] - mx) - lse);
          }
        }
      }
      px = lp;
    }
    const L* pt = target.data<L>();
    const T* pw = weight ? weight->data<T>() : nullptr;
    Tensor loss;
    T* pl = nullptr;
    if (reduction_ == Reduction::kNone) {
      ASSIGN_OR_RETURN(loss, NewTensor(x.dtype(), target.shape()));
      pl = loss.data<T>();
    }
    double total = 0, weight_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t d = 0; d < inner; ++d) {
        const int64_t pos = i * inner + d;
        const int64_t t = static_cast<int64_t>(pt[pos]);
        double l = 0, w = 0;
        if (!(has_ignore_ && t == ignore_index_)) {
          if (t < 0 || t >= c) {
            return InvalidInput(std::string(name_) + " target value " + std::to_string(t) +
                                " at position " + std::to_string(pos) + " is outside [0, " +
                                std::to_string(c) + ")");
          }
          w = pw ? double(pw[t]) : 1.0;
          l = -w * double(px[(i * c + t) * inner + d]);
        }
        if (pl) pl[pos] = static_cast<T>(l);
        total += l;
        weight_sum += w;
      }
    }
    if (reduction_ != Reduction::kNone) {
      ASSIGN_OR_RETURN(loss, NewTensor(x.dtype(), std::vector<int64_t>{}));
      loss.data<T>()[0] =
          static_cast<T>(reduction_ == Reduction::kSum ? total : total / weight_sum);
    }
    *ctx.outputs[0] = std::move(loss);
    if (log_prob_output_ && ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(log_prob);
    return Status::Ok();
  }

  const char* name_;
  bool softmax_;
  Reduction reduction_;
  bool has_ignore_;
  int64_t ignore_index_;
  bool log_prob_output_;
};

Result<KernelPtr> MakeLoss(const KernelInit& init, const char* name, bool softmax) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string red, attrs.String("reduction", "mean"));
  Reduction reduction;
  if (red == "none") {
    reduction = Reduction::kNone;
  } else if (red == "sum") {
    reduction = Reduction::kSum;
  } else if (red == "mean") {
    reduction = Reduction::kMean;
  } else {
    return InvalidInput(std::string(name) + " reduction must be none, sum or mean, got \"" + red +
                        "\"");
  }
  const bool has_ignore = attrs.Has("ignore_index");
  ASSIGN_OR_RETURN(int64_t ignore_index, attrs.Int("ignore_index", 0));
  const bool log_prob = softmax && init.node.output.size() > 1 && !init.node.output[1].empty();
  return KernelPtr(new LossKernel(name, softmax, reduction, has_ignore, ignore_index, log_prob));
}

}  // namespace

Result<KernelPtr> MakeNegativeLogLikelihoodLoss(const KernelInit& init) {
  return MakeLoss(init, "NegativeLogLikelihoodLoss", false);
}

Result<KernelPtr> MakeSoftmaxCrossEntropyLoss(const KernelInit& init) {
  return MakeLoss(init, "SoftmaxCrossEntropyLoss", true);
}

}  // namespace serveml::engine
