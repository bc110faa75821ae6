// QuantizeLinear (opsets 10-25), DequantizeLinear (10-25) and DynamicQuantizeLinear (11) for
// the integer quantized types (uint8, int8, uint16, int16; int32 for DequantizeLinear).
// Scales are per tensor, per axis or blocked along `axis` (block_size, opset 21+).
// QuantizeLinear divides by the scale (as the ONNX reference and onnxruntime do, not a
// multiplication by the reciprocal), rounds half to even and saturates to the output type;
// DequantizeLinear computes (x - zero_point) * scale. float16 inputs, scales and outputs are
// computed in float32.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/float16.h"
#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

template <typename T>
using ComputeOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
inline auto LoadValue(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, Half>) {
    return HalfToFloat(p[i].bits);
  } else {
    return p[i];
  }
}

template <typename T, typename C>
inline void StoreValue(T* p, int64_t i, C v) {
  if constexpr (std::is_same_v<T, Half>) {
    p[i].bits = FloatToHalf(static_cast<float>(v));
  } else {
    p[i] = static_cast<T>(v);
  }
}

// Round half to even of a value already clamped to a small range (|v| < 2^22): adding and
// subtracting 1.5 * 2^mantissa_bits leaves the nearest integer under the default rounding mode.
template <typename C>
inline C RoundHalfEvenSmall(C v) {
  constexpr C kMagic = std::is_same_v<C, float> ? C(12582912.0) : C(6755399441055744.0);
  return (v + kMagic) - kMagic;
}

// How scale and zero point map onto x viewed as [outer, len, inner] around `axis`.
enum class QuantMode { kPerTensor, kPerAxis, kBlocked };

struct QuantLayout {
  QuantMode mode = QuantMode::kPerTensor;
  int64_t outer = 1, len = 1, inner = 1;
  int64_t blocks = 1;  // blocked: scale length along the axis
  int64_t block_size = 0;
};

// Validates the scale shape against x and picks the mode. `zp` may be null.
Result<QuantLayout> ResolveLayout(const Tensor& x, const Tensor& scale, const Tensor* zp,
                                  int64_t axis_attr, int64_t block_size, const char* op) {
  QuantLayout l;
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (zp && zp->numel() != scale.numel()) {
    return InvalidInput(std::string(op) + ": zero point shape " + ShapeToString(zp->shape()) +
                        " does not match scale shape " + ShapeToString(scale.shape()));
  }
  if (zp && zp->rank() != scale.rank() && scale.numel() != 1) {
    // (a [1]-shaped scale with a []-shaped zero point is still per tensor)
    return InvalidInput(std::string(op) + ": zero point and scale shapes differ");
  }
  l.outer = x.numel();
  if (scale.numel() == 1) {  // any single value applies to the whole tensor
    l.mode = QuantMode::kPerTensor;
    return l;
  }
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_attr, rank));
  l.outer = 1;
  for (int64_t d = 0; d < axis; ++d) l.outer *= x.dim(static_cast<size_t>(d));
  l.len = x.dim(static_cast<size_t>(axis));
  l.inner = 1;
  for (int64_t d = axis + 1; d < rank; ++d) l.inner *= x.dim(static_cast<size_t>(d));
  if (block_size <= 0) {
    if (scale.rank() != 1 || scale.dim(0) != l.len) {
      return InvalidInput(std::string(op) + ": per-axis scale of shape " +
                          ShapeToString(scale.shape()) + " does not match dim " +
                          std::to_string(axis) + " of input " + ShapeToString(x.shape()));
    }
    l.mode = QuantMode::kPerAxis;
    return l;
  }
  // Blocked: same rank, equal dims except `axis`, where it is ceil(len / block_size).
  bool ok = static_cast<int64_t>(scale.rank()) == rank;
  for (int64_t d = 0; ok && d < rank; ++d) {
    const int64_t want =
        d == axis ? (l.len + block_size - 1) / block_size : x.dim(static_cast<size_t>(d));
    ok = scale.dim(static_cast<size_t>(d)) == want;
  }
  if (!ok) {
    return InvalidInput(std::string(op) + ": blocked scale of shape " +
                        ShapeToString(scale.shape()) + " does not match input " +
                        ShapeToString(x.shape()) + " with block_size " +
                        std::to_string(block_size) + " on axis " + std::to_string(axis));
  }
  l.mode = QuantMode::kBlocked;
  l.block_size = block_size;
  l.blocks = scale.dim(static_cast<size_t>(axis));
  return l;
}

// Calls run(offset, count, param_offset, param_step) for every run of x elements sharing a
// parameter stride: param_step is 0 (one scale for the run) or 1 (blocked, one per element).
template <typename F>
void ForEachQuantRun(const QuantLayout& l, F&& run) {
  switch (l.mode) {
    case QuantMode::kPerTensor:
      run(int64_t{0}, l.outer, int64_t{0}, int64_t{0});
      return;
    case QuantMode::kPerAxis:
      for (int64_t o = 0; o < l.outer; ++o) {
        for (int64_t a = 0; a < l.len; ++a) {
          run((o * l.len + a) * l.inner, l.inner, a, int64_t{0});
        }
      }
      return;
    case QuantMode::kBlocked:
      for (int64_t o = 0; o < l.outer; ++o) {
        for (int64_t a = 0; a < l.len; ++a) {
          run((o * l.len + a) * l.inner, l.inner, (o * l.blocks + a / l.block_size) * l.inner,
              int64_t{1});
        }
      }
      return;
  }
}

bool IsQuantIntType(DType t) {
  return t == DType::kUInt8 || t == DType::kInt8 || t == DType::kUInt16 || t == DType::kInt16;
}

// ONNX TensorProto types that exist in the spec but not in this engine.
Status UnsupportedQuantType(int64_t onnx_type, const char* op) {
  return Unsupported(std::string(op) + ": quantized element type " + std::to_string(onnx_type) +
                     " (float8/int4/int2/float4) is not supported");
}

// ---------------------------------------------------------------------------------------------
class QuantizeLinearKernel final : public Kernel {
 public:
  QuantizeLinearKernel(int64_t axis, int64_t block_size, DType out_attr, DType precision)
      : axis_(axis), block_size_(block_size), out_attr_(out_attr), precision_(precision) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* scale = ctx.input(1);
    const Tensor* zp = ctx.input(2);
    if (!x || !scale) return InvalidInput("QuantizeLinear needs x and y_scale");
    DType out = zp ? zp->dtype() : (out_attr_ != DType::kUndefined ? out_attr_ : DType::kUInt8);
    if (zp && out_attr_ != DType::kUndefined && out_attr_ != zp->dtype()) {
      return InvalidInput("QuantizeLinear: output_dtype does not match the zero point type");
    }
    if (!IsQuantIntType(out)) return UnsupportedType(out, "QuantizeLinear");
    ASSIGN_OR_RETURN(QuantLayout l,
                     ResolveLayout(*x, *scale, zp, axis_, block_size_, "QuantizeLinear"));
    std::vector<int64_t> shape(x->shape().begin(), x->shape().end());
    ASSIGN_OR_RETURN(Tensor y, NewTensor(out, std::move(shape)));
    const bool wide = precision_ == DType::kFloat64 ||
                      (precision_ == DType::kUndefined &&
                       (x->dtype() == DType::kFloat64 || scale->dtype() == DType::kFloat64));
    Status st = Dispatch<float, double, Half>(x->dtype(), "QuantizeLinear", [&](auto xt) {
      using X = decltype(xt);
      return Dispatch<float, double, Half>(scale->dtype(), "QuantizeLinear", [&](auto st) {
        using S = decltype(st);
        return Dispatch<uint8_t, int8_t, uint16_t, int16_t>(out, "QuantizeLinear", [&](auto qt) {
          using Q = decltype(qt);
          if (wide) return Quantize<X, S, Q, double>(*x, *scale, zp, l, y);
          return Quantize<X, S, Q, float>(*x, *scale, zp, l, y);
        });
      });
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  template <typename X, typename S, typename Q, typename C>
  static Status Quantize(const Tensor& x, const Tensor& scale, const Tensor* zp,
                         const QuantLayout& l, Tensor& y) {
    const X* px = x.data<X>();
    const S* ps = scale.data<S>();
    const Q* pz = zp ? zp->data<Q>() : nullptr;
    Q* py = y.data<Q>();
    constexpr C kMin = static_cast<C>(std::numeric_limits<Q>::min());
    constexpr C kMax = static_cast<C>(std::numeric_limits<Q>::max());
    ForEachQuantRun(l, [&](int64_t off, int64_t n, int64_t p, int64_t step) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pi = p + i * step;
        const C s = static_cast<C>(LoadValue(ps, pi));
        const C z = pz ? static_cast<C>(pz[pi]) : C(0);
        C v = static_cast<C>(LoadValue(px, off + i)) / s;
        // Clamp before rounding (the bounds are integers, so the order does not matter);
        // NaN goes to the low bound, as the reference's int32 conversion does on x86.
        const C lo = kMin - z, hi = kMax - z;
        v = v >= lo ? v : lo;
        v = v <= hi ? v : hi;
        py[off + i] = static_cast<Q>(static_cast<int32_t>(RoundHalfEvenSmall(v) + z));
      }
    });
    return Status::Ok();
  }

  int64_t axis_, block_size_;
  DType out_attr_, precision_;
};

// ---------------------------------------------------------------------------------------------
class DequantizeLinearKernel final : public Kernel {
 public:
  DequantizeLinearKernel(int64_t axis, int64_t block_size, DType out_attr)
      : axis_(axis), block_size_(block_size), out_attr_(out_attr) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* scale = ctx.input(1);
    const Tensor* zp = ctx.input(2);
    if (!x || !scale) return InvalidInput("DequantizeLinear needs x and x_scale");
    if (zp && zp->dtype() != x->dtype()) {
      return InvalidInput("DequantizeLinear: x and x_zero_point have different element types");
    }
    const DType out = out_attr_ != DType::kUndefined ? out_attr_ : scale->dtype();
    ASSIGN_OR_RETURN(QuantLayout l,
                     ResolveLayout(*x, *scale, zp, axis_, block_size_, "DequantizeLinear"));
    std::vector<int64_t> shape(x->shape().begin(), x->shape().end());
    ASSIGN_OR_RETURN(Tensor y, NewTensor(out, std::move(shape)));
    Status st = Dispatch<uint8_t, int8_t, uint16_t, int16_t, int32_t>(
        x->dtype(), "DequantizeLinear", [&](auto xt) {
          using X = decltype(xt);
          return Dispatch<float, double, Half>(scale->dtype(), "DequantizeLinear", [&](auto st) {
            using S = decltype(st);
            return Dispatch<float, double, Half>(out, "DequantizeLinear", [&](auto ot) {
              using O = decltype(ot);
              const X* px = x->data<X>();
              const X* pz = zp ? zp->data<X>() : nullptr;
              const S* ps = scale->data<S>();
              O* py = y.data<O>();
              using C = ComputeOf<O>;
              ForEachQuantRun(l, [&](int64_t off, int64_t n, int64_t p, int64_t step) {
                for (int64_t i = 0; i < n; ++i) {
                  const int64_t pi = p + i * step;
                  const int64_t d = static_cast<int64_t>(px[off + i]) - (pz ? pz[pi] : 0);
                  StoreValue(py, off + i, static_cast<C>(d) * static_cast<C>(LoadValue(ps, pi)));
                }
              });
              return Status::Ok();
            });
          });
        });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  int64_t axis_, block_size_;
  DType out_attr_;
};

// ---------------------------------------------------------------------------------------------
// y = saturate(round(x / scale) + zero_point) with uint8 range [0, 255] covering min(x, 0) and
// max(x, 0); outputs y, y_scale (float scalar) and y_zero_point (uint8 scalar).
class DynamicQuantizeLinearKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("DynamicQuantizeLinear needs x");
    if (x->dtype() != DType::kFloat32) return UnsupportedType(x->dtype(), "DynamicQuantizeLinear");
    if (ctx.num_outputs() < 3) return InvalidInput("DynamicQuantizeLinear has three outputs");
    const float* px = x->data<float>();
    const int64_t n = x->numel();
    float mn = 0.0f, mx = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      mn = px[i] < mn ? px[i] : mn;
      mx = px[i] > mx ? px[i] : mx;
    }
    const float scale = (mx == mn ? 1.0f : (mx - mn)) / 255.0f;
    float zp = 0.0f - mn / scale;
    zp = std::min(255.0f, std::max(0.0f, zp));
    zp = RoundHalfEvenSmall(zp);
    std::vector<int64_t> shape(x->shape().begin(), x->shape().end());
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kUInt8, std::move(shape)));
    uint8_t* py = y.data<uint8_t>();
    const float lo = -zp, hi = 255.0f - zp;
    for (int64_t i = 0; i < n; ++i) {
      float v = px[i] / scale;
      v = v >= lo ? v : lo;
      v = v <= hi ? v : hi;
      py[i] = static_cast<uint8_t>(static_cast<int32_t>(RoundHalfEvenSmall(v) + zp));
    }
    ASSIGN_OR_RETURN(Tensor ys, NewTensor(DType::kFloat32, {}));
    ys.data<float>()[0] = scale;
    ASSIGN_OR_RETURN(Tensor yz, NewTensor(DType::kUInt8, {}));
    yz.data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    *ctx.outputs[0] = std::move(y);
    *ctx.outputs[1] = std::move(ys);
    *ctx.outputs[2] = std::move(yz);
    return Status::Ok();
  }
};

// Element type named by an ONNX type attribute (0 = not set).
Result<DType> AttrDType(int64_t v, const char* op, const char* name) {
  if (v == 0) return DType::kUndefined;
  if (v > 0 && v <= INT32_MAX && IsKnownDType(static_cast<int32_t>(v))) {
    return static_cast<DType>(v);
  }
  if (v == 16 || (v >= 17 && v <= 26)) return UnsupportedQuantType(v, op);
  return InvalidInput(std::string(op) + ": invalid " + name + " " + std::to_string(v));
}

}  // namespace

Result<KernelPtr> MakeQuantizeLinear(const KernelInit& init) {
  const size_t n_in = init.node.input.size();
  if (n_in < 2 || n_in > 3) return InvalidInput("QuantizeLinear needs 2 or 3 inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 1));
  ASSIGN_OR_RETURN(int64_t block_size, attrs.Int("block_size", 0));
  ASSIGN_OR_RETURN(int64_t saturate, attrs.Int("saturate", 1));
  (void)saturate;  // only float8 outputs read it
  ASSIGN_OR_RETURN(int64_t out_attr, attrs.Int("output_dtype", 0));
  ASSIGN_OR_RETURN(int64_t precision_attr, attrs.Int("precision", 0));
  if (block_size < 0) return InvalidInput("QuantizeLinear: block_size must be >= 0");
  ASSIGN_OR_RETURN(DType out, AttrDType(out_attr, "QuantizeLinear", "output_dtype"));
  if (out != DType::kUndefined && !IsQuantIntType(out)) {
    return UnsupportedType(out, "QuantizeLinear");
  }
  ASSIGN_OR_RETURN(DType precision, AttrDType(precision_attr, "QuantizeLinear", "precision"));
  if (precision != DType::kUndefined && precision != DType::kFloat32 &&
      precision != DType::kFloat64) {
    return Unsupported("QuantizeLinear: precision " + std::string(DTypeName(precision)) +
                       " is not supported");
  }
  return KernelPtr(new QuantizeLinearKernel(axis, block_size, out, precision));
}

Result<KernelPtr> MakeDequantizeLinear(const KernelInit& init) {
  const size_t n_in = init.node.input.size();
  if (n_in < 2 || n_in > 3) return InvalidInput("DequantizeLinear needs 2 or 3 inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 1));
  ASSIGN_OR_RETURN(int64_t block_size, attrs.Int("block_size", 0));
  ASSIGN_OR_RETURN(int64_t out_attr, attrs.Int("output_dtype", 0));
  if (block_size < 0) return InvalidInput("DequantizeLinear: block_size must be >= 0");
  ASSIGN_OR_RETURN(DType out, AttrDType(out_attr, "DequantizeLinear", "output_dtype"));
  if (out != DType::kUndefined && out != DType::kFloat32 && out != DType::kFloat64 &&
      out != DType::kFloat16) {
    return UnsupportedType(out, "DequantizeLinear");
  }
  return KernelPtr(new DequantizeLinearKernel(axis, block_size, out));
}

Result<KernelPtr> MakeDynamicQuantizeLinear(const KernelInit& init) {
  if (init.node.input.size() != 1) return InvalidInput("DynamicQuantizeLinear needs one input");
  return KernelPtr(new DynamicQuantizeLinearKernel());
}

}  // namespace serveml::engine
