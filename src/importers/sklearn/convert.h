// Shared machinery of the scikit-learn -> ONNX-ML translation: typed access to a fitted
// estimator's attributes (read from the inert pickle tree), the graph being built, and the
// per-estimator converters (one function per estimator family, listed in converters.cc).
//
// Not thread safe: one Ctx per import.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "importers/onnx_builder.h"
#include "importers/pickle/value.h"

namespace serveml::importers::sklearn {

using pickle::Kind;
using pickle::NdArray;
using pickle::Value;

// A fitted estimator: an Object from the pickle tree whose class lives in sklearn.*.
// Accessors return InvalidInput naming the estimator and attribute when an attribute is
// missing or has the wrong type, e.g. "LogisticRegression: attribute 'coef_' is missing".
class Est {
 public:
  // Errors when `v` is not a scikit-learn object with a dict state.
  static Result<Est> From(const Value* v);

  const std::string& name() const { return name_; }  // "LogisticRegression"
  const std::string& path() const {
    return path_;
  }  // "sklearn.linear_model._logistic.LogisticRegression"
  const Value* value() const { return v_; }

  // nullptr when absent.
  const Value* Attr(std::string_view key) const { return state_->Get(key); }
  bool Has(std::string_view key) const { return Attr(key) && !Attr(key)->is_none(); }
  Result<const Value*> Need(std::string_view key) const;
  Result<const NdArray*> Array(std::string_view key) const;
  // A numeric ndarray, list/tuple of numbers or a number, flattened in C order.
  Result<std::vector<double>> Doubles(std::string_view key) const;
  Result<std::vector<int64_t>> Ints(std::string_view key) const;
  Result<int64_t> Int(std::string_view key) const;
  Result<double> Float(std::string_view key) const;
  Result<std::string> Str(std::string_view key) const;
  // True/False/1/0; `def` when absent.
  bool Bool(std::string_view key, bool def) const;
  // Str(key) or `def` when absent or None.
  std::string StrOr(std::string_view key, std::string def) const;

  Status Fail(const std::string& msg) const { return InvalidInput(name_ + ": " + msg); }
  Status Unsupported(const std::string& msg) const;

 private:
  const Value* v_ = nullptr;
  const Value* state_ = nullptr;
  std::string name_, path_;
};

// Class labels as trained: int64 labels, or strings.
struct Labels {
  bool strings = false;
  std::vector<int64_t> ints;
  std::vector<std::string> strs;
  size_t size() const { return strings ? strs.size() : ints.size(); }
};
Result<Labels> ClassLabels(const Est& e, std::string_view key = "classes_");

// What a converter produced.
struct Emitted {
  enum class Kind { kTransform, kClassifier, kRegressor };
  Kind kind = Kind::kTransform;
  std::string out;    // transform / regressor: float32 [N, width]
  int64_t width = 0;  // columns of `out`
  std::string label;  // classifier: int64 or string [N]
  std::string proba;  // classifier: float32 [N, C]; empty when the estimator has no predict_proba
  Labels labels;      // classifier

  // A transform / regressor output `out` of `width` columns.
  static Emitted Transform(std::string out, int64_t width) {
    return Of(Kind::kTransform, std::move(out), width);
  }
  static Emitted Regressor(std::string out, int64_t width) {
    return Of(Kind::kRegressor, std::move(out), width);
  }

 private:
  static Emitted Of(Kind kind, std::string out, int64_t width) {
    Emitted e;
    e.kind = kind;
    e.out = std::move(out);
    e.width = width;
    return e;
  }
};

class Ctx {
 public:
  GraphBuilder g;

  // Adds an initializer with a fresh name derived from `prefix`; returns the name.
  std::string Floats(const std::string& prefix, const std::vector<double>& v,
                     std::vector<int64_t> shape);
  std::string Floats(const std::string& prefix, const std::vector<double>& v) {
    return Floats(prefix, v, {static_cast<int64_t>(v.size())});
  }
  std::string Doubles(const std::string& prefix, const std::vector<double>& v,
                      std::vector<int64_t> shape);
  std::string Int64s(const std::string& prefix, const std::vector<int64_t>& v,
                     std::vector<int64_t> shape);
  std::string Int64s(const std::string& prefix, const std::vector<int64_t>& v) {
    return Int64s(prefix, v, {static_cast<int64_t>(v.size())});
  }
  std::string Strings(const std::string& prefix, const std::vector<std::string>& v);
  // Constants of a transform: double when `f64` is set, float otherwise.
  std::string Reals(const std::string& prefix, const std::vector<double>& v,
                    std::vector<int64_t> shape) {
    return f64 ? Doubles(prefix, v, std::move(shape)) : Floats(prefix, v, std::move(shape));
  }
  std::string Reals(const std::string& prefix, const std::vector<double>& v) {
    return Reals(prefix, v, {static_cast<int64_t>(v.size())});
  }
  // Adds a one-output node with a fresh output name; returns the node for attributes.
  OnnxNode& Op(const std::string& op, std::vector<std::string> inputs, std::string* out,
               const std::string& domain = "");
  std::string Op1(const std::string& op, std::vector<std::string> inputs,
                  const std::string& domain = "") {
    std::string out;
    Op(op, std::move(inputs), &out, domain);
    return out;
  }
  // label[N] = labels[argmax(proba, axis 1)].
  std::string LabelFromProba(const std::string& proba, const Labels& labels);
  // Column subset of x[N, *] (Gather on axis 1).
  std::string Columns(const std::string& x, const std::vector<int64_t>& cols);

  int nesting = 0;               // Pipeline/ColumnTransformer depth, bounded
  int64_t ensemble_members = 0;  // sub-estimators emitted by Voting*/Stacking*, bounded
  // The graph reads float64 (see ReadsFloat64): transforms compute in double and
  // HistGradientBoosting compares with its float64 thresholds.
  bool f64 = false;
};

// Converts one fitted estimator reading `input` (float32 [N, width]; float64 when ctx.f64).
Result<Emitted> Emit(Ctx& ctx, const Value* est, const std::string& input, int64_t width);
// True when scikit-learn compares float64 inputs with float64 thresholds all the way:
// HistGradientBoosting alone, or after scalers / SimpleImputer (which keep float64) in a
// Pipeline. Such graphs read `input` as float64 [N, width] so every split decides as in
// scikit-learn; other estimators read float32 (trees and forests cast X to float32 themselves).
bool ReadsFloat64(const Value* est);
// Number of input columns an estimator expects (n_features_in_, or its first step's).
Result<int64_t> InputWidth(const Value* est);
// feature_names_in_ of the estimator (or its first step), empty when absent.
std::vector<std::string> FeatureNames(const Value* est);
// "Pipeline(StandardScaler, LogisticRegression)", "RandomForestClassifier", ...
std::string ModelTypeName(const Value* est);

// Families (one .cc each).
Result<Emitted> EmitLinearClassifier(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitLinearRegressor(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitScaler(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitNormalizer(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitImputer(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitPolynomialFeatures(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitPca(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitPipeline(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitColumnTransformer(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitTree(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitForest(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitGradientBoosting(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitHistGradientBoosting(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitMlp(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitNaiveBayes(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitOneHotEncoder(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitOrdinalEncoder(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitFunctionTransformer(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitVoting(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitStacking(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitSvmClassifier(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitSvmRegressor(Ctx&, const Est&, const std::string&, int64_t);
Result<Emitted> EmitKNeighbors(Ctx&, const Est&, const std::string&, int64_t);

}  // namespace serveml::importers::sklearn
