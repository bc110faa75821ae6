// GraphBuilder: builds an ONNX(-ML) ModelProto in memory and serializes it with the
// engine's own protobuf writer. Importers use it to translate scikit-learn, XGBoost and
// LightGBM models into the canonical ONNX form that the engine runs and users download.
//
// Not thread safe; one builder per import.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace serveml::importers {

// One attribute value. Exactly one of the members is meaningful, chosen by `type`.
struct OnnxAttribute {
  enum class Type { kFloat = 1, kInt = 2, kString = 3, kTensor = 4, kFloats = 6, kInts = 7, kStrings = 8 };
  std::string name;
  Type type = Type::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

struct OnnxNode {
  std::string op_type;
  std::string domain;  // "" = ai.onnx, "ai.onnx.ml"
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<OnnxAttribute> attributes;

  OnnxNode& Attr(std::string name, float v);
  OnnxNode& Attr(std::string name, int64_t v);
  OnnxNode& Attr(std::string name, std::string v);
  OnnxNode& Attr(std::string name, std::vector<float> v);
  OnnxNode& Attr(std::string name, std::vector<int64_t> v);
  OnnxNode& Attr(std::string name, std::vector<std::string> v);
  OnnxNode& Attr(std::string name, Tensor v);
};

class GraphBuilder {
 public:
  // Graph inputs and outputs. A negative dim is dynamic (written as dim_param "N").
  void AddInput(const std::string& name, DType dtype, std::vector<int64_t> shape);
  void AddOutput(const std::string& name, DType dtype, std::vector<int64_t> shape);
  // An output of type seq(map(int64|string, float)), as ZipMap produces.
  void AddZipMapOutput(const std::string& name, bool int_keys);
  void AddInitializer(const std::string& name, const Tensor& value);
  // Appends a node; the reference stays valid until the next AddNode.
  OnnxNode& AddNode(std::string op_type, std::vector<std::string> inputs,
                    std::vector<std::string> outputs, std::string domain = "");
  // A value name not used before, e.g. Unique("scores") -> "scores_3".
  std::string Unique(const std::string& prefix);

  void SetGraphName(std::string name) { graph_name_ = std::move(name); }
  void SetProducer(std::string name, std::string version) {
    producer_name_ = std::move(name);
    producer_version_ = std::move(version);
  }
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void SetOpset(const std::string& domain, int64_t version) { opsets_[domain] = version; }

  // Serialized ModelProto (IR version 8; opsets default to ai.onnx 17 and, when any
  // ai.onnx.ml node is present, ai.onnx.ml 3).
  std::string Serialize() const;

 private:
  struct ValueInfo {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    int zipmap = 0;  // 0 = tensor, 1 = seq(map(int64,float)), 2 = seq(map(string,float))
  };
  std::vector<ValueInfo> inputs_, outputs_;
  std::vector<std::pair<std::string, Tensor>> initializers_;
  std::vector<OnnxNode> nodes_;
  std::map<std::string, int64_t> opsets_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, int> counters_;
  std::string graph_name_ = "serveml";
  std::string producer_name_ = "serveml";
  std::string producer_version_ = SERVEML_VERSION;
};

}  // namespace serveml::importers
