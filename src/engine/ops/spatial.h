// Window geometry shared by Conv, ConvTranspose and the pooling operators: the auto_pad /
// pads / strides / dilations / kernel_shape attributes, output sizes, and a 3-D view that
// lets 1-D and 2-D cases run through one 3-D loop nest (missing leading dims are size 1).
#pragma once

#include <array>
#include <cstdint>
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

// Resolved geometry for `k` spatial dims (k = 1..3).
struct Window {
  size_t k = 0;
  std::vector<int64_t> in, out, kernel, stride, dilation, pad_begin, pad_end;
};

// Resolves the window for input spatial dims `in` and kernel dims `kernel` (from the weight
// or the attribute). InvalidInput on inconsistent attributes or an empty output.
Result<Window> ResolveWindow(const WindowAttrs& a, const std::vector<int64_t>& in,
                             const std::vector<int64_t>& kernel);

// A window padded to exactly 3 spatial dims (leading dims of size 1, kernel 1, stride 1).
struct Window3 {
  std::array<int64_t, 3> in, out, kernel, stride, dilation, pad, pad_end;
};
Window3 To3D(const Window& w);

}  // namespace serveml::engine
