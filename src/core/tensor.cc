#include "core/tensor.h"

#include <cassert>
#include <cstdlib>
#include <cstring>
#include <new>

namespace serveml {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kUInt8:
      return 1;
    case DType::kInt8:
      return 1;
    case DType::kUInt16:
      return 2;
    case DType::kInt16:
      return 2;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kBool:
      return 1;
    case DType::kFloat16:
      return 2;
    case DType::kFloat64:
      return 8;
    case DType::kUInt32:
      return 4;
    case DType::kUInt64:
      return 8;
    case DType::kString:
    case DType::kUndefined:
      return 0;
  }
  return 0;
}

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt8:
      return "int8";
    case DType::kUInt16:
      return "uint16";
    case DType::kInt16:
      return "int16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kString:
      return "string";
    case DType::kBool:
      return "bool";
    case DType::kFloat16:
      return "float16";
    case DType::kFloat64:
      return "float64";
    case DType::kUInt32:
      return "uint32";
    case DType::kUInt64:
      return "uint64";
    case DType::kUndefined:
      return "undefined";
  }
  return "undefined";
}

std::string_view DTypeV2Name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "FP32";
    case DType::kUInt8:
      return "UINT8";
    case DType::kInt8:
      return "INT8";
    case DType::kUInt16:
      return "UINT16";
    case DType::kInt16:
      return "INT16";
    case DType::kInt32:
      return "INT32";
    case DType::kInt64:
      return "INT64";
    case DType::kString:
      return "BYTES";
    case DType::kBool:
      return "BOOL";
    case DType::kFloat16:
      return "FP16";
    case DType::kFloat64:
      return "FP64";
    case DType::kUInt32:
      return "UINT32";
    case DType::kUInt64:
      return "UINT64";
    case DType::kUndefined:
      return "UNDEFINED";
  }
  return "UNDEFINED";
}

bool IsKnownDType(int32_t v) { return v >= 1 && v <= 13; }

int64_t ShapeNumel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

namespace {
// Aligned operator new (throws std::bad_alloc) rather than aligned_alloc, so every tensor
// buffer goes through the replaceable global allocation functions.
std::shared_ptr<void> AllocAligned(size_t bytes) {
  size_t n = (bytes + 63) / 64 * 64;
  if (n == 0) n = 64;
  void* p = ::operator new (n, std::align_val_t{64});
  std::memset(p, 0, n);
  return std::shared_ptr<void>(p, [](void* q) { ::operator delete (q, std::align_val_t{64}); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), numel_(ShapeNumel(shape_)) {
  assert(numel_ >= 0);
  if (dtype_ == DType::kString) {
    strings_ = std::make_shared<std::vector<std::string>>(static_cast<size_t>(numel_));
  } else {
    buffer_ = AllocAligned(nbytes());
    data_ = buffer_.get();
  }
}

Tensor::Tensor(DType dtype, Shape shape, std::shared_ptr<void> buffer)
    : dtype_(dtype),
      shape_(std::move(shape)),
      numel_(ShapeNumel(shape_)),
      buffer_(std::move(buffer)),
      data_(buffer_.get()) {
  assert(numel_ >= 0 && dtype_ != DType::kString && dtype_ != DType::kUndefined);
}

Tensor Tensor::FromStrings(Shape shape, std::vector<std::string> values) {
  Tensor t;
  t.dtype_ = DType::kString;
  t.shape_ = std::move(shape);
  t.numel_ = ShapeNumel(t.shape_);
  values.resize(static_cast<size_t>(t.numel_));
  t.strings_ = std::make_shared<std::vector<std::string>>(std::move(values));
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  Tensor t = *this;
  assert(ShapeNumel(shape) == numel_);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t;
  t.dtype_ = dtype_;
  t.shape_ = shape_;
  t.numel_ = numel_;
  if (dtype_ == DType::kString) {
    t.strings_ = std::make_shared<std::vector<std::string>>(*strings_);
  } else if (dtype_ != DType::kUndefined) {
    t.buffer_ = AllocAligned(nbytes());
    t.data_ = t.buffer_.get();
    if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

}  // namespace serveml
