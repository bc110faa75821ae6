// Window geometry shared by Conv, ConvTranspose and the pooling operators: the auto_pad /
// pads / strides / dilations / kernel_shape attributes, output sizes, and a 3-D view that
// lets 1-D and 2-D cases run through one 3-D loop nest (missing leading dims are size 1).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
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

}  // namespace serveml::engine
