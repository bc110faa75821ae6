// Decision trees and their ensembles -> ai.onnx.ml TreeEnsembleClassifier/Regressor.
//
// Thresholds: scikit-learn compares float32(x) <= threshold (float64). Storing
// round_toward_minus_infinity(threshold) as the float32 node value gives exactly the same
// decision for every float32 x (x <= t  <=>  x <= largest float not above t), so the graph
// is exact on any runtime that compares in float32. Missing values follow each node's
// missing_go_to_left (nodes_missing_value_tracks_true).
//
// HistGradientBoosting is the exception: it compares float64 x with float64 thresholds. When
// the graph reads float64 (ctx.f64) its thresholds, leaf values and baseline are written
// exactly as doubles (the *_as_tensor attributes), so every split decides as in scikit-learn.
#include <cmath>
#include <limits>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

float FloorToFloat(double t) {
  if (std::isnan(t)) return std::numeric_limits<float>::quiet_NaN();
  if (t >= static_cast<double>(std::numeric_limits<float>::max())) {
    return t == std::numeric_limits<double>::infinity() ? std::numeric_limits<float>::infinity()
                                                        : std::numeric_limits<float>::max();
  }
  if (t <= -static_cast<double>(std::numeric_limits<float>::max())) {
    return -std::numeric_limits<float>::infinity();
  }
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// One tree in array form (sklearn.tree._tree.Tree or an HGB TreePredictor).
struct TreeData {
  std::vector<int64_t> left, right, feature;
  std::vector<double> threshold;
  std::vector<int64_t> missing_left;
  std::vector<bool> leaf;
  // Leaf values: value[node * stride + j].
  std::vector<double> value;
  int64_t stride = 1;
  size_t size() const { return left.size(); }
};

Status Validate(const Est& e, const TreeData& t, int64_t width) {
  const int64_t n = static_cast<int64_t>(t.size());
  if (n == 0) return e.Fail("a tree has no nodes");
  for (int64_t i = 0; i < n; ++i) {
    if (t.leaf[i]) continue;
    if (t.left[i] <= i || t.left[i] >= n || t.right[i] <= i || t.right[i] >= n) {
      return e.Fail("tree node " + std::to_string(i) + " has children outside the tree");
    }
    if (t.feature[i] < 0 || t.feature[i] >= width) {
      return e.Fail("tree node " + std::to_string(i) + " tests feature " +
                    std::to_string(t.feature[i]) + " of " + std::to_string(width));
    }
  }
  if (static_cast<int64_t>(t.value.size()) < n * t.stride) return e.Fail("tree values are short");
  return Status::Ok();
}

// Node fields as integers. NaN and values outside +-2^62 (never valid node indices or
// features) become INT64_MIN, which the tree validation rejects.
std::vector<int64_t> AsInts(const std::vector<double>& v) {
  constexpr double kLimit = 4611686018427387904.0;  // 2^62
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (double d : v) {
    out.push_back(d > -kLimit && d < kLimit ? static_cast<int64_t>(d)
                                            : std::numeric_limits<int64_t>::min());
  }
  return out;
}

// sklearn.tree._tree.Tree state {node_count, nodes, values}.
Result<TreeData> ReadSklearnTree(const Est& owner, const Value* tree, int64_t width) {
  if (tree->kind != Kind::kObject || tree->cls != "sklearn.tree._tree.Tree" || !tree->state ||
      tree->state->kind != Kind::kDict) {
    return owner.Fail("tree_ is not a sklearn.tree._tree.Tree");
  }
  const Value* nodes = tree->state->Get("nodes");
  const Value* values = tree->state->Get("values");
  if (!nodes || nodes->kind != Kind::kNdArray || !values || values->kind != Kind::kNdArray) {
    return owner.Fail("tree_ lacks its nodes or values arrays");
  }
  const NdArray& na = *nodes->array;
  TreeData t;
  ASSIGN_OR_RETURN(auto l, na.FieldAsDoubles("left_child"));
  ASSIGN_OR_RETURN(auto r, na.FieldAsDoubles("right_child"));
  ASSIGN_OR_RETURN(auto f, na.FieldAsDoubles("feature"));
  ASSIGN_OR_RETURN(t.threshold, na.FieldAsDoubles("threshold"));
  t.left = AsInts(l);
  t.right = AsInts(r);
  t.feature = AsInts(f);
  if (na.dtype.FindField("missing_go_to_left")) {
    ASSIGN_OR_RETURN(auto m, na.FieldAsDoubles("missing_go_to_left"));
    t.missing_left = AsInts(m);
  } else {
    t.missing_left.assign(t.left.size(), 0);
  }
  for (int64_t c : t.left) t.leaf.push_back(c == -1);
  const NdArray& va = *values->array;
  if (va.shape.size() != 3 || va.shape[0] != static_cast<int64_t>(t.size())) {
    return owner.Fail("tree_ values have shape of rank " + std::to_string(va.shape.size()));
  }
  if (va.shape[1] != 1) return owner.Unsupported("multi-output trees are not supported");
  t.stride = va.shape[2];
  ASSIGN_OR_RETURN(t.value, va.ToDoubles());
  RETURN_IF_ERROR(Validate(owner, t, width));
  return t;
}

// Attributes of one TreeEnsemble node, accumulated over trees.
struct Ensemble {
  std::vector<int64_t> treeids, nodeids, featureids, truenodeids, falsenodeids, missing_true;
  std::vector<std::string> modes;
  std::vector<float> values;
  std::vector<int64_t> leaf_treeids, leaf_nodeids, leaf_ids;
  std::vector<float> leaf_weights;
  // Exact thresholds and weights, written instead of the float ones when f64 is set.
  bool f64 = false;
  std::vector<double> values_f64, leaf_weights_f64;

  // `weights(node, emit)` calls emit(target_or_class, weight) for each leaf output.
  template <typename F>
  void Add(int64_t tree_id, const TreeData& t, F&& weights) {
    for (size_t i = 0; i < t.size(); ++i) {
      treeids.push_back(tree_id);
      nodeids.push_back(static_cast<int64_t>(i));
      if (t.leaf[i]) {
        modes.push_back("LEAF");
        featureids.push_back(0);
        values.push_back(0);
        values_f64.push_back(0);
        truenodeids.push_back(0);
        falsenodeids.push_back(0);
        missing_true.push_back(0);
        weights(static_cast<int64_t>(i), [&](int64_t id, double w) {
          leaf_treeids.push_back(tree_id);
          leaf_nodeids.push_back(static_cast<int64_t>(i));
          leaf_ids.push_back(id);
          leaf_weights.push_back(static_cast<float>(w));
          leaf_weights_f64.push_back(w);
        });
      } else {
        modes.push_back("BRANCH_LEQ");
        featureids.push_back(t.feature[i]);
        values.push_back(FloorToFloat(t.threshold[i]));
        values_f64.push_back(t.threshold[i]);
        truenodeids.push_back(t.left[i]);
        falsenodeids.push_back(t.right[i]);
        missing_true.push_back(t.missing_left[i] ? 1 : 0);
      }
    }
  }

  void NodeAttrs(OnnxNode& n) const {
    n.Attr("nodes_treeids", treeids);
    n.Attr("nodes_nodeids", nodeids);
    n.Attr("nodes_featureids", featureids);
    n.Attr("nodes_modes", modes);
    if (f64) {
      n.Attr("nodes_values_as_tensor",
             Tensor::From<double>({static_cast<int64_t>(values_f64.size())}, values_f64));
    } else {
      n.Attr("nodes_values", values);
    }
    n.Attr("nodes_truenodeids", truenodeids);
    n.Attr("nodes_falsenodeids", falsenodeids);
    n.Attr("nodes_missing_value_tracks_true", missing_true);
  }
};

// Class probabilities as a TreeEnsembleRegressor with one target per class (sums of the
// per-tree class fractions), then label = classes_[argmax]. This avoids the binary-case
// special handling of TreeEnsembleClassifier and matches sklearn's argmax tie-breaking.
std::string RegressorNode(Ctx& ctx, const Ensemble& ens, int64_t targets,
                          const std::vector<double>& base, const std::string& input);

Emitted ClassifierNode(Ctx& ctx, const Ensemble& ens, const Labels& labels,
                       const std::string& input) {
  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  out.proba = RegressorNode(ctx, ens, static_cast<int64_t>(labels.size()), {}, input);
  out.label = ctx.LabelFromProba(out.proba, labels);
  return out;
}

std::string RegressorNode(Ctx& ctx, const Ensemble& ens, int64_t targets,
                          const std::vector<double>& base, const std::string& input) {
  std::string out;
  OnnxNode& n = ctx.Op("TreeEnsembleRegressor", {input}, &out, "ai.onnx.ml");
  ens.NodeAttrs(n);
  n.Attr("target_treeids", ens.leaf_treeids);
  n.Attr("target_nodeids", ens.leaf_nodeids);
  n.Attr("target_ids", ens.leaf_ids);
  if (ens.f64) {
    n.Attr("target_weights_as_tensor",
           Tensor::From<double>({static_cast<int64_t>(ens.leaf_weights_f64.size())},
                                ens.leaf_weights_f64));
  } else {
    n.Attr("target_weights", ens.leaf_weights);
  }
  n.Attr("n_targets", targets);
  n.Attr("aggregate_function", std::string("SUM"));
  n.Attr("post_transform", std::string("NONE"));
  if (!base.empty() && ens.f64) {
    n.Attr("base_values_as_tensor",
           Tensor::From<double>({static_cast<int64_t>(base.size())}, base));
  } else if (!base.empty()) {
    n.Attr("base_values", std::vector<float>(base.begin(), base.end()));
  }
  return out;
}

bool IsClassifier(const Est& e) { return e.name().find("Classifier") != std::string::npos; }

// raw scores [N, K] -> probabilities as sklearn's losses do (binary: [1 - s, s] with
// s = expit(scale * raw); multiclass: softmax).
Emitted ProbaFromRaw(Ctx& ctx, const std::string& raw, int64_t k, const Labels& labels,
                     double scale) {
  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  if (k == 1) {
    std::string z = scale == 1.0 ? raw : ctx.Op1("Mul", {raw, ctx.Floats("scale", {scale}, {})});
    std::string p = ctx.Op1("Sigmoid", {z});
    std::string q = ctx.Op1("Sub", {ctx.Floats("one", {1.0}, {}), p});
    ctx.Op("Concat", {q, p}, &out.proba).Attr("axis", int64_t{1});
  } else {
    ctx.Op("Softmax", {raw}, &out.proba).Attr("axis", int64_t{1});
  }
  out.label = ctx.LabelFromProba(out.proba, labels);
  return out;
}

// Adds one sklearn tree as a classifier (normalised class fractions * scale) or a regressor
// (value * scale into target `target`).
void AddClassifierTree(Ensemble& ens, int64_t id, const TreeData& t, double scale) {
  ens.Add(id, t, [&](int64_t node, auto emit) {
    double sum = 0;
    for (int64_t j = 0; j < t.stride; ++j) sum += t.value[node * t.stride + j];
    for (int64_t j = 0; j < t.stride; ++j) {
      emit(j, sum > 0 ? t.value[node * t.stride + j] / sum * scale : 0.0);
    }
  });
}
void AddRegressorTree(Ensemble& ens, int64_t id, const TreeData& t, double scale, int64_t target) {
  ens.Add(id, t, [&](int64_t node, auto emit) { emit(target, t.value[node * t.stride] * scale); });
}

}  // namespace

Result<Emitted> EmitTree(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(const Value* tv, e.Need("tree_"));
  ASSIGN_OR_RETURN(TreeData t, ReadSklearnTree(e, tv, width));
  Ensemble ens;
  if (IsClassifier(e)) {
    ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
    if (static_cast<int64_t>(labels.size()) != t.stride)
      return e.Fail("tree values do not match classes_");
    AddClassifierTree(ens, 0, t, 1.0);
    return ClassifierNode(ctx, ens, labels, input);
  }
  AddRegressorTree(ens, 0, t, 1.0, 0);
  return Emitted::Regressor(RegressorNode(ctx, ens, 1, {}, input), 1);
}

Result<Emitted> EmitForest(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(const Value* ests, e.Need("estimators_"));
  if (ests->kind != Kind::kList || ests->items.empty())
    return e.Fail("estimators_ is not a non-empty list");
  const double scale = 1.0 / static_cast<double>(ests->items.size());
  Ensemble ens;
  Labels labels;
  const bool clf = IsClassifier(e);
  if (clf) {
    ASSIGN_OR_RETURN(labels, ClassLabels(e));
  }
  int64_t id = 0;
  for (const Value* tv : ests->items) {
    ASSIGN_OR_RETURN(Est tree_est, Est::From(tv));
    ASSIGN_OR_RETURN(const Value* tree, tree_est.Need("tree_"));
    ASSIGN_OR_RETURN(TreeData t, ReadSklearnTree(tree_est, tree, width));
    if (clf) {
      if (static_cast<int64_t>(labels.size()) != t.stride)
        return e.Fail("tree values do not match classes_");
      AddClassifierTree(ens, id++, t, scale);
    } else {
      AddRegressorTree(ens, id++, t, scale, 0);
    }
  }
  if (clf) return ClassifierNode(ctx, ens, labels, input);
  return Emitted::Regressor(RegressorNode(ctx, ens, 1, {}, input), 1);
}

Result<Emitted> EmitGradientBoosting(Ctx& ctx, const Est& e, const std::string& input,
                                     int64_t width) {
  ASSIGN_OR_RETURN(const NdArray* ests, e.Array("estimators_"));
  if (!ests->is_object() || ests->shape.size() != 2)
    return e.Fail("estimators_ is not a 2-D object array");
  const int64_t k = ests->shape[1];
  ASSIGN_OR_RETURN(double lr, e.Float("learning_rate"));
  const bool clf = IsClassifier(e);
  Labels labels;
  double proba_scale = 1.0;
  std::vector<double> base(static_cast<size_t>(k), 0.0);
  if (clf) {
    ASSIGN_OR_RETURN(labels, ClassLabels(e));
    if ((labels.size() == 2) != (k == 1) || (k > 1 && static_cast<int64_t>(labels.size()) != k)) {
      return e.Fail("estimators_ has " + std::to_string(k) + " columns for " +
                    std::to_string(labels.size()) + " classes");
    }
  }
  const std::string loss = e.StrOr("loss", clf ? "log_loss" : "squared_error");
  double link_scale = 1.0;  // exponential loss: raw = 0.5 * logit(p), proba = expit(2 raw)
  if (clf) {
    if (loss == "exponential") {
      link_scale = 0.5;
      proba_scale = 2.0;
    } else if (loss != "log_loss" && loss != "deviance") {
      return e.Unsupported("loss '" + loss + "' is not supported");
    }
  }
  const Value* init = e.Attr("init_");
  if (!init || init->is_none()) return e.Fail("attribute 'init_' is missing");
  if (!(init->is_str() && init->s == "zero")) {
    ASSIGN_OR_RETURN(Est ie, Est::From(init));
    if (clf) {
      if (ie.name() != "DummyClassifier") {
        return e.Unsupported("init estimator " + ie.name() +
                             " is not supported (DummyClassifier or 'zero' are)");
      }
      ASSIGN_OR_RETURN(std::vector<double> prior, ie.Doubles("class_prior_"));
      const std::string strategy = ie.StrOr("strategy", "prior");
      if (strategy != "prior")
        return e.Unsupported("DummyClassifier strategy '" + strategy + "' as init");
      const double eps = std::numeric_limits<float>::epsilon();
      for (double& p : prior) p = std::min(std::max(p, eps), 1 - eps);
      if (k == 1) {
        if (prior.size() != 2) return e.Fail("init_ prior does not have two classes");
        base[0] = link_scale * std::log(prior[1] / (1 - prior[1]));
      } else {
        if (static_cast<int64_t>(prior.size()) != k) return e.Fail("init_ prior size mismatch");
        double mean = 0;
        for (double p : prior) mean += std::log(p);
        mean /= static_cast<double>(k);
        for (int64_t j = 0; j < k; ++j) base[j] = std::log(prior[j]) - mean;
      }
    } else {
      if (ie.name() != "DummyRegressor") {
        return e.Unsupported("init estimator " + ie.name() +
                             " is not supported (DummyRegressor or 'zero' are)");
      }
      ASSIGN_OR_RETURN(std::vector<double> c, ie.Doubles("constant_"));
      if (c.size() != 1) return e.Unsupported("multi-output init constants");
      base[0] = c[0];
    }
  }
  Ensemble ens;
  int64_t id = 0;
  for (int64_t i = 0; i < ests->shape[0]; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      ASSIGN_OR_RETURN(Est tree_est, Est::From(ests->objects[i * k + j]));
      ASSIGN_OR_RETURN(const Value* tree, tree_est.Need("tree_"));
      ASSIGN_OR_RETURN(TreeData t, ReadSklearnTree(tree_est, tree, width));
      AddRegressorTree(ens, id++, t, lr, j);
    }
  }
  std::string raw = RegressorNode(ctx, ens, k, base, input);
  if (!clf) return Emitted::Regressor(raw, 1);
  return ProbaFromRaw(ctx, raw, k, labels, proba_scale);
}

Result<Emitted> EmitHistGradientBoosting(Ctx& ctx, const Est& e, const std::string& input,
                                         int64_t width) {
  ASSIGN_OR_RETURN(const Value* preds, e.Need("_predictors"));
  if (preds->kind != Kind::kList || preds->items.empty()) return e.Fail("_predictors is empty");
  ASSIGN_OR_RETURN(std::vector<double> baseline, e.Doubles("_baseline_prediction"));
  const int64_t k = static_cast<int64_t>(baseline.size());
  const bool clf = IsClassifier(e);
  Labels labels;
  if (clf) {
    ASSIGN_OR_RETURN(labels, ClassLabels(e));
    if ((k == 1) != (labels.size() == 2)) return e.Fail("baseline does not match the classes");
  }
  const Value* loss = e.Attr("_loss");
  if (loss && loss->kind == Kind::kObject) {
    const std::string n = loss->TypeName();
    const bool ok = n == "HalfSquaredError" || n == "AbsoluteError" || n == "PinballLoss" ||
                    n == "HalfBinomialLoss" || n == "HalfMultinomialLoss" || n == "HuberLoss";
    if (!ok) return e.Unsupported("loss " + n + " is not supported");
  }
  Ensemble ens;
  ens.f64 = ctx.f64;
  int64_t id = 0;
  for (const Value* iter : preds->items) {
    if (iter->kind != Kind::kList || static_cast<int64_t>(iter->items.size()) != k) {
      return e.Fail("_predictors entry does not hold one predictor per output");
    }
    for (int64_t j = 0; j < k; ++j) {
      const Value* p = iter->items[j];
      if (p->kind != Kind::kObject || !p->state || !p->state->Get("nodes")) {
        return e.Fail("a TreePredictor lacks its nodes");
      }
      const Value* nv = p->state->Get("nodes");
      if (nv->kind != Kind::kNdArray) return e.Fail("TreePredictor nodes are not an array");
      const NdArray& na = *nv->array;
      TreeData t;
      ASSIGN_OR_RETURN(t.value, na.FieldAsDoubles("value"));
      ASSIGN_OR_RETURN(auto f, na.FieldAsDoubles("feature_idx"));
      ASSIGN_OR_RETURN(t.threshold, na.FieldAsDoubles("num_threshold"));
      ASSIGN_OR_RETURN(auto m, na.FieldAsDoubles("missing_go_to_left"));
      ASSIGN_OR_RETURN(auto l, na.FieldAsDoubles("left"));
      ASSIGN_OR_RETURN(auto r, na.FieldAsDoubles("right"));
      ASSIGN_OR_RETURN(auto leaf, na.FieldAsDoubles("is_leaf"));
      if (na.dtype.FindField("is_categorical")) {
        ASSIGN_OR_RETURN(auto cat, na.FieldAsDoubles("is_categorical"));
        for (double c : cat) {
          if (c != 0) return e.Unsupported("categorical features are not supported");
        }
      }
      t.feature = AsInts(f);
      t.missing_left = AsInts(m);
      t.left = AsInts(l);
      t.right = AsInts(r);
      for (double x : leaf) t.leaf.push_back(x != 0);
      RETURN_IF_ERROR(Validate(e, t, width));
      ens.Add(id++, t, [&](int64_t node, auto emit) { emit(j, t.value[node]); });
    }
  }
  std::string raw = RegressorNode(ctx, ens, k, baseline, input);
  if (!clf) return Emitted::Regressor(raw, 1);
  return ProbaFromRaw(ctx, raw, k, labels, 1.0);
}

}  // namespace serveml::importers::sklearn
