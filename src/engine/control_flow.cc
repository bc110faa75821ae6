// If, Loop and Scan (control_flow.h): kernels that run compiled subgraphs.
#include "engine/control_flow.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "engine/kernel.h"
#include "engine/onnx/tensor_proto.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

Status TooDeep() {
  return InvalidInput("subgraphs are nested more than " + std::to_string(kMaxSubgraphDepth) +
                      " levels deep");
}

Status WithPrefix(std::string_view prefix, const Status& st) {
  return Status(st.code(), std::string(prefix) + ": " + st.message());
}

// ---------------------------------------------------------------------------------------
// Element copies that work for numeric and string tensors.

void CopyElements(const Tensor& src, int64_t src_off, Tensor& dst, int64_t dst_off, int64_t n) {
  if (n <= 0) return;
  if (src.dtype() == DType::kString) {
    std::copy_n(src.strings().begin() + src_off, n, dst.strings().begin() + dst_off);
    return;
  }
  const size_t es = DTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + static_cast<size_t>(dst_off) * es,
              static_cast<const char*>(src.raw()) + static_cast<size_t>(src_off) * es,
              static_cast<size_t>(n) * es);
}

int64_t Product(const std::vector<int64_t>& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

// x[..., index, ...] along `axis` (the axis removed).
Result<Tensor> SliceAxis(const Tensor& x, size_t axis, int64_t index) {
  std::vector<int64_t> shape = x.shape();
  const int64_t len = shape[axis];
  const int64_t outer = Product(shape, 0, axis);
  const int64_t inner = Product(shape, axis + 1, shape.size());
  shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(axis));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(x.dtype(), std::move(shape)));
  for (int64_t o = 0; o < outer; ++o) {
    CopyElements(x, (o * len + index) * inner, out, o * inner, inner);
  }
  return out;
}

// Stacks equally shaped `parts` along a new axis `axis` (0 <= axis <= rank of a part), in
// reverse order when `reverse`.
Result<Tensor> StackAxis(const std::vector<Tensor>& parts, size_t axis, bool reverse) {
  const std::vector<int64_t>& part_shape = parts.front().shape();
  std::vector<int64_t> shape = part_shape;
  const int64_t len = static_cast<int64_t>(parts.size());
  shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(axis), len);
  ASSIGN_OR_RETURN(Tensor out, NewTensor(parts.front().dtype(), std::move(shape)));
  const int64_t outer = Product(part_shape, 0, axis);
  const int64_t inner = Product(part_shape, axis, part_shape.size());
  for (int64_t p = 0; p < len; ++p) {
    const Tensor& src = parts[static_cast<size_t>(reverse ? len - 1 - p : p)];
    for (int64_t o = 0; o < outer; ++o)
      CopyElements(src, o * inner, out, (o * len + p) * inner, inner);
  }
  return out;
}

// Per-iteration values of one scan output, with the run's byte budget (kMaxScanOutputBytes
// over all scan outputs of the node).
class ScanParts {
 public:
  Status Add(Tensor t, const std::string& name, size_t* total_bytes) {
    if (!parts_.empty() && (t.dtype() != parts_[0].dtype() || t.shape() != parts_[0].shape())) {
      return InvalidInput(
          "scan output '" + name + "' changes from " + std::string(DTypeName(parts_[0].dtype())) +
          ShapeToString(parts_[0].shape()) + " to " + std::string(DTypeName(t.dtype())) +
          ShapeToString(t.shape()) + " at iteration " + std::to_string(parts_.size()));
    }
    const size_t per_elem =
        t.dtype() == DType::kString ? sizeof(std::string) : DTypeSize(t.dtype());
    *total_bytes += static_cast<size_t>(t.numel()) * per_elem;
    elements_ += t.numel();
    if (*total_bytes > kMaxScanOutputBytes || elements_ > onnx::kMaxTensorElements) {
      return InvalidInput("scan output '" + name + "' exceeds the limit of " +
                          std::to_string(kMaxScanOutputBytes >> 20) +
                          " MiB of scan outputs per node after " +
                          std::to_string(parts_.size() + 1) + " iterations");
    }
    parts_.push_back(std::move(t));
    return Status::Ok();
  }
  bool empty() const { return parts_.empty(); }
  const std::vector<Tensor>& parts() const { return parts_; }

 private:
  std::vector<Tensor> parts_;
  int64_t elements_ = 0;
};

// The empty stacked value of a scan output that ran no iteration: [0] followed by the
// body's declared per-iteration shape when it is fully known, else [0].
Result<Tensor> EmptyScanOutput(const TensorInfo& declared, size_t axis) {
  std::vector<int64_t> shape;
  bool known = declared.has_shape;
  for (int64_t d : declared.shape) known = known && d >= 0;
  if (known && axis <= declared.shape.size()) shape = declared.shape;
  shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(std::min(axis, shape.size())), 0);
  const DType t = declared.dtype == DType::kUndefined ? DType::kFloat32 : declared.dtype;
  return NewTensor(t, std::move(shape));
}

Result<bool> ScalarBool(const Tensor* t, std::string_view what) {
  if (!t || t->dtype() != DType::kBool || t->numel() != 1) {
    return InvalidInput(
        std::string(what) + " must be a bool tensor with one element" +
        (t ? ", got " + std::string(DTypeName(t->dtype())) + ShapeToString(t->shape())
           : std::string()));
  }
  return t->data<bool>()[0];
}

Result<Tensor> ScalarTensor(int64_t v) {
  ASSIGN_OR_RETURN(Tensor t, NewTensor(DType::kInt64, {}));
  t.data<int64_t>()[0] = v;
  return t;
}

Result<Tensor> ScalarTensor(bool v) {
  ASSIGN_OR_RETURN(Tensor t, NewTensor(DType::kBool, {}));
  t.data<bool>()[0] = v;
  return t;
}

// ---------------------------------------------------------------------------------------
// A compiled subgraph and where its run-time captured values come from.

struct Body {
  std::shared_ptr<const Model> graph;
  size_t num_formal = 0;                // declared inputs (they come first)
  std::vector<size_t> captured_inputs;  // node input indices of the captured run-time values

  // The arguments of a run: `formal` declared inputs (to be filled by the caller) followed
  // by the captured values.
  std::vector<Tensor> Args(const KernelContext& ctx) const {
    std::vector<Tensor> args(num_formal);
    args.reserve(num_formal + captured_inputs.size());
    for (size_t idx : captured_inputs) args.push_back(*ctx.inputs[idx]);
    return args;
  }
  const std::string& OutputName(size_t i) const { return graph->outputs()[i].name; }
};

Result<Body> CompileBody(const KernelInit& init, std::string_view attr) {
  const onnx::AttributeProto* a = NodeAttrs(init.node).Find(attr);
  if (!a) return InvalidInput("missing required graph attribute '" + std::string(attr) + "'");
  if (a->type != onnx::AttributeProto::kGraph || !a->g) {
    return InvalidInput("attribute '" + std::string(attr) + "' must be GRAPH, got " +
                        std::string(onnx::AttributeTypeName(a->type)));
  }
  if (!init.scope || !init.scope->opsets) {
    return Internal("subgraph attribute '" + std::string(attr) + "' compiled without a scope");
  }
  const SubgraphScope& scope = *init.scope;
  // Sequence- and optional-typed values are refused up front, naming the type (before any
  // unsupported sequence operator inside the body is reported).
  for (const auto* list : {&a->g->input, &a->g->output}) {
    for (const onnx::ValueInfoProto& v : *list) {
      if (v.has_type && v.type.kind != onnx::TypeProto::Kind::kTensor) {
        return Unsupported(std::string(attr) + (list == &a->g->input ? " input '" : " output '") +
                           v.name + "' has type " + v.type.ToString() +
                           "; only tensor values are supported in subgraphs (sequence and "
                           "optional types are not supported)");
      }
    }
  }
  std::vector<std::string> names;
  RETURN_IF_ERROR(GraphCaptures(*a->g, scope.depth + 1, &names));
  std::vector<const Tensor*> consts;
  Body body;
  const size_t declared = init.node.input.size();
  for (const std::string& name : names) {
    auto it = std::find(scope.implicit_inputs.begin(), scope.implicit_inputs.end(), name);
    if (it == scope.implicit_inputs.end()) {
      return Internal("captured value '" + name + "' is not an implicit input of the node");
    }
    const size_t idx = declared + static_cast<size_t>(it - scope.implicit_inputs.begin());
    const Tensor* c = idx < init.const_inputs.size() ? init.const_inputs[idx] : nullptr;
    consts.push_back(c);
    if (!c) body.captured_inputs.push_back(idx);
  }
  auto g = CompileSubgraph(*a->g, *scope.opsets, scope.depth + 1, names, consts);
  if (!g.ok()) return WithPrefix(attr, g.status());
  body.graph = std::move(g).value();
  body.num_formal = body.graph->inputs().size() - body.captured_inputs.size();
  return body;
}

// ---------------------------------------------------------------------------------------
// If: runs then_branch or else_branch; the node's outputs are the branch's outputs.

class IfKernel final : public Kernel {
 public:
  IfKernel(Body then_body, Body else_body)
      : then_(std::move(then_body)), else_(std::move(else_body)) {}

  Status Run(KernelContext& ctx) const override {
    ASSIGN_OR_RETURN(bool cond, ScalarBool(ctx.input(0), "cond"));
    const Body& b = cond ? then_ : else_;
    ASSIGN_OR_RETURN(std::vector<Tensor> outs, b.graph->Run(b.Args(ctx)));
    if (outs.size() < ctx.num_outputs()) return Internal("branch returned too few outputs");
    for (size_t k = 0; k < ctx.num_outputs(); ++k) *ctx.outputs[k] = std::move(outs[k]);
    return Status::Ok();
  }

 private:
  Body then_, else_;
};

Result<KernelPtr> BuildIf(const KernelInit& init) {
  if (init.node.input.empty() || init.node.input[0].empty()) {
    return InvalidInput("If needs the input 'cond'");
  }
  ASSIGN_OR_RETURN(Body then_body, CompileBody(init, "then_branch"));
  ASSIGN_OR_RETURN(Body else_body, CompileBody(init, "else_branch"));
  const size_t n = init.node.output.size();
  for (const Body* b : {&then_body, &else_body}) {
    const char* attr = b == &then_body ? "then_branch" : "else_branch";
    if (b->num_formal != 0) {
      return InvalidInput(std::string(attr) + " must not declare inputs, it declares " +
                          std::to_string(b->num_formal));
    }
    if (b->graph->outputs().size() != n) {
      return InvalidInput(std::string(attr) + " has " + std::to_string(b->graph->outputs().size()) +
                          " outputs, the node has " + std::to_string(n));
    }
  }
  return KernelPtr(new IfKernel(std::move(then_body), std::move(else_body)));
}

// ---------------------------------------------------------------------------------------
// Loop: inputs (M, cond, v_initial...); body (iteration_num, cond_in, v...) ->
// (cond_out, v..., scan outputs...); outputs (v_final..., scan outputs stacked on axis 0).

// kDefaultLoopSeconds, or SERVEML_ENGINE_LOOP_SECONDS when it holds a positive number.
std::chrono::duration<double> LoopBudget() {
  static const double seconds = [] {
    const char* env = std::getenv("SERVEML_ENGINE_LOOP_SECONDS");
    const double v = env ? std::strtod(env, nullptr) : 0.0;
    return v > 0.0 ? v : kDefaultLoopSeconds;
  }();
  return std::chrono::duration<double>(seconds);
}

// The wall-clock budget shared by every Loop and Scan of one run on this thread: the
// outermost one starts it, nested ones (their bodies run on the same thread) draw from it,
// so inner loops that each finish just inside a budget of their own cannot stretch the run
// to (nesting depth) x budget.
thread_local bool t_iteration_deadline_set = false;
thread_local std::chrono::steady_clock::time_point t_iteration_deadline;

class IterationBudget {
 public:
  IterationBudget() : outermost_(!t_iteration_deadline_set) {
    if (outermost_) {
      t_iteration_deadline =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(LoopBudget());
      t_iteration_deadline_set = true;
    }
  }
  ~IterationBudget() {
    if (outermost_) t_iteration_deadline_set = false;
  }
  IterationBudget(const IterationBudget&) = delete;
  IterationBudget& operator=(const IterationBudget&) = delete;

  // OK while the budget lasts. Otherwise the error says how far the loop (`steps` < 0) or
  // the scan of `steps` steps got: `done` iterations.
  static Status Check(int64_t done, int64_t steps) {
    if (std::chrono::steady_clock::now() <= t_iteration_deadline) return Status::Ok();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", LoopBudget().count());
    if (steps < 0) {
      return InvalidInput("the loop ran longer than " + std::string(secs) + " s (" +
                          std::to_string(done) +
                          " iterations) without its trip count or condition stopping it");
    }
    return InvalidInput("the scan ran longer than " + std::string(secs) + " s (" +
                        std::to_string(done) + " of " + std::to_string(steps) + " steps)");
  }

 private:
  bool outermost_;
};

class LoopKernel final : public Kernel {
 public:
  LoopKernel(Body body, size_t num_carried, size_t num_scan)
      : body_(std::move(body)), num_carried_(num_carried), num_scan_(num_scan) {}

  Status Run(KernelContext& ctx) const override {
    int64_t max_trip = std::numeric_limits<int64_t>::max();
    if (const Tensor* m = ctx.input(0)) {
      if (m->dtype() != DType::kInt64 || m->numel() != 1) {
        return InvalidInput("M must be an int64 tensor with one element, got " +
                            std::string(DTypeName(m->dtype())) + ShapeToString(m->shape()));
      }
      max_trip = m->data<int64_t>()[0];
    }
    bool cond = true;
    if (ctx.input(1)) {
      ASSIGN_OR_RETURN(cond, ScalarBool(ctx.input(1), "cond"));
    }
    std::vector<Tensor> args = body_.Args(ctx);
    for (size_t n = 0; n < num_carried_; ++n) {
      const Tensor* v = ctx.input(2 + n);
      if (!v) return InvalidInput("loop-carried input " + std::to_string(n) + " is missing");
      args[2 + n] = *v;
    }
    std::vector<ScanParts> scans(num_scan_);
    size_t scan_bytes = 0;
    const IterationBudget budget;
    for (int64_t it = 0; it < max_trip && cond; ++it) {
      RETURN_IF_ERROR(IterationBudget::Check(it, -1));
      ASSIGN_OR_RETURN(args[0], ScalarTensor(it));
      ASSIGN_OR_RETURN(args[1], ScalarTensor(cond));
      ASSIGN_OR_RETURN(std::vector<Tensor> outs, body_.graph->Run(args));
      ASSIGN_OR_RETURN(cond, ScalarBool(&outs[0], "the body's cond_out"));
      for (size_t n = 0; n < num_carried_; ++n) args[2 + n] = std::move(outs[1 + n]);
      for (size_t k = 0; k < num_scan_; ++k) {
        const size_t o = 1 + num_carried_ + k;
        RETURN_IF_ERROR(scans[k].Add(std::move(outs[o]), body_.OutputName(o), &scan_bytes));
      }
    }
    for (size_t n = 0; n < num_carried_ && n < ctx.num_outputs(); ++n) {
      *ctx.outputs[n] = std::move(args[2 + n]);
    }
    for (size_t k = 0; k < num_scan_ && num_carried_ + k < ctx.num_outputs(); ++k) {
      Tensor& out = *ctx.outputs[num_carried_ + k];
      if (scans[k].empty()) {
        ASSIGN_OR_RETURN(out, EmptyScanOutput(body_.graph->outputs()[1 + num_carried_ + k], 0));
      } else {
        ASSIGN_OR_RETURN(out, StackAxis(scans[k].parts(), 0, false));
      }
    }
    return Status::Ok();
  }

 private:
  Body body_;
  size_t num_carried_;
  size_t num_scan_;
};

Result<KernelPtr> BuildLoop(const KernelInit& init) {
  if (init.node.input.size() < 2) {
    return InvalidInput("Loop needs the inputs M and cond (either may be empty)");
  }
  ASSIGN_OR_RETURN(Body body, CompileBody(init, "body"));
  const size_t num_carried = init.node.input.size() - 2;
  if (body.num_formal != 2 + num_carried) {
    return InvalidInput("the body declares " + std::to_string(body.num_formal) +
                        " inputs, expected 2 + " + std::to_string(num_carried) +
                        " loop-carried values");
  }
  const size_t body_outputs = body.graph->outputs().size();
  if (body_outputs < 1 + num_carried) {
    return InvalidInput("the body has " + std::to_string(body_outputs) + " outputs, expected 1 + " +
                        std::to_string(num_carried) + " loop-carried values and scan outputs");
  }
  const size_t num_scan = body_outputs - 1 - num_carried;
  if (init.node.output.size() > num_carried + num_scan) {
    return InvalidInput("the node has " + std::to_string(init.node.output.size()) +
                        " outputs, the body yields " + std::to_string(num_carried + num_scan));
  }
  return KernelPtr(new LoopKernel(std::move(body), num_carried, num_scan));
}

// ---------------------------------------------------------------------------------------
// Scan: runs the body once per slice of the scan inputs, carrying state.

struct ScanConfig {
  size_t num_state = 0;
  size_t num_scan_in = 0;
  size_t num_scan_out = 0;
  std::vector<int64_t> in_axes, in_dirs, out_axes, out_dirs;
};

// One scan over unbatched values: `states` in, final states out; `inputs` sliced along
// their (normalised) axes at positions 0..len-1 (reversed per direction).
Status RunScan(const Body& body, const ScanConfig& cfg, const KernelContext& ctx,
               std::vector<Tensor>& states, const std::vector<const Tensor*>& inputs,
               const std::vector<size_t>& in_axes, int64_t len, std::vector<ScanParts>* scans) {
  std::vector<Tensor> args = body.Args(ctx);
  for (size_t n = 0; n < cfg.num_state; ++n) args[n] = states[n];
  size_t scan_bytes = 0;
  const IterationBudget budget;
  for (int64_t t = 0; t < len; ++t) {
    RETURN_IF_ERROR(IterationBudget::Check(t, len));
    for (size_t j = 0; j < cfg.num_scan_in; ++j) {
      const int64_t pos = cfg.in_dirs[j] ? len - 1 - t : t;
      ASSIGN_OR_RETURN(args[cfg.num_state + j], SliceAxis(*inputs[j], in_axes[j], pos));
    }
    ASSIGN_OR_RETURN(std::vector<Tensor> outs, body.graph->Run(args));
    for (size_t n = 0; n < cfg.num_state; ++n) args[n] = std::move(outs[n]);
    for (size_t k = 0; k < cfg.num_scan_out; ++k) {
      const size_t o = cfg.num_state + k;
      RETURN_IF_ERROR((*scans)[k].Add(std::move(outs[o]), body.OutputName(o), &scan_bytes));
    }
  }
  for (size_t n = 0; n < cfg.num_state; ++n) states[n] = std::move(args[n]);
  return Status::Ok();
}

Result<size_t> ScanOutputAxis(const ScanConfig& cfg, size_t k, size_t part_rank) {
  ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(cfg.out_axes[k], static_cast<int64_t>(part_rank) + 1));
  return static_cast<size_t>(a);
}

// Scan 9+: inputs (initial states..., scan inputs...).
class ScanKernel final : public Kernel {
 public:
  ScanKernel(Body body, ScanConfig cfg) : body_(std::move(body)), cfg_(std::move(cfg)) {}

  Status Run(KernelContext& ctx) const override {
    std::vector<Tensor> states(cfg_.num_state);
    for (size_t n = 0; n < cfg_.num_state; ++n) {
      if (!ctx.input(n)) return InvalidInput("initial state " + std::to_string(n) + " is missing");
      states[n] = *ctx.input(n);
    }
    std::vector<const Tensor*> inputs(cfg_.num_scan_in);
    std::vector<size_t> axes(cfg_.num_scan_in);
    int64_t len = -1;
    for (size_t j = 0; j < cfg_.num_scan_in; ++j) {
      inputs[j] = ctx.input(cfg_.num_state + j);
      if (!inputs[j]) return InvalidInput("scan input " + std::to_string(j) + " is missing");
      ASSIGN_OR_RETURN(int64_t a,
                       NormalizeAxis(cfg_.in_axes[j], static_cast<int64_t>(inputs[j]->rank())));
      axes[j] = static_cast<size_t>(a);
      const int64_t l = inputs[j]->dim(axes[j]);
      if (len >= 0 && l != len) {
        return InvalidInput("scan inputs differ in sequence length: " + std::to_string(len) +
                            " and " + std::to_string(l));
      }
      len = l;
    }
    std::vector<ScanParts> scans(cfg_.num_scan_out);
    RETURN_IF_ERROR(RunScan(body_, cfg_, ctx, states, inputs, axes, len, &scans));
    for (size_t n = 0; n < cfg_.num_state && n < ctx.num_outputs(); ++n) {
      *ctx.outputs[n] = std::move(states[n]);
    }
    for (size_t k = 0; k < cfg_.num_scan_out && cfg_.num_state + k < ctx.num_outputs(); ++k) {
      Tensor& out = *ctx.outputs[cfg_.num_state + k];
      const TensorInfo& declared = body_.graph->outputs()[cfg_.num_state + k];
      if (scans[k].empty()) {
        const size_t rank = declared.shape.size();
        ASSIGN_OR_RETURN(size_t axis, ScanOutputAxis(cfg_, k, rank));
        ASSIGN_OR_RETURN(out, EmptyScanOutput(declared, axis));
        continue;
      }
      ASSIGN_OR_RETURN(size_t axis, ScanOutputAxis(cfg_, k, scans[k].parts()[0].rank()));
      ASSIGN_OR_RETURN(out, StackAxis(scans[k].parts(), axis, cfg_.out_dirs[k] != 0));
    }
    return Status::Ok();
  }

 private:
  Body body_;
  ScanConfig cfg_;
};

// Scan 8: inputs (sequence_lens?, initial states..., scan inputs...), every value with a
// leading batch axis; the scan axis of the inputs is 1. Each batch entry is scanned on its
// own over its sequence length; scan outputs are zero-padded to the longest sequence.
class Scan8Kernel final : public Kernel {
 public:
  Scan8Kernel(Body body, ScanConfig cfg) : body_(std::move(body)), cfg_(std::move(cfg)) {}

  Status Run(KernelContext& ctx) const override {
    const size_t ns = cfg_.num_state, ni = cfg_.num_scan_in, no = cfg_.num_scan_out;
    int64_t batch = -1, max_len = -1;
    for (size_t i = 0; i < ns + ni; ++i) {
      const Tensor* t = ctx.input(1 + i);
      if (!t) return InvalidInput("input " + std::to_string(1 + i) + " is missing");
      if (t->rank() < (i < ns ? 1u : 2u)) {
        return InvalidInput("input " + std::to_string(1 + i) + " lacks the batch" +
                            std::string(i < ns ? "" : " and sequence") + " axes");
      }
      if (batch >= 0 && t->dim(0) != batch) return InvalidInput("inputs differ in batch size");
      batch = t->dim(0);
      if (i >= ns) {
        if (max_len >= 0 && t->dim(1) != max_len) {
          return InvalidInput("scan inputs differ in sequence length");
        }
        max_len = t->dim(1);
      }
    }
    if (batch < 0) batch = 0;
    if (max_len < 0) max_len = 0;
    std::vector<int64_t> lens(static_cast<size_t>(batch), max_len);
    if (const Tensor* sl = ctx.input(0)) {
      if (sl->numel() != batch || (sl->dtype() != DType::kInt64 && sl->dtype() != DType::kInt32)) {
        return InvalidInput("sequence_lens must be int64 or int32 with one entry per batch row");
      }
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t l =
            sl->dtype() == DType::kInt64 ? sl->data<int64_t>()[b] : sl->data<int32_t>()[b];
        if (l < 0 || l > max_len) {
          return InvalidInput("sequence_lens[" + std::to_string(b) + "] = " + std::to_string(l) +
                              " is outside [0, " + std::to_string(max_len) + "]");
        }
        lens[static_cast<size_t>(b)] = l;
      }
    }
    std::vector<std::vector<Tensor>> final_states(ns);
    std::vector<std::vector<Tensor>> scan_rows(no);  // per output: one [len, ...] per batch row
    std::vector<size_t> axes(ni, 0);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Tensor> states(ns);
      for (size_t n = 0; n < ns; ++n) {
        ASSIGN_OR_RETURN(states[n], SliceAxis(*ctx.input(1 + n), 0, b));
      }
      std::vector<Tensor> rows(ni);
      std::vector<const Tensor*> inputs(ni);
      for (size_t j = 0; j < ni; ++j) {
        ASSIGN_OR_RETURN(rows[j], SliceAxis(*ctx.input(1 + ns + j), 0, b));
        inputs[j] = &rows[j];
      }
      std::vector<ScanParts> scans(no);
      RETURN_IF_ERROR(RunScan(body_, cfg_, ctx, states, inputs, axes, lens[b], &scans));
      for (size_t n = 0; n < ns; ++n) final_states[n].push_back(std::move(states[n]));
      for (size_t k = 0; k < no; ++k) {
        Tensor row;
        if (!scans[k].empty()) {
          ASSIGN_OR_RETURN(row, StackAxis(scans[k].parts(), 0, false));
        }
        scan_rows[k].push_back(std::move(row));
      }
    }
    for (size_t n = 0; n < ns && n < ctx.num_outputs(); ++n) {
      if (final_states[n].empty()) {
        *ctx.outputs[n] = *ctx.input(1 + n);
        continue;
      }
      for (const Tensor& s : final_states[n]) {
        if (s.shape() != final_states[n][0].shape() || s.dtype() != final_states[n][0].dtype()) {
          return InvalidInput("final state " + std::to_string(n) + " differs between batch rows");
        }
      }
      ASSIGN_OR_RETURN(*ctx.outputs[n], StackAxis(final_states[n], 0, false));
    }
    for (size_t k = 0; k < no && ns + k < ctx.num_outputs(); ++k) {
      // Per-step shape and type from the first non-empty row (else the declared ones).
      const Tensor* first = nullptr;
      for (const Tensor& r : scan_rows[k]) {
        if (r.defined()) {
          first = &r;
          break;
        }
      }
      std::vector<int64_t> step;
      DType dtype;
      if (first) {
        step.assign(first->shape().begin() + 1, first->shape().end());
        dtype = first->dtype();
      } else {
        ASSIGN_OR_RETURN(Tensor e, EmptyScanOutput(body_.graph->outputs()[ns + k], 0));
        step.assign(e.shape().begin() + 1, e.shape().end());
        dtype = e.dtype();
      }
      std::vector<int64_t> shape = {batch, max_len};
      shape.insert(shape.end(), step.begin(), step.end());
      ASSIGN_OR_RETURN(Tensor out, NewTensor(dtype, shape));
      const int64_t step_elems = ShapeNumel(step);
      for (int64_t b = 0; b < batch; ++b) {
        const Tensor& r = scan_rows[k][static_cast<size_t>(b)];
        if (!r.defined()) continue;
        if (r.dtype() != dtype || r.rank() != step.size() + 1 ||
            !std::equal(step.begin(), step.end(), r.shape().begin() + 1)) {
          return InvalidInput("scan output " + std::to_string(k) + " differs between batch rows");
        }
        CopyElements(r, 0, out, b * max_len * step_elems, r.numel());
      }
      *ctx.outputs[ns + k] = std::move(out);
    }
    return Status::Ok();
  }

 private:
  Body body_;
  ScanConfig cfg_;
};

Result<std::vector<int64_t>> ListAttr(const NodeAttrs& attrs, std::string_view name, size_t n,
                                      bool directions) {
  ASSIGN_OR_RETURN(std::vector<int64_t> v, attrs.Ints(name));
  if (v.empty()) return std::vector<int64_t>(n, 0);
  if (v.size() != n) {
    return InvalidInput("attribute '" + std::string(name) + "' has " + std::to_string(v.size()) +
                        " entries, expected " + std::to_string(n));
  }
  if (directions) {
    for (int64_t d : v) {
      if (d != 0 && d != 1) {
        return InvalidInput("attribute '" + std::string(name) + "' entries must be 0 or 1");
      }
    }
  }
  return v;
}

Result<KernelPtr> BuildScan(const KernelInit& init) {
  const NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t num_scan_inputs, attrs.RequiredInt("num_scan_inputs"));
  const bool v8 = init.opset < 9;
  const size_t declared = init.node.input.size() - (v8 && !init.node.input.empty() ? 1 : 0);
  if (num_scan_inputs < 1 || static_cast<size_t>(num_scan_inputs) > declared) {
    return InvalidInput("num_scan_inputs = " + std::to_string(num_scan_inputs) +
                        " does not fit the node's " + std::to_string(declared) + " inputs");
  }
  ScanConfig cfg;
  cfg.num_scan_in = static_cast<size_t>(num_scan_inputs);
  cfg.num_state = declared - cfg.num_scan_in;
  ASSIGN_OR_RETURN(Body body, CompileBody(init, "body"));
  if (body.num_formal != cfg.num_state + cfg.num_scan_in) {
    return InvalidInput("the body declares " + std::to_string(body.num_formal) +
                        " inputs, expected " + std::to_string(cfg.num_state + cfg.num_scan_in));
  }
  const size_t body_outputs = body.graph->outputs().size();
  if (body_outputs < cfg.num_state) {
    return InvalidInput("the body has " + std::to_string(body_outputs) +
                        " outputs, fewer than the " + std::to_string(cfg.num_state) + " states");
  }
  cfg.num_scan_out = body_outputs - cfg.num_state;
  if (init.node.output.size() > body_outputs) {
    return InvalidInput("the node has " + std::to_string(init.node.output.size()) +
                        " outputs, the body yields " + std::to_string(body_outputs));
  }
  if (v8) {
    ASSIGN_OR_RETURN(cfg.in_dirs, ListAttr(attrs, "directions", cfg.num_scan_in, true));
    cfg.in_axes.assign(cfg.num_scan_in, 0);
    cfg.out_axes.assign(cfg.num_scan_out, 0);
    cfg.out_dirs.assign(cfg.num_scan_out, 0);
    return KernelPtr(new Scan8Kernel(std::move(body), std::move(cfg)));
  }
  ASSIGN_OR_RETURN(cfg.in_dirs, ListAttr(attrs, "scan_input_directions", cfg.num_scan_in, true));
  ASSIGN_OR_RETURN(cfg.in_axes, ListAttr(attrs, "scan_input_axes", cfg.num_scan_in, false));
  ASSIGN_OR_RETURN(cfg.out_dirs, ListAttr(attrs, "scan_output_directions", cfg.num_scan_out, true));
  ASSIGN_OR_RETURN(cfg.out_axes, ListAttr(attrs, "scan_output_axes", cfg.num_scan_out, false));
  return KernelPtr(new ScanKernel(std::move(body), std::move(cfg)));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Outer-scope capture.

Status GraphCaptures(const onnx::GraphProto& graph, int depth, std::vector<std::string>* names) {
  if (depth > kMaxSubgraphDepth) return TooDeep();
  std::unordered_set<std::string> defined;
  for (const auto& t : graph.initializer) defined.insert(t.name);
  for (const auto& v : graph.input) defined.insert(v.name);
  for (const auto& n : graph.node) {
    for (const std::string& o : n.output) defined.insert(o);
  }
  std::unordered_set<std::string> seen(names->begin(), names->end());
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name) && seen.insert(name).second) names->push_back(name);
  };
  std::vector<std::string> inner;
  for (const auto& n : graph.node) {
    for (const std::string& in : n.input) use(in);
    inner.clear();
    RETURN_IF_ERROR(SubgraphCaptures(n, depth, &inner));
    for (const std::string& in : inner) use(in);
  }
  for (const auto& v : graph.output) use(v.name);
  return Status::Ok();
}

Status SubgraphCaptures(const onnx::NodeProto& node, int depth, std::vector<std::string>* names) {
  for (const onnx::AttributeProto& a : node.attribute) {
    if (a.g) RETURN_IF_ERROR(GraphCaptures(*a.g, depth + 1, names));
    for (const auto& g : a.graphs) {
      if (g) RETURN_IF_ERROR(GraphCaptures(*g, depth + 1, names));
    }
  }
  return Status::Ok();
}

// Factories (declared in ops/ops.h, listed in ops/op_table.cc).
Result<KernelPtr> MakeIf(const KernelInit& init) { return BuildIf(init); }
Result<KernelPtr> MakeLoop(const KernelInit& init) { return BuildLoop(init); }
Result<KernelPtr> MakeScan(const KernelInit& init) { return BuildScan(init); }

}  // namespace serveml::engine
