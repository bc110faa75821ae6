// Pooling: MaxPool (with optional Indices output, storage_order), AveragePool
// (count_include_pad, ceil_mode, dilations), LpPool, and the global variants GlobalMaxPool,
// GlobalAveragePool, GlobalLpPool. 1-D..3-D windows run through one 3-D loop nest; 2x2
// stride-2 max pooling has a vectorised fast path.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/isa.h"
#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"
#include "engine/ops/simd_target.h"
#include "engine/ops/spatial.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace serveml::engine {
namespace {

// Sum of p[0..n) in 16 interleaved partial sums (vectorised with SSE), then one total.
float PlaneSum(const float* p, int64_t n) {
  int64_t i = 0;
  float s = 0.0f;
#if defined(__SSE2__)
  __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps(), a2 = _mm_setzero_ps(), a3 = _mm_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    a0 = _mm_add_ps(a0, _mm_loadu_ps(p + i));
    a1 = _mm_add_ps(a1, _mm_loadu_ps(p + i + 4));
    a2 = _mm_add_ps(a2, _mm_loadu_ps(p + i + 8));
    a3 = _mm_add_ps(a3, _mm_loadu_ps(p + i + 12));
  }
  for (; i + 4 <= n; i += 4) a0 = _mm_add_ps(a0, _mm_loadu_ps(p + i));
  const __m128 a = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, a);
  s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; i < n; ++i) s += p[i];
  return s;
}

// Max of p[0..n) (n > 0) with the scalar rule m = v > m ? v : m started from p[0], applied
// per vector lane and then across lanes (same result, NaN handling included).
float PlaneMax(const float* p, int64_t n) {
  float m = p[0];
  int64_t i = 0;
#if defined(__SSE2__)
  if (n >= 8) {
    __m128 a0 = _mm_set1_ps(m), a1 = a0;
    for (; i + 8 <= n; i += 8) {
      a0 = _mm_max_ps(_mm_loadu_ps(p + i), a0);  // lane-wise v > m ? v : m
      a1 = _mm_max_ps(_mm_loadu_ps(p + i + 4), a1);
    }
    alignas(16) float lanes[8];
    _mm_store_ps(lanes, a0);
    _mm_store_ps(lanes + 4, a1);
    for (float v : lanes) m = v > m ? v : m;
  }
#endif
  for (; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

enum class PoolKind { kMax, kAverage, kLp };

// Taps [lo, hi) of one window dim whose input index start + k * dilation is inside the
// input, and how many taps fall inside the padded input (for count_include_pad).
struct Range {
  int64_t start, lo, hi, padded;
};

inline Range ClipRange(int64_t start, const Window3& w, int d) {
  const int64_t dil = w.dilation[d], k = w.kernel[d], in = w.in[d];
  auto first_at_least = [&](int64_t bound) {  // smallest tap with start + t*dil >= bound
    if (start >= bound) return int64_t{0};
    return (bound - start + dil - 1) / dil;
  };
  auto first_at_least_clamped = [&](int64_t bound) { return std::min(k, first_at_least(bound)); };
  Range r;
  r.start = start;
  r.lo = first_at_least_clamped(0);
  r.hi = std::max(r.lo, first_at_least_clamped(in));
  const int64_t plo = first_at_least_clamped(-w.pad[d]);
  const int64_t phi = std::max(plo, first_at_least_clamped(in + w.pad_end[d]));
  r.padded = phi - plo;
  return r;
}

// y[oh, ow] = max of the 2x2 window of x at (2 oh, 2 ow); x rows are in_w long. Taps in
// row-major order, each kept when greater than the running maximum (NaN taps are skipped,
// as in the general path).
template <typename T>
__attribute__((always_inline)) inline void MaxPool2x2(const T* x, int64_t in_w, T* y, int64_t out_h,
                                                      int64_t out_w) {
  T init = std::numeric_limits<T>::lowest();
  if constexpr (std::is_floating_point_v<T>) init = -std::numeric_limits<T>::infinity();
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const T* r0 = x + 2 * oh * in_w;
    const T* r1 = r0 + in_w;
    T* out = y + oh * out_w;
    for (int64_t ow = 0; ow < out_w; ++ow) {
      T m = init;
      const T v0 = r0[2 * ow], v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
      m = v0 > m ? v0 : m;
      m = v1 > m ? v1 : m;
      m = v2 > m ? v2 : m;
      m = v3 > m ? v3 : m;
      out[ow] = m;
    }
  }
}

// The float 2x2 case compiled once per ISA, picked by the engine's dispatch (isa.h).
SERVEML_SIMD_BEGIN("avx512f")
void MaxPool2x2FloatAvx512(const float* x, int64_t in_w, float* y, int64_t out_h, int64_t out_w) {
  MaxPool2x2<float>(x, in_w, y, out_h, out_w);
}
SERVEML_SIMD_END
SERVEML_SIMD_BEGIN("avx2")
void MaxPool2x2FloatAvx2(const float* x, int64_t in_w, float* y, int64_t out_h, int64_t out_w) {
  MaxPool2x2<float>(x, in_w, y, out_h, out_w);
}
SERVEML_SIMD_END

void MaxPool2x2Float(const float* x, int64_t in_w, float* y, int64_t out_h, int64_t out_w) {
  if (UseIsa(Isa::kAvx512)) return MaxPool2x2FloatAvx512(x, in_w, y, out_h, out_w);
  if (UseIsa(Isa::kAvx2)) return MaxPool2x2FloatAvx2(x, in_w, y, out_h, out_w);
  MaxPool2x2<float>(x, in_w, y, out_h, out_w);
}

class PoolKernel final : public Kernel {
 public:
  PoolKernel(PoolKind kind, const char* name, WindowAttrs attrs, bool count_include_pad,
             int64_t storage_order, int64_t p)
      : kind_(kind),
        name_(name),
        attrs_(std::move(attrs)),
        count_include_pad_(count_include_pad),
        storage_order_(storage_order),
        p_(p) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    if (x->rank() < 3) return InvalidInput(std::string(name_) + " input must have rank >= 3");
    const auto in = std::span<const int64_t>(x->shape()).subspan(2);
    if (attrs_.kernel_shape.size() != in.size()) {
      return InvalidInput(std::string(name_) + " kernel_shape has " +
                          std::to_string(attrs_.kernel_shape.size()) + " dims for an input of " +
                          ShapeToString(x->shape()));
    }
    ASSIGN_OR_RETURN(Window win, ResolveWindow(attrs_, in, attrs_.kernel_shape));
    RETURN_IF_ERROR(CheckWork(name_, static_cast<double>(x->dim(0)) *
                                         static_cast<double>(x->dim(1)) * Volume(win.out) *
                                         Volume(win.kernel)));
    Shape out_shape{x->dim(0), x->dim(1)};
    out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
    const Window3 w = To3D(win);
    const bool want_indices = kind_ == PoolKind::kMax && ctx.num_outputs() > 1;
    auto run = [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
      Tensor ind;
      if (want_indices) {
        ASSIGN_OR_RETURN(ind, NewTensor(DType::kInt64, out_shape));
      }
      const int64_t planes = x->dim(0) * x->dim(1);
      const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
      const int64_t out_size = w.out[0] * w.out[1] * w.out[2];
      const T* px = x->data<T>();
      T* py = y.data<T>();
      int64_t* pi = want_indices ? ind.data<int64_t>() : nullptr;
      // 2x2 windows at stride 2, unpadded, wholly inside the input (the usual CNN
      // down-sampling step): the four taps are read with constant strides, which vectorises.
      // Same tap order and comparison as the general path below.
      if (kind_ == PoolKind::kMax && !pi && w.kernel[0] == 1 && w.stride[0] == 1 && w.pad[0] == 0 &&
          w.out[0] == w.in[0] && w.kernel[1] == 2 && w.kernel[2] == 2 && w.stride[1] == 2 &&
          w.stride[2] == 2 && w.dilation[1] == 1 && w.dilation[2] == 1 && w.pad[1] == 0 &&
          w.pad[2] == 0 && 2 * w.out[1] <= w.in[1] && 2 * w.out[2] <= w.in[2]) {
        const int64_t slices = planes * w.in[0];
        for (int64_t sl = 0; sl < slices; ++sl) {
          const T* xs = px + sl * w.in[1] * w.in[2];
          T* ys = py + sl * w.out[1] * w.out[2];
          if constexpr (std::is_same_v<T, float>) {
            MaxPool2x2Float(xs, w.in[2], ys, w.out[1], w.out[2]);
          } else {
            MaxPool2x2<T>(xs, w.in[2], ys, w.out[1], w.out[2]);
          }
        }
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      }
      std::vector<Range> ranges[3];  // per dim and output index: the clipped taps
      for (int d = 0; d < 3; ++d) {
        ranges[d].reserve(static_cast<size_t>(w.out[d]));
        for (int64_t o = 0; o < w.out[d]; ++o) {
          ranges[d].push_back(ClipRange(o * w.stride[d] - w.pad[d], w, d));
        }
      }
      // Row-wise path for MaxPool without indices and AveragePool: taps outermost, output
      // positions innermost (vectorisable), per-tap valid output ranges precomputed.
      const bool row_wise = (kind_ == PoolKind::kMax && !pi) || kind_ == PoolKind::kAverage;
      std::vector<int64_t> ow_lo(static_cast<size_t>(w.kernel[2])),
          ow_hi(static_cast<size_t>(w.kernel[2]));
      std::vector<double> inv_count;
      if (row_wise) {
        const int64_t sw = w.stride[2];
        for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
          const int64_t off = kw * w.dilation[2] - w.pad[2];
          int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
          int64_t hi = w.in[2] - 1 - off < 0 ? 0 : (w.in[2] - 1 - off) / sw + 1;
          lo = std::min(lo, w.out[2]);
          ow_lo[kw] = lo;
          ow_hi[kw] = std::max(lo, std::min(hi, w.out[2]));
        }
      }
      std::vector<T> acc_row(static_cast<size_t>(w.out[2]));
      for (int64_t pl = 0; row_wise && pl < planes; ++pl) {
        const T* xp = px + pl * in_size;
        T* yp = py + pl * out_size;
        for (int64_t od = 0; od < w.out[0]; ++od) {
          const Range& rd = ranges[0][od];
          for (int64_t oh = 0; oh < w.out[1]; ++oh) {
            const Range& rh = ranges[1][oh];
            T* out = yp + (od * w.out[1] + oh) * w.out[2];
            if (kind_ == PoolKind::kMax) {
              T init = std::numeric_limits<T>::lowest();
              if constexpr (std::is_floating_point_v<T>) init = -std::numeric_limits<T>::infinity();
              std::fill(out, out + w.out[2], init);
            } else {
              std::fill(out, out + w.out[2], T(0));
            }
            for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
              const int64_t id = rd.start + kd * w.dilation[0];
              for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
                const int64_t ih = rh.start + kh * w.dilation[1];
                const T* in_row = xp + (id * w.in[1] + ih) * w.in[2];
                for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
                  const T* src = in_row + kw * w.dilation[2] - w.pad[2];
                  const int64_t sw = w.stride[2];
                  if (kind_ == PoolKind::kMax) {
                    for (int64_t ow = ow_lo[kw]; ow < ow_hi[kw]; ++ow) {
                      const T v = src[ow * sw];
                      out[ow] = v > out[ow] ? v : out[ow];
                    }
                  } else {
                    for (int64_t ow = ow_lo[kw]; ow < ow_hi[kw]; ++ow) out[ow] += src[ow * sw];
                  }
                }
              }
            }
            if (kind_ == PoolKind::kAverage) {
              const int64_t n_dh =
                  count_include_pad_ ? rd.padded * rh.padded : (rd.hi - rd.lo) * (rh.hi - rh.lo);
              for (int64_t ow = 0; ow < w.out[2]; ++ow) {
                const Range& rw = ranges[2][ow];
                const int64_t cnt = n_dh * (count_include_pad_ ? rw.padded : rw.hi - rw.lo);
                out[ow] = cnt ? static_cast<T>(out[ow] / static_cast<T>(cnt)) : T(0);
              }
            } else if (rd.hi == rd.lo || rh.hi == rh.lo) {
              std::fill(out, out + w.out[2], T(0));
            }
          }
        }
      }
      for (int64_t pl = 0; !row_wise && pl < planes; ++pl) {
        const T* xp = px + pl * in_size;
        T* yp = py + pl * out_size;
        for (int64_t od = 0; od < w.out[0]; ++od) {
          const Range& rd = ranges[0][od];
          for (int64_t oh = 0; oh < w.out[1]; ++oh) {
            const Range& rh = ranges[1][oh];
            for (int64_t ow = 0; ow < w.out[2]; ++ow) {
              const Range& rw = ranges[2][ow];
              const int64_t o = (od * w.out[1] + oh) * w.out[2] + ow;
              const int64_t valid = (rd.hi - rd.lo) * (rh.hi - rh.lo) * (rw.hi - rw.lo);
              if (kind_ == PoolKind::kMax && !pi) {
                // Branch-free max (no index tracking). Windows always hold >= 1 input tap.
                T best = std::numeric_limits<T>::lowest();
                if constexpr (std::is_floating_point_v<T>) {
                  best = -std::numeric_limits<T>::infinity();
                }
                for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
                  const int64_t id = rd.start + kd * w.dilation[0];
                  for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
                    const int64_t ih = rh.start + kh * w.dilation[1];
                    const T* row = xp + (id * w.in[1] + ih) * w.in[2] + rw.start;
                    for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
                      const T v = row[kw * w.dilation[2]];
                      best = v > best ? v : best;
                    }
                  }
                }
                yp[o] = valid ? best : T(0);
              } else if (kind_ == PoolKind::kMax) {
                T best = std::numeric_limits<T>::lowest();
                int64_t best_at = -1;
                for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
                  const int64_t id = rd.start + kd * w.dilation[0];
                  for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
                    const int64_t ih = rh.start + kh * w.dilation[1];
                    const T* row = xp + (id * w.in[1] + ih) * w.in[2] + rw.start;
                    for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
                      const T v = row[kw * w.dilation[2]];
                      if (v > best || best_at < 0) {
                        best = v;
                        best_at = (id * w.in[1] + ih) * w.in[2] + rw.start + kw * w.dilation[2];
                      }
                    }
                  }
                }
                yp[o] = best_at < 0 ? T(0) : best;
                if (pi) {
                  int64_t idx = best_at < 0 ? 0 : best_at;
                  if (storage_order_ != 0 && best_at >= 0) {
                    const int64_t iw = best_at % w.in[2];
                    const int64_t ih = (best_at / w.in[2]) % w.in[1];
                    const int64_t id = best_at / (w.in[2] * w.in[1]);
                    idx = id + ih * w.in[0] + iw * w.in[0] * w.in[1];
                  }
                  pi[pl * out_size + o] = pl * in_size + idx;
                }
              } else {
                double acc = 0;
                for (int64_t kd = rd.lo; kd < rd.hi; ++kd) {
                  const int64_t id = rd.start + kd * w.dilation[0];
                  for (int64_t kh = rh.lo; kh < rh.hi; ++kh) {
                    const int64_t ih = rh.start + kh * w.dilation[1];
                    const T* row = xp + (id * w.in[1] + ih) * w.in[2] + rw.start;
                    for (int64_t kw = rw.lo; kw < rw.hi; ++kw) {
                      const double v = static_cast<double>(row[kw * w.dilation[2]]);
                      acc += kind_ == PoolKind::kAverage
                                 ? v
                                 : std::pow(std::fabs(v), static_cast<double>(p_));
                    }
                  }
                }
                if (kind_ == PoolKind::kAverage) {
                  const int64_t cnt =
                      count_include_pad_ ? rd.padded * rh.padded * rw.padded : valid;
                  yp[o] = static_cast<T>(cnt ? acc / static_cast<double>(cnt) : 0.0);
                } else {
                  yp[o] = static_cast<T>(std::pow(acc, 1.0 / static_cast<double>(p_)));
                }
              }
            }
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      if (want_indices) *ctx.outputs[1] = std::move(ind);
      return Status::Ok();
    };
    if (kind_ == PoolKind::kMax) {
      return Dispatch<float, double, int8_t, uint8_t>(x->dtype(), name_, run);
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, run);
  }

 private:
  PoolKind kind_;
  const char* name_;
  WindowAttrs attrs_;
  bool count_include_pad_;
  int64_t storage_order_;
  int64_t p_;
};

class GlobalPoolKernel final : public Kernel {
 public:
  GlobalPoolKernel(PoolKind kind, const char* name, int64_t p) : kind_(kind), name_(name), p_(p) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(std::string(name_) + " needs an input");
    if (x->rank() < 2) return InvalidInput(std::string(name_) + " input must have rank >= 2");
    Shape out_shape{x->dim(0), x->dim(1)};
    out_shape.resize(x->rank(), 1);
    const int64_t planes = x->dim(0) * x->dim(1);
    const int64_t size = planes == 0 ? 0 : x->numel() / planes;
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), name_, [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
      const T* px = x->data<T>();
      T* py = y.data<T>();
      for (int64_t pl = 0; pl < planes; ++pl) {
        const T* row = px + pl * size;
        if constexpr (std::is_same_v<T, float>) {
          if (kind_ == PoolKind::kMax) {
            py[pl] = size ? PlaneMax(row, size) : 0.0f;
            continue;
          }
          if (kind_ == PoolKind::kAverage) {
            py[pl] = size ? PlaneSum(row, size) / static_cast<float>(size) : 0.0f;
            continue;
          }
        }
        if (kind_ == PoolKind::kMax) {
          T m = size ? row[0] : T(0);
          for (int64_t i = 1; i < size; ++i) m = row[i] > m ? row[i] : m;
          py[pl] = m;
        } else if (kind_ == PoolKind::kAverage) {
          T s = 0;
          for (int64_t i = 0; i < size; ++i) s += row[i];
          py[pl] = size ? s / static_cast<T>(size) : T(0);
        } else {
          double s = 0;
          for (int64_t i = 0; i < size; ++i) {
            s += std::pow(std::fabs(static_cast<double>(row[i])), static_cast<double>(p_));
          }
          py[pl] = static_cast<T>(std::pow(s, 1.0 / static_cast<double>(p_)));
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  PoolKind kind_;
  const char* name_;
  int64_t p_;
};

}  // namespace

Result<KernelPtr> MakePool(const KernelInit& init) {
  const std::string& op = init.node.op_type;
  NodeAttrs attrs(init.node);
  if (op == "GlobalMaxPool")
    return KernelPtr(new GlobalPoolKernel(PoolKind::kMax, "GlobalMaxPool", 0));
  if (op == "GlobalAveragePool") {
    return KernelPtr(new GlobalPoolKernel(PoolKind::kAverage, "GlobalAveragePool", 0));
  }
  if (op == "GlobalLpPool") {
    ASSIGN_OR_RETURN(int64_t p, attrs.Int("p", 2));
    if (p <= 0) return InvalidInput("GlobalLpPool p must be positive");
    return KernelPtr(new GlobalPoolKernel(PoolKind::kLp, "GlobalLpPool", p));
  }
  ASSIGN_OR_RETURN(WindowAttrs w, ParseWindowAttrs(attrs, op != "LpPool" || init.opset >= 18));
  if (w.kernel_shape.empty()) return InvalidInput(op + " needs kernel_shape");
  if (op == "MaxPool") {
    ASSIGN_OR_RETURN(int64_t storage_order, attrs.Int("storage_order", 0));
    return KernelPtr(
        new PoolKernel(PoolKind::kMax, "MaxPool", std::move(w), false, storage_order, 0));
  }
  if (op == "AveragePool") {
    ASSIGN_OR_RETURN(int64_t cip, attrs.Int("count_include_pad", 0));
    return KernelPtr(
        new PoolKernel(PoolKind::kAverage, "AveragePool", std::move(w), cip != 0, 0, 0));
  }
  if (op == "LpPool") {
    ASSIGN_OR_RETURN(int64_t p, attrs.Int("p", 2));
    if (p <= 0) return InvalidInput("LpPool p must be positive");
    return KernelPtr(new PoolKernel(PoolKind::kLp, "LpPool", std::move(w), false, 0, p));
  }
  return Internal("MakePool: unexpected op " + op);
}

}  // namespace serveml::engine
