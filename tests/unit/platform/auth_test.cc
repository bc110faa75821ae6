#include "platform/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"

namespace serveml::platform {
namespace {

namespace fs = std::filesystem;

const PasswordHashParams kFast = PasswordHashParams::ForTesting();

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto());
    log::SetLevel(log::Level::kError);
    std::string tmpl = (fs::temp_directory_path() / "serveml-auth-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    log::SetLevel(log::Level::kInfo);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  TokenSigner Signer(const std::string& name = "token.key") {
    auto s = TokenSigner::LoadOrCreate(dir_ + "/" + name);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }

  std::string dir_;
};

std::string B64(std::string_view s) { return Base64UrlEncode(s); }

// Splits a JWT into its three parts.
std::vector<std::string> Parts(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = token.find('.', start);
    parts.push_back(
        token.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

// --- Passwords -------------------------------------------------------------------------

TEST_F(AuthTest, HashAndVerifyPassword) {
  auto h = HashPassword("correct horse battery", kFast);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->rfind("$argon2id$", 0), 0u) << *h;
  EXPECT_TRUE(VerifyPassword(*h, "correct horse battery"));
  EXPECT_FALSE(VerifyPassword(*h, "correct horse batterY"));
  EXPECT_FALSE(VerifyPassword(*h, ""));
  // Fresh salt each time.
  auto h2 = HashPassword("correct horse battery", kFast);
  EXPECT_NE(*h, *h2);
  EXPECT_TRUE(VerifyPassword(*h2, "correct horse battery"));
}

TEST_F(AuthTest, VerifyRejectsMalformedHashes) {
  EXPECT_FALSE(VerifyPassword("", "password1"));
  EXPECT_FALSE(VerifyPassword("not a hash", "password1"));
  EXPECT_FALSE(VerifyPassword("$argon2id$v=19$m=8,t=1,p=1$$", "password1"));
  EXPECT_FALSE(VerifyPassword(std::string(500, '$'), "password1"));
  VerifyPasswordDummy("whatever");  // must not crash
}

TEST_F(AuthTest, DefaultParamsAreInteractiveArgon2id) {
  auto h = HashPassword("s3cret-passw0rd");
  ASSERT_TRUE(h.ok());
  EXPECT_NE(h->find("m=65536,t=2"), std::string::npos) << *h;
  EXPECT_TRUE(VerifyPassword(*h, "s3cret-passw0rd"));
  EXPECT_FALSE(PasswordNeedsRehash(*h));
  auto weak = HashPassword("s3cret-passw0rd", kFast);
  EXPECT_TRUE(PasswordNeedsRehash(*weak));
}

TEST_F(AuthTest, NonAsciiAndBinaryPasswords) {
  const std::string pw = std::string("p\xC3\xA4ss\0word", 11);
  auto h = HashPassword(pw, kFast);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(VerifyPassword(*h, pw));
  EXPECT_FALSE(VerifyPassword(*h, "p\xC3\xA4ss"));  // not truncated at NUL
}

// --- Tokens ----------------------------------------------------------------------------

TEST_F(AuthTest, TokenRoundTrip) {
  TokenSigner s = Signer();
  const int64_t now = 1'800'000'000;
  std::string t = s.Issue("user-123", 3600, now);
  auto parts = Parts(t);
  ASSERT_EQ(parts.size(), 3u);
  std::string header, payload;
  ASSERT_TRUE(Base64UrlDecode(parts[0], &header));
  ASSERT_TRUE(Base64UrlDecode(parts[1], &payload));
  EXPECT_EQ(header, R"({"alg":"HS256","typ":"JWT"})");
  EXPECT_NE(payload.find(R"("sub":"user-123")"), std::string::npos) << payload;
  EXPECT_NE(payload.find(R"("iat":1800000000)"), std::string::npos) << payload;
  EXPECT_NE(payload.find(R"("exp":1800003600)"), std::string::npos) << payload;
  EXPECT_NE(payload.find(R"("jti":")"), std::string::npos) << payload;
  // Signature is HMAC-SHA256 over "header.payload" (independent check).
  std::string key = std::string(std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(
                                    dir_ + "/token.key", std::ios::binary)),
                                {});
  ASSERT_EQ(key.size(), 32u);
  EXPECT_EQ(parts[2], B64(HmacSha256(key, parts[0] + "." + parts[1])));

  auto sub = s.Verify(t, now);
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  EXPECT_EQ(*sub, "user-123");
  EXPECT_TRUE(s.Verify(t, now + 3599).ok());
  // Unique ids per token.
  EXPECT_NE(s.Issue("user-123", 3600, now), t);
}

TEST_F(AuthTest, ExpiredToken) {
  TokenSigner s = Signer();
  std::string t = s.Issue("u", 60, 1000);
  auto r = s.Verify(t, 1060);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnauthorized);
  EXPECT_EQ(r.status().message(), "token expired");
  EXPECT_FALSE(s.Verify(s.Issue("u", 0, 1000), 1000).ok());
}

TEST_F(AuthTest, TamperedPayloadIsRejected) {
  TokenSigner s = Signer();
  std::string t = s.Issue("alice", 3600, 1000);
  auto parts = Parts(t);
  std::string payload;
  ASSERT_TRUE(Base64UrlDecode(parts[1], &payload));
  payload.replace(payload.find("alice"), 5, "admin");
  std::string forged = parts[0] + "." + B64(payload) + "." + parts[2];
  auto r = s.Verify(forged, 1001);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnauthorized);
  EXPECT_EQ(r.status().message(), "invalid token signature");

  // Flipping one signature character.
  std::string bad_sig = t;
  bad_sig.back() = bad_sig.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(s.Verify(bad_sig, 1001).status().code(), Code::kUnauthorized);
}

TEST_F(AuthTest, AlgNoneAndOtherAlgorithmsAreRejected) {
  TokenSigner s = Signer();
  const std::string claims = B64(R"({"sub":"alice","iat":1000,"exp":999999999999})");
  for (const char* header :
       {R"({"alg":"none","typ":"JWT"})", R"({"alg":"None"})", R"({"alg":"HS512","typ":"JWT"})",
        R"({"alg":"RS256"})", R"({"typ":"JWT"})", R"({"alg":["HS256"]})"}) {
    for (const std::string& sig : {std::string(), B64("x")}) {
      auto r = s.Verify(B64(header) + "." + claims + "." + sig, 1001);
      ASSERT_FALSE(r.ok()) << header;
      EXPECT_EQ(r.status().code(), Code::kUnauthorized);
    }
  }
  auto r = s.Verify(B64(R"({"alg":"none"})") + "." + claims + ".", 1001);
  EXPECT_EQ(r.status().message(), "unsupported token algorithm");
}

TEST_F(AuthTest, WrongKeyIsRejected) {
  TokenSigner a = Signer("a.key");
  TokenSigner b = Signer("b.key");
  std::string t = a.Issue("alice", 3600, 1000);
  EXPECT_TRUE(a.Verify(t, 1001).ok());
  auto r = b.Verify(t, 1001);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "invalid token signature");
}

TEST_F(AuthTest, MalformedTokensAreRejected) {
  TokenSigner s = Signer();
  std::string good = s.Issue("alice", 3600, 1000);
  auto parts = Parts(good);
  const std::vector<std::string> bad = {
      "",
      "abc",
      "a.b",
      "a.b.c.d",
      good + ".",
      "!!!." + parts[1] + "." + parts[2],
      parts[0] + ".***." + parts[2],
      B64("not json") + "." + parts[1] + "." + parts[2],
      B64("[1,2]") + "." + parts[1] + "." + parts[2],
      std::string(10000, 'a') + "." + parts[1] + "." + parts[2],
      parts[0] + "=" + "." + parts[1] + "." + parts[2],  // padding is not JWT base64url
  };
  for (const std::string& t : bad) {
    auto r = s.Verify(t, 1001);
    EXPECT_FALSE(r.ok()) << t;
    EXPECT_EQ(r.status().code(), Code::kUnauthorized) << t;
  }
  // A validly signed token whose claims are not what we issue (no sub / non-integer exp).
  auto sign = [&](const std::string& claims_json) {
    // Re-sign with the real key to test claim checks past the signature.
    std::string key;
    std::ifstream in(dir_ + "/token.key", std::ios::binary);
    key.assign(std::istreambuf_iterator<char>(in), {});
    std::string input = B64(R"({"alg":"HS256","typ":"JWT"})") + "." + B64(claims_json);
    return input + "." + B64(HmacSha256(key, input));
  };
  EXPECT_TRUE(s.Verify(sign(R"({"sub":"x","exp":2000})"), 1001).ok());
  EXPECT_EQ(s.Verify(sign(R"({"exp":2000})"), 1001).status().message(), "malformed token");
  EXPECT_EQ(s.Verify(sign(R"({"sub":"","exp":2000})"), 1001).status().message(), "malformed token");
  EXPECT_EQ(s.Verify(sign(R"({"sub":"x","exp":"2000"})"), 1001).status().message(),
            "malformed token");
  EXPECT_EQ(s.Verify(sign(R"({"sub":"x"})"), 1001).status().message(), "malformed token");
  EXPECT_EQ(s.Verify(sign("not json"), 1001).status().message(), "malformed token");
  EXPECT_EQ(s.Verify(sign(R"({"sub":"x","exp":2000,"nbf":1500})"), 1001).status().message(),
            "token not yet valid");
}

TEST_F(AuthTest, KeyFileIsCreatedPrivateAndReused) {
  const std::string path = dir_ + "/keys/token.key";  // parent created on demand
  auto first = TokenSigner::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);

  auto second = TokenSigner::LoadOrCreate(path);
  ASSERT_TRUE(second.ok());
  // Same key: a token from the first verifies with the second.
  std::string t = first->Issue("alice", 60, 1000);
  EXPECT_EQ(*second->Verify(t, 1001), "alice");
  // No temp files left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/keys")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(AuthTest, LooseKeyFilePermissionsAreFixed) {
  const std::string path = dir_ + "/token.key";
  ASSERT_TRUE(TokenSigner::LoadOrCreate(path).ok());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(TokenSigner::LoadOrCreate(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AuthTest, CorruptKeyFileIsAnError) {
  const std::string path = dir_ + "/token.key";
  {
    std::ofstream out(path, std::ios::binary);
    out << "short";
  }
  chmod(path.c_str(), 0600);
  auto r = TokenSigner::LoadOrCreate(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("expected 32"), std::string::npos);
}

TEST_F(AuthTest, ConcurrentLoadOrCreateAgreesOnOneKey) {
  const std::string path = dir_ + "/race.key";
  constexpr int kThreads = 8;
  std::vector<std::string> tokens(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto s = TokenSigner::LoadOrCreate(path);
      if (s.ok()) tokens[i] = s->Issue("u" + std::to_string(i), 60, 1000);
    });
  }
  for (auto& t : threads) t.join();
  auto verifier = TokenSigner::LoadOrCreate(path);
  ASSERT_TRUE(verifier.ok());
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_FALSE(tokens[i].empty());
    EXPECT_TRUE(verifier->Verify(tokens[i], 1001).ok()) << i;
  }
}

TEST_F(AuthTest, FromKey) {
  EXPECT_EQ(TokenSigner::FromKey("short").status().code(), Code::kInvalidInput);
  auto s = TokenSigner::FromKey(std::string(32, 'k'));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s->Verify(s->Issue("bob", 10, 5), 6), "bob");
}

// --- API keys --------------------------------------------------------------------------

TEST_F(AuthTest, ApiKeyFormatAndUniqueness) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string k = GenerateApiKey();
    ASSERT_EQ(k.size(), 43u);
    ASSERT_EQ(k.substr(0, 3), "sk-");
    for (char c : k.substr(3)) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << k;
    EXPECT_TRUE(LooksLikeApiKey(k));
    EXPECT_TRUE(seen.insert(k).second);
  }
  const std::string k = GenerateApiKey();
  EXPECT_EQ(ApiKeyPrefix(k), k.substr(0, 7));
  EXPECT_EQ(HashApiKey(k), Sha256Hex(k));
  EXPECT_EQ(HashApiKey(k).size(), 64u);
  EXPECT_NE(HashApiKey(k), HashApiKey(GenerateApiKey()));
  EXPECT_FALSE(LooksLikeApiKey("sk-short"));
  EXPECT_FALSE(LooksLikeApiKey("pk-" + k.substr(3)));
  EXPECT_FALSE(LooksLikeApiKey(k.substr(0, 42) + "-"));
  EXPECT_FALSE(LooksLikeApiKey("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
}

TEST_F(AuthTest, ApiKeyAlphabetIsUsedEvenly) {
  // 62 symbols x 40 chars x 2000 keys: every symbol appears, none wildly over-represented.
  std::map<char, int> counts;
  for (int i = 0; i < 2000; ++i) {
    for (char c : GenerateApiKey().substr(3)) ++counts[c];
  }
  EXPECT_EQ(counts.size(), 62u);
  const double expected = 2000.0 * 40 / 62;
  for (const auto& [c, n] : counts) {
    EXPECT_GT(n, expected * 0.8) << c;
    EXPECT_LT(n, expected * 1.2) << c;
  }
}

// --- Validation ------------------------------------------------------------------------

TEST_F(AuthTest, ValidateEmail) {
  for (const char* ok : {"a@b.co", "alice@example.com", "Alice.Smith+tag@mail.example.org",
                         "x_y-z@sub-domain.example.io"}) {
    EXPECT_TRUE(ValidateEmail(ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "alice", "alice@", "@example.com", "alice@example", "alice@@example.com",
        "a@b@example.com", "alice @example.com", "alice@exa mple.com", ".alice@example.com",
        "al..ice@example.com", "alice@-example.com", "alice@example..com", "alice@example.com.",
        "al\"ice@example.com", "\xC3\xA4@example.com", "alice@ex_ample.com"}) {
    Status st = ValidateEmail(bad);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.code(), Code::kValidation) << bad;
  }
  EXPECT_FALSE(ValidateEmail(std::string(250, 'a') + "@b.com").ok());
  EXPECT_EQ(NormalizeEmail("Alice@Example.COM"), "alice@example.com");
}

TEST_F(AuthTest, ValidateUsername) {
  for (const std::string& ok :
       {std::string("bob"), std::string("alice_smith"), std::string("a.b-c"), std::string("ABC123"),
        std::string(50, 'x')}) {
    EXPECT_TRUE(ValidateUsername(ok).ok()) << ok;
  }
  for (const std::string& bad : {std::string("ab"), std::string(51, 'x'), std::string("a b c"),
                                 std::string("al/ice"), std::string("émile"), std::string("x@y")}) {
    Status st = ValidateUsername(bad);
    EXPECT_EQ(st.code(), Code::kValidation) << bad;
    EXPECT_NE(st.message().find("username"), std::string::npos);
  }
}

TEST_F(AuthTest, ValidatePassword) {
  EXPECT_TRUE(ValidatePassword("12345678").ok());
  EXPECT_TRUE(ValidatePassword(std::string(128, 'p')).ok());
  EXPECT_EQ(ValidatePassword("1234567").code(), Code::kValidation);
  EXPECT_EQ(ValidatePassword("").code(), Code::kValidation);
  EXPECT_EQ(ValidatePassword(std::string(129, 'p')).code(), Code::kValidation);
  EXPECT_NE(ValidatePassword("short").message().find("at least 8"), std::string::npos);
  // 8 characters of 2-byte UTF-8 (16 bytes) pass; 7 of them (14 bytes) do not.
  std::string eight, seven;
  for (int i = 0; i < 8; ++i) eight += "\xC3\xA4";
  for (int i = 0; i < 7; ++i) seven += "\xC3\xA4";
  EXPECT_TRUE(ValidatePassword(eight).ok());
  EXPECT_FALSE(ValidatePassword(seven).ok());
}

}  // namespace
}  // namespace serveml::platform
