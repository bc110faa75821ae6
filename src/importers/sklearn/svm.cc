// Kernel support vector machines fitted by libsvm (SVC, NuSVC, SVR, NuSVR, OneClassSVM) ->
// ai.onnx.ml SVMClassifier / SVMRegressor.
//
// scikit-learn keeps libsvm's own model next to its public attributes: `_dual_coef_`
// [C-1, V] and `_intercept_` (= -rho) in libsvm's orientation, while `dual_coef_` and
// `intercept_` are negated for binary classifiers so that a positive decision_function
// means classes_[1]. The graph uses libsvm's orientation, which is SVMClassifier's: for the
// class pair (i, j) the score is sum(coef * K(x, sv)) + intercept and a positive score votes
// for class i. predict() is libsvm's vote (ties go to the lowest class index), also for
// probability=True models; predict_proba is Platt scaling per pair (probA_, probB_) followed
// by libsvm's pairwise coupling, which libsvm applies to two classes as well.
// break_ties=True with decision_function_shape='ovr' and more than two classes predicts the
// argmax of the one-vs-rest decision function, built from the pair scores here.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

constexpr int64_t kMaxClasses = 1 << 15;

struct SvmModel {
  std::string kernel;                  // "LINEAR", "POLY", "RBF", "SIGMOID"
  std::vector<float> kernel_params;    // gamma, coef0, degree
  std::vector<float> support_vectors;  // [V, width]
  int64_t n_sv = 0;
  std::vector<float> coef;       // [rows, V], libsvm orientation
  std::vector<float> intercept;  // libsvm orientation (-rho)
};

Status AllFinite(const Est& e, const std::vector<double>& v, const char* what) {
  for (double x : v) {
    if (!std::isfinite(x)) return e.Fail(std::string(what) + " holds NaN or infinite values");
  }
  return Status::Ok();
}

std::vector<float> ToFloats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// The libsvm-oriented attribute `internal`, or the public one (negated when `flip`).
Result<std::vector<double>> Oriented(const Est& e, const char* internal, const char* pub,
                                     bool flip) {
  if (e.Has(internal)) return e.Doubles(internal);
  ASSIGN_OR_RETURN(std::vector<double> v, e.Doubles(pub));
  if (flip) {
    for (double& x : v) x = -x;
  }
  return v;
}

// Kernel, support vectors, dual coefficients (`rows` x V) and `n_intercepts` intercepts.
Result<SvmModel> ReadSvm(const Est& e, int64_t width, int64_t rows, int64_t n_intercepts,
                         bool flip_public) {
  SvmModel m;
  const Value* kv = e.Attr("kernel");
  if (kv && !kv->is_str()) {
    return e.Unsupported("callable kernels are not supported (only linear, poly, rbf, sigmoid)");
  }
  const std::string kernel = e.StrOr("kernel", "rbf");
  if (kernel == "linear") {
    m.kernel = "LINEAR";
  } else if (kernel == "poly") {
    m.kernel = "POLY";
  } else if (kernel == "rbf") {
    m.kernel = "RBF";
  } else if (kernel == "sigmoid") {
    m.kernel = "SIGMOID";
  } else {
    return e.Unsupported("kernel '" + kernel +
                         "' is not supported (only linear, poly, rbf, sigmoid)");
  }
  if (e.Bool("_sparse", false)) {
    return e.Unsupported(
        "models fitted on sparse matrices are not supported; fit on a dense array");
  }
  ASSIGN_OR_RETURN(double gamma, e.Float("_gamma"));
  double coef0 = 0, degree = 3;
  if (e.Has("coef0")) {
    ASSIGN_OR_RETURN(coef0, e.Float("coef0"));
  }
  if (e.Has("degree")) {
    ASSIGN_OR_RETURN(degree, e.Float("degree"));
  }
  if (!std::isfinite(gamma) || !std::isfinite(coef0) || !std::isfinite(degree) || degree < 0 ||
      degree > 1000) {
    return e.Fail("kernel parameters (gamma " + std::to_string(gamma) + ", coef0 " +
                  std::to_string(coef0) + ", degree " + std::to_string(degree) + ") are invalid");
  }
  m.kernel_params = {static_cast<float>(gamma), static_cast<float>(coef0),
                     static_cast<float>(degree)};

  ASSIGN_OR_RETURN(const NdArray* sv, e.Array("support_vectors_"));
  if (sv->shape.size() != 2) return e.Fail("support_vectors_ is not a 2-D array");
  if (sv->shape[1] != width) {
    return e.Fail("support_vectors_ has " + std::to_string(sv->shape[1]) + " columns for " +
                  std::to_string(width) + " input features");
  }
  m.n_sv = sv->shape[0];
  if (m.n_sv <= 0) return e.Fail("the model has no support vectors");
  ASSIGN_OR_RETURN(std::vector<double> svd, sv->ToDoubles());
  RETURN_IF_ERROR(AllFinite(e, svd, "support_vectors_"));
  m.support_vectors = ToFloats(svd);

  ASSIGN_OR_RETURN(std::vector<double> coef, Oriented(e, "_dual_coef_", "dual_coef_", flip_public));
  if (static_cast<int64_t>(coef.size()) / rows != m.n_sv ||
      static_cast<int64_t>(coef.size()) % rows != 0) {
    return e.Fail("dual_coef_ has " + std::to_string(coef.size()) + " values; expected " +
                  std::to_string(rows) + " x " + std::to_string(m.n_sv) + " support vectors");
  }
  RETURN_IF_ERROR(AllFinite(e, coef, "dual_coef_"));
  m.coef = ToFloats(coef);

  ASSIGN_OR_RETURN(std::vector<double> b, Oriented(e, "_intercept_", "intercept_", flip_public));
  if (static_cast<int64_t>(b.size()) != n_intercepts) {
    return e.Fail("intercept_ has " + std::to_string(b.size()) + " values; expected " +
                  std::to_string(n_intercepts));
  }
  RETURN_IF_ERROR(AllFinite(e, b, "intercept_"));
  m.intercept = ToFloats(b);
  return m;
}

void KernelAttrs(OnnxNode& n, const SvmModel& m) {
  n.Attr("kernel_type", m.kernel);
  n.Attr("kernel_params", m.kernel_params);
  n.Attr("support_vectors", m.support_vectors);
  n.Attr("coefficients", m.coef);
  n.Attr("rho", m.intercept);
}

// One SVMClassifier node; returns {label, scores}.
std::pair<std::string, std::string> ClassifierNode(Ctx& ctx, const SvmModel& m,
                                                   const std::vector<int64_t>& n_support,
                                                   const Labels& labels,
                                                   const std::vector<double>* prob_a,
                                                   const std::vector<double>* prob_b,
                                                   const std::string& input) {
  std::string label = ctx.g.Unique("svm_label");
  std::string scores = ctx.g.Unique("svm_scores");
  OnnxNode& n = ctx.g.AddNode("SVMClassifier", {input}, {label, scores}, "ai.onnx.ml");
  KernelAttrs(n, m);
  n.Attr("vectors_per_class", n_support);
  n.Attr("post_transform", std::string("NONE"));
  if (prob_a && prob_b) {
    n.Attr("prob_a", ToFloats(*prob_a));
    n.Attr("prob_b", ToFloats(*prob_b));
  }
  if (labels.strings) {
    n.Attr("classlabels_strings", labels.strs);
  } else {
    n.Attr("classlabels_ints", labels.ints);
  }
  return {label, scores};
}

// classes_[argmax(ovr decision)] from the pair scores s [N, P] (libsvm orientation):
// votes_i = #{pairs won}, confidence_i = sum over pairs of +-s, then
// votes + confidence / (3 (|confidence| + 1)), as sklearn's _ovr_decision_function.
std::string OvrLabel(Ctx& ctx, const std::string& scores, const Labels& labels) {
  const int64_t c = static_cast<int64_t>(labels.size());
  const int64_t pairs = c * (c - 1) / 2;
  std::vector<double> win_i(static_cast<size_t>(pairs * c), 0.0);
  std::vector<double> win_j(win_i.size(), 0.0), sign(win_i.size(), 0.0);
  int64_t k = 0;
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t j = i + 1; j < c; ++j, ++k) {
      win_i[k * c + i] = 1;
      win_j[k * c + j] = 1;
      sign[k * c + i] = 1;
      sign[k * c + j] = -1;
    }
  }
  // sklearn votes for i when the decision is not negative.
  std::string won = ctx.Op1("GreaterOrEqual", {scores, ctx.Floats("zero", {0.0}, {})});
  std::string won_f;
  ctx.Op("Cast", {won}, &won_f).Attr("to", int64_t{1});
  std::string lost_f = ctx.Op1("Sub", {ctx.Floats("one", {1.0}, {}), won_f});
  std::string votes =
      ctx.Op1("Add", {ctx.Op1("MatMul", {won_f, ctx.Floats("ovr_win_i", win_i, {pairs, c})}),
                      ctx.Op1("MatMul", {lost_f, ctx.Floats("ovr_win_j", win_j, {pairs, c})})});
  std::string conf = ctx.Op1("MatMul", {scores, ctx.Floats("ovr_sign", sign, {pairs, c})});
  std::string denom =
      ctx.Op1("Mul", {ctx.Op1("Add", {ctx.Op1("Abs", {conf}), ctx.Floats("one", {1.0}, {})}),
                      ctx.Floats("three", {3.0}, {})});
  std::string dec = ctx.Op1("Add", {votes, ctx.Op1("Div", {conf, denom})});
  return ctx.LabelFromProba(dec, labels);
}

}  // namespace

Result<Emitted> EmitSvmClassifier(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
  const int64_t c = static_cast<int64_t>(labels.size());
  if (c < 2) return e.Fail("needs at least two classes, has " + std::to_string(c));
  if (c > kMaxClasses) return e.Fail("has " + std::to_string(c) + " classes, too many");
  const int64_t pairs = c * (c - 1) / 2;
  ASSIGN_OR_RETURN(SvmModel m, ReadSvm(e, width, c - 1, pairs, c == 2));

  std::vector<int64_t> n_support;
  if (e.Has("_n_support")) {
    ASSIGN_OR_RETURN(n_support, e.Ints("_n_support"));
  } else {
    ASSIGN_OR_RETURN(n_support, e.Ints("n_support_"));
  }
  if (static_cast<int64_t>(n_support.size()) != c) {
    return e.Fail("n_support_ has " + std::to_string(n_support.size()) + " entries for " +
                  std::to_string(c) + " classes");
  }
  int64_t total = 0;
  for (int64_t s : n_support) {
    if (s < 0 || s > m.n_sv)
      return e.Fail("n_support_ holds an invalid count " + std::to_string(s));
    total += s;
  }
  if (total != m.n_sv) {
    return e.Fail("n_support_ counts " + std::to_string(total) + " support vectors but " +
                  "support_vectors_ has " + std::to_string(m.n_sv));
  }

  std::vector<double> prob_a, prob_b;
  const bool proba = e.Bool("probability", false);
  if (proba) {
    ASSIGN_OR_RETURN(prob_a, Oriented(e, "_probA", "probA_", false));
    ASSIGN_OR_RETURN(prob_b, Oriented(e, "_probB", "probB_", false));
    if (static_cast<int64_t>(prob_a.size()) != pairs ||
        static_cast<int64_t>(prob_b.size()) != pairs) {
      return e.Fail("probA_/probB_ have " + std::to_string(prob_a.size()) + "/" +
                    std::to_string(prob_b.size()) + " values; expected " + std::to_string(pairs));
    }
    RETURN_IF_ERROR(AllFinite(e, prob_a, "probA_"));
    RETURN_IF_ERROR(AllFinite(e, prob_b, "probB_"));
  }

  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  const bool ovr_ties =
      e.Bool("break_ties", false) && c > 2 && e.StrOr("decision_function_shape", "ovr") == "ovr";
  if (proba) {
    auto [label, scores] = ClassifierNode(ctx, m, n_support, labels, &prob_a, &prob_b, input);
    out.label = label;
    out.proba = scores;
  }
  if (!proba || ovr_ties) {
    auto [label, scores] = ClassifierNode(ctx, m, n_support, labels, nullptr, nullptr, input);
    out.label = ovr_ties ? OvrLabel(ctx, scores, labels) : label;
  }
  return out;
}

Result<Emitted> EmitSvmRegressor(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(SvmModel m, ReadSvm(e, width, 1, 1, false));
  const bool one_class = e.name() == "OneClassSVM";
  Emitted out;
  out.kind = Emitted::Kind::kRegressor;
  out.width = 1;
  OnnxNode& n = ctx.Op("SVMRegressor", {input}, &out.out, "ai.onnx.ml");
  KernelAttrs(n, m);
  n.Attr("n_supports", m.n_sv);
  n.Attr("post_transform", std::string("NONE"));
  if (one_class) n.Attr("one_class", int64_t{1});
  return out;
}

}  // namespace serveml::importers::sklearn
