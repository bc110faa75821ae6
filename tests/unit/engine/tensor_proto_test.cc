// ReadTensorProto / WriteTensorProto and initializer conversion.
#include "engine/onnx/tensor_proto.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/engine.h"
#include "engine/float16.h"
#include "engine/onnx/wire.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using onnx::WireWriter;

TEST(TensorProto, RoundTripsEveryNumericType) {
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kInt8, DType::kUInt8, DType::kInt16,
                  DType::kUInt16, DType::kInt32, DType::kInt64, DType::kUInt32, DType::kUInt64,
                  DType::kBool, DType::kFloat16}) {
    Tensor x(t, {2, 3});
    auto* bytes = static_cast<uint8_t*>(x.raw());
    for (size_t i = 0; i < x.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
    if (t == DType::kBool) {
      for (size_t i = 0; i < x.nbytes(); ++i) bytes[i] = i % 2;
    }
    std::string name;
    auto back = ReadTensorProto(WriteTensorProto(x, "t"), &name);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(name, "t");
    EXPECT_EQ(back->dtype(), t);
    EXPECT_EQ(back->shape(), x.shape());
    EXPECT_EQ(0, std::memcmp(back->raw(), x.raw(), x.nbytes()));
  }
}

TEST(TensorProto, StringsAndScalarsAndEmpty) {
  auto s =
      ReadTensorProto(WriteTensorProto(Tensor::FromStrings({3}, {"a", "", "ccc"}), "s"), nullptr);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->strings(), (std::vector<std::string>{"a", "", "ccc"}));
  auto scalar = ReadTensorProto(WriteTensorProto(Tensor::From<float>({}, {2.5f}), ""), nullptr);
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(scalar->rank(), 0u);
  EXPECT_EQ(scalar->data<float>()[0], 2.5f);
  auto empty = ReadTensorProto(WriteTensorProto(Tensor(DType::kFloat32, {0, 4}), ""), nullptr);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->shape(), (std::vector<int64_t>{0, 4}));
}

TEST(TensorProto, TypedFieldsPerOnnxProto) {
  // int32_data carries int8/uint16/bool/float16; uint64_data carries uint32.
  WireWriter w;
  w.Int64Field(1, 3);
  w.Int64Field(2, 3);  // INT8
  for (int64_t v : {-1, 5, -128}) w.Int64Field(5, static_cast<uint64_t>(v));
  auto t = ReadTensorProto(w.str(), nullptr);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->data<int8_t>()[0], -1);
  EXPECT_EQ(t->data<int8_t>()[2], -128);

  WireWriter h;
  h.Int64Field(1, 1);
  h.Int64Field(2, 10);      // FLOAT16
  h.Int64Field(5, 0x3c00);  // 1.0
  auto half = ReadTensorProto(h.str(), nullptr);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(HalfToFloat(half->data<uint16_t>()[0]), 1.0f);
}

TEST(TensorProto, DataMustMatchDims) {
  WireWriter w;
  w.Int64Field(1, 1000000000);
  w.Int64Field(1, 1000000000);  // 1e18 elements and no data: must not allocate
  w.Int64Field(2, 1);
  auto r = ReadTensorProto(w.str(), nullptr);
  EXPECT_EQ(r.status().code(), Code::kInvalidInput);

  WireWriter few;
  few.Int64Field(1, 4);
  few.Int64Field(2, 1);
  few.FloatField(4, 1.0f);
  r = ReadTensorProto(few.str(), nullptr);
  EXPECT_EQ(r.status().code(), Code::kInvalidInput);
  EXPECT_NE(r.status().message().find("need 4"), std::string::npos) << r.status().message();

  WireWriter raw;
  raw.Int64Field(1, 2);
  raw.Int64Field(2, 11);  // DOUBLE
  raw.BytesField(9, std::string(12, '\0'));
  EXPECT_FALSE(ReadTensorProto(raw.str(), nullptr).ok());

  WireWriter neg;
  neg.Int64Field(1, static_cast<uint64_t>(int64_t{-2}));
  neg.Int64Field(2, 1);
  EXPECT_FALSE(ReadTensorProto(neg.str(), nullptr).ok());
}

TEST(TensorProto, ExternalDataAndExoticTypesAreRejectedClearly) {
  WireWriter ext;
  ext.Int64Field(1, 2);
  ext.Int64Field(2, 1);
  ext.Int64Field(14, 1);
  auto r = ReadTensorProto(ext.str(), nullptr);
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("external data is not supported"), std::string::npos);

  WireWriter bf16;
  bf16.Int64Field(1, 1);
  bf16.Int64Field(2, 16);
  bf16.BytesField(9, std::string(2, '\0'));
  r = ReadTensorProto(bf16.str(), nullptr);
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("BFLOAT16"), std::string::npos);
}

TEST(Float16, KnownBitPatterns) {
  // Values from the IEEE 754 binary16 definition.
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);        // rounds to +inf
  EXPECT_EQ(FloatToHalf(5.9604645e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // tie rounds to even
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3c02);  // tie rounds to even (up)
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0001), 5.9604644775390625e-08f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0xfc00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
}

}  // namespace
}  // namespace serveml::engine
