// Tree ensembles of the ONNX-ML domain (TreeEnsembleClassifier, TreeEnsembleRegressor and
// TreeEnsemble), compiled at load into one flat, cache-friendly node array per model.
//
// Semantics follow onnxruntime (tree_ensemble_common.h / tree_ensemble_aggregator.h):
// - trees are laid out depth first with the false child always right after its parent, so a
//   node stores only its true child; a node reached twice through true branches (the chains of
//   BRANCH_EQ nodes LightGBM converters emit) is shared, never copied;
// - a tree starts at the first node of every run of equal nodes_treeids in attribute order;
// - comparisons happen in the wider of the input and threshold types (float input and float
//   thresholds compare in float, exactly as onnxruntime does);
// - a NaN feature follows the true branch only when nodes_missing_value_tracks_true is 1;
// - weights attached to non-leaf nodes are ignored; a leaf without weights contributes its
//   nodes_values entry in the single-target path and nothing in the multi-target path.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace serveml::engine::ml {

// Branch modes. The values 0-6 are TreeEnsemble (opset 5) nodes_modes; kLeaf is ours.
enum class NodeMode : uint8_t {
  kLeq = 0,
  kLt = 1,
  kGte = 2,
  kGt = 3,
  kEq = 4,
  kNeq = 5,
  kMember = 6,
  kLeaf = 7,
};

// Parses "BRANCH_LEQ" ... "LEAF" (TreeEnsembleRegressor/Classifier nodes_modes).
Result<NodeMode> ParseNodeMode(const std::string& s);

// An ensemble in the node-list form of TreeEnsembleRegressor/Classifier: parallel arrays, one
// entry per node, and parallel arrays of leaf weights. TreeEnsemble (opset 5) is converted to
// this form (see ConvertTreeEnsembleV5). Values are doubles: float attributes widen exactly.
struct TreeEnsembleSpec {
  std::vector<int64_t> tree_ids;
  std::vector<int64_t> node_ids;
  std::vector<int64_t> feature_ids;
  std::vector<NodeMode> modes;
  std::vector<double> values;  // thresholds (ignored for kMember); leaves: fallback weight
  std::vector<int64_t> true_ids;
  std::vector<int64_t> false_ids;
  std::vector<int64_t> missing_tracks_true;  // may be shorter than the node list (= 0)
  // For kMember nodes: the set, by node index (empty or absent for other nodes).
  std::vector<std::vector<double>> member_values;

  std::vector<int64_t> weight_tree_ids;
  std::vector<int64_t> weight_node_ids;
  std::vector<int64_t> weight_targets;  // class_ids / target_ids
  std::vector<double> weight_values;
};

// One compiled node: 16 bytes for float thresholds. For a branch, `index` is the position
// of the true child (the false child is the next node). For a leaf, `index` is the first
// weight in CompiledTrees::weight_* (CompiledTrees::weight_count has how many), `feature` is
// 0 and `value` is the first weight (onnxruntime's value_or_unique_weight, used when there is
// one target).
template <typename T>
struct TreeNode {
  T value;
  int32_t feature;
  int32_t index;
  NodeMode mode;
  bool missing_true;
};

// A compiled ensemble with thresholds and weights of type T (float or double). Immutable
// after CompileTrees; safe to read from many threads.
template <typename T>
struct CompiledTrees {
  std::vector<TreeNode<T>> nodes;
  std::vector<int32_t> roots;         // node position of each tree, in evaluation order
  std::vector<int32_t> weight_count;  // by node position: weights of a leaf (0 for branches)
  std::vector<int32_t> weight_targets;
  std::vector<T> weight_values;
  std::vector<std::vector<T>> member_sets;  // sorted, for kMember nodes
  std::vector<int32_t> member_set_of_node;  // by node position; empty without kMember nodes
  int64_t max_feature = -1;                 // largest feature id used (-1: none)
  bool has_missing_tracks = false;
  // The mode of every branch when all branches share one mode (kLeaf when there are none),
  // or kMember when they differ (the general evaluation path).
  NodeMode common_mode = NodeMode::kLeaf;
  int64_t n_targets = 0;
};

// Compiles `spec` for `n_targets` targets/classes. Errors (InvalidInput) name the tree and
// node: mismatched array lengths, duplicate (tree, node) ids, missing children, cycles, a
// false child shared between parents, weights on unknown nodes or with target ids outside
// [0, n_targets), negative feature ids. Nodes no root reaches are dropped with their weights.
template <typename T>
Result<CompiledTrees<T>> CompileTrees(const TreeEnsembleSpec& spec, int64_t n_targets);

// The TreeEnsemble (ai.onnx.ml opset 5) attributes, already read from the node.
struct TreeEnsembleV5Attrs {
  std::vector<int64_t> tree_roots;
  std::vector<int64_t> nodes_featureids;
  std::vector<int64_t> nodes_modes;  // 0..6
  std::vector<double> nodes_splits;
  std::vector<int64_t> nodes_truenodeids;
  std::vector<int64_t> nodes_trueleafs;
  std::vector<int64_t> nodes_falsenodeids;
  std::vector<int64_t> nodes_falseleafs;
  std::vector<int64_t> nodes_missing_value_tracks_true;
  std::vector<double> membership_values;  // NaN-separated sets, one per BRANCH_MEMBER node
  std::vector<int64_t> leaf_targetids;
  std::vector<double> leaf_weights;
};

// Converts opset-5 attributes to the node-list form, one tree per root (tree ids 0..R-1), as
// onnxruntime does: subtrees reachable from several parents are copied per parent, and a root
// whose true and false children are equal is a leaf (weight leaf_weights[root]). The output
// is capped in size (InvalidInput for cyclic or exploding structures).
Result<TreeEnsembleSpec> ConvertTreeEnsembleV5(const TreeEnsembleV5Attrs& a);

}  // namespace serveml::engine::ml
