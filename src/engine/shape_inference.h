// Static shape and element-type inference, run once at load over the compiled graph.
//
// Every value gets an element type and a shape that may be partly or wholly unknown:
// declared graph inputs seed it (named dims such as "N" become symbolic dims), constants
// (initializers and folded values) are exact, and per-operator rules derive node outputs.
// Operators without a rule, or whose inputs are too unknown, give unknown outputs: inference
// never rejects a model the kernels would run, except where an operator's input element
// types certainly differ and its kernel rejects that on every run (reported at load, naming
// the node). The result drives the static memory plan (model.cc).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/onnx/onnx_proto.h"

namespace serveml::engine {

// Dim encoding in ValueType::dims.
constexpr int64_t kUnknownDim = -1;
// Symbolic dims are <= kFirstSymbolicDim; equal values denote the same run-time size.
constexpr int64_t kFirstSymbolicDim = -2;

struct ValueType {
  DType dtype = DType::kUndefined;  // kUndefined: unknown
  bool has_rank = false;            // false: rank unknown (dims empty)
  std::vector<int64_t> dims;        // >= 0 known, kUnknownDim, or symbolic

  // Rank known and every dim a known number.
  bool IsStatic() const;
  // Bytes of a static numeric value, or -1 (unknown shape, string or unknown type).
  int64_t StaticBytes() const;
  // "float32[N0, 3]", "?[?]" (symbolic dims print as N<k>, unknown as ?), "?" for no rank.
  std::string ToString() const;
};

// One node to infer. Spans and pointers must stay valid during InferShapes.
struct InferNode {
  const onnx::NodeProto* node;
  std::string_view domain;  // normalised: "" for ai.onnx
  int64_t opset;
  std::span<const int32_t> inputs;   // value ids, -1 for an omitted optional input
  std::span<const int32_t> outputs;  // value ids
  std::string_view label;            // "node 'x' (Op)" for messages
};

// Infers the outputs of `nodes` (in topological order) into `values`, indexed by value id.
// The caller presets the entries of graph inputs; `constants[id]` is defined for values
// known at load, whose entries are filled from the tensors. Returns InvalidInput naming the
// node when input element types certainly mismatch for an operator that requires them
// equal (e.g. Add of float32 and float64); `values` is complete otherwise.
Status InferShapes(std::span<const InferNode> nodes, std::span<const Tensor> constants,
                   std::vector<ValueType>* values);

}  // namespace serveml::engine
