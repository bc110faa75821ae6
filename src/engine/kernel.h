// Kernel: one compiled graph node. Created once at model load by a factory from the
// operator table (ops/op_table.cc), which parses and validates the node's attributes; run
// many times, possibly concurrently.
//
// Thread safety: Run() is const and must not mutate the kernel; all per-run state lives in
// the KernelContext. Output tensors are fresh or alias an input (Tensors are never written
// after they are produced, so aliasing is safe).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/onnx/onnx_proto.h"

namespace serveml::engine {

struct KernelContext {
  // One entry per node input; nullptr for an omitted optional input (empty name).
  std::span<const Tensor* const> inputs;
  // One entry per node output, never nullptr (unused outputs get a scratch slot). The
  // kernel assigns every output.
  std::span<Tensor* const> outputs;

  const Tensor* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  size_t num_inputs() const { return inputs.size(); }
  size_t num_outputs() const { return outputs.size(); }
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Computes the outputs from the inputs. Errors are InvalidInput for inputs the operator
  // rejects (wrong dtype, incompatible shapes); the executor prefixes the node name.
  virtual Status Run(KernelContext& ctx) const = 0;
  // Called at load, before any run, when the node's first output feeds only a Relu (and is
  // not a graph output). Returning true commits the kernel to apply Relu (ReluOf below) to
  // that output itself; the executor then drops the Relu node. The default declines.
  virtual bool FuseRelu() { return false; }
};

struct SubgraphScope;  // control_flow.h

// Everything a factory may look at. References are valid only during the factory call.
struct KernelInit {
  const onnx::NodeProto& node;
  std::string_view domain;  // normalised: "" for ai.onnx
  int64_t opset;            // the model's opset for the node's domain
  // Per node input: the tensor if it is an initializer (known at load), else nullptr.
  // Nodes with subgraphs have their implicit inputs after the declared ones (see scope).
  std::span<const Tensor* const> const_inputs;
  // The enclosing graph, for factories that compile subgraphs (If, Loop, Scan).
  const SubgraphScope* scope = nullptr;
};

// The Relu of every kernel, standalone or fused: negative values become 0, NaN stays NaN (as
// in onnxruntime, numpy and PyTorch), everything else is unchanged.
template <typename T>
inline T ReluOf(T x) {
  return x < T(0) ? T(0) : x;
}

// A float attribute (alpha, beta, ...) as element type T: unchanged for floating T; for
// integer T truncated toward zero and saturated to T's range, NaN giving 0 (a plain cast
// of an out-of-range value is undefined behaviour).
template <typename T>
inline T SaturatingCast(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T(0);
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      return std::numeric_limits<T>::max();
    }
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) {
      return std::numeric_limits<T>::lowest();
    }
    return static_cast<T>(v);
  }
}

// p[i] = ReluOf(p[i]) for i < n.
template <typename T>
inline void ApplyRelu(T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = ReluOf(p[i]);
}

using KernelPtr = std::unique_ptr<Kernel>;
using KernelFactory = Result<KernelPtr> (*)(const KernelInit&);

// Allocates a zero-filled tensor after checking the element count is sane (guards hostile
// shapes). Shape entries must be >= 0. While the executor runs a kernel, numeric buffers
// come from the run's TensorArena (arena.h) and return there when the tensor's last copy
// is gone; otherwise from the heap. Either way the tensor owns its buffer like any other.
// With a run budget installed (RunBudgetScope), fails with InvalidInput naming the
// budget when the run's live tensor bytes would pass it.
Result<Tensor> NewTensor(DType dtype, Shape shape);

// The memory bound of the outermost run on this thread (RunOptions::max_bytes): bytes live
// in its arena plus bytes it took from the heap (outputs) may not pass `max_bytes`.
struct RunBudget {
  int64_t max_bytes = 0;
  int64_t heap_bytes = 0;
  std::string_view label;  // e.g. "memory_mb"
  // Heap allocations are outputs of the graph being run. Nested runs (Loop, Scan, If
  // bodies) turn this off: their outputs live for one iteration, so adding them up would
  // charge a long loop for memory it never holds at once.
  bool count_heap = true;
};
// The budget installed on this thread, or nullptr.
RunBudget* CurrentRunBudget();
// Installs `b` for this thread while alive (nullptr: none). Not nested by control flow:
// inner runs see the outer budget.
class RunBudgetScope {
 public:
  explicit RunBudgetScope(RunBudget* b);
  ~RunBudgetScope();
  RunBudgetScope(const RunBudgetScope&) = delete;
  RunBudgetScope& operator=(const RunBudgetScope&) = delete;

 private:
  RunBudget* prev_;
};

// Guards hostile geometry that keeps tensors small but work huge (a 128x128 kernel over a
// 256x256 image): kernels whose cost is not linear in their tensors call this before the
// work with the number of multiply-adds (or window steps) they are about to do. OK when
// `work` is within NodeWorkLimit() (engine.h); otherwise InvalidInput naming the operator,
// the work and the limit.
Status CheckWork(std::string_view op, double work);

// Product of the dims as a double, for work estimates that must not overflow.
inline double Volume(std::span<const int64_t> dims) {
  double v = 1.0;
  for (int64_t d : dims) v *= static_cast<double>(d);
  return v;
}

// Attribute access with type checks. Errors name the attribute and the expected type.
class NodeAttrs {
 public:
  explicit NodeAttrs(const onnx::NodeProto& node) : node_(node) {}

  const onnx::AttributeProto* Find(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }

  Result<int64_t> Int(std::string_view name, int64_t def) const;
  Result<float> Float(std::string_view name, float def) const;
  Result<std::string> String(std::string_view name, std::string def) const;
  // Missing list attributes give an empty vector.
  Result<std::vector<int64_t>> Ints(std::string_view name) const;
  Result<std::vector<float>> Floats(std::string_view name) const;
  Result<std::vector<std::string>> Strings(std::string_view name) const;
  // Required variants.
  Result<int64_t> RequiredInt(std::string_view name) const;

 private:
  Status WrongType(const onnx::AttributeProto& a, std::string_view want) const;
  const onnx::NodeProto& node_;
};

// Normalises a possibly negative axis against `rank` (valid range [-rank, rank-1], or
// [-rank, rank] when `allow_end`). InvalidInput otherwise.
Result<int64_t> NormalizeAxis(int64_t axis, int64_t rank, bool allow_end = false);

}  // namespace serveml::engine
