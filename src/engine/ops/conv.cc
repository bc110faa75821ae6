// Conv (1-D/2-D/3-D, groups, dilations, pads/auto_pad, strides) and ConvTranspose. Float
// 1-D/2-D Conv with unit horizontal stride runs the direct kernel (conv_direct.h) when the
// CPU has one and the geometry suits it; the rest is im2col / col2im around one GEMM per
// image and group (gemm.h: oneDNN / OpenBLAS / small-M kernel, single-threaded). The im2col
// scratch is thread_local, so steady-state runs do not allocate it again.
#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/conv_direct.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/ops.h"
#include "engine/ops/spatial.h"

namespace serveml::engine {
namespace {

template <typename T>
std::vector<T>& Scratch() {
  thread_local std::vector<T> buf;
  return buf;
}

// y[c, od, oh, ow] += col[(c, kd, kh, kw), (id, ih, iw)] — the adjoint of Im2Col (spatial.h), with
// `w.in` the ConvTranspose input dims and `w.out` its output dims.
template <typename T>
void Col2Im(const T* col, int64_t channels, const Window3& w, T* y) {
  const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
  const int64_t out_size = w.out[0] * w.out[1] * w.out[2];
  const T* src = col;
  for (int64_t c = 0; c < channels; ++c) {
    T* yc = y + c * out_size;
    for (int64_t kd = 0; kd < w.kernel[0]; ++kd) {
      for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
        for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
          for (int64_t id = 0; id < w.in[0]; ++id) {
            const int64_t od = id * w.stride[0] - w.pad[0] + kd * w.dilation[0];
            for (int64_t ih = 0; ih < w.in[1]; ++ih) {
              const int64_t oh = ih * w.stride[1] - w.pad[1] + kh * w.dilation[1];
              const T* row = src + (id * w.in[1] + ih) * w.in[2];
              if (od < 0 || od >= w.out[0] || oh < 0 || oh >= w.out[1]) continue;
              T* yrow = yc + (od * w.out[1] + oh) * w.out[2];
              for (int64_t iw = 0; iw < w.in[2]; ++iw) {
                const int64_t ow = iw * w.stride[2] - w.pad[2] + kw * w.dilation[2];
                if (ow >= 0 && ow < w.out[2]) yrow[ow] += row[iw];
              }
            }
          }
          src += in_size;
        }
      }
    }
  }
}

Status CheckInt(int64_t v) {
  if (v > INT_MAX) return InvalidInput("convolution dimensions exceed the supported size");
  return Status::Ok();
}

class ConvKernel final : public Kernel {
 public:
  // `const_w` is W when it is an initializer (known at load), else null.
  ConvKernel(WindowAttrs attrs, int64_t group, const Tensor* const_w)
      : attrs_(std::move(attrs)), group_(group) {
    if (const_w && const_w->dtype() == DType::kFloat32 && const_w->rank() >= 3 &&
        const_w->dim(0) % group_ == 0 && const_w->numel() > 0) {
      packed_w_.resize(static_cast<size_t>(const_w->numel()));
      PackGroups(const_w->data<float>(), const_w->dim(0) / group_,
                 const_w->numel() / const_w->dim(0), packed_w_.data());
    }
  }

  bool FuseRelu() override {
    relu_ = true;
    return true;
  }

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* wt = ctx.input(1);
    const Tensor* b = ctx.input(2);
    if (!x || !wt) return InvalidInput("Conv needs X and W");
    if (x->dtype() != wt->dtype() || (b && b->dtype() != x->dtype())) {
      return InvalidInput("Conv inputs have different element types");
    }
    if (x->rank() < 3 || wt->rank() != x->rank()) {
      return InvalidInput("Conv X " + ShapeToString(x->shape()) + " and W " +
                          ShapeToString(wt->shape()) + " must have the same rank >= 3");
    }
    const int64_t n = x->dim(0), c = x->dim(1), m = wt->dim(0);
    if (c % group_ != 0 || m % group_ != 0 || wt->dim(1) != c / group_) {
      return InvalidInput("Conv channels do not match: X has " + std::to_string(c) + ", W is " +
                          ShapeToString(wt->shape()) + ", group " + std::to_string(group_));
    }
    if (b && (b->rank() != 1 || b->dim(0) != m)) {
      return InvalidInput("Conv bias must have shape [" + std::to_string(m) + "]");
    }
    const auto in = std::span<const int64_t>(x->shape()).subspan(2);
    const auto kernel = std::span<const int64_t>(wt->shape()).subspan(2);
    if (!attrs_.kernel_shape.empty() &&
        !std::equal(attrs_.kernel_shape.begin(), attrs_.kernel_shape.end(), kernel.begin(),
                    kernel.end())) {
      return InvalidInput("Conv kernel_shape does not match W");
    }
    ASSIGN_OR_RETURN(Window win, ResolveWindow(attrs_, in, kernel));
    RETURN_IF_ERROR(CheckWork("Conv", static_cast<double>(n) * static_cast<double>(m) *
                                          static_cast<double>(c / group_) * Volume(win.out) *
                                          Volume(win.kernel)));
    Shape out_shape{n, m};
    out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
    const Window3 w = To3D(win);
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "Conv", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
      if (y.numel() == 0) {
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      }
      const int64_t cg = c / group_, mg = m / group_;
      const int64_t ksize = w.kernel[0] * w.kernel[1] * w.kernel[2];
      const int64_t kdim = cg * ksize;
      const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
      const int64_t out_size = w.out[0] * w.out[1] * w.out[2];
      RETURN_IF_ERROR(CheckInt(kdim));
      RETURN_IF_ERROR(CheckInt(out_size));
      RETURN_IF_ERROR(CheckInt(mg));
      const bool direct = ksize == 1 && w.stride[0] == 1 && w.stride[1] == 1 && w.stride[2] == 1 &&
                          w.pad[0] == 0 && w.pad[1] == 0 && w.pad[2] == 0 && in_size == out_size;
      const T* px = x->data<T>();
      const T* pw = wt->data<T>();
      const T* pb = b ? b->data<T>() : nullptr;
      T* py = y.data<T>();
      if constexpr (std::is_same_v<T, float>) {
        if (!direct && w.in[0] == 1 && w.kernel[0] == 1 && w.out[0] == 1 && w.pad[0] == 0 &&
            w.stride[2] == 1) {
          DirectConvGeometry g;
          g.channels = cg;
          g.out_channels = mg;
          g.in_h = w.in[1];
          g.in_w = w.in[2];
          g.out_h = w.out[1];
          g.out_w = w.out[2];
          g.kernel_h = w.kernel[1];
          g.kernel_w = w.kernel[2];
          g.stride_h = w.stride[1];
          g.dilation_h = w.dilation[1];
          g.dilation_w = w.dilation[2];
          g.pad_top = w.pad[1];
          g.pad_left = w.pad[2];
          if (DirectConvSuits(g)) {
            const float* packed = packed_w_.data();
            if (packed_w_.empty()) {  // W computed by the graph: pack it for this run
              thread_local std::vector<float> run_packed;
              run_packed.resize(static_cast<size_t>(m * kdim));
              PackGroups(pw, mg, kdim, run_packed.data());
              packed = run_packed.data();
            }
            for (int64_t gi = 0; gi < group_; ++gi) {
              DirectConv2D(g, px + gi * cg * in_size, c * in_size, packed + gi * mg * kdim,
                           pb ? pb + gi * mg : nullptr, py + gi * mg * out_size, m * out_size, n,
                           relu_);
            }
            *ctx.outputs[0] = std::move(y);
            return Status::Ok();
          }
        }
      }
      std::vector<T>& col = Scratch<T>();
      if (!direct && col.size() < static_cast<size_t>(kdim * out_size)) {
        col.resize(static_cast<size_t>(kdim * out_size));
      }
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t g = 0; g < group_; ++g) {
          const T* xg = px + (i * c + g * cg) * in_size;
          T* yg = py + (i * m + g * mg) * out_size;
          const T* cols = xg;
          if (!direct) {
            Im2Col(xg, cg, w, col.data(), Im2ColCopy{});
            cols = col.data();
          }
          // The output buffer is not cleared beforehand (it may hold anything): every
          // element is written here.
          if (pb || kdim == 0) {
            for (int64_t j = 0; j < mg; ++j) {
              std::fill(yg + j * out_size, yg + (j + 1) * out_size, pb ? pb[g * mg + j] : T(0));
            }
          }
          if (kdim > 0) {
            GemmAny<T>(false, false, mg, out_size, kdim, T(1), pw + g * mg * kdim, kdim, cols,
                       out_size, pb ? T(1) : T(0), yg, out_size);
          }
          if (relu_) {
            ApplyRelu(yg, mg * out_size);
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  // W [group * mg][kdim] → each group's weights in DirectConv2D's packed layout.
  void PackGroups(const float* w, int64_t mg, int64_t kdim, float* packed) const {
    for (int64_t gi = 0; gi < group_; ++gi) {
      PackDirectConvWeights(w + gi * mg * kdim, mg, kdim, packed + gi * mg * kdim);
    }
  }

  WindowAttrs attrs_;
  int64_t group_;
  bool relu_ = false;            // Relu fused at load (Kernel::FuseRelu)
  std::vector<float> packed_w_;  // constant float W packed for the direct kernel, else empty
};

class ConvTransposeKernel final : public Kernel {
 public:
  ConvTransposeKernel(WindowAttrs attrs, int64_t group, std::vector<int64_t> output_padding,
                      std::vector<int64_t> output_shape)
      : attrs_(std::move(attrs)),
        group_(group),
        output_padding_(std::move(output_padding)),
        output_shape_(std::move(output_shape)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* wt = ctx.input(1);
    const Tensor* b = ctx.input(2);
    if (!x || !wt) return InvalidInput("ConvTranspose needs X and W");
    if (x->dtype() != wt->dtype() || (b && b->dtype() != x->dtype())) {
      return InvalidInput("ConvTranspose inputs have different element types");
    }
    if (x->rank() < 3 || wt->rank() != x->rank()) {
      return InvalidInput("ConvTranspose X and W must have the same rank >= 3");
    }
    const size_t k = x->rank() - 2;
    if (k > 3) return Unsupported("ConvTranspose over more than 3 spatial dims is not supported");
    const int64_t n = x->dim(0), c = x->dim(1);
    if (wt->dim(0) != c || c % group_ != 0) {
      return InvalidInput("ConvTranspose W " + ShapeToString(wt->shape()) +
                          " does not match X channels " + std::to_string(c));
    }
    const int64_t mg = wt->dim(1), m = mg * group_;
    if (b && (b->rank() != 1 || b->dim(0) != m)) {
      return InvalidInput("ConvTranspose bias must have shape [" + std::to_string(m) + "]");
    }
    auto get = [k](const std::vector<int64_t>& v, size_t i, int64_t def) {
      return v.size() == k ? v[i] : def;
    };
    Window win;
    win.k = k;
    for (size_t i = 0; i < k; ++i) {
      const int64_t in = x->dim(2 + i);
      const int64_t kern = wt->dim(2 + i);
      const int64_t s = get(attrs_.strides, i, 1), d = get(attrs_.dilations, i, 1);
      const int64_t op = get(output_padding_, i, 0);
      if (s <= 0 || d <= 0) return InvalidInput("strides and dilations must be positive");
      constexpr int64_t kMaxAttr = int64_t{1} << 28;
      const int64_t out_attr = output_shape_.empty() ? 0 : output_shape_.back();
      for (int64_t v : {s, d, op, in, kern, out_attr}) {
        if (v < -kMaxAttr || v > kMaxAttr) return InvalidInput("ConvTranspose sizes are too large");
      }
      for (int64_t v : attrs_.pads) {
        if (v < -kMaxAttr || v > kMaxAttr) return InvalidInput("ConvTranspose pads are too large");
      }
      for (int64_t v : output_shape_) {
        if (v < 0 || v > kMaxAttr) return InvalidInput("ConvTranspose output_shape is too large");
      }
      const int64_t ext = d * (kern - 1) + 1;
      int64_t pb = 0, pe = 0, out = 0;
      const bool has_out = output_shape_.size() == k ||
                           output_shape_.size() == k + 2;  // some exporters include N, C
      if (has_out || attrs_.auto_pad == AutoPad::kSameUpper ||
          attrs_.auto_pad == AutoPad::kSameLower) {
        out = has_out ? output_shape_[output_shape_.size() - k + i] : in * s;
        const int64_t total = std::max<int64_t>(0, s * (in - 1) + op + ext - out);
        if (attrs_.auto_pad == AutoPad::kSameUpper) {
          pb = total / 2;
        } else {
          pb = total - total / 2;
        }
        pe = total - pb;
      } else {
        if (attrs_.auto_pad == AutoPad::kNotSet && attrs_.pads.size() == 2 * k) {
          pb = attrs_.pads[i];
          pe = attrs_.pads[i + k];
        }
        out = s * (in - 1) + op + ext - pb - pe;
      }
      if (out < 0) return InvalidInput("ConvTranspose output would be empty");
      win.in.push_back(in);
      win.out.push_back(out);
      win.kernel.push_back(kern);
      win.stride.push_back(s);
      win.dilation.push_back(d);
      win.pad_begin.push_back(pb);
      win.pad_end.push_back(pe);
    }
    RETURN_IF_ERROR(CheckWork("ConvTranspose", static_cast<double>(n) * static_cast<double>(c) *
                                                   static_cast<double>(m / group_) *
                                                   Volume(win.in) * Volume(win.kernel)));
    Shape out_shape{n, m};
    out_shape.insert(out_shape.end(), win.out.begin(), win.out.end());
    const Window3 w = To3D(win);
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "ConvTranspose", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
      const int64_t cg = c / group_;
      const int64_t ksize = w.kernel[0] * w.kernel[1] * w.kernel[2];
      const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
      const int64_t out_size = w.out[0] * w.out[1] * w.out[2];
      if (y.numel() == 0 || in_size == 0) {
        *ctx.outputs[0] = std::move(y);
        return Status::Ok();
      }
      RETURN_IF_ERROR(CheckInt(mg * ksize));
      RETURN_IF_ERROR(CheckInt(in_size));
      RETURN_IF_ERROR(CheckInt(cg));
      std::vector<T>& col = Scratch<T>();
      if (col.size() < static_cast<size_t>(mg * ksize * in_size)) {
        col.resize(static_cast<size_t>(mg * ksize * in_size));
      }
      const T* px = x->data<T>();
      const T* pw = wt->data<T>();
      T* py = y.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t g = 0; g < group_; ++g) {
          const T* xg = px + (i * c + g * cg) * in_size;
          const T* wg = pw + g * cg * mg * ksize;
          // col[mg*ksize, in] = W_g^T [mg*ksize, cg] x X_g [cg, in]
          GemmAny<T>(true, false, mg * ksize, in_size, cg, T(1), wg, mg * ksize, xg, in_size, T(0),
                     col.data(), in_size);
          Col2Im<T>(col.data(), mg, w, py + (i * m + g * mg) * out_size);
        }
      }
      if (b) {
        const T* pb = b->data<T>();
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < m; ++j) {
            T* row = py + (i * m + j) * out_size;
            for (int64_t p = 0; p < out_size; ++p) row[p] += pb[j];
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  WindowAttrs attrs_;
  int64_t group_;
  std::vector<int64_t> output_padding_;
  std::vector<int64_t> output_shape_;
};

}  // namespace

Result<KernelPtr> MakeConv(const KernelInit& init) {
  if (init.node.input.size() < 2 || init.node.input.size() > 3) {
    return InvalidInput(init.node.op_type + " needs 2 or 3 inputs");
  }
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(WindowAttrs w, ParseWindowAttrs(attrs, false));
  ASSIGN_OR_RETURN(int64_t group, attrs.Int("group", 1));
  if (group <= 0) return InvalidInput("group must be positive");
  if (init.node.op_type == "ConvTranspose") {
    ASSIGN_OR_RETURN(std::vector<int64_t> output_padding, attrs.Ints("output_padding"));
    ASSIGN_OR_RETURN(std::vector<int64_t> output_shape, attrs.Ints("output_shape"));
    return KernelPtr(new ConvTransposeKernel(std::move(w), group, std::move(output_padding),
                                             std::move(output_shape)));
  }
  const Tensor* const_w = init.const_inputs.size() > 1 ? init.const_inputs[1] : nullptr;
  return KernelPtr(new ConvKernel(std::move(w), group, const_w));
}

}  // namespace serveml::engine
