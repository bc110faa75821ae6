// TreeEnsembleBuilder: collects decision trees and emits them as one ONNX-ML
// TreeEnsembleRegressor node (ai.onnx.ml opset 3, aggregate SUM, post_transform NONE).
// Shared by the XGBoost and LightGBM importers; they add the output transform (Sigmoid,
// Softmax, Exp, ...) as separate standard ONNX nodes.
//
// Not thread safe; one builder per import.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "importers/onnx_builder.h"

namespace serveml::importers {

class TreeEnsembleBuilder {
 public:
  enum class Mode { kLt, kLeq };  // BRANCH_LT (x < t) or BRANCH_LEQ (x <= t) goes "true"

  // `double_precision`: thresholds, leaf weights and base values are written as double
  // tensors (nodes_values_as_tensor, ...) instead of float lists.
  TreeEnsembleBuilder(int64_t n_targets, bool double_precision)
      : n_targets_(n_targets), double_(double_precision) {}

  // Starts a new tree; subsequent nodes belong to it. Returns its tree id.
  int64_t BeginTree();
  // Adds a branch of the current tree and returns its handle. A NaN input goes to the
  // "true" child when `missing_goes_true`, else to the "false" child. Children are linked
  // later with SetChild.
  size_t AddBranch(int64_t feature, double threshold, Mode mode, bool missing_goes_true);
  // Adds a leaf adding `weight` to target `target`; returns its handle.
  size_t AddLeaf(int64_t target, double weight);
  // Links `child` as the "true" (condition holds) or "false" child of `branch`.
  void SetChild(size_t branch, bool true_branch, size_t child);

  size_t node_count() const { return tree_ids_.size(); }
  int64_t tree_count() const { return trees_; }

  // Appends the TreeEnsembleRegressor node reading `input` ([N, F]) and writing `output`
  // (float32 [N, n_targets]); `base_values` has n_targets entries (or is empty).
  void Emit(GraphBuilder& g, const std::string& input, const std::string& output,
            const std::vector<double>& base_values) const;

 private:
  int64_t n_targets_;
  bool double_;
  int64_t trees_ = 0;
  int64_t next_node_id_ = 0;
  std::vector<int64_t> tree_ids_, node_ids_, feature_ids_, true_ids_, false_ids_, missing_true_;
  std::vector<std::string> modes_;
  std::vector<double> values_;
  std::vector<int64_t> target_tree_ids_, target_node_ids_, target_ids_;
  std::vector<double> target_weights_;
};

}  // namespace serveml::importers
