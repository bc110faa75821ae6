// Protobuf wire-format reader and ONNX parsers against malformed and hostile bytes.
#include "engine/onnx/wire.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/engine.h"
#include "engine/onnx/onnx_proto.h"
#include "onnx_builder.h"

namespace serveml::engine {
namespace {

using onnx::WireReader;
using onnx::WireType;
using onnx::WireWriter;
using namespace serveml::engine::testing;  // NOLINT

TEST(WireReader, VarintsRoundTripIncludingExtremes) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                     uint64_t{1} << 35, ~uint64_t{0}}) {
    WireWriter w;
    w.Varint(v);
    WireReader r(w.str());
    uint64_t got = 0;
    ASSERT_TRUE(r.ReadVarint(&got).ok());
    EXPECT_EQ(got, v);
    EXPECT_TRUE(r.done());
  }
  // Hand-encoded: 300 = 0xAC 0x02 (protobuf documentation example).
  const std::string r_bytes = std::string("\xac\x02", 2);
  WireReader r(r_bytes);
  uint64_t v = 0;
  ASSERT_TRUE(r.ReadVarint(&v).ok());
  EXPECT_EQ(v, 300u);
}

TEST(WireReader, RejectsTruncatedAndOverlongVarints) {
  uint64_t v;
  const std::string truncated_bytes = std::string("\x80\x80", 2);
  WireReader truncated(truncated_bytes);
  EXPECT_EQ(truncated.ReadVarint(&v).code(), Code::kInvalidInput);
  std::string eleven(10, '\x80');
  eleven += '\x01';
  WireReader overlong(eleven);
  EXPECT_FALSE(overlong.ReadVarint(&v).ok());
  // 10th byte may only carry the top bit of a 64-bit value.
  std::string too_big(9, '\xff');
  too_big += '\x02';
  WireReader big(too_big);
  EXPECT_FALSE(big.ReadVarint(&v).ok());
  WireReader empty("");
  EXPECT_FALSE(empty.ReadVarint(&v).ok());
}

TEST(WireReader, ZigZag) {
  EXPECT_EQ(onnx::ZigZagDecode64(0), 0);
  EXPECT_EQ(onnx::ZigZagDecode64(1), -1);
  EXPECT_EQ(onnx::ZigZagDecode64(2), 1);
  EXPECT_EQ(onnx::ZigZagDecode64(3), -2);
  EXPECT_EQ(onnx::ZigZagDecode64(~uint64_t{0}), INT64_MIN);
  for (int64_t v : {int64_t{0}, int64_t{-5}, int64_t{77}, INT64_MAX, INT64_MIN}) {
    EXPECT_EQ(onnx::ZigZagDecode64(onnx::ZigZagEncode64(v)), v);
  }
}

TEST(WireReader, RejectsBadTagsAndWireTypes) {
  uint32_t field;
  WireType type;
  for (uint8_t key :
       {uint8_t{0x03}, uint8_t{0x0b}, uint8_t{0x0c}, uint8_t{0x0e}, uint8_t{0x0f}, uint8_t{0x00}}) {
    // wire types 3, 3, 4, 6, 7 and field number 0
    const std::string r_bytes = std::string(1, static_cast<char>(key));
    WireReader r(r_bytes);
    EXPECT_FALSE(r.ReadTag(&field, &type).ok()) << int(key);
  }
  const std::string ok_bytes = std::string("\x0a", 1);
  WireReader ok(ok_bytes);
  ASSERT_TRUE(ok.ReadTag(&field, &type).ok());
  EXPECT_EQ(field, 1u);
  EXPECT_EQ(type, WireType::kLengthDelimited);
}

TEST(WireReader, LengthsBeyondTheBufferAreErrors) {
  std::string_view v;
  // Declares 2^62 bytes.
  const std::string huge_bytes = std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x40", 9);
  WireReader huge(huge_bytes);
  Status st = huge.ReadBytes(&v);
  EXPECT_EQ(st.code(), Code::kInvalidInput);
  EXPECT_NE(st.message().find("length exceeds"), std::string::npos) << st.message();
  const std::string short_payload_bytes = std::string(
      "\x05"
      "abc",
      4);
  WireReader short_payload(short_payload_bytes);
  EXPECT_FALSE(short_payload.ReadBytes(&v).ok());
  uint32_t f32;
  uint64_t f64;
  const std::string three_bytes = std::string("abc");
  WireReader three(three_bytes);
  EXPECT_FALSE(three.ReadFixed32(&f32).ok());
  const std::string seven_bytes = std::string("abcdefg");
  WireReader seven(seven_bytes);
  EXPECT_FALSE(seven.ReadFixed64(&f64).ok());
}

TEST(OnnxParser, WrongWireTypeForKnownFieldIsAnError) {
  // ModelProto.ir_version (1) sent as length-delimited.
  WireWriter w;
  w.BytesField(1, "x");
  onnx::ModelProto m;
  EXPECT_FALSE(onnx::ParseModelProto(w.str(), &m).ok());
}

TEST(OnnxParser, UnknownFieldsAreSkipped) {
  WireWriter w;
  w.Int64Field(1, 9);
  w.Int64Field(999, 5);
  w.DoubleField(998, 1.5);
  w.BytesField(997, "ignored");
  w.Tag(996, WireType::kFixed32);
  w.Fixed32(7);
  onnx::ModelProto m;
  ASSERT_TRUE(onnx::ParseModelProto(w.str(), &m).ok());
  EXPECT_EQ(m.ir_version, 9);
}

TEST(OnnxParser, PackedAndUnpackedRepeatedFields) {
  // dims packed, float_data unpacked
  WireWriter packed_dims;
  packed_dims.Varint(2);
  packed_dims.Varint(300);
  WireWriter t;
  t.BytesField(1, packed_dims.str());
  t.Int64Field(2, 1);
  t.FloatField(4, 1.5f);
  t.FloatField(4, -2.0f);
  onnx::TensorProto p;
  ASSERT_TRUE(onnx::ParseTensorProto(t.str(), &p).ok());
  EXPECT_EQ(p.dims, (std::vector<int64_t>{2, 300}));
  EXPECT_EQ(p.float_data, (std::vector<float>{1.5f, -2.0f}));
  // Packed fixed32 whose length is not a multiple of 4.
  WireWriter bad;
  bad.BytesField(4, "abcde");
  EXPECT_FALSE(onnx::ParseTensorProto(bad.str(), &p).ok());
}

// Graph -> node -> attribute(g) -> graph ... nested `levels` deep.
std::string NestedGraph(int levels) {
  std::string g = Graph({}, {}, {}, {});
  for (int i = 0; i < levels; ++i) {
    WireWriter attr;
    attr.BytesField(1, "body");
    attr.BytesField(6, g);
    WireWriter node;
    node.BytesField(4, "If");
    node.BytesField(5, attr.str());
    WireWriter graph;
    graph.BytesField(1, node.str());
    g = std::move(graph).str();
  }
  return g;
}

TEST(OnnxParser, NestingDepthIsCapped) {
  onnx::GraphProto g;
  EXPECT_TRUE(onnx::ParseGraphProto(NestedGraph(5), &g).ok());
  onnx::GraphProto deep;
  Status st = onnx::ParseGraphProto(NestedGraph(2000), &deep);
  EXPECT_EQ(st.code(), Code::kInvalidInput);
  EXPECT_NE(st.message().find("nesting"), std::string::npos) << st.message();

  // seq(seq(seq(...))) type nesting
  std::string type;
  {
    WireWriter tt;
    tt.Int64Field(1, 1);
    WireWriter t;
    t.BytesField(1, tt.str());
    type = std::move(t).str();
  }
  for (int i = 0; i < 500; ++i) {
    WireWriter seq;
    seq.BytesField(1, type);
    WireWriter t;
    t.BytesField(4, seq.str());
    type = std::move(t).str();
  }
  WireWriter vi;
  vi.BytesField(1, "x");
  vi.BytesField(2, type);
  WireWriter graph;
  graph.BytesField(11, vi.str());
  onnx::GraphProto g2;
  EXPECT_FALSE(onnx::ParseGraphProto(graph.str(), &g2).ok());
}

std::string SmallMlpModel() {
  return ModelBytes(Graph(
      {Node("MatMul", {"X", "W"}, {"m"}), Node("Add", {"m", "B"}, {"h"}),
       Node("Relu", {"h"}, {"Y"}), Node("Softmax", {"Y"}, {"P"}, {AttrInt("axis", 1)})},
      {FloatTensor("W", {2, 2}, {1, 2, 3, 4}), FloatTensor("B", {2}, {0.5f, -100})},
      {ValueInfo("X", 1, {-1, 2})}, {ValueInfo("Y", 1, {-1, 2}), ValueInfo("P", 1, {-1, 2})}));
}

TEST(OnnxParser, EveryTruncationOfAValidModelFailsCleanly) {
  const std::string model = SmallMlpModel();
  ASSERT_TRUE(Model::LoadOnnx(model).ok());
  for (size_t len = 0; len < model.size(); ++len) {
    auto r = Model::LoadOnnx(model.substr(0, len));
    // A prefix ending exactly at a field boundary may parse; it must never crash.
    if (!r.ok()) {
      EXPECT_TRUE(r.status().code() == Code::kInvalidInput ||
                  r.status().code() == Code::kUnsupported)
          << r.status().ToString();
    }
  }
}

TEST(OnnxParser, RandomByteCorruptionNeverCrashes) {
  const std::string model = SmallMlpModel();
  std::mt19937 rng(42);
  int loaded = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = model;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) m[rng() % m.size()] = static_cast<char>(rng());
    auto r = Model::LoadOnnx(m);
    if (r.ok()) {
      ++loaded;
      // Whatever loaded must also run or fail cleanly.
      std::vector<Tensor> in;
      for (const auto& info : (*r)->inputs()) {
        std::vector<int64_t> shape;
        for (int64_t d : info.shape) shape.push_back(d < 0 ? 3 : std::min<int64_t>(d, 8));
        in.emplace_back(info.dtype == DType::kUndefined ? DType::kFloat32 : info.dtype, shape);
      }
      (void)(*r)->Run(in);
    }
  }
  SUCCEED() << loaded << " corrupted models still loaded";
}

}  // namespace
}  // namespace serveml::engine
