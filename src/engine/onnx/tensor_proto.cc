#include "engine/onnx/tensor_proto.h"

#include <cstring>
#include <limits>

#include "engine/engine.h"
#include "engine/onnx/wire.h"

namespace serveml::engine {
namespace onnx {

std::string OnnxTypeName(int32_t t) {
  static constexpr const char* kNames[] = {
      "UNDEFINED",      "FLOAT",    "UINT8",        "INT8",           "UINT16",
      "INT16",          "INT32",    "INT64",        "STRING",         "BOOL",
      "FLOAT16",        "DOUBLE",   "UINT32",       "UINT64",         "COMPLEX64",
      "COMPLEX128",     "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
      "FLOAT8E5M2FNUZ", "UINT4",    "INT4",         "FLOAT4E2M1",     "FLOAT8E8M0",
      "UINT2",          "INT2"};
  if (t >= 0 && t < static_cast<int32_t>(std::size(kNames))) return kNames[t];
  return "type " + std::to_string(t);
}

namespace {

std::string Describe(const TensorProto& p) {
  return p.name.empty() ? std::string("tensor") : "tensor '" + p.name + "'";
}

// Copies `count` typed values into t (with conversion to the tensor's element type).
template <typename Dst, typename Src>
void CopyConvert(const std::vector<Src>& src, Tensor* t) {
  Dst* d = t->data<Dst>();
  for (size_t i = 0; i < src.size(); ++i) d[i] = static_cast<Dst>(src[i]);
}

}  // namespace

Result<Tensor> TensorFromProto(const TensorProto& p) {
  if (p.data_location == 1) {
    return Unsupported(Describe(p) +
                       ": external data is not supported (embed the weights in "
                       "the .onnx file)");
  }
  if (p.has_segment) return Unsupported(Describe(p) + ": segmented tensors are not supported");
  if (!IsKnownDType(p.data_type)) {
    if (p.data_type == 0) return InvalidInput(Describe(p) + " has no data_type");
    return Unsupported(Describe(p) + " has element type " + OnnxTypeName(p.data_type) +
                       ", which is not supported");
  }
  DType dtype = static_cast<DType>(p.data_type);
  int64_t numel = 1;
  for (int64_t d : p.dims) {
    if (d < 0) return InvalidInput(Describe(p) + " has a negative dimension");
    if (d != 0 && numel > kMaxTensorElements / d) {
      return InvalidInput(Describe(p) + " is too large");
    }
    numel *= d;
  }
  if (numel > kMaxTensorElements) return InvalidInput(Describe(p) + " is too large");
  auto mismatch = [&](size_t have) {
    return InvalidInput(Describe(p) + " has " + std::to_string(have) + " values but its dims " +
                        ShapeToString(p.dims) + " need " + std::to_string(numel));
  };
  const size_t n = static_cast<size_t>(numel);

  if (dtype == DType::kString) {
    if (p.string_data.size() != n) return mismatch(p.string_data.size());
    return Tensor::FromStrings(p.dims, p.string_data);
  }
  const size_t esize = DTypeSize(dtype);
  if (p.has_raw_data) {
    if (p.raw_data.size() != n * esize) {
      return InvalidInput(Describe(p) + " has " + std::to_string(p.raw_data.size()) +
                          " bytes of raw_data but its dims " + ShapeToString(p.dims) + " need " +
                          std::to_string(n * esize));
    }
    Tensor t(dtype, p.dims);
    if (n) std::memcpy(t.raw(), p.raw_data.data(), n * esize);  // little-endian host
    if (dtype == DType::kBool) {  // keep bools canonical (0/1) whatever the file says
      uint8_t* d = t.data<uint8_t>();
      for (size_t i = 0; i < n; ++i) d[i] = d[i] != 0;
    }
    return t;
  }
  // Typed fields, per onnx.proto: which repeated field carries which element type.
  switch (dtype) {
    case DType::kFloat32: {
      if (p.float_data.size() != n) return mismatch(p.float_data.size());
      Tensor t(dtype, p.dims);
      if (n) std::memcpy(t.raw(), p.float_data.data(), n * 4);
      return t;
    }
    case DType::kFloat64: {
      if (p.double_data.size() != n) return mismatch(p.double_data.size());
      Tensor t(dtype, p.dims);
      if (n) std::memcpy(t.raw(), p.double_data.data(), n * 8);
      return t;
    }
    case DType::kInt64: {
      if (p.int64_data.size() != n) return mismatch(p.int64_data.size());
      Tensor t(dtype, p.dims);
      if (n) std::memcpy(t.raw(), p.int64_data.data(), n * 8);
      return t;
    }
    case DType::kUInt32:
    case DType::kUInt64: {
      if (p.uint64_data.size() != n) return mismatch(p.uint64_data.size());
      Tensor t(dtype, p.dims);
      if (dtype == DType::kUInt32)
        CopyConvert<uint32_t>(p.uint64_data, &t);
      else
        CopyConvert<uint64_t>(p.uint64_data, &t);
      return t;
    }
    default: {
      // int32, int16, int8, uint16, uint8, bool, float16 travel in int32_data.
      if (p.int32_data.size() != n) return mismatch(p.int32_data.size());
      Tensor t(dtype, p.dims);
      switch (dtype) {
        case DType::kInt32:
          CopyConvert<int32_t>(p.int32_data, &t);
          break;
        case DType::kInt16:
          CopyConvert<int16_t>(p.int32_data, &t);
          break;
        case DType::kInt8:
          CopyConvert<int8_t>(p.int32_data, &t);
          break;
        case DType::kUInt16:
        case DType::kFloat16:
          CopyConvert<uint16_t>(p.int32_data, &t);
          break;
        case DType::kUInt8:
          CopyConvert<uint8_t>(p.int32_data, &t);
          break;
        case DType::kBool: {
          uint8_t* d = t.data<uint8_t>();
          for (size_t i = 0; i < n; ++i) d[i] = p.int32_data[i] != 0;
          break;
        }
        default:
          return Internal("unhandled dtype in TensorFromProto");
      }
      return t;
    }
  }
}

}  // namespace onnx

Result<Tensor> ReadTensorProto(const std::string& bytes, std::string* name) {
  onnx::TensorProto proto;
  RETURN_IF_ERROR(onnx::ParseTensorProto(bytes, &proto));
  try {
    ASSIGN_OR_RETURN(Tensor t, onnx::TensorFromProto(proto));
    if (name) *name = proto.name;
    return t;
  } catch (const std::bad_alloc&) {
    return InvalidInput("tensor too large to allocate");
  }
}

std::string WriteTensorProto(const Tensor& t, const std::string& name) {
  onnx::WireWriter w;
  for (int64_t d : t.shape()) w.Int64Field(1, d);
  w.Int64Field(2, static_cast<int64_t>(t.dtype()));
  if (t.dtype() == DType::kString) {
    for (const std::string& s : t.strings()) w.BytesField(6, s);
  }
  if (!name.empty()) w.BytesField(8, name);
  if (t.dtype() != DType::kString && t.defined()) {
    w.BytesField(9, std::string_view(static_cast<const char*>(t.raw()), t.nbytes()));
  }
  return std::move(w).str();
}

}  // namespace serveml::engine
