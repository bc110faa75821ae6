#include "importers/lightgbm/lightgbm_importer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

#include "importers/onnx_builder.h"
#include "importers/xgboost/tree_ensemble.h"

namespace serveml::importers::lightgbm {
namespace {

constexpr char kPrefix[] = "LightGBM model: ";
// LightGBM's `const double kZeroThreshold = 1e-35f;` (a float literal widened to double).
constexpr double kZeroThreshold = static_cast<double>(1e-35f);
// Bound on ONNX nodes after expanding zero-as-missing splits (each may copy its subtrees).
constexpr size_t kMaxEmittedNodes = size_t{1} << 23;
constexpr int64_t kMaxLeaves = int64_t{1} << 24;
// What the budget is charged per ONNX tree node emitted (the builder's per-node arrays with
// their growth slack, and the attribute copies the graph makes of them).
constexpr size_t kEmittedNodeCost = 256;

Status Bad(const std::string& what) { return InvalidInput(kPrefix + what); }

using KeyValues = std::vector<std::pair<std::string_view, std::string_view>>;

std::string_view Get(const KeyValues& kv, std::string_view key) {
  for (const auto& [k, v] : kv) {
    if (k == key) return v;
  }
  return {};
}
bool Has(const KeyValues& kv, std::string_view key) {
  for (const auto& [k, v] : kv) {
    if (k == key) return true;
  }
  return false;
}

std::string Clip(std::string_view s) { return std::string(s.substr(0, 64)); }

template <typename T>
bool ParseOne(std::string_view tok, T* out) {
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), *out);
  return r.ec == std::errc() && r.ptr == tok.data() + tok.size();
}

// Space-separated numbers; exactly `n` of them.
template <typename T>
Status ParseList(std::string_view s, size_t n, const std::string& what, std::vector<T>* out) {
  out->clear();
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    if (i >= s.size()) break;
    size_t j = s.find(' ', i);
    if (j == std::string_view::npos) j = s.size();
    T v{};
    if (!ParseOne(s.substr(i, j - i), &v))
      return Bad(what + " has a malformed number '" + Clip(s.substr(i, j - i)) + "'");
    if (out->size() >= n)
      return Bad(what + " has more than the expected " + std::to_string(n) + " values");
    out->push_back(v);
    i = j;
  }
  if (out->size() != n) {
    return Bad(what + " has " + std::to_string(out->size()) + " values, expected " +
               std::to_string(n));
  }
  return Status::Ok();
}

Result<int64_t> IntField(const KeyValues& kv, std::string_view key, const std::string& where,
                         int64_t lo, int64_t hi) {
  std::string_view v = Get(kv, key);
  int64_t i = 0;
  if (v.empty() || !ParseOne(v, &i) || i < lo || i > hi) {
    return Bad(where + "'" + std::string(key) + "' must be an integer in [" + std::to_string(lo) +
               ", " + std::to_string(hi) + "]" + (v.empty() ? " (missing)" : ""));
  }
  return i;
}

struct Tree {
  int64_t num_leaves = 0;
  std::vector<int64_t> split_feature, decision_type, left, right;
  std::vector<double> threshold, leaf_value;
};

// Makes room for `extra` more elements in `v`, charging the capacity it adds first.
template <typename T>
Status Reserve(std::vector<T>& v, size_t extra, AllocBudget& budget) {
  Status st = budget.Reserve(v, extra);
  return st.ok() ? st : Bad(st.message());
}

// The per-tree arrays are bounded by the tree's own text: num_leaves is checked against the
// leaf_value line before anything is sized from it, and every other list only grows by the
// numbers actually present.
Result<Tree> ParseTree(const KeyValues& kv, size_t index, int64_t num_features) {
  std::string where = "tree " + std::to_string(index) + ": ";
  Tree t;
  ASSIGN_OR_RETURN(t.num_leaves, IntField(kv, "num_leaves", where, 1, kMaxLeaves));
  if (std::string_view lv = Get(kv, "leaf_value");
      static_cast<uint64_t>(t.num_leaves) > (lv.size() + 1) / 2) {
    return Bad(where + "num_leaves=" + std::to_string(t.num_leaves) + " is more than its " +
               std::to_string(lv.size()) + "-byte leaf_value line can hold (declared length)");
  }
  if (std::string_view lin = Get(kv, "is_linear"); !lin.empty() && lin != "0") {
    return Unsupported(std::string(kPrefix) +
                       "linear trees (linear_tree=true) are not supported; retrain with "
                       "linear_tree=false or export the model to ONNX");
  }
  if (std::string_view nc = Get(kv, "num_cat"); !nc.empty() && nc != "0") {
    return Unsupported(std::string(kPrefix) +
                       "categorical splits are not supported; encode categorical features as "
                       "numbers (not categorical_feature) or export the model to ONNX");
  }
  size_t leaves = static_cast<size_t>(t.num_leaves);
  RETURN_IF_ERROR(ParseList(Get(kv, "leaf_value"), leaves, where + "leaf_value", &t.leaf_value));
  if (leaves == 1) return t;
  size_t inner = leaves - 1;
  RETURN_IF_ERROR(
      ParseList(Get(kv, "split_feature"), inner, where + "split_feature", &t.split_feature));
  RETURN_IF_ERROR(ParseList(Get(kv, "threshold"), inner, where + "threshold", &t.threshold));
  RETURN_IF_ERROR(
      ParseList(Get(kv, "decision_type"), inner, where + "decision_type", &t.decision_type));
  RETURN_IF_ERROR(ParseList(Get(kv, "left_child"), inner, where + "left_child", &t.left));
  RETURN_IF_ERROR(ParseList(Get(kv, "right_child"), inner, where + "right_child", &t.right));
  const int64_t n_inner = static_cast<int64_t>(inner);
  for (size_t i = 0; i < inner; ++i) {
    if (t.split_feature[i] < 0 || t.split_feature[i] >= num_features) {
      return Bad(where + "node " + std::to_string(i) + " splits on feature " +
                 std::to_string(t.split_feature[i]) + ", but the model has " +
                 std::to_string(num_features) + " features");
    }
    if (t.decision_type[i] < 0 || t.decision_type[i] > 255) {
      return Bad(where + "node " + std::to_string(i) + " has decision_type " +
                 std::to_string(t.decision_type[i]));
    }
    if (t.decision_type[i] & 1) {
      return Unsupported(std::string(kPrefix) +
                         "categorical splits are not supported; encode categorical features as "
                         "numbers (not categorical_feature) or export the model to ONNX");
    }
    for (int64_t c : {t.left[i], t.right[i]}) {
      bool ok = c >= 0 ? (c >= 1 && c < n_inner) : (~c >= 0 && ~c < t.num_leaves);
      if (!ok) return Bad(where + "node " + std::to_string(i) + " has a child index out of range");
    }
  }
  // It must be a tree: every internal node and leaf reached exactly once from the root.
  std::vector<uint8_t> seen_inner(inner, 0), seen_leaf(leaves, 0);
  std::vector<int64_t> stack = {0};
  while (!stack.empty()) {
    int64_t n = stack.back();
    stack.pop_back();
    uint8_t& s = n >= 0 ? seen_inner[static_cast<size_t>(n)] : seen_leaf[static_cast<size_t>(~n)];
    if (s) return Bad(where + "the nodes do not form a tree (a node has two parents)");
    s = 1;
    if (n >= 0) {
      stack.push_back(t.left[static_cast<size_t>(n)]);
      stack.push_back(t.right[static_cast<size_t>(n)]);
    }
  }
  return t;
}

// LightGBM's predict drops input values with |x| <= kZeroThreshold from the feature row (see
// RowPairFunctionFromDenseMatric), so the trees see them as 0.0. A threshold inside that
// range is moved to where it sends such values the way 0.0 goes: [0, z) -> z, [-z, 0) -> the
// double just below -z. Elsewhere tiny inputs and 0.0 already go the same way.
double EffectiveThreshold(double th) {
  if (th >= 0 && th < kZeroThreshold) return kZeroThreshold;
  if (th >= -kZeroThreshold && th < 0) {
    return std::nextafter(-kZeroThreshold, -std::numeric_limits<double>::infinity());
  }
  return th;
}

// Emits tree `t` into `ens` with every leaf scaled by `scale` and adding to `target`. The
// nodes are charged to `budget` as they are emitted (zero-as-missing splits copy subtrees,
// so a small file could otherwise emit millions of nodes).
Status EmitTree(const Tree& t, int64_t target, double scale, TreeEnsembleBuilder& ens,
                AllocBudget& budget) {
  size_t charged = ens.node_count();
  auto charge = [&]() -> Status {
    // Each step below adds at most three nodes, so this runs ahead of the allocation.
    const size_t ahead = ens.node_count() + 3;
    if (ahead <= charged) return Status::Ok();
    Status st = budget.Charge((ahead - charged) * kEmittedNodeCost);
    if (!st.ok()) return Bad(st.message());
    charged = ahead;
    return Status::Ok();
  };
  RETURN_IF_ERROR(charge());
  ens.BeginTree();
  if (t.num_leaves == 1) {
    ens.AddLeaf(target, t.leaf_value[0] * scale);
    return Status::Ok();
  }
  using Mode = TreeEnsembleBuilder::Mode;
  struct Work {
    int64_t ref;  // >= 0 internal node, < 0 leaf ~ref
    size_t parent;
    bool true_branch;
    bool has_parent;
  };
  std::vector<Work> stack = {{0, 0, false, false}};
  while (!stack.empty()) {
    RETURN_IF_ERROR(charge());
    if (ens.node_count() > kMaxEmittedNodes) {
      return Unsupported(std::string(kPrefix) +
                         "the model is too large once its zero-as-missing splits are expanded; "
                         "retrain with zero_as_missing=false or export the model to ONNX");
    }
    Work w = stack.back();
    stack.pop_back();
    auto link = [&](size_t h) {
      if (w.has_parent) ens.SetChild(w.parent, w.true_branch, h);
    };
    if (w.ref < 0) {
      link(ens.AddLeaf(target, t.leaf_value[static_cast<size_t>(~w.ref)] * scale));
      continue;
    }
    size_t i = static_cast<size_t>(w.ref);
    int64_t dt = t.decision_type[i];
    int missing_type = static_cast<int>((dt >> 2) & 3);
    bool default_left = (dt & 2) != 0;
    double th = t.threshold[i];
    int64_t f = t.split_feature[i];
    int64_t l = t.left[i], r = t.right[i];
    // x <= th ? left : right, with NaN going left when `nan_left`.
    auto plain = [&](bool nan_left) {
      size_t h = ens.AddBranch(f, EffectiveThreshold(th), Mode::kLeq, nan_left);
      stack.push_back({r, h, false, true});
      stack.push_back({l, h, true, true});
      return h;
    };
    if (missing_type == 2) {  // NaN: NaN -> default child.
      link(plain(default_left));
      continue;
    }
    if (missing_type != 1) {  // None (and the unused value 3): NaN is treated as 0.0.
      link(plain(0.0 <= th));
      continue;
    }
    // Zero: NaN and |x| <= kZeroThreshold go to the default child.
    if ((default_left && th >= kZeroThreshold) || (!default_left && th < -kZeroThreshold)) {
      // The threshold already sends the whole zero range to the default side.
      link(plain(default_left));
      continue;
    }
    // A: x < -z ? T1 : B.  B: x <= z (or NaN) ? default : T2.
    size_t a = ens.AddBranch(f, -kZeroThreshold, Mode::kLt, false);
    link(a);
    size_t b = ens.AddBranch(f, kZeroThreshold, Mode::kLeq, true);
    ens.SetChild(a, false, b);
    stack.push_back({default_left ? l : r, b, true, true});
    // T1 (x < -z): x <= th already holds when th >= -z.
    if (th >= -kZeroThreshold)
      stack.push_back({l, a, true, true});
    else
      ens.SetChild(a, true, plain(false));
    // T2 (x > z): x > th already holds when th <= z.
    if (th <= kZeroThreshold)
      stack.push_back({r, b, false, true});
    else
      ens.SetChild(b, false, plain(false));
  }
  return Status::Ok();
}

enum class Transform { kIdentity, kSigmoid, kExp, kSoftmax };

struct Objective {
  std::string name;
  Transform transform = Transform::kIdentity;
  bool classifier = false;
  double sigmoid = 1.0;
  int64_t num_class = 1;
};

Result<Objective> ParseObjective(std::string_view s) {
  Objective o;
  std::vector<std::string_view> toks;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(' ', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) toks.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  if (toks.empty()) {
    o.name = "custom";
    return o;
  }
  o.name = std::string(toks[0]);
  for (size_t k = 1; k < toks.size(); ++k) {
    std::string_view t = toks[k];
    if (t == "sqrt") {
      return Unsupported(std::string(kPrefix) +
                         "objective 'regression' with reg_sqrt=true is not supported; retrain "
                         "with reg_sqrt=false or export the model to ONNX");
    }
    if (t.starts_with("sigmoid:")) {
      if (!ParseOne(t.substr(8), &o.sigmoid) || !std::isfinite(o.sigmoid))
        return Bad("malformed objective '" + Clip(s) + "'");
    }
    if (t.starts_with("num_class:")) {
      if (!ParseOne(t.substr(10), &o.num_class) || o.num_class < 1 || o.num_class > (1 << 16)) {
        return Bad("malformed objective '" + Clip(s) + "'");
      }
    }
  }
  static constexpr std::string_view kIdentity[] = {
      "regression", "regression_l2", "regression_l1", "huber",  "fair", "quantile",
      "mape",       "lambdarank",    "rank_xendcg",   "custom", "none"};
  static constexpr std::string_view kExp[] = {"poisson", "gamma", "tweedie"};
  for (auto n : kIdentity) {
    if (o.name == n) return o;
  }
  for (auto n : kExp) {
    if (o.name == n) {
      o.transform = Transform::kExp;
      return o;
    }
  }
  if (o.name == "binary") {
    o.transform = Transform::kSigmoid;
    o.classifier = true;
    o.num_class = 2;
    return o;
  }
  if (o.name == "cross_entropy") {
    o.transform = Transform::kSigmoid;
    return o;
  }
  if (o.name == "multiclass" || o.name == "multiclassova") {
    o.transform = o.name == "multiclass" ? Transform::kSoftmax : Transform::kSigmoid;
    o.classifier = true;
    if (o.num_class < 2) return Bad("objective '" + Clip(s) + "' needs num_class >= 2");
    return o;
  }
  return Unsupported(std::string(kPrefix) + "objective '" + Clip(o.name) +
                     "' is not supported (supported: regression, regression_l1, huber, fair, "
                     "quantile, mape, poisson, gamma, tweedie, binary, cross_entropy, "
                     "multiclass, multiclassova, lambdarank, rank_xendcg); export the model to "
                     "ONNX instead");
}

}  // namespace

Result<ImportResult> Convert(const std::string& text, const BoostingLimits& limits) {
  AllocBudget budget("the LightGBM model", text.size(), limits);
  // Split into the header and the Tree= blocks; stop at "end of trees".
  KeyValues header;
  std::vector<KeyValues> blocks;
  bool ended = false;
  bool first = true;
  std::string_view all = text;
  size_t pos = 0;
  while (pos < all.size() && !ended) {
    size_t eol = all.find('\n', pos);
    if (eol == std::string_view::npos) eol = all.size();
    std::string_view line = all.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      if (line != "tree") {
        return Bad(
            "this is not a LightGBM text model (its first line is not 'tree'); save the "
            "booster with booster.save_model(\"model.txt\")");
      }
      first = false;
      continue;
    }
    if (line.empty()) continue;
    if (line == "end of trees") {
      ended = true;
      break;
    }
    if (line.starts_with("Tree=")) {
      size_t idx = 0;
      if (!ParseOne(line.substr(5), &idx) || idx != blocks.size()) {
        return Bad("unexpected '" + Clip(line) + "' (trees must be numbered 0, 1, ...)");
      }
      RETURN_IF_ERROR(Reserve(blocks, 1, budget));
      blocks.emplace_back();
      continue;
    }
    size_t eq = line.find('=');
    std::string_view key = eq == std::string_view::npos ? line : line.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1);
    KeyValues& into = blocks.empty() ? header : blocks.back();
    RETURN_IF_ERROR(Reserve(into, 1, budget));
    into.emplace_back(key, value);
  }
  if (first) return Bad("the file is empty");
  if (!ended) return Bad("the file is truncated (no 'end of trees' line)");

  ImportResult result;
  result.framework_version = std::string(Get(header, "version").substr(0, 16));
  ASSIGN_OR_RETURN(int64_t max_feature_idx,
                   IntField(header, "max_feature_idx", "", 0, (1 << 24) - 1));
  const int64_t num_features = max_feature_idx + 1;
  ASSIGN_OR_RETURN(int64_t num_class, IntField(header, "num_class", "", 1, 1 << 16));
  ASSIGN_OR_RETURN(int64_t per_iter, IntField(header, "num_tree_per_iteration", "", 1, 1 << 16));
  ASSIGN_OR_RETURN(Objective obj, ParseObjective(Get(header, "objective")));
  if (obj.classifier && obj.name != "binary" && obj.num_class != num_class) {
    return Bad("objective num_class differs from num_class=" + std::to_string(num_class));
  }
  int64_t n_outputs = obj.name == "binary" ? 1 : num_class;
  if (per_iter != n_outputs) {
    return Bad("num_tree_per_iteration=" + std::to_string(per_iter) + " does not match " +
               std::to_string(n_outputs) + " output(s)");
  }
  if (blocks.size() % static_cast<size_t>(per_iter) != 0) {
    return Bad(std::to_string(blocks.size()) +
               " trees is not a multiple of num_tree_per_iteration=" + std::to_string(per_iter));
  }
  // Random-forest mode averages the iterations.
  double scale = 1.0;
  if (Has(header, "average_output") && !blocks.empty()) {
    scale = 1.0 / static_cast<double>(blocks.size() / static_cast<size_t>(per_iter));
  }

  TreeEnsembleBuilder ens(n_outputs, /*double_precision=*/true);
  for (size_t k = 0; k < blocks.size(); ++k) {
    ASSIGN_OR_RETURN(Tree t, ParseTree(blocks[k], k, num_features));
    RETURN_IF_ERROR(
        EmitTree(t, static_cast<int64_t>(k % static_cast<size_t>(per_iter)), scale, ens, budget));
  }
  if (blocks.empty()) {
    for (int64_t g = 0; g < n_outputs; ++g) {
      ens.BeginTree();
      ens.AddLeaf(g, 0.0);
    }
  }

  if (std::string_view names = Get(header, "feature_names"); !names.empty()) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= names.size()) {
      size_t j = names.find(' ', i);
      if (j == std::string_view::npos) j = names.size();
      out.emplace_back(names.substr(i, j - i));
      i = j + 1;
    }
    if (static_cast<int64_t>(out.size()) == num_features) result.feature_names = std::move(out);
  }

  GraphBuilder g;
  g.SetGraphName("lightgbm");
  g.SetProducer("serveml-lightgbm-importer", result.framework_version);
  g.SetMetadata("objective", obj.name);
  g.AddInput("input", DType::kFloat64, {-1, num_features});
  bool transformed = obj.classifier || obj.transform != Transform::kIdentity;
  std::string score = transformed ? "score" : "variable";
  ens.Emit(g, "input", score, {});
  if (obj.transform == Transform::kSigmoid && obj.sigmoid != 1.0) {
    g.AddInitializer("sigmoid_scale", Tensor::From<float>({1}, {static_cast<float>(obj.sigmoid)}));
    g.AddNode("Mul", {score, "sigmoid_scale"}, {"scaled_score"});
    score = "scaled_score";
  }
  if (obj.classifier) {
    std::string probs = "probabilities_tensor";
    if (obj.name == "binary") {
      g.AddNode("Sigmoid", {score}, {"p1"});
      g.AddInitializer("one", Tensor::From<float>({1}, {1.0f}));
      g.AddNode("Sub", {"one", "p1"}, {"p0"});
      g.AddNode("Concat", {"p0", "p1"}, {probs}).Attr("axis", int64_t{1});
    } else if (obj.transform == Transform::kSoftmax) {
      g.AddNode("Softmax", {score}, {probs}).Attr("axis", int64_t{1});
    } else {
      g.AddNode("Sigmoid", {score}, {probs});
    }
    g.AddNode("ArgMax", {probs}, {"label"}).Attr("axis", int64_t{1}).Attr("keepdims", int64_t{0});
    std::vector<int64_t> labels;
    for (int64_t c = 0; c < obj.num_class; ++c) labels.push_back(c);
    g.AddNode("ZipMap", {probs}, {"probabilities"}, "ai.onnx.ml")
        .Attr("classlabels_int64s", labels);
    g.AddOutput("label", DType::kInt64, {-1});
    g.AddZipMapOutput("probabilities", /*int_keys=*/true);
    result.model_type = "LGBMClassifier(" + obj.name + ")";
  } else {
    if (obj.transform == Transform::kSigmoid) g.AddNode("Sigmoid", {score}, {"variable"});
    if (obj.transform == Transform::kExp) g.AddNode("Exp", {score}, {"variable"});
    g.AddOutput("variable", DType::kFloat32, {-1, n_outputs});
    result.model_type = "LGBMRegressor(" + obj.name + ")";
  }
  if (!result.feature_names.empty()) {
    std::string joined;
    for (const auto& f : result.feature_names) joined += (joined.empty() ? "" : ",") + f;
    g.SetMetadata("feature_names", joined);
  }
  result.onnx = g.Serialize();
  return result;
}

}  // namespace serveml::importers::lightgbm
