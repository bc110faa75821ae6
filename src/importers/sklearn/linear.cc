// Linear models -> ai.onnx.ml LinearClassifier / LinearRegressor, as skl2onnx does:
// binary models get the two rows [-w, w] so that the scores are [-z, z] and LOGISTIC gives
// [1 - p, p]; one-vs-rest probabilities are LOGISTIC then an L1 Normalizer; multinomial
// ones SOFTMAX.
#include <cmath>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

enum class ProbaMode { kNone, kOvr, kSoftmax, kModifiedHuber };

Result<ProbaMode> ClassifierProbaMode(const Est& e, size_t n_classes) {
  const std::string& n = e.name();
  if (n == "LogisticRegression" || n == "LogisticRegressionCV") {
    // sklearn 1.3-1.7 LogisticRegression.predict_proba.
    const std::string mc = e.StrOr("multi_class", "auto");
    const std::string solver = e.StrOr("solver", "lbfgs");
    bool ovr = mc == "ovr" || mc == "warn" ||
               ((mc == "auto" || mc == "deprecated") && (n_classes <= 2 || solver == "liblinear"));
    return ovr ? ProbaMode::kOvr : ProbaMode::kSoftmax;
  }
  if (n == "SGDClassifier") {
    const std::string loss = e.StrOr("loss", "hinge");
    if (loss == "log_loss" || loss == "log") return ProbaMode::kOvr;
    if (loss == "modified_huber") return ProbaMode::kModifiedHuber;
  }
  return ProbaMode::kNone;
}

// coef_ as [targets, width] plus intercept_ broadcast to targets.
Status CoefAndIntercept(const Est& e, int64_t width, std::vector<double>* coef,
                        std::vector<double>* intercept, int64_t* targets) {
  ASSIGN_OR_RETURN(*coef, e.Doubles("coef_"));
  if (width <= 0 || coef->empty() || coef->size() % static_cast<size_t>(width) != 0) {
    return e.Fail("coef_ has " + std::to_string(coef->size()) + " values, not a multiple of " +
                  std::to_string(width) + " features");
  }
  *targets = static_cast<int64_t>(coef->size()) / width;
  intercept->assign(static_cast<size_t>(*targets), 0.0);
  if (e.Has("intercept_")) {
    ASSIGN_OR_RETURN(std::vector<double> b, e.Doubles("intercept_"));
    if (b.size() == 1) {
      intercept->assign(static_cast<size_t>(*targets), b[0]);
    } else if (static_cast<int64_t>(b.size()) == *targets) {
      *intercept = b;
    } else {
      return e.Fail("intercept_ has " + std::to_string(b.size()) + " values for " +
                    std::to_string(*targets) + " targets");
    }
  }
  for (double c : *coef) {
    if (!std::isfinite(c)) return e.Fail("coef_ holds NaN or infinite values");
  }
  return Status::Ok();
}

std::vector<float> ToFloats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace

Result<Emitted> EmitLinearClassifier(Ctx& ctx, const Est& e, const std::string& input,
                                     int64_t width) {
  ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
  std::vector<double> coef, intercept;
  int64_t k = 0;
  RETURN_IF_ERROR(CoefAndIntercept(e, width, &coef, &intercept, &k));
  const int64_t c = static_cast<int64_t>(labels.size());
  if (c < 2) return e.Fail("needs at least two classes, has " + std::to_string(c));
  if ((k == 1 && c != 2) || (k > 1 && k != c)) {
    return e.Fail("coef_ has " + std::to_string(k) + " rows for " + std::to_string(c) + " classes");
  }
  ASSIGN_OR_RETURN(ProbaMode mode, ClassifierProbaMode(e, labels.size()));
  if (k == 1) {  // binary: rows [-w, w], intercepts [-b, b]
    std::vector<double> two(coef.size() * 2);
    for (size_t i = 0; i < coef.size(); ++i) {
      two[i] = -coef[i];
      two[coef.size() + i] = coef[i];
    }
    coef = std::move(two);
    intercept = {-intercept[0], intercept[0]};
  }
  const char* post = mode == ProbaMode::kOvr       ? "LOGISTIC"
                     : mode == ProbaMode::kSoftmax ? "SOFTMAX"
                                                   : "NONE";
  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  out.label = ctx.g.Unique("label");
  std::string scores = ctx.g.Unique("scores");
  OnnxNode& n = ctx.g.AddNode("LinearClassifier", {input}, {out.label, scores}, "ai.onnx.ml");
  n.Attr("coefficients", ToFloats(coef));
  n.Attr("intercepts", ToFloats(intercept));
  n.Attr("multi_class", int64_t{0});
  n.Attr("post_transform", std::string(post));
  if (labels.strings)
    n.Attr("classlabels_strings", labels.strs);
  else
    n.Attr("classlabels_ints", labels.ints);

  switch (mode) {
    case ProbaMode::kNone:
      break;
    case ProbaMode::kSoftmax:
      out.proba = scores;
      break;
    case ProbaMode::kOvr:
      if (k == 1) {
        out.proba = scores;
      } else {
        ctx.Op("Normalizer", {scores}, &out.proba, "ai.onnx.ml").Attr("norm", std::string("L1"));
      }
      break;
    case ProbaMode::kModifiedHuber: {
      // (clip(decision, -1, 1) + 1) / 2, then rows normalised (multiclass).
      std::string clipped =
          ctx.Op1("Clip", {scores, ctx.Floats("lo", {-1.0}, {}), ctx.Floats("hi", {1.0}, {})});
      std::string p = ctx.Op1("Div", {ctx.Op1("Add", {clipped, ctx.Floats("one", {1.0}, {})}),
                                      ctx.Floats("two", {2.0}, {})});
      if (k == 1) {
        out.proba = p;
      } else {
        ctx.Op("Normalizer", {p}, &out.proba, "ai.onnx.ml").Attr("norm", std::string("L1"));
      }
      break;
    }
  }
  return out;
}

Result<Emitted> EmitLinearRegressor(Ctx& ctx, const Est& e, const std::string& input,
                                    int64_t width) {
  std::vector<double> coef, intercept;
  int64_t k = 0;
  RETURN_IF_ERROR(CoefAndIntercept(e, width, &coef, &intercept, &k));
  Emitted out;
  out.kind = Emitted::Kind::kRegressor;
  out.width = k;
  ctx.Op("LinearRegressor", {input}, &out.out, "ai.onnx.ml")
      .Attr("coefficients", ToFloats(coef))
      .Attr("intercepts", ToFloats(intercept))
      .Attr("targets", k)
      .Attr("post_transform", std::string("NONE"));
  return out;
}

}  // namespace serveml::importers::sklearn
