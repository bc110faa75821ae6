// Tree-ensemble compilation edge cases (ops/ml_tree.h) and small hand-derived models. The
// scikit-learn and onnxruntime comparisons live in tests/e2e/test_ml_operators.py.
#include "engine/ops/ml_tree.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/engine.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using ml::CompileTrees;
using ml::NodeMode;
using ml::TreeEnsembleSpec;
using namespace serveml::engine::testing;  // NOLINT

constexpr NodeMode kLeq = NodeMode::kLeq;
constexpr NodeMode kLeaf = NodeMode::kLeaf;

// One tree: node 0 = x0 <= 0.5 ? 1 : 2, leaves 1 and 2 with weights 10 and 20.
TreeEnsembleSpec Stump() {
  TreeEnsembleSpec s;
  s.tree_ids = {0, 0, 0};
  s.node_ids = {0, 1, 2};
  s.feature_ids = {0, 0, 0};
  s.modes = {kLeq, kLeaf, kLeaf};
  s.values = {0.5, 0, 0};
  s.true_ids = {1, 0, 0};
  s.false_ids = {2, 0, 0};
  s.weight_tree_ids = {0, 0};
  s.weight_node_ids = {1, 2};
  s.weight_targets = {0, 0};
  s.weight_values = {10, 20};
  return s;
}

TEST(MlTreeCompile, FalseChildFollowsItsParent) {
  auto r = CompileTrees<float>(Stump(), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& t = *r;
  ASSERT_EQ(t.nodes.size(), 3u);
  ASSERT_EQ(t.roots, std::vector<int32_t>{0});
  EXPECT_EQ(t.nodes[0].mode, kLeq);
  EXPECT_EQ(t.nodes[1].value, 20.f);  // false leaf right after the root
  EXPECT_EQ(t.nodes[t.nodes[0].index].value, 10.f);
  EXPECT_EQ(t.weight_count[1], 1);  // one weight
  EXPECT_EQ(t.max_feature, 0);
  EXPECT_EQ(t.common_mode, kLeq);
  EXPECT_FALSE(t.has_missing_tracks);
}

TEST(MlTreeCompile, AttributeOrderOnlyMattersForRoots) {
  // Same stump, nodes listed leaf-first after the root, weights reversed.
  TreeEnsembleSpec s = Stump();
  s.node_ids = {0, 2, 1};
  s.modes = {kLeq, kLeaf, kLeaf};
  s.weight_node_ids = {2, 1};
  s.weight_values = {20, 10};
  auto r = CompileTrees<double>(s, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->nodes[1].value, 20.0);
  EXPECT_EQ(r->nodes[r->nodes[0].index].value, 10.0);
}

TEST(MlTreeCompile, SharedTrueChildIsNotCopied) {
  // 0: x0 == 1 ? 3 : 1;  1: x0 == 2 ? 3 : 2 (leaf);  3: leaf. Node 3 has two parents.
  TreeEnsembleSpec s;
  s.tree_ids = {0, 0, 0, 0};
  s.node_ids = {0, 1, 2, 3};
  s.feature_ids = {0, 0, 0, 0};
  s.modes = {NodeMode::kEq, NodeMode::kEq, kLeaf, kLeaf};
  s.values = {1, 2, 0, 0};
  s.true_ids = {3, 3, 0, 0};
  s.false_ids = {1, 2, 0, 0};
  s.weight_tree_ids = {0, 0};
  s.weight_node_ids = {2, 3};
  s.weight_targets = {0, 0};
  s.weight_values = {-1, 1};
  auto r = CompileTrees<float>(s, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->nodes.size(), 4u);
  EXPECT_EQ(r->nodes[0].index, r->nodes[1].index);
}

TEST(MlTreeCompile, SharedFalseChildCycleAndMissingNodesAreErrors) {
  TreeEnsembleSpec s = Stump();
  s.tree_ids = {0, 0, 0, 0};
  s.node_ids = {0, 1, 2, 3};
  s.feature_ids = {0, 0, 0, 0};
  s.modes = {kLeq, kLeq, kLeaf, kLeaf};
  s.values = {0, 0, 0, 0};
  s.true_ids = {1, 3, 0, 0};
  s.false_ids = {2, 2, 0, 0};  // node 2 is the false child of both 0 and 1
  auto r = CompileTrees<float>(s, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("false child of tree 0 node 1"), std::string::npos)
      << r.status().message();

  s.false_ids = {2, 0, 0, 0};  // node 1's false child is the root: a cycle
  r = CompileTrees<float>(s, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().message();

  s.false_ids = {2, 9, 0, 0};
  r = CompileTrees<float>(s, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tree 0 node 1: its false child 9 does not exist"),
            std::string::npos)
      << r.status().message();

  TreeEnsembleSpec u = Stump();  // an extra node nobody points at
  u.tree_ids.push_back(0);
  u.node_ids.push_back(7);
  u.feature_ids.push_back(0);
  u.modes.push_back(kLeaf);
  u.values.push_back(0);
  u.true_ids.push_back(0);
  u.false_ids.push_back(0);
  u.weight_tree_ids.push_back(0);
  u.weight_node_ids.push_back(7);
  u.weight_targets.push_back(0);
  u.weight_values.push_back(5);
  r = CompileTrees<float>(u, 1);  // dropped, as onnxruntime does
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->nodes.size(), 3u);
  EXPECT_EQ(r->weight_values.size(), 2u);

  TreeEnsembleSpec d = Stump();
  d.node_ids = {0, 1, 1};
  r = CompileTrees<float>(d, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("defined twice"), std::string::npos);

  TreeEnsembleSpec w = Stump();
  w.weight_targets = {0, 3};
  r = CompileTrees<float>(w, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("target/class id 3, outside [0, 2)"), std::string::npos);

  TreeEnsembleSpec m = Stump();
  m.values.pop_back();
  EXPECT_FALSE(CompileTrees<float>(m, 1).ok());
}

TEST(MlTreeCompile, WeightsOnBranchesAreIgnoredAndLeavesMayHaveNone) {
  TreeEnsembleSpec s = Stump();
  s.values = {0.5, 0, 7};  // leaf 2's own value is its single-target fallback
  s.weight_tree_ids = {0, 0, 0, 0};
  s.weight_node_ids = {0, 1, 1, 1};  // a weight on the branch (ignored), three on leaf 1
  s.weight_targets = {0, 1, 0, 1};
  s.weight_values = {99, 1, 2, 3};
  auto r = CompileTrees<float>(s, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& leaf1 = r->nodes[r->nodes[0].index];
  EXPECT_EQ(r->weight_count[r->nodes[0].index], 3);
  EXPECT_EQ(leaf1.value, 1.f);  // first weight in attribute order
  EXPECT_EQ(r->weight_values, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(r->weight_targets, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(r->weight_count[1], 0);
  EXPECT_EQ(r->nodes[1].value, 7.f);
}

TEST(MlTreeCompile, DeepChainCompilesWithoutRecursion) {
  // A degenerate tree of depth 200000: node i: x0 <= i ? leaf : node i+1.
  const int depth = 200000;
  TreeEnsembleSpec s;
  for (int i = 0; i < depth; ++i) {
    s.tree_ids.push_back(0);
    s.node_ids.push_back(2 * i);
    s.feature_ids.push_back(0);
    s.modes.push_back(kLeq);
    s.values.push_back(i);
    s.true_ids.push_back(2 * i + 1);
    s.false_ids.push_back(i + 1 < depth ? 2 * i + 2 : 2 * i + 1);
    s.tree_ids.push_back(0);
    s.node_ids.push_back(2 * i + 1);
    s.feature_ids.push_back(0);
    s.modes.push_back(kLeaf);
    s.values.push_back(0);
    s.true_ids.push_back(0);
    s.false_ids.push_back(0);
  }
  // The last branch's two children are the same leaf: not a shared false child error because
  // the false branch is entered first.
  auto r = CompileTrees<float>(s, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->nodes.size(), static_cast<size_t>(2 * depth));
}

TEST(MlTreeCompile, SeveralTreesAndMixedModes) {
  TreeEnsembleSpec s = Stump();
  TreeEnsembleSpec b = Stump();
  for (auto& t : b.tree_ids) t = 5;
  for (auto& t : b.weight_tree_ids) t = 5;
  b.modes[0] = NodeMode::kGt;
  b.feature_ids[0] = 3;
  auto append = [](auto& a, const auto& v) { a.insert(a.end(), v.begin(), v.end()); };
  append(s.tree_ids, b.tree_ids);
  append(s.node_ids, b.node_ids);
  append(s.feature_ids, b.feature_ids);
  append(s.modes, b.modes);
  append(s.values, b.values);
  append(s.true_ids, b.true_ids);
  append(s.false_ids, b.false_ids);
  append(s.weight_tree_ids, b.weight_tree_ids);
  append(s.weight_node_ids, b.weight_node_ids);
  append(s.weight_targets, b.weight_targets);
  append(s.weight_values, b.weight_values);
  s.missing_tracks_true = {0, 0, 0, 1};
  auto r = CompileTrees<float>(s, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->roots, (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(r->max_feature, 3);
  EXPECT_EQ(r->common_mode, NodeMode::kMember);  // mixed: general path
  EXPECT_TRUE(r->has_missing_tracks);
  EXPECT_TRUE(r->nodes[3].missing_true);
}

TEST(MlTreeV5, RootLeafMembershipAndExpansionCap) {
  ml::TreeEnsembleV5Attrs a;
  // tree 0: node 0: x1 in {1, 4} ? leaf 0 : leaf 1. tree 1: node 1 with equal children -> leaf.
  a.tree_roots = {0, 1};
  a.nodes_featureids = {1, 0};
  a.nodes_modes = {6, 0};
  a.nodes_splits = {0, 0};
  a.nodes_truenodeids = {0, 2};
  a.nodes_trueleafs = {1, 1};
  a.nodes_falsenodeids = {1, 2};
  a.nodes_falseleafs = {1, 1};
  a.membership_values = {4, 1, std::numeric_limits<double>::quiet_NaN()};
  a.leaf_targetids = {0, 0, 0};
  a.leaf_weights = {1, 2, 3};
  auto spec = ml::ConvertTreeEnsembleV5(a);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto r = CompileTrees<float>(*spec, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->roots.size(), 2u);
  ASSERT_EQ(r->member_sets.size(), 1u);
  EXPECT_EQ(r->member_sets[0], (std::vector<float>{1, 4}));
  const auto& root1 = r->nodes[r->roots[1]];
  EXPECT_EQ(root1.mode, kLeaf);
  EXPECT_EQ(root1.value, 2.f);  // a leaf root uses leaf_weights[root index]

  // A 64-level chain whose two branches both lead to the next node expands to 2^64 nodes.
  ml::TreeEnsembleV5Attrs e;
  const int levels = 64;
  e.tree_roots = {0};
  for (int i = 0; i < levels; ++i) {
    e.nodes_featureids.push_back(0);
    e.nodes_modes.push_back(0);
    e.nodes_splits.push_back(i);
    const bool last = i + 1 == levels;
    e.nodes_truenodeids.push_back(last ? 0 : i + 1);
    e.nodes_trueleafs.push_back(last ? 1 : 0);
    e.nodes_falsenodeids.push_back(last ? 0 : i + 1);
    e.nodes_falseleafs.push_back(last ? 1 : 0);
  }
  e.nodes_truenodeids[0] = 2;  // a root with equal children would be read as a leaf
  e.leaf_targetids = {0};
  e.leaf_weights = {1};
  auto big = ml::ConvertTreeEnsembleV5(e);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("expands to more than"), std::string::npos);
}

// ---- whole models ---------------------------------------------------------------------------

std::string DoubleTensor(const std::string& name, const std::vector<double>& v) {
  onnx::WireWriter w;
  w.Int64Field(1, static_cast<int64_t>(v.size()));
  w.Int64Field(2, 11);
  w.BytesField(8, name);
  w.BytesField(9, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8));
  return std::move(w).str();
}

std::vector<float> RunRegressor(const std::string& model, const Tensor& x) {
  auto m = Model::LoadOnnx(model);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return {};
  std::vector<Tensor> in = {x};
  auto out = (*m)->Run(in);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0];
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

std::string StumpRegressor(int32_t in_type, bool double_threshold, int64_t missing_true) {
  std::vector<std::string> attrs = {
      AttrInt("n_targets", 1),
      AttrInts("nodes_treeids", {0, 0, 0}),
      AttrInts("nodes_nodeids", {0, 1, 2}),
      AttrInts("nodes_featureids", {0, 0, 0}),
      AttrStrings("nodes_modes", {"BRANCH_LEQ", "LEAF", "LEAF"}),
      AttrInts("nodes_truenodeids", {1, 0, 0}),
      AttrInts("nodes_falsenodeids", {2, 0, 0}),
      AttrInts("nodes_missing_value_tracks_true", {missing_true, 0, 0}),
      AttrInts("target_treeids", {0, 0}),
      AttrInts("target_nodeids", {1, 2}),
      AttrInts("target_ids", {0, 0}),
      AttrFloats("target_weights", {10, 20}),
  };
  if (double_threshold) {
    attrs.push_back(AttrTensor("nodes_values_as_tensor", DoubleTensor("", {0.1, 0, 0})));
  } else {
    attrs.push_back(AttrFloats("nodes_values", {0.1f, 0, 0}));
  }
  return ModelBytes(Graph({Node("TreeEnsembleRegressor", {"X"}, {"Y"}, attrs, "ai.onnx.ml")}, {},
                          {ValueInfo("X", in_type, {-1, 1})}, {ValueInfo("Y", 1, {-1, 1})}),
                    17, 3);
}

TEST(MlTreeModel, ThresholdComparisonUsesTheWiderType) {
  // 0.1f is 0.100000001490116...: above the double 0.1, equal to the float 0.1f.
  const float x = 0.1f;
  EXPECT_EQ(RunRegressor(StumpRegressor(1, false, 0), Tensor::From<float>({1, 1}, {x})),
            std::vector<float>{10});  // float input, float threshold: x <= 0.1f
  EXPECT_EQ(RunRegressor(StumpRegressor(11, false, 0), Tensor::From<double>({1, 1}, {0.1})),
            std::vector<float>{10});  // 0.1 <= double(0.1f)
  EXPECT_EQ(RunRegressor(StumpRegressor(11, true, 0), Tensor::From<double>({1, 1}, {x})),
            std::vector<float>{20});  // double(0.1f) > 0.1
  EXPECT_EQ(RunRegressor(StumpRegressor(11, true, 0), Tensor::From<double>({1, 1}, {0.1})),
            std::vector<float>{10});
}

TEST(MlTreeModel, NanFollowsMissingTrackAndInfinitiesCompare) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::From<float>({4, 1}, {nan, inf, -inf, 0.1f});
  EXPECT_EQ(RunRegressor(StumpRegressor(1, false, 0), x), (std::vector<float>{20, 20, 10, 10}));
  EXPECT_EQ(RunRegressor(StumpRegressor(1, false, 1), x), (std::vector<float>{10, 20, 10, 10}));
  // Empty batch and 1-D input (one row).
  EXPECT_TRUE(RunRegressor(StumpRegressor(1, false, 0), Tensor(DType::kFloat32, {0, 1})).empty());
}

// Timing helper, not a test: SERVEML_BENCH_MODEL=model.onnx SERVEML_BENCH_ROWS=1000
// unit_engine --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_Bench*'
// Runs a float [rows, F] random input through the model and prints microseconds per run.
TEST(MlTreeModel, DISABLED_Bench) {
  const char* path = std::getenv("SERVEML_BENCH_MODEL");
  ASSERT_NE(path, nullptr);
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  auto m = Model::LoadOnnx(ss.str());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const int64_t rows =
      std::atoll(std::getenv("SERVEML_BENCH_ROWS") ? std::getenv("SERVEML_BENCH_ROWS") : "1");
  const int64_t feats = (*m)->inputs()[0].shape.back();
  Tensor x(DType::kFloat32, {rows, feats});
  uint32_t s = 12345;
  for (int64_t i = 0; i < x.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    x.data<float>()[i] = static_cast<float>(s >> 8) / 16777216.0f * 6.f - 3.f;
  }
  std::vector<Tensor> in = {x};
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*m)->Run(in).ok());
  const int iters = rows >= 1000 ? 300 : 20000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) (void)(*m)->Run(in);
  auto t1 = std::chrono::steady_clock::now();
  const double us = std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
  std::printf("serveml: rows=%lld %.2f us/run\n", static_cast<long long>(rows), us);
}

}  // namespace
}  // namespace serveml::engine
