// OneHotEncoder and OrdinalEncoder on numeric categories with core ONNX operators, and the
// identity FunctionTransformer.
//
// Every (feature, category) pair becomes one column of a comparison matrix
// eq[N, M] = (x[:, feature] == category) (NaN categories match NaN inputs); the encoders
// then pick, sum or look up those columns. Infrequent categories (min_frequency /
// max_categories), drop= and handle_unknown= follow scikit-learn's transform().
//
// Inputs are float32 numbers, so string categories cannot be matched and are refused.
// Unknown categories that scikit-learn rejects under handle_unknown='error' encode as all
// zeros (OneHotEncoder) or NaN (OrdinalEncoder).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

constexpr int64_t kMaxCategories = int64_t{1} << 20;  // over all features

// One feature's categories as numbers; NaN only as the last one.
struct FeatureCats {
  std::vector<double> values;
  bool has_nan = false;  // values.back() is NaN
};

std::string Shorten(const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; }

Result<std::vector<FeatureCats>> ReadCategories(const Est& e, int64_t width) {
  ASSIGN_OR_RETURN(const Value* list, e.Need("categories_"));
  if (list->kind != Kind::kList && list->kind != Kind::kTuple) {
    return e.Fail("'categories_' is a " + list->TypeName() + ", expected a list of arrays");
  }
  if (static_cast<int64_t>(list->items.size()) != width) {
    return e.Fail("'categories_' has " + std::to_string(list->items.size()) + " features, the " +
                  "encoder receives " + std::to_string(width));
  }
  std::vector<FeatureCats> out;
  int64_t total = 0;
  for (size_t j = 0; j < list->items.size(); ++j) {
    const Value* v = list->items[j];
    const std::string where = "feature " + std::to_string(j);
    if (v->kind != Kind::kNdArray) return e.Fail("categories of " + where + " are not an array");
    const NdArray& a = *v->array;
    total += a.numel();
    if (total > kMaxCategories) {
      return e.Unsupported("more than " + std::to_string(kMaxCategories) +
                           " categories in total are not supported");
    }
    bool strings = a.dtype.kind == 'U' || a.dtype.kind == 'S';
    std::string example;
    if (a.is_object()) {
      for (const Value* x : a.objects) {
        if (x->kind == Kind::kStr || x->kind == Kind::kBytes) {
          strings = true;
          example = x->s;
          break;
        }
        if (!x->is_number()) {
          return e.Unsupported("categories of " + where + " hold a " + x->TypeName() +
                               "; only numeric categories are supported");
        }
      }
    } else if (strings) {
      auto s = a.ToStrings();
      if (s.ok() && !s->empty()) example = (*s)[0];
    }
    if (strings) {
      return e.Unsupported(
          "categories of " + where + " are strings" +
          (example.empty() ? std::string() : " (e.g. '" + Shorten(example) + "')") +
          "; ServeML passes float32 numbers to scikit-learn models, so only numeric "
          "categories are supported: encode the strings as numbers before training");
    }
    if (a.dtype.kind != 'O' && a.dtype.kind != 'f' && a.dtype.kind != 'i' && a.dtype.kind != 'u' &&
        a.dtype.kind != 'b') {
      return e.Unsupported("categories of dtype " + a.dtype.Name() + " are not supported");
    }
    FeatureCats fc;
    ASSIGN_OR_RETURN(fc.values, a.ToDoubles());
    if (fc.values.empty()) return e.Fail(where + " has no categories");
    std::set<float> seen;
    for (size_t k = 0; k < fc.values.size(); ++k) {
      const double c = fc.values[k];
      if (std::isnan(c)) {
        if (k + 1 != fc.values.size()) return e.Fail("NaN is not the last category of " + where);
        fc.has_nan = true;
        continue;
      }
      if (!std::isfinite(c) || std::abs(c) > std::numeric_limits<float>::max()) {
        return e.Unsupported("category " + std::to_string(c) + " of " + where +
                             " is outside the float32 range");
      }
      if (!seen.insert(static_cast<float>(c)).second) {
        return e.Unsupported("categories of " + where +
                             " are not distinct as float32 numbers, the type of ServeML inputs");
      }
    }
    out.push_back(std::move(fc));
  }
  return out;
}

// `key` as a list of `n` optional ints (None entries -> -1); empty when absent or None.
Result<std::vector<int64_t>> OptionalInts(const Est& e, const char* key, size_t n) {
  const Value* v = e.Attr(key);
  if (!v || v->is_none()) return std::vector<int64_t>{};
  std::vector<const Value*> items;
  if (v->kind == Kind::kNdArray && v->array->is_object()) {
    items = v->array->objects;
  } else if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
    items = v->items;
  } else if (v->kind == Kind::kNdArray) {
    ASSIGN_OR_RETURN(auto ints, v->array->ToInt64s());
    if (ints.size() != n) return e.Fail(std::string("'") + key + "' has the wrong length");
    return ints;
  } else {
    return e.Fail(std::string("'") + key + "' is a " + v->TypeName());
  }
  if (items.size() != n) return e.Fail(std::string("'") + key + "' has the wrong length");
  std::vector<int64_t> out;
  for (const Value* x : items) {
    if (x->is_none()) {
      out.push_back(-1);
    } else if (x->kind == Kind::kInt && x->i >= 0) {
      out.push_back(x->i);
    } else {
      return e.Fail(std::string("'") + key + "' holds a " + x->TypeName());
    }
  }
  return out;
}

// Per feature: the grouped index of each category (infrequent categories share the last
// group), or empty when the feature has no infrequent categories. `n_cats[j]` categories
// take part in the grouping.
Result<std::vector<std::vector<int64_t>>> InfrequentMappings(const Est& e,
                                                             const std::vector<size_t>& n_cats) {
  std::vector<std::vector<int64_t>> out(n_cats.size());
  if (!e.Bool("_infrequent_enabled", false)) return out;
  ASSIGN_OR_RETURN(const Value* maps, e.Need("_default_to_infrequent_mappings"));
  if ((maps->kind != Kind::kList && maps->kind != Kind::kTuple) ||
      maps->items.size() != n_cats.size()) {
    return e.Fail("'_default_to_infrequent_mappings' does not match the features");
  }
  for (size_t j = 0; j < n_cats.size(); ++j) {
    const Value* m = maps->items[j];
    if (m->is_none()) continue;
    if (m->kind != Kind::kNdArray) return e.Fail("an infrequent-category mapping is not an array");
    ASSIGN_OR_RETURN(out[j], m->array->ToInt64s());
    if (out[j].size() != n_cats[j]) {
      return e.Fail("the infrequent-category mapping of feature " + std::to_string(j) +
                    " does not match its categories");
    }
    for (int64_t g : out[j]) {
      if (g < 0 || g >= static_cast<int64_t>(n_cats[j])) {
        return e.Fail("the infrequent-category mapping of feature " + std::to_string(j) +
                      " is out of range");
      }
    }
  }
  return out;
}

// x[:, rep] == cats, NaN categories matching NaN inputs: bool [N, M].
std::string CompareAll(Ctx& ctx, const std::string& input, const std::vector<FeatureCats>& cats,
                       std::vector<size_t>* first) {
  std::vector<int64_t> rep;
  std::vector<double> vals;
  std::vector<int64_t> nan_mask;
  bool any_nan = false;
  for (size_t j = 0; j < cats.size(); ++j) {
    first->push_back(vals.size());
    for (double c : cats[j].values) {
      rep.push_back(static_cast<int64_t>(j));
      vals.push_back(c);  // NaN never compares equal; the mask below matches it
      nan_mask.push_back(std::isnan(c) ? 1 : 0);
      any_nan = any_nan || std::isnan(c);
    }
  }
  first->push_back(vals.size());
  std::string xg = ctx.Columns(input, rep);
  std::string eq = ctx.Op1("Equal", {xg, ctx.Reals("categories", vals)});
  if (any_nan) {
    std::string mask;
    ctx.Op("Cast", {ctx.Int64s("nan_categories", nan_mask)}, &mask).Attr("to", int64_t{9});
    eq = ctx.Op1("Or", {eq, ctx.Op1("And", {ctx.Op1("IsNaN", {xg}), mask})});
  }
  return eq;
}

// Bool -> the graph's real type (float, or double when the graph reads float64).
std::string ToReal(Ctx& ctx, const std::string& x) {
  std::string out;
  ctx.Op("Cast", {x}, &out).Attr("to", ctx.f64 ? int64_t{11} : int64_t{1});
  return out;
}

std::string RowSum(Ctx& ctx, const std::string& x, const std::vector<int64_t>& cols) {
  std::string out;
  ctx.Op("ReduceSum", {ctx.Columns(x, cols), ctx.Int64s("axes", {1})}, &out)
      .Attr("keepdims", int64_t{1});
  return out;
}

}  // namespace

Result<Emitted> EmitOneHotEncoder(Ctx& ctx, const Est& e, const std::string& input, int64_t width) {
  ASSIGN_OR_RETURN(std::vector<FeatureCats> cats, ReadCategories(e, width));
  const size_t nf = cats.size();
  std::vector<size_t> n_cats;
  for (const auto& c : cats) n_cats.push_back(c.values.size());
  const std::string unknown = e.StrOr("handle_unknown", "error");
  if (unknown != "error" && unknown != "ignore" && unknown != "infrequent_if_exist" &&
      unknown != "warn") {
    return e.Unsupported("handle_unknown='" + unknown + "' is not supported");
  }
  ASSIGN_OR_RETURN(auto mappings, InfrequentMappings(e, n_cats));
  std::vector<int64_t> drop;
  if (e.Attr("_drop_idx_after_grouping")) {
    ASSIGN_OR_RETURN(drop, OptionalInts(e, "_drop_idx_after_grouping", nf));
  } else {
    ASSIGN_OR_RETURN(drop, OptionalInts(e, "drop_idx_", nf));
  }
  if (drop.empty()) drop.assign(nf, -1);

  // Output column of every (feature, category) and of an unknown value per feature.
  std::vector<size_t> first;
  const std::string eq = CompareAll(ctx, input, cats, &first);
  const std::string eqf = ToReal(ctx, eq);
  const int64_t m_total = static_cast<int64_t>(first.back());
  std::vector<int64_t> source;  // per output column: column of eqf, or m_total + derived
  std::vector<std::string> derived;
  std::vector<int64_t> expected;
  if (e.Has("_n_features_outs")) {
    ASSIGN_OR_RETURN(expected, e.Ints("_n_features_outs"));
  }
  if (!expected.empty() && expected.size() != nf) return e.Fail("'_n_features_outs' mismatch");
  for (size_t j = 0; j < nf; ++j) {
    const auto& map = mappings[j];
    auto group = [&](size_t k) { return map.empty() ? static_cast<int64_t>(k) : map[k]; };
    int64_t groups = 0;
    for (size_t k = 0; k < n_cats[j]; ++k) groups = std::max(groups, group(k) + 1);
    const int64_t d = drop[j];
    if (d >= groups)
      return e.Fail("the dropped category of feature " + std::to_string(j) + " is out of range");
    const int64_t out_width = groups - (d >= 0 ? 1 : 0);
    if (!expected.empty() && expected[j] != out_width) {
      return e.Fail("feature " + std::to_string(j) + " encodes to " + std::to_string(out_width) +
                    " columns, '_n_features_outs' says " + std::to_string(expected[j]));
    }
    // Unknown values join the infrequent group (its index is the last one).
    const bool unknown_infrequent =
        !map.empty() && (unknown == "infrequent_if_exist" || unknown == "warn");
    for (int64_t g = 0; g < groups; ++g) {
      if (g == d) continue;
      std::vector<int64_t> members, others;
      for (size_t k = 0; k < n_cats[j]; ++k) {
        (group(k) == g ? members : others).push_back(static_cast<int64_t>(first[j] + k));
      }
      const bool with_unknown = unknown_infrequent && g == groups - 1;
      if (members.size() == 1 && !with_unknown) {
        source.push_back(members[0]);
        continue;
      }
      std::string col;
      if (with_unknown) {
        // 1 - (matches of the other categories of the feature).
        std::string one = ctx.Reals("one", {1.0}, {});
        if (others.empty()) {
          col = ctx.Op1(
              "Add",
              {ctx.Op1("Mul", {ctx.Columns(eqf, {members[0]}), ctx.Reals("zero", {0.0}, {})}),
               one});
        } else {
          col = ctx.Op1("Sub", {one, RowSum(ctx, eqf, others)});
        }
      } else {
        col = RowSum(ctx, eqf, members);
      }
      source.push_back(m_total + static_cast<int64_t>(derived.size()));
      derived.push_back(col);
    }
  }
  const int64_t out_width = static_cast<int64_t>(source.size());
  if (out_width == 0) return e.Fail("encodes to no columns");
  std::string all = eqf;
  if (!derived.empty()) {
    std::vector<std::string> parts = {eqf};
    parts.insert(parts.end(), derived.begin(), derived.end());
    ctx.Op("Concat", parts, &all).Attr("axis", int64_t{1});
  }
  bool identity = derived.empty() && out_width == m_total;
  for (int64_t i = 0; identity && i < out_width; ++i) identity = source[i] == i;
  return Emitted::Transform(identity ? all : ctx.Columns(all, source), out_width);
}

Result<Emitted> EmitOrdinalEncoder(Ctx& ctx, const Est& e, const std::string& input,
                                   int64_t width) {
  ASSIGN_OR_RETURN(std::vector<FeatureCats> cats, ReadCategories(e, width));
  const size_t nf = cats.size();
  const std::string unknown = e.StrOr("handle_unknown", "error");
  double unknown_value = std::numeric_limits<double>::quiet_NaN();
  if (unknown == "use_encoded_value") {
    ASSIGN_OR_RETURN(unknown_value, e.Float("unknown_value"));
  } else if (unknown != "error") {
    return e.Unsupported("handle_unknown='" + unknown + "' is not supported");
  }
  double missing_value = std::numeric_limits<double>::quiet_NaN();
  if (e.Has("encoded_missing_value")) {
    ASSIGN_OR_RETURN(missing_value, e.Float("encoded_missing_value"));
  }
  // Categories taking part in the infrequent grouping: all but a trailing NaN.
  std::vector<size_t> n_grouped;
  for (const auto& c : cats) n_grouped.push_back(c.values.size() - (c.has_nan ? 1 : 0));
  if (e.Bool("_infrequent_enabled", false)) {
    ASSIGN_OR_RETURN(const Value* mi, e.Need("_missing_indices"));
    if (mi->kind != Kind::kDict) return e.Fail("'_missing_indices' is not a dict");
    for (const auto& [k, v] : mi->entries) {
      if (k->kind != Kind::kInt || v->kind != Kind::kInt || k->i < 0 ||
          k->i >= static_cast<int64_t>(nf) || !cats[static_cast<size_t>(k->i)].has_nan ||
          v->i + 1 != static_cast<int64_t>(cats[static_cast<size_t>(k->i)].values.size())) {
        return e.Fail("'_missing_indices' does not match the categories");
      }
    }
  }
  ASSIGN_OR_RETURN(auto mappings, InfrequentMappings(e, n_grouped));

  std::vector<size_t> first;
  const std::string eq = CompareAll(ctx, input, cats, &first);
  std::vector<double> codes;
  for (size_t j = 0; j < nf; ++j) {
    for (size_t k = 0; k < cats[j].values.size(); ++k) {
      if (k >= n_grouped[j]) {
        codes.push_back(missing_value);
      } else {
        codes.push_back(
            static_cast<double>(mappings[j].empty() ? static_cast<int64_t>(k) : mappings[j][k]));
      }
    }
  }
  // Matched codes (NaN codes only where they match), summed per feature; features with no
  // match take unknown_value.
  const std::string picked =
      ctx.Op1("Where", {eq, ctx.Reals("codes", codes), ctx.Reals("zero", {0.0}, {})});
  const std::string eqf = ToReal(ctx, eq);
  std::vector<std::string> sums, counts;
  for (size_t j = 0; j < nf; ++j) {
    std::vector<int64_t> cols;
    for (size_t m = first[j]; m < first[j + 1]; ++m) cols.push_back(static_cast<int64_t>(m));
    sums.push_back(RowSum(ctx, picked, cols));
    counts.push_back(RowSum(ctx, eqf, cols));
  }
  std::string s = sums[0], c = counts[0];
  if (nf > 1) {
    ctx.Op("Concat", sums, &s).Attr("axis", int64_t{1});
    ctx.Op("Concat", counts, &c).Attr("axis", int64_t{1});
  }
  std::string known = ctx.Op1("Greater", {c, ctx.Reals("half", {0.5}, {})});
  std::string out = ctx.Op1("Where", {known, s, ctx.Reals("unknown_value", {unknown_value}, {})});
  return Emitted::Transform(out, width);
}

// FunctionTransformer(func=None): the identity, as ColumnTransformer stores
// remainder='passthrough' columns.
Result<Emitted> EmitFunctionTransformer(Ctx& ctx, const Est& e, const std::string& input,
                                        int64_t width) {
  if (e.Has("func")) {
    return e.Unsupported("only the identity (func=None) is supported, not a custom func");
  }
  return Emitted::Transform(ctx.Op1("Identity", {input}), width);
}

}  // namespace serveml::importers::sklearn
