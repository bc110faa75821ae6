// Test helper: builds ONNX protobuf bytes by hand (field numbers from onnx.proto) so unit
// tests can make tiny models without Python. Header-only.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/onnx/wire.h"

namespace serveml::engine::testing {

using onnx::WireType;
using onnx::WireWriter;

inline std::string AttrInt(const std::string& name, int64_t v) {
  WireWriter w;
  w.BytesField(1, name);
  w.Int64Field(3, v);
  w.Int64Field(20, 2);
  return std::move(w).str();
}

inline std::string AttrFloat(const std::string& name, float v) {
  WireWriter w;
  w.BytesField(1, name);
  w.FloatField(2, v);
  w.Int64Field(20, 1);
  return std::move(w).str();
}

inline std::string AttrString(const std::string& name, const std::string& v) {
  WireWriter w;
  w.BytesField(1, name);
  w.BytesField(4, v);
  w.Int64Field(20, 3);
  return std::move(w).str();
}

inline std::string AttrInts(const std::string& name, const std::vector<int64_t>& v) {
  WireWriter w;
  w.BytesField(1, name);
  for (int64_t x : v) w.Int64Field(8, x);
  w.Int64Field(20, 7);
  return std::move(w).str();
}

inline std::string AttrFloats(const std::string& name, const std::vector<float>& v) {
  WireWriter w;
  w.BytesField(1, name);
  for (float x : v) w.FloatField(7, x);
  w.Int64Field(20, 6);
  return std::move(w).str();
}

inline std::string AttrStrings(const std::string& name, const std::vector<std::string>& v) {
  WireWriter w;
  w.BytesField(1, name);
  for (const auto& x : v) w.BytesField(9, x);
  w.Int64Field(20, 8);
  return std::move(w).str();
}

// A float32 TensorProto with raw_data.
inline std::string FloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<float>& values) {
  WireWriter w;
  for (int64_t d : dims) w.Int64Field(1, d);
  w.Int64Field(2, 1);
  w.BytesField(8, name);
  w.BytesField(9, std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return std::move(w).str();
}

inline std::string Int64Tensor(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<int64_t>& values) {
  WireWriter w;
  for (int64_t d : dims) w.Int64Field(1, d);
  w.Int64Field(2, 7);
  w.BytesField(8, name);
  for (int64_t v : values) w.Int64Field(7, v);  // typed field this time
  return std::move(w).str();
}

inline std::string AttrTensor(const std::string& name, const std::string& tensor) {
  WireWriter w;
  w.BytesField(1, name);
  w.BytesField(5, tensor);
  w.Int64Field(20, 4);
  return std::move(w).str();
}

// dims: -1 becomes the symbolic dim "N".
inline std::string ValueInfo(const std::string& name, int32_t elem,
                             const std::vector<int64_t>& dims) {
  WireWriter shape;
  for (int64_t d : dims) {
    WireWriter dim;
    if (d < 0)
      dim.BytesField(2, "N");
    else
      dim.Int64Field(1, d);
    shape.BytesField(1, dim.str());
  }
  WireWriter tt;
  tt.Int64Field(1, elem);
  tt.BytesField(2, shape.str());
  WireWriter type;
  type.BytesField(1, tt.str());
  WireWriter w;
  w.BytesField(1, name);
  w.BytesField(2, type.str());
  return std::move(w).str();
}

inline std::string Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs,
                        const std::vector<std::string>& attrs = {}, const std::string& domain = "",
                        const std::string& name = "") {
  WireWriter w;
  for (const auto& i : inputs) w.BytesField(1, i);
  for (const auto& o : outputs) w.BytesField(2, o);
  if (!name.empty()) w.BytesField(3, name);
  w.BytesField(4, op);
  for (const auto& a : attrs) w.BytesField(5, a);
  if (!domain.empty()) w.BytesField(7, domain);
  return std::move(w).str();
}

inline std::string Graph(const std::vector<std::string>& nodes,
                         const std::vector<std::string>& initializers,
                         const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs) {
  WireWriter w;
  for (const auto& n : nodes) w.BytesField(1, n);
  w.BytesField(2, "test_graph");
  for (const auto& t : initializers) w.BytesField(5, t);
  for (const auto& i : inputs) w.BytesField(11, i);
  for (const auto& o : outputs) w.BytesField(12, o);
  return std::move(w).str();
}

inline std::string ModelBytes(const std::string& graph, int64_t opset = 17, int64_t ml_opset = 1) {
  WireWriter w;
  w.Int64Field(1, 8);
  w.BytesField(2, "unit-test");
  w.BytesField(7, graph);
  WireWriter op;
  op.BytesField(1, "");
  op.Int64Field(2, opset);
  w.BytesField(8, op.str());
  WireWriter ml;
  ml.BytesField(1, "ai.onnx.ml");
  ml.Int64Field(2, ml_opset);
  w.BytesField(8, ml.str());
  return std::move(w).str();
}

}  // namespace serveml::engine::testing
