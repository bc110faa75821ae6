// ONNX-ML preprocessing operators produced by scikit-learn converters: Scaler, Imputer,
// Binarizer, OneHotEncoder, LabelEncoder (opsets 1-4), CategoryMapper and FeatureVectorizer,
// with onnxruntime's semantics (types, broadcasting of per-feature attributes, defaults).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <variant>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ml_common.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// Elements per row for operators that broadcast per-feature attributes: the last dimension
// of a 1-D input, else dimension 1 (onnxruntime's "stride").
int64_t FeatureStride(const Tensor& x) { return x.rank() == 1 ? x.dim(0) : x.dim(1); }

// ---- Scaler ---------------------------------------------------------------------------------

class ScalerKernel final : public Kernel {
 public:
  ScalerKernel(std::vector<float> offset, std::vector<float> scale)
      : offset_(std::move(offset)), scale_(std::move(scale)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Scaler needs an input");
    if (x->rank() == 0) return InvalidInput("Scaler input must not be a scalar");
    const int64_t stride = FeatureStride(*x);
    const bool per_feature = static_cast<int64_t>(offset_.size()) == stride &&
                             static_cast<int64_t>(scale_.size()) == stride;
    if (!per_feature && (offset_.size() != 1 || scale_.size() != 1)) {
      return InvalidInput("Scaler offset and scale must both have 1 or " + std::to_string(stride) +
                          " (features) values, got " + std::to_string(offset_.size()) + " and " +
                          std::to_string(scale_.size()));
    }
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, x->shape()));
    float* out = y.data<float>();
    const int64_t total = x->numel();
    Status st = Dispatch<float, double, int64_t, int32_t>(x->dtype(), "Scaler", [&](auto tag) {
      using T = decltype(tag);
      const T* in = x->data<T>();
      for (int64_t i = 0; i < total; ++i) {
        const int64_t k = per_feature ? i % stride : 0;
        out[i] = static_cast<float>((in[i] - offset_[k]) * scale_[k]);
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::vector<float> offset_;
  std::vector<float> scale_;
};

// ---- Imputer --------------------------------------------------------------------------------

class ImputerKernel final : public Kernel {
 public:
  ImputerKernel(std::vector<float> floats, float replaced_float, std::vector<int64_t> ints,
                int64_t replaced_int)
      : floats_(std::move(floats)),
        replaced_float_(replaced_float),
        ints_(std::move(ints)),
        replaced_int_(replaced_int) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Imputer needs an input");
    if (x->rank() == 0) return InvalidInput("Imputer input must not be a scalar");
    if (x->dtype() == DType::kFloat32) return Impute<float>(ctx, *x, replaced_float_, floats_);
    if (x->dtype() == DType::kInt64) return Impute<int64_t>(ctx, *x, replaced_int_, ints_);
    return InvalidInput("Imputer input must be float or int64, got " +
                        std::string(DTypeName(x->dtype())));
  }

 private:
  template <typename T>
  static Status Impute(KernelContext& ctx, const Tensor& x, T replaced,
                       const std::vector<T>& values) {
    if (values.empty()) {
      return InvalidInput(std::string("Imputer has no imputed values for ") +
                          (std::is_same_v<T, float> ? "float" : "int64") + " input");
    }
    const int64_t stride = FeatureStride(x);
    const bool per_feature = static_cast<int64_t>(values.size()) == stride;
    ASSIGN_OR_RETURN(Tensor y, NewTensor(x.dtype(), x.shape()));
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const bool nan_replaced = std::isnan(static_cast<float>(replaced));
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool hit = nan_replaced ? std::isnan(static_cast<float>(in[i])) : in[i] == replaced;
      out[i] = hit ? values[per_feature ? i % stride : 0] : in[i];
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

  std::vector<float> floats_;
  float replaced_float_;
  std::vector<int64_t> ints_;
  int64_t replaced_int_;
};

// ---- Binarizer ------------------------------------------------------------------------------

class BinarizerKernel final : public Kernel {
 public:
  explicit BinarizerKernel(float threshold) : threshold_(threshold) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Binarizer needs an input");
    ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), x->shape()));
    Status st = Dispatch<float, double, int64_t, int32_t>(x->dtype(), "Binarizer", [&](auto tag) {
      using T = decltype(tag);
      const T* in = x->data<T>();
      T* out = y.data<T>();
      for (int64_t i = 0; i < x->numel(); ++i) {
        if (std::isnan(static_cast<float>(in[i]))) {
          return InvalidInput("Binarizer input element " + std::to_string(i) + " is NaN");
        }
        out[i] = in[i] > threshold_ ? T(1) : T(0);
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  float threshold_;
};

// ---- OneHotEncoder --------------------------------------------------------------------------

class OneHotEncoderKernel final : public Kernel {
 public:
  OneHotEncoderKernel(std::unordered_map<int64_t, int64_t> ints,
                      std::unordered_map<std::string, int64_t> strings, int64_t categories,
                      bool zeros)
      : ints_(std::move(ints)),
        strings_(std::move(strings)),
        categories_(categories),
        zeros_(zeros) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("OneHotEncoder needs an input");
    std::vector<int64_t> shape = x->shape();
    shape.push_back(categories_);
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, shape));
    float* out = y.data<float>();
    auto set = [&](int64_t i, int64_t idx) -> Status {
      if (idx >= 0) {
        out[i * categories_ + idx] = 1.f;
      } else if (!zeros_) {
        return InvalidInput("OneHotEncoder got an unknown category and zeros = 0");
      }
      return Status::Ok();
    };
    if (x->dtype() == DType::kString) {
      if (strings_.empty() && !ints_.empty()) {
        return InvalidInput("OneHotEncoder has integer categories but got a string input");
      }
      for (int64_t i = 0; i < x->numel(); ++i) {
        auto it = strings_.find(x->strings()[i]);
        RETURN_IF_ERROR(set(i, it == strings_.end() ? -1 : it->second));
      }
    } else {
      if (ints_.empty() && !strings_.empty()) {
        return InvalidInput("OneHotEncoder has string categories but got a numeric input");
      }
      Status st = Dispatch<int64_t, int32_t, float, double>(
          x->dtype(), "OneHotEncoder", [&](auto tag) -> Status {
            using T = decltype(tag);
            const T* in = x->data<T>();
            for (int64_t i = 0; i < x->numel(); ++i) {
              auto it = ints_.find(static_cast<int64_t>(in[i]));
              RETURN_IF_ERROR(set(i, it == ints_.end() ? -1 : it->second));
            }
            return Status::Ok();
          });
      RETURN_IF_ERROR(st);
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::unordered_map<int64_t, int64_t> ints_;
  std::unordered_map<std::string, int64_t> strings_;
  int64_t categories_;
  bool zeros_;
};

// ---- LabelEncoder / CategoryMapper -----------------------------------------------------------

// A key or value of a label map: int64, float, double, string or int16 (opset 4 tensors).
using Label = std::variant<int64_t, float, double, std::string, int16_t>;

struct LabelHash {
  size_t operator()(const Label& l) const {
    return std::visit(
        [](const auto& v) -> size_t {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_floating_point_v<V>) {
            if (std::isnan(v)) return 0x7ff8;  // every NaN hashes alike
            if (v == 0) return 0;              // -0.0 == 0.0
          }
          return std::hash<V>()(v);
        },
        l);
  }
};

// Equality where NaN equals NaN when `nan_equal` (LabelEncoder opset 4).
struct LabelEq {
  bool nan_equal = false;
  bool operator()(const Label& a, const Label& b) const {
    if (a.index() != b.index()) return false;
    return std::visit(
        [&](const auto& x) -> bool {
          using V = std::decay_t<decltype(x)>;
          const V& y = std::get<V>(b);
          if constexpr (std::is_floating_point_v<V>) {
            if (nan_equal && std::isnan(x) && std::isnan(y)) return true;
          }
          return x == y;
        },
        a);
  }
};

using LabelMap = std::unordered_map<Label, Label, LabelHash, LabelEq>;

DType LabelDType(const Label& l) {
  switch (l.index()) {
    case 0:
      return DType::kInt64;
    case 1:
      return DType::kFloat32;
    case 2:
      return DType::kFloat64;
    case 4:
      return DType::kInt16;
    default:
      return DType::kString;
  }
}

// Maps every input element through `map` (a missing key gives `def`). The input type must be
// the key type; the output has the value type.
class LabelMapKernel final : public Kernel {
 public:
  LabelMapKernel(std::string op, LabelMap map, Label key_proto, Label def)
      : op_(std::move(op)),
        map_(std::move(map)),
        key_proto_(std::move(key_proto)),
        def_(std::move(def)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput(op_ + " needs an input");
    const DType kt = LabelDType(key_proto_);
    if (x->dtype() != kt) {
      return InvalidInput(op_ + " input must be " + std::string(DTypeName(kt)) + ", got " +
                          std::string(DTypeName(x->dtype())));
    }
    ASSIGN_OR_RETURN(Tensor y, NewTensor(LabelDType(def_), x->shape()));
    Label key = key_proto_;
    for (int64_t i = 0; i < x->numel(); ++i) {
      switch (kt) {
        case DType::kInt64:
          key = x->data<int64_t>()[i];
          break;
        case DType::kFloat32:
          key = x->data<float>()[i];
          break;
        case DType::kFloat64:
          key = x->data<double>()[i];
          break;
        case DType::kInt16:
          key = x->data<int16_t>()[i];
          break;
        default:
          key = x->strings()[i];
          break;
      }
      auto it = map_.find(key);
      const Label& v = it == map_.end() ? def_ : it->second;
      switch (v.index()) {
        case 0:
          y.data<int64_t>()[i] = std::get<int64_t>(v);
          break;
        case 1:
          y.data<float>()[i] = std::get<float>(v);
          break;
        case 2:
          y.data<double>()[i] = std::get<double>(v);
          break;
        case 4:
          y.data<int16_t>()[i] = std::get<int16_t>(v);
          break;
        default:
          y.strings()[i] = std::get<std::string>(v);
          break;
      }
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::string op_;
  LabelMap map_;
  Label key_proto_;
  Label def_;
};

// LabelEncoder opset 1 and CategoryMapper pick the direction from the input type, so they
// hold both maps.
class BidirectionalMapKernel final : public Kernel {
 public:
  BidirectionalMapKernel(std::unique_ptr<Kernel> from_string, std::unique_ptr<Kernel> from_int)
      : from_string_(std::move(from_string)), from_int_(std::move(from_int)) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("the label map needs an input");
    return x->dtype() == DType::kString ? from_string_->Run(ctx) : from_int_->Run(ctx);
  }

 private:
  std::unique_ptr<Kernel> from_string_;
  std::unique_ptr<Kernel> from_int_;
};

// One list of keys or values of LabelEncoder opset 2+: the `<base>_strings`,
// `<base>_int64s`, `<base>_floats` or `<base>_tensor` attribute (exactly one).
Result<std::vector<Label>> ReadLabelList(const onnx::NodeProto& node, const std::string& base,
                                         int64_t opset) {
  NodeAttrs attrs(node);
  std::vector<std::vector<Label>> found;
  if (attrs.Has(base + "_strings")) {
    ASSIGN_OR_RETURN(std::vector<std::string> v, attrs.Strings(base + "_strings"));
    found.emplace_back(v.begin(), v.end());
  }
  if (attrs.Has(base + "_int64s")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> v, attrs.Ints(base + "_int64s"));
    found.emplace_back(v.begin(), v.end());
  }
  if (attrs.Has(base + "_floats")) {
    ASSIGN_OR_RETURN(std::vector<float> v, attrs.Floats(base + "_floats"));
    found.emplace_back(v.begin(), v.end());
  }
  if (opset >= 4) {
    ASSIGN_OR_RETURN(std::optional<Tensor> t, TensorAttr(node, base + "_tensor"));
    if (t) {
      std::vector<Label> v;
      switch (t->dtype()) {
        case DType::kInt64:
          v.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
          break;
        case DType::kFloat32:
          v.assign(t->data<float>(), t->data<float>() + t->numel());
          break;
        case DType::kFloat64:
          v.assign(t->data<double>(), t->data<double>() + t->numel());
          break;
        case DType::kString:
          v.assign(t->strings().begin(), t->strings().end());
          break;
        case DType::kInt16:
          v.assign(t->data<int16_t>(), t->data<int16_t>() + t->numel());
          break;
        default:
          return InvalidInput("LabelEncoder " + base +
                              "_tensor must be int64, int16, float, "
                              "double or string, got " +
                              std::string(DTypeName(t->dtype())));
      }
      found.push_back(std::move(v));
    }
  }
  if (found.size() != 1) {
    return InvalidInput("LabelEncoder needs exactly one of the " + base + "_* attributes, got " +
                        std::to_string(found.size()));
  }
  return std::move(found[0]);
}

// The type of a label list, from its first element or from which attribute held it.
Result<Label> LabelListProto(const onnx::NodeProto& node, const std::string& base,
                             const std::vector<Label>& list) {
  if (!list.empty()) {
    Label l = list[0];
    return l;
  }
  NodeAttrs attrs(node);
  if (attrs.Has(base + "_strings")) return Label(std::string());
  if (attrs.Has(base + "_int64s")) return Label(int64_t{0});
  if (attrs.Has(base + "_floats")) return Label(0.f);
  ASSIGN_OR_RETURN(std::optional<Tensor> t, TensorAttr(node, base + "_tensor"));
  if (t && t->dtype() == DType::kFloat64) return Label(0.0);
  if (t && t->dtype() == DType::kString) return Label(std::string());
  if (t && t->dtype() == DType::kFloat32) return Label(0.f);
  if (t && t->dtype() == DType::kInt16) return Label(int16_t{0});
  return Label(int64_t{0});
}

// ---- FeatureVectorizer ----------------------------------------------------------------------

class FeatureVectorizerKernel final : public Kernel {
 public:
  explicit FeatureVectorizerKernel(std::vector<int64_t> dims) : dims_(std::move(dims)) {
    for (int64_t d : dims_) total_ += d;
  }

  Status Run(KernelContext& ctx) const override {
    if (ctx.num_inputs() != dims_.size()) {
      return InvalidInput("FeatureVectorizer has " + std::to_string(dims_.size()) +
                          " inputdimensions for " + std::to_string(ctx.num_inputs()) + " inputs");
    }
    const Tensor* first = ctx.input(0);
    if (!first || first->rank() == 0) return InvalidInput("FeatureVectorizer needs inputs");
    const int64_t n = first->rank() == 1 ? 1 : first->dim(0);
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, {n, total_}));
    float* out = y.data<float>();
    int64_t offset = 0;
    for (size_t k = 0; k < dims_.size(); ++k) {
      const Tensor* x = ctx.input(k);
      if (!x || x->rank() == 0) return InvalidInput("FeatureVectorizer input is missing or scalar");
      const int64_t rows = x->rank() == 1 ? 1 : x->dim(0);
      if (rows != n) {
        return InvalidInput("FeatureVectorizer inputs must have the same number of rows");
      }
      const int64_t width = rows == 0 ? 0 : x->numel() / rows;
      const int64_t copy = std::min(width, dims_[k]);
      Status st =
          Dispatch<float, double, int64_t, int32_t>(x->dtype(), "FeatureVectorizer", [&](auto tag) {
            using T = decltype(tag);
            const T* in = x->data<T>();
            for (int64_t r = 0; r < n; ++r) {
              for (int64_t j = 0; j < copy; ++j) {
                out[r * total_ + offset + j] = static_cast<float>(in[r * width + j]);
              }
            }
            return Status::Ok();
          });
      RETURN_IF_ERROR(st);
      offset += dims_[k];
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::vector<int64_t> dims_;
  int64_t total_ = 0;
};

}  // namespace

Result<KernelPtr> MakeScaler(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<float> offset, attrs.Floats("offset"));
  ASSIGN_OR_RETURN(std::vector<float> scale, attrs.Floats("scale"));
  if (offset.empty() || scale.empty()) {
    return InvalidInput("Scaler needs both offset and scale");
  }
  return KernelPtr(new ScalerKernel(std::move(offset), std::move(scale)));
}

Result<KernelPtr> MakeImputer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<float> floats, attrs.Floats("imputed_value_floats"));
  ASSIGN_OR_RETURN(std::vector<int64_t> ints, attrs.Ints("imputed_value_int64s"));
  ASSIGN_OR_RETURN(float replaced_float, attrs.Float("replaced_value_float", 0.f));
  ASSIGN_OR_RETURN(int64_t replaced_int, attrs.Int("replaced_value_int64", 0));
  if (floats.empty() && ints.empty()) {
    return InvalidInput("Imputer needs imputed_value_floats or imputed_value_int64s");
  }
  return KernelPtr(
      new ImputerKernel(std::move(floats), replaced_float, std::move(ints), replaced_int));
}

Result<KernelPtr> MakeBinarizer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(float threshold, attrs.Float("threshold", 0.f));
  return KernelPtr(new BinarizerKernel(threshold));
}

Result<KernelPtr> MakeOneHotEncoder(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> cats_i, attrs.Ints("cats_int64s"));
  ASSIGN_OR_RETURN(std::vector<std::string> cats_s, attrs.Strings("cats_strings"));
  ASSIGN_OR_RETURN(int64_t zeros, attrs.Int("zeros", 1));
  if (cats_i.empty() == cats_s.empty()) {
    return InvalidInput("OneHotEncoder needs exactly one of cats_int64s and cats_strings");
  }
  std::unordered_map<int64_t, int64_t> ints;
  std::unordered_map<std::string, int64_t> strings;
  for (size_t i = 0; i < cats_i.size(); ++i) ints[cats_i[i]] = static_cast<int64_t>(i);
  for (size_t i = 0; i < cats_s.size(); ++i) strings[cats_s[i]] = static_cast<int64_t>(i);
  const int64_t n = static_cast<int64_t>(cats_i.empty() ? cats_s.size() : cats_i.size());
  return KernelPtr(new OneHotEncoderKernel(std::move(ints), std::move(strings), n, zeros != 0));
}

Result<KernelPtr> MakeLabelEncoder(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string def_s, attrs.String("default_string", "_Unused"));
  ASSIGN_OR_RETURN(int64_t def_i, attrs.Int("default_int64", -1));
  if (init.opset < 2) {
    ASSIGN_OR_RETURN(std::vector<std::string> classes, attrs.Strings("classes_strings"));
    LabelMap to_int(16, LabelHash(), LabelEq{}), to_str(16, LabelHash(), LabelEq{});
    for (size_t i = 0; i < classes.size(); ++i) {
      to_int[Label(classes[i])] = Label(static_cast<int64_t>(i));
      to_str[Label(static_cast<int64_t>(i))] = Label(classes[i]);
    }
    auto a = std::make_unique<LabelMapKernel>("LabelEncoder", std::move(to_int),
                                              Label(std::string()), Label(def_i));
    auto b = std::make_unique<LabelMapKernel>("LabelEncoder", std::move(to_str), Label(int64_t{0}),
                                              Label(def_s));
    return KernelPtr(new BidirectionalMapKernel(std::move(a), std::move(b)));
  }
  ASSIGN_OR_RETURN(std::vector<Label> keys, ReadLabelList(init.node, "keys", init.opset));
  ASSIGN_OR_RETURN(std::vector<Label> values, ReadLabelList(init.node, "values", init.opset));
  if (keys.size() != values.size()) {
    return InvalidInput("LabelEncoder has " + std::to_string(keys.size()) + " keys and " +
                        std::to_string(values.size()) + " values");
  }
  ASSIGN_OR_RETURN(Label key_proto, LabelListProto(init.node, "keys", keys));
  ASSIGN_OR_RETURN(Label value_proto, LabelListProto(init.node, "values", values));
  Label def;
  switch (value_proto.index()) {
    case 0:
      def = def_i;
      break;
    case 1: {
      ASSIGN_OR_RETURN(float f, attrs.Float("default_float", -0.f));
      def = f;
      break;
    }
    case 2:
      def = static_cast<double>(-0.0);
      break;
    case 4:
      def = static_cast<int16_t>(-1);
      break;
    default:
      def = def_s;
      break;
  }
  if (init.opset >= 4) {
    ASSIGN_OR_RETURN(std::optional<Tensor> dt, TensorAttr(init.node, "default_tensor"));
    if (dt) {
      if (dt->numel() != 1 || dt->dtype() != LabelDType(value_proto)) {
        return InvalidInput("LabelEncoder default_tensor must be one value of the values' type");
      }
      switch (dt->dtype()) {
        case DType::kInt64:
          def = dt->data<int64_t>()[0];
          break;
        case DType::kFloat32:
          def = dt->data<float>()[0];
          break;
        case DType::kFloat64:
          def = dt->data<double>()[0];
          break;
        case DType::kInt16:
          def = dt->data<int16_t>()[0];
          break;
        default:
          def = dt->strings()[0];
          break;
      }
    }
  }
  LabelMap map(keys.size() * 2 + 1, LabelHash(), LabelEq{init.opset >= 4});
  for (size_t i = 0; i < keys.size(); ++i) map.emplace(keys[i], values[i]);
  return KernelPtr(new LabelMapKernel("LabelEncoder", std::move(map), key_proto, def));
}

Result<KernelPtr> MakeCategoryMapper(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> ints, attrs.Ints("cats_int64s"));
  ASSIGN_OR_RETURN(std::vector<std::string> strs, attrs.Strings("cats_strings"));
  ASSIGN_OR_RETURN(std::string def_s, attrs.String("default_string", "_Unused"));
  ASSIGN_OR_RETURN(int64_t def_i, attrs.Int("default_int64", -1));
  if (ints.size() != strs.size()) {
    return InvalidInput("CategoryMapper cats_int64s and cats_strings must have the same length");
  }
  LabelMap to_int(16, LabelHash(), LabelEq{}), to_str(16, LabelHash(), LabelEq{});
  for (size_t i = 0; i < ints.size(); ++i) {
    to_int.emplace(Label(strs[i]), Label(ints[i]));
    to_str.emplace(Label(ints[i]), Label(strs[i]));
  }
  auto a = std::make_unique<LabelMapKernel>("CategoryMapper", std::move(to_int),
                                            Label(std::string()), Label(def_i));
  auto b = std::make_unique<LabelMapKernel>("CategoryMapper", std::move(to_str), Label(int64_t{0}),
                                            Label(def_s));
  return KernelPtr(new BidirectionalMapKernel(std::move(a), std::move(b)));
}

Result<KernelPtr> MakeFeatureVectorizer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, attrs.Ints("inputdimensions"));
  if (dims.size() != init.node.input.size()) {
    return InvalidInput("FeatureVectorizer has " + std::to_string(dims.size()) +
                        " inputdimensions for " + std::to_string(init.node.input.size()) +
                        " inputs");
  }
  for (int64_t d : dims) {
    if (d < 0) return InvalidInput("FeatureVectorizer inputdimensions must be >= 0");
  }
  return KernelPtr(new FeatureVectorizerKernel(std::move(dims)));
}

}  // namespace serveml::engine
