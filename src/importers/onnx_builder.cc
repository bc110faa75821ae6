#include "importers/onnx_builder.h"

#include <cstring>

#include "engine/engine.h"
#include "engine/onnx/wire.h"

namespace serveml::importers {

using engine::onnx::WireType;
using engine::onnx::WireWriter;

namespace {

OnnxAttribute Make(std::string name, OnnxAttribute::Type t) {
  OnnxAttribute a;
  a.name = std::move(name);
  a.type = t;
  return a;
}

std::string TypeProto(DType dtype, const std::vector<int64_t>& shape) {
  WireWriter shape_w;
  for (int64_t d : shape) {
    WireWriter dim;
    if (d >= 0) dim.Int64Field(1, d);
    else dim.BytesField(2, "N");
    shape_w.BytesField(1, dim.str());
  }
  WireWriter tensor;
  tensor.VarintField(1, static_cast<uint64_t>(dtype));
  tensor.BytesField(2, shape_w.str());
  WireWriter type;
  type.BytesField(1, tensor.str());
  return std::move(type).str();
}

std::string ZipMapTypeProto(bool int_keys) {
  WireWriter value;  // TypeProto of float tensor (no shape)
  {
    WireWriter tensor;
    tensor.VarintField(1, static_cast<uint64_t>(DType::kFloat32));
    value.BytesField(1, tensor.str());
  }
  WireWriter map;
  map.VarintField(1, static_cast<uint64_t>(int_keys ? DType::kInt64 : DType::kString));
  map.BytesField(2, value.str());
  WireWriter map_type;
  map_type.BytesField(5, map.str());
  WireWriter seq;
  seq.BytesField(1, map_type.str());
  WireWriter type;
  type.BytesField(4, seq.str());
  return std::move(type).str();
}

std::string AttributeProto(const OnnxAttribute& a) {
  WireWriter w;
  w.BytesField(1, a.name);
  switch (a.type) {
    case OnnxAttribute::Type::kFloat: w.FloatField(2, a.f); break;
    case OnnxAttribute::Type::kInt: w.Int64Field(3, a.i); break;
    case OnnxAttribute::Type::kString: w.BytesField(4, a.s); break;
    case OnnxAttribute::Type::kTensor: w.BytesField(5, engine::WriteTensorProto(a.t, "")); break;
    case OnnxAttribute::Type::kFloats: {
      WireWriter packed;
      for (float f : a.floats) {
        uint32_t bits;
        static_assert(sizeof bits == sizeof f);
        std::memcpy(&bits, &f, sizeof f);
        packed.Fixed32(bits);
      }
      w.BytesField(7, packed.str());
      break;
    }
    case OnnxAttribute::Type::kInts: {
      WireWriter packed;
      for (int64_t v : a.ints) packed.Varint(static_cast<uint64_t>(v));
      w.BytesField(8, packed.str());
      break;
    }
    case OnnxAttribute::Type::kStrings:
      for (const auto& s : a.strings) w.BytesField(9, s);
      break;
  }
  w.VarintField(20, static_cast<uint64_t>(a.type));
  return std::move(w).str();
}

}  // namespace

OnnxNode& OnnxNode::Attr(std::string n, float v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kFloat);
  a.f = v;
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, int64_t v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kInt);
  a.i = v;
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, std::string v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kString);
  a.s = std::move(v);
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, std::vector<float> v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kFloats);
  a.floats = std::move(v);
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, std::vector<int64_t> v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kInts);
  a.ints = std::move(v);
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, std::vector<std::string> v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kStrings);
  a.strings = std::move(v);
  attributes.push_back(std::move(a));
  return *this;
}
OnnxNode& OnnxNode::Attr(std::string n, Tensor v) {
  auto a = Make(std::move(n), OnnxAttribute::Type::kTensor);
  a.t = std::move(v);
  attributes.push_back(std::move(a));
  return *this;
}

void GraphBuilder::AddInput(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  inputs_.push_back({name, dtype, std::move(shape), 0});
}
void GraphBuilder::AddOutput(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  outputs_.push_back({name, dtype, std::move(shape), 0});
}
void GraphBuilder::AddZipMapOutput(const std::string& name, bool int_keys) {
  outputs_.push_back({name, DType::kFloat32, {}, int_keys ? 1 : 2});
}
void GraphBuilder::AddInitializer(const std::string& name, const Tensor& value) {
  initializers_.emplace_back(name, value);
}

OnnxNode& GraphBuilder::AddNode(std::string op_type, std::vector<std::string> inputs,
                                std::vector<std::string> outputs, std::string domain) {
  OnnxNode n;
  n.name = Unique(op_type);
  n.op_type = std::move(op_type);
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.domain = std::move(domain);
  nodes_.push_back(std::move(n));
  return nodes_.back();
}

std::string GraphBuilder::Unique(const std::string& prefix) {
  int n = counters_[prefix]++;
  return n == 0 ? prefix : prefix + "_" + std::to_string(n);
}

std::string GraphBuilder::Serialize() const {
  WireWriter graph;
  for (const auto& n : nodes_) {
    WireWriter node;
    for (const auto& i : n.inputs) node.BytesField(1, i);
    for (const auto& o : n.outputs) node.BytesField(2, o);
    node.BytesField(3, n.name);
    node.BytesField(4, n.op_type);
    for (const auto& a : n.attributes) node.BytesField(5, AttributeProto(a));
    if (!n.domain.empty()) node.BytesField(7, n.domain);
    graph.BytesField(1, node.str());
  }
  graph.BytesField(2, graph_name_);
  for (const auto& [name, t] : initializers_) graph.BytesField(5, engine::WriteTensorProto(t, name));
  auto value_info = [](const ValueInfo& v) {
    WireWriter w;
    w.BytesField(1, v.name);
    w.BytesField(2, v.zipmap ? ZipMapTypeProto(v.zipmap == 1) : TypeProto(v.dtype, v.shape));
    return std::move(w).str();
  };
  for (const auto& v : inputs_) graph.BytesField(11, value_info(v));
  for (const auto& v : outputs_) graph.BytesField(12, value_info(v));

  std::map<std::string, int64_t> opsets = opsets_;
  if (!opsets.count("")) opsets[""] = 17;
  bool any_ml = false;
  for (const auto& n : nodes_) any_ml |= n.domain == "ai.onnx.ml";
  if (any_ml && !opsets.count("ai.onnx.ml")) opsets["ai.onnx.ml"] = 3;

  WireWriter model;
  model.Int64Field(1, 8);  // ir_version
  model.BytesField(2, producer_name_);
  model.BytesField(3, producer_version_);
  model.BytesField(7, graph.str());
  for (const auto& [domain, version] : opsets) {
    WireWriter op;
    if (!domain.empty()) op.BytesField(1, domain);
    op.Int64Field(2, version);
    model.BytesField(8, op.str());
  }
  for (const auto& [k, v] : metadata_) {
    WireWriter e;
    e.BytesField(1, k);
    e.BytesField(2, v);
    model.BytesField(14, e.str());
  }
  return std::move(model).str();
}

}  // namespace serveml::importers
