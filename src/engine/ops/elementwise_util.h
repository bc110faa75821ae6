// Building blocks shared by the elementwise kernels: a typed map over one tensor and a typed
// zip over two broadcast tensors, plus small helpers to read shape-like int inputs. Pure
// functions on immutable inputs; thread safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/kernel.h"
#include "engine/ops/broadcast.h"

namespace serveml::engine {

// out[i] = f(x[i]) into a fresh tensor of `out_dtype` with x's shape.
template <typename T, typename TO, typename F>
Status UnaryMap(const Tensor& x, DType out_dtype, F&& f, Tensor* out) {
  ASSIGN_OR_RETURN(Tensor o, NewTensor(out_dtype, x.shape()));
  const T* px = x.data<T>();
  TO* po = o.data<TO>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = f(px[i]);
  *out = std::move(o);
  return Status::Ok();
}

// out = f(a, b) with multidirectional broadcasting into a fresh tensor of `out_dtype`.
// InvalidInput when the shapes do not broadcast.
template <typename TA, typename TB, typename TO, typename F>
Status BinaryMap(const Tensor& a, const Tensor& b, DType out_dtype, F&& f, Tensor* out) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  if (a.shape() == b.shape()) {
    ASSIGN_OR_RETURN(Tensor o, NewTensor(out_dtype, a.shape()));
    TO* po = o.data<TO>();
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    *out = std::move(o);
    return Status::Ok();
  }
  Shape shape;
  RETURN_IF_ERROR(BroadcastShape(a.shape(), b.shape(), &shape));
  ASSIGN_OR_RETURN(Tensor o, NewTensor(out_dtype, shape));
  TO* po = o.data<TO>();
  BroadcastPlan plan = MakeBroadcastPlan(a.shape(), b.shape(), shape);
  ForEachBroadcastRun(plan,
                      [&](int64_t oa, int64_t ob, int64_t oo, int64_t len, int64_t sa, int64_t sb) {
                        const TA* x = pa + oa;
                        const TB* y = pb + ob;
                        TO* z = po + oo;
                        if (sa && sb) {
                          for (int64_t i = 0; i < len; ++i) z[i] = f(x[i], y[i]);
                        } else if (sb) {
                          const TA xv = x[0];
                          for (int64_t i = 0; i < len; ++i) z[i] = f(xv, y[i]);
                        } else if (sa) {
                          const TB yv = y[0];
                          for (int64_t i = 0; i < len; ++i) z[i] = f(x[i], yv);
                        } else {
                          const TO v = f(x[0], y[0]);
                          for (int64_t i = 0; i < len; ++i) z[i] = v;
                        }
                      });
  *out = std::move(o);
  return Status::Ok();
}

// String variant of BinaryMap (element access through strings()).
template <typename TO, typename F>
Status BinaryMapStrings(const Tensor& a, const Tensor& b, DType out_dtype, F&& f, Tensor* out) {
  Shape shape;
  RETURN_IF_ERROR(BroadcastShape(a.shape(), b.shape(), &shape));
  ASSIGN_OR_RETURN(Tensor o, NewTensor(out_dtype, shape));
  TO* po = o.data<TO>();
  const auto& sa_ = a.strings();
  const auto& sb_ = b.strings();
  BroadcastPlan plan = MakeBroadcastPlan(a.shape(), b.shape(), shape);
  ForEachBroadcastRun(plan,
                      [&](int64_t oa, int64_t ob, int64_t oo, int64_t len, int64_t sa, int64_t sb) {
                        for (int64_t i = 0; i < len; ++i) {
                          po[oo + i] = f(sa_[oa + i * sa], sb_[ob + i * sb]);
                        }
                      });
  *out = std::move(o);
  return Status::Ok();
}

// Typed element pointers that also cover string tensors (elements in strings()).
template <typename T>
const T* Elems(const Tensor& t) {
  if constexpr (std::is_same_v<T, std::string>) {
    return t.strings().data();
  } else {
    return t.data<T>();
  }
}
template <typename T>
T* Elems(Tensor& t) {
  if constexpr (std::is_same_v<T, std::string>) {
    return t.strings().data();
  } else {
    return t.data<T>();
  }
}

// For kernels that only move elements: calls f(T{}) with an unsigned integer type of the
// element's width (uint8_t .. uint64_t) or std::string for string tensors. InvalidInput for
// kUndefined.
template <typename F>
Status DispatchByWidth(DType t, std::string_view op, F&& f) {
  if (t == DType::kString) return f(std::string());
  switch (DTypeSize(t)) {
    case 1:
      return f(uint8_t{});
    case 2:
      return f(uint16_t{});
    case 4:
      return f(uint32_t{});
    case 8:
      return f(uint64_t{});
    default:
      break;
  }
  std::string m = "element type ";
  m += DTypeName(t);
  m += " is not supported by ";
  m += op;
  return InvalidInput(std::move(m));
}

// Reads a 0-D or 1-D int32/int64 tensor (axes, shapes, pads, ...) as int64 values.
// InvalidInput naming `what` for other dtypes or ranks.
Result<std::vector<int64_t>> ReadInt64s(const Tensor& t, const char* what);

// Row-major element strides of `shape`.
std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& shape);

// Requires both inputs present and of the same dtype; `op` names the operator in errors.
Status SameDType(const Tensor* a, const Tensor* b, const char* op);

}  // namespace serveml::engine
