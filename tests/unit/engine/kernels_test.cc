// Kernels and graph compilation on tiny hand-built models, against hand-derived values.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "engine/engine.h"
#include "engine/ops/op_table.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using namespace serveml::engine::testing;  // NOLINT

std::shared_ptr<Model> Load(const std::string& bytes) {
  auto r = Model::LoadOnnx(bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

std::vector<Tensor> RunOk(const Model& m, std::vector<Tensor> in) {
  auto r = m.Run(in);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<Tensor>{};
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

TEST(OpTable, EntriesAreUniqueAndLookupsWork) {
  auto table = OpTable();
  for (size_t i = 0; i < table.size(); ++i) {
    for (size_t j = i + 1; j < table.size(); ++j) {
      EXPECT_FALSE(table[i].domain == table[j].domain && table[i].op_type == table[j].op_type &&
                   table[i].min_opset == table[j].min_opset);
    }
  }
  EXPECT_NE(FindOp("", "Gemm", 13), nullptr);
  EXPECT_NE(FindOp("ai.onnx", "Gemm", 13), nullptr);
  bool known = false;
  EXPECT_EQ(FindOp("", "Gelu", 19, &known), nullptr);
  EXPECT_TRUE(known);
  EXPECT_EQ(FindOp("", "DFT", 17, &known), nullptr);
  EXPECT_FALSE(known);
}

TEST(Compile, UnsupportedOperatorsAreNamedWithDomainAndOpset) {
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("DFT", {"X", "X"}, {"Y"}), Node("STFT", {"Y"}, {"Z"}),
                        Node("NoSuchMlOp", {"X"}, {"L", "P"}, {}, "ai.onnx.ml")},
                       {}, {ValueInfo("X", 1, {1, 1})}, {ValueInfo("Z", 1, {1, 1})}),
                 17, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("'DFT' (domain ai.onnx, opset 17)"), std::string::npos) << m;
  EXPECT_NE(m.find("'STFT' (domain ai.onnx, opset 17)"), std::string::npos) << m;
  EXPECT_NE(m.find("'NoSuchMlOp' (domain ai.onnx.ml, opset 3)"), std::string::npos);
  EXPECT_NE(m.find("supported in ai.onnx: Abs, Acos"), std::string::npos) << m;
}

TEST(Compile, CyclesAndMissingInputsAreRejected) {
  auto cycle = Model::LoadOnnx(ModelBytes(Graph(
      {Node("Add", {"X", "b"}, {"a"}, {}, "", "n1"), Node("Relu", {"a"}, {"b"}, {}, "", "n2")}, {},
      {ValueInfo("X", 1, {2})}, {ValueInfo("b", 1, {2})})));
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.status().message().find("cycle"), std::string::npos);

  auto missing =
      Model::LoadOnnx(ModelBytes(Graph({Node("Relu", {"nope"}, {"Y"}, {}, "", "r")}, {},
                                       {ValueInfo("X", 1, {2})}, {ValueInfo("Y", 1, {2})})));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kInvalidInput);
  EXPECT_NE(missing.status().message().find("node 'r' (Relu): input 'nope'"), std::string::npos)
      << missing.status().message();

  auto twice =
      Model::LoadOnnx(ModelBytes(Graph({Node("Relu", {"X"}, {"Y"}), Node("Neg", {"X"}, {"Y"})}, {},
                                       {ValueInfo("X", 1, {2})}, {ValueInfo("Y", 1, {2})})));
  EXPECT_FALSE(twice.ok());
}

TEST(Compile, NodesOutOfFileOrderAreSorted) {
  auto m = Load(ModelBytes(Graph({Node("Neg", {"a"}, {"Y"}), Node("Relu", {"X"}, {"a"})}, {},
                                 {ValueInfo("X", 1, {3})}, {ValueInfo("Y", 1, {3})})));
  ASSERT_TRUE(m);
  auto out = RunOk(*m, {Tensor::From<float>({3}, {-1, 0, 2})});
  EXPECT_EQ(Floats(out[0]), (std::vector<float>{0, 0, -2}));
}

TEST(Kernels, GemmWithAllAttributes) {
  // A^T is [[1,2],[3,4]] (A stored transposed), B^T = [[1,0],[0,1]] + ... computed by hand.
  auto m = Load(
      ModelBytes(Graph({Node("Gemm", {"A", "B", "C"}, {"Y"},
                             {AttrFloat("alpha", 2.0f), AttrFloat("beta", 0.5f),
                              AttrInt("transA", 1), AttrInt("transB", 1)})},
                       {FloatTensor("B", {2, 2}, {1, 2, 0, 1}), FloatTensor("C", {2}, {10, 20})},
                       {ValueInfo("A", 1, {2, 2})}, {ValueInfo("Y", 1, {2, 2})})));
  ASSERT_TRUE(m);
  // A stored = [[1,3],[2,4]] => A^T = [[1,2],[3,4]]; B stored [[1,2],[0,1]] => B^T = [[1,0],[2,1]]
  // A^T B^T = [[1*1+2*2, 0+2*1],[3+4*2, 0+4]] = [[5,2],[11,4]]; *2 = [[10,4],[22,8]];
  // + 0.5*[10,20] = [[15,14],[27,18]]
  auto out = RunOk(*m, {Tensor::From<float>({2, 2}, {1, 3, 2, 4})});
  EXPECT_EQ(Floats(out[0]), (std::vector<float>{15, 14, 27, 18}));
}

TEST(Kernels, SoftmaxOfLogsIsTheNormalisedValues) {
  auto m = Load(ModelBytes(Graph({Node("Softmax", {"X"}, {"Y"})}, {}, {ValueInfo("X", 1, {-1, 3})},
                                 {ValueInfo("Y", 1, {-1, 3})})));
  ASSERT_TRUE(m);
  auto out = RunOk(
      *m, {Tensor::From<float>({2, 3}, {0, std::log(2.0f), std::log(3.0f), 1000, 1000, 1000})});
  auto y = Floats(out[0]);
  const float expect[] = {1.f / 6, 2.f / 6, 3.f / 6, 1.f / 3, 1.f / 3, 1.f / 3};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i], expect[i], 1e-6) << i;
}

TEST(Kernels, ReshapeZeroAndMinusOne) {
  auto m = Load(
      ModelBytes(Graph({Node("Reshape", {"X", "S"}, {"Y"})}, {Int64Tensor("S", {3}, {0, -1, 2})},
                       {ValueInfo("X", 1, {2, 3, 4})}, {ValueInfo("Y", 1, {})})));
  ASSERT_TRUE(m);
  auto out = RunOk(*m, {Tensor(DType::kFloat32, {2, 3, 4})});
  EXPECT_EQ(out[0].shape(), (std::vector<int64_t>{2, 6, 2}));
  auto bad =
      Load(ModelBytes(Graph({Node("Reshape", {"X", "S"}, {"Y"})}, {Int64Tensor("S", {2}, {-1, -1})},
                            {ValueInfo("X", 1, {4})}, {ValueInfo("Y", 1, {})})));
  ASSERT_TRUE(bad);
  auto r = bad->Run(std::vector<Tensor>{Tensor(DType::kFloat32, {4})});
  EXPECT_FALSE(r.ok());
}

TEST(Kernels, ArgMaxTiesAndKeepdims) {
  auto make = [](int64_t last) {
    return Load(ModelBytes(Graph(
        {Node("ArgMax", {"X"}, {"Y"},
              {AttrInt("axis", 1), AttrInt("keepdims", 0), AttrInt("select_last_index", last)})},
        {}, {ValueInfo("X", 1, {2, 3})}, {ValueInfo("Y", 7, {2})})));
  };
  Tensor x = Tensor::From<float>({2, 3}, {1, 5, 5, 7, 2, 7});
  auto first = RunOk(*make(0), {x});
  auto last = RunOk(*make(1), {x});
  EXPECT_EQ(first[0].shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(first[0].data<int64_t>()[0], 1);
  EXPECT_EQ(first[0].data<int64_t>()[1], 0);
  EXPECT_EQ(last[0].data<int64_t>()[0], 2);
  EXPECT_EQ(last[0].data<int64_t>()[1], 2);
}

TEST(Kernels, IntegerDivisionByZeroIsAnErrorNotACrash) {
  auto m = Load(ModelBytes(Graph({Node("Div", {"A", "B"}, {"Y"})}, {},
                                 {ValueInfo("A", 6, {2}), ValueInfo("B", 6, {2})},
                                 {ValueInfo("Y", 6, {2})})));
  ASSERT_TRUE(m);
  auto ok =
      RunOk(*m, {Tensor::From<int32_t>({2}, {INT32_MIN, 7}), Tensor::From<int32_t>({2}, {-1, 2})});
  EXPECT_EQ(ok[0].data<int32_t>()[1], 3);
  auto r = m->Run(
      std::vector<Tensor>{Tensor::From<int32_t>({2}, {1, 2}), Tensor::From<int32_t>({2}, {1, 0})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("division by zero"), std::string::npos);
}

TEST(Kernels, CastFloatToHalfAndBool) {
  auto m = Load(
      ModelBytes(Graph({Node("Cast", {"X"}, {"H"}, {AttrInt("to", 10)}),
                        Node("Cast", {"X"}, {"B"}, {AttrInt("to", 9)}),
                        Node("Cast", {"X"}, {"I"}, {AttrInt("to", 7)})},
                       {}, {ValueInfo("X", 1, {3})},
                       {ValueInfo("H", 10, {3}), ValueInfo("B", 9, {3}), ValueInfo("I", 7, {3})})));
  ASSERT_TRUE(m);
  auto out = RunOk(*m, {Tensor::From<float>({3}, {1.0f, 0.0f, -2.75f})});
  EXPECT_EQ(out[0].data<uint16_t>()[0], 0x3c00);
  EXPECT_EQ(out[0].data<uint16_t>()[2], 0xc180);  // -2.75 = -1.375 * 2^1
  EXPECT_EQ(out[1].data<uint8_t>()[0], 1);
  EXPECT_EQ(out[1].data<uint8_t>()[1], 0);
  EXPECT_EQ(out[2].data<int64_t>()[2], -2);  // truncation toward zero
}

TEST(Kernels, LinearClassifierBinaryExpandsToTwoColumnsAndZipMapInfo) {
  auto m = Load(ModelBytes(Graph(
      {Node("LinearClassifier", {"X"}, {"label", "scores"},
            {AttrFloats("coefficients", {1, -1}), AttrFloats("intercepts", {0.5f}),
             AttrInts("classlabels_ints", {4, 9})},
            "ai.onnx.ml"),
       Node("ZipMap", {"scores"}, {"probs"}, {AttrInts("classlabels_int64s", {4, 9})},
            "ai.onnx.ml")},
      {}, {ValueInfo("X", 1, {-1, 2})}, {ValueInfo("label", 7, {-1}), ValueInfo("probs", 1, {})})));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->outputs().size(), 2u);
  const TensorInfo& zi = m->outputs()[1];
  EXPECT_TRUE(zi.is_zipmap);
  EXPECT_TRUE(zi.zipmap_int_keys);
  EXPECT_EQ(zi.zipmap_keys, (std::vector<std::string>{"4", "9"}));
  // score = x0 - x1 + 0.5: row0 = 1-3+0.5 = -1.5 (label 4), row1 = 2-0+0.5 = 2.5 (label 9)
  auto out = RunOk(*m, {Tensor::From<float>({2, 2}, {1, 3, 2, 0})});
  EXPECT_EQ(out[0].data<int64_t>()[0], 4);
  EXPECT_EQ(out[0].data<int64_t>()[1], 9);
  EXPECT_EQ(out[1].shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(Floats(out[1]), (std::vector<float>{2.5f, -1.5f, -1.5f, 2.5f}));
}

TEST(Kernels, StringLabelsFlowThroughArrayFeatureExtractor) {
  WireWriter classes;
  classes.Int64Field(1, 3);
  classes.Int64Field(2, 8);
  classes.BytesField(6, "cat");
  classes.BytesField(6, "dog");
  classes.BytesField(6, "eel");
  classes.BytesField(8, "classes");
  auto m = Load(
      ModelBytes(Graph({Node("ArgMax", {"P"}, {"i"}, {AttrInt("axis", 1), AttrInt("keepdims", 0)}),
                        Node("ArrayFeatureExtractor", {"classes", "i"}, {"L"}, {}, "ai.onnx.ml")},
                       {classes.str()}, {ValueInfo("P", 1, {-1, 3})}, {ValueInfo("L", 8, {})})));
  ASSERT_TRUE(m);
  auto out = RunOk(*m, {Tensor::From<float>({2, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.1f, 0.4f})});
  EXPECT_EQ(out[0].shape(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(out[0].strings(), (std::vector<std::string>{"dog", "cat"}));
}

TEST(Kernels, HugeBroadcastIsRefusedNotAllocated) {
  auto m = ModelBytes(Graph({Node("Add", {"A", "B"}, {"Y"})}, {},
                            {ValueInfo("A", 1, {-1, 1}), ValueInfo("B", 1, {1, -1})},
                            {ValueInfo("Y", 1, {-1, -1})}));
  auto model = Load(m);
  ASSERT_TRUE(model);
  // 20000 x 20000 floats = 1.6 GB from two 80 KB inputs.
  auto r = model->Run(std::vector<Tensor>{Tensor(DType::kFloat32, {20000, 1}),
                                          Tensor(DType::kFloat32, {1, 20000})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
}

TEST(Kernels, TensorElementLimitIsAdjustable) {
  auto model = Load(ModelBytes(Graph({Node("Add", {"A", "B"}, {"Y"})}, {},
                                     {ValueInfo("A", 1, {-1, 1}), ValueInfo("B", 1, {1, -1})},
                                     {ValueInfo("Y", 1, {-1, -1})})));
  ASSERT_TRUE(model);
  const std::vector<Tensor> in{Tensor(DType::kFloat32, {100, 1}),
                               Tensor(DType::kFloat32, {1, 100})};
  SetTensorElementLimit(9999);
  auto refused = model->Run(in);
  SetTensorElementLimit(10000);
  auto at_limit = model->Run(in);
  SetTensorElementLimit(0);  // out of range: back to the default
  if (!std::getenv("SERVEML_ENGINE_MAX_TENSOR_ELEMENTS")) {
    EXPECT_EQ(TensorElementLimit(), int64_t{1} << 28);
  }
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("limit 9999 elements"), std::string::npos)
      << refused.status().message();
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().message();
  EXPECT_EQ((*at_limit)[0].numel(), 10000);
}

TEST(Kernels, NodeWorkLimitRefusesHugeWindowsBeforeWorking) {
  // Small tensors, large work: a 1x1x64x64 image with a 32x32 kernel is 33^2 * 32^2 =
  // 1,115,136 multiply-adds for a 33x33 output.
  auto model =
      Load(ModelBytes(Graph({Node("Conv", {"X", "W"}, {"Y"})}, {},
                            {ValueInfo("X", 1, {1, 1, 64, 64}), ValueInfo("W", 1, {1, 1, 32, 32})},
                            {ValueInfo("Y", 1, {1, 1, 33, 33})})));
  ASSERT_TRUE(model);
  std::vector<Tensor> in{Tensor(DType::kFloat32, {1, 1, 64, 64}),
                         Tensor(DType::kFloat32, {1, 1, 32, 32})};
  for (Tensor& t : in) std::fill(t.data<float>(), t.data<float>() + t.numel(), 1.0f);
  SetNodeWorkLimit(1115135);
  auto refused = model->Run(in);
  SetNodeWorkLimit(1115136);
  auto at_limit = model->Run(in);
  SetNodeWorkLimit(0);  // out of range: back to the default
  if (!std::getenv("SERVEML_ENGINE_MAX_NODE_WORK")) EXPECT_EQ(NodeWorkLimit(), 1e13);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("Conv would take 1.12e+06 multiply-adds"),
            std::string::npos)
      << refused.status().message();
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().message();
  EXPECT_EQ((*at_limit)[0].data<float>()[0], 1024.0f);  // a full window of ones
}

TEST(Kernels, AttributeClipRefusesIntegerTensors) {
  // Clip-6 is defined for float types only; its default bounds (+-FLT_MAX) do not fit in an
  // integer (found by the ONNX fuzz target).
  auto model = Load(ModelBytes(
      Graph({Node("Clip", {"X"}, {"Y"})}, {}, {ValueInfo("X", 7, {3})}, {ValueInfo("Y", 7, {3})}),
      /*opset=*/6));
  ASSERT_TRUE(model);
  auto r = model->Run(std::vector<Tensor>{Tensor::From<int64_t>({3}, {-5, 0, 5})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Clip before opset 11"), std::string::npos)
      << r.status().message();
}

TEST(Kernels, AttributePadRefusesIntegerTensors) {
  // Pad-2's float `value` (here 1e28) cannot be converted to an integer element (found by
  // the ONNX fuzz target); the spec defines that form for float types only.
  auto model = Load(ModelBytes(
      Graph({Node("Pad", {"X"}, {"Y"}, {AttrInts("pads", {1, 1}), AttrFloat("value", 1e28f)})}, {},
            {ValueInfo("X", 13, {2})}, {ValueInfo("Y", 13, {4})}),
      /*opset=*/2));
  ASSERT_TRUE(model);
  auto r = model->Run(std::vector<Tensor>{Tensor::From<uint64_t>({2}, {1, 2})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Pad before opset 11"), std::string::npos)
      << r.status().message();
}

TEST(Model, InputValidationAndDynamicBatch) {
  auto m = Load(ModelBytes(Graph({Node("Relu", {"X"}, {"Y"})}, {}, {ValueInfo("X", 1, {-1, 2})},
                                 {ValueInfo("Y", 1, {-1, 2})})));
  ASSERT_TRUE(m);
  for (int64_t n : {0, 1, 5}) {
    auto out = RunOk(*m, {Tensor(DType::kFloat32, {n, 2})});
    EXPECT_EQ(out[0].shape(), (std::vector<int64_t>{n, 2}));
  }
  auto wrong_type = m->Run(std::vector<Tensor>{Tensor(DType::kFloat64, {1, 2})});
  EXPECT_EQ(wrong_type.status().code(), Code::kInvalidInput);
  auto wrong_shape = m->Run(std::vector<Tensor>{Tensor(DType::kFloat32, {1, 3})});
  EXPECT_EQ(wrong_shape.status().code(), Code::kInvalidInput);
  EXPECT_NE(wrong_shape.status().message().find("[?, 2]"), std::string::npos);
  auto wrong_count = m->Run(std::vector<Tensor>{});
  EXPECT_EQ(wrong_count.status().code(), Code::kInvalidInput);
}

TEST(Model, InfoIsFilled) {
  auto m = Load(ModelBytes(Graph({Node("Identity", {"X"}, {"Y"})}, {}, {ValueInfo("X", 1, {-1, 2})},
                                 {ValueInfo("Y", 1, {-1, 2})}),
                           13));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->info().ir_version, 8);
  EXPECT_EQ(m->info().producer_name, "unit-test");
  EXPECT_EQ(m->info().graph_name, "test_graph");
  EXPECT_EQ(m->info().opsets.at(""), 13);
  EXPECT_EQ(m->info().opsets.at("ai.onnx.ml"), 1);
  EXPECT_EQ(m->info().node_count, 1);
  EXPECT_EQ(m->inputs()[0].shape, (std::vector<int64_t>{-1, 2}));
}

TEST(Model, RunIsThreadSafe) {
  // Y = Relu(X @ W + b) with W = 2*I, b = [-1, 1]: expected values are easy to derive.
  auto m = Load(
      ModelBytes(Graph({Node("Gemm", {"X", "W", "b"}, {"h"}), Node("Relu", {"h"}, {"Y"})},
                       {FloatTensor("W", {2, 2}, {2, 0, 0, 2}), FloatTensor("b", {2}, {-1, 1})},
                       {ValueInfo("X", 1, {-1, 2})}, {ValueInfo("Y", 1, {-1, 2})})));
  ASSERT_TRUE(m);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < 500; ++it) {
        const int64_t n = 1 + (it + t) % 7;
        std::vector<float> x(static_cast<size_t>(n * 2));
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(t * 100 + it) - i * 3.f;
        auto r = m->Run(std::vector<Tensor>{Tensor::From<float>({n, 2}, x)});
        if (!r.ok()) {
          ++failures;
          continue;
        }
        const float* y = (*r)[0].data<float>();
        for (int64_t i = 0; i < n; ++i) {
          const float e0 = std::max(0.f, 2 * x[i * 2] - 1);
          const float e1 = std::max(0.f, 2 * x[i * 2 + 1] + 1);
          if (y[i * 2] != e0 || y[i * 2 + 1] != e1) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace serveml::engine
