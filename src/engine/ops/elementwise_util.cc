#include "engine/ops/elementwise_util.h"

namespace serveml::engine {

Result<std::vector<int64_t>> ReadInt64s(const Tensor& t, const char* what) {
  if (t.rank() > 1) {
    return InvalidInput(std::string(what) + " must be a 0-D or 1-D tensor, got shape " +
                        ShapeToString(t.shape()));
  }
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kInt64) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int64_t>()[i];
  } else if (t.dtype() == DType::kInt32) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t.data<int32_t>()[i];
  } else {
    return InvalidInput(std::string(what) + " must be int64 or int32, got " +
                        std::string(DTypeName(t.dtype())));
  }
  return v;
}

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

Status SameDType(const Tensor* a, const Tensor* b, const char* op) {
  if (!a || !b) return InvalidInput(std::string(op) + " needs two inputs");
  if (a->dtype() != b->dtype()) {
    return InvalidInput(std::string(op) + " inputs have different element types (" +
                        std::string(DTypeName(a->dtype())) + " and " +
                        std::string(DTypeName(b->dtype())) + ")");
  }
  return Status::Ok();
}

}  // namespace serveml::engine
