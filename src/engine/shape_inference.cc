#include "engine/shape_inference.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "engine/kernel.h"

namespace serveml::engine {

bool ValueType::IsStatic() const {
  if (!has_rank) return false;
  for (int64_t d : dims) {
    if (d < 0) return false;
  }
  return true;
}

int64_t ValueType::StaticBytes() const {
  const size_t size = DTypeSize(dtype);
  if (size == 0 || !IsStatic()) return -1;
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 16 / d) return -1;
    n *= d;
  }
  return n * static_cast<int64_t>(size);
}

std::string ValueType::ToString() const {
  std::string s = dtype == DType::kUndefined ? "?" : std::string(DTypeName(dtype));
  if (!has_rank) return s + "[?]";
  s += "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    if (dims[i] >= 0) {
      s += std::to_string(dims[i]);
    } else if (dims[i] == kUnknownDim) {
      s += "?";
    } else {
      s += "N" + std::to_string(kFirstSymbolicDim - dims[i]);
    }
  }
  return s + "]";
}

namespace {

bool IsKnown(int64_t d) { return d >= 0; }

// Broadcast of two dims (numpy rules); unknown when undecidable or incompatible.
int64_t MergeBroadcastDim(int64_t x, int64_t y) {
  if (x == 1) return y;
  if (y == 1) return x;
  if (x == y) return x;
  if (IsKnown(x) && IsKnown(y)) return kUnknownDim;  // incompatible: the kernel reports it
  if (IsKnown(x)) return x;                          // y is 1 or x at run time
  if (IsKnown(y)) return y;
  return kUnknownDim;
}

// Two dims that must be equal (e.g. Concat's non-axis dims): the more specific one.
int64_t MergeEqualDim(int64_t x, int64_t y) {
  if (IsKnown(x)) return x;
  if (IsKnown(y)) return y;
  return x == kUnknownDim ? y : x;
}

// Product of dims: known if all are; the symbolic dim if it is the only non-1 factor.
int64_t DimProduct(std::span<const int64_t> dims) {
  int64_t known = 1;
  int64_t sym = 0;  // 0: none seen
  for (int64_t d : dims) {
    if (IsKnown(d)) {
      if (d != 0 && known > std::numeric_limits<int64_t>::max() / d) return kUnknownDim;
      known *= d;
    } else if (d == kUnknownDim || sym != 0) {
      return kUnknownDim;
    } else {
      sym = d;
    }
  }
  if (sym == 0) return known;
  return known == 1 ? sym : kUnknownDim;
}

// Values of a constant 1-D (or scalar) int64/int32 tensor.
std::optional<std::vector<int64_t>> ConstInts(const Tensor* t) {
  if (!t || t->rank() > 1) return std::nullopt;
  std::vector<int64_t> v(static_cast<size_t>(t->numel()));
  if (t->dtype() == DType::kInt64) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t->data<int64_t>()[i];
  } else if (t->dtype() == DType::kInt32) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t->data<int32_t>()[i];
  } else {
    return std::nullopt;
  }
  return v;
}

class NodeInference {
 public:
  NodeInference(const InferNode& n, std::span<const Tensor> constants,
                std::vector<ValueType>& values)
      : n_(n), constants_(constants), values_(values), attrs_(*n.node) {}

  Status Run();

 private:
  size_t num_inputs() const { return n_.inputs.size(); }
  // The input's inferred type, or null for an omitted input.
  const ValueType* In(size_t i) const {
    if (i >= n_.inputs.size() || n_.inputs[i] < 0) return nullptr;
    return &values_[static_cast<size_t>(n_.inputs[i])];
  }
  DType InType(size_t i) const {
    const ValueType* v = In(i);
    return v ? v->dtype : DType::kUndefined;
  }
  const Tensor* Const(size_t i) const {
    if (i >= n_.inputs.size() || n_.inputs[i] < 0) return nullptr;
    const Tensor& t = constants_[static_cast<size_t>(n_.inputs[i])];
    return t.defined() ? &t : nullptr;
  }
  ValueType& Out(size_t i) {
    if (i >= n_.outputs.size()) return scratch_;
    return values_[static_cast<size_t>(n_.outputs[i])];
  }
  int64_t Int(std::string_view name, int64_t def) const {
    auto r = attrs_.Int(name, def);
    return r.ok() ? *r : def;
  }
  std::optional<std::vector<int64_t>> Ints(std::string_view name) const {
    if (!attrs_.Has(name)) return std::nullopt;
    auto r = attrs_.Ints(name);
    if (!r.ok()) return std::nullopt;
    return *r;
  }
  // Axes from the attribute (older opsets) or from a constant input `input`.
  // nullopt: unknown; empty: none given.
  std::optional<std::vector<int64_t>> Axes(size_t input) const {
    if (attrs_.Has("axes")) return Ints("axes");
    if (In(input)) return ConstInts(Const(input));
    return std::vector<int64_t>{};
  }

  void SetShape(size_t out, DType dtype, std::vector<int64_t> dims) {
    ValueType& o = Out(out);
    o.dtype = dtype;
    o.has_rank = true;
    o.dims = std::move(dims);
  }
  void SetRank(size_t out, DType dtype, size_t rank) {
    SetShape(out, dtype, std::vector<int64_t>(rank, kUnknownDim));
  }
  void SetType(size_t out, DType dtype) { Out(out).dtype = dtype; }
  void CopyFrom(size_t out, size_t in, std::optional<DType> dtype = std::nullopt) {
    const ValueType* v = In(in);
    ValueType& o = Out(out);
    if (v) o = *v;
    if (dtype) o.dtype = *dtype;
  }

  // InvalidInput when two of the given inputs have known, different element types.
  Status SameType(std::initializer_list<size_t> inputs) const {
    DType first = DType::kUndefined;
    for (size_t i : inputs) {
      const DType t = InType(i);
      if (t == DType::kUndefined) continue;
      if (first == DType::kUndefined) {
        first = t;
      } else if (t != first) {
        return Mismatch(first, t);
      }
    }
    return Status::Ok();
  }
  Status SameTypeAll() const {
    DType first = DType::kUndefined;
    for (size_t i = 0; i < num_inputs(); ++i) {
      const DType t = InType(i);
      if (t == DType::kUndefined) continue;
      if (first == DType::kUndefined) {
        first = t;
      } else if (t != first) {
        return Mismatch(first, t);
      }
    }
    return Status::Ok();
  }
  Status Mismatch(DType a, DType b) const {
    return InvalidInput(std::string(n_.label) + ": inputs have different element types (" +
                        std::string(DTypeName(a)) + " and " + std::string(DTypeName(b)) + ")");
  }
  DType FirstKnownType() const {
    for (size_t i = 0; i < num_inputs(); ++i) {
      if (InType(i) != DType::kUndefined) return InType(i);
    }
    return DType::kUndefined;
  }

  // Multidirectional broadcast of the present inputs in [first, last).
  void Broadcast(size_t out, DType dtype, size_t first, size_t last) {
    std::vector<int64_t> dims;
    bool have = false;
    for (size_t i = first; i < last && i < num_inputs(); ++i) {
      const ValueType* v = In(i);
      if (!v) continue;
      if (!v->has_rank) {
        SetType(out, dtype);
        return;
      }
      if (!have) {
        dims = v->dims;
        have = true;
        continue;
      }
      const size_t r = std::max(dims.size(), v->dims.size());
      std::vector<int64_t> merged(r);
      for (size_t k = 0; k < r; ++k) {
        const int64_t a = k < dims.size() ? dims[dims.size() - 1 - k] : 1;
        const int64_t b = k < v->dims.size() ? v->dims[v->dims.size() - 1 - k] : 1;
        merged[r - 1 - k] = MergeBroadcastDim(a, b);
      }
      dims = std::move(merged);
    }
    if (have) {
      SetShape(out, dtype, std::move(dims));
    } else {
      SetType(out, dtype);
    }
  }

  Status Default();
  Status MlDomain();
  void Gemm();
  void MatMul();
  void Conv(bool transpose);
  void Pool();
  void SpatialOutputDims(const ValueType& x, const std::vector<int64_t>& kernel, bool ceil_mode,
                         std::vector<int64_t>* out);
  void Reshape();
  void Flatten();
  void Transpose();
  Status Concat();
  void SqueezeUnsqueeze(bool squeeze);
  void Reduce(bool arg);
  void Gather();
  void Expand();

  const InferNode& n_;
  std::span<const Tensor> constants_;
  std::vector<ValueType>& values_;
  NodeAttrs attrs_;
  ValueType scratch_;
};

bool OneOf(std::string_view op, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), op) != names.end();
}

Status NodeInference::Run() {
  if (n_.domain.empty()) return Default();
  if (n_.domain == "ai.onnx.ml") return MlDomain();
  return Status::Ok();
}

Status NodeInference::Default() {
  const std::string& op = n_.node->op_type;
  const DType t0 = InType(0);
  if (OneOf(op, {"Abs",
                 "Acos",
                 "Acosh",
                 "Asin",
                 "Asinh",
                 "Atan",
                 "Atanh",
                 "Ceil",
                 "Celu",
                 "Clip",
                 "Cos",
                 "Cosh",
                 "Elu",
                 "Erf",
                 "Exp",
                 "Floor",
                 "Gelu",
                 "HardSigmoid",
                 "HardSwish",
                 "Hardmax",
                 "LeakyRelu",
                 "Log",
                 "LogSoftmax",
                 "Mish",
                 "Neg",
                 "Reciprocal",
                 "Relu",
                 "Round",
                 "Selu",
                 "Shrink",
                 "Sigmoid",
                 "Sign",
                 "Sin",
                 "Sinh",
                 "Softmax",
                 "Softplus",
                 "Softsign",
                 "Sqrt",
                 "Tan",
                 "Tanh",
                 "ThresholdedRelu",
                 "Identity",
                 "BitwiseNot",
                 "LpNormalization",
                 "InstanceNormalization",
                 "BatchNormalization",
                 "LayerNormalization",
                 "RMSNormalization",
                 "CumSum",
                 "Trilu",
                 "ScatterElements",
                 "ScatterND"})) {
    CopyFrom(0, 0);
    return Status::Ok();
  }
  if (op == "Dropout") {
    CopyFrom(0, 0);
    CopyFrom(1, 0, DType::kBool);
    return Status::Ok();
  }
  if (OneOf(op, {"IsNaN", "IsInf", "Not"})) {
    CopyFrom(0, 0, DType::kBool);
    return Status::Ok();
  }
  if (OneOf(op, {"Add", "Sub", "Mul", "Div", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
                 "BitwiseXor"})) {
    RETURN_IF_ERROR(SameType({0, 1}));
    if (n_.opset < 7 && Int("broadcast", 0) != 0) {
      CopyFrom(0, 0);  // legacy broadcast: B aligns with A, result has A's shape
    } else {
      Broadcast(0, t0 != DType::kUndefined ? t0 : InType(1), 0, 2);
    }
    return Status::Ok();
  }
  if (op == "Pow") {
    if (n_.opset < 7) {
      CopyFrom(0, 0);
    } else {
      Broadcast(0, t0, 0, 2);
    }
    return Status::Ok();
  }
  if (op == "PRelu") {
    RETURN_IF_ERROR(SameType({0, 1}));
    CopyFrom(0, 0);
    return Status::Ok();
  }
  if (OneOf(op,
            {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"})) {
    RETURN_IF_ERROR(SameType({0, 1}));
    if (n_.opset < 7 && Int("broadcast", 0) != 0) {
      CopyFrom(0, 0, DType::kBool);
    } else {
      Broadcast(0, DType::kBool, 0, 2);
    }
    return Status::Ok();
  }
  if (OneOf(op, {"Max", "Min", "Sum", "Mean"})) {
    RETURN_IF_ERROR(SameTypeAll());
    if (n_.opset < 8) {
      CopyFrom(0, 0);  // no broadcasting before opset 8: all shapes equal
    } else {
      Broadcast(0, FirstKnownType(), 0, num_inputs());
    }
    return Status::Ok();
  }
  if (op == "Where") {
    RETURN_IF_ERROR(SameType({1, 2}));
    const DType c = InType(0);
    if (c != DType::kUndefined && c != DType::kBool) {
      return InvalidInput(std::string(n_.label) + ": the condition must be bool, got " +
                          std::string(DTypeName(c)));
    }
    Broadcast(0, InType(1) != DType::kUndefined ? InType(1) : InType(2), 0, 3);
    return Status::Ok();
  }
  if (op == "Cast") {
    const int64_t to = Int("to", 0);
    CopyFrom(0, 0,
             IsKnownDType(static_cast<int32_t>(to)) ? static_cast<DType>(to) : DType::kUndefined);
    return Status::Ok();
  }
  if (op == "CastLike") {
    CopyFrom(0, 0, InType(1));
    return Status::Ok();
  }
  if (op == "Gemm") {
    RETURN_IF_ERROR(SameType({0, 1, 2}));
    Gemm();
    return Status::Ok();
  }
  if (op == "MatMul") {
    RETURN_IF_ERROR(SameType({0, 1}));
    MatMul();
    return Status::Ok();
  }
  if (op == "Conv" || op == "ConvTranspose") {
    RETURN_IF_ERROR(SameType({0, 1, 2}));
    Conv(op == "ConvTranspose");
    return Status::Ok();
  }
  if (OneOf(op, {"MaxPool", "AveragePool", "LpPool"})) {
    Pool();
    return Status::Ok();
  }
  if (OneOf(op, {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})) {
    const ValueType* x = In(0);
    if (x && x->has_rank && x->dims.size() >= 2) {
      std::vector<int64_t> dims(x->dims.size(), 1);
      dims[0] = x->dims[0];
      dims[1] = x->dims[1];
      SetShape(0, t0, std::move(dims));
    } else {
      SetType(0, t0);
    }
    return Status::Ok();
  }
  if (op == "Reshape") {
    Reshape();
    return Status::Ok();
  }
  if (op == "Flatten") {
    Flatten();
    return Status::Ok();
  }
  if (op == "Transpose") {
    Transpose();
    return Status::Ok();
  }
  if (op == "Concat") return Concat();
  if (op == "Squeeze" || op == "Unsqueeze") {
    SqueezeUnsqueeze(op == "Squeeze");
    return Status::Ok();
  }
  if (OneOf(op, {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                 "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"})) {
    Reduce(false);
    return Status::Ok();
  }
  if (op == "ArgMax" || op == "ArgMin") {
    Reduce(true);
    return Status::Ok();
  }
  if (op == "Shape") {
    const ValueType* x = In(0);
    if (x && x->has_rank) {
      const int64_t r = static_cast<int64_t>(x->dims.size());
      int64_t start = Int("start", 0), end = Int("end", r);
      if (start < 0) start += r;
      if (end < 0) end += r;
      start = std::clamp<int64_t>(start, 0, r);
      end = std::clamp<int64_t>(end, 0, r);
      SetShape(0, DType::kInt64, {std::max<int64_t>(0, end - start)});
    } else {
      SetRank(0, DType::kInt64, 1);
    }
    return Status::Ok();
  }
  if (op == "Size") {
    SetShape(0, DType::kInt64, {});
    return Status::Ok();
  }
  if (op == "Gather") {
    Gather();
    return Status::Ok();
  }
  if (op == "GatherElements") {
    const ValueType* idx = In(1);
    if (idx && idx->has_rank) {
      SetShape(0, t0, idx->dims);
    } else {
      SetType(0, t0);
    }
    return Status::Ok();
  }
  if (op == "Expand") {
    Expand();
    return Status::Ok();
  }
  // X's dtype and rank (Resize/Upsample: dims follow scales/sizes).
  if (OneOf(op, {"Slice", "Pad", "Tile", "DepthToSpace", "SpaceToDepth", "Resize", "Upsample"})) {
    const ValueType* x = In(0);
    if (x && x->has_rank) {
      SetRank(0, t0, x->dims.size());
    } else {
      SetType(0, t0);
    }
    return Status::Ok();
  }
  if (op == "Split") {
    const ValueType* x = In(0);
    for (size_t k = 0; k < n_.outputs.size(); ++k) {
      if (x && x->has_rank) {
        SetRank(k, t0, x->dims.size());
      } else {
        SetType(k, t0);
      }
    }
    return Status::Ok();
  }
  if (op == "TopK") {
    const ValueType* x = In(0);
    if (x && x->has_rank) {
      SetRank(0, t0, x->dims.size());
      SetRank(1, DType::kInt64, x->dims.size());
    } else {
      SetType(0, t0);
      SetType(1, DType::kInt64);
    }
    return Status::Ok();
  }
  if (op == "NonZero") {
    const ValueType* x = In(0);
    if (x && x->has_rank) {
      SetShape(0, DType::kInt64, {static_cast<int64_t>(x->dims.size()), kUnknownDim});
    } else {
      SetRank(0, DType::kInt64, 2);
    }
    return Status::Ok();
  }
  if (op == "Range") {
    SetRank(0, t0, 1);
    return Status::Ok();
  }
  if (OneOf(op, {"Compress", "GatherND"})) {
    SetType(0, t0);
    return Status::Ok();
  }
  if (op == "OneHot") {
    SetType(0, InType(2));
    return Status::Ok();
  }
  if (OneOf(op, {"RNN", "GRU", "LSTM"})) {  // Y: rank 4; Y_h, Y_c: rank 3
    SetRank(0, t0, 4);
    SetRank(1, t0, 3);
    if (op == "LSTM") SetRank(2, t0, 3);
    return Status::Ok();
  }
  // Anything else (Constant, ConstantOfShape, EyeLike, ...): unknown.
  return Status::Ok();
}

void NodeInference::Gemm() {
  const ValueType* a = In(0);
  const ValueType* b = In(1);
  const DType t = InType(0);
  if (!a || !b || !a->has_rank || !b->has_rank || a->dims.size() != 2 || b->dims.size() != 2) {
    SetRank(0, t, 2);
    return;
  }
  const bool ta = Int("transA", 0) != 0, tb = Int("transB", 0) != 0;
  SetShape(0, t, {ta ? a->dims[1] : a->dims[0], tb ? b->dims[0] : b->dims[1]});
}

void NodeInference::MatMul() {
  const ValueType* a = In(0);
  const ValueType* b = In(1);
  const DType t = InType(0);
  if (!a || !b || !a->has_rank || !b->has_rank || a->dims.empty() || b->dims.empty()) {
    SetType(0, t);
    return;
  }
  std::vector<int64_t> as = a->dims, bs = b->dims;
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const size_t r = std::max(as.size(), bs.size());
  std::vector<int64_t> dims(r);
  for (size_t k = 2; k < r; ++k) {
    const int64_t x = k < as.size() ? as[as.size() - 1 - k] : 1;
    const int64_t y = k < bs.size() ? bs[bs.size() - 1 - k] : 1;
    dims[r - 1 - k] = MergeBroadcastDim(x, y);
  }
  dims[r - 2] = as[as.size() - 2];
  dims[r - 1] = bs[bs.size() - 1];
  if (b_vec) dims.erase(dims.end() - 1);
  if (a_vec) dims.erase(dims.end() - (b_vec ? 1 : 2));
  SetShape(0, t, std::move(dims));
}

// Spatial output sizes of a sliding window over x [N, C, spatial...] (Conv and the pools):
// strides / dilations / pads / auto_pad from the node's attributes. Dims it cannot derive
// (unknown input size, ceil_mode, malformed attributes) are left as they are in `dims`.
void NodeInference::SpatialOutputDims(const ValueType& x, const std::vector<int64_t>& kernel,
                                      bool ceil_mode, std::vector<int64_t>* out) {
  const size_t spatial = x.dims.size() - 2;
  const std::vector<int64_t> strides = Ints("strides").value_or(std::vector<int64_t>(spatial, 1));
  const std::vector<int64_t> dil = Ints("dilations").value_or(std::vector<int64_t>(spatial, 1));
  const std::vector<int64_t> pads = Ints("pads").value_or(std::vector<int64_t>(2 * spatial, 0));
  auto pad_r = attrs_.String("auto_pad", "NOTSET");
  const std::string auto_pad = pad_r.ok() ? *pad_r : "?";
  if (ceil_mode || kernel.size() != spatial || strides.size() != spatial || dil.size() != spatial ||
      pads.size() != 2 * spatial) {
    return;
  }
  std::vector<int64_t>& dims = *out;
  for (size_t i = 0; i < spatial; ++i) {
    const int64_t in = x.dims[i + 2];
    const int64_t k = kernel[i], s = strides[i], d = dil[i];
    if (!IsKnown(in) || k < 1 || s < 1 || d < 1) continue;
    const int64_t span = (k - 1) * d + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      dims[i + 2] = (in + s - 1) / s;
    } else if (auto_pad == "VALID") {
      if (in >= span) dims[i + 2] = (in - span) / s + 1;
    } else if (auto_pad == "NOTSET") {
      const int64_t padded = in + pads[i] + pads[i + spatial];
      if (padded >= span) dims[i + 2] = (padded - span) / s + 1;
    }
  }
}

void NodeInference::Conv(bool transpose) {
  const ValueType* x = In(0);
  const ValueType* w = In(1);
  const DType t = InType(0);
  if (!x || !x->has_rank || x->dims.size() < 3) {
    SetType(0, t);
    return;
  }
  std::vector<int64_t> dims(x->dims.size(), kUnknownDim);
  dims[0] = x->dims[0];
  const int64_t group = Int("group", 1);
  if (w && w->has_rank && w->dims.size() == x->dims.size()) {
    if (!transpose) {
      dims[1] = w->dims[0];
    } else if (IsKnown(w->dims[1]) && group > 0) {
      dims[1] = w->dims[1] * group;
    }
  }
  if (transpose) {  // output sizes depend on output_shape/output_padding: left dynamic
    SetShape(0, t, std::move(dims));
    return;
  }
  std::vector<int64_t> kernel = Ints("kernel_shape").value_or(std::vector<int64_t>{});
  if (kernel.empty() && w && w->has_rank && w->dims.size() == x->dims.size()) {
    kernel.assign(w->dims.begin() + 2, w->dims.end());
  }
  SpatialOutputDims(*x, kernel, /*ceil_mode=*/false, &dims);
  SetShape(0, t, std::move(dims));
}

void NodeInference::Pool() {
  const ValueType* x = In(0);
  const DType t = InType(0);
  if (!x || !x->has_rank || x->dims.size() < 3) {
    SetType(0, t);
    SetType(1, DType::kInt64);
    return;
  }
  std::vector<int64_t> dims(x->dims.size(), kUnknownDim);
  dims[0] = x->dims[0];
  dims[1] = x->dims[1];
  const std::vector<int64_t> kernel = Ints("kernel_shape").value_or(std::vector<int64_t>{});
  SpatialOutputDims(*x, kernel, Int("ceil_mode", 0) != 0, &dims);
  SetShape(0, t, dims);
  SetShape(1, DType::kInt64, std::move(dims));
}

void NodeInference::Reshape() {
  const ValueType* x = In(0);
  const DType t = InType(0);
  const auto shape = ConstInts(Const(1));
  if (!shape) {
    const ValueType* s = In(1);
    if (s && s->has_rank && s->dims.size() == 1 && IsKnown(s->dims[0])) {
      SetRank(0, t, static_cast<size_t>(s->dims[0]));
    } else {
      SetType(0, t);
    }
    return;
  }
  const bool allow_zero = Int("allowzero", 0) != 0;
  std::vector<int64_t> dims(shape->size());
  int infer_at = -1;
  for (size_t i = 0; i < shape->size(); ++i) {
    const int64_t s = (*shape)[i];
    if (s == 0 && !allow_zero) {
      dims[i] = x && x->has_rank && i < x->dims.size() ? x->dims[i] : kUnknownDim;
    } else if (s == -1) {
      if (infer_at >= 0) {  // invalid: the kernel reports it
        SetRank(0, t, shape->size());
        return;
      }
      infer_at = static_cast<int>(i);
      dims[i] = kUnknownDim;
    } else if (s < 0) {
      SetRank(0, t, shape->size());
      return;
    } else {
      dims[i] = s;
    }
  }
  if (infer_at >= 0 && x && x->has_rank) {
    // Cancel symbolic dims present on both sides, then divide the known products.
    std::vector<int64_t> in_sym, out_sym;
    int64_t in_known = 1, out_known = 1;
    bool ok = true;
    for (int64_t d : x->dims) {
      if (IsKnown(d)) {
        in_known *= d;
      } else if (d == kUnknownDim) {
        ok = false;
      } else {
        in_sym.push_back(d);
      }
    }
    for (size_t i = 0; i < dims.size(); ++i) {
      if (static_cast<int>(i) == infer_at) continue;
      if (IsKnown(dims[i])) {
        out_known *= dims[i];
      } else if (dims[i] == kUnknownDim) {
        ok = false;
      } else {
        auto it = std::find(in_sym.begin(), in_sym.end(), dims[i]);
        if (it != in_sym.end()) {
          in_sym.erase(it);
        } else {
          out_sym.push_back(dims[i]);
        }
      }
    }
    if (ok && out_sym.empty() && out_known > 0) {
      if (in_sym.empty() && in_known % out_known == 0) {
        dims[infer_at] = in_known / out_known;
      } else if (in_sym.size() == 1 && in_known == out_known) {
        dims[infer_at] = in_sym[0];
      }
    }
  }
  SetShape(0, t, std::move(dims));
}

void NodeInference::Flatten() {
  const ValueType* x = In(0);
  const DType t = InType(0);
  if (!x || !x->has_rank) {
    SetRank(0, t, 2);
    return;
  }
  const int64_t r = static_cast<int64_t>(x->dims.size());
  int64_t axis = Int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) {
    SetRank(0, t, 2);
    return;
  }
  std::span<const int64_t> d(x->dims);
  SetShape(0, t,
           {DimProduct(d.subspan(0, static_cast<size_t>(axis))),
            DimProduct(d.subspan(static_cast<size_t>(axis)))});
}

void NodeInference::Transpose() {
  const ValueType* x = In(0);
  const DType t = InType(0);
  if (!x || !x->has_rank) {
    SetType(0, t);
    return;
  }
  const size_t r = x->dims.size();
  std::vector<int64_t> perm = Ints("perm").value_or(std::vector<int64_t>{});
  if (perm.empty()) {
    for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
  }
  if (perm.size() != r) {
    SetRank(0, t, r);
    return;
  }
  std::vector<int64_t> dims(r);
  for (size_t i = 0; i < r; ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(r)) {
      SetRank(0, t, r);
      return;
    }
    dims[i] = x->dims[static_cast<size_t>(perm[i])];
  }
  SetShape(0, t, std::move(dims));
}

Status NodeInference::Concat() {
  RETURN_IF_ERROR(SameTypeAll());
  const DType t = FirstKnownType();
  const ValueType* first = nullptr;
  for (size_t i = 0; i < num_inputs(); ++i) {
    const ValueType* v = In(i);
    if (v && v->has_rank) {
      first = v;
      break;
    }
  }
  if (!first) {
    SetType(0, t);
    return Status::Ok();
  }
  const int64_t r = static_cast<int64_t>(first->dims.size());
  int64_t axis = Int("axis", 0);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) {
    SetRank(0, t, static_cast<size_t>(r));
    return Status::Ok();
  }
  std::vector<int64_t> dims(first->dims.size(), kUnknownDim);
  int64_t total = 0;
  for (size_t i = 0; i < num_inputs(); ++i) {
    const ValueType* v = In(i);
    if (!v) continue;
    if (!v->has_rank || v->dims.size() != first->dims.size()) {
      total = kUnknownDim;
      continue;
    }
    for (size_t k = 0; k < dims.size(); ++k) {
      if (static_cast<int64_t>(k) == axis) continue;
      dims[k] = MergeEqualDim(dims[k], v->dims[k]);
    }
    const int64_t a = v->dims[static_cast<size_t>(axis)];
    total = (total >= 0 && IsKnown(a)) ? total + a : kUnknownDim;
  }
  dims[static_cast<size_t>(axis)] = total;
  SetShape(0, t, std::move(dims));
  return Status::Ok();
}

void NodeInference::SqueezeUnsqueeze(bool squeeze) {
  const ValueType* x = In(0);
  const DType t = InType(0);
  const auto axes = Axes(1);
  if (!x || !x->has_rank || !axes) {
    SetType(0, t);
    return;
  }
  const int64_t r = static_cast<int64_t>(x->dims.size());
  if (squeeze) {
    std::vector<bool> drop(x->dims.size(), false);
    if (axes->empty()) {
      for (size_t i = 0; i < x->dims.size(); ++i) {
        if (x->dims[i] == 1) {
          drop[i] = true;
        } else if (!IsKnown(x->dims[i])) {
          SetType(0, t);  // unknown whether it is dropped
          return;
        }
      }
    }
    for (int64_t a : *axes) {
      if (a < 0) a += r;
      if (a < 0 || a >= r) {
        SetType(0, t);
        return;
      }
      drop[static_cast<size_t>(a)] = true;
    }
    std::vector<int64_t> dims;
    for (size_t i = 0; i < x->dims.size(); ++i) {
      if (!drop[i]) dims.push_back(x->dims[i]);
    }
    SetShape(0, t, std::move(dims));
    return;
  }
  const int64_t out_rank = r + static_cast<int64_t>(axes->size());
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : *axes) {
    if (a < 0) a += out_rank;
    if (a < 0 || a >= out_rank || inserted[static_cast<size_t>(a)]) {
      SetType(0, t);
      return;
    }
    inserted[static_cast<size_t>(a)] = true;
  }
  std::vector<int64_t> dims;
  size_t src = 0;
  for (int64_t i = 0; i < out_rank; ++i) {
    dims.push_back(inserted[static_cast<size_t>(i)] ? 1 : x->dims[src++]);
  }
  SetShape(0, t, std::move(dims));
}

void NodeInference::Reduce(bool arg) {
  const ValueType* x = In(0);
  const DType t = arg ? DType::kInt64 : InType(0);
  const bool keep = Int("keepdims", 1) != 0;
  if (!x || !x->has_rank) {
    SetType(0, t);
    return;
  }
  const int64_t r = static_cast<int64_t>(x->dims.size());
  std::vector<int64_t> axes;
  if (arg) {
    axes.push_back(Int("axis", 0));
  } else {
    const auto a = Axes(1);
    if (!a) {
      SetType(0, t);
      return;
    }
    axes = *a;
    if (axes.empty()) {
      if (Int("noop_with_empty_axes", 0) != 0) {
        CopyFrom(0, 0);
        return;
      }
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    }
  }
  std::vector<bool> reduced(x->dims.size(), false);
  for (int64_t a : axes) {
    if (a < 0) a += r;
    if (a < 0 || a >= r) {
      SetType(0, t);
      return;
    }
    reduced[static_cast<size_t>(a)] = true;
  }
  std::vector<int64_t> dims;
  for (size_t i = 0; i < x->dims.size(); ++i) {
    if (!reduced[i]) {
      dims.push_back(x->dims[i]);
    } else if (keep) {
      dims.push_back(1);
    }
  }
  SetShape(0, t, std::move(dims));
}

void NodeInference::Gather() {
  const ValueType* x = In(0);
  const ValueType* idx = In(1);
  const DType t = InType(0);
  if (!x || !idx || !x->has_rank || !idx->has_rank || x->dims.empty()) {
    SetType(0, t);
    return;
  }
  const int64_t r = static_cast<int64_t>(x->dims.size());
  int64_t axis = Int("axis", 0);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) {
    SetType(0, t);
    return;
  }
  std::vector<int64_t> dims(x->dims.begin(), x->dims.begin() + axis);
  dims.insert(dims.end(), idx->dims.begin(), idx->dims.end());
  dims.insert(dims.end(), x->dims.begin() + axis + 1, x->dims.end());
  SetShape(0, t, std::move(dims));
}

void NodeInference::Expand() {
  const ValueType* x = In(0);
  const DType t = InType(0);
  const auto shape = ConstInts(Const(1));
  if (!x || !x->has_rank || !shape) {
    SetType(0, t);
    return;
  }
  const size_t r = std::max(x->dims.size(), shape->size());
  std::vector<int64_t> dims(r);
  for (size_t k = 0; k < r; ++k) {
    const int64_t a = k < x->dims.size() ? x->dims[x->dims.size() - 1 - k] : 1;
    const int64_t b = k < shape->size() ? (*shape)[shape->size() - 1 - k] : 1;
    dims[r - 1 - k] = b < 0 ? kUnknownDim : MergeBroadcastDim(a, b);
  }
  SetShape(0, t, std::move(dims));
}

Status NodeInference::MlDomain() {
  const std::string& op = n_.node->op_type;
  const ValueType* x = In(0);
  // Rows of a [N, F] or [F] input (a 1-D input is one row).
  int64_t rows = kUnknownDim;
  if (x && x->has_rank) {
    if (x->dims.size() == 2) rows = x->dims[0];
    if (x->dims.size() == 1) rows = 1;
  }
  auto label_type = [&]() {
    if (attrs_.Has("classlabels_strings")) return DType::kString;
    if (attrs_.Has("classlabels_ints") || attrs_.Has("classlabels_int64s")) return DType::kInt64;
    return DType::kUndefined;
  };
  if (op == "LinearClassifier" || op == "SVMClassifier" || op == "TreeEnsembleClassifier") {
    const DType lt = label_type();
    SetShape(0, lt, {rows});
    SetShape(1, DType::kFloat32, {rows, kUnknownDim});
    return Status::Ok();
  }
  if (op == "LinearRegressor") {
    SetShape(0, DType::kFloat32, {rows, Int("targets", 1)});
    return Status::Ok();
  }
  if (op == "TreeEnsembleRegressor") {
    SetShape(0, DType::kFloat32, {rows, Int("n_targets", 1)});
    return Status::Ok();
  }
  if (op == "TreeEnsemble") {
    const DType t = InType(0);
    const DType out = t == DType::kFloat64   ? DType::kFloat64
                      : t == DType::kFloat32 ? DType::kFloat32
                                             : DType::kUndefined;
    SetShape(0, out, {rows, Int("n_targets", 1)});
    return Status::Ok();
  }
  if (op == "SVMRegressor") {
    SetShape(0, DType::kFloat32, {rows, 1});
    return Status::Ok();
  }
  if (op == "ZipMap") {
    int64_t classes = kUnknownDim;
    if (auto v = Ints("classlabels_int64s")) {
      classes = static_cast<int64_t>(v->size());
    } else if (attrs_.Has("classlabels_strings")) {
      auto s = attrs_.Strings("classlabels_strings");
      if (s.ok()) classes = static_cast<int64_t>(s->size());
    }
    SetShape(0, DType::kFloat32, {rows, classes});
    return Status::Ok();
  }
  if (op == "Binarizer") {
    CopyFrom(0, 0);
    return Status::Ok();
  }
  if (op == "Scaler") {
    CopyFrom(0, 0, DType::kFloat32);
    return Status::Ok();
  }
  if (op == "Normalizer") {
    SetType(0, DType::kFloat32);
    return Status::Ok();
  }
  if (op == "FeatureVectorizer") {
    const auto dims = Ints("inputdimensions");
    int64_t total = kUnknownDim;
    if (dims) {
      total = 0;
      for (int64_t d : *dims) total = (total >= 0 && d >= 0) ? total + d : kUnknownDim;
    }
    SetShape(0, DType::kFloat32, {kUnknownDim, total});
    return Status::Ok();
  }
  if (op == "ArrayFeatureExtractor") {
    SetType(0, InType(0));
    return Status::Ok();
  }
  if (op == "OneHotEncoder") {
    SetType(0, DType::kFloat32);
    return Status::Ok();
  }
  if (op == "CategoryMapper") {
    const DType t = InType(0);
    SetType(0, t == DType::kString  ? DType::kInt64
               : t == DType::kInt64 ? DType::kString
                                    : DType::kUndefined);
    if (x && x->has_rank) {
      Out(0).has_rank = true;
      Out(0).dims = x->dims;
    }
    return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

Status InferShapes(std::span<const InferNode> nodes, std::span<const Tensor> constants,
                   std::vector<ValueType>* values) {
  for (size_t id = 0; id < constants.size() && id < values->size(); ++id) {
    const Tensor& t = constants[id];
    if (!t.defined()) continue;
    ValueType& v = (*values)[id];
    v.dtype = t.dtype();
    v.has_rank = true;
    v.dims = t.shape();
  }
  for (const InferNode& n : nodes) {
    NodeInference inf(n, constants, *values);
    RETURN_IF_ERROR(inf.Run());
  }
  return Status::Ok();
}

}  // namespace serveml::engine
