// Model::LoadOnnx: parse, compile (value slots, topological order, one kernel per node from
// the operator table, constant folding, shape and type inference, memory plan) and run.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "engine/arena.h"
#include "engine/control_flow.h"
#include "engine/engine.h"
#include "engine/kernel.h"
#include "engine/model_internal.h"
#include "engine/onnx/onnx_proto.h"
#include "engine/onnx/tensor_proto.h"
#include "engine/ops/op_table.h"
#include "engine/ops/ops.h"
#include "engine/shape_inference.h"

namespace serveml::engine {
namespace {

// Bounds of the static memory plan: one value (the largest tensor NewTensor accepts, at 8
// bytes per element) and the blocks reserved up front for a new arena.
constexpr int64_t kMaxPlannedValueBytes = onnx::kMaxTensorElements * 8;
constexpr size_t kMaxPlannedBytes = size_t{256} << 20;

struct CompiledNode {
  KernelPtr kernel;
  std::vector<int32_t> inputs;   // value ids, -1 for an omitted optional input
  std::vector<int32_t> outputs;  // value ids (scratch ids for unnamed outputs)
  std::vector<int32_t> release;  // value ids whose last consumer is this node
  std::string label;             // "node 'name' (OpType)" for messages
  int32_t proto_index = -1;      // index in GraphProto.node
  bool may_alias = false;        // the kernel may return its first input's buffer
  // The kernel writes every element of every tensor it allocates, so arena buffers need
  // no clearing (ops/elementwise.cc: the unary and binary arithmetic kernels).
  bool overwrites = false;
  // False when the node produces a graph output: its outputs (and any scratch tensors of
  // its kernel) come from the heap, so results handed to the caller never pin arena blocks.
  bool use_arena = true;
};

// Base cap on the free bytes one arena keeps (it grows with the bytes a run needs).
constexpr size_t kArenaBaseCapBytes = size_t{32} << 20;
// Free arena blocks unused for this many runs go back to the heap.
constexpr uint64_t kArenaMaxIdleRuns = 64;

// SERVEML_ENGINE_ARENA=0 turns the arena off (every tensor from the heap): an escape hatch
// for diagnosing memory issues and for measuring what the arena saves.
bool ArenaEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SERVEML_ENGINE_ARENA");
    return !(v && (std::string_view(v) == "0" || std::string_view(v) == "off"));
  }();
  return enabled;
}

// Nesting level of the runs in progress on this thread (control flow runs nested graphs
// from inside a kernel) and the arena of the outermost one.
thread_local size_t tls_run_depth = 0;
thread_local TensorArena* tls_run_arena = nullptr;
// Deadline of the outermost run on this thread (RunOptions::deadline_ns; 0 = none), checked
// between nodes at every nesting level.
thread_local int64_t tls_run_deadline = 0;
thread_local std::string_view tls_deadline_label;

class OnnxModel final : public Model {
 public:
  ~OnnxModel() override;
  const ModelInfo& info() const override { return info_; }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }
  Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs) const override;
  Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs,
                                  const RunOptions& options) const override;

  // Builds the model from a parsed proto. `model` must stay alive during the call only.
  Status Compile(const onnx::ModelProto& model);
  // Builds a nested graph (a control-flow body, control_flow.h: CompileSubgraph).
  Status CompileNested(const onnx::GraphProto& g, const std::map<std::string, int64_t>& opsets,
                       int depth, std::span<const std::string> captured,
                       std::span<const Tensor* const> captured_consts);

  const ModelPlanInfo& plan_info() const { return plan_info_; }
  TensorArena::Stats ArenaStats() const;
  std::optional<ValueType> InferredType(const std::string& value) const {
    auto it = value_ids_.find(value);
    if (it == value_ids_.end()) return std::nullopt;
    return value_types_[static_cast<size_t>(it->second)];
  }

 private:
  // The compile step proper, shared by the main graph and nested graphs: `captured` (with
  // their constant values, or null) are the enclosing scopes' values a nested graph uses.
  Status CompileGraph(const onnx::GraphProto& g, std::span<const std::string> captured,
                      std::span<const Tensor* const> captured_consts);
  Status CheckInput(size_t i, const Tensor& t) const;
  Result<std::vector<Tensor>> RunImpl(std::span<const Tensor> inputs) const;
  // Shape/type inference over the run sequence; fills value_types_. Load errors for
  // certain element-type mismatches.
  Status InferTypes(const onnx::GraphProto& g);
  // Decides which nodes draw from the arena and simulates a run on the statically known
  // shapes: the block sizes it needs (with reuse after last use) pre-size new arenas.
  void PlanMemory(const std::vector<bool>& is_output);
  // Keeps, for the main graph, every node output's bytes as a constant times a product of
  // the inputs' symbolic dims, so PlannedPeakBytes can evaluate the plan for one run.
  void PlanRunBytes(const onnx::GraphProto& g);
  // A lower bound on the tensor bytes a run on `inputs` holds at once (intermediates plus
  // outputs, freed after their last consumer), from the inferred shapes with the inputs'
  // symbolic dims bound to `inputs`. Values whose size the plan cannot tell count 0.
  int64_t PlannedPeakBytes(std::span<const Tensor> inputs) const;
  int64_t EvaluateRunPlan(std::span<const int64_t> symbols) const;
  // Folds a Relu into its producer (Conv, Gemm, MatMul) when the producer's output feeds
  // only that Relu and is not a graph output, and the producer's kernel accepts
  // (Kernel::FuseRelu): the producer then writes the Relu's output and the Relu node goes.
  void FuseRelu(const onnx::GraphProto& g, const std::vector<bool>& is_output);
  // An idle arena from the pool, or a new pre-sized one.
  std::shared_ptr<TensorArena> AcquireArena() const;
  void ReleaseArena(std::shared_ptr<TensorArena> arena) const;

  ModelInfo info_;
  // Nesting level (0: the main graph) and whether this is a nested graph (control flow).
  int depth_ = 0;
  bool nested_ = false;
  std::vector<TensorInfo> inputs_;
  std::vector<TensorInfo> outputs_;
  size_t num_values_ = 0;
  std::vector<Tensor> constants_;  // by value id; defined only for constants
  std::vector<int32_t> input_ids_;
  std::vector<int32_t> output_ids_;
  std::vector<CompiledNode> nodes_;  // topological order
  size_t max_inputs_ = 0;
  size_t max_outputs_ = 0;
  size_t folded_nodes_ = 0;             // nodes evaluated at load (constant folding)
  std::vector<ValueType> value_types_;  // by value id, from shape inference
  std::vector<size_t> planned_blocks_;  // block sizes the static plan needs at its peak
  // PlanRunBytes: by value id, its bytes = constant x the symbols' sizes (constant < 0: not
  // known to the plan); by symbol index (kFirstSymbolicDim - dim), the (input, axis) that
  // binds it; the peak when no planned value depends on a symbol (-1 otherwise).
  struct PlannedBytes {
    int64_t constant = -1;
    std::vector<int32_t> symbols;
  };
  std::vector<PlannedBytes> planned_value_bytes_;
  std::vector<std::pair<int32_t, int32_t>> symbol_sources_;
  int64_t static_peak_bytes_ = 0;
  std::unordered_map<std::string, int32_t> value_ids_;  // by value name
  ModelPlanInfo plan_info_;
  // Arenas not in use by a run. One per concurrent run at most; dropped with the model
  // (buffers still held by callers keep their arena alive until released).
  mutable std::mutex arenas_mu_;
  mutable std::vector<std::shared_ptr<TensorArena>> idle_arenas_;
  mutable std::vector<std::weak_ptr<TensorArena>> all_arenas_;
};

std::string NodeLabel(const onnx::NodeProto& n, size_t index) {
  std::string name = n.name.empty() ? "#" + std::to_string(index) : n.name;
  return "node '" + name + "' (" + n.op_type + ")";
}

Status Prefix(const std::string& prefix, const Status& st) {
  return Status(st.code(), prefix + ": " + st.message());
}

TensorInfo InfoFromValueInfo(const onnx::ValueInfoProto& v) {
  TensorInfo info;
  info.name = v.name;
  if (v.has_type && v.type.kind == onnx::TypeProto::Kind::kTensor) {
    if (IsKnownDType(v.type.elem_type)) info.dtype = static_cast<DType>(v.type.elem_type);
    info.has_shape = v.type.has_shape;
    for (const auto& d : v.type.dims) info.shape.push_back(d.has_value ? d.value : -1);
  }
  return info;
}

Status OnnxModel::Compile(const onnx::ModelProto& model) {
  if (!model.has_graph) return InvalidInput("the model has no graph");
  const onnx::GraphProto& g = model.graph;

  info_.ir_version = model.ir_version;
  info_.producer_name = model.producer_name;
  info_.producer_version = model.producer_version;
  info_.graph_name = g.name;
  info_.doc_string = model.doc_string;
  for (const auto& [domain, version] : model.opset_import) {
    info_.opsets[std::string(NormalizeDomain(domain))] = version;
  }
  for (const auto& [k, v] : model.metadata_props) info_.metadata_props[k] = v;
  info_.node_count = static_cast<int64_t>(g.node.size());
  return CompileGraph(g, {}, {});
}

Status OnnxModel::CompileNested(const onnx::GraphProto& g,
                                const std::map<std::string, int64_t>& opsets, int depth,
                                std::span<const std::string> captured,
                                std::span<const Tensor* const> captured_consts) {
  if (depth > kMaxSubgraphDepth) {
    return InvalidInput("subgraphs are nested more than " + std::to_string(kMaxSubgraphDepth) +
                        " levels deep");
  }
  info_.opsets = opsets;
  info_.graph_name = g.name;
  info_.node_count = static_cast<int64_t>(g.node.size());
  depth_ = depth;
  nested_ = true;
  return CompileGraph(g, captured, captured_consts);
}

Status OnnxModel::CompileGraph(const onnx::GraphProto& g, std::span<const std::string> captured,
                               std::span<const Tensor* const> captured_consts) {
  if (g.sparse_initializer_count > 0) {
    return Unsupported("sparse initializers are not supported");
  }

  std::unordered_map<std::string, int32_t> ids;
  std::vector<int32_t> producer;  // by value id: node index, or -1
  auto new_id = [&](const std::string& name, int32_t prod) -> Result<int32_t> {
    if (!name.empty()) {
      auto [it, inserted] = ids.emplace(name, static_cast<int32_t>(producer.size()));
      if (!inserted) return InvalidInput("value '" + name + "' is defined more than once");
    }
    producer.push_back(prod);
    return static_cast<int32_t>(producer.size() - 1);
  };

  // Initializers: constants.
  std::vector<std::pair<int32_t, Tensor>> consts;
  for (const onnx::TensorProto& t : g.initializer) {
    if (t.name.empty()) return InvalidInput("an initializer has no name");
    ASSIGN_OR_RETURN(Tensor value, onnx::TensorFromProto(t));
    ASSIGN_OR_RETURN(int32_t id, new_id(t.name, -1));
    consts.emplace_back(id, std::move(value));
  }
  // Graph inputs that are not initializers.
  for (const onnx::ValueInfoProto& v : g.input) {
    if (ids.count(v.name)) continue;  // an initializer with a default value
    if (v.name.empty()) return InvalidInput("a graph input has no name");
    if (v.has_type && v.type.kind != onnx::TypeProto::Kind::kTensor) {
      return Unsupported("graph input '" + v.name + "' has type " + v.type.ToString() +
                         "; only tensor inputs are supported");
    }
    if (v.has_type && !IsKnownDType(v.type.elem_type)) {
      return Unsupported("graph input '" + v.name + "' has element type " +
                         onnx::OnnxTypeName(v.type.elem_type) + ", which is not supported");
    }
    ASSIGN_OR_RETURN(int32_t id, new_id(v.name, -1));
    input_ids_.push_back(id);
    inputs_.push_back(InfoFromValueInfo(v));
  }
  // A nested graph's values from enclosing scopes: constants there stay constants, the
  // others are inputs after the declared ones (control_flow.h).
  for (size_t k = 0; k < captured.size(); ++k) {
    if (ids.count(captured[k])) continue;
    ASSIGN_OR_RETURN(int32_t id, new_id(captured[k], -1));
    if (captured_consts[k]) {
      consts.emplace_back(id, *captured_consts[k]);
    } else {
      input_ids_.push_back(id);
      TensorInfo info;
      info.name = captured[k];
      inputs_.push_back(std::move(info));
    }
  }
  // Node outputs.
  const size_t num_nodes = g.node.size();
  std::vector<std::vector<int32_t>> node_outputs(num_nodes);
  for (size_t i = 0; i < num_nodes; ++i) {
    for (const std::string& out : g.node[i].output) {
      auto r = new_id(out, static_cast<int32_t>(i));
      if (!r.ok()) return Prefix(NodeLabel(g.node[i], i), r.status());
      node_outputs[i].push_back(*r);
    }
  }
  // Node inputs.
  std::vector<std::vector<int32_t>> node_inputs(num_nodes);
  for (size_t i = 0; i < num_nodes; ++i) {
    for (const std::string& in : g.node[i].input) {
      if (in.empty()) {
        node_inputs[i].push_back(-1);
        continue;
      }
      auto it = ids.find(in);
      if (it == ids.end()) {
        return InvalidInput(NodeLabel(g.node[i], i) + ": input '" + in +
                            "' is not a graph input, an initializer or any node's output");
      }
      node_inputs[i].push_back(it->second);
    }
  }
  // Control flow: the names a node's subgraphs use from this or enclosing scopes become
  // implicit inputs after the declared ones, so the order, release points and memory plan
  // below see them (control_flow.h).
  std::vector<std::vector<std::string>> implicit_inputs(num_nodes);
  for (size_t i = 0; i < num_nodes; ++i) {
    Status st = SubgraphCaptures(g.node[i], depth_, &implicit_inputs[i]);
    if (!st.ok()) return Prefix(NodeLabel(g.node[i], i), st);
    for (const std::string& in : implicit_inputs[i]) {
      auto it = ids.find(in);
      if (it == ids.end()) {
        return InvalidInput(NodeLabel(g.node[i], i) + ": a subgraph uses '" + in +
                            "', which is not a graph input, an initializer or any node's output");
      }
      node_inputs[i].push_back(it->second);
    }
  }

  // Topological order (Kahn), preferring file order among ready nodes.
  std::vector<int32_t> pending(num_nodes, 0);
  std::vector<std::vector<int32_t>> consumers(num_nodes);
  for (size_t i = 0; i < num_nodes; ++i) {
    std::set<int32_t> deps;
    for (int32_t id : node_inputs[i]) {
      if (id >= 0 && producer[id] >= 0) deps.insert(producer[id]);
    }
    pending[i] = static_cast<int32_t>(deps.size());
    for (int32_t d : deps) consumers[d].push_back(static_cast<int32_t>(i));
  }
  std::priority_queue<int32_t, std::vector<int32_t>, std::greater<int32_t>> ready;
  for (size_t i = 0; i < num_nodes; ++i) {
    if (pending[i] == 0) ready.push(static_cast<int32_t>(i));
  }
  std::vector<int32_t> order;
  order.reserve(num_nodes);
  while (!ready.empty()) {
    int32_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int32_t c : consumers[i]) {
      if (--pending[c] == 0) ready.push(c);
    }
  }
  if (order.size() != num_nodes) {
    for (size_t i = 0; i < num_nodes; ++i) {
      if (pending[i] > 0) {
        return InvalidInput("the graph has a cycle through " + NodeLabel(g.node[i], i));
      }
    }
  }

  // Resolve kernels; report every unsupported operator at once.
  std::vector<std::string> unsupported;
  std::set<std::string> unsupported_domains;
  std::vector<const OpTableEntry*> entries(num_nodes, nullptr);
  std::vector<int64_t> opsets(num_nodes, 0);
  for (size_t i = 0; i < num_nodes; ++i) {
    const onnx::NodeProto& n = g.node[i];
    std::string domain(NormalizeDomain(n.domain));
    auto it = info_.opsets.find(domain);
    if (it == info_.opsets.end()) {
      return InvalidInput(NodeLabel(n, i) + " uses domain '" +
                          std::string(DomainDisplayName(domain)) +
                          "', which the model does not import (opset_import)");
    }
    opsets[i] = it->second;
    bool known = false;
    entries[i] = FindOp(domain, n.op_type, it->second, &known);
    if (!entries[i]) {
      std::string m = "'" + n.op_type + "' (domain " + std::string(DomainDisplayName(domain)) +
                      ", opset " + std::to_string(it->second) + ")";
      if (known) m += " [older opset than supported]";
      if (std::find(unsupported.begin(), unsupported.end(), m) == unsupported.end()) {
        unsupported.push_back(m);
      }
      unsupported_domains.insert(domain);
    }
  }
  if (!unsupported.empty()) {
    std::string m = unsupported.size() == 1 ? "unsupported operator " : "unsupported operators ";
    for (size_t k = 0; k < unsupported.size(); ++k) {
      if (k) m += ", ";
      m += unsupported[k];
    }
    for (const std::string& d : unsupported_domains) {
      std::string ops = SupportedOps(d);
      m += "; supported in " + std::string(DomainDisplayName(d)) + ": " +
           (ops.empty() ? std::string("none") : ops);
    }
    return Unsupported(std::move(m));
  }

  num_values_ = producer.size();
  value_ids_ = ids;
  constants_.assign(num_values_, Tensor());
  for (auto& [id, t] : consts) constants_[id] = std::move(t);

  std::vector<const Tensor*> const_ptrs;
  for (int32_t i : order) {
    const onnx::NodeProto& n = g.node[i];
    // A node without outputs cannot influence the graph's outputs (and kernels may assume
    // output 0 exists): drop it.
    if (node_outputs[i].empty()) continue;
    const_ptrs.clear();
    for (int32_t id : node_inputs[i]) {
      const_ptrs.push_back(id >= 0 && constants_[id].defined() ? &constants_[id] : nullptr);
    }
    const SubgraphScope scope{&info_.opsets, depth_, implicit_inputs[i]};
    KernelInit init{n, NormalizeDomain(n.domain), opsets[i], const_ptrs, &scope};
    CompiledNode cn;
    cn.label = NodeLabel(n, static_cast<size_t>(i));
    cn.proto_index = i;
    static const std::set<std::string> kAliasOps = {"Identity",  "Reshape", "Flatten", "Squeeze",
                                                    "Unsqueeze", "Dropout", "ZipMap"};
    cn.may_alias = kAliasOps.count(n.op_type) > 0;
    static const std::set<std::string> kOverwritingOps = {
        "Abs", "Add", "Div", "Exp", "Log", "Mul", "Neg", "Relu", "Sigmoid", "Sqrt", "Sub", "Tanh"};
    cn.overwrites = NormalizeDomain(n.domain).empty() && kOverwritingOps.count(n.op_type) > 0 &&
                    entries[i]->factory == (n.op_type == "Add" || n.op_type == "Sub" ||
                                                    n.op_type == "Mul" || n.op_type == "Div"
                                                ? &MakeBinaryElementwise
                                                : &MakeUnaryElementwise);
    // Conv (ops/conv.cc), Gemm and MatMul (ops/matmul.cc) also write every output element.
    if (NormalizeDomain(n.domain).empty() &&
        ((n.op_type == "Conv" && entries[i]->factory == &MakeConv) ||
         (n.op_type == "Gemm" && entries[i]->factory == &MakeGemm) ||
         (n.op_type == "MatMul" && entries[i]->factory == &MakeMatMul))) {
      cn.overwrites = true;
    }
    auto k = entries[i]->factory(init);
    if (!k.ok()) return Prefix(cn.label, k.status());
    cn.kernel = std::move(k).value();
    cn.inputs = node_inputs[i];
    cn.outputs = node_outputs[i];
    // Constant folding: a default-domain node whose inputs are all constants (initializers
    // or folded outputs) runs once here; its outputs become constants and it leaves the
    // run sequence. Downstream factories then see them as const inputs (e.g. Gemm
    // pre-transposes a folded B).
    // Loop and Scan are not folded: their trip counts are unbounded.
    bool foldable = NormalizeDomain(n.domain).empty() && n.op_type != "Loop" && n.op_type != "Scan";
    for (int32_t id : cn.inputs) {
      if (id >= 0 && !constants_[id].defined()) foldable = false;
    }
    if (foldable) {
      std::vector<Tensor> outs(cn.outputs.size());
      std::vector<Tensor*> out_ptrs;
      for (Tensor& t : outs) out_ptrs.push_back(&t);
      std::vector<const Tensor*> in_ptrs;
      for (int32_t id : cn.inputs) in_ptrs.push_back(id >= 0 ? &constants_[id] : nullptr);
      KernelContext ctx{in_ptrs, out_ptrs};
      Status st = cn.kernel->Run(ctx);
      if (!st.ok()) return Prefix(cn.label, st);
      for (size_t k2 = 0; k2 < outs.size(); ++k2) {
        if (!outs[k2].defined()) return Internal(cn.label + ": folding left an output unset");
        constants_[cn.outputs[k2]] = std::move(outs[k2]);
      }
      ++folded_nodes_;
      continue;
    }
    max_inputs_ = std::max(max_inputs_, cn.inputs.size());
    max_outputs_ = std::max(max_outputs_, cn.outputs.size());
    nodes_.push_back(std::move(cn));
  }

  // Graph outputs.
  std::vector<bool> is_output(num_values_, false);
  for (const onnx::ValueInfoProto& v : g.output) {
    auto it = ids.find(v.name);
    if (it == ids.end()) {
      return InvalidInput("graph output '" + v.name + "' is not produced by the graph");
    }
    const int32_t id = it->second;
    TensorInfo info = InfoFromValueInfo(v);
    const int32_t prod = producer[id];
    if (prod >= 0 && g.node[prod].op_type == "ZipMap" &&
        NormalizeDomain(g.node[prod].domain) == "ai.onnx.ml") {
      const onnx::NodeProto& z = g.node[prod];
      info.is_zipmap = true;
      info.dtype = DType::kFloat32;
      for (const auto& a : z.attribute) {
        if (a.name == "classlabels_int64s") {
          info.zipmap_int_keys = true;
          for (int64_t k : a.ints) info.zipmap_keys.push_back(std::to_string(k));
        } else if (a.name == "classlabels_strings") {
          info.zipmap_keys = a.strings;
        }
      }
      info.has_shape = true;
      info.shape = {-1, static_cast<int64_t>(info.zipmap_keys.size())};
    } else if (v.has_type && v.type.kind != onnx::TypeProto::Kind::kTensor) {
      return Unsupported("graph output '" + v.name + "' has type " + v.type.ToString() +
                         "; only tensors (and ZipMap outputs) are supported");
    }
    output_ids_.push_back(id);
    outputs_.push_back(std::move(info));
    is_output[id] = true;
  }

  RETURN_IF_ERROR(InferTypes(g));
  FuseRelu(g, is_output);

  // Free intermediates after their last consumer.
  std::vector<int32_t> last_use(num_values_, -1);
  for (size_t k = 0; k < nodes_.size(); ++k) {
    for (int32_t id : nodes_[k].inputs) {
      if (id >= 0) last_use[id] = static_cast<int32_t>(k);
    }
    for (int32_t id : nodes_[k].outputs) {
      if (last_use[id] < static_cast<int32_t>(k)) last_use[id] = static_cast<int32_t>(k);
    }
  }
  for (size_t id = 0; id < num_values_; ++id) {
    if (is_output[id] || constants_[id].defined() || last_use[id] < 0) continue;
    nodes_[last_use[id]].release.push_back(static_cast<int32_t>(id));
  }
  PlanMemory(is_output);
  if (!nested_) PlanRunBytes(g);
  return Status::Ok();
}

void OnnxModel::FuseRelu(const onnx::GraphProto& g, const std::vector<bool>& is_output) {
  std::vector<int32_t> uses(num_values_, 0);
  std::vector<int32_t> node_of(num_values_, -1);  // value -> producing node in nodes_
  for (size_t k = 0; k < nodes_.size(); ++k) {
    for (int32_t id : nodes_[k].inputs) {
      if (id >= 0) ++uses[id];
    }
    for (int32_t id : nodes_[k].outputs) node_of[id] = static_cast<int32_t>(k);
  }
  static const std::set<std::string> kProducers = {"Conv", "Gemm", "MatMul"};
  std::vector<bool> dropped(nodes_.size(), false);
  for (size_t k = 0; k < nodes_.size(); ++k) {
    const CompiledNode& relu = nodes_[k];
    const onnx::NodeProto& rn = g.node[static_cast<size_t>(relu.proto_index)];
    if (rn.op_type != "Relu" || !NormalizeDomain(rn.domain).empty() || relu.inputs.size() != 1 ||
        relu.outputs.size() != 1 || relu.inputs[0] < 0) {
      continue;
    }
    const int32_t v = relu.inputs[0];
    const int32_t p = node_of[v];
    if (p < 0 || dropped[p] || uses[v] != 1 || is_output[v] || constants_[v].defined()) continue;
    // Only where the inferred type is one Relu itself accepts and clamps (float).
    const DType t = value_types_[v].dtype;
    if (t != DType::kFloat32 && t != DType::kFloat64) continue;
    CompiledNode& prod = nodes_[p];
    const onnx::NodeProto& pn = g.node[static_cast<size_t>(prod.proto_index)];
    if (!NormalizeDomain(pn.domain).empty() || kProducers.count(pn.op_type) == 0 ||
        prod.outputs.size() != 1 || prod.outputs[0] != v) {
      continue;
    }
    if (!prod.kernel->FuseRelu()) continue;
    prod.outputs[0] = relu.outputs[0];
    node_of[relu.outputs[0]] = p;
    dropped[k] = true;
  }
  size_t kept = 0;
  for (size_t k = 0; k < nodes_.size(); ++k) {
    if (dropped[k]) continue;
    if (kept != k) nodes_[kept] = std::move(nodes_[k]);
    ++kept;
  }
  nodes_.resize(kept);
}

Status OnnxModel::InferTypes(const onnx::GraphProto& g) {
  value_types_.assign(num_values_, ValueType());
  // Declared inputs seed inference; named dims become symbolic dims (same name, same size).
  std::map<std::string, int64_t> symbols;
  size_t k = 0;
  for (const onnx::ValueInfoProto& v : g.input) {
    // inputs_ is g.input without the initializers, in order.
    if (k >= input_ids_.size() || v.name != inputs_[k].name) continue;
    ValueType& t = value_types_[input_ids_[k]];
    t.dtype = inputs_[k].dtype;
    if (v.has_type && v.type.has_shape) {
      t.has_rank = true;
      for (const onnx::TensorShapeDim& d : v.type.dims) {
        if (d.has_value && d.value >= 0) {
          t.dims.push_back(d.value);
        } else if (!d.param.empty()) {
          auto [it, inserted] =
              symbols.emplace(d.param, kFirstSymbolicDim - static_cast<int64_t>(symbols.size()));
          t.dims.push_back(it->second);
        } else {
          t.dims.push_back(kUnknownDim);
        }
      }
    }
    ++k;
  }
  std::vector<InferNode> infer;
  infer.reserve(nodes_.size());
  for (const CompiledNode& cn : nodes_) {
    const onnx::NodeProto& n = g.node[static_cast<size_t>(cn.proto_index)];
    auto it = info_.opsets.find(std::string(NormalizeDomain(n.domain)));
    infer.push_back(InferNode{&n, NormalizeDomain(n.domain),
                              it == info_.opsets.end() ? 0 : it->second, cn.inputs, cn.outputs,
                              cn.label});
  }
  RETURN_IF_ERROR(InferShapes(infer, constants_, &value_types_));
  for (const ValueType& t : value_types_) {
    if (t.dtype != DType::kUndefined) ++plan_info_.typed_values;
    if (t.IsStatic()) ++plan_info_.static_values;
  }
  plan_info_.values = num_values_;
  return Status::Ok();
}

void OnnxModel::PlanMemory(const std::vector<bool>& is_output) {
  for (CompiledNode& n : nodes_) {
    for (int32_t id : n.outputs) {
      if (is_output[id]) n.use_arena = false;
    }
  }
  // Simulate one run on the static shapes: a value takes a free block of its size class
  // (or a new one) and gives it back at its release point. Outputs of ops that may alias
  // their input (Identity, Reshape, ...) take no block of their own, so their source's
  // block stays taken until every alias is released.
  std::vector<int32_t> block_of(num_values_, -1);  // value -> simulated block
  std::vector<size_t> block_bytes;
  std::vector<int32_t> block_refs;
  std::map<size_t, std::vector<int32_t>> free_blocks;  // class bytes -> blocks
  size_t naive = 0;
  for (const CompiledNode& n : nodes_) {
    const bool may_alias =
        n.may_alias && !n.inputs.empty() && n.inputs[0] >= 0 && block_of[n.inputs[0]] >= 0;
    for (int32_t id : n.outputs) {
      const int64_t bytes = value_types_[id].StaticBytes();
      // Values over the tensor size limit fail at run time (NewTensor refuses them); they
      // must not make the plan reserve memory either.
      if (!n.use_arena || bytes <= 0 || bytes > kMaxPlannedValueBytes) continue;
      if (may_alias) {
        block_of[id] = block_of[n.inputs[0]];
        ++block_refs[block_of[id]];
        continue;
      }
      naive += static_cast<size_t>(bytes);
      const size_t cls = TensorArena::ClassBytes(static_cast<size_t>(bytes));
      std::vector<int32_t>& fl = free_blocks[cls];
      if (!fl.empty()) {
        block_of[id] = fl.back();
        fl.pop_back();
      } else {
        block_of[id] = static_cast<int32_t>(block_bytes.size());
        block_bytes.push_back(cls);
        block_refs.push_back(0);
      }
      block_refs[block_of[id]] = 1;
    }
    for (int32_t id : n.release) {
      const int32_t b = block_of[id];
      if (b >= 0 && --block_refs[b] == 0) free_blocks[block_bytes[b]].push_back(b);
    }
  }
  size_t total = 0;
  for (size_t b : block_bytes) total += b;
  // A plan larger than the bound is not pre-reserved: the arena then grows on demand, so a
  // model whose declared shapes are huge costs memory only if a run really needs it.
  if (total > kMaxPlannedBytes) block_bytes.clear();
  planned_blocks_ = block_bytes;
  plan_info_.planned_blocks = block_bytes.size();
  for (size_t b : block_bytes) plan_info_.planned_bytes += b;
  plan_info_.unplanned_bytes = naive;
}

int64_t SaturatingMul(int64_t a, int64_t b) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 4;
  if (a == 0 || b == 0) return 0;
  return a > kMax / b ? kMax : a * b;
}

void OnnxModel::PlanRunBytes(const onnx::GraphProto& g) {
  // Ops that may hand back an input's buffer (always or in some cases: a Cast to the same
  // type, an identity Resize, a Reduce over no axes, control flow returning an outer value)
  // count nothing, so the plan stays a lower bound of what the run holds.
  static const std::set<std::string, std::less<>> kMayReuseInput = {
      "Cast", "CastLike", "Resize", "Upsample", "If", "Loop", "Scan"};
  symbol_sources_.clear();
  for (size_t i = 0; i < input_ids_.size(); ++i) {
    const ValueType& t = value_types_[static_cast<size_t>(input_ids_[i])];
    for (size_t d = 0; d < t.dims.size(); ++d) {
      if (t.dims[d] > kFirstSymbolicDim) continue;
      const auto s = static_cast<size_t>(kFirstSymbolicDim - t.dims[d]);
      if (symbol_sources_.size() <= s) symbol_sources_.resize(s + 1, {-1, -1});
      if (symbol_sources_[s].first < 0) {
        symbol_sources_[s] = {static_cast<int32_t>(i), static_cast<int32_t>(d)};
      }
    }
  }
  planned_value_bytes_.assign(num_values_, PlannedBytes());
  bool symbolic = false;
  for (const CompiledNode& n : nodes_) {
    if (n.proto_index < 0 || static_cast<size_t>(n.proto_index) >= g.node.size()) continue;
    const std::string& op = g.node[static_cast<size_t>(n.proto_index)].op_type;
    if (n.may_alias || kMayReuseInput.count(op) > 0 || op.starts_with("Reduce")) continue;
    for (int32_t id : n.outputs) {
      const ValueType& t = value_types_[static_cast<size_t>(id)];
      const auto size = static_cast<int64_t>(DTypeSize(t.dtype));
      if (size == 0 || !t.has_rank) continue;
      PlannedBytes p;
      p.constant = size;
      for (int64_t d : t.dims) {
        if (d >= 0) {
          p.constant = SaturatingMul(p.constant, d);
          continue;
        }
        const auto s = static_cast<size_t>(kFirstSymbolicDim - d);
        if (d > kFirstSymbolicDim || s >= symbol_sources_.size() || symbol_sources_[s].first < 0) {
          p.constant = -1;  // unknown, or a size no input binds (data-dependent)
          break;
        }
        p.symbols.push_back(static_cast<int32_t>(s));
      }
      if (p.constant < 0) continue;
      symbolic = symbolic || !p.symbols.empty();
      planned_value_bytes_[static_cast<size_t>(id)] = std::move(p);
    }
  }
  static_peak_bytes_ = symbolic ? -1 : EvaluateRunPlan({});
}

int64_t OnnxModel::EvaluateRunPlan(std::span<const int64_t> symbols) const {
  thread_local std::vector<int64_t> bytes;
  bytes.assign(num_values_, 0);
  int64_t live = 0;
  int64_t peak = 0;
  for (const CompiledNode& n : nodes_) {
    for (int32_t id : n.outputs) {
      const PlannedBytes& p = planned_value_bytes_[static_cast<size_t>(id)];
      if (p.constant <= 0) continue;
      int64_t b = p.constant;
      for (int32_t s : p.symbols) {
        const int64_t v = static_cast<size_t>(s) < symbols.size() ? symbols[s] : -1;
        b = v < 0 ? 0 : SaturatingMul(b, v);
      }
      bytes[static_cast<size_t>(id)] = b;
      live = std::min(live + b, std::numeric_limits<int64_t>::max() / 4);
      peak = std::max(peak, live);
    }
    for (int32_t id : n.release) {
      live -= bytes[static_cast<size_t>(id)];
      bytes[static_cast<size_t>(id)] = 0;
    }
  }
  return peak;
}

int64_t OnnxModel::PlannedPeakBytes(std::span<const Tensor> inputs) const {
  if (static_peak_bytes_ >= 0) return static_peak_bytes_;
  thread_local std::vector<int64_t> symbols;
  symbols.assign(symbol_sources_.size(), -1);
  for (size_t s = 0; s < symbol_sources_.size(); ++s) {
    const auto [i, d] = symbol_sources_[s];
    if (i < 0 || static_cast<size_t>(i) >= inputs.size()) continue;
    const Tensor& t = inputs[static_cast<size_t>(i)];
    // A rank other than the declared one fails in CheckInput; bind nothing from it.
    if (t.rank() != value_types_[static_cast<size_t>(input_ids_[i])].dims.size()) continue;
    symbols[s] = t.dim(static_cast<size_t>(d));
  }
  return EvaluateRunPlan(symbols);
}

OnnxModel::~OnnxModel() {
  std::lock_guard<std::mutex> lock(arenas_mu_);
  for (auto& w : all_arenas_) {
    if (auto a = w.lock()) a->Detach();
  }
}

std::shared_ptr<TensorArena> OnnxModel::AcquireArena() const {
  {
    std::lock_guard<std::mutex> lock(arenas_mu_);
    if (!idle_arenas_.empty()) {
      std::shared_ptr<TensorArena> a = std::move(idle_arenas_.back());
      idle_arenas_.pop_back();
      return a;
    }
  }
  auto a = std::make_shared<TensorArena>(
      std::max(kArenaBaseCapBytes, plan_info_.planned_bytes + plan_info_.planned_bytes / 4));
  a->Reserve(planned_blocks_);
  std::lock_guard<std::mutex> lock(arenas_mu_);
  all_arenas_.push_back(a);
  idle_arenas_.reserve(all_arenas_.size());
  return a;
}

void OnnxModel::ReleaseArena(std::shared_ptr<TensorArena> arena) const {
  std::lock_guard<std::mutex> lock(arenas_mu_);
  idle_arenas_.push_back(std::move(arena));  // capacity reserved in AcquireArena
}

TensorArena::Stats OnnxModel::ArenaStats() const {
  TensorArena::Stats total;
  std::lock_guard<std::mutex> lock(arenas_mu_);
  for (const auto& w : all_arenas_) {
    auto a = w.lock();
    if (!a) continue;
    const TensorArena::Stats s = a->stats();
    total.hits += s.hits;
    total.misses += s.misses;
    total.evictions += s.evictions;
    total.cached_bytes += s.cached_bytes;
    total.cached_blocks += s.cached_blocks;
    total.live_bytes += s.live_bytes;
    total.cap_bytes += s.cap_bytes;
  }
  return total;
}

Status OnnxModel::CheckInput(size_t i, const Tensor& t) const {
  const TensorInfo& info = inputs_[i];
  if (info.dtype != DType::kUndefined && t.dtype() != info.dtype) {
    return InvalidInput("input '" + info.name + "' must be " + std::string(DTypeName(info.dtype)) +
                        ", got " + std::string(DTypeName(t.dtype())));
  }
  // Nested graphs check element types only: bodies often declare loose shapes (e.g. [1]
  // for a scalar iteration count).
  if (info.has_shape && !nested_) {
    bool ok = t.rank() == info.shape.size();
    for (size_t d = 0; ok && d < info.shape.size(); ++d) {
      if (info.shape[d] >= 0 && info.shape[d] != t.dim(d)) ok = false;
    }
    if (!ok) {
      std::string want = "[";
      for (size_t d = 0; d < info.shape.size(); ++d) {
        if (d) want += ", ";
        want += info.shape[d] < 0 ? "?" : std::to_string(info.shape[d]);
      }
      want += "]";
      return InvalidInput("input '" + info.name + "' must have shape " + want + ", got " +
                          ShapeToString(t.shape()));
    }
  }
  return Status::Ok();
}

Result<std::vector<Tensor>> OnnxModel::Run(std::span<const Tensor> inputs) const {
  try {
    return RunImpl(inputs);
  } catch (const std::bad_alloc&) {
    return Status(Code::kPrediction, "out of memory while running the model");
  } catch (const std::exception& e) {
    return Internal(std::string("unexpected error while running the model: ") + e.what());
  }
}

Result<std::vector<Tensor>> OnnxModel::Run(std::span<const Tensor> inputs,
                                           const RunOptions& options) const {
  if (tls_run_depth > 0 || (options.deadline_ns == 0 && options.max_bytes <= 0)) {
    return Run(inputs);
  }
  if (options.max_bytes > 0) {
    // The plan first: a run the inferred shapes already show to be over the bound is
    // refused before anything is allocated.
    const int64_t planned = PlannedPeakBytes(inputs);
    if (planned > options.max_bytes) {
      std::string m = "the model's memory plan needs " + std::to_string(planned >> 20) +
                      " MiB of tensors for this input, over the " +
                      std::to_string(options.max_bytes >> 20) + " MiB allowed";
      if (!options.memory_label.empty()) m += "; raise " + std::string(options.memory_label);
      return InvalidInput(std::move(m));
    }
  }
  RunBudget budget;
  budget.max_bytes = options.max_bytes;
  budget.label = options.memory_label;
  RunBudgetScope scope(options.max_bytes > 0 ? &budget : nullptr);
  struct DeadlineScope {
    DeadlineScope(int64_t d, std::string_view l) {
      tls_run_deadline = d;
      tls_deadline_label = l;
    }
    ~DeadlineScope() {
      tls_run_deadline = 0;
      tls_deadline_label = {};
    }
  } deadline(options.deadline_ns, options.deadline_label);
  return Run(inputs);
}

Result<std::vector<Tensor>> OnnxModel::RunImpl(std::span<const Tensor> inputs) const {
  if (inputs.size() != inputs_.size()) {
    return InvalidInput("the model takes " + std::to_string(inputs_.size()) + " inputs, got " +
                        std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) RETURN_IF_ERROR(CheckInput(i, inputs[i]));
  // Per-thread scratch reused across runs (and models): no per-run heap allocation for the
  // value table or the kernel argument arrays once a thread has run a model this size.
  // Control-flow kernels run nested graphs from inside a kernel call: each nesting level
  // has its own scratch, and a nested run takes its intermediates from the arena of the
  // outermost run on this thread (tls_run_arena) rather than from a pool of its own.
  struct Scratch {
    std::vector<Tensor> values;
    std::vector<const Tensor*> in_ptrs;
    std::vector<Tensor*> out_ptrs;
  };
  thread_local std::vector<std::unique_ptr<Scratch>> scratch_levels;
  const bool nested = tls_run_depth > 0;
  struct HeapCounting {  // nested graphs' outputs are not charged (see RunBudget)
    RunBudget* budget;
    bool saved;
    explicit HeapCounting(RunBudget* b) : budget(b), saved(b ? b->count_heap : false) {
      if (budget) budget->count_heap = false;
    }
    ~HeapCounting() {
      if (budget) budget->count_heap = saved;
    }
  };
  std::optional<HeapCounting> heap_counting;
  if (nested) heap_counting.emplace(CurrentRunBudget());
  if (scratch_levels.size() <= tls_run_depth) scratch_levels.push_back(std::make_unique<Scratch>());
  Scratch& scratch = *scratch_levels[tls_run_depth];
  if (scratch.values.size() < num_values_) scratch.values.resize(num_values_);
  if (scratch.in_ptrs.size() < max_inputs_) scratch.in_ptrs.resize(max_inputs_);
  if (scratch.out_ptrs.size() < max_outputs_) scratch.out_ptrs.resize(max_outputs_);
  std::vector<Tensor>& values = scratch.values;
  // Intermediate tensors come from an arena of this model, held for the whole run. At exit
  // (also on errors and exceptions) every value is dropped, which returns the blocks, and
  // the arena goes back to the pool.
  struct RunState {
    const OnnxModel& model;
    std::vector<Tensor>& values;
    std::shared_ptr<TensorArena> arena;  // taken from the pool (null when nested)
    TensorArena* const current;          // where intermediates come from
    TensorArena* const prev_run_arena;
    ArenaScope scope;
    RunState(const OnnxModel& m, std::vector<Tensor>& v, std::shared_ptr<TensorArena> a,
             TensorArena* enclosing)
        : model(m),
          values(v),
          arena(std::move(a)),
          current(arena ? arena.get() : enclosing),
          prev_run_arena(tls_run_arena),
          scope(current) {
      ++tls_run_depth;
      tls_run_arena = current;
    }
    ~RunState() {
      for (Tensor& t : values) t = Tensor();
      ArenaScope::Set(nullptr);
      --tls_run_depth;
      tls_run_arena = prev_run_arena;
      if (!arena) return;
      arena->EndRun(kArenaMaxIdleRuns);
      model.ReleaseArena(std::move(arena));
    }
  } state(*this, values, !nested && ArenaEnabled() ? AcquireArena() : nullptr,
          nested ? tls_run_arena : nullptr);
  TensorArena* const arena = state.current;
  for (size_t i = 0; i < inputs.size(); ++i) values[input_ids_[i]] = inputs[i];
  std::vector<const Tensor*>& in_ptrs = scratch.in_ptrs;
  std::vector<Tensor*>& out_ptrs = scratch.out_ptrs;
  for (const CompiledNode& n : nodes_) {
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const int32_t id = n.inputs[k];
      in_ptrs[k] = id < 0 ? nullptr : constants_[id].defined() ? &constants_[id] : &values[id];
      if (in_ptrs[k] && !in_ptrs[k]->defined()) {
        return Internal(n.label + ": input " + std::to_string(k) + " has no value");
      }
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) out_ptrs[k] = &values[n.outputs[k]];
    KernelContext ctx{std::span<const Tensor* const>(in_ptrs.data(), n.inputs.size()),
                      std::span<Tensor* const>(out_ptrs.data(), n.outputs.size())};
    ArenaScope::Set(n.use_arena ? arena : nullptr, !n.overwrites);
    Status st = n.kernel->Run(ctx);
    if (!st.ok()) return Prefix(n.label, st);
    for (int32_t id : n.release) values[id] = Tensor();
    if (tls_run_deadline != 0 && MonotonicNanos() > tls_run_deadline) {
      std::string m = "the run was stopped after " + n.label + ": it took longer than its deadline";
      if (!tls_deadline_label.empty()) m += " (" + std::string(tls_deadline_label) + ")";
      return Status(Code::kTimeout, std::move(m));
    }
  }
  ArenaScope::Set(nullptr);
  std::vector<Tensor> out;
  out.reserve(output_ids_.size());
  for (size_t i = 0; i < output_ids_.size(); ++i) {
    const int32_t id = output_ids_[i];
    const Tensor& t = constants_[id].defined() ? constants_[id] : values[id];
    if (!t.defined()) {
      return Internal("graph output '" + outputs_[i].name + "' was not computed");
    }
    out.push_back(t);
  }
  return out;
}

const OnnxModel* AsOnnx(const Model& m) { return dynamic_cast<const OnnxModel*>(&m); }

}  // namespace

const ModelPlanInfo* PlanInfo(const Model& model) {
  const OnnxModel* m = AsOnnx(model);
  return m ? &m->plan_info() : nullptr;
}

TensorArena::Stats ArenaStats(const Model& model) {
  const OnnxModel* m = AsOnnx(model);
  return m ? m->ArenaStats() : TensorArena::Stats{};
}

std::optional<ValueType> InferredType(const Model& model, const std::string& value) {
  const OnnxModel* m = AsOnnx(model);
  if (!m) return std::nullopt;
  return m->InferredType(value);
}

Result<std::shared_ptr<const Model>> CompileSubgraph(
    const onnx::GraphProto& graph, const std::map<std::string, int64_t>& opsets, int depth,
    std::span<const std::string> captured, std::span<const Tensor* const> captured_consts) {
  if (captured.size() != captured_consts.size()) {
    return Internal("CompileSubgraph: captured names and constants differ in number");
  }
  auto model = std::make_shared<OnnxModel>();
  RETURN_IF_ERROR(model->CompileNested(graph, opsets, depth, captured, captured_consts));
  return std::shared_ptr<const Model>(std::move(model));
}

Result<std::shared_ptr<Model>> Model::LoadOnnx(const std::string& bytes) {
  try {
    onnx::ModelProto proto;
    RETURN_IF_ERROR(onnx::ParseModelProto(bytes, &proto));
    auto model = std::make_shared<OnnxModel>();
    RETURN_IF_ERROR(model->Compile(proto));
    return std::shared_ptr<Model>(std::move(model));
  } catch (const std::bad_alloc&) {
    return InvalidInput("the model is too large to load");
  } catch (const std::exception& e) {
    return Internal(std::string("unexpected error while loading the model: ") + e.what());
  }
}

}  // namespace serveml::engine
