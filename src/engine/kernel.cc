#include "engine/kernel.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/arena.h"
#include "engine/onnx/tensor_proto.h"

namespace serveml::engine {
namespace {

// 2^28, or SERVEML_ENGINE_MAX_TENSOR_ELEMENTS when it holds a number in [1, 2^28].
int64_t DefaultTensorElementLimit() {
  const char* env = std::getenv("SERVEML_ENGINE_MAX_TENSOR_ELEMENTS");
  const long long v = env ? std::strtoll(env, nullptr, 10) : 0;
  return v >= 1 && v <= onnx::kMaxTensorElements ? static_cast<int64_t>(v)
                                                 : onnx::kMaxTensorElements;
}

std::atomic<int64_t> g_tensor_element_limit{DefaultTensorElementLimit()};

Status TooLarge(const Shape& shape, int64_t limit) {
  return InvalidInput("tensor of shape " + ShapeToString(shape) + " is too large (limit " +
                      std::to_string(limit) + " elements)");
}

constexpr double kDefaultNodeWork = 1e13;

// kDefaultNodeWork, or SERVEML_ENGINE_MAX_NODE_WORK when it holds a positive number.
double DefaultNodeWorkLimit() {
  const char* env = std::getenv("SERVEML_ENGINE_MAX_NODE_WORK");
  const double v = env ? std::strtod(env, nullptr) : 0.0;
  return v >= 1.0 ? v : kDefaultNodeWork;
}

std::atomic<double> g_node_work_limit{DefaultNodeWorkLimit()};

}  // namespace

void SetNodeWorkLimit(double limit) {
  g_node_work_limit.store(limit >= 1.0 ? limit : DefaultNodeWorkLimit(), std::memory_order_relaxed);
}

double NodeWorkLimit() { return g_node_work_limit.load(std::memory_order_relaxed); }

Status CheckWork(std::string_view op, double work) {
  const double limit = NodeWorkLimit();
  if (work <= limit) return Status::Ok();
  char buf[96];
  std::snprintf(buf, sizeof buf, " would take %.3g multiply-adds, over the limit of %.3g per node",
                work, limit);
  return InvalidInput(std::string(op) + buf);
}

void SetTensorElementLimit(int64_t limit) {
  if (limit < 1 || limit > onnx::kMaxTensorElements) limit = DefaultTensorElementLimit();
  g_tensor_element_limit.store(limit, std::memory_order_relaxed);
}

int64_t TensorElementLimit() { return g_tensor_element_limit.load(std::memory_order_relaxed); }

namespace {
thread_local RunBudget* tls_run_budget = nullptr;

Status OverBudget(const RunBudget& b, size_t bytes, int64_t live) {
  std::string m = "the run needs more than " + std::to_string(b.max_bytes >> 20) +
                  " MiB of tensors (" + std::to_string(live) + " bytes live, " +
                  std::to_string(bytes) + " more requested)";
  if (!b.label.empty()) m += "; raise " + std::string(b.label);
  return InvalidInput(std::move(m));
}
}  // namespace

RunBudget* CurrentRunBudget() { return tls_run_budget; }
RunBudgetScope::RunBudgetScope(RunBudget* b) : prev_(tls_run_budget) { tls_run_budget = b; }
RunBudgetScope::~RunBudgetScope() { tls_run_budget = prev_; }

Result<Tensor> NewTensor(DType dtype, Shape shape) {
  const int64_t limit = TensorElementLimit();
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidInput("negative dimension in shape " + ShapeToString(shape));
    if (d != 0 && n > limit / d) return TooLarge(shape, limit);
    n *= d;
  }
  if (n > limit) return TooLarge(shape, limit);
  const size_t bytes = static_cast<size_t>(n) * DTypeSize(dtype);
  TensorArena* arena = CurrentArena();
  if (RunBudget* budget = tls_run_budget; budget && bytes > 0) {
    const int64_t live =
        (arena ? static_cast<int64_t>(arena->live_bytes()) : 0) + budget->heap_bytes;
    if (live + static_cast<int64_t>(bytes) > budget->max_bytes) {
      return OverBudget(*budget, bytes, live);
    }
    if (!arena && budget->count_heap) budget->heap_bytes += static_cast<int64_t>(bytes);
  }
  if (arena && bytes > 0) {
    if (std::shared_ptr<void> buf = arena->Allocate(bytes)) {
      if (CurrentArenaZeroFill()) std::memset(buf.get(), 0, bytes);
      return Tensor(dtype, std::move(shape), std::move(buf));
    }
  }
  return Tensor(dtype, std::move(shape));
}

const onnx::AttributeProto* NodeAttrs::Find(std::string_view name) const {
  for (const auto& a : node_.attribute) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

Status NodeAttrs::WrongType(const onnx::AttributeProto& a, std::string_view want) const {
  std::string m = "attribute '" + a.name + "' must be ";
  m += want;
  m += ", got ";
  m += onnx::AttributeTypeName(a.type);
  return InvalidInput(std::move(m));
}

Result<int64_t> NodeAttrs::Int(std::string_view name, int64_t def) const {
  const auto* a = Find(name);
  if (!a) return def;
  if (a->type != onnx::AttributeProto::kInt) return WrongType(*a, "INT");
  return a->i;
}

Result<int64_t> NodeAttrs::RequiredInt(std::string_view name) const {
  const auto* a = Find(name);
  if (!a) return InvalidInput("missing required attribute '" + std::string(name) + "'");
  if (a->type != onnx::AttributeProto::kInt) return WrongType(*a, "INT");
  return a->i;
}

Result<float> NodeAttrs::Float(std::string_view name, float def) const {
  const auto* a = Find(name);
  if (!a) return def;
  if (a->type != onnx::AttributeProto::kFloat) return WrongType(*a, "FLOAT");
  return a->f;
}

Result<std::string> NodeAttrs::String(std::string_view name, std::string def) const {
  const auto* a = Find(name);
  if (!a) return def;
  if (a->type != onnx::AttributeProto::kString) return WrongType(*a, "STRING");
  return a->s;
}

Result<std::vector<int64_t>> NodeAttrs::Ints(std::string_view name) const {
  const auto* a = Find(name);
  if (!a) return std::vector<int64_t>{};
  if (a->type != onnx::AttributeProto::kInts) return WrongType(*a, "INTS");
  return a->ints;
}

Result<std::vector<float>> NodeAttrs::Floats(std::string_view name) const {
  const auto* a = Find(name);
  if (!a) return std::vector<float>{};
  if (a->type != onnx::AttributeProto::kFloats) return WrongType(*a, "FLOATS");
  return a->floats;
}

Result<std::vector<std::string>> NodeAttrs::Strings(std::string_view name) const {
  const auto* a = Find(name);
  if (!a) return std::vector<std::string>{};
  if (a->type != onnx::AttributeProto::kStrings) return WrongType(*a, "STRINGS");
  return a->strings;
}

Result<int64_t> NormalizeAxis(int64_t axis, int64_t rank, bool allow_end) {
  int64_t hi = allow_end ? rank : rank - 1;
  if (axis < -rank || axis > hi) {
    return InvalidInput("axis " + std::to_string(axis) + " is out of range for rank " +
                        std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace serveml::engine
