// Broadcasting rules (ONNX "Broadcasting in ONNX" / numpy) and the collapsed-run walker,
// checked against a naive per-element index computation.
#include "engine/ops/broadcast.h"

#include <gtest/gtest.h>

namespace serveml::engine {
namespace {

std::vector<int64_t> B(std::vector<int64_t> a, std::vector<int64_t> b) {
  std::vector<int64_t> out;
  EXPECT_TRUE(BroadcastShape(a, b, &out).ok());
  return out;
}

TEST(Broadcast, ShapesFromTheOnnxDocumentation) {
  // Examples listed in onnx/docs/Broadcasting.md.
  EXPECT_EQ(B({2, 3, 4, 5}, {}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(B({2, 3, 4, 5}, {5}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(B({4, 5}, {2, 3, 4, 5}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(B({1, 4, 5}, {2, 3, 1, 1}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(B({3, 4, 5}, {2, 1, 1, 1}), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(B({0, 3}, {1, 3}), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(B({0}, {1}), (std::vector<int64_t>{0}));
  std::vector<int64_t> out;
  EXPECT_FALSE(BroadcastShape(std::vector<int64_t>{2, 3}, std::vector<int64_t>{3, 2}, &out).ok());
  EXPECT_FALSE(BroadcastShape(std::vector<int64_t>{0}, std::vector<int64_t>{2}, &out).ok());
}

TEST(Broadcast, Unidirectional) {
  EXPECT_TRUE(CanBroadcastTo(std::vector<int64_t>{3}, std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(CanBroadcastTo(std::vector<int64_t>{1, 1}, std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(CanBroadcastTo(std::vector<int64_t>{2, 3}, std::vector<int64_t>{3}));
  EXPECT_FALSE(CanBroadcastTo(std::vector<int64_t>{2}, std::vector<int64_t>{2, 3}));
}

// Naive reference: for each output index, compute the operand's flat offset.
int64_t NaiveOffset(const std::vector<int64_t>& x, const std::vector<int64_t>& out, int64_t flat) {
  std::vector<int64_t> idx(out.size());
  for (size_t i = out.size(); i-- > 0;) {
    idx[i] = flat % out[i];
    flat /= out[i];
  }
  int64_t off = 0;
  const size_t lead = out.size() - x.size();
  for (size_t j = 0; j < x.size(); ++j) off = off * x[j] + (x[j] == 1 ? 0 : idx[lead + j]);
  return off;
}

TEST(Broadcast, RunWalkerVisitsEveryElementWithTheRightOffsets) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{2, 3, 4}, {2, 3, 4}},
      {{2, 3, 4}, {4}},
      {{2, 3, 4}, {3, 1}},
      {{5, 1, 3}, {1, 4, 1}},
      {{1}, {2, 2}},
      {{}, {3}},
      {{2, 1, 2, 1, 2}, {1, 3, 1, 3, 1}},
      {{6, 1}, {1, 7}},
      {{1, 1, 1}, {1}},
  };
  for (const auto& [a, b] : cases) {
    std::vector<int64_t> out;
    ASSERT_TRUE(BroadcastShape(a, b, &out).ok());
    int64_t n = 1;
    for (int64_t d : out) n *= d;
    std::vector<int> seen(static_cast<size_t>(n), 0);
    BroadcastPlan p = MakeBroadcastPlan(a, b, out);
    ForEachBroadcastRun(
        p, [&](int64_t oa, int64_t ob, int64_t oo, int64_t len, int64_t sa, int64_t sb) {
          for (int64_t i = 0; i < len; ++i) {
            ASSERT_LT(oo + i, n);
            ++seen[oo + i];
            EXPECT_EQ(oa + i * sa, NaiveOffset(a, out, oo + i));
            EXPECT_EQ(ob + i * sb, NaiveOffset(b, out, oo + i));
          }
        });
    for (int s : seen) EXPECT_EQ(s, 1);
  }
}

}  // namespace
}  // namespace serveml::engine
