// VotingClassifier / VotingRegressor and StackingClassifier / StackingRegressor: every
// fitted sub-estimator is emitted on the same input (through Emit, so any supported
// estimator or pipeline may take part) and the results are combined with core operators.
//
// The classifiers fit their sub-estimators (and the stacking final estimator) on labels
// encoded as 0..C-1 (their LabelEncoder), so sub-estimator labels are those indices and
// are mapped back to classes_ at the end.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

// Over the whole model: a file may share one nested ensemble between many parents.
constexpr int64_t kMaxMembers = 1000;

Status CountMember(Ctx& ctx, const Est& e) {
  if (++ctx.ensemble_members > kMaxMembers) {
    return e.Unsupported("ensembles with more than " + std::to_string(kMaxMembers) +
                         " sub-estimators in total are not supported");
  }
  return Status::Ok();
}

Result<std::vector<const Value*>> FittedEstimators(const Est& e) {
  ASSIGN_OR_RETURN(const Value* list, e.Need("estimators_"));
  if (list->kind != Kind::kList && list->kind != Kind::kTuple) {
    return e.Fail("'estimators_' is a " + list->TypeName() + ", expected a list");
  }
  std::vector<const Value*> out;
  for (const Value* v : list->items) {
    if (v->is_none() || (v->is_str() && v->s == "drop")) continue;
    out.push_back(v);
  }
  if (out.empty()) return e.Fail("has no fitted estimators");
  return out;
}

// The `weights` parameter restricted to the estimators that are not 'drop' (scikit-learn's
// _weights_not_none); empty when unweighted.
Result<std::vector<double>> Weights(const Est& e, size_t fitted) {
  const Value* w = e.Attr("weights");
  if (!w || w->is_none()) return std::vector<double>{};
  ASSIGN_OR_RETURN(std::vector<double> all, e.Doubles("weights"));
  ASSIGN_OR_RETURN(const Value* ests, e.Need("estimators"));
  if (ests->kind != Kind::kList && ests->kind != Kind::kTuple) {
    return e.Fail("'estimators' is not a list");
  }
  if (all.size() != ests->items.size()) {
    return e.Fail("'weights' has " + std::to_string(all.size()) + " values for " +
                  std::to_string(ests->items.size()) + " estimators");
  }
  std::vector<double> out;
  for (size_t i = 0; i < all.size(); ++i) {
    const Value* pair = ests->items[i];
    if ((pair->kind != Kind::kTuple && pair->kind != Kind::kList) || pair->items.size() != 2) {
      return e.Fail("an entry of 'estimators' is not a (name, estimator) pair");
    }
    const Value* est = pair->items[1];
    if (est->is_none() || (est->is_str() && est->s == "drop")) continue;
    if (!std::isfinite(all[i])) return e.Fail("'weights' holds NaN or infinite values");
    out.push_back(all[i]);
  }
  if (out.size() != fitted) return e.Fail("'weights' does not match the fitted estimators");
  return out;
}

// Checks that a sub-estimator's classes are the encoded indices 0..C-1.
Status CheckEncodedLabels(const Est& e, const Emitted& sub, size_t n_classes) {
  const Labels& l = sub.labels;
  bool ok = !l.strings && l.size() == n_classes;
  for (size_t i = 0; ok && i < l.ints.size(); ++i) ok = l.ints[i] == static_cast<int64_t>(i);
  if (!ok) {
    return e.Fail("a sub-estimator's classes are not the encoded labels 0.." +
                  std::to_string(n_classes - 1));
  }
  return Status::Ok();
}

// labels[index] for int64 indices [N].
std::string MapLabels(Ctx& ctx, const std::string& index, const Labels& labels) {
  std::string table = labels.strings ? ctx.Strings("class_labels", labels.strs)
                                     : ctx.Int64s("class_labels", labels.ints);
  std::string picked = ctx.Op1("ArrayFeatureExtractor", {table, index}, "ai.onnx.ml");
  return ctx.Op1("Reshape", {picked, ctx.Int64s("shape", {-1})});
}

// sum_i w_i x_i / sum_i w_i (plain mean without weights), as numpy.average.
Result<std::string> Average(Ctx& ctx, const Est& e, const std::vector<std::string>& xs,
                            const std::vector<double>& w) {
  double total = 0;
  std::string acc;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double wi = w.empty() ? 1.0 : w[i];
    total += wi;
    std::string term = w.empty() ? xs[i] : ctx.Op1("Mul", {xs[i], ctx.Floats("weight", {wi}, {})});
    acc = acc.empty() ? term : ctx.Op1("Add", {acc, term});
  }
  if (total == 0) return e.Fail("the weights sum to zero");
  return ctx.Op1("Div", {acc, ctx.Floats("weight_sum", {total}, {})});
}

std::string Column(Ctx& ctx, const std::string& x) {
  return ctx.Op1("Reshape", {x, ctx.Int64s("shape", {-1, 1})});
}

std::string ToFloat(Ctx& ctx, const std::string& x) {
  std::string out;
  ctx.Op("Cast", {x}, &out).Attr("to", int64_t{1});
  return out;
}

bool IsLinearClassifier(const std::string& name) {
  for (const char* n :
       {"LogisticRegression", "LogisticRegressionCV", "SGDClassifier", "LinearSVC",
        "RidgeClassifier", "RidgeClassifierCV", "Perceptron", "PassiveAggressiveClassifier"}) {
    if (name == n) return true;
  }
  return false;
}

// decision_function of a linear classifier, or of a Pipeline ending in one:
// x @ coef_.T + intercept_, [N, 1] for binary problems.
Result<std::pair<std::string, int64_t>> DecisionFunction(Ctx& ctx, const Value* v, std::string x,
                                                         int64_t width) {
  ASSIGN_OR_RETURN(Est e, Est::From(v));
  if (e.name() == "Pipeline") {
    ASSIGN_OR_RETURN(const Value* steps, e.Need("steps"));
    if (steps->kind != Kind::kList && steps->kind != Kind::kTuple) {
      return e.Fail("'steps' is not a list");
    }
    std::vector<const Value*> ests;
    for (const Value* s : steps->items) {
      if ((s->kind != Kind::kTuple && s->kind != Kind::kList) || s->items.size() != 2) {
        return e.Fail("a step is not a (name, estimator) pair");
      }
      const Value* est = s->items[1];
      if (est->is_none() || (est->is_str() && est->s == "passthrough")) continue;
      ests.push_back(est);
    }
    if (ests.empty()) return e.Fail("the pipeline has no estimator steps");
    if (++ctx.nesting > 16) return e.Fail("pipelines are nested too deeply");
    for (size_t i = 0; i + 1 < ests.size(); ++i) {
      ASSIGN_OR_RETURN(Emitted t, Emit(ctx, ests[i], x, width));
      if (t.kind != Emitted::Kind::kTransform) {
        return e.Fail("step " + std::to_string(i + 1) + " (" + ModelTypeName(ests[i]) +
                      ") is a predictor but is not the last step");
      }
      x = t.out;
      width = t.width;
    }
    auto r = DecisionFunction(ctx, ests.back(), x, width);
    --ctx.nesting;
    return r;
  }
  if (!IsLinearClassifier(e.name())) {
    return e.Unsupported(
        "stack_method 'decision_function' is supported for linear classifiers "
        "only; use stack_method='predict_proba' or 'predict'");
  }
  if (e.Has("n_features_in_")) {
    ASSIGN_OR_RETURN(int64_t nf, e.Int("n_features_in_"));
    if (nf != width) {
      return e.Fail("expects " + std::to_string(nf) + " input features but receives " +
                    std::to_string(width));
    }
  }
  ASSIGN_OR_RETURN(std::vector<double> coef, e.Doubles("coef_"));
  if (width <= 0 || coef.empty() || coef.size() % static_cast<size_t>(width) != 0) {
    return e.Fail("coef_ does not match " + std::to_string(width) + " features");
  }
  const int64_t k = static_cast<int64_t>(coef.size()) / width;
  std::vector<double> intercept(static_cast<size_t>(k), 0.0);
  if (e.Has("intercept_")) {
    ASSIGN_OR_RETURN(std::vector<double> b, e.Doubles("intercept_"));
    if (b.size() == 1) {
      intercept.assign(static_cast<size_t>(k), b[0]);
    } else if (static_cast<int64_t>(b.size()) == k) {
      intercept = b;
    } else {
      return e.Fail("intercept_ does not match coef_");
    }
  }
  std::vector<double> t(coef.size());  // [width, k]
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < width; ++j) t[j * k + i] = coef[i * width + j];
  }
  std::string scores = ctx.Op1("Add", {ctx.Op1("MatMul", {x, ctx.Floats("coef", t, {width, k})}),
                                       ctx.Floats("intercept", intercept)});
  return std::make_pair(scores, k);
}

}  // namespace

Result<Emitted> EmitVoting(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  if (++ctx.nesting > 16) return e.Fail("estimators are nested too deeply");
  ASSIGN_OR_RETURN(std::vector<const Value*> subs, FittedEstimators(e));
  ASSIGN_OR_RETURN(std::vector<double> w, Weights(e, subs.size()));
  std::vector<Emitted> outs;
  for (const Value* s : subs) {
    RETURN_IF_ERROR(CountMember(ctx, e));
    ASSIGN_OR_RETURN(Emitted o, Emit(ctx, s, input, width));
    outs.push_back(std::move(o));
  }
  Emitted out;
  if (e.name() == "VotingRegressor") {
    std::vector<std::string> ys;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (outs[i].kind != Emitted::Kind::kRegressor || outs[i].width != 1) {
        return e.Fail("estimator " + std::to_string(i + 1) + " (" + ModelTypeName(subs[i]) +
                      ") is not a single-output regressor");
      }
      ys.push_back(outs[i].out);
    }
    ASSIGN_OR_RETURN(std::string avg, Average(ctx, e, ys, w));
    --ctx.nesting;
    return Emitted::Regressor(avg, 1);
  }
  ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
  const size_t c = labels.size();
  if (c < 2) return e.Fail("needs at least two classes");
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].kind != Emitted::Kind::kClassifier) {
      return e.Fail("estimator " + std::to_string(i + 1) + " (" + ModelTypeName(subs[i]) +
                    ") is not a classifier");
    }
    RETURN_IF_ERROR(CheckEncodedLabels(e, outs[i], c));
  }
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  const std::string voting = e.StrOr("voting", "hard");
  if (voting == "soft") {
    std::vector<std::string> ps;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (outs[i].proba.empty()) {
        return e.Unsupported("voting='soft' needs predict_proba, which " + ModelTypeName(subs[i]) +
                             " does not have");
      }
      ps.push_back(outs[i].proba);
    }
    ASSIGN_OR_RETURN(out.proba, Average(ctx, e, ps, w));
    out.label = ctx.LabelFromProba(out.proba, labels);
  } else if (voting == "hard") {
    // argmax of the weighted vote counts (first class on ties), in float64 as numpy's
    // bincount so that ties are decided the same way.
    std::vector<int64_t> range;
    for (size_t k = 0; k < c; ++k) range.push_back(static_cast<int64_t>(k));
    const std::string classes = ctx.Int64s("class_index", range);
    std::string votes;
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string hit;
      ctx.Op("Cast", {ctx.Op1("Equal", {Column(ctx, outs[i].label), classes})}, &hit)
          .Attr("to", int64_t{11});
      if (!w.empty()) hit = ctx.Op1("Mul", {hit, ctx.Doubles("weight", {w[i]}, {})});
      votes = votes.empty() ? hit : ctx.Op1("Add", {votes, hit});
    }
    std::string idx;
    ctx.Op("ArgMax", {votes}, &idx).Attr("axis", int64_t{1}).Attr("keepdims", int64_t{0});
    out.label = MapLabels(ctx, idx, labels);
  } else {
    return e.Unsupported("voting='" + voting + "' is not supported");
  }
  --ctx.nesting;
  return out;
}

Result<Emitted> EmitStacking(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  if (++ctx.nesting > 16) return e.Fail("estimators are nested too deeply");
  ASSIGN_OR_RETURN(std::vector<const Value*> subs, FittedEstimators(e));
  ASSIGN_OR_RETURN(const Value* methods, e.Need("stack_method_"));
  if ((methods->kind != Kind::kList && methods->kind != Kind::kTuple) ||
      methods->items.size() != subs.size()) {
    return e.Fail("'stack_method_' does not match the fitted estimators");
  }
  const bool classifier = e.name() == "StackingClassifier";
  Labels labels;
  if (classifier) {
    const Value* le = e.Attr("_label_encoder");
    if (le && (le->kind == Kind::kList || le->kind == Kind::kTuple)) {
      return e.Unsupported("multilabel classification is not supported");
    }
    ASSIGN_OR_RETURN(labels, ClassLabels(e));
    if (labels.size() < 2) return e.Fail("needs at least two classes");
  }
  const size_t c = labels.size();
  std::vector<std::string> parts;
  int64_t meta_width = 0;
  for (size_t i = 0; i < subs.size(); ++i) {
    const Value* m = methods->items[i];
    if (!m->is_str()) return e.Fail("'stack_method_' holds a " + m->TypeName());
    const std::string& method = m->s;
    RETURN_IF_ERROR(CountMember(ctx, e));
    const std::string what =
        "estimator " + std::to_string(i + 1) + " (" + ModelTypeName(subs[i]) + ")";
    if (method == "decision_function") {
      ASSIGN_OR_RETURN(auto scores, DecisionFunction(ctx, subs[i], input, width));
      if (classifier && scores.second != (c == 2 ? 1 : static_cast<int64_t>(c))) {
        return e.Fail(what + " has a decision function of the wrong width");
      }
      parts.push_back(scores.first);
      meta_width += scores.second;
      continue;
    }
    ASSIGN_OR_RETURN(Emitted o, Emit(ctx, subs[i], input, width));
    if (method == "predict_proba") {
      if (o.kind != Emitted::Kind::kClassifier || o.proba.empty()) {
        return e.Unsupported(what + " has no predict_proba");
      }
      if (classifier) RETURN_IF_ERROR(CheckEncodedLabels(e, o, c));
      const int64_t nc = static_cast<int64_t>(o.labels.size());
      if (nc == 2 && classifier) {
        parts.push_back(ctx.Columns(o.proba, {1}));
        meta_width += 1;
      } else {
        parts.push_back(o.proba);
        meta_width += nc;
      }
    } else if (method == "predict") {
      if (o.kind == Emitted::Kind::kClassifier) {
        if (o.labels.strings) return e.Unsupported(what + " predicts string labels");
        parts.push_back(ToFloat(ctx, Column(ctx, o.label)));
        meta_width += 1;
      } else if (o.kind == Emitted::Kind::kRegressor) {
        parts.push_back(o.out);
        meta_width += o.width;
      } else {
        return e.Fail(what + " is a transformer");
      }
    } else {
      return e.Unsupported("stack_method '" + method + "' is not supported");
    }
  }
  if (e.Bool("passthrough", false)) {
    parts.push_back(input);
    meta_width += width;
  }
  std::string meta = parts[0];
  if (parts.size() > 1) ctx.Op("Concat", parts, &meta).Attr("axis", int64_t{1});
  ASSIGN_OR_RETURN(const Value* final_est, e.Need("final_estimator_"));
  ASSIGN_OR_RETURN(Emitted fin, Emit(ctx, final_est, meta, meta_width));
  --ctx.nesting;
  if (!classifier) {
    if (fin.kind != Emitted::Kind::kRegressor)
      return e.Fail("the final estimator is not a regressor");
    return fin;
  }
  if (fin.kind != Emitted::Kind::kClassifier)
    return e.Fail("the final estimator is not a classifier");
  RETURN_IF_ERROR(CheckEncodedLabels(e, fin, c));
  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  out.proba = fin.proba;
  out.label = MapLabels(ctx, fin.label, labels);
  return out;
}

}  // namespace serveml::importers::sklearn
