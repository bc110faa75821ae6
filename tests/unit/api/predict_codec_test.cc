#include "api/predict_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace serveml::api {
namespace {

engine::TensorInfo Info(std::string name, DType t, std::vector<int64_t> shape) {
  engine::TensorInfo i;
  i.name = std::move(name);
  i.dtype = t;
  i.shape = std::move(shape);
  i.has_shape = true;
  return i;
}

runtime::ModelSignature Tabular(int64_t features) {
  runtime::ModelSignature s;
  s.inputs = {Info("x", DType::kFloat32, {-1, features})};
  s.outputs = {Info("y", DType::kFloat32, {-1, 1})};
  return s;
}

TEST(PredictCodec, SingleRowAndBatch) {
  auto sig = Tabular(3);
  auto one = ParsePredictRequest(R"({"data": [1, 2.5, -3]})", sig);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_TRUE(one->single);
  EXPECT_EQ(one->tensors[0].shape(), (std::vector<int64_t>{1, 3}));
  EXPECT_FLOAT_EQ(one->tensors[0].data<float>()[1], 2.5f);
  auto many = ParsePredictRequest(R"({"data": [[1,2,3],[4,5,6]]})", sig);
  ASSERT_TRUE(many.ok());
  EXPECT_FALSE(many->single);
  EXPECT_EQ(many->batch, 2);
  EXPECT_FLOAT_EQ(many->tensors[0].data<float>()[5], 6.0f);
}

TEST(PredictCodec, RejectsBadInputWithSpecificMessages) {
  auto sig = Tabular(3);
  struct Case {
    const char* body;
    const char* needle;
  } cases[] = {
      {R"({"data": [1, 2]})", "expected 3 features per row, got 2"},
      {R"({"data": [[1,2,3],[1,2]]})", "same length"},
      {R"({"data": [1, "a", 3]})", "data[1] is not a number"},
      {R"({"data": []})", "empty"},
      {R"({"data": [[[1,2,3]]]})", "nested 3 deep"},
      {R"({"rows": [1]})", "'data'"},
      {R"([1,2])", "JSON object"},
      {R"({"data": [1,2,)", "not valid JSON"},
      {R"({"data": {"a": 1}})", "no feature names"},
  };
  for (const auto& c : cases) {
    auto r = ParsePredictRequest(c.body, sig);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), Code::kInvalidInput) << c.body;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos)
        << c.body << " -> " << r.status().message();
  }
}

TEST(PredictCodec, NullIsMissingValue) {
  auto r = ParsePredictRequest(R"({"data": [1, null, 3]})", Tabular(3));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::isnan(r->tensors[0].data<float>()[1]));
}

TEST(PredictCodec, NamedFeaturesMapToColumns) {
  auto sig = Tabular(2);
  sig.feature_names = {"a", "b"};
  auto r = ParsePredictRequest(R"({"data": {"b": 2, "a": 1}})", sig);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FLOAT_EQ(r->tensors[0].data<float>()[0], 1.0f);
  EXPECT_FLOAT_EQ(r->tensors[0].data<float>()[1], 2.0f);
  auto missing = ParsePredictRequest(R"({"data": {"a": 1}})", sig);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing feature 'b'"), std::string::npos);
  auto batch = ParsePredictRequest(R"({"data": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})", sig);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->batch, 2);
  EXPECT_FLOAT_EQ(batch->tensors[0].data<float>()[2], 3.0f);
}

TEST(PredictCodec, IntegerInputsRejectFractions) {
  runtime::ModelSignature sig;
  sig.inputs = {Info("x", DType::kInt64, {-1, 2})};
  sig.outputs = {Info("y", DType::kInt64, {-1})};
  EXPECT_TRUE(ParsePredictRequest(R"({"data": [1, 2]})", sig).ok());
  EXPECT_FALSE(ParsePredictRequest(R"({"data": [1.5, 2]})", sig).ok());
}

TEST(PredictCodec, IntegerInputsRejectValuesOutOfRange) {
  runtime::ModelSignature sig;
  sig.inputs = {Info("x", DType::kInt64, {-1, 2})};
  sig.outputs = {Info("y", DType::kInt64, {-1})};
  auto big = ParsePredictRequest(R"({"data": [5e72, 2]})", sig);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("out of range for int64"), std::string::npos)
      << big.status().ToString();
  EXPECT_FALSE(ParsePredictRequest(R"({"data": [9223372036854775808, 2]})", sig).ok());
  auto edge = ParsePredictRequest(R"({"data": [-9223372036854775808, 4611686018427387904]})", sig);
  ASSERT_TRUE(edge.ok()) << edge.status().ToString();
  EXPECT_EQ(edge->tensors[0].data<int64_t>()[0], std::numeric_limits<int64_t>::min());
  sig.inputs = {Info("x", DType::kInt32, {-1, 2})};
  EXPECT_FALSE(ParsePredictRequest(R"({"data": [2147483648, 2]})", sig).ok());
  EXPECT_TRUE(ParsePredictRequest(R"({"data": [2147483647, -2147483648]})", sig).ok());
  sig.inputs = {Info("x", DType::kUInt8, {-1, 2})};
  EXPECT_FALSE(ParsePredictRequest(R"({"data": [256, 2]})", sig).ok());
  EXPECT_TRUE(ParsePredictRequest(R"({"data": [255, 0]})", sig).ok());
}

TEST(PredictCodec, WritesClassifierResponse) {
  runtime::ModelSignature sig;
  sig.inputs = {Info("x", DType::kFloat32, {-1, 2})};
  sig.outputs = {Info("label", DType::kInt64, {-1}), Info("probs", DType::kFloat32, {-1, 2})};
  sig.output_kind = runtime::OutputKind::kClassifier;
  sig.label_output = 0;
  sig.prob_output = 1;
  std::vector<Tensor> outs = {Tensor::From<int64_t>({2}, {1, 0}),
                              Tensor::From<float>({2, 2}, {0.25f, 0.75f, 0.5f, 0.5f})};
  auto body = WritePredictResponse(sig, outs, false, 2, "v3", 1.5);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(
      *body,
      R"({"predictions":[1,0],"probabilities":[[0.25,0.75],[0.5,0.5]],"model_version":"v3","response_time_ms":1.5,"batch_size":2})");
  std::vector<Tensor> one = {Tensor::From<int64_t>({1}, {1}),
                             Tensor::From<float>({1, 2}, {0.25f, 0.75f})};
  auto single = WritePredictResponse(sig, one, true, 1, "v3", 0.25);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(
      *single,
      R"({"prediction":1,"probabilities":[0.25,0.75],"model_version":"v3","response_time_ms":0.25})");
}

TEST(PredictCodec, SqueezesColumnOutputs) {
  auto sig = Tabular(1);
  std::vector<Tensor> outs = {Tensor::From<float>({2, 1}, {1.5f, -2.0f})};
  auto body = WritePredictResponse(sig, outs, false, 2, "v1", 0);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body,
            R"({"predictions":[1.5,-2],"model_version":"v1","response_time_ms":0,"batch_size":2})");
}

}  // namespace
}  // namespace serveml::api
