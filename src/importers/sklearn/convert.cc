#include "importers/sklearn/convert.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace serveml::importers::sklearn {
namespace {

std::string ShortName(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

Result<std::vector<double>> NumbersOf(const Value* v, const std::string& what) {
  if (v->kind == Kind::kNdArray) return v->array->ToDoubles();
  if (v->is_number()) return std::vector<double>{v->AsDouble()};
  if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
    std::vector<double> out;
    for (const Value* x : v->items) {
      if (!x->is_number()) return InvalidInput(what + " holds a " + x->TypeName());
      out.push_back(x->AsDouble());
    }
    return out;
  }
  return InvalidInput(what + " is a " + v->TypeName() + ", expected numbers");
}

using EmitFn = Result<Emitted> (*)(Ctx&, const Est&, const std::string&, int64_t);

const std::map<std::string, EmitFn>& Converters() {
  static const std::map<std::string, EmitFn> table = {
      {"LogisticRegression", EmitLinearClassifier},
      {"LogisticRegressionCV", EmitLinearClassifier},
      {"SGDClassifier", EmitLinearClassifier},
      {"LinearSVC", EmitLinearClassifier},
      {"RidgeClassifier", EmitLinearClassifier},
      {"RidgeClassifierCV", EmitLinearClassifier},
      {"Perceptron", EmitLinearClassifier},
      {"PassiveAggressiveClassifier", EmitLinearClassifier},
      {"LinearRegression", EmitLinearRegressor},
      {"Ridge", EmitLinearRegressor},
      {"RidgeCV", EmitLinearRegressor},
      {"Lasso", EmitLinearRegressor},
      {"LassoCV", EmitLinearRegressor},
      {"ElasticNet", EmitLinearRegressor},
      {"ElasticNetCV", EmitLinearRegressor},
      {"SGDRegressor", EmitLinearRegressor},
      {"LinearSVR", EmitLinearRegressor},
      {"HuberRegressor", EmitLinearRegressor},
      {"BayesianRidge", EmitLinearRegressor},
      {"ARDRegression", EmitLinearRegressor},
      {"Lars", EmitLinearRegressor},
      {"LassoLars", EmitLinearRegressor},
      {"LassoLarsIC", EmitLinearRegressor},
      {"OrthogonalMatchingPursuit", EmitLinearRegressor},
      {"PassiveAggressiveRegressor", EmitLinearRegressor},
      {"TheilSenRegressor", EmitLinearRegressor},
      {"QuantileRegressor", EmitLinearRegressor},
      {"StandardScaler", EmitScaler},
      {"MinMaxScaler", EmitScaler},
      {"MaxAbsScaler", EmitScaler},
      {"RobustScaler", EmitScaler},
      {"Normalizer", EmitNormalizer},
      {"SimpleImputer", EmitImputer},
      {"PolynomialFeatures", EmitPolynomialFeatures},
      {"PCA", EmitPca},
      {"Pipeline", EmitPipeline},
      {"ColumnTransformer", EmitColumnTransformer},
      {"DecisionTreeClassifier", EmitTree},
      {"DecisionTreeRegressor", EmitTree},
      {"ExtraTreeClassifier", EmitTree},
      {"ExtraTreeRegressor", EmitTree},
      {"RandomForestClassifier", EmitForest},
      {"RandomForestRegressor", EmitForest},
      {"ExtraTreesClassifier", EmitForest},
      {"ExtraTreesRegressor", EmitForest},
      {"GradientBoostingClassifier", EmitGradientBoosting},
      {"GradientBoostingRegressor", EmitGradientBoosting},
      {"HistGradientBoostingClassifier", EmitHistGradientBoosting},
      {"HistGradientBoostingRegressor", EmitHistGradientBoosting},
      {"MLPClassifier", EmitMlp},
      {"MLPRegressor", EmitMlp},
      {"GaussianNB", EmitNaiveBayes},
      {"MultinomialNB", EmitNaiveBayes},
      {"BernoulliNB", EmitNaiveBayes},
      {"OneHotEncoder", EmitOneHotEncoder},
      {"OrdinalEncoder", EmitOrdinalEncoder},
      {"FunctionTransformer", EmitFunctionTransformer},
      {"VotingClassifier", EmitVoting},
      {"VotingRegressor", EmitVoting},
      {"StackingClassifier", EmitStacking},
      {"StackingRegressor", EmitStacking},
      {"SVC", EmitSvmClassifier},
      {"NuSVC", EmitSvmClassifier},
      {"SVR", EmitSvmRegressor},
      {"NuSVR", EmitSvmRegressor},
      {"OneClassSVM", EmitSvmRegressor},
      {"KNeighborsClassifier", EmitKNeighbors},
      {"KNeighborsRegressor", EmitKNeighbors},
  };
  return table;
}

// Steps of a Pipeline: (name, estimator) pairs; 'passthrough'/None steps are skipped.
Result<std::vector<const Value*>> PipelineSteps(const Est& p) {
  ASSIGN_OR_RETURN(const Value* steps, p.Need("steps"));
  if (steps->kind != Kind::kList && steps->kind != Kind::kTuple) {
    return p.Fail("'steps' is a " + steps->TypeName() + ", expected a list");
  }
  std::vector<const Value*> out;
  for (const Value* s : steps->items) {
    if ((s->kind != Kind::kTuple && s->kind != Kind::kList) || s->items.size() != 2) {
      return p.Fail("a step is not a (name, estimator) pair");
    }
    const Value* est = s->items[1];
    if (est->is_none() || (est->is_str() && est->s == "passthrough")) continue;
    out.push_back(est);
  }
  if (out.empty()) return p.Fail("the pipeline has no estimator steps");
  return out;
}

}  // namespace

// ---- Est --------------------------------------------------------------------------------

Result<Est> Est::From(const Value* v) {
  if (v->kind != Kind::kObject) {
    return InvalidInput("expected a scikit-learn estimator, found a " + v->TypeName());
  }
  if (v->cls.rfind("sklearn.", 0) != 0) {
    return InvalidInput("expected a scikit-learn estimator, found '" + v->cls + "'");
  }
  Est e;
  e.v_ = v;
  e.path_ = v->cls;
  e.name_ = ShortName(v->cls);
  if (!v->state || v->state->kind != Kind::kDict) {
    return InvalidInput(e.name_ + " has no attribute dictionary (is it a fitted estimator?)");
  }
  e.state_ = v->state;
  return e;
}

Result<const Value*> Est::Need(std::string_view key) const {
  const Value* v = Attr(key);
  if (!v || v->is_none()) {
    return Fail("attribute '" + std::string(key) + "' is missing (is the estimator fitted?)");
  }
  return v;
}

Result<const NdArray*> Est::Array(std::string_view key) const {
  ASSIGN_OR_RETURN(const Value* v, Need(key));
  if (v->kind != Kind::kNdArray) {
    return Fail("attribute '" + std::string(key) + "' is a " + v->TypeName() +
                ", expected a numpy array");
  }
  return v->array.get();
}

Result<std::vector<double>> Est::Doubles(std::string_view key) const {
  ASSIGN_OR_RETURN(const Value* v, Need(key));
  auto r = NumbersOf(v, "attribute '" + std::string(key) + "'");
  if (!r.ok()) return Fail(r.status().message());
  return r;
}

Result<std::vector<int64_t>> Est::Ints(std::string_view key) const {
  ASSIGN_OR_RETURN(std::vector<double> d, Doubles(key));
  std::vector<int64_t> out;
  for (double x : d) {
    if (x != std::floor(x) || std::abs(x) > 9e15) {
      return Fail("attribute '" + std::string(key) + "' holds a non-integer");
    }
    out.push_back(static_cast<int64_t>(x));
  }
  return out;
}

Result<int64_t> Est::Int(std::string_view key) const {
  ASSIGN_OR_RETURN(const Value* v, Need(key));
  if (v->kind == Kind::kInt) return v->i;
  if (v->kind == Kind::kBool) return static_cast<int64_t>(v->b);
  return Fail("attribute '" + std::string(key) + "' is a " + v->TypeName() + ", expected an int");
}

Result<double> Est::Float(std::string_view key) const {
  ASSIGN_OR_RETURN(const Value* v, Need(key));
  if (v->is_number()) return v->AsDouble();
  if (v->kind == Kind::kNdArray && v->array->numel() == 1) {
    ASSIGN_OR_RETURN(auto d, v->array->ToDoubles());
    return d[0];
  }
  return Fail("attribute '" + std::string(key) + "' is a " + v->TypeName() + ", expected a number");
}

Result<std::string> Est::Str(std::string_view key) const {
  ASSIGN_OR_RETURN(const Value* v, Need(key));
  if (v->kind == Kind::kStr) return v->s;
  return Fail("attribute '" + std::string(key) + "' is a " + v->TypeName() + ", expected a string");
}

bool Est::Bool(std::string_view key, bool def) const {
  const Value* v = Attr(key);
  if (!v) return def;
  if (v->kind == Kind::kBool) return v->b;
  if (v->kind == Kind::kInt) return v->i != 0;
  return def;
}

std::string Est::StrOr(std::string_view key, std::string def) const {
  const Value* v = Attr(key);
  return v && v->kind == Kind::kStr ? v->s : def;
}

Status Est::Unsupported(const std::string& msg) const {
  return serveml::Unsupported(name_ + ": " + msg +
                              "; export the model with skl2onnx and upload the .onnx file instead");
}

Result<Labels> ClassLabels(const Est& e, std::string_view key) {
  ASSIGN_OR_RETURN(const NdArray* a, e.Array(key));
  Labels l;
  const char k = a->dtype.kind;
  if (a->is_object() || k == 'U' || k == 'S') {
    bool all_str = true, all_int = true;
    for (const Value* v : a->objects) {
      all_str = all_str && (v->kind == Kind::kStr || v->kind == Kind::kBytes);
      all_int = all_int && v->kind == Kind::kInt;
    }
    if (a->is_object() && all_int && !a->objects.empty()) {
      ASSIGN_OR_RETURN(l.ints, a->ToInt64s());
      return l;
    }
    if (!all_str) return e.Unsupported("class labels mixing types are not supported");
    l.strings = true;
    ASSIGN_OR_RETURN(l.strs, a->ToStrings());
    return l;
  }
  if (k == 'i' || k == 'u' || k == 'b') {
    ASSIGN_OR_RETURN(l.ints, a->ToInt64s());
    return l;
  }
  if (k == 'f') {
    ASSIGN_OR_RETURN(auto d, a->ToDoubles());
    for (double x : d) {
      if (x != std::floor(x) || std::abs(x) > 9e15) {
        return e.Unsupported("non-integer float class labels are not supported");
      }
      l.ints.push_back(static_cast<int64_t>(x));
    }
    return l;
  }
  return e.Unsupported("class labels of dtype " + a->dtype.Name() + " are not supported");
}

// ---- Ctx --------------------------------------------------------------------------------

std::string Ctx::Floats(const std::string& prefix, const std::vector<double>& v,
                        std::vector<int64_t> shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  float* d = t.data<float>();
  for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < t.numel(); ++i) {
    d[i] = static_cast<float>(v[i]);
  }
  std::string name = g.Unique(prefix);
  g.AddInitializer(name, t);
  return name;
}

std::string Ctx::Doubles(const std::string& prefix, const std::vector<double>& v,
                         std::vector<int64_t> shape) {
  std::string name = g.Unique(prefix);
  g.AddInitializer(name, Tensor::From<double>(std::move(shape), v));
  return name;
}

std::string Ctx::Int64s(const std::string& prefix, const std::vector<int64_t>& v,
                        std::vector<int64_t> shape) {
  std::string name = g.Unique(prefix);
  g.AddInitializer(name, Tensor::From<int64_t>(std::move(shape), v));
  return name;
}

std::string Ctx::Strings(const std::string& prefix, const std::vector<std::string>& v) {
  std::string name = g.Unique(prefix);
  g.AddInitializer(name, Tensor::FromStrings({static_cast<int64_t>(v.size())}, v));
  return name;
}

OnnxNode& Ctx::Op(const std::string& op, std::vector<std::string> inputs, std::string* out,
                  const std::string& domain) {
  std::string lower;
  for (char c : op) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  *out = g.Unique(lower + "_out");
  return g.AddNode(op, std::move(inputs), {*out}, domain);
}

std::string Ctx::LabelFromProba(const std::string& proba, const Labels& labels) {
  std::string idx;
  Op("ArgMax", {proba}, &idx).Attr("axis", int64_t{1}).Attr("keepdims", int64_t{0});
  std::string table =
      labels.strings ? Strings("class_labels", labels.strs) : Int64s("class_labels", labels.ints);
  std::string picked = Op1("ArrayFeatureExtractor", {table, idx}, "ai.onnx.ml");
  return Op1("Reshape", {picked, Int64s("shape", {-1})});
}

std::string Ctx::Columns(const std::string& x, const std::vector<int64_t>& cols) {
  std::string out;
  Op("Gather", {x, Int64s("columns", cols)}, &out).Attr("axis", int64_t{1});
  return out;
}

// ---- dispatch ---------------------------------------------------------------------------

Result<Emitted> Emit(Ctx& ctx, const Value* v, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(Est e, Est::From(v));
  auto it = Converters().find(e.name());
  if (it == Converters().end()) {
    return Unsupported("the scikit-learn estimator '" + e.name() + "' (" + e.path() +
                       ") is not supported by ServeML's importer; export the model with "
                       "skl2onnx (skl2onnx.to_onnx(model, X[:1].astype(numpy.float32))) and "
                       "upload the .onnx file");
  }
  if (e.Has("n_features_in_")) {
    ASSIGN_OR_RETURN(int64_t nf, e.Int("n_features_in_"));
    if (nf != width) {
      return e.Fail("expects " + std::to_string(nf) + " input features but receives " +
                    std::to_string(width));
    }
  }
  return it->second(ctx, e, input, width);
}

Result<int64_t> InputWidth(const Value* v) {
  // Composites without a stored n_features_in_ ask their first step (Pipeline) or first
  // fitted estimator (Voting*, Stacking*); bounded, as a file may nest them in a cycle.
  for (int depth = 0; depth < 32; ++depth) {
    ASSIGN_OR_RETURN(Est e, Est::From(v));
    if (e.Has("n_features_in_")) return e.Int("n_features_in_");
    const Value* ests = e.Attr("estimators_");
    if (e.name() == "Pipeline") {
      ASSIGN_OR_RETURN(auto steps, PipelineSteps(e));
      v = steps[0];
    } else if (ests && ests->kind == Kind::kList && !ests->items.empty()) {
      v = ests->items[0];
    } else {
      return e.Fail("the number of input features is unknown (no n_features_in_)");
    }
  }
  return InvalidInput("estimators are nested too deeply");
}

bool ReadsFloat64(const Value* v) {
  auto e = Est::From(v);
  if (!e.ok()) return false;
  const std::string& n = e->name();
  if (n == "HistGradientBoostingClassifier" || n == "HistGradientBoostingRegressor") return true;
  if (n != "Pipeline") return false;
  auto steps = PipelineSteps(*e);
  if (!steps.ok()) return false;
  for (size_t i = 0; i + 1 < steps->size(); ++i) {
    auto s = Est::From((*steps)[i]);
    if (!s.ok()) return false;
    const std::string& sn = s->name();
    if (sn != "StandardScaler" && sn != "MinMaxScaler" && sn != "MaxAbsScaler" &&
        sn != "RobustScaler" && sn != "SimpleImputer") {
      return false;
    }
  }
  return ReadsFloat64(steps->back());
}

std::vector<std::string> FeatureNames(const Value* v) {
  auto e = Est::From(v);
  if (!e.ok()) return {};
  if (e->Has("feature_names_in_")) {
    const Value* f = e->Attr("feature_names_in_");
    if (f->kind == Kind::kNdArray) {
      auto s = f->array->ToStrings();
      if (s.ok()) return *s;
    }
    return {};
  }
  if (e->name() == "Pipeline") {
    auto steps = PipelineSteps(*e);
    if (steps.ok()) return FeatureNames((*steps)[0]);
  }
  return {};
}

std::string ModelTypeName(const Value* v) {
  auto e = Est::From(v);
  if (!e.ok()) return v->TypeName();
  if (e->name() != "Pipeline") return e->name();
  auto steps = PipelineSteps(*e);
  if (!steps.ok()) return "Pipeline";
  std::string s = "Pipeline(";
  for (size_t i = 0; i < steps->size(); ++i) {
    if (i) s += ", ";
    s += ModelTypeName((*steps)[i]);
  }
  return s + ")";
}

// ---- Pipeline ---------------------------------------------------------------------------

Result<Emitted> EmitPipeline(Ctx& ctx, const Est& p, const std::string& input, int64_t width) {
  if (++ctx.nesting > 16) return p.Fail("pipelines are nested too deeply");
  ASSIGN_OR_RETURN(auto steps, PipelineSteps(p));
  std::string cur = input;
  Emitted last;
  for (size_t i = 0; i < steps.size(); ++i) {
    ASSIGN_OR_RETURN(last, Emit(ctx, steps[i], cur, width));
    if (i + 1 < steps.size()) {
      if (last.kind != Emitted::Kind::kTransform) {
        return p.Fail("step " + std::to_string(i + 1) + " (" + ModelTypeName(steps[i]) +
                      ") is a predictor but is not the last step");
      }
      cur = last.out;
      width = last.width;
    }
  }
  --ctx.nesting;
  return last;
}

// ---- ColumnTransformer ------------------------------------------------------------------

namespace {

Result<std::vector<int64_t>> ResolveColumns(const Est& ct, const Value* cols, int64_t width) {
  std::vector<int64_t> out;
  auto by_name = [&](const std::string& name) -> Result<int64_t> {
    std::vector<std::string> names;
    if (ct.Has("feature_names_in_")) {
      ASSIGN_OR_RETURN(const NdArray* a, ct.Array("feature_names_in_"));
      ASSIGN_OR_RETURN(names, a->ToStrings());
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return static_cast<int64_t>(i);
    }
    return ct.Fail("column '" + name + "' is not among the input features");
  };
  auto add = [&](const Value* x) -> Status {
    if (x->kind == Kind::kInt) {
      int64_t c = x->i < 0 ? x->i + width : x->i;
      if (c < 0 || c >= width)
        return ct.Fail("column index " + std::to_string(x->i) + " is out of range");
      out.push_back(c);
      return Status::Ok();
    }
    if (x->kind == Kind::kStr) {
      ASSIGN_OR_RETURN(int64_t c, by_name(x->s));
      out.push_back(c);
      return Status::Ok();
    }
    return ct.Unsupported("column selectors of type " + x->TypeName() + " are not supported");
  };
  // A pandas Index of column names or positions: its data array.
  if (cols->kind == Kind::kObject && cols->cls == "pandas.core.indexes.base._new_Index") {
    const Value* a = cols->args;
    const Value* d =
        a && a->kind == Kind::kTuple && a->items.size() == 2 ? a->items[1]->Get("data") : nullptr;
    if (!d || d->kind != Kind::kNdArray) return ct.Fail("a pandas Index of columns is malformed");
    cols = d;
  }
  if (cols->kind == Kind::kInt || cols->kind == Kind::kStr) {
    RETURN_IF_ERROR(add(cols));
  } else if (cols->kind == Kind::kList || cols->kind == Kind::kTuple ||
             (cols->kind == Kind::kObject && !cols->items.empty()) ||
             (cols->kind == Kind::kObject && cols->state == nullptr)) {
    for (const Value* x : cols->items) RETURN_IF_ERROR(add(x));
  } else if (cols->kind == Kind::kNdArray) {
    const NdArray& a = *cols->array;
    if (a.dtype.kind == 'b') {
      ASSIGN_OR_RETURN(auto mask, a.ToInt64s());
      for (size_t i = 0; i < mask.size(); ++i) {
        if (mask[i]) out.push_back(static_cast<int64_t>(i));
      }
    } else if (a.is_object() || a.dtype.kind == 'U') {
      ASSIGN_OR_RETURN(auto names, a.ToStrings());
      for (const auto& n : names) {
        ASSIGN_OR_RETURN(int64_t c, by_name(n));
        out.push_back(c);
      }
    } else {
      ASSIGN_OR_RETURN(auto idx, a.ToInt64s());
      for (int64_t c : idx) {
        if (c < 0) c += width;
        if (c < 0 || c >= width) return ct.Fail("column index out of range");
        out.push_back(c);
      }
    }
  } else if (cols->kind == Kind::kObject && cols->cls == "builtins.slice") {
    const Value* a = cols->args;
    if (!a || a->items.size() != 3) return ct.Fail("malformed slice");
    auto get = [&](const Value* x, int64_t def) { return x->kind == Kind::kInt ? x->i : def; };
    int64_t start = get(a->items[0], 0), stop = get(a->items[1], width), step = get(a->items[2], 1);
    if (a->items[0]->is_str() || a->items[1]->is_str()) {
      return ct.Unsupported("slices of column names are not supported");
    }
    if (start < 0) start += width;
    if (stop < 0) stop += width;
    if (step <= 0) return ct.Unsupported("slices with a non-positive step");
    for (int64_t c = std::max<int64_t>(start, 0); c < std::min(stop, width); c += step)
      out.push_back(c);
  } else {
    return ct.Unsupported("column selectors of type " + cols->TypeName() + " are not supported");
  }
  return out;
}

}  // namespace

Result<Emitted> EmitColumnTransformer(Ctx& ctx, const Est& ct, const std::string& input,
                                      int64_t width) {
  if (++ctx.nesting > 16) return ct.Fail("transformers are nested too deeply");
  ASSIGN_OR_RETURN(const Value* ts, ct.Need("transformers_"));
  if (ts->kind != Kind::kList) return ct.Fail("'transformers_' is not a list");
  std::vector<std::string> parts;
  int64_t total = 0;
  for (const Value* t : ts->items) {
    if ((t->kind != Kind::kTuple && t->kind != Kind::kList) || t->items.size() < 3) {
      return ct.Fail("a transformer is not a (name, transformer, columns) triple");
    }
    const Value* trans = t->items[1];
    ASSIGN_OR_RETURN(std::vector<int64_t> cols, ResolveColumns(ct, t->items[2], width));
    if (cols.empty()) continue;
    if (trans->is_str() && trans->s == "drop") continue;
    std::string sub = ctx.Columns(input, cols);
    if (trans->is_str() && trans->s == "passthrough") {
      parts.push_back(sub);
      total += static_cast<int64_t>(cols.size());
      continue;
    }
    ASSIGN_OR_RETURN(Emitted e, Emit(ctx, trans, sub, static_cast<int64_t>(cols.size())));
    if (e.kind != Emitted::Kind::kTransform) {
      return ct.Fail("transformer '" + ModelTypeName(trans) + "' is a predictor");
    }
    parts.push_back(e.out);
    total += e.width;
  }
  if (parts.empty()) return ct.Fail("all columns are dropped");
  Emitted out;
  out.kind = Emitted::Kind::kTransform;
  out.width = total;
  if (parts.size() == 1) {
    out.out = parts[0];
  } else {
    ctx.Op("Concat", parts, &out.out).Attr("axis", int64_t{1});
  }
  --ctx.nesting;
  return out;
}

}  // namespace serveml::importers::sklearn
