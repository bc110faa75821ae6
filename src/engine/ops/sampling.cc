// Resampling by coordinates: GridSample (opsets 16/20/22: nearest, (bi)linear and (bi)cubic
// interpolation over any number of spatial dims, zeros/border/reflection padding),
// AffineGrid (opset 20: the sampling grid of a batch of 2-D or 3-D affine transforms) and
// RoiAlign (opsets 10/16: average or max pooling of bilinear samples over regions of
// interest). Semantics follow the ONNX reference implementations; float32 and float64.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// ---------------------------------------------------------------------------------------
// GridSample

enum class SampleMode { kNearest, kLinear, kCubic };
enum class PadMode { kZeros, kBorder, kReflection };

// Reflects x into [lo, hi] by folding at the nearer border until it lies inside.
double Reflect(double x, double lo, double hi) {
  const double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    const double dx = lo - x;
    const double n = std::floor(dx / range);
    const double r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const double dx = x - hi;
    const double n = std::floor(dx / range);
    const double r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? hi - r : lo + r;
  }
  return x;
}

// Keys cubic convolution weights (alpha -0.75) for taps at -1, 0, 1, 2 around fraction t.
void CubicCoeffs(double t, double c[4]) {
  constexpr double A = -0.75;
  const double x = std::abs(t);
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((A * (2 - x) - 5 * A) * (2 - x) + 8 * A) * (2 - x) - 4 * A;
}

struct Tap {
  int64_t offset;
  double weight;
};

class GridSampleKernel final : public Kernel {
 public:
  GridSampleKernel(SampleMode mode, PadMode pad, bool align_corners)
      : mode_(mode), pad_(pad), align_(align_corners) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* grid = ctx.input(1);
    if (!x || !grid) return InvalidInput("GridSample needs X and grid");
    const size_t rank = x->rank();
    if (rank < 3) {
      return InvalidInput("GridSample X must have rank >= 3 (N, C, spatial...), got shape " +
                          ShapeToString(x->shape()));
    }
    const size_t r = rank - 2;
    if (grid->rank() != rank || grid->dim(0) != x->dim(0) ||
        grid->dim(rank - 1) != static_cast<int64_t>(r)) {
      return InvalidInput("GridSample grid shape " + ShapeToString(grid->shape()) +
                          " does not match X shape " + ShapeToString(x->shape()) +
                          " (expected (N, spatial out..., " + std::to_string(r) + "))");
    }
    Shape out_shape{x->dim(0), x->dim(1)};
    for (size_t i = 1; i + 1 < rank; ++i) out_shape.push_back(grid->dim(i));
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "GridSample", [&](auto xtag) -> Status {
      using T = decltype(xtag);
      return Dispatch<SERVEML_FLOAT_TYPES>(grid->dtype(), "GridSample", [&](auto gtag) {
        using G = decltype(gtag);
        return Sample<T, G>(*x, *grid, out_shape, ctx);
      });
    });
  }

 private:
  // Index `i` of a dim of size `d` after padding, or -1 when it reads as zero.
  int64_t ResolveIndex(int64_t i, int64_t d, double lo, double hi) const {
    if (i >= 0 && i < d) return i;
    switch (pad_) {
      case PadMode::kZeros:
        return -1;
      case PadMode::kBorder:
        return std::clamp<int64_t>(i, 0, d - 1);
      case PadMode::kReflection:
        return std::clamp<int64_t>(static_cast<int64_t>(Reflect(static_cast<double>(i), lo, hi)), 0,
                                   d - 1);
    }
    return -1;
  }

  template <typename T, typename G>
  Status Sample(const Tensor& x, const Tensor& grid, const std::vector<int64_t>& out_shape,
                KernelContext& ctx) const {
    ASSIGN_OR_RETURN(Tensor y, NewTensor(x.dtype(), out_shape));
    const size_t r = x.rank() - 2;
    const int64_t n_batch = x.dim(0), channels = x.dim(1);
    std::vector<int64_t> dims(x.shape().begin() + 2, x.shape().end());
    const std::vector<int64_t> strides = RowMajorStrides(dims);
    int64_t in_plane = 1, points = 1;
    for (int64_t d : dims) in_plane *= d;
    for (size_t i = 2; i < out_shape.size(); ++i) points *= out_shape[i];
    const T* px = x.data<T>();
    const G* pg = grid.data<G>();
    T* py = y.data<T>();
    if (in_plane == 0) {  // nothing to sample: every output reads padding zeros
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    }
    std::vector<Tap> taps, next;
    taps.reserve(64);
    next.reserve(64);
    for (int64_t n = 0; n < n_batch; ++n) {
      for (int64_t p = 0; p < points; ++p) {
        const G* g = pg + (n * points + p) * static_cast<int64_t>(r);
        taps.assign(1, Tap{0, 1.0});
        for (size_t i = 0; i < r && !taps.empty(); ++i) {
          const int64_t d = dims[i];
          const G gn = g[r - 1 - i];  // grid coordinates are in reverse dim order
          G gx = align_ ? (gn + G(1)) / G(2) * static_cast<G>(d - 1)
                        : ((gn + G(1)) * static_cast<G>(d) - G(1)) / G(2);
          if (mode_ == SampleMode::kNearest) gx = std::nearbyint(gx);
          if (std::isnan(gx)) {
            taps.clear();  // a NaN coordinate samples nothing: the output is 0
            break;
          }
          const double lo = align_ ? 0.0 : -0.5;
          const double hi = align_ ? static_cast<double>(d - 1) : static_cast<double>(d) - 0.5;
          double c = std::clamp(static_cast<double>(gx), -1e12, 1e12);
          // Cubic with border padding keeps the coordinate and clamps each tap (ResolveIndex),
          // as PyTorch and onnxruntime do; the ONNX reference clamps the coordinate first,
          // which no backend case covers and which PyTorch-exported models do not expect.
          if ((c < lo || c > hi) && !(mode_ == SampleMode::kCubic && pad_ == PadMode::kBorder)) {
            if (pad_ == PadMode::kBorder) {
              c = std::clamp(c, 0.0, static_cast<double>(d - 1));
            } else if (pad_ == PadMode::kReflection) {
              c = Reflect(c, lo, hi);
            }
            c = static_cast<double>(static_cast<G>(c));
          }
          int64_t idx[4];
          double w[4];
          int k = 0;
          if (mode_ == SampleMode::kNearest) {
            idx[0] = static_cast<int64_t>(c);  // truncation, as the reference's int cast
            w[0] = 1.0;
            k = 1;
          } else {
            const double f = std::floor(c);
            const double t = c - f;
            const int64_t i0 = static_cast<int64_t>(f);
            if (mode_ == SampleMode::kLinear) {
              idx[0] = i0;
              idx[1] = i0 + 1;
              w[0] = 1.0 - t;
              w[1] = t;
              k = 2;
            } else {
              CubicCoeffs(t, w);
              for (int j = 0; j < 4; ++j) idx[j] = i0 - 1 + j;
              k = 4;
            }
          }
          next.clear();
          for (int j = 0; j < k; ++j) {
            const int64_t at = ResolveIndex(idx[j], d, lo, hi);
            if (at < 0) continue;
            for (const Tap& tp : taps) {
              next.push_back(Tap{tp.offset + at * strides[i], tp.weight * w[j]});
            }
          }
          std::swap(taps, next);
        }
        for (int64_t ch = 0; ch < channels; ++ch) {
          const T* plane = px + (n * channels + ch) * in_plane;
          double acc = 0;
          for (const Tap& tp : taps) acc += tp.weight * static_cast<double>(plane[tp.offset]);
          py[(n * channels + ch) * points + p] = static_cast<T>(acc);
        }
      }
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

  SampleMode mode_;
  PadMode pad_;
  bool align_;
};

// ---------------------------------------------------------------------------------------
// AffineGrid

class AffineGridKernel final : public Kernel {
 public:
  explicit AffineGridKernel(bool align_corners) : align_(align_corners) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* theta = ctx.input(0);
    const Tensor* size_in = ctx.input(1);
    if (!theta || !size_in) return InvalidInput("AffineGrid needs theta and size");
    ASSIGN_OR_RETURN(std::vector<int64_t> size, ReadInt64s(*size_in, "AffineGrid size"));
    if (size.size() != 4 && size.size() != 5) {
      return InvalidInput(
          "AffineGrid size must have 4 (N, C, H, W) or 5 (N, C, D, H, W) "
          "entries, got " +
          std::to_string(size.size()));
    }
    const int64_t k = static_cast<int64_t>(size.size()) - 2;  // 2 or 3 spatial dims
    for (int64_t v : size) {
      if (v < 0) return InvalidInput("AffineGrid size entries must be >= 0");
    }
    if (theta->rank() != 3 || theta->dim(0) != size[0] || theta->dim(1) != k ||
        theta->dim(2) != k + 1) {
      return InvalidInput("AffineGrid theta shape " + ShapeToString(theta->shape()) +
                          " does not match size (expected (" + std::to_string(size[0]) + ", " +
                          std::to_string(k) + ", " + std::to_string(k + 1) + "))");
    }
    Shape out_shape{size[0]};
    out_shape.insert(out_shape.end(), size.begin() + 2, size.end());
    out_shape.push_back(k);
    // Normalised coordinates along one spatial dim.
    auto base = [&](int64_t n) {
      std::vector<double> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        if (align_) {
          v[i] = n > 1 ? -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(n - 1) : -1.0;
        } else {
          v[i] = -1.0 + (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(n);
        }
      }
      return v;
    };
    return Dispatch<SERVEML_FLOAT_TYPES>(theta->dtype(), "AffineGrid", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor out, NewTensor(theta->dtype(), out_shape));
      if (out.numel() == 0) {
        *ctx.outputs[0] = std::move(out);
        return Status::Ok();
      }
      const T* th = theta->data<T>();
      T* po = out.data<T>();
      const int64_t D = k == 3 ? size[2] : 1, H = size[k == 3 ? 3 : 2], W = size[k == 3 ? 4 : 3];
      const std::vector<double> bz = base(D), by = base(H), bx = base(W);
      for (int64_t n = 0; n < size[0]; ++n) {
        const T* t = th + n * k * (k + 1);
        for (int64_t z = 0; z < D; ++z) {
          for (int64_t yy = 0; yy < H; ++yy) {
            for (int64_t xx = 0; xx < W; ++xx) {
              // Homogeneous point (x, y[, z], 1).
              double pt[4] = {bx[xx], by[yy], k == 3 ? bz[z] : 1.0, 1.0};
              for (int64_t row = 0; row < k; ++row) {
                double s = 0;
                for (int64_t col = 0; col <= k; ++col) {
                  s += static_cast<double>(t[row * (k + 1) + col]) * pt[col];
                }
                *po++ = static_cast<T>(s);
              }
            }
          }
        }
      }
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    });
  }

 private:
  bool align_;
};

// ---------------------------------------------------------------------------------------
// RoiAlign

// One bilinear sample: four input offsets and their weights (all zero outside the map).
struct BilinearSample {
  int64_t pos[4];
  double w[4];
};

class RoiAlignKernel final : public Kernel {
 public:
  RoiAlignKernel(bool max_mode, int64_t out_h, int64_t out_w, int64_t sampling_ratio,
                 float spatial_scale, bool half_pixel)
      : max_mode_(max_mode),
        out_h_(out_h),
        out_w_(out_w),
        sampling_ratio_(sampling_ratio),
        spatial_scale_(spatial_scale),
        half_pixel_(half_pixel) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* rois = ctx.input(1);
    const Tensor* bi = ctx.input(2);
    if (!x || !rois || !bi) return InvalidInput("RoiAlign needs X, rois and batch_indices");
    if (x->rank() != 4) {
      return InvalidInput("RoiAlign X must be 4-D (N, C, H, W), got shape " +
                          ShapeToString(x->shape()));
    }
    if (rois->rank() != 2 || rois->dim(1) != 4) {
      return InvalidInput("RoiAlign rois must have shape (num_rois, 4), got " +
                          ShapeToString(rois->shape()));
    }
    if (rois->dtype() != x->dtype()) {
      return InvalidInput("RoiAlign rois must have X's element type");
    }
    ASSIGN_OR_RETURN(std::vector<int64_t> batch, ReadInt64s(*bi, "RoiAlign batch_indices"));
    const int64_t num_rois = rois->dim(0);
    if (static_cast<int64_t>(batch.size()) != num_rois) {
      return InvalidInput("RoiAlign batch_indices has " + std::to_string(batch.size()) +
                          " entries for " + std::to_string(num_rois) + " rois");
    }
    for (int64_t b : batch) {
      if (b < 0 || b >= x->dim(0)) {
        return InvalidInput("RoiAlign batch index " + std::to_string(b) +
                            " is out of range for a batch of " + std::to_string(x->dim(0)));
      }
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "RoiAlign", [&](auto tag) -> Status {
      using T = decltype(tag);
      const int64_t C = x->dim(1), H = x->dim(2), W = x->dim(3);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), {num_rois, C, out_h_, out_w_}));
      const T* px = x->data<T>();
      const T* pr = rois->data<T>();
      T* py = y.data<T>();
      std::vector<BilinearSample> samples;
      const double offset = half_pixel_ ? 0.5 : 0.0;
      double work = 0.0;
      for (int64_t n = 0; n < num_rois; ++n) {
        const T* roi = pr + n * 4;
        const double start_w = static_cast<double>(roi[0]) * spatial_scale_ - offset;
        const double start_h = static_cast<double>(roi[1]) * spatial_scale_ - offset;
        const double end_w = static_cast<double>(roi[2]) * spatial_scale_ - offset;
        const double end_h = static_cast<double>(roi[3]) * spatial_scale_ - offset;
        double roi_w = end_w - start_w, roi_h = end_h - start_h;
        if (!half_pixel_) {  // malformed rois become 1x1
          roi_w = std::max(roi_w, 1.0);
          roi_h = std::max(roi_h, 1.0);
        }
        const double bin_h = roi_h / static_cast<double>(out_h_);
        const double bin_w = roi_w / static_cast<double>(out_w_);
        auto grid_count = [&](double extent, int64_t bins) -> int64_t {
          if (sampling_ratio_ > 0) return sampling_ratio_;
          const double c = std::ceil(extent / static_cast<double>(bins));
          if (!(c > 0)) return 0;
          return static_cast<int64_t>(std::min(c, 1e6));
        };
        const int64_t grid_h = grid_count(roi_h, out_h_), grid_w = grid_count(roi_w, out_w_);
        // Bounded sample grids keep the per-roi sample table small.
        constexpr int64_t kMaxSamples = int64_t{1} << 24;
        if (grid_h > kMaxSamples || grid_w > kMaxSamples ||
            grid_h * grid_w > kMaxSamples / (out_h_ * out_w_)) {
          return InvalidInput("RoiAlign roi " + std::to_string(n) +
                              " needs too many samples per bin (set sampling_ratio)");
        }
        // Each roi's samples are read for every channel; the work of the rois so far.
        work += static_cast<double>(C) * static_cast<double>(out_h_ * out_w_) *
                static_cast<double>(grid_h * grid_w);
        RETURN_IF_ERROR(CheckWork("RoiAlign", work));
        const double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
        // Samples shared by all channels, bin by bin.
        samples.clear();
        for (int64_t ph = 0; ph < out_h_; ++ph) {
          for (int64_t pw = 0; pw < out_w_; ++pw) {
            for (int64_t iy = 0; iy < grid_h; ++iy) {
              const double yy =
                  start_h + static_cast<double>(ph) * bin_h +
                  (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
              for (int64_t ix = 0; ix < grid_w; ++ix) {
                const double xx =
                    start_w + static_cast<double>(pw) * bin_w +
                    (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
                samples.push_back(Bilinear(yy, xx, H, W));
              }
            }
          }
        }
        const int64_t per_bin = grid_h * grid_w;
        for (int64_t c = 0; c < C; ++c) {
          const T* plane = px + (batch[n] * C + c) * H * W;
          T* out = py + (n * C + c) * out_h_ * out_w_;
          const BilinearSample* s = samples.data();
          for (int64_t bin = 0; bin < out_h_ * out_w_; ++bin) {
            double v = 0;
            bool first = true;
            for (int64_t j = 0; j < per_bin; ++j, ++s) {
              if (max_mode_) {
                double m = s->w[0] * static_cast<double>(plane[s->pos[0]]);
                for (int q = 1; q < 4; ++q) {
                  m = std::max(m, s->w[q] * static_cast<double>(plane[s->pos[q]]));
                }
                v = first ? m : std::max(v, m);
                first = false;
              } else {
                for (int q = 0; q < 4; ++q) v += s->w[q] * static_cast<double>(plane[s->pos[q]]);
              }
            }
            out[bin] = static_cast<T>(max_mode_ ? v : v / count);
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  static BilinearSample Bilinear(double y, double x, int64_t H, int64_t W) {
    BilinearSample s{{0, 0, 0, 0}, {0, 0, 0, 0}};
    if (!(y >= -1.0 && y <= static_cast<double>(H) && x >= -1.0 && x <= static_cast<double>(W)) ||
        H == 0 || W == 0) {
      return s;  // outside the feature map (or NaN): contributes zero
    }
    y = std::max(y, 0.0);
    x = std::max(x, 0.0);
    int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x), y_high, x_high;
    if (y_low >= H - 1) {
      y_high = y_low = H - 1;
      y = static_cast<double>(y_low);
    } else {
      y_high = y_low + 1;
    }
    if (x_low >= W - 1) {
      x_high = x_low = W - 1;
      x = static_cast<double>(x_low);
    } else {
      x_high = x_low + 1;
    }
    const double ly = y - static_cast<double>(y_low), lx = x - static_cast<double>(x_low);
    const double hy = 1.0 - ly, hx = 1.0 - lx;
    s.pos[0] = y_low * W + x_low;
    s.pos[1] = y_low * W + x_high;
    s.pos[2] = y_high * W + x_low;
    s.pos[3] = y_high * W + x_high;
    s.w[0] = hy * hx;
    s.w[1] = hy * lx;
    s.w[2] = ly * hx;
    s.w[3] = ly * lx;
    return s;
  }

  bool max_mode_;
  int64_t out_h_, out_w_, sampling_ratio_;
  float spatial_scale_;
  bool half_pixel_;
};

}  // namespace

Result<KernelPtr> MakeGridSample(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string mode, attrs.String("mode", "linear"));
  ASSIGN_OR_RETURN(std::string padding, attrs.String("padding_mode", "zeros"));
  ASSIGN_OR_RETURN(int64_t align, attrs.Int("align_corners", 0));
  SampleMode m;
  // Opset 16 spells the modes bilinear/bicubic, opset 20 linear/cubic.
  if (mode == "linear" || mode == "bilinear") {
    m = SampleMode::kLinear;
  } else if (mode == "nearest") {
    m = SampleMode::kNearest;
  } else if (mode == "cubic" || mode == "bicubic") {
    m = SampleMode::kCubic;
  } else {
    return InvalidInput("GridSample mode '" + mode +
                        "' is not one of linear (bilinear), nearest, cubic (bicubic)");
  }
  PadMode p;
  if (padding == "zeros") {
    p = PadMode::kZeros;
  } else if (padding == "border") {
    p = PadMode::kBorder;
  } else if (padding == "reflection") {
    p = PadMode::kReflection;
  } else {
    return InvalidInput("GridSample padding_mode '" + padding +
                        "' is not one of zeros, border, reflection");
  }
  return KernelPtr(new GridSampleKernel(m, p, align != 0));
}

Result<KernelPtr> MakeAffineGrid(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t align, attrs.Int("align_corners", 0));
  return KernelPtr(new AffineGridKernel(align != 0));
}

Result<KernelPtr> MakeRoiAlign(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string mode, attrs.String("mode", "avg"));
  ASSIGN_OR_RETURN(int64_t out_h, attrs.Int("output_height", 1));
  ASSIGN_OR_RETURN(int64_t out_w, attrs.Int("output_width", 1));
  ASSIGN_OR_RETURN(int64_t ratio, attrs.Int("sampling_ratio", 0));
  ASSIGN_OR_RETURN(float scale, attrs.Float("spatial_scale", 1.0f));
  // Opset 10 has no coordinate_transformation_mode and behaves as output_half_pixel.
  ASSIGN_OR_RETURN(std::string ctm,
                   attrs.String("coordinate_transformation_mode",
                                init.opset >= 16 ? "half_pixel" : "output_half_pixel"));
  if (mode != "avg" && mode != "max") {
    return InvalidInput("RoiAlign mode '" + mode + "' is not one of avg, max");
  }
  if (ctm != "half_pixel" && ctm != "output_half_pixel") {
    return InvalidInput("RoiAlign coordinate_transformation_mode '" + ctm +
                        "' is not one of half_pixel, output_half_pixel");
  }
  constexpr int64_t kMaxOut = int64_t{1} << 16;
  if (out_h <= 0 || out_w <= 0 || out_h > kMaxOut || out_w > kMaxOut) {
    return InvalidInput("RoiAlign output_height and output_width must be in [1, 65536]");
  }
  if (ratio < 0 || ratio > kMaxOut) {
    return InvalidInput("RoiAlign sampling_ratio must be in [0, 65536]");
  }
  return KernelPtr(
      new RoiAlignKernel(mode == "max", out_h, out_w, ratio, scale, ctm == "half_pixel"));
}

}  // namespace serveml::engine
