// The subset of onnx.proto (and onnx-ml.proto) the engine reads, as plain structs, and the
// parsers that fill them from wire-format bytes (see wire.h). Field numbers follow
// onnx/onnx-ml.proto of onnx 1.20.
//
// Ownership: parsed structs own their strings and numeric arrays, except
// TensorProto::raw_data, which is a view into the buffer given to the parser; that buffer
// must outlive the struct (the engine converts tensors to core Tensors before returning from
// a load).
//
// Hostile input: parsers never read out of bounds, reject nesting deeper than
// kMaxNestingDepth, and allocate at most a constant factor of the input size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace serveml::engine::onnx {

// Graph-in-attribute-in-node-in-graph and TypeProto nesting limit.
inline constexpr int kMaxNestingDepth = 32;

struct TensorProto {
  std::vector<int64_t> dims;
  int32_t data_type = 0;
  std::vector<float> float_data;
  std::vector<int32_t> int32_data;
  std::vector<std::string> string_data;
  std::vector<int64_t> int64_data;
  std::vector<double> double_data;
  std::vector<uint64_t> uint64_data;
  std::string_view raw_data;  // view into the parsed buffer
  bool has_raw_data = false;
  std::string name;
  int32_t data_location = 0;  // 1 = EXTERNAL
  bool has_segment = false;
};

struct TensorShapeDim {
  bool has_value = false;
  int64_t value = 0;
  std::string param;  // symbolic name, if any
};

struct TypeProto {
  enum class Kind { kUnset, kTensor, kSequence, kMap, kOptional, kSparseTensor, kOpaque };
  Kind kind = Kind::kUnset;
  int32_t elem_type = 0;  // tensor / sparse tensor element type
  bool has_shape = false;
  std::vector<TensorShapeDim> dims;
  int32_t map_key_type = 0;
  // Sequence / optional element type, or map value type.
  std::shared_ptr<TypeProto> elem;

  // "tensor(float)", "seq(map(int64,tensor(float)))", ... for messages.
  std::string ToString() const;
};

struct ValueInfoProto {
  std::string name;
  bool has_type = false;
  TypeProto type;
};

struct GraphProto;

struct AttributeProto {
  // AttributeProto.AttributeType values.
  enum Type : int32_t {
    kUndefined = 0,
    kFloat = 1,
    kInt = 2,
    kString = 3,
    kTensor = 4,
    kGraph = 5,
    kFloats = 6,
    kInts = 7,
    kStrings = 8,
    kTensors = 9,
    kGraphs = 10,
    kSparseTensor = 11,
    kSparseTensors = 12,
    kTypeProto = 13,
    kTypeProtos = 14,
  };
  std::string name;
  std::string ref_attr_name;
  int32_t type = kUndefined;  // inferred from the fields present when the file omits it
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::shared_ptr<TensorProto> t;
  std::shared_ptr<GraphProto> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<TensorProto> tensors;
  std::vector<std::shared_ptr<GraphProto>> graphs;
};

// "FLOAT", "INTS", ... for messages.
std::string_view AttributeTypeName(int32_t type);

struct NodeProto {
  std::vector<std::string> input;
  std::vector<std::string> output;
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<AttributeProto> attribute;
};

struct GraphProto {
  std::vector<NodeProto> node;
  std::string name;
  std::vector<TensorProto> initializer;
  int64_t sparse_initializer_count = 0;
  std::string doc_string;
  std::vector<ValueInfoProto> input;
  std::vector<ValueInfoProto> output;
  std::vector<ValueInfoProto> value_info;
};

struct ModelProto {
  int64_t ir_version = 0;
  std::vector<std::pair<std::string, int64_t>> opset_import;  // (domain, version)
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  bool has_graph = false;
  GraphProto graph;
  std::vector<std::pair<std::string, std::string>> metadata_props;
  int64_t function_count = 0;
};

// Parsers. Errors are InvalidInput ("malformed protobuf: ... at byte N").
Status ParseModelProto(std::string_view bytes, ModelProto* out);
Status ParseGraphProto(std::string_view bytes, GraphProto* out, int depth = 0);
Status ParseTensorProto(std::string_view bytes, TensorProto* out);

}  // namespace serveml::engine::onnx
