#include "importers/xgboost/tree_ensemble.h"

namespace serveml::importers {

int64_t TreeEnsembleBuilder::BeginTree() {
  next_node_id_ = 0;
  return trees_++;
}

size_t TreeEnsembleBuilder::AddBranch(int64_t feature, double threshold, Mode mode,
                                      bool missing_goes_true) {
  tree_ids_.push_back(trees_ - 1);
  node_ids_.push_back(next_node_id_++);
  feature_ids_.push_back(feature);
  modes_.push_back(mode == Mode::kLt ? "BRANCH_LT" : "BRANCH_LEQ");
  values_.push_back(threshold);
  true_ids_.push_back(0);
  false_ids_.push_back(0);
  missing_true_.push_back(missing_goes_true ? 1 : 0);
  return tree_ids_.size() - 1;
}

size_t TreeEnsembleBuilder::AddLeaf(int64_t target, double weight) {
  tree_ids_.push_back(trees_ - 1);
  node_ids_.push_back(next_node_id_++);
  feature_ids_.push_back(0);
  modes_.push_back("LEAF");
  values_.push_back(0);
  true_ids_.push_back(0);
  false_ids_.push_back(0);
  missing_true_.push_back(0);
  target_tree_ids_.push_back(trees_ - 1);
  target_node_ids_.push_back(node_ids_.back());
  target_ids_.push_back(target);
  target_weights_.push_back(weight);
  return tree_ids_.size() - 1;
}

void TreeEnsembleBuilder::SetChild(size_t branch, bool true_branch, size_t child) {
  (true_branch ? true_ids_ : false_ids_)[branch] = node_ids_[child];
}

namespace {

Tensor DoubleTensor(const std::vector<double>& v) {
  return Tensor::From<double>({static_cast<int64_t>(v.size())}, v);
}
std::vector<float> Floats(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

}  // namespace

void TreeEnsembleBuilder::Emit(GraphBuilder& g, const std::string& input, const std::string& output,
                               const std::vector<double>& base_values) const {
  OnnxNode& n = g.AddNode("TreeEnsembleRegressor", {input}, {output}, "ai.onnx.ml");
  n.name = g.Unique("tree_ensemble");
  n.Attr("n_targets", n_targets_)
      .Attr("aggregate_function", std::string("SUM"))
      .Attr("post_transform", std::string("NONE"))
      .Attr("nodes_treeids", tree_ids_)
      .Attr("nodes_nodeids", node_ids_)
      .Attr("nodes_featureids", feature_ids_)
      .Attr("nodes_modes", modes_)
      .Attr("nodes_truenodeids", true_ids_)
      .Attr("nodes_falsenodeids", false_ids_)
      .Attr("nodes_missing_value_tracks_true", missing_true_)
      .Attr("target_treeids", target_tree_ids_)
      .Attr("target_nodeids", target_node_ids_)
      .Attr("target_ids", target_ids_);
  if (double_) {
    n.Attr("nodes_values_as_tensor", DoubleTensor(values_))
        .Attr("target_weights_as_tensor", DoubleTensor(target_weights_));
    if (!base_values.empty()) n.Attr("base_values_as_tensor", DoubleTensor(base_values));
  } else {
    n.Attr("nodes_values", Floats(values_)).Attr("target_weights", Floats(target_weights_));
    if (!base_values.empty()) n.Attr("base_values", Floats(base_values));
  }
}

}  // namespace serveml::importers
