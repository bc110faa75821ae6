// Core (ai.onnx) operator kernels and the compile step on tiny hand-built models, against
// hand-derived values. The operators' broad conformance is tests/ops (ONNX's own backend
// cases); these pin down edge cases and the engine's compile-time behaviour.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "engine/engine.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using namespace serveml::engine::testing;  // NOLINT

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

TEST(ConstantFolding, InitializerOnlyChainIsFoldedAndStillCorrect) {
  // Y = X @ Transpose(W): the Transpose of an initializer is folded at load; the result must
  // equal the hand-derived product. W = [[1, 2], [3, 4], [5, 6]] (3x2) -> W^T (2x3).
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Transpose", {"W"}, {"Wt"}), Node("MatMul", {"X", "Wt"}, {"Y"})},
                       {FloatTensor("W", {3, 2}, {1, 2, 3, 4, 5, 6})}, {ValueInfo("X", 1, {-1, 2})},
                       {ValueInfo("Y", 1, {-1, 3})})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto out = (*r)->Run(std::vector<Tensor>{Tensor::From<float>({1, 2}, {1, 10})});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Floats((*out)[0]), (std::vector<float>{21, 43, 65}));
}

TEST(ConstantFolding, ErrorsInFoldedNodesAreReportedAtLoad) {
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Add", {"A", "B"}, {"C"}), Node("Mul", {"X", "C"}, {"Y"})},
                       {FloatTensor("A", {2}, {1, 2}), FloatTensor("B", {3}, {1, 2, 3})},
                       {ValueInfo("X", 1, {2})}, {ValueInfo("Y", 1, {2})})));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("(Add)"), std::string::npos) << r.status().ToString();
}

TEST(Conv, SamePaddingAndGroupsMatchHandDerivedSums) {
  // 1x2x3x3 input, two groups of one channel, 3x3 all-ones kernels, SAME_UPPER padding:
  // each output is the sum of the 3x3 neighbourhood (zeros outside).
  std::vector<float> x(18);
  for (int i = 0; i < 18; ++i) x[i] = static_cast<float>(i < 9 ? 1 : 2);
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Conv", {"X", "W"}, {"Y"},
                             {AttrString("auto_pad", "SAME_UPPER"), AttrInt("group", 2),
                              AttrInts("kernel_shape", {3, 3})})},
                       {FloatTensor("W", {2, 1, 3, 3}, std::vector<float>(18, 1.0f))},
                       {ValueInfo("X", 1, {1, 2, 3, 3})}, {ValueInfo("Y", 1, {1, 2, 3, 3})})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto out = (*r)->Run(std::vector<Tensor>{Tensor::From<float>({1, 2, 3, 3}, x)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::vector<float> counts{4, 6, 4, 6, 9, 6, 4, 6, 4};
  std::vector<float> want;
  for (float c : counts) want.push_back(c);
  for (float c : counts) want.push_back(2 * c);
  EXPECT_EQ(Floats((*out)[0]), want);
}

TEST(Pool, AveragePoolCountIncludePadAndMaxPoolCeilMode) {
  // 1x1x2x2 input [[1, 2], [3, 4]], 2x2 window, pads 1 on every side, stride 2.
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("AveragePool", {"X"}, {"A"},
                             {AttrInts("kernel_shape", {2, 2}), AttrInts("pads", {1, 1, 1, 1}),
                              AttrInts("strides", {2, 2}), AttrInt("count_include_pad", 1)}),
                        Node("AveragePool", {"X"}, {"B"},
                             {AttrInts("kernel_shape", {2, 2}), AttrInts("pads", {1, 1, 1, 1}),
                              AttrInts("strides", {2, 2})}),
                        Node("MaxPool", {"X"}, {"M"},
                             {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {3, 3}),
                              AttrInt("ceil_mode", 1)})},
                       {}, {ValueInfo("X", 1, {1, 1, 2, 2})},
                       {ValueInfo("A", 1, {1, 1, 2, 2}), ValueInfo("B", 1, {1, 1, 2, 2}),
                        ValueInfo("M", 1, {1, 1, 1, 1})})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto out = (*r)->Run(std::vector<Tensor>{Tensor::From<float>({1, 1, 2, 2}, {1, 2, 3, 4})});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Floats((*out)[0]), (std::vector<float>{0.25f, 0.5f, 0.75f, 1.0f}));
  EXPECT_EQ(Floats((*out)[1]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Floats((*out)[2]), (std::vector<float>{4}));
}

TEST(ShapeOps, SliceWithNegativeStepAndClampedBounds) {
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Slice", {"X", "s", "e", "a", "st"}, {"Y"})}, {},
                       {ValueInfo("X", 1, {5}), ValueInfo("s", 7, {1}), ValueInfo("e", 7, {1}),
                        ValueInfo("a", 7, {1}), ValueInfo("st", 7, {1})},
                       {ValueInfo("Y", 1, {-1})})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto i64 = [](int64_t v) { return Tensor::From<int64_t>({1}, {v}); };
  auto out = (*r)->Run(std::vector<Tensor>{Tensor::From<float>({5}, {0, 1, 2, 3, 4}), i64(100),
                                           i64(INT64_MIN), i64(0), i64(-2)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Floats((*out)[0]), (std::vector<float>{4, 2, 0}));
}

TEST(Model, ConvRunIsThreadSafe) {
  // Per-thread scratch (im2col buffer, value table) must not leak between threads.
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Conv", {"X", "W"}, {"Y"}, {AttrInts("pads", {1, 1, 1, 1})})},
                       {FloatTensor("W", {1, 1, 3, 3}, std::vector<float>(9, 1.0f))},
                       {ValueInfo("X", 1, {1, 1, 3, 3})}, {ValueInfo("Y", 1, {1, 1, 3, 3})})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < 300; ++it) {
        const float v = static_cast<float>(t + 1);
        auto out = (*r)->Run(
            std::vector<Tensor>{Tensor::From<float>({1, 1, 3, 3}, std::vector<float>(9, v))});
        if (!out.ok() || (*out)[0].data<float>()[4] != 9 * v ||
            (*out)[0].data<float>()[0] != 4 * v) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace serveml::engine
