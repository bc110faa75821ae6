// Window geometry shared by Conv, ConvTranspose and the pooling operators: the auto_pad /
// pads / strides / dilations / kernel_shape attributes, output sizes, and a 3-D view that
// lets 1-D and 2-D cases run through one 3-D loop nest (missing leading dims are size 1).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/status.h"
#include "engine/kernel.h"

namespace serveml::engine {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Attributes as written on the node (vectors may be empty = defaults).
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::kNotSet;
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // [begin..., end...]
  bool ceil_mode = false;
};

// Parses auto_pad, kernel_shape, strides, dilations, pads (and ceil_mode when asked).
Result<WindowAttrs> ParseWindowAttrs(const NodeAttrs& attrs, bool with_ceil_mode);

// Up to three per-spatial-dim values stored inline, so resolving a window on every run
// allocates nothing. Callers keep size() <= 3 (ResolveWindow checks the rank first).
class WindowDims {
 public:
  static constexpr size_t kMax = 3;
  size_t size() const { return n_; }
  int64_t& operator[](size_t i) { return v_[i]; }
  int64_t operator[](size_t i) const { return v_[i]; }
  const int64_t* begin() const { return v_.data(); }
  const int64_t* end() const { return v_.data() + n_; }
  void assign(size_t n, int64_t value) {
    n_ = n;
    std::fill(v_.begin(), v_.begin() + static_cast<std::ptrdiff_t>(n), value);
  }
  void assign(std::span<const int64_t> values) {
    n_ = values.size();
    std::copy(values.begin(), values.end(), v_.begin());
  }
  void push_back(int64_t value) { v_[n_++] = value; }

 private:
  std::array<int64_t, kMax> v_{};
  size_t n_ = 0;
};

// Resolved geometry for `k` spatial dims (k = 1..3).
struct Window {
  size_t k = 0;
  WindowDims in, out, kernel, stride, dilation, pad_begin, pad_end;
};

// Resolves the window for input spatial dims `in` and kernel dims `kernel` (from the weight
// or the attribute). InvalidInput on inconsistent attributes or an empty output; Unsupported
// for more than 3 spatial dims.
Result<Window> ResolveWindow(const WindowAttrs& a, std::span<const int64_t> in,
                             std::span<const int64_t> kernel);

// A window padded to exactly 3 spatial dims (leading dims of size 1, kernel 1, stride 1).
struct Window3 {
  std::array<int64_t, 3> in, out, kernel, stride, dilation, pad, pad_end;
};
Window3 To3D(const Window& w);

inline double Volume(const WindowDims& dims) { return Volume({dims.begin(), dims.end()}); }

// The identity element map of Im2Col (copies whole rows when the horizontal stride is 1).
struct Im2ColCopy {
  template <typename V>
  V operator()(V v) const {
    return v;
  }
};

// For kernel column kw: the input column offset of output column 0 (off_w, before the
// stride) and the output columns [lo, hi) whose tap lands inside the input row,
// 0 <= ow * stride + off_w < in width (lo <= hi <= out width).
struct TapColumns {
  int64_t off_w, lo, hi;
};
inline TapColumns ValidTapColumns(const Window3& w, int64_t kw) {
  const int64_t off_w = kw * w.dilation[2] - w.pad[2];
  const int64_t sw = w.stride[2];
  int64_t lo = off_w >= 0 ? 0 : (-off_w + sw - 1) / sw;
  int64_t hi = w.in[2] - 1 - off_w < 0 ? 0 : (w.in[2] - 1 - off_w) / sw + 1;
  lo = std::min(lo, w.out[2]);
  hi = std::max(lo, std::min(hi, w.out[2]));
  return {off_w, lo, hi};
}

// col[(c, kd, kh, kw), (od, oh, ow)] = f(x[c, id, ih, iw]), and Out(0) outside the input: the
// im2col matrix of one image and group for a window (To3D form) over `channels` planes of x.
// `col` holds channels * kernel volume * output volume values. `f` maps an input element to
// the matrix type (identity for float Conv; minus the zero point for the integer ones).
template <typename T, typename Out, typename F>
void Im2Col(const T* x, int64_t channels, const Window3& w, Out* col, F f) {
  const int64_t out_size = w.out[0] * w.out[1] * w.out[2];
  const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
  Out* dst = col;
  for (int64_t c = 0; c < channels; ++c) {
    const T* xc = x + c * in_size;
    for (int64_t kd = 0; kd < w.kernel[0]; ++kd) {
      for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
        for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
          const auto [off_w, ow_lo, ow_hi] = ValidTapColumns(w, kw);
          const int64_t sw = w.stride[2];
          for (int64_t od = 0; od < w.out[0]; ++od) {
            const int64_t id = od * w.stride[0] - w.pad[0] + kd * w.dilation[0];
            for (int64_t oh = 0; oh < w.out[1]; ++oh) {
              const int64_t ih = oh * w.stride[1] - w.pad[1] + kh * w.dilation[1];
              Out* row = dst + (od * w.out[1] + oh) * w.out[2];
              if (id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1]) {
                std::fill(row, row + w.out[2], Out(0));
                continue;
              }
              const T* xrow = xc + (id * w.in[1] + ih) * w.in[2] + off_w;
              std::fill(row, row + ow_lo, Out(0));
              if (std::is_same_v<F, Im2ColCopy> && sw == 1) {
                std::copy(xrow + ow_lo, xrow + ow_hi, row + ow_lo);
              } else {
                for (int64_t ow = ow_lo; ow < ow_hi; ++ow) row[ow] = f(xrow[ow * sw]);
              }
              std::fill(row + ow_hi, row + w.out[2], Out(0));
            }
          }
          dst += out_size;
        }
      }
    }
  }
}

}  // namespace serveml::engine
