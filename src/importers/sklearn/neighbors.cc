// k-nearest neighbours (KNeighborsClassifier, KNeighborsRegressor) -> a brute-force search in
// standard ONNX operators over the fitted samples `_fit_X`, in float64 (the fitted
// KDTree/BallTree is not needed: every algorithm finds the same neighbours).
//
//   euclidean:       d2 = |x|^2 - 2 x.T' + |t|^2 (MatMul), clipped at 0; distance sqrt(d2)
//   manhattan / p:   sum |x - t|^p over features; distance s^(1/p)
//   chebyshev:       max |x - t|
//   TopK(smallest k, sorted) -> neighbour indices; Gather of the training classes/targets.
//
// Classifier: votes[c] = sum of the neighbours' weights for class c (1 each for 'uniform',
// 1/distance for 'distance'; a row with a neighbour at distance 0 weights those neighbours 1
// and the others 0, as sklearn does); predict_proba = votes / sum(votes); the label is
// classes_[argmax(votes)], ties going to the lowest class index like sklearn's mode.
// Regressor: the (weighted) mean of the neighbours' targets.
//
// Ties in distance: TopK keeps the lower training index first, which is the order of
// sklearn's brute-force search; sklearn's KDTree/BallTree may pick a different neighbour
// among points at exactly the same distance as the k-th one, so predictions can differ
// for such queries.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

// Up to this many features, non-euclidean distances are summed feature by feature ([N, M]
// intermediates); beyond it in one [N, M, F] tensor.
constexpr int64_t kFeatureLoop = 64;

enum class Metric { kEuclidean, kSqEuclidean, kL1, kMinkowski, kChebyshev };

struct Search {
  std::string dist;     // float64 [N, k] distances to the neighbours, nearest first
  std::string idx;      // int64 [N, k] training rows
  std::string weights;  // float64 [N, k]; empty for 'uniform'
};

Result<double> MinkowskiP(const Est& e) {
  const Value* params = e.Attr("effective_metric_params_");
  if (params && params->kind == Kind::kDict) {
    for (const auto& [k, v] : params->entries) {
      if (!k->is_str()) return e.Unsupported("metric parameters with non-string keys");
      if (k->s == "w" && v->is_none()) continue;
      if (k->s != "p") {
        return e.Unsupported("metric parameter '" + k->s + "' is not supported");
      }
      if (!v->is_number()) return e.Fail("metric parameter 'p' is not a number");
    }
    if (const Value* p = params->Get("p")) return p->AsDouble();
  }
  if (e.Has("p")) return e.Float("p");
  return 2.0;
}

Result<std::pair<Metric, double>> ReadMetric(const Est& e) {
  const Value* mv = e.Attr("effective_metric_");
  if (!mv || mv->is_none()) mv = e.Attr("metric");
  if (!mv || !mv->is_str()) {
    return e.Unsupported(
        "callable metrics are not supported (euclidean, manhattan, chebyshev "
        "and minkowski are)");
  }
  const std::string& m = mv->s;
  if (m == "euclidean" || m == "l2") return std::pair{Metric::kEuclidean, 2.0};
  if (m == "sqeuclidean") return std::pair{Metric::kSqEuclidean, 2.0};
  if (m == "manhattan" || m == "cityblock" || m == "l1") return std::pair{Metric::kL1, 1.0};
  if (m == "chebyshev" || m == "infinity") return std::pair{Metric::kChebyshev, 0.0};
  if (m == "minkowski") {
    ASSIGN_OR_RETURN(double p, MinkowskiP(e));
    if (std::isinf(p) && p > 0) return std::pair{Metric::kChebyshev, 0.0};
    if (!(p > 0) || !std::isfinite(p)) return e.Fail("minkowski p = " + std::to_string(p));
    if (p == 1) return std::pair{Metric::kL1, 1.0};
    if (p == 2) return std::pair{Metric::kEuclidean, 2.0};
    return std::pair{Metric::kMinkowski, p};
  }
  return e.Unsupported("metric '" + m +
                       "' is not supported (euclidean, manhattan, chebyshev and minkowski are)");
}

// Reads the fitted samples, builds the distance search and the neighbour weights.
Result<Search> Neighbours(Ctx& ctx, const Est& e, const std::string& input, int64_t width,
                          int64_t* n_fit) {
  if (e.Bool("outputs_2d_", false) && e.name() == "KNeighborsClassifier") {
    return e.Unsupported("multi-output classification is not supported");
  }
  ASSIGN_OR_RETURN(auto metric, ReadMetric(e));
  const std::string wname = [&] {
    const Value* w = e.Attr("weights");
    if (!w || w->is_none()) return std::string("uniform");
    return w->is_str() ? w->s : std::string("<callable>");
  }();
  if (wname != "uniform" && wname != "distance") {
    return e.Unsupported("weights '" + wname + "' are not supported (uniform and distance are)");
  }
  const Value* fx = e.Attr("_fit_X");
  if (fx && fx->kind == Kind::kObject) {
    return e.Unsupported(
        "models fitted on sparse matrices are not supported; fit on a dense "
        "array");
  }
  ASSIGN_OR_RETURN(const NdArray* xa, e.Array("_fit_X"));
  if (xa->shape.size() != 2 || xa->shape[1] != width) {
    return e.Fail("_fit_X is not a [samples, " + std::to_string(width) + "] array");
  }
  const int64_t m = xa->shape[0];
  if (m <= 0) return e.Fail("_fit_X holds no samples");
  ASSIGN_OR_RETURN(int64_t k, e.Int("n_neighbors"));
  if (k < 1) return e.Fail("n_neighbors is " + std::to_string(k));
  if (k > m) {
    return e.Fail("n_neighbors = " + std::to_string(k) + " is larger than the " +
                  std::to_string(m) + " fitted samples");
  }
  ASSIGN_OR_RETURN(std::vector<double> t, xa->ToDoubles());
  for (double v : t) {
    if (!std::isfinite(v)) return e.Fail("_fit_X holds NaN or infinite values");
  }
  *n_fit = m;

  std::string xd;
  ctx.Op("Cast", {input}, &xd).Attr("to", int64_t{11});
  std::string score;  // [N, M], ordered like the distance
  const Metric kind = metric.first;
  const double p = metric.second;
  if (kind == Metric::kEuclidean || kind == Metric::kSqEuclidean) {
    std::vector<double> tt(static_cast<size_t>(m), 0.0), tm2(static_cast<size_t>(width * m));
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t f = 0; f < width; ++f) {
        const double v = t[i * width + f];
        tt[i] += v * v;
        tm2[f * m + i] = -2.0 * v;
      }
    }
    std::string xx;
    ctx.Op("ReduceSumSquare", {xd}, &xx)
        .Attr("axes", std::vector<int64_t>{1})
        .Attr("keepdims", int64_t{1});
    std::string cross = ctx.Op1("MatMul", {xd, ctx.Doubles("fit_x_t", tm2, {width, m})});
    std::string d2 = ctx.Op1("Add", {ctx.Op1("Add", {cross, xx}), ctx.Doubles("fit_sq", tt, {m})});
    score = ctx.Op1("Max", {d2, ctx.Doubles("zero", {0.0}, {})});
  } else if (width <= kFeatureLoop) {
    // One [N, M] term per feature: memory stays at N x M.
    for (int64_t f = 0; f < width; ++f) {
      std::vector<double> col(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) col[i] = t[i * width + f];
      std::string xf;
      ctx.Op("Gather", {xd, ctx.Int64s("feature", {f})}, &xf).Attr("axis", int64_t{1});
      std::string a = ctx.Op1("Abs", {ctx.Op1("Sub", {xf, ctx.Doubles("fit_col", col, {m})})});
      if (kind == Metric::kMinkowski) a = ctx.Op1("Pow", {a, ctx.Doubles("p", {p}, {})});
      score = f == 0 ? a : ctx.Op1(kind == Metric::kChebyshev ? "Max" : "Add", {score, a});
    }
  } else {
    std::string x3 = ctx.Op1("Unsqueeze", {xd, ctx.Int64s("axes", {1})});
    std::string a = ctx.Op1("Abs", {ctx.Op1("Sub", {x3, ctx.Doubles("fit_x", t, {m, width})})});
    if (kind == Metric::kChebyshev) {
      ctx.Op("ReduceMax", {a}, &score)
          .Attr("axes", std::vector<int64_t>{2})
          .Attr("keepdims", int64_t{0});
    } else {
      if (kind == Metric::kMinkowski) a = ctx.Op1("Pow", {a, ctx.Doubles("p", {p}, {})});
      ctx.Op("ReduceSum", {a, ctx.Int64s("axes", {2})}, &score).Attr("keepdims", int64_t{0});
    }
  }
  Search s;
  const std::string k_name = ctx.Int64s("k", {k});
  const std::string vals = ctx.g.Unique("knn_dist");
  s.idx = ctx.g.Unique("knn_idx");
  ctx.g.AddNode("TopK", {score, k_name}, {vals, s.idx})
      .Attr("axis", int64_t{1})
      .Attr("largest", int64_t{0})
      .Attr("sorted", int64_t{1});
  if (kind == Metric::kEuclidean) {
    s.dist = ctx.Op1("Sqrt", {vals});
  } else if (kind == Metric::kMinkowski) {
    s.dist = ctx.Op1("Pow", {vals, ctx.Doubles("inv_p", {1.0 / p}, {})});
  } else {
    s.dist = vals;
  }
  if (wname == "distance") {
    // 1 / d; rows with a neighbour at distance 0 (1 / d infinite) weight those neighbours 1
    // and the others 0.
    std::string inv = ctx.Op1("Div", {ctx.Doubles("one", {1.0}, {}), s.dist});
    std::string inf_d;
    ctx.Op("Cast", {ctx.Op1("IsInf", {inv})}, &inf_d).Attr("to", int64_t{11});
    std::string any;
    ctx.Op("ReduceMax", {inf_d}, &any)
        .Attr("axes", std::vector<int64_t>{1})
        .Attr("keepdims", int64_t{1});
    std::string has_inf = ctx.Op1("Greater", {any, ctx.Doubles("zero", {0.0}, {})});
    s.weights = ctx.Op1("Where", {has_inf, inf_d, inv});
  }
  return s;
}

}  // namespace

Result<Emitted> EmitKNeighbors(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  int64_t m = 0;
  ASSIGN_OR_RETURN(Search s, Neighbours(ctx, e, input, width, &m));
  const bool clf = e.name() == "KNeighborsClassifier";
  std::string w3;  // weights as [N, k, 1]
  if (!s.weights.empty()) w3 = ctx.Op1("Unsqueeze", {s.weights, ctx.Int64s("axes", {2})});

  if (clf) {
    ASSIGN_OR_RETURN(Labels labels, ClassLabels(e));
    const int64_t c = static_cast<int64_t>(labels.size());
    if (c < 1) return e.Fail("classes_ is empty");
    ASSIGN_OR_RETURN(std::vector<int64_t> y, e.Ints("_y"));
    if (static_cast<int64_t>(y.size()) != m) {
      return e.Fail("_y has " + std::to_string(y.size()) + " entries for " + std::to_string(m) +
                    " fitted samples");
    }
    for (int64_t v : y) {
      if (v < 0 || v >= c) return e.Fail("_y holds class index " + std::to_string(v));
    }
    std::string cls;
    ctx.Op("Gather", {ctx.Int64s("fit_classes", y), s.idx}, &cls).Attr("axis", int64_t{0});
    std::vector<int64_t> range(static_cast<size_t>(c));
    for (int64_t i = 0; i < c; ++i) range[i] = i;
    std::string onehot;  // [N, k, C]
    ctx.Op("Cast",
           {ctx.Op1("Equal", {ctx.Op1("Unsqueeze", {cls, ctx.Int64s("axes", {2})}),
                              ctx.Int64s("class_range", range)})},
           &onehot)
        .Attr("to", int64_t{11});
    if (!w3.empty()) onehot = ctx.Op1("Mul", {onehot, w3});
    std::string votes;
    ctx.Op("ReduceSum", {onehot, ctx.Int64s("axes", {1})}, &votes).Attr("keepdims", int64_t{0});
    std::string total;
    ctx.Op("ReduceSum", {votes, ctx.Int64s("axes", {1})}, &total).Attr("keepdims", int64_t{1});
    Emitted out;
    out.kind = Emitted::Kind::kClassifier;
    out.labels = labels;
    ctx.Op("Cast", {ctx.Op1("Div", {votes, total})}, &out.proba).Attr("to", int64_t{1});
    out.label = ctx.LabelFromProba(votes, labels);
    return out;
  }

  ASSIGN_OR_RETURN(const NdArray* ya, e.Array("_y"));
  int64_t targets = 1;
  if (ya->shape.size() == 2) {
    targets = ya->shape[1];
  } else if (ya->shape.size() != 1) {
    return e.Fail("_y is not a 1-D or 2-D array");
  }
  if (ya->shape.empty() || ya->shape[0] != m || targets < 1) {
    return e.Fail("_y does not hold one row per fitted sample");
  }
  ASSIGN_OR_RETURN(std::vector<double> y, ya->ToDoubles());
  std::string g;  // [N, k, targets]
  ctx.Op("Gather", {ctx.Doubles("fit_y", y, {m, targets}), s.idx}, &g).Attr("axis", int64_t{0});
  std::string pred;
  if (w3.empty()) {
    ctx.Op("ReduceMean", {g}, &pred)
        .Attr("axes", std::vector<int64_t>{1})
        .Attr("keepdims", int64_t{0});
  } else {
    std::string num, den;
    ctx.Op("ReduceSum", {ctx.Op1("Mul", {g, w3}), ctx.Int64s("axes", {1})}, &num)
        .Attr("keepdims", int64_t{0});
    ctx.Op("ReduceSum", {s.weights, ctx.Int64s("axes", {1})}, &den).Attr("keepdims", int64_t{1});
    pred = ctx.Op1("Div", {num, den});
  }
  Emitted out;
  out.kind = Emitted::Kind::kRegressor;
  out.width = targets;
  ctx.Op("Cast", {pred}, &out.out).Attr("to", int64_t{1});
  return out;
}

}  // namespace serveml::importers::sklearn
