// Resize (opsets 10, 11, 13, 18, 19) and the deprecated Upsample (opsets 7, 9): nearest,
// n-linear and n-cubic resampling of an N-D tensor, with every coordinate transformation
// mode, roi / extrapolation for tf_crop_and_resize, antialiasing filters, `axes` and
// `keep_aspect_ratio_policy`. Semantics follow ONNX's reference implementation (the source
// of the backend test data); Resize-10 and Upsample use asymmetric coordinates and the
// nearest rounding of onnxruntime (floor when upsampling, ceil when downsampling).
//
// Every mode is separable: each output index along an axis reads K input indices (clamped to
// the axis, i.e. edge padding) with K weights, computed once per run and per axis ("taps").
// Nearest gathers elements through per-axis offset tables. Linear and cubic run one 1-D pass
// per resized axis ([outer, in, inner] -> [outer, out, inner]); axes whose taps are the
// identity are skipped. Integer tensors accumulate in double and round once at the end.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace serveml::engine {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class CoordMode {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize,
};
// kSimple (Resize-10, Upsample): truncate when upsampling, ceil when downsampling.
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };
enum class AspectPolicy { kStretch, kNotLarger, kNotSmaller };

struct ResizeAttrs {
  const char* name = "Resize";  // for messages
  Mode mode = Mode::kNearest;
  CoordMode coord = CoordMode::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  AspectPolicy policy = AspectPolicy::kStretch;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0.0;
  std::vector<int64_t> axes;       // as written (may be negative); empty = every axis
  std::vector<float> attr_scales;  // Upsample-7's `scales` attribute
  int roi_input = -1;              // input indices, -1 when the opset has no such input
  int scales_input = -1;
  int sizes_input = -1;
};

// One axis of the resize: lengths, the scale the coordinate formulas use, and the roi.
struct AxisGeom {
  int64_t in = 0, out = 0;
  double scale = 1.0;      // output / input as the coordinate formulas see it
  double out_width = 0.0;  // scale * in: the possibly fractional output length
  double roi_start = 0.0, roi_end = 1.0;
};

// Taps of one axis: output index o reads input indices idx[o*k .. o*k+k) (already clamped to
// [0, in)) with weights w[o*k .. o*k+k). outside[o] marks tf_crop_and_resize outputs that
// take the extrapolation value (the vector is empty when there are none).
struct AxisTaps {
  int64_t k = 1;
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> outside;
  bool identity = false;  // out == in and every output copies its own input index
};

Result<Mode> ParseMode(const std::string& s, int64_t opset, const char* name) {
  if (s == "nearest") return Mode::kNearest;
  if (s == "linear" || (s == "bilinear" && std::string_view(name) == "Upsample")) {
    return Mode::kLinear;
  }
  if (s == "cubic" && opset >= 11) return Mode::kCubic;
  return InvalidInput(std::string(name) + " mode '" + s + "' is not supported" +
                      (opset >= 11 ? " (nearest, linear, cubic)" : " (nearest, linear)"));
}

Result<CoordMode> ParseCoordMode(const std::string& s) {
  if (s == "half_pixel") return CoordMode::kHalfPixel;
  if (s == "half_pixel_symmetric") return CoordMode::kHalfPixelSymmetric;
  if (s == "pytorch_half_pixel") return CoordMode::kPytorchHalfPixel;
  if (s == "align_corners") return CoordMode::kAlignCorners;
  if (s == "asymmetric") return CoordMode::kAsymmetric;
  if (s == "tf_half_pixel_for_nn") return CoordMode::kTfHalfPixelForNn;
  if (s == "tf_crop_and_resize") return CoordMode::kTfCropAndResize;
  return InvalidInput("Resize coordinate_transformation_mode '" + s + "' is not supported");
}

Result<NearestMode> ParseNearestMode(const std::string& s) {
  if (s == "round_prefer_floor") return NearestMode::kRoundPreferFloor;
  if (s == "round_prefer_ceil") return NearestMode::kRoundPreferCeil;
  if (s == "floor") return NearestMode::kFloor;
  if (s == "ceil") return NearestMode::kCeil;
  return InvalidInput("Resize nearest_mode '" + s + "' is not supported");
}

Result<AspectPolicy> ParseAspectPolicy(const std::string& s) {
  if (s == "stretch") return AspectPolicy::kStretch;
  if (s == "not_larger") return AspectPolicy::kNotLarger;
  if (s == "not_smaller") return AspectPolicy::kNotSmaller;
  return InvalidInput("Resize keep_aspect_ratio_policy '" + s +
                      "' is not one of stretch, not_larger, not_smaller");
}

// Reads a 1-D float or double tensor (scales, roi) as doubles.
Result<std::vector<double>> ReadDoubles(const Tensor& t, const std::string& what) {
  if (t.rank() > 1) {
    return InvalidInput(what + " must be a 1-D tensor, got shape " + ShapeToString(t.shape()));
  }
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kFloat32) {
    std::copy(t.data<float>(), t.data<float>() + t.numel(), v.begin());
  } else if (t.dtype() == DType::kFloat64) {
    std::copy(t.data<double>(), t.data<double>() + t.numel(), v.begin());
  } else {
    return InvalidInput(what + " must be float or double, got " +
                        std::string(DTypeName(t.dtype())));
  }
  return v;
}

// Cubic convolution kernel with coefficient a (Keys 1981, equation 4), for any x.
inline double CubicWeight(double x, double a) {
  x = std::fabs(x);
  if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

class ResizeKernel final : public Kernel {
 public:
  explicit ResizeKernel(ResizeAttrs a) : a_(std::move(a)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(a_.name) + " needs an input X");
    if (x->rank() == 0) return InvalidInput(std::string(a_.name) + " input must have rank >= 1");
    if (x->dtype() == DType::kString) {
      return InvalidInput("element type string is not supported by " + std::string(a_.name));
    }
    ASSIGN_OR_RETURN(std::vector<AxisGeom> geom, Geometry(*x, ctx));
    Shape out_shape(geom.size());
    for (size_t d = 0; d < geom.size(); ++d) out_shape[d] = geom[d].out;
    std::vector<AxisTaps> taps(geom.size());
    bool identity = true;
    for (size_t d = 0; d < geom.size(); ++d) {
      taps[d] = PlanAxis(geom[d]);
      identity = identity && taps[d].identity;
    }
    if (identity) {  // every axis maps onto itself: the output is X
      *ctx.outputs[0] = *x;
      return Status::Ok();
    }
    if (a_.mode == Mode::kNearest) {
      return Dispatch<SERVEML_NUMERIC_TYPES, bool>(x->dtype(), a_.name, [&](auto tag) -> Status {
        using T = decltype(tag);
        ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
        if (y.numel() > 0) Nearest<T>(*x, taps, y);
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      });
    }
    return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), a_.name, [&](auto tag) -> Status {
      using T = decltype(tag);
      return Separable<T>(*x, taps, out_shape, ctx);
    });
  }

 private:
  // Output lengths, scales and roi per axis from the scales / sizes / roi inputs (or the
  // Upsample-7 attribute), with `axes` and `keep_aspect_ratio_policy` applied.
  Result<std::vector<AxisGeom>> Geometry(const Tensor& x, const KernelContext& ctx) const {
    const std::string name(a_.name);
    const int64_t rank = static_cast<int64_t>(x.rank());
    std::vector<int64_t> axes;
    if (a_.axes.empty()) {
      axes.resize(static_cast<size_t>(rank));
      std::iota(axes.begin(), axes.end(), int64_t{0});
    } else {
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (int64_t ax : a_.axes) {
        ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(ax, rank));
        if (seen[static_cast<size_t>(a)]) {
          return InvalidInput(name + " axes repeats axis " + std::to_string(a));
        }
        seen[static_cast<size_t>(a)] = true;
        axes.push_back(a);
      }
    }
    const size_t n = axes.size();
    std::vector<AxisGeom> g(static_cast<size_t>(rank));
    for (int64_t d = 0; d < rank; ++d) {
      AxisGeom& ag = g[static_cast<size_t>(d)];
      ag.in = ag.out = x.dim(static_cast<size_t>(d));
      ag.out_width = static_cast<double>(ag.in);
    }

    const Tensor* scales_t = a_.scales_input >= 0 ? ctx.input(a_.scales_input) : nullptr;
    const Tensor* sizes_t = a_.sizes_input >= 0 ? ctx.input(a_.sizes_input) : nullptr;
    if (scales_t && scales_t->numel() == 0) scales_t = nullptr;
    if (sizes_t && sizes_t->numel() == 0) sizes_t = nullptr;
    std::vector<double> scales;
    if (a_.scales_input < 0 && a_.sizes_input < 0) {
      scales.assign(a_.attr_scales.begin(), a_.attr_scales.end());
      if (scales.empty()) return InvalidInput(name + " needs the scales attribute");
    } else if (scales_t && sizes_t) {
      return InvalidInput(name + " takes either scales or sizes, not both");
    } else if (scales_t) {
      ASSIGN_OR_RETURN(scales, ReadDoubles(*scales_t, name + " scales"));
    } else if (!sizes_t) {
      return InvalidInput(name + " needs a non-empty scales or sizes input");
    }

    if (!scales.empty() || !sizes_t) {
      if (scales.size() != n) {
        return InvalidInput(name + " scales has " + std::to_string(scales.size()) +
                            " values, expected " + std::to_string(n) + " for input shape " +
                            ShapeToString(x.shape()));
      }
      for (size_t i = 0; i < n; ++i) {
        const double s = scales[i];
        if (!(s > 0.0) || !std::isfinite(s)) {
          return InvalidInput(name + " scales must be positive and finite, got " +
                              std::to_string(s) + " for axis " + std::to_string(axes[i]));
        }
        AxisGeom& ag = g[static_cast<size_t>(axes[i])];
        ag.scale = s;
        ag.out_width = s * static_cast<double>(ag.in);
        if (ag.out_width > 9.0e15) return InvalidInput(name + " output is too large");
        // floor(in * scale) with the product rounded to float, as onnxruntime computes it
        // (a float scale of 1.4, i.e. 1.39999998, makes 7 rows out of 5, not 6); in double
        // for lengths float cannot hold exactly.
        ag.out = ag.in <= (int64_t{1} << 24)
                     ? static_cast<int64_t>(std::floor(static_cast<float>(ag.out_width)))
                     : static_cast<int64_t>(std::floor(ag.out_width));
      }
    } else {
      ASSIGN_OR_RETURN(std::vector<int64_t> sizes, ReadInt64s(*sizes_t, "Resize sizes"));
      if (sizes.size() != n) {
        return InvalidInput(name + " sizes has " + std::to_string(sizes.size()) +
                            " values, expected " + std::to_string(n) + " for input shape " +
                            ShapeToString(x.shape()));
      }
      for (size_t i = 0; i < n; ++i) {
        const int64_t in = g[static_cast<size_t>(axes[i])].in;
        if (sizes[i] < 0) {
          return InvalidInput(name + " sizes must be >= 0, got " + std::to_string(sizes[i]));
        }
        if (in == 0 && sizes[i] != 0) {
          return InvalidInput(name + " cannot resize empty axis " + std::to_string(axes[i]) +
                              " to " + std::to_string(sizes[i]));
        }
      }
      if (a_.policy == AspectPolicy::kStretch) {
        for (size_t i = 0; i < n; ++i) {
          AxisGeom& ag = g[static_cast<size_t>(axes[i])];
          ag.out = sizes[i];
          ag.out_width = static_cast<double>(sizes[i]);
          ag.scale = ag.in ? static_cast<double>(sizes[i]) / static_cast<double>(ag.in) : 1.0;
        }
      } else {
        double scale =
            a_.policy == AspectPolicy::kNotLarger ? std::numeric_limits<double>::infinity() : 0.0;
        for (size_t i = 0; i < n; ++i) {
          const AxisGeom& ag = g[static_cast<size_t>(axes[i])];
          if (ag.in == 0) continue;
          const double s = static_cast<double>(sizes[i]) / static_cast<double>(ag.in);
          scale = a_.policy == AspectPolicy::kNotLarger ? std::min(scale, s) : std::max(scale, s);
        }
        if (!std::isfinite(scale)) scale = 1.0;
        for (size_t i = 0; i < n; ++i) {
          AxisGeom& ag = g[static_cast<size_t>(axes[i])];
          ag.scale = scale;
          ag.out_width = scale * static_cast<double>(ag.in);
          if (ag.out_width > 9.0e15) return InvalidInput(name + " output is too large");
          ag.out = static_cast<int64_t>(ag.out_width + 0.5);  // round half up
        }
      }
      for (size_t i = 0; i < n; ++i) {
        const AxisGeom& ag = g[static_cast<size_t>(axes[i])];
        if (ag.out > 0 && !(ag.scale > 0.0)) {
          return InvalidInput(name + " sizes give a zero scale for axis " +
                              std::to_string(axes[i]));
        }
      }
    }

    if (a_.coord == CoordMode::kTfCropAndResize) {
      const Tensor* roi_t = a_.roi_input >= 0 ? ctx.input(a_.roi_input) : nullptr;
      if (!roi_t || roi_t->numel() == 0) {
        return InvalidInput(name + " with tf_crop_and_resize needs a roi input");
      }
      ASSIGN_OR_RETURN(std::vector<double> roi, ReadDoubles(*roi_t, name + " roi"));
      if (roi.size() != 2 * n) {
        return InvalidInput(name + " roi has " + std::to_string(roi.size()) + " values, expected " +
                            std::to_string(2 * n) + " (starts then ends)");
      }
      for (size_t i = 0; i < n; ++i) {
        AxisGeom& ag = g[static_cast<size_t>(axes[i])];
        ag.roi_start = roi[i];
        ag.roi_end = roi[n + i];
      }
    }
    return g;
  }

  // The input coordinate output index o maps to along an axis.
  double Original(const AxisGeom& g, int64_t o) const {
    const double xo = static_cast<double>(o);
    const double in = static_cast<double>(g.in);
    switch (a_.coord) {
      case CoordMode::kHalfPixel:
        return (xo + 0.5) / g.scale - 0.5;
      case CoordMode::kHalfPixelSymmetric: {
        const double adjustment = static_cast<double>(g.out) / g.out_width;
        const double offset = in / 2.0 * (1.0 - adjustment);
        return offset + (xo + 0.5) / g.scale - 0.5;
      }
      case CoordMode::kPytorchHalfPixel:
        return g.out > 1 ? (xo + 0.5) / g.scale - 0.5 : 0.0;
      case CoordMode::kAlignCorners:
        return g.out_width == 1.0 || g.out == 1 ? 0.0 : xo * (in - 1.0) / (g.out_width - 1.0);
      case CoordMode::kAsymmetric:
        return xo / g.scale;
      case CoordMode::kTfHalfPixelForNn:
        return (xo + 0.5) / g.scale;
      case CoordMode::kTfCropAndResize: {
        const double span = (g.roi_end - g.roi_start) * (in - 1.0);
        const double base = g.roi_start * (in - 1.0);
        if (g.out_width == 1.0 || g.out == 1) return base + span / 2.0;
        return base + xo * span / (g.out_width - 1.0);
      }
    }
    return 0.0;
  }

  AxisTaps PlanAxis(const AxisGeom& g) const {
    AxisTaps t;
    if (g.out == 0) {
      t.identity = g.in == 0;
      return t;
    }
    // Filter support: the antialiasing filters widen with 1 / scale when downsampling.
    const double aa_scale = a_.antialias ? std::min(g.scale, 1.0) : 1.0;
    int64_t first = 0;  // offset of the first tap relative to the base index
    if (a_.mode == Mode::kNearest) {
      t.k = 1;
    } else if (a_.mode == Mode::kLinear) {
      first = a_.antialias ? static_cast<int64_t>(std::floor(-1.0 / aa_scale)) + 1 : 0;
      t.k = 2 - 2 * first;
    } else {
      first = a_.antialias ? static_cast<int64_t>(std::floor(-2.0 / aa_scale)) + 1 : -1;
      t.k = 2 - 2 * first;
    }
    const size_t k = static_cast<size_t>(t.k);
    t.idx.resize(static_cast<size_t>(g.out) * k);
    t.w.resize(static_cast<size_t>(g.out) * k);
    const int64_t last = g.in - 1;
    // Coordinates beyond this margin read only clamped edge taps; clamping them keeps the
    // integer conversions defined for any scale.
    const double margin = static_cast<double>(t.k) + 2.0;
    bool identity = g.out == g.in;
    for (int64_t o = 0; o < g.out; ++o) {
      int64_t* idx = t.idx.data() + static_cast<size_t>(o) * k;
      double* w = t.w.data() + static_cast<size_t>(o) * k;
      double xf = Original(g, o);
      if (a_.coord == CoordMode::kTfCropAndResize &&
          (!(xf >= 0.0) || xf > static_cast<double>(last))) {
        if (t.outside.empty()) t.outside.assign(static_cast<size_t>(g.out), 0);
        t.outside[static_cast<size_t>(o)] = 1;
        std::fill(idx, idx + k, int64_t{0});
        std::fill(w, w + k, 0.0);
        identity = false;
        continue;
      }
      if (std::isnan(xf)) xf = 0.0;
      xf = std::clamp(xf, -margin, static_cast<double>(g.in) + margin);
      // Base index and ratio in (0, 1]: an integral coordinate counts as ratio 1 from the
      // index before it, so its own index is the second linear tap.
      const double fl = std::floor(xf);
      int64_t base = static_cast<int64_t>(fl);
      double ratio = xf - fl;
      if (ratio == 0.0) {
        base -= 1;
        ratio = 1.0;
      }
      auto clamp_idx = [&](int64_t i) {
        return std::clamp<int64_t>(i, 0, std::max<int64_t>(last, 0));
      };
      if (a_.mode == Mode::kNearest) {
        int64_t i = base;
        switch (a_.nearest) {
          case NearestMode::kRoundPreferFloor:
            i += ratio > 0.5 ? 1 : 0;
            break;
          case NearestMode::kRoundPreferCeil:
            i += ratio >= 0.5 ? 1 : 0;
            break;
          case NearestMode::kFloor:
            i += ratio == 1.0 ? 1 : 0;
            break;
          case NearestMode::kCeil:
            i += 1;
            break;
          case NearestMode::kSimple:
            i = g.scale < 1.0 ? static_cast<int64_t>(std::ceil(xf)) : static_cast<int64_t>(xf);
            break;
        }
        idx[0] = clamp_idx(i);
        w[0] = 1.0;
        identity = identity && idx[0] == o;
        continue;
      }
      double sum = 0.0;
      for (size_t j = 0; j < k; ++j) {
        const int64_t off = first + static_cast<int64_t>(j);
        const double dist = static_cast<double>(off) - ratio;
        double wj;
        if (a_.mode == Mode::kLinear) {
          wj = a_.antialias ? std::max(0.0, 1.0 - std::fabs(dist * aa_scale))
                            : 1.0 - std::fabs(dist);
        } else {
          wj = CubicWeight(a_.antialias ? dist * aa_scale : dist, a_.cubic_a);
        }
        const int64_t raw = base + off;
        if (a_.exclude_outside && (raw < 0 || raw > last)) wj = 0.0;
        idx[j] = clamp_idx(raw);
        w[j] = wj;
        sum += wj;
      }
      if ((a_.antialias || a_.exclude_outside) && sum != 0.0) {
        for (size_t j = 0; j < k; ++j) w[j] /= sum;
      }
      if (identity) {
        double self = 0.0;
        for (size_t j = 0; j < k; ++j) {
          if (idx[j] == o) {
            self += w[j];
          } else if (w[j] != 0.0) {
            identity = false;
          }
        }
        identity = identity && self == 1.0;
      }
    }
    t.identity = identity;
    return t;
  }

  template <typename T>
  static T Cast(double v) {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      return v != 0.0;
    } else {
      if (std::isnan(v)) return T(0);
      v = std::nearbyint(v);
      if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
        return std::numeric_limits<T>::lowest();
      }
      if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
        return std::numeric_limits<T>::max();
      }
      return static_cast<T>(v);
    }
  }

  // Calls row(r, pos, outside, changed) for every row r of an output of shape `out` (rows
  // run over all axes but the last; one row for rank 1): `pos` holds the row's indices,
  // `outside` whether any of them is an extrapolated position, `changed` the lowest axis
  // whose index changed since the previous row (rank - 1 for the first row).
  template <typename F>
  static void ForEachRow(const std::vector<int64_t>& out, const std::vector<AxisTaps>& taps,
                         F&& row) {
    const size_t rank = out.size();
    const size_t outer_axes = rank - 1;
    int64_t rows = 1;
    for (size_t d = 0; d < outer_axes; ++d) rows *= out[d];
    std::vector<int64_t> pos(outer_axes, 0);
    size_t changed = outer_axes;
    for (int64_t r = 0; r < rows; ++r) {
      bool outside = false;
      for (size_t d = 0; d < outer_axes; ++d) {
        const auto& o = taps[d].outside;
        outside = outside || (!o.empty() && o[static_cast<size_t>(pos[d])]);
      }
      row(r, pos, outside, changed);
      for (size_t d = outer_axes; d-- > 0;) {
        changed = d;
        if (++pos[d] < out[d]) break;
        pos[d] = 0;
      }
    }
  }

  // dst[2i] = dst[2i + 1] = src[i] for i < n.
  template <typename T>
  static void RepeatTwice(const T* src, T* dst, int64_t n) {
    int64_t i = 0;
#if defined(__SSE2__)
    if constexpr (sizeof(T) == 4) {
      for (; i + 4 <= n; i += 4) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), _mm_unpacklo_epi32(v, v));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i + 4), _mm_unpackhi_epi32(v, v));
      }
    }
#endif
    for (; i < n; ++i) dst[2 * i] = dst[2 * i + 1] = src[i];
  }

  template <typename T>
  void Nearest(const Tensor& x, const std::vector<AxisTaps>& taps, Tensor& y) const {
    const std::vector<int64_t>& out = y.shape();
    const size_t rank = out.size();
    const std::vector<int64_t> in_strides = RowMajorStrides(x.shape());
    // Per axis: element offset into X of each output index.
    std::vector<std::vector<int64_t>> offs(rank);
    for (size_t d = 0; d < rank; ++d) {
      offs[d].resize(static_cast<size_t>(out[d]));
      for (int64_t o = 0; o < out[d]; ++o) {
        offs[d][static_cast<size_t>(o)] = taps[d].idx[static_cast<size_t>(o)] * in_strides[d];
      }
    }
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t width = out[rank - 1];
    const int64_t* last_off = offs[rank - 1].data();
    const std::vector<uint8_t>& last_outside = taps[rank - 1].outside;
    const T extrap = Cast<T>(a_.extrapolation);
    // The last axis upsampled by exactly 2 (every input element written twice in a row).
    bool doubling = width % 2 == 0 && width == 2 * x.dim(rank - 1) && last_outside.empty();
    for (int64_t o = 0; doubling && o < width; ++o) doubling = last_off[o] == o / 2;
    ForEachRow(out, taps,
               [&](int64_t r, const std::vector<int64_t>& pos, bool outside, size_t changed) {
                 T* dst = py + r * width;
                 if (outside) {
                   std::fill(dst, dst + width, extrap);
                   return;
                 }
                 // Consecutive output rows that read the same input row (upsampling along the
                 // second-to-last axis) are copies of the previous row.
                 if (rank >= 2 && changed == rank - 2 && pos[rank - 2] > 0) {
                   const auto& o = offs[rank - 2];
                   const size_t p = static_cast<size_t>(pos[rank - 2]);
                   const auto& prev_outside = taps[rank - 2].outside;
                   if (o[p] == o[p - 1] && (prev_outside.empty() || !prev_outside[p - 1])) {
                     std::memcpy(static_cast<void*>(dst), dst - width,
                                 static_cast<size_t>(width) * sizeof(T));
                     return;
                   }
                 }
                 int64_t base = 0;
                 for (size_t d = 0; d + 1 < rank; ++d) base += offs[d][static_cast<size_t>(pos[d])];
                 const T* src = px + base;
                 if (doubling) {
                   RepeatTwice(src, dst, width / 2);
                 } else {
                   for (int64_t o = 0; o < width; ++o) dst[o] = src[last_off[o]];
                 }
                 if (!last_outside.empty()) {
                   for (int64_t o = 0; o < width; ++o) {
                     if (last_outside[static_cast<size_t>(o)]) dst[o] = extrap;
                   }
                 }
               });
  }

  template <typename T>
  Status Separable(const Tensor& x, const std::vector<AxisTaps>& taps,
                   const std::vector<int64_t>& out_shape, KernelContext& ctx) const {
    // float data accumulates in float; everything else in double.
    using Acc = std::conditional_t<std::is_same_v<T, float>, float, double>;
    const size_t rank = out_shape.size();
    bool any_outside = false;
    std::vector<size_t> order;
    for (size_t d = 0; d < rank; ++d) {
      if (!taps[d].outside.empty()) any_outside = true;
      if (!taps[d].identity) order.push_back(d);
    }
    if (ShapeNumel(out_shape) == 0) {
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x.dtype(), out_shape));
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    }
    if (order.empty()) {  // every axis maps onto itself
      *ctx.outputs[0] = x;
      return Status::Ok();
    }
    // Shrinking axes first (less data for the later passes); among equal ratios the
    // innermost first, so the gathering last-axis pass runs on the smaller tensor.
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const double ra = static_cast<double>(out_shape[a]) / static_cast<double>(x.dim(a));
      const double rb = static_cast<double>(out_shape[b]) / static_cast<double>(x.dim(b));
      if (ra != rb) return ra < rb;
      return a > b;
    });
    ASSIGN_OR_RETURN(Tensor y, NewTensor(x.dtype(), out_shape));
    std::vector<int64_t> dims = x.shape();
    Tensor cur;  // intermediate (Acc) after the previous pass
    for (size_t p = 0; p < order.size(); ++p) {
      const size_t d = order[p];
      const AxisTaps& t = taps[d];
      std::vector<int64_t> next = dims;
      next[d] = out_shape[d];
      int64_t outer = 1, inner = 1;
      for (size_t i = 0; i < d; ++i) outer *= dims[i];
      for (size_t i = d + 1; i < rank; ++i) inner *= dims[i];
      const std::vector<Acc> w(t.w.begin(), t.w.end());
      const bool first = p == 0, last_pass = p + 1 == order.size();
      Tensor tmp;
      if (!last_pass) {
        ASSIGN_OR_RETURN(tmp, NewTensor(EngineDType<Acc>::value, next));
      }
      const void* src = first ? x.raw() : cur.raw();
      void* dst = last_pass ? y.raw() : tmp.raw();
      const int64_t n_in = dims[d], n_out = out_shape[d];
      if (first && last_pass) {
        AxisPass<T, T, Acc>(static_cast<const T*>(src), static_cast<T*>(dst), outer, n_in, n_out,
                            inner, t, w);
      } else if (first) {
        AxisPass<T, Acc, Acc>(static_cast<const T*>(src), static_cast<Acc*>(dst), outer, n_in,
                              n_out, inner, t, w);
      } else if (last_pass) {
        AxisPass<Acc, T, Acc>(static_cast<const Acc*>(src), static_cast<T*>(dst), outer, n_in,
                              n_out, inner, t, w);
      } else {
        AxisPass<Acc, Acc, Acc>(static_cast<const Acc*>(src), static_cast<Acc*>(dst), outer, n_in,
                                n_out, inner, t, w);
      }
      cur = std::move(tmp);
      dims = std::move(next);
    }
    if (any_outside) {
      T* py = y.data<T>();
      const T extrap = Cast<T>(a_.extrapolation);
      const int64_t width = out_shape[rank - 1];
      const std::vector<uint8_t>& last_outside = taps[rank - 1].outside;
      ForEachRow(out_shape, taps,
                 [&](int64_t r, const std::vector<int64_t>&, bool outside, size_t) {
                   T* row = py + r * width;
                   if (outside) {
                     std::fill(row, row + width, extrap);
                   } else if (!last_outside.empty()) {
                     for (int64_t o = 0; o < width; ++o) {
                       if (last_outside[static_cast<size_t>(o)]) row[o] = extrap;
                     }
                   }
                 });
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

  // dst[a, o, i] = sum_j w[o*k+j] * src[a, idx[o*k+j], i] for a < outer, o < n_out,
  // i < inner (src is [outer, n_in, inner]).
  template <typename Src, typename Dst, typename Acc>
  static void AxisPass(const Src* src, Dst* dst, int64_t outer, int64_t n_in, int64_t n_out,
                       int64_t inner, const AxisTaps& t, const std::vector<Acc>& w) {
    const int64_t k = t.k;
    const int64_t* idx = t.idx.data();
    const Acc* wt = w.data();
    if (inner == 1) {
      for (int64_t a = 0; a < outer; ++a) {
        const Src* s = src + a * n_in;
        Dst* d = dst + a * n_out;
        if (k == 2) {
          for (int64_t o = 0; o < n_out; ++o) {
            d[o] = Store<Dst, Acc>(wt[2 * o] * static_cast<Acc>(s[idx[2 * o]]) +
                                   wt[2 * o + 1] * static_cast<Acc>(s[idx[2 * o + 1]]));
          }
        } else {
          for (int64_t o = 0; o < n_out; ++o) {
            Acc acc = 0;
            for (int64_t j = 0; j < k; ++j) {
              acc += wt[o * k + j] * static_cast<Acc>(s[idx[o * k + j]]);
            }
            d[o] = Store<Dst, Acc>(acc);
          }
        }
      }
      return;
    }
    std::vector<Acc> scratch;
    if constexpr (!std::is_same_v<Dst, Acc>) scratch.resize(static_cast<size_t>(inner));
    for (int64_t a = 0; a < outer; ++a) {
      const Src* s = src + a * n_in * inner;
      for (int64_t o = 0; o < n_out; ++o) {
        Acc* row;
        if constexpr (std::is_same_v<Dst, Acc>) {
          row = dst + (a * n_out + o) * inner;
        } else {
          row = scratch.data();
        }
        const Src* r0 = s + idx[o * k] * inner;
        if (k == 2) {
          RowBlend(row, r0, wt[o * k], s + idx[o * k + 1] * inner, wt[o * k + 1], inner);
        } else {
          RowScale(row, r0, wt[o * k], inner);
          for (int64_t j = 1; j < k; ++j) {
            RowAxpy(row, s + idx[o * k + j] * inner, wt[o * k + j], inner);
          }
        }
        if constexpr (!std::is_same_v<Dst, Acc>) {
          Dst* d = dst + (a * n_out + o) * inner;
          for (int64_t i = 0; i < inner; ++i) d[i] = Store<Dst, Acc>(row[i]);
        }
      }
    }
  }

  template <typename Dst, typename Acc>
  static Dst Store(Acc v) {
    if constexpr (std::is_same_v<Dst, Acc>) {
      return v;
    } else {
      return Cast<Dst>(static_cast<double>(v));
    }
  }

  // d = wa * a + wb * b, d = w * a, d += w * a over n elements.
  template <typename Acc, typename Src>
  static void RowBlend(Acc* d, const Src* a, Acc wa, const Src* b, Acc wb, int64_t n) {
    int64_t i = 0;
#if defined(__SSE2__)
    if constexpr (std::is_same_v<Acc, float> && std::is_same_v<Src, float>) {
      const __m128 va = _mm_set1_ps(wa), vb = _mm_set1_ps(wb);
      for (; i + 4 <= n; i += 4) {
        _mm_storeu_ps(d + i, _mm_add_ps(_mm_mul_ps(va, _mm_loadu_ps(a + i)),
                                        _mm_mul_ps(vb, _mm_loadu_ps(b + i))));
      }
    }
#endif
    for (; i < n; ++i) d[i] = wa * static_cast<Acc>(a[i]) + wb * static_cast<Acc>(b[i]);
  }
  template <typename Acc, typename Src>
  static void RowScale(Acc* d, const Src* a, Acc w, int64_t n) {
    int64_t i = 0;
#if defined(__SSE2__)
    if constexpr (std::is_same_v<Acc, float> && std::is_same_v<Src, float>) {
      const __m128 vw = _mm_set1_ps(w);
      for (; i + 4 <= n; i += 4) _mm_storeu_ps(d + i, _mm_mul_ps(vw, _mm_loadu_ps(a + i)));
    }
#endif
    for (; i < n; ++i) d[i] = w * static_cast<Acc>(a[i]);
  }
  template <typename Acc, typename Src>
  static void RowAxpy(Acc* d, const Src* a, Acc w, int64_t n) {
    int64_t i = 0;
#if defined(__SSE2__)
    if constexpr (std::is_same_v<Acc, float> && std::is_same_v<Src, float>) {
      const __m128 vw = _mm_set1_ps(w);
      for (; i + 4 <= n; i += 4) {
        _mm_storeu_ps(d + i, _mm_add_ps(_mm_loadu_ps(d + i), _mm_mul_ps(vw, _mm_loadu_ps(a + i))));
      }
    }
#endif
    for (; i < n; ++i) d[i] += w * static_cast<Acc>(a[i]);
  }

  ResizeAttrs a_;
};

}  // namespace

Result<KernelPtr> MakeResize(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ResizeAttrs a;
  const bool upsample = init.node.op_type == "Upsample";
  a.name = upsample ? "Upsample" : "Resize";
  ASSIGN_OR_RETURN(std::string mode, attrs.String("mode", "nearest"));
  const int64_t opset = upsample ? std::min<int64_t>(init.opset, 10) : init.opset;
  ASSIGN_OR_RETURN(a.mode, ParseMode(mode, opset, a.name));
  if (upsample || init.opset < 11) {
    // Upsample-7/9 and Resize-10: asymmetric coordinates, onnxruntime's nearest rounding.
    a.coord = CoordMode::kAsymmetric;
    a.nearest = NearestMode::kSimple;
    if (upsample && init.opset < 9) {
      ASSIGN_OR_RETURN(a.attr_scales, attrs.Floats("scales"));
      if (a.attr_scales.empty()) return InvalidInput("Upsample needs the scales attribute");
    } else {
      a.scales_input = 1;
    }
    return KernelPtr(new ResizeKernel(std::move(a)));
  }
  a.roi_input = 1;
  a.scales_input = 2;
  a.sizes_input = 3;
  ASSIGN_OR_RETURN(std::string coord, attrs.String("coordinate_transformation_mode", "half_pixel"));
  ASSIGN_OR_RETURN(a.coord, ParseCoordMode(coord));
  ASSIGN_OR_RETURN(std::string nearest, attrs.String("nearest_mode", "round_prefer_floor"));
  ASSIGN_OR_RETURN(a.nearest, ParseNearestMode(nearest));
  ASSIGN_OR_RETURN(float cubic_a, attrs.Float("cubic_coeff_a", -0.75f));
  a.cubic_a = cubic_a;
  ASSIGN_OR_RETURN(int64_t exclude, attrs.Int("exclude_outside", 0));
  a.exclude_outside = exclude != 0;
  ASSIGN_OR_RETURN(float extrap, attrs.Float("extrapolation_value", 0.0f));
  a.extrapolation = extrap;
  if (init.opset >= 18) {
    ASSIGN_OR_RETURN(int64_t antialias, attrs.Int("antialias", 0));
    a.antialias = antialias != 0 && a.mode != Mode::kNearest;
    ASSIGN_OR_RETURN(a.axes, attrs.Ints("axes"));
    ASSIGN_OR_RETURN(std::string policy, attrs.String("keep_aspect_ratio_policy", "stretch"));
    ASSIGN_OR_RETURN(a.policy, ParseAspectPolicy(policy));
  }
  return KernelPtr(new ResizeKernel(std::move(a)));
}

}  // namespace serveml::engine
