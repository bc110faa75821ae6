// Normalisation: BatchNormalization (inference form; per-channel scale/shift folded at load
// when the statistics are initializers), LayerNormalization (with optional Mean and
// InvStdDev outputs), InstanceNormalization, LpNormalization.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// Reads a 1-D float/double parameter as doubles.
Status ReadParam(const Tensor* t, int64_t want, const char* what, std::vector<double>* out) {
  if (!t) return InvalidInput(std::string("missing ") + what);
  if (t->numel() != want) {
    return InvalidInput(std::string(what) + " must have " + std::to_string(want) +
                        " elements, got shape " + ShapeToString(t->shape()));
  }
  out->resize(static_cast<size_t>(want));
  if (t->dtype() == DType::kFloat32) {
    for (int64_t i = 0; i < want; ++i) (*out)[i] = t->data<float>()[i];
  } else if (t->dtype() == DType::kFloat64) {
    for (int64_t i = 0; i < want; ++i) (*out)[i] = t->data<double>()[i];
  } else {
    return InvalidInput(std::string(what) + " must be float or double");
  }
  return Status::Ok();
}

class BatchNormKernel final : public Kernel {
 public:
  // `folded_*` are set when scale, B, mean and var were initializers.
  BatchNormKernel(float epsilon, std::vector<double> folded_a, std::vector<double> folded_b)
      : epsilon_(epsilon), fa_(std::move(folded_a)), fb_(std::move(folded_b)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("BatchNormalization needs X");
    if (x->rank() < 1) return InvalidInput("BatchNormalization X must have rank >= 1");
    const int64_t n = x->dim(0);
    const int64_t c = x->rank() >= 2 ? x->dim(1) : 1;
    const int64_t inner = (n * c) == 0 ? 0 : x->numel() / (n * c);
    std::vector<double> a = fa_, b = fb_;
    if (a.empty()) {
      std::vector<double> scale, bias, mean, var;
      RETURN_IF_ERROR(ReadParam(ctx.input(1), c, "scale", &scale));
      RETURN_IF_ERROR(ReadParam(ctx.input(2), c, "B", &bias));
      RETURN_IF_ERROR(ReadParam(ctx.input(3), c, "mean", &mean));
      RETURN_IF_ERROR(ReadParam(ctx.input(4), c, "var", &var));
      a.resize(c);
      b.resize(c);
      for (int64_t i = 0; i < c; ++i) {
        a[i] = scale[i] / std::sqrt(var[i] + static_cast<double>(epsilon_));
        b[i] = bias[i] - mean[i] * a[i];
      }
    } else if (static_cast<int64_t>(a.size()) != c) {
      return InvalidInput("BatchNormalization parameters have " + std::to_string(a.size()) +
                          " channels, X has " + std::to_string(c));
    }
    if (ctx.num_outputs() > 1) {
      return Unsupported("BatchNormalization training outputs are not supported");
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "BatchNormalization", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
      const T* px = x->data<T>();
      T* py = y.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < c; ++j) {
          const T aj = static_cast<T>(a[j]), bj = static_cast<T>(b[j]);
          const int64_t off = (i * c + j) * inner;
          for (int64_t k = 0; k < inner; ++k) py[off + k] = px[off + k] * aj + bj;
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  float epsilon_;
  std::vector<double> fa_, fb_;
};

class LayerNormKernel final : public Kernel {
 public:
  LayerNormKernel(int64_t axis, float epsilon) : axis_(axis), epsilon_(epsilon) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* scale = ctx.input(1);
    const Tensor* bias = ctx.input(2);
    if (!x || !scale) return InvalidInput("LayerNormalization needs X and Scale");
    const int64_t r = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d) (d < axis ? outer : inner) *= x->dim(d);
    auto check = [&](const Tensor* p, const char* what) -> Status {
      if (!p) return Status::Ok();
      if (p->dtype() != x->dtype()) {
        return InvalidInput(std::string("LayerNormalization ") + what + " type differs from X");
      }
      if (p->numel() != inner && p->numel() != 1) {
        return InvalidInput(std::string("LayerNormalization ") + what + " of shape " +
                            ShapeToString(p->shape()) + " does not match the normalised shape");
      }
      return Status::Ok();
    };
    RETURN_IF_ERROR(check(scale, "Scale"));
    RETURN_IF_ERROR(check(bias, "B"));
    std::vector<int64_t> stat_shape = x->shape();
    for (int64_t d = axis; d < r; ++d) stat_shape[d] = 1;
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "LayerNormalization", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
      Tensor mean_t, inv_t;
      const bool want_mean = ctx.num_outputs() > 1, want_inv = ctx.num_outputs() > 2;
      if (want_mean) {
        ASSIGN_OR_RETURN(mean_t, NewTensor(x->dtype(), stat_shape));
      }
      if (want_inv) {
        ASSIGN_OR_RETURN(inv_t, NewTensor(x->dtype(), stat_shape));
      }
      const T* px = x->data<T>();
      const T* ps = scale->data<T>();
      const T* pb = bias ? bias->data<T>() : nullptr;
      const bool s1 = scale->numel() == 1, b1 = bias && bias->numel() == 1;
      T* py = y.data<T>();
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = px + o * inner;
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < inner; ++i) {
          sum += row[i];
          sq += static_cast<double>(row[i]) * row[i];
        }
        const double mean = inner ? sum / inner : 0;
        const double var = inner ? std::max(0.0, sq / inner - mean * mean) : 0;
        const double inv = 1.0 / std::sqrt(var + static_cast<double>(epsilon_));
        T* out = py + o * inner;
        for (int64_t i = 0; i < inner; ++i) {
          double v = (row[i] - mean) * inv * static_cast<double>(ps[s1 ? 0 : i]);
          if (pb) v += static_cast<double>(pb[b1 ? 0 : i]);
          out[i] = static_cast<T>(v);
        }
        if (want_mean) mean_t.data<T>()[o] = static_cast<T>(mean);
        if (want_inv) inv_t.data<T>()[o] = static_cast<T>(inv);
      }
      *ctx.outputs[0] = std::move(y);
      if (want_mean) *ctx.outputs[1] = std::move(mean_t);
      if (want_inv) *ctx.outputs[2] = std::move(inv_t);
      return Status::Ok();
    });
  }

 private:
  int64_t axis_;
  float epsilon_;
};

class InstanceNormKernel final : public Kernel {
 public:
  explicit InstanceNormKernel(float epsilon) : epsilon_(epsilon) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("InstanceNormalization needs an input");
    if (x->rank() < 3) return InvalidInput("InstanceNormalization input must have rank >= 3");
    const int64_t n = x->dim(0), c = x->dim(1);
    const int64_t inner = n * c == 0 ? 0 : x->numel() / (n * c);
    std::vector<double> scale, bias;
    RETURN_IF_ERROR(ReadParam(ctx.input(1), c, "scale", &scale));
    RETURN_IF_ERROR(ReadParam(ctx.input(2), c, "B", &bias));
    return Dispatch<SERVEML_FLOAT_TYPES>(
        x->dtype(), "InstanceNormalization", [&](auto tag) -> Status {
          using T = decltype(tag);
          ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
          const T* px = x->data<T>();
          T* py = y.data<T>();
          for (int64_t i = 0; i < n * c; ++i) {
            const T* row = px + i * inner;
            double sum = 0;
            for (int64_t k = 0; k < inner; ++k) sum += row[k];
            const double mean = inner ? sum / inner : 0;
            double var = 0;
            for (int64_t k = 0; k < inner; ++k) var += (row[k] - mean) * (row[k] - mean);
            var = inner ? var / inner : 0;
            const int64_t ch = i % c;
            const double a = scale[ch] / std::sqrt(var + static_cast<double>(epsilon_));
            for (int64_t k = 0; k < inner; ++k) {
              py[i * inner + k] = static_cast<T>((row[k] - mean) * a + bias[ch]);
            }
          }
          *ctx.outputs[0] = std::move(y);
          return Status::Ok();
        });
  }

 private:
  float epsilon_;
};

class LpNormKernel final : public Kernel {
 public:
  LpNormKernel(int64_t axis, int64_t p) : axis_(axis), p_(p) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("LpNormalization needs an input");
    const int64_t r = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
    for (int64_t d = axis + 1; d < r; ++d) inner *= x->dim(d);
    const int64_t len = x->dim(axis);
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "LpNormalization", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
      const T* px = x->data<T>();
      T* py = y.data<T>();
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t base = o * len * inner + i;
          double s = 0;
          for (int64_t j = 0; j < len; ++j) {
            const double v = px[base + j * inner];
            s += p_ == 1 ? std::fabs(v) : v * v;
          }
          const double norm = p_ == 1 ? s : std::sqrt(s);
          for (int64_t j = 0; j < len; ++j) {
            py[base + j * inner] = static_cast<T>(px[base + j * inner] / norm);
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  int64_t axis_, p_;
};

// RMSNormalization (opset 23): Y = X / sqrt(mean(X^2 over axes >= axis) + epsilon) * scale.
class RMSNormKernel final : public Kernel {
 public:
  RMSNormKernel(int64_t axis, float epsilon) : axis_(axis), epsilon_(epsilon) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* scale = ctx.input(1);
    if (!x || !scale) return InvalidInput("RMSNormalization needs X and scale");
    if (scale->dtype() != x->dtype()) return InvalidInput("RMSNormalization scale type differs");
    const int64_t r = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d) (d < axis ? outer : inner) *= x->dim(d);
    std::vector<int64_t> norm_shape(x->shape().begin() + axis, x->shape().end());
    if (!CanBroadcastTo(scale->shape(), norm_shape)) {
      return InvalidInput("RMSNormalization scale does not broadcast to the normalised shape");
    }
    // Expand scale to the normalised block once.
    std::vector<double> sc(static_cast<size_t>(inner));
    {
      const size_t k = norm_shape.size(), ks = scale->rank();
      std::vector<int64_t> pos(k, 0);
      for (int64_t i = 0; i < inner; ++i) {
        int64_t off = 0, stride = 1;
        for (size_t j = ks; j-- > 0;) {
          const int64_t dim = scale->dim(j);
          const int64_t p = dim == 1 ? 0 : pos[k - ks + j];
          off += p * stride;
          stride *= dim;
        }
        sc[i] = x->dtype() == DType::kFloat64 ? scale->data<double>()[off]
                                              : static_cast<double>(scale->data<float>()[off]);
        for (size_t d = k; d-- > 0;) {
          if (++pos[d] < norm_shape[d]) break;
          pos[d] = 0;
        }
      }
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "RMSNormalization", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
      const T* px = x->data<T>();
      T* py = y.data<T>();
      for (int64_t o = 0; o < outer; ++o) {
        const T* row = px + o * inner;
        double sq = 0;
        for (int64_t i = 0; i < inner; ++i) sq += static_cast<double>(row[i]) * row[i];
        const double inv = 1.0 / std::sqrt(sq / static_cast<double>(inner) + epsilon_);
        for (int64_t i = 0; i < inner; ++i)
          py[o * inner + i] = static_cast<T>(row[i] * inv * sc[i]);
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  int64_t axis_;
  float epsilon_;
};

}  // namespace

Result<KernelPtr> MakeRMSNormalization(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", -1));
  ASSIGN_OR_RETURN(float eps, attrs.Float("epsilon", 1e-5f));
  return KernelPtr(new RMSNormKernel(axis, eps));
}

Result<KernelPtr> MakeBatchNormalization(const KernelInit& init) {
  if (init.node.input.size() != 5) return InvalidInput("BatchNormalization needs 5 inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(float eps, attrs.Float("epsilon", 1e-5f));
  ASSIGN_OR_RETURN(int64_t training, attrs.Int("training_mode", 0));
  if (training != 0) return Unsupported("BatchNormalization training_mode=1 is not supported");
  std::vector<double> a, b;
  bool all_const = init.const_inputs.size() == 5;
  for (size_t i = 1; all_const && i < 5; ++i) all_const = init.const_inputs[i] != nullptr;
  if (all_const) {
    const int64_t c = init.const_inputs[1]->numel();
    std::vector<double> scale, bias, mean, var;
    RETURN_IF_ERROR(ReadParam(init.const_inputs[1], c, "scale", &scale));
    RETURN_IF_ERROR(ReadParam(init.const_inputs[2], c, "B", &bias));
    RETURN_IF_ERROR(ReadParam(init.const_inputs[3], c, "mean", &mean));
    RETURN_IF_ERROR(ReadParam(init.const_inputs[4], c, "var", &var));
    a.resize(c);
    b.resize(c);
    for (int64_t i = 0; i < c; ++i) {
      a[i] = scale[i] / std::sqrt(var[i] + static_cast<double>(eps));
      b[i] = bias[i] - mean[i] * a[i];
    }
  }
  return KernelPtr(new BatchNormKernel(eps, std::move(a), std::move(b)));
}

Result<KernelPtr> MakeLayerNormalization(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", -1));
  ASSIGN_OR_RETURN(float eps, attrs.Float("epsilon", 1e-5f));
  return KernelPtr(new LayerNormKernel(axis, eps));
}

Result<KernelPtr> MakeInstanceNormalization(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(float eps, attrs.Float("epsilon", 1e-5f));
  return KernelPtr(new InstanceNormKernel(eps));
}

Result<KernelPtr> MakeLpNormalization(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", -1));
  ASSIGN_OR_RETURN(int64_t p, attrs.Int("p", 2));
  if (p != 1 && p != 2) return InvalidInput("LpNormalization p must be 1 or 2");
  return KernelPtr(new LpNormKernel(axis, p));
}

}  // namespace serveml::engine
