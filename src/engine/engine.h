// The inference engine's public face: load an ONNX model once, run it many times.
//
// Lifecycle: Model::LoadOnnx parses and validates the graph, resolves every node to a
// kernel from the operator table (ops/op_table.cc), infers shapes where it can and plans
// execution. Run() is thread safe: many threads may run one loaded Model at once (each
// run uses its own scratch). A Model is immutable after load and is shared via
// std::shared_ptr by the runtime.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace serveml::engine {

// Declared graph input or output. A dim of -1 is dynamic (symbolic or unknown).
struct TensorInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;  // empty if the rank is unknown
  bool has_shape = false;      // false when the model declares no shape at all
  // Set when this output comes from a ZipMap node: the engine returns the probabilities as
  // a float32 [N, C] tensor instead of a sequence of maps, with the map keys (class labels,
  // as strings; ints printed in decimal) here in column order.
  bool is_zipmap = false;
  bool zipmap_int_keys = false;
  std::vector<std::string> zipmap_keys;
};

struct ModelInfo {
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::string graph_name;
  std::string doc_string;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  std::map<std::string, std::string> metadata_props;
  int64_t node_count = 0;
};

// Per-run bounds a caller may set (the server sets them from a deployment's configuration).
struct RunOptions {
  // MonotonicNanos() after which the run stops at the next node boundary with
  // Code::kTimeout ("the run took longer than its deadline"); 0 = none.
  int64_t deadline_ns = 0;
  // Bytes of tensors the run may hold at once (intermediates live in its arena, plus the
  // outputs it allocated). Checked twice: before the run against the model's memory plan
  // evaluated for these inputs' shapes (a lower bound: values whose size depends on data
  // count 0), then at every allocation, where a NewTensor that would pass it fails. Both
  // fail with InvalidInput naming the limit. 0 = none.
  int64_t max_bytes = 0;
  // Named in the messages (e.g. "memory_mb", "timeout_seconds"); must outlive the run.
  std::string_view memory_label;
  std::string_view deadline_label;
};

class Model {
 public:
  virtual ~Model() = default;

  // Parses ONNX ModelProto bytes. Errors: InvalidInput for malformed bytes or graphs,
  // Unsupported naming each unsupported operator (with domain and opset).
  static Result<std::shared_ptr<Model>> LoadOnnx(const std::string& bytes);

  virtual const ModelInfo& info() const = 0;
  // Graph inputs that are not initializers, in declaration order.
  virtual const std::vector<TensorInfo>& inputs() const = 0;
  virtual const std::vector<TensorInfo>& outputs() const = 0;

  // Runs the graph. `inputs` are in the order of inputs(); dtypes must match exactly and
  // shapes must agree with the declared static dims (InvalidInput otherwise, naming the
  // input). Returns outputs in the order of outputs(). Thread safe.
  // Returned tensors may share their buffers with the inputs or with the model's constants
  // (e.g. an Identity or Reshape output): treat them as read-only, Clone() to modify.
  // A ZipMap output is the float32 [N, C] probability matrix (see TensorInfo::is_zipmap).
  virtual Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs) const = 0;
  // As Run, within `options`' deadline and memory bound.
  virtual Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs,
                                          const RunOptions& options) const = 0;
};

// Caps the elements of every tensor a run creates (upper bound 2^28, the same bound as
// initializers; default 2^28 or SERVEML_ENGINE_MAX_TENSOR_ELEMENTS). A run that would
// exceed it fails with InvalidInput naming the shape. Process-wide; takes effect for runs
// that start afterwards. Values outside [1, 2^28] restore the default. The fuzz harness lowers it
// so one input costs bounded time; a server may lower it to bound the memory one request can claim.
void SetTensorElementLimit(int64_t limit);
int64_t TensorElementLimit();

// Caps the work of one node in one run: convolutions, pooling, matrix products and other
// kernels whose cost grows faster than their tensors refuse a run that would take more
// multiply-adds (window steps) than this, with InvalidInput naming the operator. Default
// 1e13 (about a minute of one core) or SERVEML_ENGINE_MAX_NODE_WORK; values below 1 restore
// the default. Process-wide, like SetTensorElementLimit.
void SetNodeWorkLimit(double limit);
double NodeWorkLimit();

// Parses one serialized ONNX TensorProto (as in the backend test cases' input_N.pb).
// `name` receives TensorProto.name.
Result<Tensor> ReadTensorProto(const std::string& bytes, std::string* name);
// Serializes a tensor as an ONNX TensorProto with the given name.
std::string WriteTensorProto(const Tensor& t, const std::string& name);

}  // namespace serveml::engine
