#include "engine/ops/spatial.h"

#include <algorithm>

namespace serveml::engine {

Result<WindowAttrs> ParseWindowAttrs(const NodeAttrs& attrs, bool with_ceil_mode) {
  WindowAttrs a;
  ASSIGN_OR_RETURN(std::string ap, attrs.String("auto_pad", "NOTSET"));
  if (ap == "NOTSET" || ap.empty()) {
    a.auto_pad = AutoPad::kNotSet;
  } else if (ap == "SAME_UPPER") {
    a.auto_pad = AutoPad::kSameUpper;
  } else if (ap == "SAME_LOWER") {
    a.auto_pad = AutoPad::kSameLower;
  } else if (ap == "VALID") {
    a.auto_pad = AutoPad::kValid;
  } else {
    return InvalidInput("auto_pad '" + ap +
                        "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  ASSIGN_OR_RETURN(a.kernel_shape, attrs.Ints("kernel_shape"));
  ASSIGN_OR_RETURN(a.strides, attrs.Ints("strides"));
  ASSIGN_OR_RETURN(a.dilations, attrs.Ints("dilations"));
  ASSIGN_OR_RETURN(a.pads, attrs.Ints("pads"));
  if (with_ceil_mode) {
    ASSIGN_OR_RETURN(int64_t c, attrs.Int("ceil_mode", 0));
    a.ceil_mode = c != 0;
  }
  return a;
}

Result<Window> ResolveWindow(const WindowAttrs& a, std::span<const int64_t> in,
                             std::span<const int64_t> kernel) {
  const size_t k = in.size();
  if (k == 0 || k > 3) {
    return Unsupported("windows over " + std::to_string(k) +
                       " spatial dimensions are not supported (1 to 3 are)");
  }
  if (kernel.size() != k) {
    return InvalidInput("kernel has " + std::to_string(kernel.size()) + " dims for " +
                        std::to_string(k) + " spatial dims");
  }
  auto check = [k](const std::vector<int64_t>& v, size_t want, const char* what) -> Status {
    if (!v.empty() && v.size() != want) {
      return InvalidInput(std::string(what) + " has " + std::to_string(v.size()) +
                          " entries, expected " + std::to_string(want));
    }
    (void)k;
    return Status::Ok();
  };
  // Bounded attribute values keep every size computation below far from int64 overflow.
  constexpr int64_t kMaxAttr = int64_t{1} << 28;
  for (std::span<const int64_t> v :
       {std::span<const int64_t>(a.strides), std::span<const int64_t>(a.dilations),
        std::span<const int64_t>(a.pads), kernel}) {
    for (int64_t x : v) {
      if (x < -kMaxAttr || x > kMaxAttr) {
        return InvalidInput("window attribute value " + std::to_string(x) + " is too large");
      }
    }
  }
  RETURN_IF_ERROR(check(a.strides, k, "strides"));
  RETURN_IF_ERROR(check(a.dilations, k, "dilations"));
  RETURN_IF_ERROR(check(a.pads, 2 * k, "pads"));
  Window w;
  w.k = k;
  w.in.assign(in);
  w.kernel.assign(kernel);
  if (a.strides.empty()) {
    w.stride.assign(k, 1);
  } else {
    w.stride.assign(a.strides);
  }
  if (a.dilations.empty()) {
    w.dilation.assign(k, 1);
  } else {
    w.dilation.assign(a.dilations);
  }
  w.pad_begin.assign(k, 0);
  w.pad_end.assign(k, 0);
  w.out.assign(k, 0);
  for (size_t i = 0; i < k; ++i) {
    if (w.kernel[i] <= 0 || w.stride[i] <= 0 || w.dilation[i] <= 0) {
      return InvalidInput("kernel, strides and dilations must be positive");
    }
    const int64_t ext = w.dilation[i] * (w.kernel[i] - 1) + 1;  // effective kernel extent
    switch (a.auto_pad) {
      case AutoPad::kNotSet: {
        if (!a.pads.empty()) {
          w.pad_begin[i] = a.pads[i];
          w.pad_end[i] = a.pads[i + k];
          if (w.pad_begin[i] < 0 || w.pad_end[i] < 0) return InvalidInput("pads must be >= 0");
        }
        const int64_t span = in[i] + w.pad_begin[i] + w.pad_end[i] - ext;
        if (span < 0) {
          w.out[i] = 0;
        } else if (a.ceil_mode) {
          w.out[i] = (span + w.stride[i] - 1) / w.stride[i] + 1;
          // The last window must start inside the input or the begin padding.
          if ((w.out[i] - 1) * w.stride[i] >= in[i] + w.pad_begin[i]) --w.out[i];
        } else {
          w.out[i] = span / w.stride[i] + 1;
        }
        break;
      }
      case AutoPad::kValid: {
        const int64_t span = in[i] - ext;
        w.out[i] = span < 0 ? 0 : span / w.stride[i] + 1;
        if (a.ceil_mode && span >= 0) w.out[i] = (span + w.stride[i] - 1) / w.stride[i] + 1;
        break;
      }
      case AutoPad::kSameUpper:
      case AutoPad::kSameLower: {
        w.out[i] = (in[i] + w.stride[i] - 1) / w.stride[i];
        const int64_t total = std::max<int64_t>(0, (w.out[i] - 1) * w.stride[i] + ext - in[i]);
        const int64_t small = total / 2;
        w.pad_begin[i] = a.auto_pad == AutoPad::kSameUpper ? small : total - small;
        w.pad_end[i] = total - w.pad_begin[i];
        break;
      }
    }
    if (w.out[i] <= 0 && in[i] > 0) {
      return InvalidInput("the window (extent " + std::to_string(ext) +
                          ") does not fit the padded input (size " + std::to_string(in[i]) + ")");
    }
  }
  return w;
}

Window3 To3D(const Window& w) {
  Window3 r;
  const size_t off = 3 - w.k;
  for (size_t i = 0; i < 3; ++i) {
    if (i < off) {
      r.in[i] = r.out[i] = r.kernel[i] = r.stride[i] = r.dilation[i] = 1;
      r.pad[i] = r.pad_end[i] = 0;
    } else {
      const size_t j = i - off;
      r.in[i] = w.in[j];
      r.out[i] = w.out[j];
      r.kernel[i] = w.kernel[j];
      r.stride[i] = w.stride[j];
      r.dilation[i] = w.dilation[j];
      r.pad[i] = w.pad_begin[j];
      r.pad_end[i] = w.pad_end[j];
    }
  }
  return r;
}

}  // namespace serveml::engine
