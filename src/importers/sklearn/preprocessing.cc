// Transformers: scalers, Normalizer, SimpleImputer, PolynomialFeatures, PCA. Each reads
// float32 [N, width] and produces float32 [N, out.width] with core ONNX operators
// (Sub/Div/Mul/Add/Where/Gather/MatMul) or the ai.onnx.ml Normalizer. Scalers and
// SimpleImputer compute in float64 instead when ctx.f64 is set (see ReadsFloat64).
#include <algorithm>
#include <cmath>
#include <functional>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

Status CheckWidth(const Est& e, const char* attr, const std::vector<double>& v, int64_t width) {
  if (static_cast<int64_t>(v.size()) != width) {
    return e.Fail(std::string(attr) + " has " + std::to_string(v.size()) + " values for " +
                  std::to_string(width) + " features");
  }
  return Status::Ok();
}

}  // namespace

Result<Emitted> EmitScaler(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  std::string x = input;
  auto apply = [&](const char* op, const char* attr) -> Status {
    ASSIGN_OR_RETURN(std::vector<double> v, e.Doubles(attr));
    RETURN_IF_ERROR(CheckWidth(e, attr, v, width));
    x = ctx.Op1(op, {x, ctx.Reals(attr, v)});
    return Status::Ok();
  };
  const std::string& n = e.name();
  if (n == "StandardScaler") {
    if (e.Has("mean_") && e.Bool("with_mean", true)) RETURN_IF_ERROR(apply("Sub", "mean_"));
    if (e.Has("scale_")) RETURN_IF_ERROR(apply("Div", "scale_"));
  } else if (n == "MinMaxScaler") {
    RETURN_IF_ERROR(apply("Mul", "scale_"));
    RETURN_IF_ERROR(apply("Add", "min_"));
    if (e.Bool("clip", false)) {
      ASSIGN_OR_RETURN(std::vector<double> range, e.Doubles("feature_range"));
      if (range.size() != 2) return e.Fail("feature_range is not a pair");
      x = ctx.Op1("Clip", {x, ctx.Reals("lo", {range[0]}, {}), ctx.Reals("hi", {range[1]}, {})});
    }
  } else if (n == "MaxAbsScaler") {
    RETURN_IF_ERROR(apply("Div", "scale_"));
  } else if (n == "RobustScaler") {
    if (e.Has("center_")) RETURN_IF_ERROR(apply("Sub", "center_"));
    if (e.Has("scale_")) RETURN_IF_ERROR(apply("Div", "scale_"));
  }
  if (x == input) x = ctx.Op1("Identity", {input});
  return Emitted::Transform(x, width);
}

Result<Emitted> EmitNormalizer(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  const std::string norm = e.StrOr("norm", "l2");
  if (norm == "l1" || norm == "l2") {
    std::string out;
    ctx.Op("Normalizer", {input}, &out, "ai.onnx.ml")
        .Attr("norm", norm == "l1" ? std::string("L1") : std::string("L2"));
    return Emitted::Transform(out, width);
  }
  if (norm != "max") return e.Fail("unknown norm '" + norm + "'");
  // x / max(|x|) per row, rows of zeros left as they are (sklearn's normalize).
  std::string m;
  ctx.Op("ReduceMax", {ctx.Op1("Abs", {input})}, &m)
      .Attr("axes", std::vector<int64_t>{1})
      .Attr("keepdims", int64_t{1});
  std::string zero = ctx.Floats("zero", {0.0}, {});
  std::string safe =
      ctx.Op1("Where", {ctx.Op1("Equal", {m, zero}), ctx.Floats("one", {1.0}, {}), m});
  return Emitted::Transform(ctx.Op1("Div", {input, safe}), width);
}

Result<Emitted> EmitImputer(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  if (e.Bool("add_indicator", false) || e.Has("indicator_")) {
    return e.Unsupported("add_indicator=True is not supported");
  }
  ASSIGN_OR_RETURN(std::vector<double> stats, e.Doubles("statistics_"));
  RETURN_IF_ERROR(CheckWidth(e, "statistics_", stats, width));
  const Value* mv = e.Attr("missing_values");
  std::string mask;
  if (!mv || (mv->kind == Kind::kFloat && std::isnan(mv->f))) {
    mask = ctx.Op1("IsNaN", {input});
  } else if (mv->is_number()) {
    mask = ctx.Op1("Equal", {input, ctx.Reals("missing", {mv->AsDouble()}, {})});
  } else {
    return e.Unsupported("missing_values of type " + mv->TypeName() + " is not supported");
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < width; ++i) {
    if (!std::isnan(stats[static_cast<size_t>(i)])) keep.push_back(i);
  }
  const bool keep_empty = e.Bool("keep_empty_features", false);
  std::vector<double> fill = stats;
  if (keep_empty) {
    for (double& v : fill) {
      if (std::isnan(v)) v = 0;
    }
  }
  std::string out = ctx.Op1("Where", {mask, ctx.Reals("statistics", fill), input});
  if (!keep_empty && static_cast<int64_t>(keep.size()) != width) {
    if (keep.empty()) return e.Fail("every feature was empty during fit");
    out = ctx.Columns(out, keep);
    return Emitted::Transform(out, static_cast<int64_t>(keep.size()));
  }
  return Emitted::Transform(out, width);
}

Result<Emitted> EmitPolynomialFeatures(Ctx& ctx, const Est& e, const std::string& input,
                                       int64_t width) {
  int64_t min_deg = 0, max_deg = 0;
  if (e.Has("_max_degree")) {
    ASSIGN_OR_RETURN(max_deg, e.Int("_max_degree"));
    ASSIGN_OR_RETURN(min_deg, e.Int("_min_degree"));
  } else {
    ASSIGN_OR_RETURN(max_deg, e.Int("degree"));
  }
  if (max_deg < 0 || max_deg > 8 || min_deg < 0 || min_deg > max_deg) {
    return e.Unsupported("degree " + std::to_string(max_deg) + " is not supported (at most 8)");
  }
  const bool interaction_only = e.Bool("interaction_only", false);
  const bool include_bias = e.Bool("include_bias", true);
  // sklearn's _combinations order: bias, then degrees start..max, each in
  // itertools.combinations(_with_replacement) order.
  std::vector<std::vector<int64_t>> terms;
  if (include_bias) terms.push_back({});
  std::vector<int64_t> cur;
  std::function<void(int64_t, int64_t)> rec = [&](int64_t first, int64_t left) {
    if (left == 0) {
      terms.push_back(cur);
      return;
    }
    for (int64_t f = first; f < width; ++f) {
      cur.push_back(f);
      rec(interaction_only ? f + 1 : f, left - 1);
      cur.pop_back();
    }
  };
  for (int64_t d = std::max<int64_t>(1, min_deg); d <= max_deg; ++d) {
    rec(0, d);
    if (terms.size() > 100000) return e.Unsupported("too many polynomial terms");
  }
  if (e.Has("n_output_features_")) {
    ASSIGN_OR_RETURN(int64_t nout, e.Int("n_output_features_"));
    if (nout != static_cast<int64_t>(terms.size())) {
      return e.Fail("n_output_features_ is " + std::to_string(nout) + " but the degree gives " +
                    std::to_string(terms.size()));
    }
  }
  if (terms.empty()) return e.Fail("produces no features");
  // x1 = [x, 1]; term t = prod_p x1[:, idx_p(t)], padding short terms with the ones column.
  std::string ones =
      ctx.Op1("Add", {ctx.Op1("Mul", {ctx.Columns(input, {0}), ctx.Floats("zero", {0.0}, {})}),
                      ctx.Floats("one", {1.0}, {})});
  std::string x1;
  ctx.Op("Concat", {input, ones}, &x1).Attr("axis", int64_t{1});
  std::string prod;
  const int64_t positions = std::max<int64_t>(max_deg, 1);
  for (int64_t p = 0; p < positions; ++p) {
    std::vector<int64_t> idx;
    for (const auto& t : terms) idx.push_back(p < static_cast<int64_t>(t.size()) ? t[p] : width);
    std::string col = ctx.Columns(x1, idx);
    prod = prod.empty() ? col : ctx.Op1("Mul", {prod, col});
  }
  return Emitted::Transform(prod, static_cast<int64_t>(terms.size()));
}

Result<Emitted> EmitPca(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(const NdArray* comp, e.Array("components_"));
  if (comp->shape.size() != 2 || comp->shape[1] != width)
    return e.Fail("components_ has the wrong shape");
  const int64_t k = comp->shape[0];
  ASSIGN_OR_RETURN(std::vector<double> c, comp->ToDoubles());
  std::vector<double> ct(c.size());  // [width, k]
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < width; ++j) ct[j * k + i] = c[i * width + j];
  }
  std::string x = input;
  if (e.Has("mean_")) {
    ASSIGN_OR_RETURN(std::vector<double> mean, e.Doubles("mean_"));
    RETURN_IF_ERROR(CheckWidth(e, "mean_", mean, width));
    x = ctx.Op1("Sub", {x, ctx.Floats("mean", mean)});
  }
  x = ctx.Op1("MatMul", {x, ctx.Floats("components", ct, {width, k})});
  if (e.Bool("whiten", false)) {
    ASSIGN_OR_RETURN(std::vector<double> var, e.Doubles("explained_variance_"));
    if (static_cast<int64_t>(var.size()) != k)
      return e.Fail("explained_variance_ has the wrong size");
    for (double& v : var) v = std::sqrt(v);
    x = ctx.Op1("Div", {x, ctx.Floats("scale", var)});
  }
  return Emitted::Transform(x, k);
}

}  // namespace serveml::importers::sklearn
