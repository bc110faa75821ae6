// Assorted tensor operators: CenterCropPad (18), ReverseSequence (10), Unique (11),
// MaxUnpool (9/11), LRN (1/13) and Col2Im (18). Semantics follow the ONNX reference
// implementations. CenterCropPad and ReverseSequence only move elements (every dtype,
// strings included); Unique covers the numeric types, bool and strings.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// ---------------------------------------------------------------------------------------
// CenterCropPad

class CenterCropPadKernel final : public Kernel {
 public:
  explicit CenterCropPadKernel(std::vector<int64_t> axes) : axes_(std::move(axes)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* shape_in = ctx.input(1);
    if (!x || !shape_in) return InvalidInput("CenterCropPad needs input_data and shape");
    ASSIGN_OR_RETURN(std::vector<int64_t> target, ReadInt64s(*shape_in, "CenterCropPad shape"));
    const int64_t rank = static_cast<int64_t>(x->rank());
    std::vector<int64_t> axes;
    if (axes_.empty()) {
      axes.resize(static_cast<size_t>(rank));
      std::iota(axes.begin(), axes.end(), 0);
    } else {
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (int64_t a : axes_) {
        ASSIGN_OR_RETURN(int64_t ax, NormalizeAxis(a, rank));
        if (seen[ax]) return InvalidInput("CenterCropPad axes contain a duplicate");
        seen[ax] = true;
        axes.push_back(ax);
      }
    }
    if (target.size() != axes.size()) {
      return InvalidInput("CenterCropPad shape has " + std::to_string(target.size()) +
                          " entries for " + std::to_string(axes.size()) + " axes");
    }
    Shape out_shape = x->shape();
    std::vector<int64_t> in_start(static_cast<size_t>(rank), 0);
    std::vector<int64_t> out_start(static_cast<size_t>(rank), 0);
    std::vector<int64_t> len = x->shape();  // extent of the copied block
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = axes[i], dim = x->dim(a), want = target[i];
      if (want < 0) return InvalidInput("CenterCropPad shape entries must be >= 0");
      out_shape[a] = want;
      if (want < dim) {
        in_start[a] = (dim - want) / 2;
        len[a] = want;
      } else {
        out_start[a] = (want - dim) / 2;
      }
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(x->dtype(), out_shape));
    int64_t n = 1;
    for (int64_t l : len) n *= l;
    if (n > 0 && rank > 0) {
      RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "CenterCropPad", [&](auto tag) {
        using T = decltype(tag);
        const T* src = Elems<T>(*x);
        T* dst = Elems<T>(out);
        const std::vector<int64_t> si = RowMajorStrides(x->shape());
        const std::vector<int64_t> so = RowMajorStrides(out_shape);
        std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
        const int64_t row = len[rank - 1];
        for (int64_t done = 0; done < n; done += row) {
          int64_t oi = 0, oo = 0;
          for (int64_t d = 0; d < rank; ++d) {
            oi += (in_start[d] + idx[d]) * si[d];
            oo += (out_start[d] + idx[d]) * so[d];
          }
          for (int64_t j = 0; j < row; ++j) dst[oo + j] = src[oi + j];
          for (int64_t d = rank - 2; d >= 0; --d) {
            if (++idx[d] < len[d]) break;
            idx[d] = 0;
          }
        }
        return Status::Ok();
      }));
    } else if (n > 0) {
      out = x->Clone();
    }
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  std::vector<int64_t> axes_;  // as written (may be negative); empty = all axes
};

// ---------------------------------------------------------------------------------------
// ReverseSequence

class ReverseSequenceKernel final : public Kernel {
 public:
  ReverseSequenceKernel(int64_t batch_axis, int64_t time_axis)
      : batch_axis_(batch_axis), time_axis_(time_axis) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* lens_in = ctx.input(1);
    if (!x || !lens_in) return InvalidInput("ReverseSequence needs input and sequence_lens");
    if (x->rank() < 2) {
      return InvalidInput("ReverseSequence input must have rank >= 2, got shape " +
                          ShapeToString(x->shape()));
    }
    ASSIGN_OR_RETURN(std::vector<int64_t> lens,
                     ReadInt64s(*lens_in, "ReverseSequence sequence_lens"));
    const int64_t batch = x->dim(batch_axis_), steps = x->dim(time_axis_);
    if (static_cast<int64_t>(lens.size()) != batch) {
      return InvalidInput("ReverseSequence sequence_lens has " + std::to_string(lens.size()) +
                          " entries for a batch of " + std::to_string(batch));
    }
    for (int64_t l : lens) {
      if (l < 0 || l > steps) {
        return InvalidInput("ReverseSequence sequence length " + std::to_string(l) +
                            " is out of range [0, " + std::to_string(steps) + "]");
      }
    }
    ASSIGN_OR_RETURN(Tensor out, NewTensor(x->dtype(), x->shape()));
    const std::vector<int64_t> st = RowMajorStrides(x->shape());
    const int64_t inner = st[1];  // elements after the two leading (batch/time) axes
    RETURN_IF_ERROR(DispatchByWidth(x->dtype(), "ReverseSequence", [&](auto tag) {
      using T = decltype(tag);
      const T* src = Elems<T>(*x);
      T* dst = Elems<T>(out);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < steps; ++t) {
          const int64_t from = t < lens[b] ? lens[b] - 1 - t : t;
          const int64_t o = b * st[batch_axis_] + t * st[time_axis_];
          const int64_t i = b * st[batch_axis_] + from * st[time_axis_];
          for (int64_t j = 0; j < inner; ++j) dst[o + j] = src[i + j];
        }
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  int64_t batch_axis_, time_axis_;  // {0, 1} in some order
};

// ---------------------------------------------------------------------------------------
// Unique

// Total order for Unique: NaN after every number and equal to itself.
template <typename T>
bool ElemLess(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}
template <typename T>
bool ElemEqual(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  }
  return a == b;
}

class UniqueKernel final : public Kernel {
 public:
  UniqueKernel(bool has_axis, int64_t axis, bool sorted)
      : has_axis_(has_axis), axis_(axis), sorted_(sorted) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Unique needs an input");
    // The input as `outer` x `m` x `inner`: m slices along the axis (elements when flat).
    int64_t outer = 1, m = x->numel(), inner = 1, axis = 0;
    if (has_axis_) {
      ASSIGN_OR_RETURN(axis, NormalizeAxis(axis_, static_cast<int64_t>(x->rank())));
      m = x->dim(axis);
      for (int64_t d = 0; d < axis; ++d) outer *= x->dim(d);
      for (size_t d = axis + 1; d < x->rank(); ++d) inner *= x->dim(d);
    }
    return Dispatch<SERVEML_NUMERIC_TYPES, bool, std::string>(
        x->dtype(), "Unique", [&](auto tag) -> Status {
          using T = decltype(tag);
          const T* px = Elems<T>(*x);
          auto at = [&](int64_t slice, int64_t k) -> const T& {
            // k-th element of a slice, walking (outer, inner) row-major
            return px[((k / inner) * m + slice) * inner + (k % inner)];
          };
          const int64_t len = outer * inner;
          auto slice_less = [&](int64_t a, int64_t b) {
            for (int64_t k = 0; k < len; ++k) {
              const T& va = at(a, k);
              const T& vb = at(b, k);
              if (ElemLess(va, vb)) return true;
              if (ElemLess(vb, va)) return false;
            }
            return false;
          };
          auto slice_equal = [&](int64_t a, int64_t b) {
            for (int64_t k = 0; k < len; ++k) {
              if (!ElemEqual(at(a, k), at(b, k))) return false;
            }
            return true;
          };
          std::vector<int64_t> order(static_cast<size_t>(m));
          std::iota(order.begin(), order.end(), 0);
          std::stable_sort(order.begin(), order.end(), slice_less);
          // Groups of equal slices in sorted order: first occurrence and count.
          std::vector<int64_t> first, count, group_of(static_cast<size_t>(m));
          for (int64_t i = 0; i < m; ++i) {
            if (i == 0 || !slice_equal(order[i - 1], order[i])) {
              first.push_back(order[i]);
              count.push_back(0);
            }
            ++count.back();
            group_of[order[i]] = static_cast<int64_t>(first.size()) - 1;
          }
          const int64_t u = static_cast<int64_t>(first.size());
          std::vector<int64_t> rank_of(static_cast<size_t>(u));  // group -> output position
          std::iota(rank_of.begin(), rank_of.end(), 0);
          if (!sorted_) {
            std::vector<int64_t> by_first(static_cast<size_t>(u));
            std::iota(by_first.begin(), by_first.end(), 0);
            std::sort(by_first.begin(), by_first.end(),
                      [&](int64_t a, int64_t b) { return first[a] < first[b]; });
            for (int64_t p = 0; p < u; ++p) rank_of[by_first[p]] = p;
          }
          std::vector<int64_t> y_shape;
          if (has_axis_) {
            y_shape = x->shape();
            y_shape[axis] = u;
          } else {
            y_shape = {u};
          }
          ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), y_shape));
          ASSIGN_OR_RETURN(Tensor idx, NewTensor(DType::kInt64, {u}));
          ASSIGN_OR_RETURN(Tensor inv, NewTensor(DType::kInt64, {m}));
          ASSIGN_OR_RETURN(Tensor cnt, NewTensor(DType::kInt64, {u}));
          T* py = Elems<T>(y);
          int64_t* pi = idx.data<int64_t>();
          int64_t* pc = cnt.data<int64_t>();
          for (int64_t g = 0; g < u; ++g) {
            const int64_t p = rank_of[g];
            pi[p] = first[g];
            pc[p] = count[g];
            for (int64_t k = 0; k < len; ++k) {
              py[((k / inner) * u + p) * inner + (k % inner)] = at(first[g], k);
            }
          }
          int64_t* pv = inv.data<int64_t>();
          for (int64_t i = 0; i < m; ++i) pv[i] = rank_of[group_of[i]];
          *ctx.outputs[0] = std::move(y);
          if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(idx);
          if (ctx.num_outputs() > 2) *ctx.outputs[2] = std::move(inv);
          if (ctx.num_outputs() > 3) *ctx.outputs[3] = std::move(cnt);
          return Status::Ok();
        });
  }

 private:
  bool has_axis_;
  int64_t axis_;
  bool sorted_;
};

// ---------------------------------------------------------------------------------------
// MaxUnpool

class MaxUnpoolKernel final : public Kernel {
 public:
  MaxUnpoolKernel(std::vector<int64_t> kernel, std::vector<int64_t> pads,
                  std::vector<int64_t> strides)
      : kernel_(std::move(kernel)), pads_(std::move(pads)), strides_(std::move(strides)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* ind = ctx.input(1);
    if (!x || !ind) return InvalidInput("MaxUnpool needs X and I");
    const size_t k = kernel_.size();
    if (x->rank() != k + 2) {
      return InvalidInput("MaxUnpool X shape " + ShapeToString(x->shape()) + " does not have " +
                          std::to_string(k) + " spatial dims (kernel_shape)");
    }
    if (ind->dtype() != DType::kInt64 || ind->shape() != x->shape()) {
      return InvalidInput("MaxUnpool I must be int64 with X's shape " + ShapeToString(x->shape()) +
                          ", got " + std::string(DTypeName(ind->dtype())) + " " +
                          ShapeToString(ind->shape()));
    }
    // The shape MaxPool's input had; indices are flat positions in it.
    std::vector<int64_t> inferred{x->dim(0), x->dim(1)};
    for (size_t d = 0; d < k; ++d) {
      const int64_t v = (x->dim(d + 2) - 1) * strides_[d] - (pads_[d] + pads_[d + k]) + kernel_[d];
      if (v < 0) return InvalidInput("MaxUnpool output size is negative");
      inferred.push_back(v);
    }
    Shape out_shape = inferred;
    if (const Tensor* os = ctx.input(2)) {
      ASSIGN_OR_RETURN(out_shape, ReadInt64s(*os, "MaxUnpool output_shape"));
      if (out_shape.size() != inferred.size()) {
        return InvalidInput("MaxUnpool output_shape has " + std::to_string(out_shape.size()) +
                            " entries for an input of rank " + std::to_string(x->rank()));
      }
      for (size_t d = 0; d < out_shape.size(); ++d) {
        if (out_shape[d] < inferred[d]) {
          return InvalidInput("MaxUnpool output_shape " + ShapeToString(out_shape) +
                              " is smaller than the unpooled shape " + ShapeToString(inferred));
        }
      }
    }
    ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
    const int64_t total = ShapeNumel(inferred);
    const std::vector<int64_t> si = RowMajorStrides(inferred);
    const std::vector<int64_t> so = RowMajorStrides(out_shape);
    const bool same = out_shape == inferred;
    const int64_t* pi = ind->data<int64_t>();
    RETURN_IF_ERROR(Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), "MaxUnpool", [&](auto tag) {
      using T = decltype(tag);
      const T* px = x->data<T>();
      T* py = y.data<T>();
      for (int64_t e = 0; e < x->numel(); ++e) {
        int64_t i = pi[e];
        if (i < 0 || i >= total) {
          return InvalidInput("MaxUnpool index " + std::to_string(i) +
                              " is out of range for the unpooled shape " + ShapeToString(inferred));
        }
        if (!same) {  // same multi-index in the larger output
          int64_t o = 0;
          for (size_t d = 0; d < si.size(); ++d) {
            o += (i / si[d]) * so[d];
            i %= si[d];
          }
          i = o;
        }
        py[i] = px[e];
      }
      return Status::Ok();
    }));
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::vector<int64_t> kernel_, pads_, strides_;
};

// ---------------------------------------------------------------------------------------
// LRN

class LrnKernel final : public Kernel {
 public:
  LrnKernel(double alpha, double beta, double bias, int64_t size)
      : alpha_(alpha), beta_(beta), bias_(bias), size_(size) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("LRN needs an input");
    if (x->rank() < 3) {
      return InvalidInput("LRN input must have rank >= 3 (N, C, spatial...), got shape " +
                          ShapeToString(x->shape()));
    }
    RETURN_IF_ERROR(CheckWork(
        "LRN", static_cast<double>(x->numel()) * static_cast<double>(std::min(size_, x->dim(1)))));
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "LRN", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
      const int64_t N = x->dim(0), C = x->dim(1), S = x->numel() / std::max<int64_t>(N * C, 1);
      const int64_t before = (size_ - 1) / 2, after = size_ / 2;  // floor and ceil of (size-1)/2
      const double scale = alpha_ / static_cast<double>(size_);
      const T* px = x->data<T>();
      T* py = y.data<T>();
      std::vector<double> sq(static_cast<size_t>(S));
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t c = 0; c < C; ++c) {
          std::fill(sq.begin(), sq.end(), 0.0);
          const int64_t lo = std::max<int64_t>(0, c - before), hi = std::min(C - 1, c + after);
          for (int64_t cc = lo; cc <= hi; ++cc) {
            const T* p = px + (n * C + cc) * S;
            for (int64_t s = 0; s < S; ++s) sq[s] += static_cast<double>(p[s]) * p[s];
          }
          const T* p = px + (n * C + c) * S;
          T* o = py + (n * C + c) * S;
          for (int64_t s = 0; s < S; ++s) {
            o[s] =
                static_cast<T>(static_cast<double>(p[s]) / std::pow(bias_ + scale * sq[s], beta_));
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  double alpha_, beta_, bias_;
  int64_t size_;
};

// ---------------------------------------------------------------------------------------
// Col2Im

class Col2ImKernel final : public Kernel {
 public:
  Col2ImKernel(std::vector<int64_t> dilations, std::vector<int64_t> pads,
               std::vector<int64_t> strides)
      : dilations_(std::move(dilations)), pads_(std::move(pads)), strides_(std::move(strides)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* image_in = ctx.input(1);
    const Tensor* block_in = ctx.input(2);
    if (!x || !image_in || !block_in) {
      return InvalidInput("Col2Im needs input, image_shape and block_shape");
    }
    ASSIGN_OR_RETURN(std::vector<int64_t> image, ReadInt64s(*image_in, "Col2Im image_shape"));
    ASSIGN_OR_RETURN(std::vector<int64_t> block, ReadInt64s(*block_in, "Col2Im block_shape"));
    const size_t k = image.size();
    if (k == 0 || block.size() != k) {
      return InvalidInput(
          "Col2Im image_shape and block_shape must have the same, non-zero "
          "length");
    }
    auto attr = [&](const std::vector<int64_t>& v, size_t want, int64_t def,
                    const char* what) -> Result<std::vector<int64_t>> {
      if (v.empty()) return std::vector<int64_t>(want, def);
      if (v.size() != want) {
        return InvalidInput(std::string("Col2Im ") + what + " has " + std::to_string(v.size()) +
                            " entries, expected " + std::to_string(want));
      }
      return v;
    };
    ASSIGN_OR_RETURN(std::vector<int64_t> dil, attr(dilations_, k, 1, "dilations"));
    ASSIGN_OR_RETURN(std::vector<int64_t> pads, attr(pads_, 2 * k, 0, "pads"));
    ASSIGN_OR_RETURN(std::vector<int64_t> str, attr(strides_, k, 1, "strides"));
    constexpr int64_t kMax = int64_t{1} << 28;
    int64_t block_size = 1, n_blocks = 1;
    std::vector<int64_t> blocks(k);
    for (size_t d = 0; d < k; ++d) {
      for (int64_t v : {image[d], block[d], dil[d], str[d], pads[d], pads[d + k]}) {
        if (v > kMax) return InvalidInput("Col2Im shape or attribute value is too large");
      }
      if (image[d] < 0 || block[d] <= 0 || dil[d] <= 0 || str[d] <= 0 || pads[d] < 0 ||
          pads[d + k] < 0) {
        return InvalidInput(
            "Col2Im needs image_shape >= 0, block_shape, dilations and strides "
            "> 0 and pads >= 0");
      }
      const int64_t span = image[d] + pads[d] + pads[d + k] - (dil[d] * (block[d] - 1) + 1);
      if (span < 0) return InvalidInput("Col2Im block does not fit the padded image");
      blocks[d] = span / str[d] + 1;
      block_size *= block[d];
      n_blocks *= blocks[d];
    }
    if (x->rank() != 3 || x->dim(1) % block_size != 0 || x->dim(2) != n_blocks) {
      return InvalidInput("Col2Im input shape " + ShapeToString(x->shape()) +
                          " does not match (N, C * " + std::to_string(block_size) + ", " +
                          std::to_string(n_blocks) + ")");
    }
    const int64_t N = x->dim(0), C = x->dim(1) / block_size;
    Shape out_shape{N, C};
    out_shape.insert(out_shape.end(), image.begin(), image.end());
    return Dispatch<SERVEML_NUMERIC_TYPES>(x->dtype(), "Col2Im", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), out_shape));
      const int64_t image_size = ShapeNumel(image);
      const std::vector<int64_t> istr = RowMajorStrides(image);
      const T* px = x->data<T>();
      T* py = y.data<T>();
      std::vector<int64_t> off(k), col(k);
      for (int64_t nc = 0; nc < N * C; ++nc) {
        T* img = py + nc * image_size;
        for (int64_t b = 0; b < block_size; ++b) {
          // Multi-index of the kernel offset b (row-major over block).
          for (size_t d = k, rest = static_cast<size_t>(b); d-- > 0;) {
            off[d] = static_cast<int64_t>(rest) % block[d];
            rest /= static_cast<size_t>(block[d]);
          }
          const T* src = px + (nc * block_size + b) * n_blocks;
          std::fill(col.begin(), col.end(), 0);
          for (int64_t j = 0; j < n_blocks; ++j) {
            int64_t at = 0;
            bool inside = true;
            for (size_t d = 0; d < k; ++d) {
              const int64_t p = col[d] * str[d] - pads[d] + off[d] * dil[d];
              if (p < 0 || p >= image[d]) {
                inside = false;
                break;
              }
              at += p * istr[d];
            }
            if (inside) img[at] += src[j];
            for (size_t d = k; d-- > 0;) {
              if (++col[d] < blocks[d]) break;
              col[d] = 0;
            }
          }
        }
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }

 private:
  std::vector<int64_t> dilations_, pads_, strides_;  // as written (may be empty)
};

}  // namespace

Result<KernelPtr> MakeCenterCropPad(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, attrs.Ints("axes"));
  return KernelPtr(new CenterCropPadKernel(std::move(axes)));
}

Result<KernelPtr> MakeReverseSequence(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t batch_axis, attrs.Int("batch_axis", 1));
  ASSIGN_OR_RETURN(int64_t time_axis, attrs.Int("time_axis", 0));
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0))) {
    return InvalidInput(
        "ReverseSequence batch_axis and time_axis must be 0 and 1 in some "
        "order, got " +
        std::to_string(batch_axis) + " and " + std::to_string(time_axis));
  }
  return KernelPtr(new ReverseSequenceKernel(batch_axis, time_axis));
}

Result<KernelPtr> MakeUnique(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  const bool has_axis = attrs.Has("axis");
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 0));
  ASSIGN_OR_RETURN(int64_t sorted, attrs.Int("sorted", 1));
  return KernelPtr(new UniqueKernel(has_axis, axis, sorted != 0));
}

Result<KernelPtr> MakeMaxUnpool(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> kernel, attrs.Ints("kernel_shape"));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, attrs.Ints("pads"));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, attrs.Ints("strides"));
  const size_t k = kernel.size();
  if (k == 0) return InvalidInput("MaxUnpool needs kernel_shape");
  if (pads.empty()) pads.assign(2 * k, 0);
  if (strides.empty()) strides.assign(k, 1);
  if (pads.size() != 2 * k || strides.size() != k) {
    return InvalidInput("MaxUnpool pads must have " + std::to_string(2 * k) +
                        " entries and strides " + std::to_string(k));
  }
  constexpr int64_t kMax = int64_t{1} << 28;
  for (size_t d = 0; d < k; ++d) {
    if (kernel[d] <= 0 || strides[d] <= 0 || kernel[d] > kMax || strides[d] > kMax) {
      return InvalidInput("MaxUnpool kernel_shape and strides must be in [1, 2^28]");
    }
  }
  for (int64_t p : pads) {
    if (p < 0 || p > kMax) return InvalidInput("MaxUnpool pads must be in [0, 2^28]");
  }
  return KernelPtr(new MaxUnpoolKernel(std::move(kernel), std::move(pads), std::move(strides)));
}

Result<KernelPtr> MakeLRN(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(float alpha, attrs.Float("alpha", 1e-4f));
  ASSIGN_OR_RETURN(float beta, attrs.Float("beta", 0.75f));
  ASSIGN_OR_RETURN(float bias, attrs.Float("bias", 1.0f));
  ASSIGN_OR_RETURN(int64_t size, attrs.RequiredInt("size"));
  if (size <= 0) return InvalidInput("LRN size must be positive, got " + std::to_string(size));
  return KernelPtr(new LrnKernel(alpha, beta, bias, size));
}

Result<KernelPtr> MakeCol2Im(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> dilations, attrs.Ints("dilations"));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, attrs.Ints("pads"));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, attrs.Ints("strides"));
  return KernelPtr(new Col2ImKernel(std::move(dilations), std::move(pads), std::move(strides)));
}

}  // namespace serveml::engine
