#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>

#include "core/crypto.h"
#include "core/json_writer.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace serveml {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidInput("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  RETURN_IF_ERROR(Status::Ok());
  return Status::Ok();
}

TEST(Status, ResultCarriesValueOrError) {
  int v = 0;
  EXPECT_TRUE(UseHalf(4, &v).ok());
  EXPECT_EQ(v, 2);
  Status s = UseHalf(3, &v);
  EXPECT_EQ(s.code(), Code::kInvalidInput);
  EXPECT_EQ(s.ToString(), "INVALID_INPUT: odd");
}

TEST(Tensor, AllocatesAlignedZeroedAndShares) {
  Tensor t(DType::kFloat32, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  Tensor r = t.Reshaped({3, 2});
  r.data<float>()[0] = 5.0f;
  EXPECT_EQ(t.data<float>()[0], 5.0f);  // shared buffer
  Tensor c = t.Clone();
  c.data<float>()[0] = 1.0f;
  EXPECT_EQ(t.data<float>()[0], 5.0f);  // deep copy
  Tensor e(DType::kInt64, {0, 4});
  EXPECT_EQ(e.numel(), 0);
  Tensor s = Tensor::FromStrings({2}, {"a", "b"});
  EXPECT_EQ(s.strings()[1], "b");
}

TEST(JsonWriter, WritesCompactJsonWithShortestNumbers) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Key("a").Float(0.1f);
  w.Key("b").BeginArray().Int(1).Double(2.5).Null().Bool(true).EndArray();
  w.Key("s\"q").String("line\nbreak\x01");
  w.Key("nan").Double(std::numeric_limits<double>::quiet_NaN());
  w.EndObject();
  EXPECT_EQ(out, R"({"a":0.1,"b":[1,2.5,null,true],"s\"q":"line\nbreak\u0001","nan":null})");
}

TEST(Crypto, Sha256KnownVectorAndBase64Url) {
  ASSERT_TRUE(InitCrypto());
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a", 1);
  h.Update("bc", 2);
  EXPECT_EQ(h.FinishHex(), Sha256Hex("abc"));
  std::string dec;
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  ASSERT_TRUE(Base64UrlDecode("-_8", &dec));
  EXPECT_EQ(dec, "\xfb\xff");
  EXPECT_FALSE(Base64UrlDecode("***", &dec));
  std::string u = NewUuid();
  EXPECT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
  EXPECT_NE(NewUuid(), u);
  // RFC 4231 test case 2.
  std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (unsigned char c : mac) {
    static const char* k = "0123456789abcdef";
    hex += k[c >> 4];
    hex += k[c & 15];
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ThreadPool, RunsEverythingQueuedBeforeShutdown) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) pool.Submit([&] { n.fetch_add(1); });
    pool.Shutdown();
    EXPECT_FALSE(pool.Submit([] {}));
  }
  EXPECT_EQ(n.load(), 1000);
}

}  // namespace
}  // namespace serveml
