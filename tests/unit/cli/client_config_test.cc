#include "cli/client_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace serveml::cli {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "serveml_cli_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t Mode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ConfigPathTest, UnderHome) {
  EXPECT_EQ(ConfigPath("/home/u"), "/home/u/.serveml/config.json");
  EXPECT_EQ(ConfigPath("/home/u/"), "/home/u/.serveml/config.json");
  EXPECT_EQ(ConfigPath(""), "");
  EXPECT_EQ(ConfigPath(nullptr), "");
}

TEST(ConfigFileTest, MissingFileIsEmptyConfig) {
  TempDir home;
  auto r = ReadConfigFile(ConfigPath(home.path().c_str()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->url, "");
  EXPECT_EQ(r->token, "");
}

TEST(ConfigFileTest, WriteCreatesPrivateDirAndFileAndReadsBack) {
  TempDir home;
  ::umask(022);
  const std::string path = ConfigPath(home.path().c_str());
  ASSERT_TRUE(WriteConfigFile(path, {"http://h:9", "sk-secret"}).ok());
  EXPECT_EQ(Mode(home.path() + "/.serveml"), 0700u);
  EXPECT_EQ(Mode(path), 0600u);
  auto r = ReadConfigFile(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->url, "http://h:9");
  EXPECT_EQ(r->token, "sk-secret");
  // No temporary files left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(home.path() + "/.serveml")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(ConfigFileTest, TightensExistingDirAndFilePermissions) {
  TempDir home;
  const std::string dir = home.path() + "/.serveml";
  const std::string path = dir + "/config.json";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  { std::ofstream(path) << "{}"; }
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(WriteConfigFile(path, {"http://h", "t"}).ok());
  EXPECT_EQ(Mode(dir), 0700u);
  EXPECT_EQ(Mode(path), 0600u);
}

TEST(ConfigFileTest, KeepsUnknownKeysAndEmptyTokenRemovesIt) {
  TempDir home;
  const std::string path = ConfigPath(home.path().c_str());
  ASSERT_TRUE(WriteConfigFile(path, {"http://a", "tok"}).ok());
  {
    auto doc = nlohmann::json::parse(Slurp(path));
    doc["theme"] = "dark";
    std::ofstream(path) << doc.dump();
  }
  ASSERT_TRUE(WriteConfigFile(path, {"http://a", ""}).ok());
  auto doc = nlohmann::json::parse(Slurp(path));
  EXPECT_EQ(doc["theme"], "dark");
  EXPECT_EQ(doc["url"], "http://a");
  EXPECT_FALSE(doc.contains("token"));
}

TEST(ConfigFileTest, MalformedFileIsAnErrorOnReadButReplacedOnWrite) {
  TempDir home;
  const std::string path = ConfigPath(home.path().c_str());
  ASSERT_EQ(::mkdir((home.path() + "/.serveml").c_str(), 0700), 0);
  { std::ofstream(path) << "not json"; }
  auto r = ReadConfigFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  ASSERT_TRUE(WriteConfigFile(path, {"http://a", "t"}).ok());
  EXPECT_EQ(ReadConfigFile(path)->token, "t");
}

TEST(ConfigFileTest, WrongTypesAreIgnored) {
  TempDir home;
  const std::string path = ConfigPath(home.path().c_str());
  ASSERT_EQ(::mkdir((home.path() + "/.serveml").c_str(), 0700), 0);
  { std::ofstream(path) << R"({"url": 5, "token": null})"; }
  auto r = ReadConfigFile(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->url, "");
  EXPECT_EQ(r->token, "");
}

TEST(NormalizeBaseUrlTest, Cases) {
  EXPECT_EQ(NormalizeBaseUrl("http://h:1/"), "http://h:1");
  EXPECT_EQ(NormalizeBaseUrl(" https://h// "), "https://h");
  EXPECT_EQ(NormalizeBaseUrl("localhost:8000"), "http://localhost:8000");
  EXPECT_EQ(NormalizeBaseUrl("http://h/prefix"), "http://h/prefix");
  EXPECT_EQ(NormalizeBaseUrl(""), std::string(kDefaultUrl));
}

TEST(RedactUrlTest, HidesUserInfo) {
  EXPECT_EQ(RedactUrl("http://u:p@h:1/x"), "http://***@h:1/x");
  EXPECT_EQ(RedactUrl("http://h:1/x@y"), "http://h:1/x@y");
  EXPECT_EQ(RedactUrl("http://h"), "http://h");
}

TEST(ResolveConnectionTest, Precedence) {
  const ClientConfig file{"http://saved:1", "saved-token"};
  auto c = ResolveConnection(std::nullopt, std::nullopt, std::nullopt, std::nullopt, {});
  EXPECT_EQ(c.url, std::string(kDefaultUrl));
  EXPECT_EQ(c.token, "");

  c = ResolveConnection(std::nullopt, std::nullopt, std::nullopt, std::nullopt, file);
  EXPECT_EQ(c.url, "http://saved:1");
  EXPECT_EQ(c.token, "saved-token");

  c = ResolveConnection(std::nullopt, std::nullopt, "http://env:2/", "env-token", file);
  EXPECT_EQ(c.url, "http://env:2");
  EXPECT_EQ(c.token, "env-token");

  c = ResolveConnection("http://flag:3", "flag-token", "http://env:2", "env-token", file);
  EXPECT_EQ(c.url, "http://flag:3");
  EXPECT_EQ(c.token, "flag-token");

  // Empty env values count as unset.
  c = ResolveConnection(std::nullopt, std::nullopt, "", "", file);
  EXPECT_EQ(c.url, "http://saved:1");
  EXPECT_EQ(c.token, "saved-token");

  // An explicit empty --token means no token.
  c = ResolveConnection(std::nullopt, "", std::nullopt, std::nullopt, file);
  EXPECT_EQ(c.token, "");
}

TEST(ResolveConnectionTest, SavedTokenOnlyGoesToItsOwnServer) {
  const ClientConfig file{"http://saved:1/", "saved-token"};
  auto c = ResolveConnection("http://other:9", std::nullopt, std::nullopt, std::nullopt, file);
  EXPECT_EQ(c.url, "http://other:9");
  EXPECT_EQ(c.token, "");
  c = ResolveConnection("http://saved:1", std::nullopt, std::nullopt, std::nullopt, file);
  EXPECT_EQ(c.token, "saved-token");
  // A token saved without a URL belongs to the default URL.
  c = ResolveConnection(std::nullopt, std::nullopt, std::nullopt, std::nullopt, {"", "t"});
  EXPECT_EQ(c.token, "t");
  c = ResolveConnection(std::nullopt, std::nullopt, "http://x", std::nullopt, {"", "t"});
  EXPECT_EQ(c.token, "");
}

}  // namespace
}  // namespace serveml::cli
