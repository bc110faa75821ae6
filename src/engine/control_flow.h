// Control flow: If, Loop and Scan, whose bodies are subgraphs (GraphProto attributes).
//
// A subgraph is compiled at load into a nested graph by the same compile step as the main
// graph (model.cc: value slots, topological order, kernels, constant folding, inference,
// release points), so its operators are checked and folded like any other. A subgraph may
// use values of enclosing scopes by name (outer-scope capture): the compile step of the
// enclosing graph collects those names (SubgraphCaptures) and appends them to the node's
// inputs as implicit inputs, after the declared ones, so the enclosing graph orders the node
// after their producers and keeps them alive until the node has run. Captured values that
// are constants there are constants of the nested graph too; the others become extra
// inputs of the nested graph, after its declared inputs.
//
// Only tensor values are supported: sequence- and optional-typed subgraph inputs and
// outputs are refused at load with an Unsupported error naming the type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/engine.h"
#include "engine/onnx/onnx_proto.h"

namespace serveml::engine {

// Deepest nesting of subgraphs a model may use (the main graph is level 0). Deeper models
// are refused at load (hostile files could otherwise recurse without bound).
inline constexpr int kMaxSubgraphDepth = 16;

// Total bytes one Loop or Scan node may accumulate in its scan outputs during a run; a
// run that would exceed it fails with an InvalidInput error naming the output.
inline constexpr size_t kMaxScanOutputBytes = size_t{1} << 30;
// Wall-clock budget, in seconds, of the Loop and Scan iterations of one run (the outermost
// Loop/Scan starts it; nested ones share it): a Loop that its trip count and condition do
// not stop, or a huge Scan (a broken or hostile model), fails with an error naming the node
// instead of holding a request thread forever. SERVEML_ENGINE_LOOP_SECONDS (a positive
// number) overrides it.
inline constexpr double kDefaultLoopSeconds = 30.0;

// What a factory of a node with subgraphs needs from the graph that holds the node
// (KernelInit::scope).
struct SubgraphScope {
  const std::map<std::string, int64_t>* opsets = nullptr;  // the model's opset imports
  int depth = 0;  // nesting level of the graph that holds the node (0: the main graph)
  // Names of the node's implicit inputs (SubgraphCaptures), in order. In KernelContext
  // and KernelInit::const_inputs they follow the node's declared inputs.
  std::span<const std::string> implicit_inputs;
};

// The names the subgraphs of `node` use but do not define (directly or in subgraphs nested
// in them), in first-use order, without duplicates. Empty for nodes without subgraphs.
// `depth` is the nesting level of the graph holding the node; InvalidInput when subgraphs
// nest deeper than kMaxSubgraphDepth.
Status SubgraphCaptures(const onnx::NodeProto& node, int depth, std::vector<std::string>* names);

// The free names of one graph (see SubgraphCaptures).
Status GraphCaptures(const onnx::GraphProto& graph, int depth, std::vector<std::string>* names);

// Compiles `graph` as a nested graph at nesting level `depth` (model.cc). Its inputs() are
// the graph's declared inputs followed by the entries of `captured` whose
// `captured_consts` entry is null; the others are constants of the nested graph. Running it
// (Model::Run) from inside a kernel takes intermediates from the enclosing run's arena.
Result<std::shared_ptr<const Model>> CompileSubgraph(
    const onnx::GraphProto& graph, const std::map<std::string, int64_t>& opsets, int depth,
    std::span<const std::string> captured, std::span<const Tensor* const> captured_consts);

}  // namespace serveml::engine
