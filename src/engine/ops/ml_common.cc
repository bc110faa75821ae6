// Attribute and shape helpers shared by the ONNX-ML operators (ml_*.cc).
#include "engine/ops/ml_common.h"

#include <climits>

#include "engine/onnx/tensor_proto.h"

namespace serveml::engine {

Result<std::optional<Tensor>> TensorAttr(const onnx::NodeProto& node, std::string_view name) {
  for (const auto& a : node.attribute) {
    if (a.name != name) continue;
    if (a.type != onnx::AttributeProto::kTensor || !a.t) {
      return InvalidInput("attribute '" + a.name + "' must be TENSOR, got " +
                          std::string(onnx::AttributeTypeName(a.type)));
    }
    auto t = onnx::TensorFromProto(*a.t);
    if (!t.ok()) return InvalidInput("attribute '" + a.name + "': " + t.status().message());
    return std::optional<Tensor>(std::move(t).value());
  }
  return std::optional<Tensor>();
}

Result<RealList> ReadRealList(const onnx::NodeProto& node, std::string_view floats_name,
                              std::string_view tensor_name) {
  RealList out;
  const onnx::AttributeProto* floats = nullptr;
  for (const auto& a : node.attribute) {
    if (!floats_name.empty() && a.name == floats_name) floats = &a;
  }
  std::optional<Tensor> tensor;
  if (!tensor_name.empty()) {
    ASSIGN_OR_RETURN(tensor, TensorAttr(node, tensor_name));
  }
  if (floats && tensor) {
    return InvalidInput("attributes '" + std::string(floats_name) + "' and '" +
                        std::string(tensor_name) + "' are mutually exclusive");
  }
  if (floats) {
    if (floats->type != onnx::AttributeProto::kFloats) {
      return InvalidInput("attribute '" + floats->name + "' must be FLOATS, got " +
                          std::string(onnx::AttributeTypeName(floats->type)));
    }
    out.present = true;
    out.values.assign(floats->floats.begin(), floats->floats.end());
  } else if (tensor) {
    out.present = true;
    if (tensor->dtype() == DType::kFloat64) {
      out.is_double = true;
      out.values.assign(tensor->data<double>(), tensor->data<double>() + tensor->numel());
    } else if (tensor->dtype() == DType::kFloat32) {
      out.values.assign(tensor->data<float>(), tensor->data<float>() + tensor->numel());
    } else {
      return InvalidInput("attribute '" + std::string(tensor_name) +
                          "' must be a float or double tensor, got " +
                          std::string(DTypeName(tensor->dtype())));
    }
  }
  return out;
}

Status MlRowsAndFeatures(const Tensor& x, std::string_view op, int64_t* rows, int64_t* features) {
  if (x.rank() == 0 || x.rank() > 2) {
    return InvalidInput(std::string(op) + " input must be 1-D or 2-D, got shape " +
                        ShapeToString(x.shape()));
  }
  *rows = x.rank() == 1 ? 1 : x.dim(0);
  *features = x.rank() == 1 ? x.dim(0) : x.dim(1);
  if (*rows > INT_MAX || *features > INT_MAX) {
    return InvalidInput(std::string(op) + " input is too large");
  }
  return Status::Ok();
}

}  // namespace serveml::engine
