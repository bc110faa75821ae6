// Conversion between parsed ONNX TensorProto messages and core Tensors.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/onnx/onnx_proto.h"

namespace serveml::engine::onnx {

// Upper bound on the elements of any one tensor the engine creates (initializer, constant
// or intermediate; 2^28 = 1 GiB of float32): a guard against hostile shapes such as a
// broadcast of [46000, 1] by [1, 46000], far above any real classic-ML or small-NN model.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 28;

// Builds a Tensor from a TensorProto, validating dims against the amount of data present.
// Errors: InvalidInput (malformed / inconsistent), Unsupported (external data, sparse
// segments, element types outside core DType such as bfloat16 or float8).
Result<Tensor> TensorFromProto(const TensorProto& proto);

// ONNX name of an element type, e.g. "FLOAT", "BFLOAT16" (for messages).
std::string OnnxTypeName(int32_t data_type);

}  // namespace serveml::engine::onnx
