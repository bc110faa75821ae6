// Tensor: the typed n-dimensional array exchanged between the API edge, the runtime and
// the engine. Numeric data lives in one 64-byte aligned buffer shared by copies (copying a
// Tensor is cheap and aliases the data; use Clone() for a deep copy). String tensors keep
// their elements in a std::vector<std::string>.
//
// Thread safety: a Tensor may be read from many threads; writing to one that other threads
// read is the caller's race to avoid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/shape.h"

namespace serveml {

// Element types. The numeric values equal ONNX TensorProto.DataType so the ONNX loader and
// writer can cast directly.
enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
};

// Bytes per element (0 for kString and kUndefined).
size_t DTypeSize(DType t);
// Lower-case name as the REST API reports it: "float32", "int64", "string", ...
std::string_view DTypeName(DType t);
// KServe V2 datatype name: "FP32", "INT64", "BYTES", "BOOL", ...
std::string_view DTypeV2Name(DType t);
// True for the ONNX enum values this build understands.
bool IsKnownDType(int32_t v);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kUInt8;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::kInt8;
};
template <>
struct DTypeOf<uint16_t> {
  static constexpr DType value = DType::kUInt16;
};
template <>
struct DTypeOf<int16_t> {
  static constexpr DType value = DType::kInt16;
};
template <>
struct DTypeOf<uint32_t> {
  static constexpr DType value = DType::kUInt32;
};
template <>
struct DTypeOf<uint64_t> {
  static constexpr DType value = DType::kUInt64;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};

// Product of dims; 1 for a scalar (empty shape). Negative dims are invalid here.
int64_t ShapeNumel(const Shape& shape);
// "[2, 3]" for messages.
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Allocates a zero-filled tensor. For kString, numel empty strings.
  Tensor(DType dtype, Shape shape);
  // Wraps an existing buffer for a numeric dtype: `buffer` must point to at least
  // numel * DTypeSize(dtype) bytes, 64-byte aligned, and owns them (its deleter decides
  // where the memory goes when the last Tensor sharing it is gone). Contents are not
  // touched. Used by the engine's per-run arena.
  Tensor(DType dtype, Shape shape, std::shared_ptr<void> buffer);

  // A 1-element-per-value tensor built from a vector, e.g. Tensor::From<float>({2}, {1, 2}).
  template <typename T>
  static Tensor From(Shape shape, const std::vector<T>& values) {
    Tensor t(DTypeOf<T>::value, std::move(shape));
    T* d = t.data<T>();
    for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.numel(); ++i)
      d[i] = values[i];
    return t;
  }
  static Tensor FromStrings(Shape shape, std::vector<std::string> values);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * DTypeSize(dtype_); }
  bool defined() const { return dtype_ != DType::kUndefined; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  // Elements of a kString tensor (empty for other dtypes).
  std::vector<std::string>& strings() { return *strings_; }
  const std::vector<std::string>& strings() const { return *strings_; }

  // Same data, new shape (numel must match; asserted). Shares the buffer.
  Tensor Reshaped(Shape shape) const;
  // Deep copy.
  Tensor Clone() const;

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;  // dims inline up to Shape::kInline: no allocation per tensor
  int64_t numel_ = 0;
  std::shared_ptr<void> buffer_;  // owns data_ for numeric tensors
  void* data_ = nullptr;
  std::shared_ptr<std::vector<std::string>> strings_;
};

}  // namespace serveml
