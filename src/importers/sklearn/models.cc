// MLPs and naive Bayes with core ONNX operators (MatMul, Add, activations, Softmax).
#include <cmath>
#include <numbers>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

Result<const NdArray*> ArrayOf(const Est& e, const Value* v, const char* what) {
  if (v->kind != Kind::kNdArray) return e.Fail(std::string(what) + " is not an array");
  return v->array.get();
}

std::string Activation(Ctx& ctx, const std::string& x, const std::string& act) {
  if (act == "relu") return ctx.Op1("Relu", {x});
  if (act == "tanh") return ctx.Op1("Tanh", {x});
  if (act == "logistic") return ctx.Op1("Sigmoid", {x});
  return x;  // identity
}

Emitted Classify(Ctx& ctx, const std::string& proba, const Labels& labels) {
  Emitted out;
  out.kind = Emitted::Kind::kClassifier;
  out.labels = labels;
  out.proba = proba;
  out.label = ctx.LabelFromProba(proba, labels);
  return out;
}

// [N, 1] probability of the positive class -> [N, 2].
std::string TwoColumns(Ctx& ctx, const std::string& p) {
  std::string q = ctx.Op1("Sub", {ctx.Floats("one", {1.0}, {}), p});
  std::string out;
  ctx.Op("Concat", {q, p}, &out).Attr("axis", int64_t{1});
  return out;
}

}  // namespace

Result<Emitted> EmitMlp(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(const Value* coefs, e.Need("coefs_"));
  ASSIGN_OR_RETURN(const Value* intercepts, e.Need("intercepts_"));
  if (coefs->kind != Kind::kList || intercepts->kind != Kind::kList ||
      coefs->items.size() != intercepts->items.size() || coefs->items.empty()) {
    return e.Fail("coefs_ and intercepts_ are not matching lists");
  }
  const std::string act = e.StrOr("activation", "relu");
  if (act != "relu" && act != "tanh" && act != "logistic" && act != "identity") {
    return e.Unsupported("activation '" + act + "' is not supported");
  }
  ASSIGN_OR_RETURN(std::string out_act, e.Str("out_activation_"));
  std::string h = input;
  int64_t cur = width;
  for (size_t i = 0; i < coefs->items.size(); ++i) {
    ASSIGN_OR_RETURN(const NdArray* w, ArrayOf(e, coefs->items[i], "coefs_[i]"));
    ASSIGN_OR_RETURN(const NdArray* b, ArrayOf(e, intercepts->items[i], "intercepts_[i]"));
    if (w->shape.size() != 2 || w->shape[0] != cur || b->numel() != w->shape[1]) {
      return e.Fail("layer " + std::to_string(i) + " has inconsistent shapes");
    }
    ASSIGN_OR_RETURN(auto wv, w->ToDoubles());
    ASSIGN_OR_RETURN(auto bv, b->ToDoubles());
    h = ctx.Op1("Add",
                {ctx.Op1("MatMul", {h, ctx.Floats("W", wv, w->shape)}), ctx.Floats("b", bv)});
    cur = w->shape[1];
    if (i + 1 < coefs->items.size()) h = Activation(ctx, h, act);
  }
  if (e.name() == "MLPRegressor") {
    Emitted out;
    out.kind = Emitted::Kind::kRegressor;
    out.out = h;
    out.width = cur;
    return out;
  }
  ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
  if (out_act == "softmax") {
    if (static_cast<int64_t>(labels.size()) != cur)
      return e.Fail("output layer does not match classes_");
    std::string p;
    ctx.Op("Softmax", {h}, &p).Attr("axis", int64_t{1});
    return Classify(ctx, p, labels);
  }
  if (out_act == "logistic" && cur == 1 && labels.size() == 2) {
    return Classify(ctx, TwoColumns(ctx, ctx.Op1("Sigmoid", {h})), labels);
  }
  return e.Unsupported("multi-label MLPClassifier is not supported");
}

Result<Emitted> EmitNaiveBayes(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
  const int64_t c = static_cast<int64_t>(labels.size());
  std::string jll;
  if (e.name() == "GaussianNB") {
    ASSIGN_OR_RETURN(std::vector<double> theta, e.Doubles("theta_"));
    std::vector<double> var;
    if (e.Has("var_")) {
      ASSIGN_OR_RETURN(var, e.Doubles("var_"));
    } else {
      ASSIGN_OR_RETURN(var, e.Doubles("sigma_"));
    }
    ASSIGN_OR_RETURN(std::vector<double> prior, e.Doubles("class_prior_"));
    if (static_cast<int64_t>(theta.size()) != c * width || var.size() != theta.size() ||
        static_cast<int64_t>(prior.size()) != c) {
      return e.Fail("theta_/var_/class_prior_ do not match the classes and features");
    }
    // jll[n, c] = log prior[c] - 0.5 sum_f log(2 pi var[c, f]) - 0.5 sum_f (x - theta)^2 / var
    std::vector<double> inv(var.size()), bias(static_cast<size_t>(c));
    for (int64_t k = 0; k < c; ++k) {
      double s = 0;
      for (int64_t f = 0; f < width; ++f) {
        s += std::log(2 * std::numbers::pi * var[k * width + f]);
        inv[k * width + f] = -0.5 / var[k * width + f];
      }
      bias[k] = std::log(prior[k]) - 0.5 * s;
    }
    std::string x3 = ctx.Op1("Reshape", {input, ctx.Int64s("shape", {-1, 1, width})});
    std::string d = ctx.Op1("Sub", {x3, ctx.Floats("theta", theta, {c, width})});
    std::string q =
        ctx.Op1("Mul", {ctx.Op1("Mul", {d, d}), ctx.Floats("inv_var", inv, {c, width})});
    std::string s;
    ctx.Op("ReduceSum", {q, ctx.Int64s("axes", {2})}, &s).Attr("keepdims", int64_t{0});
    jll = ctx.Op1("Add", {s, ctx.Floats("bias", bias)});
  } else {
    ASSIGN_OR_RETURN(const NdArray* flp_a, e.Array("feature_log_prob_"));
    ASSIGN_OR_RETURN(std::vector<double> flp, flp_a->ToDoubles());
    ASSIGN_OR_RETURN(std::vector<double> prior, e.Doubles("class_log_prior_"));
    if (static_cast<int64_t>(flp.size()) != c * width || static_cast<int64_t>(prior.size()) != c) {
      return e.Fail("feature_log_prob_/class_log_prior_ do not match the classes and features");
    }
    std::string x = input;
    std::vector<double> w(flp.size());  // [width, c]
    std::vector<double> bias = prior;
    if (e.name() == "BernoulliNB") {
      const Value* bin = e.Attr("binarize");
      if (bin && bin->is_number()) {
        x = ctx.Op1("Greater", {x, ctx.Floats("threshold", {bin->AsDouble()}, {})});
        std::string xf;
        ctx.Op("Cast", {x}, &xf).Attr("to", int64_t{1});
        x = xf;
      }
      for (int64_t k = 0; k < c; ++k) {
        for (int64_t f = 0; f < width; ++f) {
          const double p = flp[k * width + f];
          const double neg = std::log1p(-std::exp(p));
          w[f * c + k] = p - neg;
          bias[k] += neg;
        }
      }
    } else if (e.name() == "MultinomialNB") {
      for (int64_t k = 0; k < c; ++k) {
        for (int64_t f = 0; f < width; ++f) w[f * c + k] = flp[k * width + f];
      }
    } else {
      return e.Unsupported("not supported");
    }
    // In float64: log-probabilities of count data sum to large magnitudes where float32
    // would lose the 1e-5 agreement with predict_proba.
    std::string xd;
    ctx.Op("Cast", {x}, &xd).Attr("to", int64_t{11});
    jll = ctx.Op1("Add", {ctx.Op1("MatMul", {xd, ctx.Doubles("W", w, {width, c})}),
                          ctx.Doubles("bias", bias, {c})});
    std::string pd, p;
    ctx.Op("Softmax", {jll}, &pd).Attr("axis", int64_t{1});
    ctx.Op("Cast", {pd}, &p).Attr("to", int64_t{1});
    return Classify(ctx, p, labels);
  }
  std::string p;
  ctx.Op("Softmax", {jll}, &p).Attr("axis", int64_t{1});
  return Classify(ctx, p, labels);
}

}  // namespace serveml::importers::sklearn
