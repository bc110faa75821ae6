// Tree ensembles: compilation into flat node arrays (ml_tree.h) and the TreeEnsembleRegressor,
// TreeEnsembleClassifier and TreeEnsemble kernels, with onnxruntime's aggregation, base value,
// binary-classification and post-transform rules (tree_ensemble_aggregator.h there).
#include "engine/ops/ml_tree.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>
#include <numeric>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "engine/kernel.h"
#include "engine/ops/ml_common.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace ml {

Result<NodeMode> ParseNodeMode(const std::string& s) {
  if (s == "BRANCH_LEQ") return NodeMode::kLeq;
  if (s == "BRANCH_LT") return NodeMode::kLt;
  if (s == "BRANCH_GTE") return NodeMode::kGte;
  if (s == "BRANCH_GT") return NodeMode::kGt;
  if (s == "BRANCH_EQ") return NodeMode::kEq;
  if (s == "BRANCH_NEQ") return NodeMode::kNeq;
  if (s == "LEAF") return NodeMode::kLeaf;
  return InvalidInput("unknown node mode '" + s + "'");
}

namespace {

struct IdHash {
  size_t operator()(const std::pair<int64_t, int64_t>& p) const {
    return std::hash<uint64_t>()(static_cast<uint64_t>(p.first) * 0x9E3779B97F4A7C15ULL ^
                                 static_cast<uint64_t>(p.second));
  }
};

std::string NodeName(int64_t tree, int64_t node) {
  return "tree " + std::to_string(tree) + " node " + std::to_string(node);
}

}  // namespace

template <typename T>
Result<CompiledTrees<T>> CompileTrees(const TreeEnsembleSpec& s, int64_t n_targets) {
  const size_t n = s.tree_ids.size();
  if (s.node_ids.size() != n || s.feature_ids.size() != n || s.modes.size() != n ||
      s.values.size() != n || s.true_ids.size() != n || s.false_ids.size() != n) {
    return InvalidInput(
        "the nodes_* attributes (treeids, nodeids, featureids, modes, values, truenodeids, "
        "falsenodeids) must all have the same length");
  }
  const size_t nw = s.weight_tree_ids.size();
  if (s.weight_node_ids.size() != nw || s.weight_targets.size() != nw ||
      s.weight_values.size() != nw) {
    return InvalidInput(
        "the leaf weight attributes (treeids, nodeids, ids, weights) must all "
        "have the same length");
  }
  if (n == 0) return InvalidInput("the tree ensemble has no nodes");
  if (n > static_cast<size_t>(INT32_MAX / 2) || nw > static_cast<size_t>(INT32_MAX / 2)) {
    return InvalidInput("the tree ensemble is too large");
  }
  if (n_targets <= 0 || n_targets > INT32_MAX) {
    return InvalidInput("the number of targets/classes must be positive, got " +
                        std::to_string(n_targets));
  }

  std::unordered_map<std::pair<int64_t, int64_t>, int32_t, IdHash> index;
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!index.emplace(std::make_pair(s.tree_ids[i], s.node_ids[i]), static_cast<int32_t>(i))
             .second) {
      return InvalidInput(NodeName(s.tree_ids[i], s.node_ids[i]) + " is defined twice");
    }
  }
  std::vector<int32_t> true_idx(n, -1), false_idx(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (s.modes[i] == NodeMode::kLeaf) continue;
    auto t = index.find({s.tree_ids[i], s.true_ids[i]});
    auto f = index.find({s.tree_ids[i], s.false_ids[i]});
    if (t == index.end() || f == index.end()) {
      return InvalidInput(NodeName(s.tree_ids[i], s.node_ids[i]) + ": its " +
                          (t == index.end() ? "true" : "false") + " child " +
                          std::to_string(t == index.end() ? s.true_ids[i] : s.false_ids[i]) +
                          " does not exist");
    }
    if (t->second == static_cast<int32_t>(i) || f->second == static_cast<int32_t>(i)) {
      return InvalidInput(NodeName(s.tree_ids[i], s.node_ids[i]) + " is its own child");
    }
    if (s.feature_ids[i] < 0 || s.feature_ids[i] > INT32_MAX - 1) {
      return InvalidInput(NodeName(s.tree_ids[i], s.node_ids[i]) + " has feature id " +
                          std::to_string(s.feature_ids[i]));
    }
    true_idx[i] = t->second;
    false_idx[i] = f->second;
  }

  CompiledTrees<T> out;
  out.n_targets = n_targets;
  out.nodes.reserve(n);
  const bool has_members =
      std::find(s.modes.begin(), s.modes.end(), NodeMode::kMember) != s.modes.end();

  std::vector<int32_t> pos(n, -1);
  std::vector<uint8_t> done(n, 0);
  struct Frame {
    int32_t i;
    int32_t p;
    uint8_t stage;
  };
  std::vector<Frame> stack;

  // Creates node i (returning its position in *result) or, for a branch, pushes a frame whose
  // children are added next (*result = -1). A node already placed is shared (returned as is).
  auto enter = [&](int32_t i, int32_t* result) -> Status {
    if (pos[i] >= 0) {
      if (!done[i]) {
        return InvalidInput("the tree containing " + NodeName(s.tree_ids[i], s.node_ids[i]) +
                            " has a cycle");
      }
      *result = pos[i];
      return Status::Ok();
    }
    const int32_t p = static_cast<int32_t>(out.nodes.size());
    pos[i] = p;
    TreeNode<T> node{};
    node.value = static_cast<T>(s.values[i]);
    node.mode = s.modes[i];
    node.missing_true =
        static_cast<size_t>(i) < s.missing_tracks_true.size() && s.missing_tracks_true[i] == 1;
    if (node.mode == NodeMode::kLeaf) {
      node.feature = 0;  // keeps the batched traversal's (ignored) feature read in bounds
      node.index = 0;
      out.nodes.push_back(node);
      if (has_members) out.member_set_of_node.push_back(-1);
      done[i] = 1;
      *result = p;
      return Status::Ok();
    }
    node.feature = static_cast<int32_t>(s.feature_ids[i]);
    out.max_feature = std::max<int64_t>(out.max_feature, node.feature);
    out.nodes.push_back(node);
    if (has_members) {
      int32_t set = -1;
      if (node.mode == NodeMode::kMember) {
        std::vector<T> values;
        if (static_cast<size_t>(i) < s.member_values.size()) {
          for (double v : s.member_values[i]) values.push_back(static_cast<T>(v));
        }
        std::sort(values.begin(), values.end());
        set = static_cast<int32_t>(out.member_sets.size());
        out.member_sets.push_back(std::move(values));
      }
      out.member_set_of_node.push_back(set);
    }
    stack.push_back({i, p, 0});
    *result = -1;
    return Status::Ok();
  };

  auto add_tree = [&](int32_t root) -> Result<int32_t> {
    int32_t last = -1;
    RETURN_IF_ERROR(enter(root, &last));
    while (!stack.empty()) {
      const size_t top = stack.size() - 1;
      const Frame f = stack[top];
      int32_t c = -1;
      if (f.stage == 0) {
        stack[top].stage = 1;
        RETURN_IF_ERROR(enter(false_idx[f.i], &c));
        if (c >= 0) last = c;
        continue;
      }
      if (f.stage == 1) {
        if (last != f.p + 1) {
          return InvalidInput("the false child of " + NodeName(s.tree_ids[f.i], s.node_ids[f.i]) +
                              " is also a child of another node (only true branches may "
                              "share a node)");
        }
        stack[top].stage = 2;
        RETURN_IF_ERROR(enter(true_idx[f.i], &c));
        if (c >= 0) last = c;
        continue;
      }
      out.nodes[f.p].index = last;
      done[f.i] = 1;
      last = f.p;
      stack.pop_back();
    }
    return last;
  };

  for (size_t i = 0; i < n; ++i) {
    if (i == 0 || s.tree_ids[i] != s.tree_ids[i - 1]) {
      ASSIGN_OR_RETURN(int32_t root, add_tree(static_cast<int32_t>(i)));
      out.roots.push_back(root);
    }
  }
  // Nodes no root reaches are dropped (onnxruntime accepts them too), with their weights.

  // Weights, grouped by (tree, node) and in attribute order within a leaf.
  std::vector<uint32_t> order(nw);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (s.weight_tree_ids[a] != s.weight_tree_ids[b]) {
      return s.weight_tree_ids[a] < s.weight_tree_ids[b];
    }
    return s.weight_node_ids[a] < s.weight_node_ids[b];
  });
  out.weight_count.assign(out.nodes.size(), 0);
  out.weight_targets.reserve(nw);
  out.weight_values.reserve(nw);
  for (uint32_t k : order) {
    auto it = index.find({s.weight_tree_ids[k], s.weight_node_ids[k]});
    if (it == index.end()) {
      return InvalidInput("a weight refers to " +
                          NodeName(s.weight_tree_ids[k], s.weight_node_ids[k]) +
                          ", which does not exist");
    }
    if (pos[it->second] < 0) continue;  // unreachable leaf
    TreeNode<T>& leaf = out.nodes[pos[it->second]];
    if (leaf.mode != NodeMode::kLeaf) continue;  // as onnxruntime: ignored
    const int64_t target = s.weight_targets[k];
    if (target < 0 || target >= n_targets) {
      return InvalidInput("a weight of " + NodeName(s.weight_tree_ids[k], s.weight_node_ids[k]) +
                          " has target/class id " + std::to_string(target) + ", outside [0, " +
                          std::to_string(n_targets) + ")");
    }
    const T w = static_cast<T>(s.weight_values[k]);
    int32_t& count = out.weight_count[pos[it->second]];
    if (count == 0) {
      leaf.index = static_cast<int32_t>(out.weight_values.size());
      leaf.value = w;
    }
    ++count;
    out.weight_targets.push_back(static_cast<int32_t>(target));
    out.weight_values.push_back(w);
  }

  out.has_missing_tracks = std::any_of(s.missing_tracks_true.begin(), s.missing_tracks_true.end(),
                                       [](int64_t v) { return v != 0; });
  bool first = true;
  for (const TreeNode<T>& node : out.nodes) {
    if (node.mode == NodeMode::kLeaf) continue;
    if (first) {
      out.common_mode = node.mode;
      first = false;
    } else if (node.mode != out.common_mode) {
      out.common_mode = NodeMode::kMember;  // mixed: general path
    }
  }
  return out;
}

template Result<CompiledTrees<float>> CompileTrees<float>(const TreeEnsembleSpec&, int64_t);
template Result<CompiledTrees<double>> CompileTrees<double>(const TreeEnsembleSpec&, int64_t);

Result<TreeEnsembleSpec> ConvertTreeEnsembleV5(const TreeEnsembleV5Attrs& a) {
  const size_t n = a.nodes_featureids.size();
  if (a.nodes_modes.size() != n || a.nodes_splits.size() != n || a.nodes_truenodeids.size() != n ||
      a.nodes_trueleafs.size() != n || a.nodes_falsenodeids.size() != n ||
      a.nodes_falseleafs.size() != n ||
      (!a.nodes_missing_value_tracks_true.empty() &&
       a.nodes_missing_value_tracks_true.size() != n)) {
    return InvalidInput("the nodes_* attributes must all have the same length");
  }
  const size_t nl = a.leaf_targetids.size();
  if (a.leaf_weights.size() != nl) {
    return InvalidInput("leaf_targetids and leaf_weights must have the same length");
  }
  if (a.tree_roots.empty()) return InvalidInput("tree_roots is empty");

  std::vector<std::vector<double>> sets(n);
  size_t cur = 0;
  for (size_t i = 0; i < n; ++i) {
    if (a.nodes_modes[i] < 0 || a.nodes_modes[i] > 6) {
      return InvalidInput("nodes_modes[" + std::to_string(i) +
                          "] = " + std::to_string(a.nodes_modes[i]) + " is not a valid mode (0-6)");
    }
    if (a.nodes_modes[i] != static_cast<int64_t>(NodeMode::kMember)) continue;
    while (cur < a.membership_values.size() && !std::isnan(a.membership_values[cur])) {
      sets[i].push_back(a.membership_values[cur++]);
    }
    ++cur;
  }

  TreeEnsembleSpec out;
  const size_t cap =
      std::min<size_t>(size_t{1} << 26, std::max<size_t>(size_t{1} << 20, 16 * (n + nl)));
  struct Item {
    int64_t src;
    bool leaf;
    int64_t parent;  // spec index of the parent, -1 for a root
    bool true_side;
  };
  std::vector<Item> stack;
  for (size_t t = 0; t < a.tree_roots.size(); ++t) {
    const int64_t root = a.tree_roots[t];
    if (root < 0 || static_cast<size_t>(root) >= n) {
      return InvalidInput("tree_roots[" + std::to_string(t) + "] = " + std::to_string(root) +
                          " is not a node index");
    }
    const bool root_leaf = a.nodes_falsenodeids[root] == a.nodes_truenodeids[root];
    int64_t next_id = 0;
    stack.push_back({root, root_leaf, -1, false});
    while (!stack.empty()) {
      const Item it = stack.back();
      stack.pop_back();
      if (out.tree_ids.size() >= cap) {
        return InvalidInput("TreeEnsemble expands to more than " + std::to_string(cap) +
                            " nodes (shared subtrees or a cycle)");
      }
      const int64_t id = next_id++;
      const int64_t k = static_cast<int64_t>(out.tree_ids.size());
      if (it.parent >= 0) (it.true_side ? out.true_ids : out.false_ids)[it.parent] = id;
      out.tree_ids.push_back(static_cast<int64_t>(t));
      out.node_ids.push_back(id);
      out.true_ids.push_back(0);
      out.false_ids.push_back(0);
      out.member_values.emplace_back();
      if (it.leaf) {
        if (it.src < 0 || static_cast<size_t>(it.src) >= nl) {
          return InvalidInput("leaf index " + std::to_string(it.src) +
                              " is outside leaf_weights (size " + std::to_string(nl) + ")");
        }
        out.feature_ids.push_back(0);
        out.modes.push_back(NodeMode::kLeaf);
        out.values.push_back(0);
        out.missing_tracks_true.push_back(0);
        out.weight_tree_ids.push_back(static_cast<int64_t>(t));
        out.weight_node_ids.push_back(id);
        out.weight_targets.push_back(a.leaf_targetids[it.src]);
        out.weight_values.push_back(a.leaf_weights[it.src]);
        continue;
      }
      if (it.src < 0 || static_cast<size_t>(it.src) >= n) {
        return InvalidInput("node index " + std::to_string(it.src) + " is outside nodes_* (size " +
                            std::to_string(n) + ")");
      }
      const size_t i = static_cast<size_t>(it.src);
      const auto mode = static_cast<NodeMode>(a.nodes_modes[i]);
      out.feature_ids.push_back(a.nodes_featureids[i]);
      out.modes.push_back(mode);
      out.values.push_back(mode == NodeMode::kMember ? 0.0 : a.nodes_splits[i]);
      out.missing_tracks_true.push_back(
          a.nodes_missing_value_tracks_true.empty() ? 0 : a.nodes_missing_value_tracks_true[i]);
      if (mode == NodeMode::kMember) out.member_values[k] = sets[i];
      stack.push_back({a.nodes_falsenodeids[i], a.nodes_falseleafs[i] != 0, k, false});
      stack.push_back({a.nodes_truenodeids[i], a.nodes_trueleafs[i] != 0, k, true});
    }
  }
  return out;
}

}  // namespace ml

namespace {

using ml::CompiledTrees;
using ml::NodeMode;
using ml::TreeNode;

enum class Aggregate { kAverage, kSum, kMin, kMax };

template <typename A>
struct Score {
  A score;
  uint8_t has;
};

// ---- traversal ---------------------------------------------------------------------------

template <NodeMode M, typename C>
inline bool Compare(C v, C t) {
  if constexpr (M == NodeMode::kLeq) return v <= t;
  if constexpr (M == NodeMode::kLt) return v < t;
  if constexpr (M == NodeMode::kGte) return v >= t;
  if constexpr (M == NodeMode::kGt) return v > t;
  if constexpr (M == NodeMode::kEq) return v == t;
  if constexpr (M == NodeMode::kNeq) return v != t;
  return false;
}

// Comparison type: the wider of the input and threshold types.
template <typename X, typename T>
using CmpType =
    std::conditional_t<std::is_same_v<X, double> || std::is_same_v<T, double>, double, float>;

// All branches share mode M and there are no membership nodes.
template <NodeMode M, bool kMissing, typename X, typename T>
const TreeNode<T>* FindLeafSameMode(const CompiledTrees<T>& trees, int32_t root, const X* x) {
  using C = CmpType<X, T>;
  const TreeNode<T>* base = trees.nodes.data();
  const TreeNode<T>* n = base + root;
  while (n->mode != NodeMode::kLeaf) {
    const C v = static_cast<C>(x[n->feature]);
    bool cond = Compare<M, C>(v, static_cast<C>(n->value));
    if constexpr (kMissing) cond = cond || (n->missing_true && std::isnan(v));
    n = cond ? base + n->index : n + 1;
  }
  return n;
}

template <typename X, typename T>
const TreeNode<T>* FindLeafGeneral(const CompiledTrees<T>& trees, int32_t root, const X* x) {
  using C = CmpType<X, T>;
  const TreeNode<T>* base = trees.nodes.data();
  const TreeNode<T>* n = base + root;
  while (n->mode != NodeMode::kLeaf) {
    const C v = static_cast<C>(x[n->feature]);
    const C t = static_cast<C>(n->value);
    bool cond = false;
    switch (n->mode) {
      case NodeMode::kLeq:
        cond = v <= t;
        break;
      case NodeMode::kLt:
        cond = v < t;
        break;
      case NodeMode::kGte:
        cond = v >= t;
        break;
      case NodeMode::kGt:
        cond = v > t;
        break;
      case NodeMode::kEq:
        cond = v == t;
        break;
      case NodeMode::kNeq:
        cond = v != t;
        break;
      case NodeMode::kMember: {
        const auto& set = trees.member_sets[trees.member_set_of_node[n - base]];
        for (const T& m : set) {
          if (static_cast<C>(m) == v) {
            cond = true;
            break;
          }
        }
        break;
      }
      case NodeMode::kLeaf:
        break;
    }
    if (!cond && n->missing_true && std::isnan(v)) cond = true;
    n = cond ? base + n->index : n + 1;
  }
  return n;
}

// Finds the leaf of `rows` rows (stride f) in the tree at `root`.
template <typename X, typename T>
using BlockFinder = void (*)(const CompiledTrees<T>&, int32_t, const X*, int64_t, int64_t,
                             const TreeNode<T>**);

template <typename X, typename T>
void FindLeavesGeneral(const CompiledTrees<T>& trees, int32_t root, const X* x, int64_t f,
                       int64_t rows, const TreeNode<T>** leaves) {
  for (int64_t r = 0; r < rows; ++r) leaves[r] = FindLeafGeneral<X, T>(trees, root, x + r * f);
}

// Walks kLanes rows through one tree in lockstep with branch-free steps (a row at a leaf
// stays there), so the lanes' node loads overlap instead of each row paying for its
// mispredicted branches one after the other.
template <NodeMode M, bool kMissing, typename X, typename T>
void FindLeavesSameMode(const CompiledTrees<T>& trees, int32_t root, const X* x, int64_t f,
                        int64_t rows, const TreeNode<T>** leaves) {
  using C = CmpType<X, T>;
  constexpr int kLanes = 8;
  const TreeNode<T>* base = trees.nodes.data();
  int64_t r0 = 0;
  if (f > 0) {
    for (; r0 + kLanes <= rows; r0 += kLanes) {
      int32_t idx[kLanes];
      for (int l = 0; l < kLanes; ++l) idx[l] = root;
      bool active = true;
      while (active) {
        active = false;
        for (int l = 0; l < kLanes; ++l) {
          const TreeNode<T>* n = base + idx[l];
          const C v = static_cast<C>(x[(r0 + l) * f + n->feature]);
          bool cond = Compare<M, C>(v, static_cast<C>(n->value));
          if constexpr (kMissing) cond = cond | (n->missing_true & std::isnan(v));
          const bool leaf = n->mode == NodeMode::kLeaf;
          // Selects by masks: compilers turn `cond ? a : b` with a load into a branch here.
          const int32_t on_false = idx[l] + 1;
          const int32_t next = on_false ^ ((on_false ^ n->index) & -static_cast<int32_t>(cond));
          idx[l] = next ^ ((next ^ idx[l]) & -static_cast<int32_t>(leaf));
          active |= !leaf;
        }
      }
      for (int l = 0; l < kLanes; ++l) leaves[r0 + l] = base + idx[l];
    }
  }
  for (; r0 < rows; ++r0) {
    leaves[r0] = FindLeafSameMode<M, kMissing, X, T>(trees, root, x + r0 * f);
  }
}

template <typename X, typename T>
BlockFinder<X, T> ChooseFinder(const CompiledTrees<T>& trees) {
  const bool miss = trees.has_missing_tracks;
  switch (trees.common_mode) {
    case NodeMode::kLeq:
      return miss ? FindLeavesSameMode<NodeMode::kLeq, true, X, T>
                  : FindLeavesSameMode<NodeMode::kLeq, false, X, T>;
    case NodeMode::kLt:
      return miss ? FindLeavesSameMode<NodeMode::kLt, true, X, T>
                  : FindLeavesSameMode<NodeMode::kLt, false, X, T>;
    case NodeMode::kGte:
      return miss ? FindLeavesSameMode<NodeMode::kGte, true, X, T>
                  : FindLeavesSameMode<NodeMode::kGte, false, X, T>;
    case NodeMode::kGt:
      return miss ? FindLeavesSameMode<NodeMode::kGt, true, X, T>
                  : FindLeavesSameMode<NodeMode::kGt, false, X, T>;
    default:
      return FindLeavesGeneral<X, T>;
  }
}

// ---- post transform (onnxruntime's write_scores) -----------------------------------------

// Writes `count` scores (1 or the number of columns) of one row to z. A score that was never
// set reads as 0. `add_second_class` is onnxruntime's code for expanding one binary score to
// two columns (-1: none).
template <typename A, typename Out>
void WriteScores(const Score<A>* s, int64_t count, PostTransform post, Out* z,
                 int add_second_class) {
  auto val = [&](int64_t i) -> A { return s[i].has ? s[i].score : A(0); };
  if (count >= 2) {
    switch (post) {
      case PostTransform::kProbit:
        for (int64_t i = 0; i < count; ++i)
          z[i] = static_cast<Out>(MlProbit(static_cast<float>(val(i))));
        break;
      case PostTransform::kLogistic:
        for (int64_t i = 0; i < count; ++i) {
          z[i] = static_cast<Out>(MlLogistic(static_cast<float>(val(i))));
        }
        break;
      case PostTransform::kSoftmax:
      case PostTransform::kSoftmaxZero: {
        float buf[64];
        std::vector<float> heap;
        float* f = buf;
        if (count > 64) {
          heap.resize(static_cast<size_t>(count));
          f = heap.data();
        }
        for (int64_t i = 0; i < count; ++i) f[i] = static_cast<float>(val(i));
        if (post == PostTransform::kSoftmax) {
          MlSoftmax(f, count);
        } else {
          MlSoftmaxZero(f, count);
        }
        for (int64_t i = 0; i < count; ++i) z[i] = static_cast<Out>(f[i]);
        break;
      }
      case PostTransform::kNone:
        for (int64_t i = 0; i < count; ++i) z[i] = static_cast<Out>(val(i));
        break;
    }
    return;
  }
  if (count != 1) return;
  const A v = val(0);
  if (post == PostTransform::kProbit) {
    z[0] = static_cast<Out>(MlProbit(static_cast<float>(v)));
    return;
  }
  switch (add_second_class) {
    case 0:
    case 1:
      z[0] = static_cast<Out>(A(1) - v);
      z[1] = static_cast<Out>(v);
      break;
    case 2:
    case 3:
      if (post == PostTransform::kLogistic) {
        z[0] = static_cast<Out>(MlLogistic(static_cast<float>(-v)));
        z[1] = static_cast<Out>(MlLogistic(static_cast<float>(v)));
      } else {
        z[0] = static_cast<Out>(-v);
        z[1] = static_cast<Out>(v);
      }
      break;
    default:
      z[0] = static_cast<Out>(v);
      break;
  }
}

// ---- the kernel ----------------------------------------------------------------------------

enum class TreeOp { kRegressor, kClassifier, kEnsembleV5 };

struct TreeConfig {
  TreeOp op = TreeOp::kRegressor;
  Aggregate aggregate = Aggregate::kSum;
  PostTransform post = PostTransform::kNone;
  std::vector<double> base_values;
  // Classifier: int64 labels, or indices into string_labels.
  std::vector<int64_t> class_labels;
  std::vector<std::string> string_labels;
  bool binary_case = false;
  bool weights_all_positive = true;
};

// Rows evaluated together, tree by tree (onnxruntime uses 128 too): the nodes of one tree
// stay in cache while a block of rows walks it.
constexpr int64_t kRowBlock = 128;

class TreeEnsembleKernel final : public Kernel {
 public:
  TreeEnsembleKernel(TreeConfig cfg, std::unique_ptr<CompiledTrees<float>> ft,
                     std::unique_ptr<CompiledTrees<double>> dt)
      : cfg_(std::move(cfg)), ft_(std::move(ft)), dt_(std::move(dt)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("the tree ensemble needs an input");
    int64_t n = 0, f = 0;
    RETURN_IF_ERROR(MlRowsAndFeatures(*x, "tree ensemble", &n, &f));
    const int64_t max_feature = ft_ ? ft_->max_feature : dt_->max_feature;
    if (max_feature >= f) {
      return InvalidInput("the model uses feature " + std::to_string(max_feature) +
                          " but the input has " + std::to_string(f) + " features");
    }
    const DType dt = x->dtype();
    if (cfg_.op == TreeOp::kEnsembleV5 && dt != DType::kFloat32 && dt != DType::kFloat64) {
      return InvalidInput("TreeEnsemble input must be float or double, got " +
                          std::string(DTypeName(dt)));
    }
    switch (dt) {
      case DType::kFloat32:
        return ft_ ? Eval<float>(ctx, x->data<float>(), n, f, *ft_)
                   : Eval<float>(ctx, x->data<float>(), n, f, *dt_);
      case DType::kFloat64:
        return ft_ ? Eval<double>(ctx, x->data<double>(), n, f, *ft_)
                   : Eval<double>(ctx, x->data<double>(), n, f, *dt_);
      case DType::kInt32:
        return EvalConverted<int32_t>(ctx, *x, n, f);
      case DType::kInt64:
        return EvalConverted<int64_t>(ctx, *x, n, f);
      default:
        return InvalidInput("tree ensemble input must be float, double, int32 or int64, got " +
                            std::string(DTypeName(dt)));
    }
  }

 private:
  // Integer inputs are converted to the threshold type first (onnxruntime compares an int64
  // with a float threshold after the usual conversion to float).
  template <typename I>
  Status EvalConverted(KernelContext& ctx, const Tensor& x, int64_t n, int64_t f) const {
    const I* p = x.data<I>();
    if (ft_) {
      std::vector<float> buf(static_cast<size_t>(x.numel()));
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(p[i]);
      return Eval<float>(ctx, buf.data(), n, f, *ft_);
    }
    std::vector<double> buf(static_cast<size_t>(x.numel()));
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<double>(p[i]);
    return Eval<double>(ctx, buf.data(), n, f, *dt_);
  }

  template <typename X, typename T>
  Status Eval(KernelContext& ctx, const X* x, int64_t n, int64_t f,
              const CompiledTrees<T>& trees) const {
    if (cfg_.op == TreeOp::kEnsembleV5 && std::is_same_v<X, double>) {
      return EvalTyped<X, T, double>(ctx, x, n, f, trees);
    }
    return EvalTyped<X, T, float>(ctx, x, n, f, trees);
  }

  template <typename X, typename T, typename Out>
  Status EvalTyped(KernelContext& ctx, const X* x, int64_t n, int64_t f,
                   const CompiledTrees<T>& trees) const {
    using A = CmpType<X, T>;
    const int64_t targets = trees.n_targets;
    ASSIGN_OR_RETURN(Tensor z, NewTensor(EngineOutDType<Out>(), {n, targets}));
    Tensor labels;
    const bool classifier = cfg_.op == TreeOp::kClassifier;
    if (classifier) {
      ASSIGN_OR_RETURN(labels,
                       NewTensor(cfg_.string_labels.empty() ? DType::kInt64 : DType::kString, {n}));
    }
    // Per-thread scratch reused across runs (no allocation per inference once warm); a
    // batch beyond kMaxReusedRows gets its own buffer so one huge request does not pin
    // memory in the thread.
    constexpr int64_t kMaxReusedRows = int64_t{1} << 16;
    thread_local std::vector<int64_t> reused_label_idx;
    std::vector<int64_t> own_label_idx;
    std::vector<int64_t>& label_idx = n <= kMaxReusedRows ? reused_label_idx : own_label_idx;
    label_idx.resize(classifier ? static_cast<size_t>(n) : 0);
    Out* zd = z.data<Out>();
    const BlockFinder<X, T> find = ChooseFinder<X, T>(trees);
    const TreeNode<T>* leaves[kRowBlock];
    const int64_t block = std::min(n, kRowBlock);
    thread_local std::vector<Score<A>> scores;  // block * targets: bounded by the model
    scores.assign(static_cast<size_t>(block * targets), Score<A>{});
    const size_t n_trees = trees.roots.size();
    const A origin =
        cfg_.base_values.size() == 1 ? static_cast<A>(static_cast<T>(cfg_.base_values[0])) : A(0);

    for (int64_t b0 = 0; b0 < n; b0 += kRowBlock) {
      const int64_t b1 = std::min(n, b0 + kRowBlock);
      std::fill(scores.begin(), scores.end(), Score<A>{A(0), 0});
      if (targets == 1) {
        for (int32_t root : trees.roots) {
          find(trees, root, x + b0 * f, f, b1 - b0, leaves);
          for (int64_t i = b0; i < b1; ++i) {
            const TreeNode<T>* leaf = leaves[i - b0];
            Score<A>& s = scores[static_cast<size_t>(i - b0)];
            const A w = static_cast<A>(leaf->value);
            switch (cfg_.aggregate) {
              case Aggregate::kSum:
              case Aggregate::kAverage:
                s.score += w;
                break;
              case Aggregate::kMin:
                s.score = (!s.has || w < s.score) ? w : s.score;
                s.has = 1;
                break;
              case Aggregate::kMax:
                s.score = (!s.has || w > s.score) ? w : s.score;
                s.has = 1;
                break;
            }
          }
        }
        for (int64_t i = b0; i < b1; ++i) {
          Score<A>& s = scores[static_cast<size_t>(i - b0)];
          A v;
          switch (cfg_.aggregate) {
            case Aggregate::kSum:
              v = s.score + origin;
              break;
            case Aggregate::kAverage:
              v = s.score / static_cast<A>(n_trees) + origin;
              break;
            default:
              v = s.has ? s.score + origin : origin;
              break;
          }
          if (classifier) {
            // One class label: onnxruntime's single-score classifier path (label 1 or 0).
            label_idx[i] = v > 0 ? 1 : 0;
          }
          zd[i] = cfg_.post == PostTransform::kProbit
                      ? static_cast<Out>(MlProbit(static_cast<float>(v)))
                      : static_cast<Out>(v);
        }
        continue;
      }
      const int32_t* wt = trees.weight_targets.data();
      const T* wv = trees.weight_values.data();
      for (int32_t root : trees.roots) {
        find(trees, root, x + b0 * f, f, b1 - b0, leaves);
        for (int64_t i = b0; i < b1; ++i) {
          const TreeNode<T>* leaf = leaves[i - b0];
          Score<A>* row = scores.data() + (i - b0) * targets;
          const int32_t end = leaf->index + trees.weight_count[leaf - trees.nodes.data()];
          if (cfg_.aggregate == Aggregate::kSum || cfg_.aggregate == Aggregate::kAverage) {
            for (int32_t k = leaf->index; k < end; ++k) {
              row[wt[k]].score += static_cast<A>(wv[k]);
              row[wt[k]].has = 1;
            }
          } else {
            const bool is_min = cfg_.aggregate == Aggregate::kMin;
            for (int32_t k = leaf->index; k < end; ++k) {
              Score<A>& s = row[wt[k]];
              const A w = static_cast<A>(wv[k]);
              s.score = (!s.has || (is_min ? w < s.score : w > s.score)) ? w : s.score;
              s.has = 1;
            }
          }
        }
      }
      for (int64_t i = b0; i < b1; ++i) {
        Score<A>* row = scores.data() + (i - b0) * targets;
        Out* zr = zd + i * targets;
        if (classifier) {
          label_idx[i] = FinalizeClassifier<T>(row, targets, zr);
        } else {
          FinalizeRegressor<T>(row, targets, n_trees, zr);
        }
      }
    }

    if (classifier) {
      if (cfg_.string_labels.empty()) {
        std::copy(label_idx.begin(), label_idx.end(), labels.data<int64_t>());
      } else {
        for (int64_t i = 0; i < n; ++i) {
          labels.strings()[i] = cfg_.string_labels[static_cast<size_t>(label_idx[i])];
        }
      }
      *ctx.outputs[0] = std::move(labels);
      if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(z);
    } else {
      *ctx.outputs[0] = std::move(z);
    }
    return Status::Ok();
  }

  template <typename Out>
  static constexpr DType EngineOutDType() {
    return std::is_same_v<Out, double> ? DType::kFloat64 : DType::kFloat32;
  }

  template <typename T, typename A, typename Out>
  void FinalizeRegressor(Score<A>* s, int64_t targets, size_t n_trees, Out* z) const {
    const auto& base = cfg_.base_values;
    const bool use_base = base.size() == static_cast<size_t>(targets);
    auto b = [&](int64_t t) { return static_cast<A>(static_cast<T>(base[t])); };
    switch (cfg_.aggregate) {
      case Aggregate::kSum:
        if (use_base) {
          for (int64_t t = 0; t < targets; ++t) s[t].score = s[t].score + b(t);
        }
        break;
      case Aggregate::kAverage:
        for (int64_t t = 0; t < targets; ++t) {
          s[t].score = s[t].score / static_cast<A>(n_trees) + (use_base ? b(t) : A(0));
        }
        break;
      case Aggregate::kMin:
      case Aggregate::kMax:
        for (int64_t t = 0; t < targets; ++t) {
          s[t].score = (use_base ? b(t) : A(0)) + (s[t].has ? s[t].score : A(0));
        }
        break;
    }
    WriteScores(s, targets, cfg_.post, z, -1);
  }

  // Returns the label (an int64 label, or an index into string_labels).
  template <typename T, typename A, typename Out>
  int64_t FinalizeClassifier(Score<A>* s, int64_t classes, Out* z) const {
    const auto& base = cfg_.base_values;
    auto b = [&](size_t k) { return static_cast<A>(static_cast<T>(base[k])); };
    int add = -1;
    int64_t label = 0;
    int64_t count = classes;
    if (classes > 2) {
      for (size_t k = 0; k < base.size(); ++k) {
        if (!s[k].has) {
          s[k].has = 1;
          s[k].score = b(k);
        } else {
          s[k].score += b(k);
        }
      }
      int64_t best = -1;
      A best_w = 0;
      for (int64_t k = 0; k < classes; ++k) {
        if (s[k].has && (best == -1 || s[k].score > best_w)) {
          best = k;
          best_w = s[k].score;
        }
      }
      label = cfg_.class_labels[static_cast<size_t>(best < 0 ? 0 : best)];
    } else {
      if (base.size() == 2) {
        if (s[1].has) {
          // onnxruntime: base_values[0] unused, class 1 = base[1] + score of class 0.
          s[1].score = b(1) + s[0].score;
          s[0].score = -s[1].score;
          s[1].has = 1;
        } else {
          s[1].score += b(1);
          s[0].score += b(0);
        }
      } else if (base.size() == 1) {
        s[0].score += b(0);
        if (!s[1].has) count = 1;
      } else if (base.empty()) {
        add = 3;
        if (!s[1].has) count = 1;
      }
      const bool use1 = count == 2 && s[1].has;
      const A pos = use1 ? s[1].score : (s[0].has ? s[0].score : A(0));
      if (cfg_.binary_case) {
        if (cfg_.weights_all_positive) {
          add = pos > 0.5 ? 0 : 1;
          label = cfg_.class_labels[pos > 0.5 ? 1 : 0];
        } else {
          add = pos > 0 ? 2 : 3;
          label = cfg_.class_labels[pos > 0 ? 1 : 0];
        }
      } else {
        label = pos > 0 ? 1 : 0;  // onnxruntime's positive/negative label, not class_labels
      }
    }
    WriteScores(s, count, cfg_.post, z, add);
    return label;
  }

  TreeConfig cfg_;
  std::unique_ptr<CompiledTrees<float>> ft_;   // thresholds given as floats
  std::unique_ptr<CompiledTrees<double>> dt_;  // thresholds given as doubles
};

Result<Aggregate> ParseAggregate(const std::string& s) {
  if (s == "SUM") return Aggregate::kSum;
  if (s == "AVERAGE") return Aggregate::kAverage;
  if (s == "MIN") return Aggregate::kMin;
  if (s == "MAX") return Aggregate::kMax;
  return InvalidInput("unknown aggregate_function '" + s + "'");
}

// Compiles `spec` with float thresholds unless the model gave doubles.
Result<KernelPtr> BuildTreeKernel(TreeConfig cfg, const ml::TreeEnsembleSpec& spec,
                                  int64_t n_targets, bool use_double) {
  if (use_double) {
    ASSIGN_OR_RETURN(CompiledTrees<double> t, ml::CompileTrees<double>(spec, n_targets));
    return KernelPtr(new TreeEnsembleKernel(std::move(cfg), nullptr,
                                            std::make_unique<CompiledTrees<double>>(std::move(t))));
  }
  ASSIGN_OR_RETURN(CompiledTrees<float> t, ml::CompileTrees<float>(spec, n_targets));
  return KernelPtr(new TreeEnsembleKernel(
      std::move(cfg), std::make_unique<CompiledTrees<float>>(std::move(t)), nullptr));
}

// Reads the node-list attributes shared by TreeEnsembleRegressor and TreeEnsembleClassifier.
// `prefix` is "target" or "class"; `ids` is "target_ids" or "class_ids".
Status ReadV3Spec(const onnx::NodeProto& node, const std::string& prefix, const std::string& ids,
                  ml::TreeEnsembleSpec* spec, bool* use_double, std::vector<double>* weights_raw) {
  NodeAttrs attrs(node);
  ASSIGN_OR_RETURN(spec->tree_ids, attrs.Ints("nodes_treeids"));
  ASSIGN_OR_RETURN(spec->node_ids, attrs.Ints("nodes_nodeids"));
  ASSIGN_OR_RETURN(spec->feature_ids, attrs.Ints("nodes_featureids"));
  ASSIGN_OR_RETURN(spec->true_ids, attrs.Ints("nodes_truenodeids"));
  ASSIGN_OR_RETURN(spec->false_ids, attrs.Ints("nodes_falsenodeids"));
  ASSIGN_OR_RETURN(spec->missing_tracks_true, attrs.Ints("nodes_missing_value_tracks_true"));
  ASSIGN_OR_RETURN(std::vector<std::string> modes, attrs.Strings("nodes_modes"));
  spec->modes.reserve(modes.size());
  for (const std::string& m : modes) {
    ASSIGN_OR_RETURN(ml::NodeMode mode, ml::ParseNodeMode(m));
    spec->modes.push_back(mode);
  }
  ASSIGN_OR_RETURN(RealList values, ReadRealList(node, "nodes_values", "nodes_values_as_tensor"));
  spec->values = std::move(values.values);
  ASSIGN_OR_RETURN(spec->weight_tree_ids, attrs.Ints(prefix + "_treeids"));
  ASSIGN_OR_RETURN(spec->weight_node_ids, attrs.Ints(prefix + "_nodeids"));
  ASSIGN_OR_RETURN(spec->weight_targets, attrs.Ints(ids));
  ASSIGN_OR_RETURN(RealList weights,
                   ReadRealList(node, prefix + "_weights", prefix + "_weights_as_tensor"));
  *weights_raw = weights.values;
  spec->weight_values = std::move(weights.values);
  *use_double = values.is_double || weights.is_double;
  return Status::Ok();
}

}  // namespace

Result<KernelPtr> MakeTreeEnsembleRegressor(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  TreeConfig cfg;
  cfg.op = TreeOp::kRegressor;
  ASSIGN_OR_RETURN(std::string agg, attrs.String("aggregate_function", "SUM"));
  ASSIGN_OR_RETURN(cfg.aggregate, ParseAggregate(agg));
  ASSIGN_OR_RETURN(std::string post, attrs.String("post_transform", "NONE"));
  ASSIGN_OR_RETURN(cfg.post, ParsePostTransform(post));
  ASSIGN_OR_RETURN(int64_t n_targets, attrs.Int("n_targets", 0));
  if (n_targets <= 0) {
    return InvalidInput("TreeEnsembleRegressor needs a positive n_targets, got " +
                        std::to_string(n_targets));
  }
  ASSIGN_OR_RETURN(RealList base, ReadRealList(init.node, "base_values", "base_values_as_tensor"));
  cfg.base_values = std::move(base.values);
  ml::TreeEnsembleSpec spec;
  bool use_double = false;
  std::vector<double> raw;
  RETURN_IF_ERROR(ReadV3Spec(init.node, "target", "target_ids", &spec, &use_double, &raw));
  return BuildTreeKernel(std::move(cfg), spec, n_targets, use_double || base.is_double);
}

Result<KernelPtr> MakeTreeEnsembleClassifier(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  TreeConfig cfg;
  cfg.op = TreeOp::kClassifier;
  ASSIGN_OR_RETURN(std::string post, attrs.String("post_transform", "NONE"));
  ASSIGN_OR_RETURN(cfg.post, ParsePostTransform(post));
  ASSIGN_OR_RETURN(RealList base, ReadRealList(init.node, "base_values", "base_values_as_tensor"));
  cfg.base_values = std::move(base.values);
  ASSIGN_OR_RETURN(std::vector<int64_t> ints, attrs.Ints("classlabels_int64s"));
  ASSIGN_OR_RETURN(cfg.string_labels, attrs.Strings("classlabels_strings"));
  if (!cfg.string_labels.empty()) {
    for (size_t i = 0; i < cfg.string_labels.size(); ++i) {
      cfg.class_labels.push_back(static_cast<int64_t>(i));
    }
  } else {
    cfg.class_labels = std::move(ints);
  }
  const int64_t classes = static_cast<int64_t>(cfg.class_labels.size());
  if (classes < 2) {
    return Unsupported("TreeEnsembleClassifier needs at least two class labels, got " +
                       std::to_string(classes));
  }
  if (classes > 2 && static_cast<int64_t>(cfg.base_values.size()) > classes) {
    return InvalidInput("TreeEnsembleClassifier has " + std::to_string(cfg.base_values.size()) +
                        " base_values for " + std::to_string(classes) + " classes");
  }
  if (init.node.output.empty()) return InvalidInput("TreeEnsembleClassifier needs outputs");
  ml::TreeEnsembleSpec spec;
  bool use_double = false;
  std::vector<double> raw;
  RETURN_IF_ERROR(ReadV3Spec(init.node, "class", "class_ids", &spec, &use_double, &raw));
  std::unordered_set<int64_t> distinct(spec.weight_targets.begin(), spec.weight_targets.end());
  cfg.binary_case = classes == 2 && distinct.size() == 1;
  cfg.weights_all_positive = std::none_of(raw.begin(), raw.end(), [](double w) { return w < 0; });
  return BuildTreeKernel(std::move(cfg), spec, classes, use_double || base.is_double);
}

Result<KernelPtr> MakeTreeEnsemble(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  TreeConfig cfg;
  cfg.op = TreeOp::kEnsembleV5;
  ASSIGN_OR_RETURN(int64_t agg, attrs.Int("aggregate_function", 1));
  // 0 AVERAGE, 1 SUM, 2 MIN, 3 MAX.
  switch (agg) {
    case 0:
      cfg.aggregate = Aggregate::kAverage;
      break;
    case 1:
      cfg.aggregate = Aggregate::kSum;
      break;
    case 2:
      cfg.aggregate = Aggregate::kMin;
      break;
    case 3:
      cfg.aggregate = Aggregate::kMax;
      break;
    default:
      return InvalidInput("unknown aggregate_function " + std::to_string(agg));
  }
  ASSIGN_OR_RETURN(int64_t post, attrs.Int("post_transform", 0));
  // onnxruntime (1.23) reads 1 as LOGISTIC and 2 as SOFTMAX (the ONNX text says the reverse);
  // we follow onnxruntime so converted models score the same.
  switch (post) {
    case 0:
      cfg.post = PostTransform::kNone;
      break;
    case 1:
      cfg.post = PostTransform::kLogistic;
      break;
    case 2:
      cfg.post = PostTransform::kSoftmax;
      break;
    case 3:
      cfg.post = PostTransform::kSoftmaxZero;
      break;
    case 4:
      cfg.post = PostTransform::kProbit;
      break;
    default:
      return InvalidInput("unknown post_transform " + std::to_string(post));
  }
  ASSIGN_OR_RETURN(int64_t n_targets, attrs.Int("n_targets", 0));
  if (n_targets <= 0) {
    return InvalidInput("TreeEnsemble needs a positive n_targets, got " +
                        std::to_string(n_targets));
  }
  ml::TreeEnsembleV5Attrs a;
  ASSIGN_OR_RETURN(a.tree_roots, attrs.Ints("tree_roots"));
  ASSIGN_OR_RETURN(a.nodes_featureids, attrs.Ints("nodes_featureids"));
  ASSIGN_OR_RETURN(a.nodes_truenodeids, attrs.Ints("nodes_truenodeids"));
  ASSIGN_OR_RETURN(a.nodes_trueleafs, attrs.Ints("nodes_trueleafs"));
  ASSIGN_OR_RETURN(a.nodes_falsenodeids, attrs.Ints("nodes_falsenodeids"));
  ASSIGN_OR_RETURN(a.nodes_falseleafs, attrs.Ints("nodes_falseleafs"));
  ASSIGN_OR_RETURN(a.nodes_missing_value_tracks_true,
                   attrs.Ints("nodes_missing_value_tracks_true"));
  ASSIGN_OR_RETURN(a.leaf_targetids, attrs.Ints("leaf_targetids"));
  ASSIGN_OR_RETURN(std::optional<Tensor> modes, TensorAttr(init.node, "nodes_modes"));
  if (modes) {
    if (modes->dtype() != DType::kUInt8) {
      return InvalidInput("TreeEnsemble nodes_modes must be a uint8 tensor");
    }
    a.nodes_modes.assign(modes->data<uint8_t>(), modes->data<uint8_t>() + modes->numel());
  }
  ASSIGN_OR_RETURN(RealList splits, ReadRealList(init.node, "", "nodes_splits"));
  ASSIGN_OR_RETURN(RealList weights, ReadRealList(init.node, "", "leaf_weights"));
  ASSIGN_OR_RETURN(RealList members, ReadRealList(init.node, "", "membership_values"));
  a.nodes_splits = std::move(splits.values);
  a.leaf_weights = std::move(weights.values);
  a.membership_values = std::move(members.values);
  ASSIGN_OR_RETURN(ml::TreeEnsembleSpec spec, ml::ConvertTreeEnsembleV5(a));
  return BuildTreeKernel(std::move(cfg), spec, n_targets,
                         splits.is_double || weights.is_double || members.is_double);
}

}  // namespace serveml::engine
