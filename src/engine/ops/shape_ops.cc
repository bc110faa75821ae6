// The shape family: Transpose, Squeeze, Unsqueeze, Split, Slice, Gather, GatherElements,
// Expand, Tile, Pad, Shape, Size, ConstantOfShape, Range, Where, Trilu, Dropout (inference).
// Element-moving kernels dispatch on element width, so they cover every dtype including
// strings. Squeeze/Unsqueeze alias their input's buffer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "engine/kernel.h"
#include "engine/onnx/tensor_proto.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// dst[i] = src[offset + sum_d idx_d * strides_d] walking `shape` row-major. Strides may be
// negative (reversed slices) or 0 (broadcast).
template <typename T>
void StridedCopy(const T* src, int64_t offset, const std::vector<int64_t>& shape,
                 const std::vector<int64_t>& strides, T* dst) {
  const size_t k = shape.size();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n == 0) return;
  if (k == 0) {
    dst[0] = src[offset];
    return;
  }
  const int64_t len = shape[k - 1];
  const int64_t st = strides[k - 1];
  std::vector<int64_t> idx(k, 0);
  int64_t off = offset;
  for (int64_t base = 0; base < n; base += len) {
    T* out = dst + base;
    if (st == 1) {
      for (int64_t j = 0; j < len; ++j) out[j] = src[off + j];
    } else {
      for (int64_t j = 0; j < len; ++j) out[j] = src[off + j * st];
    }
    for (size_t d = k - 1; d-- > 0;) {
      ++idx[d];
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Strides of `in` aligned to an output of rank out_rank (numpy broadcasting), 0 where the
// input dim is 1 (or missing).
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in, size_t out_rank) {
  std::vector<int64_t> s(out_rank, 0);
  int64_t stride = 1;
  for (size_t j = in.size(); j-- > 0;) {
    s[j + (out_rank - in.size())] = in[j] == 1 ? 0 : stride;
    stride *= in[j];
  }
  return s;
}

// Copies `x` into a fresh tensor of `shape` reading with the given strides.
Status CopyStrided(const Tensor& x, int64_t offset, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& strides, const char* op, Tensor* out) {
  ASSIGN_OR_RETURN(Tensor o, NewTensor(x.dtype(), shape));
  RETURN_IF_ERROR(DispatchByWidth(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    StridedCopy<T>(Elems<T>(x), offset, shape, strides, Elems<T>(o));
    return Status::Ok();
  }));
  *out = std::move(o);
  return Status::Ok();
}

Result<std::vector<int64_t>> OptionalInts(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.input(i);
  if (!t) return std::vector<int64_t>{};
  return ReadInt64s(*t, what);
}

// ---- Transpose ----

class TransposeKernel final : public Kernel {
 public:
  explicit TransposeKernel(std::vector<int64_t> perm) : perm_(std::move(perm)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Transpose needs an input");
    const size_t r = x->rank();
    std::vector<int64_t> perm = perm_;
    if (perm.empty()) {
      for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
    }
    if (perm.size() != r) {
      return InvalidInput("Transpose perm has " + std::to_string(perm.size()) +
                          " entries for an input of rank " + std::to_string(r));
    }
    std::vector<bool> seen(r, false);
    const std::vector<int64_t> in_strides = RowMajorStrides(x->shape());
    std::vector<int64_t> shape(r), strides(r);
    for (size_t i = 0; i < r; ++i) {
      ASSIGN_OR_RETURN(int64_t p, NormalizeAxis(perm[i], static_cast<int64_t>(r)));
      if (seen[p]) return InvalidInput("Transpose perm repeats axis " + std::to_string(p));
      seen[p] = true;
      shape[i] = x->dim(p);
      strides[i] = in_strides[p];
    }
    return CopyStrided(*x, 0, shape, strides, "Transpose", ctx.outputs[0]);
  }

 private:
  std::vector<int64_t> perm_;
};

// ---- Squeeze / Unsqueeze ----

class SqueezeKernel final : public Kernel {
 public:
  SqueezeKernel(bool axes_input, std::vector<int64_t> axes)
      : axes_input_(axes_input), axes_(std::move(axes)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Squeeze needs an input");
    std::vector<int64_t> axes = axes_;
    if (axes_input_) {
      ASSIGN_OR_RETURN(axes, OptionalInts(ctx, 1, "Squeeze axes"));
    }
    const int64_t r = static_cast<int64_t>(x->rank());
    std::vector<bool> drop(static_cast<size_t>(r), false);
    if (axes.empty()) {
      for (int64_t d = 0; d < r; ++d) drop[d] = x->dim(d) == 1;
    }
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(a, r));
      if (x->dim(ax) != 1) {
        return InvalidInput("Squeeze axis " + std::to_string(a) + " has size " +
                            std::to_string(x->dim(ax)) + ", not 1");
      }
      drop[ax] = true;
    }
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < r; ++d) {
      if (!drop[d]) shape.push_back(x->dim(d));
    }
    *ctx.outputs[0] = x->Reshaped(std::move(shape));
    return Status::Ok();
  }

 private:
  bool axes_input_;
  std::vector<int64_t> axes_;
};

class UnsqueezeKernel final : public Kernel {
 public:
  UnsqueezeKernel(bool axes_input, std::vector<int64_t> axes)
      : axes_input_(axes_input), axes_(std::move(axes)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Unsqueeze needs an input");
    std::vector<int64_t> axes = axes_;
    if (axes_input_) {
      if (!ctx.input(1)) return InvalidInput("Unsqueeze needs an axes input");
      ASSIGN_OR_RETURN(axes, ReadInt64s(*ctx.input(1), "Unsqueeze axes"));
    }
    const int64_t out_rank = static_cast<int64_t>(x->rank() + axes.size());
    std::vector<bool> ins(static_cast<size_t>(out_rank), false);
    for (int64_t a : axes) {
      ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(a, out_rank));
      if (ins[ax]) return InvalidInput("Unsqueeze axes repeat " + std::to_string(a));
      ins[ax] = true;
    }
    std::vector<int64_t> shape;
    size_t k = 0;
    for (int64_t d = 0; d < out_rank; ++d) shape.push_back(ins[d] ? 1 : x->dim(k++));
    *ctx.outputs[0] = x->Reshaped(std::move(shape));
    return Status::Ok();
  }

 private:
  bool axes_input_;
  std::vector<int64_t> axes_;
};

// ---- Split ----

class SplitKernel final : public Kernel {
 public:
  SplitKernel(int64_t axis, bool split_input, std::vector<int64_t> split, int64_t num_outputs)
      : axis_(axis),
        split_input_(split_input),
        split_(std::move(split)),
        num_outputs_(num_outputs) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Split needs an input");
    const int64_t r = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    const int64_t dim = x->dim(axis);
    const int64_t n_out = static_cast<int64_t>(ctx.num_outputs());
    std::vector<int64_t> split = split_;
    if (split_input_) {
      ASSIGN_OR_RETURN(split, OptionalInts(ctx, 1, "Split split"));
    }
    if (split.empty()) {
      if (num_outputs_ > 0) {
        const int64_t chunk = (dim + num_outputs_ - 1) / num_outputs_;
        int64_t left = dim;
        for (int64_t i = 0; i < n_out; ++i) {
          split.push_back(std::min(chunk, left));
          left -= split.back();
        }
      } else {
        if (dim % n_out != 0) {
          return InvalidInput("Split cannot divide axis of size " + std::to_string(dim) + " into " +
                              std::to_string(n_out) + " equal parts");
        }
        split.assign(static_cast<size_t>(n_out), dim / n_out);
      }
    }
    if (static_cast<int64_t>(split.size()) != n_out) {
      return InvalidInput("Split has " + std::to_string(split.size()) + " sizes for " +
                          std::to_string(n_out) + " outputs");
    }
    int64_t total = 0;
    for (int64_t s : split) {
      if (s < 0 || s > dim) return InvalidInput("Split sizes must be in [0, axis size]");
      total += s;
    }
    if (total != dim) {
      return InvalidInput("Split sizes sum to " + std::to_string(total) + ", axis has " +
                          std::to_string(dim));
    }
    const std::vector<int64_t> strides = RowMajorStrides(x->shape());
    int64_t start = 0;
    for (int64_t i = 0; i < n_out; ++i) {
      std::vector<int64_t> shape = x->shape();
      shape[axis] = split[i];
      RETURN_IF_ERROR(
          CopyStrided(*x, start * strides[axis], shape, strides, "Split", ctx.outputs[i]));
      start += split[i];
    }
    return Status::Ok();
  }

 private:
  int64_t axis_;
  bool split_input_;
  std::vector<int64_t> split_;
  int64_t num_outputs_;
};

// ---- Slice ----

class SliceKernel final : public Kernel {
 public:
  // Opset >= 10 reads starts/ends/axes/steps from inputs; older ones from attributes.
  SliceKernel(bool inputs_form, std::vector<int64_t> starts, std::vector<int64_t> ends,
              std::vector<int64_t> axes)
      : inputs_form_(inputs_form),
        starts_(std::move(starts)),
        ends_(std::move(ends)),
        axes_(std::move(axes)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Slice needs an input");
    std::vector<int64_t> starts = starts_, ends = ends_, axes = axes_, steps;
    if (inputs_form_) {
      if (!ctx.input(1) || !ctx.input(2)) return InvalidInput("Slice needs starts and ends");
      ASSIGN_OR_RETURN(starts, ReadInt64s(*ctx.input(1), "Slice starts"));
      ASSIGN_OR_RETURN(ends, ReadInt64s(*ctx.input(2), "Slice ends"));
      ASSIGN_OR_RETURN(axes, OptionalInts(ctx, 3, "Slice axes"));
      ASSIGN_OR_RETURN(steps, OptionalInts(ctx, 4, "Slice steps"));
    }
    const int64_t r = static_cast<int64_t>(x->rank());
    if (starts.size() != ends.size()) return InvalidInput("Slice starts and ends differ in size");
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size()) {
      return InvalidInput("Slice starts, ends, axes and steps must have the same length");
    }
    std::vector<int64_t> shape = x->shape();
    const std::vector<int64_t> in_strides = RowMajorStrides(x->shape());
    std::vector<int64_t> strides = in_strides;
    std::vector<bool> seen(static_cast<size_t>(r), false);
    int64_t offset = 0;
    for (size_t i = 0; i < starts.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(axes[i], r));
      if (seen[ax]) return InvalidInput("Slice axes repeat " + std::to_string(axes[i]));
      seen[ax] = true;
      const int64_t dim = x->dim(ax);
      const int64_t step = steps[i];
      if (step == 0) return InvalidInput("Slice step must not be 0");
      int64_t s = starts[i], e = ends[i];
      if (s < 0) s = s < -dim ? -1 : s + dim;
      if (e < 0) e = e < -dim ? -1 : e + dim;
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
      } else {
        s = std::clamp<int64_t>(s, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
      }
      int64_t count = 0;
      if (step > 0 && e > s) count = (e - s + step - 1) / step;
      if (step < 0 && s > e) count = (s - e + (-step) - 1) / (-step);
      if (dim == 0) count = 0;
      shape[ax] = count;
      strides[ax] = in_strides[ax] * step;
      if (count > 0) offset += s * in_strides[ax];
    }
    return CopyStrided(*x, offset, shape, strides, "Slice", ctx.outputs[0]);
  }

 private:
  bool inputs_form_;
  std::vector<int64_t> starts_, ends_, axes_;
};

// ---- Gather / GatherElements ----

Status IndexAt(const Tensor& idx, int64_t i, int64_t dim, int64_t* out) {
  int64_t v = idx.dtype() == DType::kInt64 ? idx.data<int64_t>()[i] : idx.data<int32_t>()[i];
  if (v < -dim || v >= dim) {
    return InvalidInput("index " + std::to_string(v) + " is out of range for an axis of size " +
                        std::to_string(dim));
  }
  *out = v < 0 ? v + dim : v;
  return Status::Ok();
}

Status CheckIndexType(const Tensor& idx, const char* op) {
  if (idx.dtype() != DType::kInt64 && idx.dtype() != DType::kInt32) {
    return InvalidInput(std::string(op) + " indices must be int32 or int64");
  }
  return Status::Ok();
}

class GatherKernel final : public Kernel {
 public:
  explicit GatherKernel(int64_t axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* idx = ctx.input(1);
    if (!x || !idx) return InvalidInput("Gather needs data and indices");
    RETURN_IF_ERROR(CheckIndexType(*idx, "Gather"));
    const int64_t r = static_cast<int64_t>(x->rank());
    if (r == 0) return InvalidInput("Gather data must have rank >= 1");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    std::vector<int64_t> shape(x->shape().begin(), x->shape().begin() + axis);
    shape.insert(shape.end(), idx->shape().begin(), idx->shape().end());
    shape.insert(shape.end(), x->shape().begin() + axis + 1, x->shape().end());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
    for (int64_t d = axis + 1; d < r; ++d) inner *= x->dim(d);
    const int64_t dim = x->dim(axis);
    const int64_t n_idx = idx->numel();
    std::vector<int64_t> resolved(static_cast<size_t>(n_idx));
    for (int64_t i = 0; i < n_idx; ++i) RETURN_IF_ERROR(IndexAt(*idx, i, dim, &resolved[i]));
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), shape));
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "Gather", [&](auto tag) {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t i = 0; i < n_idx; ++i) {
          const T* from = src + (a * dim + resolved[i]) * inner;
          T* to = dst + (a * n_idx + i) * inner;
          std::copy(from, from + inner, to);
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

class GatherElementsKernel final : public Kernel {
 public:
  explicit GatherElementsKernel(int64_t axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* idx = ctx.input(1);
    if (!x || !idx) return InvalidInput("GatherElements needs data and indices");
    RETURN_IF_ERROR(CheckIndexType(*idx, "GatherElements"));
    const int64_t r = static_cast<int64_t>(x->rank());
    if (r == 0 || idx->rank() != x->rank()) {
      return InvalidInput("GatherElements data and indices must have the same rank >= 1");
    }
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
    for (int64_t d = 0; d < r; ++d) {
      if (d != axis && idx->dim(d) > x->dim(d)) {
        return InvalidInput("GatherElements indices shape exceeds data shape");
      }
    }
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), idx->shape()));
    const int64_t n = idx->numel();
    const int64_t dim = x->dim(axis);
    std::vector<int64_t> pos(static_cast<size_t>(r), 0);
    std::vector<int64_t> src_off(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      int64_t k;
      RETURN_IF_ERROR(IndexAt(*idx, i, dim, &k));
      int64_t off = 0;
      for (int64_t d = 0; d < r; ++d) off += (d == axis ? k : pos[d]) * xs[d];
      src_off[i] = off;
      for (int64_t d = r; d-- > 0;) {
        if (++pos[d] < idx->dim(d)) break;
        pos[d] = 0;
      }
    }
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "GatherElements", [&](auto tag) {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      for (int64_t i = 0; i < n; ++i) dst[i] = src[src_off[i]];
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

// ---- Expand / Tile ----

class ExpandKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* s = ctx.input(1);
    if (!x || !s) return InvalidInput("Expand needs input and shape");
    ASSIGN_OR_RETURN(std::vector<int64_t> want, ReadInt64s(*s, "Expand shape"));
    std::vector<int64_t> shape;
    RETURN_IF_ERROR(BroadcastShape(x->shape(), want, &shape));
    return CopyStrided(*x, 0, shape, BroadcastStrides(x->shape(), shape.size()), "Expand",
                       ctx.outputs[0]);
  }
};

class TileKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* rep = ctx.input(1);
    if (!x || !rep) return InvalidInput("Tile needs input and repeats");
    ASSIGN_OR_RETURN(std::vector<int64_t> reps, ReadInt64s(*rep, "Tile repeats"));
    const size_t r = x->rank();
    if (reps.size() != r) {
      return InvalidInput("Tile repeats has " + std::to_string(reps.size()) +
                          " entries for an input of rank " + std::to_string(r));
    }
    // Output [r0*d0, r1*d1, ...] is row-major [r0, d0, r1, d1, ...] read with strides
    // (0, s0, 0, s1, ...).
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    std::vector<int64_t> walk_shape, walk_strides, out_shape;
    for (size_t d = 0; d < r; ++d) {
      if (reps[d] < 0 || reps[d] > onnx::kMaxTensorElements) {
        return InvalidInput("Tile repeats must be in [0, 2^28]");
      }
      walk_shape.push_back(reps[d]);
      walk_strides.push_back(0);
      walk_shape.push_back(x->dim(d));
      walk_strides.push_back(xs[d]);
      out_shape.push_back(reps[d] * x->dim(d));
    }
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), out_shape));
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "Tile", [&](auto tag) {
      using T = decltype(tag);
      StridedCopy<T>(Elems<T>(*x), 0, walk_shape, walk_strides, Elems<T>(o));
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }
};

// ---- Pad ----

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

class PadKernel final : public Kernel {
 public:
  PadKernel(PadMode mode, bool inputs_form, std::vector<int64_t> pads, float value)
      : mode_(mode), inputs_form_(inputs_form), pads_(std::move(pads)), value_(value) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Pad needs an input");
    const int64_t r = static_cast<int64_t>(x->rank());
    std::vector<int64_t> pads = pads_;
    if (inputs_form_) {
      if (!ctx.input(1)) return InvalidInput("Pad needs a pads input");
      ASSIGN_OR_RETURN(pads, ReadInt64s(*ctx.input(1), "Pad pads"));
      ASSIGN_OR_RETURN(std::vector<int64_t> axes, OptionalInts(ctx, 3, "Pad axes"));
      if (!axes.empty()) {
        if (pads.size() != 2 * axes.size()) {
          return InvalidInput("Pad pads must have twice as many entries as axes");
        }
        std::vector<int64_t> full(static_cast<size_t>(2 * r), 0);
        for (size_t i = 0; i < axes.size(); ++i) {
          ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(axes[i], r));
          full[ax] = pads[i];
          full[ax + r] = pads[i + axes.size()];
        }
        pads = std::move(full);
      }
    }
    if (static_cast<int64_t>(pads.size()) != 2 * r) {
      return InvalidInput("Pad pads has " + std::to_string(pads.size()) +
                          " entries for an input of rank " + std::to_string(r));
    }
    std::vector<int64_t> shape(static_cast<size_t>(r));
    for (int64_t d = 0; d < r; ++d) {
      if (std::abs(pads[d]) > onnx::kMaxTensorElements ||
          std::abs(pads[d + r]) > onnx::kMaxTensorElements) {
        return InvalidInput("Pad pads are too large");
      }
      shape[d] = x->dim(d) + pads[d] + pads[d + r];
      if (shape[d] < 0) return InvalidInput("Pad removes more than the whole axis");
      if (mode_ != PadMode::kConstant && x->dim(d) == 0 && shape[d] > 0) {
        return InvalidInput("Pad cannot reflect/edge/wrap-pad an empty axis");
      }
    }
    const Tensor* cv = inputs_form_ ? ctx.input(2) : nullptr;
    if (!inputs_form_ && x->dtype() != DType::kFloat32 && x->dtype() != DType::kFloat64) {
      // Pad-2 is defined for float types only; its float `value` may not fit an integer.
      return InvalidInput("Pad before opset 11 takes float and double tensors, not " +
                          std::string(DTypeName(x->dtype())));
    }
    if (cv && (cv->dtype() != x->dtype() || cv->numel() != 1)) {
      return InvalidInput("Pad constant_value must be a scalar of the input's element type");
    }
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), shape));
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    auto run = [&](auto tag) -> Status {
      using T = decltype(tag);
      T fill{};
      if (cv) {
        fill = Elems<T>(*cv)[0];
      } else if constexpr (!std::is_same_v<T, std::string>) {
        fill = static_cast<T>(value_);
      }
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      const int64_t n = o.numel();
      std::vector<int64_t> pos(static_cast<size_t>(r), 0);
      for (int64_t i = 0; i < n; ++i) {
        int64_t off = 0;
        bool inside = true;
        for (int64_t d = 0; d < r; ++d) {
          int64_t c = pos[d] - pads[d];
          const int64_t dim = x->dim(d);
          if (c < 0 || c >= dim) {
            switch (mode_) {
              case PadMode::kConstant:
                inside = false;
                break;
              case PadMode::kEdge:
                c = c < 0 ? 0 : dim - 1;
                break;
              case PadMode::kWrap:
                c = ((c % dim) + dim) % dim;
                break;
              case PadMode::kReflect:
                if (dim == 1) {
                  c = 0;
                } else {
                  const int64_t period = 2 * (dim - 1);
                  c = ((c % period) + period) % period;
                  if (c >= dim) c = period - c;
                }
                break;
            }
          }
          if (!inside) break;
          off += c * xs[d];
        }
        dst[i] = inside ? src[off] : fill;
        for (int64_t d = r; d-- > 0;) {
          if (++pos[d] < shape[d]) break;
          pos[d] = 0;
        }
      }
      return Status::Ok();
    };
    if (x->dtype() == DType::kString) {
      RETURN_IF_ERROR(run(std::string()));
    } else {
      RETURN_IF_ERROR((Dispatch<SERVEML_NUMERIC_TYPES, bool>(x->dtype(), "Pad", run)));
    }
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  PadMode mode_;
  bool inputs_form_;
  std::vector<int64_t> pads_;
  float value_;
};

// ---- Shape / Size / ConstantOfShape / Range ----

class ShapeKernel final : public Kernel {
 public:
  ShapeKernel(int64_t start, std::optional<int64_t> end) : start_(start), end_(end) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Shape needs an input");
    const int64_t r = static_cast<int64_t>(x->rank());
    auto clampi = [r](int64_t v) {
      if (v < 0) v += r;
      return std::clamp<int64_t>(v, 0, r);
    };
    const int64_t s = clampi(start_);
    const int64_t e = end_ ? clampi(*end_) : r;
    std::vector<int64_t> dims;
    for (int64_t d = s; d < e; ++d) dims.push_back(x->dim(d));
    *ctx.outputs[0] = Tensor::From<int64_t>({static_cast<int64_t>(dims.size())}, dims);
    return Status::Ok();
  }

 private:
  int64_t start_;
  std::optional<int64_t> end_;
};

class SizeKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Size needs an input");
    *ctx.outputs[0] = Tensor::From<int64_t>({}, {x->numel()});
    return Status::Ok();
  }
};

class ConstantOfShapeKernel final : public Kernel {
 public:
  explicit ConstantOfShapeKernel(Tensor value) : value_(std::move(value)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* s = ctx.input(0);
    if (!s) return InvalidInput("ConstantOfShape needs a shape input");
    ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadInt64s(*s, "ConstantOfShape shape"));
    ASSIGN_OR_RETURN(Tensor o, NewTensor(value_.dtype(), shape));
    RETURN_IF_ERROR(DispatchByWidth(value_.dtype(), "ConstantOfShape", [&](auto tag) {
      using T = decltype(tag);
      const T v = Elems<T>(value_)[0];
      T* dst = Elems<T>(o);
      std::fill(dst, dst + o.numel(), v);
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  Tensor value_;
};

class RangeKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* s = ctx.input(0);
    const Tensor* l = ctx.input(1);
    const Tensor* d = ctx.input(2);
    if (!s || !l || !d) return InvalidInput("Range needs start, limit and delta");
    if (s->dtype() != l->dtype() || s->dtype() != d->dtype() || s->numel() != 1 ||
        l->numel() != 1 || d->numel() != 1) {
      return InvalidInput("Range inputs must be scalars of one element type");
    }
    return Dispatch<float, double, int16_t, int32_t, int64_t>(
        s->dtype(), "Range", [&](auto tag) -> Status {
          using T = decltype(tag);
          const T start = s->data<T>()[0], limit = l->data<T>()[0], delta = d->data<T>()[0];
          if (delta == T(0)) return InvalidInput("Range delta must not be 0");
          const double count_d =
              std::ceil((static_cast<double>(limit) - static_cast<double>(start)) /
                        static_cast<double>(delta));
          const int64_t count = count_d > 0 ? static_cast<int64_t>(std::min(count_d, 1e18)) : 0;
          ASSIGN_OR_RETURN(Tensor o, NewTensor(s->dtype(), {count}));
          T* p = o.data<T>();
          T v = start;
          for (int64_t i = 0; i < count; ++i) {
            p[i] = v;
            v = static_cast<T>(v + delta);
          }
          *ctx.outputs[0] = std::move(o);
          return Status::Ok();
        });
  }
};

// ---- Where ----

class WhereKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* c = ctx.input(0);
    const Tensor* x = ctx.input(1);
    const Tensor* y = ctx.input(2);
    if (!c || !x || !y) return InvalidInput("Where needs condition, X and Y");
    if (c->dtype() != DType::kBool) return InvalidInput("Where condition must be bool");
    RETURN_IF_ERROR(SameDType(x, y, "Where"));
    std::vector<int64_t> s1, shape;
    RETURN_IF_ERROR(BroadcastShape(c->shape(), x->shape(), &s1));
    RETURN_IF_ERROR(BroadcastShape(s1, y->shape(), &shape));
    const size_t r = shape.size();
    const auto cs = BroadcastStrides(c->shape(), r);
    const auto xs = BroadcastStrides(x->shape(), r);
    const auto ys = BroadcastStrides(y->shape(), r);
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), shape));
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "Where", [&](auto tag) {
      using T = decltype(tag);
      const bool* pc = c->data<bool>();
      const T* px = Elems<T>(*x);
      const T* py = Elems<T>(*y);
      T* po = Elems<T>(o);
      const int64_t n = o.numel();
      std::vector<int64_t> pos(r, 0);
      int64_t oc = 0, ox = 0, oy = 0;
      for (int64_t i = 0; i < n; ++i) {
        po[i] = pc[oc] ? px[ox] : py[oy];
        for (size_t d = r; d-- > 0;) {
          ++pos[d];
          oc += cs[d];
          ox += xs[d];
          oy += ys[d];
          if (pos[d] < shape[d]) break;
          oc -= cs[d] * shape[d];
          ox -= xs[d] * shape[d];
          oy -= ys[d] * shape[d];
          pos[d] = 0;
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }
};

// ---- Trilu ----

class TriluKernel final : public Kernel {
 public:
  explicit TriluKernel(bool upper) : upper_(upper) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Trilu needs an input");
    if (x->rank() < 2) return InvalidInput("Trilu input must have rank >= 2");
    int64_t k = 0;
    if (ctx.input(1)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> kv, ReadInt64s(*ctx.input(1), "Trilu k"));
      if (kv.size() != 1) return InvalidInput("Trilu k must be a scalar");
      k = kv[0];
    }
    const int64_t rows = x->dim(x->rank() - 2), cols = x->dim(x->rank() - 1);
    const int64_t mats = rows * cols == 0 ? 0 : x->numel() / (rows * cols);
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), x->shape()));
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "Trilu", [&](auto tag) {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      for (int64_t m = 0; m < mats; ++m) {
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = 0; j < cols; ++j) {
            const int64_t at = (m * rows + i) * cols + j;
            const bool keep = upper_ ? (j - i >= k) : (j - i <= k);
            dst[at] = keep ? src[at] : T{};
          }
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  bool upper_;
};

// ---- Dropout (inference: identity, mask all true) ----

class DropoutKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Dropout needs an input");
    const Tensor* training = ctx.input(2);
    if (training && training->dtype() == DType::kBool && training->numel() == 1 &&
        training->data<bool>()[0]) {
      const Tensor* ratio = ctx.input(1);
      const bool zero_ratio =
          ratio && ratio->numel() == 1 &&
          ((ratio->dtype() == DType::kFloat32 && ratio->data<float>()[0] == 0) ||
           (ratio->dtype() == DType::kFloat64 && ratio->data<double>()[0] == 0));
      if (!zero_ratio) return Unsupported("Dropout in training mode is not supported");
    }
    *ctx.outputs[0] = *x;
    if (ctx.num_outputs() > 1) {
      ASSIGN_OR_RETURN(Tensor mask, NewTensor(DType::kBool, x->shape()));
      std::fill(mask.data<bool>(), mask.data<bool>() + mask.numel(), true);
      *ctx.outputs[1] = std::move(mask);
    }
    return Status::Ok();
  }
};

// ---- DepthToSpace / SpaceToDepth (as a 6-D transpose) ----

class DepthSpaceKernel final : public Kernel {
 public:
  DepthSpaceKernel(bool to_space, int64_t block, bool crd)
      : to_space_(to_space), block_(block), crd_(crd) {}
  Status Run(KernelContext& ctx) const override {
    const char* name = to_space_ ? "DepthToSpace" : "SpaceToDepth";
    const Tensor* x = ctx.input(0);
    if (!x || x->rank() != 4) return InvalidInput(std::string(name) + " needs a 4-D input");
    const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3), b = block_;
    std::vector<int64_t> view, perm, out_shape;
    if (to_space_) {
      if (c % (b * b) != 0)
        return InvalidInput("DepthToSpace channels not divisible by blocksize^2");
      const int64_t cc = c / (b * b);
      if (crd_) {
        view = {n, cc, b, b, h, w};
        perm = {0, 1, 4, 2, 5, 3};
      } else {
        view = {n, b, b, cc, h, w};
        perm = {0, 3, 4, 1, 5, 2};
      }
      out_shape = {n, cc, h * b, w * b};
    } else {
      if (h % b != 0 || w % b != 0) {
        return InvalidInput("SpaceToDepth spatial dims not divisible by blocksize");
      }
      view = {n, c, h / b, b, w / b, b};
      perm = {0, 3, 5, 1, 2, 4};
      out_shape = {n, c * b * b, h / b, w / b};
    }
    const std::vector<int64_t> vs = RowMajorStrides(view);
    std::vector<int64_t> shape(6), strides(6);
    for (size_t i = 0; i < 6; ++i) {
      shape[i] = view[perm[i]];
      strides[i] = vs[perm[i]];
    }
    Tensor tmp;
    RETURN_IF_ERROR(CopyStrided(*x, 0, shape, strides, name, &tmp));
    *ctx.outputs[0] = tmp.Reshaped(out_shape);
    return Status::Ok();
  }

 private:
  bool to_space_;
  int64_t block_;
  bool crd_;
};

// ---- GatherND ----

class GatherNDKernel final : public Kernel {
 public:
  explicit GatherNDKernel(int64_t batch_dims) : batch_dims_(batch_dims) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* idx = ctx.input(1);
    if (!x || !idx) return InvalidInput("GatherND needs data and indices");
    if (idx->dtype() != DType::kInt64) return InvalidInput("GatherND indices must be int64");
    const int64_t r = static_cast<int64_t>(x->rank()), q = static_cast<int64_t>(idx->rank());
    const int64_t b = batch_dims_;
    if (q < 1 || b < 0 || b >= std::min(r, q)) return InvalidInput("GatherND ranks do not fit");
    const int64_t m = idx->dim(q - 1);
    if (m < 1 || b + m > r) return InvalidInput("GatherND index tuples are too long");
    for (int64_t d = 0; d < b; ++d) {
      if (idx->dim(d) != x->dim(d)) return InvalidInput("GatherND batch dims differ");
    }
    Shape out_shape(idx->shape().begin(), idx->shape().end() - 1);
    out_shape.insert(out_shape.end(), x->shape().begin() + b + m, x->shape().end());
    int64_t batch = 1, slice = 1, per_batch = 1;
    for (int64_t d = 0; d < b; ++d) batch *= x->dim(d);
    for (int64_t d = b + m; d < r; ++d) slice *= x->dim(d);
    for (int64_t d = b; d < r; ++d) per_batch *= x->dim(d);
    const int64_t tuples = batch == 0 ? 0 : idx->numel() / m / batch;
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), out_shape));
    std::vector<int64_t> offs(static_cast<size_t>(batch * tuples));
    const int64_t* pi = idx->data<int64_t>();
    for (int64_t bi = 0; bi < batch; ++bi) {
      for (int64_t t = 0; t < tuples; ++t) {
        const int64_t* tup = pi + (bi * tuples + t) * m;
        int64_t off = bi * per_batch;
        for (int64_t j = 0; j < m; ++j) {
          const int64_t dim = x->dim(b + j);
          int64_t v = tup[j];
          if (v < -dim || v >= dim) return InvalidInput("GatherND index out of range");
          if (v < 0) v += dim;
          off += v * xs[b + j];
        }
        offs[bi * tuples + t] = off;
      }
    }
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "GatherND", [&](auto tag) {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      for (size_t i = 0; i < offs.size(); ++i) {
        std::copy(src + offs[i], src + offs[i] + slice, dst + static_cast<int64_t>(i) * slice);
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  int64_t batch_dims_;
};

// ---- ScatterElements / ScatterND ----

enum class ScatterReduce { kNone, kAdd, kMul, kMax, kMin };

template <typename T>
inline void ScatterApply(ScatterReduce red, T* dst, const T& v) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) {
    *dst = v;
  } else {
    switch (red) {
      case ScatterReduce::kNone:
        *dst = v;
        break;
      case ScatterReduce::kAdd:
        *dst = static_cast<T>(*dst + v);
        break;
      case ScatterReduce::kMul:
        *dst = static_cast<T>(*dst * v);
        break;
      case ScatterReduce::kMax:
        *dst = v > *dst ? v : *dst;
        break;
      case ScatterReduce::kMin:
        *dst = v < *dst ? v : *dst;
        break;
    }
  }
}

class ScatterKernel final : public Kernel {
 public:
  ScatterKernel(bool nd, int64_t axis, ScatterReduce red) : nd_(nd), axis_(axis), red_(red) {}
  Status Run(KernelContext& ctx) const override {
    const char* name = nd_ ? "ScatterND" : "ScatterElements";
    const Tensor* x = ctx.input(0);
    const Tensor* idx = ctx.input(1);
    const Tensor* upd = ctx.input(2);
    if (!x || !idx || !upd) return InvalidInput(std::string(name) + " needs 3 inputs");
    RETURN_IF_ERROR(CheckIndexType(*idx, name));
    if (upd->dtype() != x->dtype()) return InvalidInput(std::string(name) + " types differ");
    const int64_t r = static_cast<int64_t>(x->rank());
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    std::vector<int64_t> offs;  // destination offset per update element (or slice)
    int64_t slice = 1;
    if (nd_) {
      const int64_t q = static_cast<int64_t>(idx->rank());
      if (q < 1) return InvalidInput("ScatterND indices must have rank >= 1");
      const int64_t m = idx->dim(q - 1);
      if (m > r) return InvalidInput("ScatterND index tuples are too long");
      for (int64_t d = m; d < r; ++d) slice *= x->dim(d);
      const int64_t tuples = m == 0 ? 0 : idx->numel() / m;
      if (upd->numel() != tuples * slice) return InvalidInput("ScatterND updates shape mismatch");
      for (int64_t t = 0; t < tuples; ++t) {
        int64_t off = 0;
        for (int64_t j = 0; j < m; ++j) {
          int64_t v;
          RETURN_IF_ERROR(IndexAt(*idx, t * m + j, x->dim(j), &v));
          off += v * xs[j];
        }
        offs.push_back(off);
      }
    } else {
      if (idx->rank() != x->rank() || upd->shape() != idx->shape()) {
        return InvalidInput("ScatterElements indices/updates must match and share data's rank");
      }
      ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, r));
      const int64_t n = idx->numel();
      std::vector<int64_t> pos(static_cast<size_t>(r), 0);
      for (int64_t i = 0; i < n; ++i) {
        int64_t k;
        RETURN_IF_ERROR(IndexAt(*idx, i, x->dim(axis), &k));
        int64_t off = 0;
        for (int64_t d = 0; d < r; ++d) {
          if (d != axis && pos[d] >= x->dim(d)) return InvalidInput("ScatterElements out of range");
          off += (d == axis ? k : pos[d]) * xs[d];
        }
        offs.push_back(off);
        for (int64_t d = r; d-- > 0;) {
          if (++pos[d] < idx->dim(d)) break;
          pos[d] = 0;
        }
      }
    }
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), x->shape()));
    auto run = [&](auto tag) -> Status {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(o);
      std::copy(src, src + x->numel(), dst);
      const T* pu = Elems<T>(*upd);
      for (size_t i = 0; i < offs.size(); ++i) {
        for (int64_t j = 0; j < slice; ++j) {
          ScatterApply<T>(red_, dst + offs[i] + j, pu[static_cast<int64_t>(i) * slice + j]);
        }
      }
      return Status::Ok();
    };
    if (x->dtype() == DType::kString) {
      RETURN_IF_ERROR(run(std::string()));
    } else {
      RETURN_IF_ERROR((Dispatch<SERVEML_NUMERIC_TYPES, bool>(x->dtype(), name, run)));
    }
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  bool nd_;
  int64_t axis_;
  ScatterReduce red_;
};

// ---- NonZero / Compress ----

template <typename T>
bool IsNonZero(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return !v.empty();
  } else {
    return v != T(0);
  }
}

class NonZeroKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("NonZero needs an input");
    std::vector<int64_t> hits;
    RETURN_IF_ERROR((Dispatch<SERVEML_NUMERIC_TYPES, bool>(x->dtype(), "NonZero", [&](auto tag) {
      using T = decltype(tag);
      const T* p = x->data<T>();
      for (int64_t i = 0; i < x->numel(); ++i) {
        if (IsNonZero(p[i])) hits.push_back(i);
      }
      return Status::Ok();
    })));
    const int64_t r = static_cast<int64_t>(x->rank());
    const int64_t rows = std::max<int64_t>(r, 1);
    const int64_t n = static_cast<int64_t>(hits.size());
    ASSIGN_OR_RETURN(Tensor o, NewTensor(DType::kInt64, {r == 0 ? 1 : r, n}));
    int64_t* po = o.data<int64_t>();
    const std::vector<int64_t> xs = RowMajorStrides(x->shape());
    for (int64_t j = 0; j < n; ++j) {
      int64_t rem = hits[j];
      for (int64_t d = 0; d < r; ++d) {
        po[d * n + j] = rem / xs[d];
        rem %= xs[d];
      }
      if (r == 0) po[j] = 0;
    }
    (void)rows;
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }
};

class CompressKernel final : public Kernel {
 public:
  explicit CompressKernel(std::optional<int64_t> axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* c = ctx.input(1);
    if (!x || !c || c->dtype() != DType::kBool || c->rank() != 1) {
      return InvalidInput("Compress needs data and a 1-D bool condition");
    }
    Tensor flat;
    const Tensor* src = x;
    int64_t axis = 0;
    if (!axis_) {
      flat = x->Reshaped({x->numel()});
      src = &flat;
    } else {
      ASSIGN_OR_RETURN(axis, NormalizeAxis(*axis_, static_cast<int64_t>(x->rank())));
    }
    const int64_t dim = src->dim(axis);
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < std::min(dim, c->numel()); ++i) {
      if (c->data<bool>()[i]) keep.push_back(i);
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= src->dim(d);
    for (size_t d = static_cast<size_t>(axis) + 1; d < src->rank(); ++d) inner *= src->dim(d);
    std::vector<int64_t> shape = src->shape();
    shape[axis] = static_cast<int64_t>(keep.size());
    ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), shape));
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "Compress", [&](auto tag) {
      using T = decltype(tag);
      const T* ps = Elems<T>(*src);
      T* po = Elems<T>(o);
      int64_t at = 0;
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t k : keep) {
          const T* from = ps + (a * dim + k) * inner;
          std::copy(from, from + inner, po + at);
          at += inner;
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  std::optional<int64_t> axis_;
};

// ---- EyeLike / OneHot / CumSum ----

class EyeLikeKernel final : public Kernel {
 public:
  EyeLikeKernel(DType dtype, int64_t k) : dtype_(dtype), k_(k) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x || x->rank() != 2) return InvalidInput("EyeLike needs a 2-D input");
    const DType dt = dtype_ == DType::kUndefined ? x->dtype() : dtype_;
    ASSIGN_OR_RETURN(Tensor o, NewTensor(dt, x->shape()));
    RETURN_IF_ERROR((Dispatch<SERVEML_NUMERIC_TYPES, bool>(dt, "EyeLike", [&](auto tag) {
      using T = decltype(tag);
      T* p = o.data<T>();
      for (int64_t i = 0; i < x->dim(0); ++i) {
        const int64_t j = i + k_;
        if (j >= 0 && j < x->dim(1)) p[i * x->dim(1) + j] = T(1);
      }
      return Status::Ok();
    })));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  DType dtype_;
  int64_t k_;
};

template <typename T>
Status ScalarAsInt64(const Tensor& t, int64_t i, int64_t* out) {
  const T v = t.data<T>()[i];
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) return InvalidInput("non-finite index");
  }
  *out = static_cast<int64_t>(v);
  return Status::Ok();
}

Status ReadAnyInts(const Tensor& t, std::vector<int64_t>* out) {
  out->resize(static_cast<size_t>(t.numel()));
  return Dispatch<SERVEML_NUMERIC_TYPES>(t.dtype(), "OneHot", [&](auto tag) -> Status {
    using T = decltype(tag);
    for (int64_t i = 0; i < t.numel(); ++i) RETURN_IF_ERROR(ScalarAsInt64<T>(t, i, &(*out)[i]));
    return Status::Ok();
  });
}

class OneHotKernel final : public Kernel {
 public:
  explicit OneHotKernel(int64_t axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* idx = ctx.input(0);
    const Tensor* depth_t = ctx.input(1);
    const Tensor* values = ctx.input(2);
    if (!idx || !depth_t || !values || values->numel() != 2) {
      return InvalidInput("OneHot needs indices, depth and 2 values");
    }
    std::vector<int64_t> depth_v, ids;
    RETURN_IF_ERROR(ReadAnyInts(*depth_t, &depth_v));
    if (depth_v.size() != 1 || depth_v[0] < 1) return InvalidInput("OneHot depth must be >= 1");
    const int64_t depth = depth_v[0];
    RETURN_IF_ERROR(ReadAnyInts(*idx, &ids));
    const int64_t out_rank = static_cast<int64_t>(idx->rank()) + 1;
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, out_rank));
    std::vector<int64_t> shape = idx->shape();
    shape.insert(shape.begin() + axis, depth);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= idx->dim(d);
    for (size_t d = static_cast<size_t>(axis); d < idx->rank(); ++d) inner *= idx->dim(d);
    ASSIGN_OR_RETURN(Tensor o, NewTensor(values->dtype(), shape));
    RETURN_IF_ERROR(DispatchByWidth(values->dtype(), "OneHot", [&](auto tag) {
      using T = decltype(tag);
      const T off = Elems<T>(*values)[0], on = Elems<T>(*values)[1];
      T* p = Elems<T>(o);
      std::fill(p, p + o.numel(), off);
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t i = 0; i < inner; ++i) {
          int64_t v = ids[a * inner + i];
          if (v < 0) v += depth;
          if (v < 0 || v >= depth) continue;
          p[(a * depth + v) * inner + i] = on;
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(o);
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

class CumSumKernel final : public Kernel {
 public:
  CumSumKernel(bool exclusive, bool reverse) : exclusive_(exclusive), reverse_(reverse) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* ax = ctx.input(1);
    if (!x || !ax) return InvalidInput("CumSum needs x and axis");
    ASSIGN_OR_RETURN(std::vector<int64_t> axv, ReadInt64s(*ax, "CumSum axis"));
    if (axv.size() != 1) return InvalidInput("CumSum axis must be a scalar");
    const int64_t r = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axv[0], r));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
    for (int64_t d = axis + 1; d < r; ++d) inner *= x->dim(d);
    const int64_t len = x->dim(axis);
    return Dispatch<float, double, int32_t, int64_t, uint32_t, uint64_t>(
        x->dtype(), "CumSum", [&](auto tag) -> Status {
          using T = decltype(tag);
          ASSIGN_OR_RETURN(Tensor o, NewTensor(x->dtype(), x->shape()));
          const T* px = x->data<T>();
          T* po = o.data<T>();
          for (int64_t a = 0; a < outer; ++a) {
            for (int64_t i = 0; i < inner; ++i) {
              T acc = 0;
              for (int64_t s = 0; s < len; ++s) {
                const int64_t j = reverse_ ? len - 1 - s : s;
                const int64_t at = (a * len + j) * inner + i;
                if (exclusive_) {
                  po[at] = acc;
                  acc = static_cast<T>(acc + px[at]);
                } else {
                  acc = static_cast<T>(acc + px[at]);
                  po[at] = acc;
                }
              }
            }
          }
          *ctx.outputs[0] = std::move(o);
          return Status::Ok();
        });
  }

 private:
  bool exclusive_, reverse_;
};

}  // namespace

Result<KernelPtr> MakeTranspose(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> perm, attrs.Ints("perm"));
  return KernelPtr(new TransposeKernel(std::move(perm)));
}

Result<KernelPtr> MakeSqueeze(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, attrs.Ints("axes"));
  const bool input_form = init.opset >= 13;
  if (init.node.op_type == "Unsqueeze") {
    if (!input_form && axes.empty()) return InvalidInput("Unsqueeze needs axes");
    return KernelPtr(new UnsqueezeKernel(input_form, std::move(axes)));
  }
  return KernelPtr(new SqueezeKernel(input_form, std::move(axes)));
}

Result<KernelPtr> MakeSplit(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  ASSIGN_OR_RETURN(std::vector<int64_t> split, attrs.Ints("split"));
  ASSIGN_OR_RETURN(int64_t num_outputs, attrs.Int("num_outputs", 0));
  if (init.node.output.empty()) return InvalidInput("Split needs at least one output");
  if (num_outputs > 0 && num_outputs != static_cast<int64_t>(init.node.output.size())) {
    return InvalidInput("Split num_outputs does not match the node's outputs");
  }
  return KernelPtr(new SplitKernel(axis, init.opset >= 13, std::move(split), num_outputs));
}

Result<KernelPtr> MakeSlice(const KernelInit& init) {
  if (init.opset >= 10) return KernelPtr(new SliceKernel(true, {}, {}, {}));
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> starts, attrs.Ints("starts"));
  ASSIGN_OR_RETURN(std::vector<int64_t> ends, attrs.Ints("ends"));
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, attrs.Ints("axes"));
  return KernelPtr(new SliceKernel(false, std::move(starts), std::move(ends), std::move(axes)));
}

Result<KernelPtr> MakeGather(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  if (init.node.op_type == "GatherElements") return KernelPtr(new GatherElementsKernel(axis));
  return KernelPtr(new GatherKernel(axis));
}

Result<KernelPtr> MakeExpand(const KernelInit&) { return KernelPtr(new ExpandKernel()); }
Result<KernelPtr> MakeTile(const KernelInit&) { return KernelPtr(new TileKernel()); }

Result<KernelPtr> MakePad(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string mode_s, attrs.String("mode", "constant"));
  PadMode mode;
  if (mode_s == "constant") {
    mode = PadMode::kConstant;
  } else if (mode_s == "reflect") {
    mode = PadMode::kReflect;
  } else if (mode_s == "edge") {
    mode = PadMode::kEdge;
  } else if (mode_s == "wrap") {
    mode = PadMode::kWrap;
  } else {
    return InvalidInput("Pad mode '" + mode_s + "' is not supported");
  }
  if (init.opset >= 11) return KernelPtr(new PadKernel(mode, true, {}, 0));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, attrs.Ints(init.opset < 2 ? "paddings" : "pads"));
  ASSIGN_OR_RETURN(float value, attrs.Float("value", 0.0f));
  return KernelPtr(new PadKernel(mode, false, std::move(pads), value));
}

Result<KernelPtr> MakeShape(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t start, attrs.Int("start", 0));
  std::optional<int64_t> end;
  if (attrs.Has("end")) {
    ASSIGN_OR_RETURN(end, attrs.Int("end", 0));
  }
  return KernelPtr(new ShapeKernel(start, end));
}

Result<KernelPtr> MakeSize(const KernelInit&) { return KernelPtr(new SizeKernel()); }

Result<KernelPtr> MakeConstantOfShape(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  Tensor value = Tensor::From<float>({1}, {0.0f});
  if (const auto* a = attrs.Find("value")) {
    if (a->type != onnx::AttributeProto::kTensor || !a->t) {
      return InvalidInput("ConstantOfShape value must be a tensor");
    }
    ASSIGN_OR_RETURN(value, onnx::TensorFromProto(*a->t));
    if (value.numel() != 1) return InvalidInput("ConstantOfShape value must have one element");
  }
  return KernelPtr(new ConstantOfShapeKernel(std::move(value)));
}

Result<KernelPtr> MakeRange(const KernelInit&) { return KernelPtr(new RangeKernel()); }
Result<KernelPtr> MakeWhere(const KernelInit&) { return KernelPtr(new WhereKernel()); }

Result<KernelPtr> MakeTrilu(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t upper, attrs.Int("upper", 1));
  return KernelPtr(new TriluKernel(upper != 0));
}

Result<KernelPtr> MakeDropout(const KernelInit&) { return KernelPtr(new DropoutKernel()); }

}  // namespace serveml::engine

namespace serveml::engine {

Result<KernelPtr> MakeDepthSpace(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t block, attrs.RequiredInt("blocksize"));
  if (block <= 0) return InvalidInput("blocksize must be positive");
  ASSIGN_OR_RETURN(std::string mode, attrs.String("mode", "DCR"));
  if (mode != "DCR" && mode != "CRD") return InvalidInput("DepthToSpace mode must be DCR or CRD");
  return KernelPtr(new DepthSpaceKernel(init.node.op_type == "DepthToSpace", block, mode == "CRD"));
}

Result<KernelPtr> MakeGatherND(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t b, attrs.Int("batch_dims", 0));
  return KernelPtr(new GatherNDKernel(b));
}

Result<KernelPtr> MakeScatter(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  ASSIGN_OR_RETURN(std::string r, attrs.String("reduction", "none"));
  ScatterReduce red;
  if (r == "none") {
    red = ScatterReduce::kNone;
  } else if (r == "add") {
    red = ScatterReduce::kAdd;
  } else if (r == "mul") {
    red = ScatterReduce::kMul;
  } else if (r == "max") {
    red = ScatterReduce::kMax;
  } else if (r == "min") {
    red = ScatterReduce::kMin;
  } else {
    return InvalidInput("unknown reduction '" + r + "'");
  }
  return KernelPtr(new ScatterKernel(init.node.op_type == "ScatterND", axis, red));
}

Result<KernelPtr> MakeNonZero(const KernelInit&) { return KernelPtr(new NonZeroKernel()); }

Result<KernelPtr> MakeCompress(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  std::optional<int64_t> axis;
  if (attrs.Has("axis")) {
    ASSIGN_OR_RETURN(axis, attrs.Int("axis", 0));
  }
  return KernelPtr(new CompressKernel(axis));
}

Result<KernelPtr> MakeEyeLike(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t dtype, attrs.Int("dtype", 0));
  ASSIGN_OR_RETURN(int64_t k, attrs.Int("k", 0));
  if (dtype != 0 && !IsKnownDType(static_cast<int32_t>(dtype))) {
    return Unsupported("EyeLike dtype " + std::to_string(dtype) + " is not supported");
  }
  return KernelPtr(new EyeLikeKernel(static_cast<DType>(dtype), k));
}

Result<KernelPtr> MakeOneHot(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", -1));
  return KernelPtr(new OneHotKernel(axis));
}

Result<KernelPtr> MakeCumSum(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t exclusive, attrs.Int("exclusive", 0));
  ASSIGN_OR_RETURN(int64_t reverse, attrs.Int("reverse", 0));
  return KernelPtr(new CumSumKernel(exclusive != 0, reverse != 0));
}

}  // namespace serveml::engine
