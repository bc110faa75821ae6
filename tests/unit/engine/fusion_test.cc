// Relu fusion at load: Conv / Gemm / MatMul followed by a Relu that is the only consumer of
// their output run as one kernel. Each fused model is compared with the same graph where an
// Identity between producer and Relu keeps them apart, over several runs (later runs get
// recycled, uncleared arena buffers). Outputs that are graph outputs or have a second
// consumer must not be fused.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model_internal.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using namespace testing;  // NOLINT

std::vector<float> Values(size_t n, float scale, int salt) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = (static_cast<float>((i * 53 + 7 + static_cast<size_t>(salt) * 31) % 97) / 48.0f - 1.0f) *
           scale;
  }
  return v;
}

std::shared_ptr<Model> Load(const std::string& bytes) {
  auto r = Model::LoadOnnx(bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

void ExpectNear(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(a.dtype(), DType::kFloat32);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_NEAR(pa[i], pb[i], 1e-4f * (1.0f + std::fabs(pb[i]))) << "element " << i;
  }
}

// One producer node `prod` (output "P") followed by Relu ("Y"); with `separate`, an
// Identity sits between them.
std::string ProducerRelu(const std::string& prod, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& attrs,
                         const std::vector<std::string>& inits, const std::vector<int64_t>& x_dims,
                         const std::vector<int64_t>& y_dims, bool separate) {
  std::vector<std::string> nodes = {Node(prod, inputs, {"P"}, attrs)};
  if (separate) {
    nodes.push_back(Node("Identity", {"P"}, {"I"}));
    nodes.push_back(Node("Relu", {"I"}, {"Y"}));
  } else {
    nodes.push_back(Node("Relu", {"P"}, {"Y"}));
  }
  return ModelBytes(Graph(nodes, inits, {ValueInfo("X", 1, x_dims)}, {ValueInfo("Y", 1, y_dims)}));
}

void CheckFused(const std::string& prod, const std::vector<std::string>& inputs,
                const std::vector<std::string>& attrs, const std::vector<std::string>& inits,
                const std::vector<int64_t>& x_dims, const std::vector<int64_t>& y_dims) {
  SCOPED_TRACE(prod);
  auto fused = Load(ProducerRelu(prod, inputs, attrs, inits, x_dims, y_dims, false));
  auto ref = Load(ProducerRelu(prod, inputs, attrs, inits, x_dims, y_dims, true));
  ASSERT_TRUE(fused && ref);
  // The fused model has one statically sized intermediate less (P).
  EXPECT_LT(PlanInfo(*fused)->unplanned_bytes, PlanInfo(*ref)->unplanned_bytes);
  int64_t n = 1;
  for (int64_t d : x_dims) n *= d;
  for (int run = 0; run < 4; ++run) {
    Tensor x = Tensor::From<float>(x_dims, Values(static_cast<size_t>(n), 1.0f, run));
    auto a = fused->Run(std::vector<Tensor>{x});
    auto b = ref->Run(std::vector<Tensor>{x});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ExpectNear((*a)[0], (*b)[0]);
    bool has_zero = false, has_positive = false;
    const float* py = (*a)[0].data<float>();
    for (int64_t i = 0; i < (*a)[0].numel(); ++i) {
      has_zero |= py[i] == 0.0f;
      has_positive |= py[i] > 0.0f;
    }
    EXPECT_TRUE(has_zero && has_positive);  // the data exercises both sides of the Relu
  }
}

TEST(ReluFusion, ConvDirectWithAndWithoutBias) {
  const std::vector<std::string> pads = {AttrInts("pads", {1, 1, 1, 1})};
  const std::string w = FloatTensor("W", {5, 3, 3, 3}, Values(5 * 27, 0.3f, 1));
  const std::string b = FloatTensor("B", {5}, Values(5, 0.2f, 2));
  CheckFused("Conv", {"X", "W", "B"}, pads, {w, b}, {2, 3, 12, 12}, {2, 5, 12, 12});
  CheckFused("Conv", {"X", "W"}, pads, {w}, {2, 3, 12, 12}, {2, 5, 12, 12});
}

TEST(ReluFusion, ConvIm2ColAndPointwise) {
  const std::string w = FloatTensor("W", {4, 3, 3, 3}, Values(4 * 27, 0.3f, 3));
  const std::string b = FloatTensor("B", {4}, Values(4, 0.2f, 4));
  // Horizontal stride 2: the im2col path.
  const std::vector<std::string> strided = {AttrInts("strides", {2, 2})};
  CheckFused("Conv", {"X", "W", "B"}, strided, {w, b}, {1, 3, 9, 9}, {1, 4, 4, 4});
  CheckFused("Conv", {"X", "W"}, strided, {w}, {1, 3, 9, 9}, {1, 4, 4, 4});
  // 1x1: one GEMM over the input as is.
  const std::string w1 = FloatTensor("W", {6, 3, 1, 1}, Values(18, 0.5f, 5));
  CheckFused("Conv", {"X", "W"}, {}, {w1}, {2, 3, 5, 5}, {2, 6, 5, 5});
  // Grouped.
  const std::string wg = FloatTensor("W", {4, 2, 3, 3}, Values(4 * 18, 0.3f, 6));
  CheckFused("Conv", {"X", "W"}, {AttrInt("group", 2), AttrInts("pads", {1, 1, 1, 1})}, {wg},
             {1, 4, 10, 10}, {1, 4, 10, 10});
}

TEST(ReluFusion, GemmAndMatMul) {
  const std::string w = FloatTensor("W", {64, 256}, Values(64 * 256, 0.1f, 7));
  const std::string c = FloatTensor("C", {256}, Values(256, 0.1f, 8));
  // Dense layer: small batch (in-house kernel) and large batch (prepacked library path).
  CheckFused("Gemm", {"X", "W", "C"}, {}, {w, c}, {1, 64}, {1, 256});
  CheckFused("Gemm", {"X", "W", "C"}, {}, {w, c}, {64, 64}, {64, 256});
  CheckFused("Gemm", {"X", "W"}, {}, {w}, {64, 64}, {64, 256});
  // Transposed B, no bias; transposed A (general path).
  const std::string wt = FloatTensor("W", {32, 64}, Values(32 * 64, 0.1f, 9));
  CheckFused("Gemm", {"X", "W"}, {AttrInt("transB", 1)}, {wt}, {16, 64}, {16, 32});
  CheckFused("Gemm", {"X", "W", "C"}, {AttrInt("transA", 1), AttrFloat("alpha", 0.5f)}, {w, c},
             {64, 3}, {3, 256});
  CheckFused("MatMul", {"X", "W"}, {}, {w}, {2, 5, 64}, {2, 5, 256});
}

TEST(ReluFusion, NotFusedWhenTheOutputIsAGraphOutputOrHasTwoConsumers) {
  const std::vector<std::string> inits = {FloatTensor("W", {4, 3, 3, 3}, Values(108, 0.3f, 1)),
                                          FloatTensor("B", {4}, Values(4, 0.2f, 2))};
  const std::vector<std::string> pads = {AttrInts("pads", {1, 1, 1, 1})};
  const std::vector<int64_t> xd = {1, 3, 10, 10}, yd = {1, 4, 10, 10};
  Tensor x = Tensor::From<float>(xd, Values(300, 1.0f, 3));
  auto ref = Load(ModelBytes(
      Graph({Node("Conv", {"X", "W", "B"}, {"P"}, pads), Node("Identity", {"P"}, {"I"}),
             Node("Relu", {"I"}, {"Y"}), Node("Neg", {"P"}, {"N"})},
            inits, {ValueInfo("X", 1, xd)}, {ValueInfo("Y", 1, yd), ValueInfo("N", 1, yd)})));
  ASSERT_TRUE(ref);
  auto want = ref->Run(std::vector<Tensor>{x});
  ASSERT_TRUE(want.ok()) << want.status().ToString();

  // The Conv output is also a graph output.
  auto as_output = Load(ModelBytes(
      Graph({Node("Conv", {"X", "W", "B"}, {"P"}, pads), Node("Relu", {"P"}, {"Y"})}, inits,
            {ValueInfo("X", 1, xd)}, {ValueInfo("Y", 1, yd), ValueInfo("P", 1, yd)})));
  ASSERT_TRUE(as_output);
  for (int run = 0; run < 3; ++run) {
    auto got = as_output->Run(std::vector<Tensor>{x});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectNear((*got)[0], (*want)[0]);
    // P keeps its negative values.
    auto neg = ref->Run(std::vector<Tensor>{x});
    ASSERT_TRUE(neg.ok());
    const float* pn = (*neg)[1].data<float>();
    const float* pp = (*got)[1].data<float>();
    bool has_negative = false;
    for (int64_t i = 0; i < (*got)[1].numel(); ++i) {
      ASSERT_NEAR(pp[i], -pn[i], 1e-5f);
      has_negative |= pp[i] < 0.0f;
    }
    EXPECT_TRUE(has_negative);
  }

  // The Conv output feeds the Relu and a Neg.
  auto two = Load(ModelBytes(Graph({Node("Conv", {"X", "W", "B"}, {"P"}, pads),
                                    Node("Relu", {"P"}, {"Y"}), Node("Neg", {"P"}, {"N"})},
                                   inits, {ValueInfo("X", 1, xd)},
                                   {ValueInfo("Y", 1, yd), ValueInfo("N", 1, yd)})));
  ASSERT_TRUE(two);
  for (int run = 0; run < 3; ++run) {
    auto got = two->Run(std::vector<Tensor>{x});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectNear((*got)[0], (*want)[0]);
    ExpectNear((*got)[1], (*want)[1]);
  }

  // Gemm whose output is also a graph output.
  const std::string w = FloatTensor("W", {8, 6}, Values(48, 0.5f, 4));
  auto gemm = Load(ModelBytes(Graph({Node("Gemm", {"X", "W"}, {"P"}), Node("Relu", {"P"}, {"Y"})},
                                    {w}, {ValueInfo("X", 1, {3, 8})},
                                    {ValueInfo("Y", 1, {3, 6}), ValueInfo("P", 1, {3, 6})})));
  ASSERT_TRUE(gemm);
  auto got = gemm->Run(std::vector<Tensor>{Tensor::From<float>({3, 8}, Values(24, 1.0f, 5))});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  bool has_negative = false;
  for (int64_t i = 0; i < 18; ++i) {
    const float p = (*got)[1].data<float>()[i];
    EXPECT_EQ((*got)[0].data<float>()[i], p > 0.0f ? p : 0.0f);
    has_negative |= p < 0.0f;
  }
  EXPECT_TRUE(has_negative);
}

}  // namespace
}  // namespace serveml::engine
