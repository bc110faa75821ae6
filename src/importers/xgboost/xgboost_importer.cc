#include "importers/xgboost/xgboost_importer.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

#include "importers/onnx_builder.h"
#include "importers/xgboost/json_value.h"
#include "importers/xgboost/tree_ensemble.h"

namespace serveml::importers::xgboost {
namespace {

constexpr char kPrefix[] = "XGBoost model: ";

Status Bad(const std::string& what) { return InvalidInput(kPrefix + what); }

enum class Transform { kIdentity, kSigmoid, kExp, kSoftmax };

struct ObjectiveInfo {
  std::string_view name;
  Transform transform;
  bool classifier;
  bool margin_is_log;    // base_score is stored on the output scale: margin = log(b)
  bool margin_is_logit;  // margin = logit(b)
};

// The objectives this importer reproduces. Booster.predict's output for each: identity for
// the regressions and logitraw, sigmoid for the logistic ones, exp for count/gamma/tweedie,
// softmax for multi:*.
constexpr ObjectiveInfo kObjectives[] = {
    {"reg:squarederror", Transform::kIdentity, false, false, false},
    {"reg:squaredlogerror", Transform::kIdentity, false, false, false},
    {"reg:pseudohubererror", Transform::kIdentity, false, false, false},
    {"reg:absoluteerror", Transform::kIdentity, false, false, false},
    {"reg:linear", Transform::kIdentity, false, false, false},
    {"reg:logistic", Transform::kSigmoid, false, false, true},
    {"binary:logistic", Transform::kSigmoid, true, false, true},
    {"binary:logitraw", Transform::kIdentity, false, false, false},
    {"multi:softprob", Transform::kSoftmax, true, false, false},
    {"multi:softmax", Transform::kSoftmax, true, false, false},
    {"count:poisson", Transform::kExp, false, true, false},
    {"reg:gamma", Transform::kExp, false, true, false},
    {"reg:tweedie", Transform::kExp, false, true, false},
};

std::string SupportedObjectives() {
  std::string s;
  for (const auto& o : kObjectives) {
    if (!s.empty()) s += ", ";
    s += o.name;
  }
  return s;
}

Result<const Value*> Member(const Value& obj, std::string_view key, const std::string& path) {
  const Value* v = obj.Find(key);
  if (!v) return Bad("missing field '" + path + (path.empty() ? "" : ".") + std::string(key) + "'");
  return v;
}

Result<const Value*> ObjectMember(const Value& obj, std::string_view key, const std::string& path) {
  ASSIGN_OR_RETURN(const Value* v, Member(obj, key, path));
  if (!v->is_object()) return Bad("field '" + path + "." + std::string(key) + "' is not an object");
  return v;
}

// An integer parameter stored as a number or as a decimal string (XGBoost writes both).
Result<int64_t> IntParam(const Value& v, const std::string& what, int64_t lo, int64_t hi) {
  double d = std::numeric_limits<double>::quiet_NaN();
  if (v.is_number()) {
    d = v.number;
  } else if (v.is_string()) {
    int64_t i = 0;
    const char* b = v.str.data();
    auto r = std::from_chars(b, b + v.str.size(), i);
    if (r.ec == std::errc() && r.ptr == b + v.str.size()) d = static_cast<double>(i);
  }
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) {
    return Bad("'" + what + "' must be an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]");
  }
  return static_cast<int64_t>(d);
}

// base_score: "5E-1" (XGBoost < 3) or "[5E-1]" / "[a,b,c]" (one per output, XGBoost >= 3).
Result<std::vector<float>> ParseBaseScore(const Value& v) {
  if (v.is_number()) return std::vector<float>{static_cast<float>(v.number)};
  if (!v.is_string()) return Bad("'base_score' must be a string");
  std::string_view s = v.str;
  if (!s.empty() && s.front() == '[') {
    if (s.back() != ']') return Bad("malformed 'base_score' \"" + v.str + "\"");
    s = s.substr(1, s.size() - 2);
  }
  std::vector<float> out;
  while (true) {
    size_t comma = s.find(',');
    std::string_view tok = s.substr(0, comma);
    while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
    while (!tok.empty() && tok.back() == ' ') tok.remove_suffix(1);
    float f = 0;
    auto r = std::from_chars(tok.data(), tok.data() + tok.size(), f);
    if (tok.empty() || r.ec != std::errc() || r.ptr != tok.data() + tok.size()) {
      return Bad("malformed 'base_score' \"" + v.str.substr(0, 64) + "\"");
    }
    out.push_back(f);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

// The numbers of an array field, which must have exactly `n` elements (booleans count as
// 0/1 for older files that wrote default_left as true/false). `scratch` holds converted
// values when needed.
Result<const std::vector<double>*> NumberArray(const Value& tree, std::string_view key, size_t n,
                                               size_t tree_index, std::vector<double>* scratch) {
  std::string where = "trees[" + std::to_string(tree_index) + "]." + std::string(key);
  const Value* v = tree.Find(key);
  if (!v) return Bad("missing field '" + where + "'");
  if (!v->is_array()) return Bad("'" + where + "' is not an array");
  if (v->size() != n) {
    return Bad("'" + where + "' has " + std::to_string(v->size()) + " entries, expected " +
               std::to_string(n));
  }
  if (!v->items.empty()) {
    scratch->clear();
    for (const Value& item : v->items) {
      if (item.kind == Value::Kind::kBool)
        scratch->push_back(item.boolean ? 1 : 0);
      else
        return Bad("'" + where + "' must contain numbers");
    }
    return scratch;
  }
  return &v->numbers;
}

bool IsIndex(double d, double lo, double hi_exclusive) {
  return d >= lo && d < hi_exclusive && d == std::floor(d);
}

struct ModelParams {
  int64_t num_feature = 0;
  int64_t n_groups = 1;  // outputs: classes for multi:*, targets otherwise
};

// Adds tree `t` (its nodes reachable from the root) to `ens`.
Status AddTree(const Value& t, size_t index, int64_t group, double weight, const ModelParams& p,
               TreeEnsembleBuilder& ens) {
  std::string where = "trees[" + std::to_string(index) + "]";
  if (!t.is_object()) return Bad("'" + where + "' is not an object");
  if (const Value* tp = t.Find("tree_param")) {
    if (const Value* s = tp->Find("size_leaf_vector")) {
      ASSIGN_OR_RETURN(int64_t leaf_vec, IntParam(*s, where + ".size_leaf_vector", 0, 1 << 20));
      if (leaf_vec > 1) {
        return Unsupported(std::string(kPrefix) +
                           "multi-output trees (multi_strategy=\"multi_output_tree\") are not "
                           "supported; train with multi_strategy=\"one_output_per_tree\" or "
                           "export the model to ONNX");
      }
    }
  }
  const Value* left_v = t.Find("left_children");
  if (!left_v || !left_v->is_array()) return Bad("missing array '" + where + ".left_children'");
  size_t n = left_v->size();
  if (n == 0) return Bad("'" + where + "' has no nodes");
  std::vector<double> s1, s2, s3, s4, s5, s6;
  ASSIGN_OR_RETURN(const std::vector<double>* left, NumberArray(t, "left_children", n, index, &s1));
  ASSIGN_OR_RETURN(const std::vector<double>* right,
                   NumberArray(t, "right_children", n, index, &s2));
  ASSIGN_OR_RETURN(const std::vector<double>* feat, NumberArray(t, "split_indices", n, index, &s3));
  ASSIGN_OR_RETURN(const std::vector<double>* cond,
                   NumberArray(t, "split_conditions", n, index, &s4));
  ASSIGN_OR_RETURN(const std::vector<double>* dleft, NumberArray(t, "default_left", n, index, &s5));
  const std::vector<double>* stype = nullptr;
  if (const Value* st = t.Find("split_type"); st && st->size() > 0) {
    ASSIGN_OR_RETURN(stype, NumberArray(t, "split_type", n, index, &s6));
  }

  ens.BeginTree();
  std::vector<size_t> handle(n, 0);
  std::vector<uint8_t> seen(n, 0);
  std::vector<size_t> internal;
  std::vector<size_t> stack = {0};
  const double dn = static_cast<double>(n);
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    if (seen[i])
      return Bad("'" + where + "' is not a tree: node " + std::to_string(i) + " has two parents");
    seen[i] = 1;
    double l = (*left)[i];
    double r = (*right)[i];
    if (l == -1) {
      float leaf = static_cast<float>((*cond)[i]);
      handle[i] = ens.AddLeaf(
          group, weight == 1.0 ? leaf : static_cast<double>(static_cast<float>(leaf * weight)));
      continue;
    }
    if (!IsIndex(l, 1, dn) || !IsIndex(r, 1, dn)) {
      return Bad("'" + where + "' node " + std::to_string(i) + " has child indices out of range");
    }
    if (stype && (*stype)[i] != 0) {
      return Unsupported(std::string(kPrefix) +
                         "categorical splits (enable_categorical=True) are not supported; "
                         "one-hot or ordinal-encode the categorical features before training");
    }
    double f = (*feat)[i];
    if (!IsIndex(f, 0, static_cast<double>(p.num_feature))) {
      return Bad("'" + where + "' node " + std::to_string(i) + " splits on feature " +
                 std::to_string(f) + ", but the model has " + std::to_string(p.num_feature) +
                 " features");
    }
    float threshold = static_cast<float>((*cond)[i]);
    handle[i] = ens.AddBranch(static_cast<int64_t>(f), threshold, TreeEnsembleBuilder::Mode::kLt,
                              (*dleft)[i] != 0);
    internal.push_back(i);
    stack.push_back(static_cast<size_t>(r));
    stack.push_back(static_cast<size_t>(l));
  }
  for (size_t i : internal) {
    ens.SetChild(handle[i], true, handle[static_cast<size_t>((*left)[i])]);
    ens.SetChild(handle[i], false, handle[static_cast<size_t>((*right)[i])]);
  }
  return Status::Ok();
}

Result<Value> ParseModelBytes(const std::string& bytes, const BoostingLimits& limits) {
  size_t i = 0;
  while (i < bytes.size() &&
         (bytes[i] == ' ' || bytes[i] == '\n' || bytes[i] == '\r' || bytes[i] == '\t'))
    ++i;
  if (i >= bytes.size() || bytes[i] != '{') {
    return Unsupported(std::string(kPrefix) +
                       "this is not a JSON or UBJSON model (perhaps the legacy binary format or "
                       "a pickle); load it in xgboost and save it with "
                       "booster.save_model(\"model.json\") or \"model.ubj\"");
  }
  size_t j = i + 1;
  while (j < bytes.size() &&
         (bytes[j] == ' ' || bytes[j] == '\n' || bytes[j] == '\r' || bytes[j] == '\t'))
    ++j;
  bool json = j > i + 1 || j >= bytes.size() || bytes[j] == '"' || bytes[j] == '}';
  auto parsed =
      json ? ParseJson(bytes, limits) : ParseUbjson(std::string_view(bytes).substr(i), limits);
  if (!parsed.ok()) return Bad(parsed.status().message());
  return parsed;
}

}  // namespace

Result<ImportResult> Convert(const std::string& bytes, const BoostingLimits& limits) {
  ASSIGN_OR_RETURN(Value root, ParseModelBytes(bytes, limits));
  if (!root.is_object()) return Bad("the document is not an object");
  ImportResult result;
  if (const Value* ver = root.Find("version"); ver && ver->is_array() && ver->numbers.size() == 3) {
    for (size_t k = 0; k < 3; ++k) {
      if (k) result.framework_version += '.';
      result.framework_version += std::to_string(static_cast<int64_t>(ver->numbers[k]));
    }
  }
  ASSIGN_OR_RETURN(const Value* learner, ObjectMember(root, "learner", ""));
  ASSIGN_OR_RETURN(const Value* objective, ObjectMember(*learner, "objective", "learner"));
  ASSIGN_OR_RETURN(const Value* obj_name, Member(*objective, "name", "learner.objective"));
  if (!obj_name->is_string()) return Bad("'learner.objective.name' is not a string");
  const ObjectiveInfo* obj = nullptr;
  for (const auto& o : kObjectives) {
    if (o.name == obj_name->str) obj = &o;
  }
  if (!obj) {
    return Unsupported(std::string(kPrefix) + "objective '" + obj_name->str.substr(0, 64) +
                       "' is not supported (supported: " + SupportedObjectives() +
                       "); export the model to ONNX instead");
  }

  ASSIGN_OR_RETURN(const Value* lmp, ObjectMember(*learner, "learner_model_param", "learner"));
  ModelParams p;
  ASSIGN_OR_RETURN(const Value* nf_v, Member(*lmp, "num_feature", "learner.learner_model_param"));
  ASSIGN_OR_RETURN(p.num_feature, IntParam(*nf_v, "num_feature", 1, 1 << 24));
  int64_t num_class = 0;
  if (const Value* nc = lmp->Find("num_class")) {
    ASSIGN_OR_RETURN(num_class, IntParam(*nc, "num_class", 0, 1 << 16));
  }
  int64_t num_target = 1;
  if (const Value* nt = lmp->Find("num_target")) {
    ASSIGN_OR_RETURN(num_target, IntParam(*nt, "num_target", 1, 1 << 16));
  }
  bool multiclass = obj->transform == Transform::kSoftmax;
  if (multiclass && num_class < 2)
    return Bad("objective " + std::string(obj->name) + " needs num_class >= 2");
  if (!multiclass && num_class > 1)
    return Bad("num_class is set for objective " + std::string(obj->name));
  if (obj->classifier && num_target > 1) {
    return Unsupported(std::string(kPrefix) + "multi-target classifiers are not supported");
  }
  p.n_groups = multiclass ? num_class : num_target;

  ASSIGN_OR_RETURN(const Value* bs_v, Member(*lmp, "base_score", "learner.learner_model_param"));
  ASSIGN_OR_RETURN(std::vector<float> base_score, ParseBaseScore(*bs_v));
  if (base_score.size() == 1) base_score.resize(static_cast<size_t>(p.n_groups), base_score[0]);
  if (static_cast<int64_t>(base_score.size()) != p.n_groups) {
    return Bad("'base_score' has " + std::to_string(base_score.size()) + " values for " +
               std::to_string(p.n_groups) + " outputs");
  }
  std::vector<double> base_margin;
  for (float b : base_score) {
    float m = b;
    if (obj->margin_is_logit) {
      if (!(b > 0 && b < 1))
        return Bad("'base_score' must be in (0, 1) for " + std::string(obj->name));
      m = -std::log(1.0f / b - 1.0f);
    } else if (obj->margin_is_log) {
      if (!(b > 0)) return Bad("'base_score' must be positive for " + std::string(obj->name));
      m = std::log(b);
    }
    base_margin.push_back(m);
  }

  // Booster: gbtree, or dart (gbtree + per-tree weights).
  ASSIGN_OR_RETURN(const Value* gb, ObjectMember(*learner, "gradient_booster", "learner"));
  ASSIGN_OR_RETURN(const Value* gb_name, Member(*gb, "name", "learner.gradient_booster"));
  const Value* model = nullptr;
  const Value* weight_drop = nullptr;
  if (gb_name->is_string() && gb_name->str == "gbtree") {
    ASSIGN_OR_RETURN(model, ObjectMember(*gb, "model", "learner.gradient_booster"));
  } else if (gb_name->is_string() && gb_name->str == "dart") {
    ASSIGN_OR_RETURN(const Value* inner, ObjectMember(*gb, "gbtree", "learner.gradient_booster"));
    ASSIGN_OR_RETURN(model, ObjectMember(*inner, "model", "learner.gradient_booster.gbtree"));
    ASSIGN_OR_RETURN(weight_drop, Member(*gb, "weight_drop", "learner.gradient_booster"));
    if (!weight_drop->is_array() || !weight_drop->items.empty())
      return Bad("'weight_drop' must be an array of numbers");
  } else if (gb_name->is_string() && gb_name->str == "gblinear") {
    return Unsupported(std::string(kPrefix) +
                       "the gblinear booster is not supported; use booster=\"gbtree\" or export "
                       "the model to ONNX");
  } else {
    return Bad("unknown gradient_booster '" +
               (gb_name->is_string() ? gb_name->str.substr(0, 64) : std::string("?")) + "'");
  }
  ASSIGN_OR_RETURN(const Value* trees, Member(*model, "trees", "gradient_booster.model"));
  if (!trees->is_array() || !trees->numbers.empty())
    return Bad("'trees' must be an array of objects");
  ASSIGN_OR_RETURN(const Value* tree_info, Member(*model, "tree_info", "gradient_booster.model"));
  if (!tree_info->is_array() || !tree_info->items.empty() || tree_info->size() != trees->size()) {
    return Bad("'tree_info' must have one group index per tree");
  }
  if (weight_drop && weight_drop->size() != trees->size()) {
    return Bad("'weight_drop' must have one weight per tree");
  }

  // Early stopping: predict() uses the trees up to best_iteration.
  size_t n_trees = trees->size();
  if (const Value* attrs = learner->Find("attributes"); attrs && attrs->is_object()) {
    if (const Value* best = attrs->Find("best_iteration")) {
      ASSIGN_OR_RETURN(int64_t best_it, IntParam(*best, "best_iteration", 0, 1LL << 40));
      const Value* indptr = model->Find("iteration_indptr");
      size_t limit = n_trees;
      if (indptr && indptr->is_array() && indptr->items.empty() && indptr->size() > 1) {
        if (static_cast<size_t>(best_it) + 1 < indptr->size()) {
          double e = indptr->numbers[static_cast<size_t>(best_it) + 1];
          if (!IsIndex(e, 0, static_cast<double>(n_trees) + 1))
            return Bad("bad 'iteration_indptr'");
          limit = static_cast<size_t>(e);
        }
      } else {
        int64_t parallel = 1;
        if (const Value* gp = model->Find("gbtree_model_param")) {
          if (const Value* np = gp->Find("num_parallel_tree")) {
            ASSIGN_OR_RETURN(parallel, IntParam(*np, "num_parallel_tree", 1, 1 << 20));
          }
        }
        double per_iter = static_cast<double>(parallel * p.n_groups);
        double want = per_iter * static_cast<double>(best_it + 1);
        if (want < static_cast<double>(n_trees)) limit = static_cast<size_t>(want);
      }
      n_trees = std::min(n_trees, limit);
    }
  }

  TreeEnsembleBuilder ens(p.n_groups, /*double_precision=*/false);
  for (size_t k = 0; k < n_trees; ++k) {
    double g = tree_info->numbers[k];
    if (!IsIndex(g, 0, static_cast<double>(p.n_groups))) {
      return Bad("tree_info[" + std::to_string(k) + "] is not an output index below " +
                 std::to_string(p.n_groups));
    }
    double w = weight_drop ? weight_drop->numbers[k] : 1.0;
    RETURN_IF_ERROR(AddTree(trees->items[k], k, static_cast<int64_t>(g), w, p, ens));
  }
  if (n_trees == 0) {
    // A model without trees predicts its base score; give the ensemble one empty tree per
    // output so the graph stays valid.
    for (int64_t g = 0; g < p.n_groups; ++g) {
      ens.BeginTree();
      ens.AddLeaf(g, 0.0);
    }
  }

  // Feature names.
  if (const Value* names = learner->Find("feature_names");
      names && names->is_array() && static_cast<int64_t>(names->items.size()) == p.num_feature) {
    for (const Value& nm : names->items) {
      if (!nm.is_string()) {
        result.feature_names.clear();
        break;
      }
      result.feature_names.push_back(nm.str);
    }
  }

  // Graph.
  GraphBuilder g;
  g.SetGraphName("xgboost");
  g.SetProducer("serveml-xgboost-importer", result.framework_version);
  g.SetMetadata("objective", std::string(obj->name));
  g.AddInput("input", DType::kFloat32, {-1, p.num_feature});
  std::string margin =
      obj->classifier || obj->transform != Transform::kIdentity ? "margin" : "variable";
  ens.Emit(g, "input", margin, base_margin);
  if (obj->classifier) {
    std::string probs = "probabilities_tensor";
    int64_t n_classes = multiclass ? p.n_groups : 2;
    if (multiclass) {
      g.AddNode("Softmax", {margin}, {probs}).Attr("axis", int64_t{1});
    } else {
      g.AddNode("Sigmoid", {margin}, {"p1"});
      g.AddInitializer("one", Tensor::From<float>({1}, {1.0f}));
      g.AddNode("Sub", {"one", "p1"}, {"p0"});
      g.AddNode("Concat", {"p0", "p1"}, {probs}).Attr("axis", int64_t{1});
    }
    // multi:softmax predicts the argmax of the margins; the others of the probabilities.
    std::string argmax_of = obj->name == "multi:softmax" ? margin : probs;
    g.AddNode("ArgMax", {argmax_of}, {"label"})
        .Attr("axis", int64_t{1})
        .Attr("keepdims", int64_t{0});
    std::vector<int64_t> labels;
    for (int64_t c = 0; c < n_classes; ++c) labels.push_back(c);
    g.AddNode("ZipMap", {probs}, {"probabilities"}, "ai.onnx.ml")
        .Attr("classlabels_int64s", labels);
    g.AddOutput("label", DType::kInt64, {-1});
    g.AddZipMapOutput("probabilities", /*int_keys=*/true);
    result.model_type = "XGBClassifier(" + std::string(obj->name) + ")";
  } else {
    if (obj->transform == Transform::kSigmoid) g.AddNode("Sigmoid", {margin}, {"variable"});
    if (obj->transform == Transform::kExp) g.AddNode("Exp", {margin}, {"variable"});
    g.AddOutput("variable", DType::kFloat32, {-1, p.n_groups});
    result.model_type = "XGBRegressor(" + std::string(obj->name) + ")";
  }
  if (!result.feature_names.empty()) {
    std::string joined;
    for (const auto& f : result.feature_names) joined += (joined.empty() ? "" : ",") + f;
    g.SetMetadata("feature_names", joined);
  }
  result.onnx = g.Serialize();
  return result;
}

}  // namespace serveml::importers::xgboost
