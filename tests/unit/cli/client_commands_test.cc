// Drives RunClientCommand end to end against an in-process fake HTTP server.
#include "cli/client_commands.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace serveml::cli {
namespace {

namespace fs = std::filesystem;

struct Request {
  std::string method;
  std::string path;
  std::string headers;  // raw header block
  std::string body;
};

struct Reply {
  int status = 200;
  std::string body;
};

// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 with a canned handler.
class FakeServer {
 public:
  using Handler = std::function<Reply(const Request&)>;

  explicit FakeServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Loop() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) break;
      Serve(c);
      ::close(c);
    }
  }

  static bool ReadMore(int c, std::string* buf) {
    char tmp[65536];
    ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
    return true;
  }

  void Serve(int c) {
    std::string buf;
    size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(c, &buf)) return;
    }
    Request req;
    req.headers = buf.substr(0, header_end);
    std::istringstream first(req.headers);
    first >> req.method >> req.path;
    std::string lower = req.headers;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t body_start = header_end + 4;
    if (auto p = lower.find("content-length:"); p != std::string::npos) {
      size_t len = std::stoul(lower.substr(p + 15));
      while (buf.size() < body_start + len) {
        if (!ReadMore(c, &buf)) return;
      }
      req.body = buf.substr(body_start, len);
    } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      while (buf.find("\r\n0\r\n\r\n", body_start - 2) == std::string::npos) {
        if (!ReadMore(c, &buf)) return;
      }
      size_t pos = body_start;
      for (;;) {
        size_t eol = buf.find("\r\n", pos);
        size_t n = std::stoul(buf.substr(pos, eol - pos), nullptr, 16);
        if (n == 0) break;
        req.body += buf.substr(eol + 2, n);
        pos = eol + 2 + n + 2;
      }
    }
    Reply reply = handler_(req);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) +
                      " X\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(reply.body.size()) +
                      "\r\nConnection: close\r\nX-Request-ID: req-header\r\n\r\n" + reply.body;
    size_t sent = 0;
    while (sent < out.size()) {
      ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
};

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome RunCli(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int code = RunClientCommand(static_cast<int>(args.size()), argv.data());
  Outcome o{code, testing::internal::GetCapturedStdout(), testing::internal::GetCapturedStderr()};
  return o;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ClientCommandsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "serveml_cli_home_XXXXXX").string();
    home_ = ::mkdtemp(tmpl.data());
    old_home_ = std::getenv("HOME") ? std::getenv("HOME") : "";
    ::setenv("HOME", home_.c_str(), 1);
    ::unsetenv("SERVEML_URL");
    ::unsetenv("SERVEML_TOKEN");
    ::unsetenv("SERVEML_PASSWORD");
  }
  void TearDown() override {
    ::setenv("HOME", old_home_.c_str(), 1);
    ::unsetenv("SERVEML_PASSWORD");
    std::error_code ec;
    fs::remove_all(home_, ec);
  }
  std::string WriteFile(const std::string& name, const std::string& content) {
    std::string path = home_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::string home_;
  std::string old_home_;
};

TEST(IsClientCommandTest, KnowsItsCommands) {
  for (const char* c : {"login", "register", "logout", "deploy", "list", "predict", "delete",
                        "status", "help", "--help", "-h"}) {
    EXPECT_TRUE(IsClientCommand(c)) << c;
  }
  for (const char* c : {"serve", "run", "bogus", ""}) EXPECT_FALSE(IsClientCommand(c)) << c;
}

TEST_F(ClientCommandsTest, HelpListsAllCommands) {
  for (const char* h : {"help", "--help", "-h"}) {
    auto o = RunCli({h});
    EXPECT_EQ(o.code, 0);
    for (const char* c : {"login", "register", "deploy", "list", "predict", "delete", "status"}) {
      EXPECT_TRUE(Contains(o.out, std::string("serveml ") + c)) << c;
    }
  }
  auto o = RunCli({"help", "deploy"});
  EXPECT_EQ(o.code, 0);
  EXPECT_TRUE(Contains(o.out, "--wait-timeout"));
  o = RunCli({"predict", "--help"});
  EXPECT_EQ(o.code, 0);
  EXPECT_TRUE(Contains(o.out, "--data"));
  EXPECT_EQ(RunCli({"help", "nope"}).code, 2);
}

TEST_F(ClientCommandsTest, UsageErrorsExit2) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"login"}, "--email is required"},
      {{"register", "--email", "a@b.c"}, "--username is required"},
      {{"list", "--limit", "0"}, "--limit must be an integer"},
      {{"list", "--bogus"}, "unknown option '--bogus'"},
      {{"predict", "d1"}, "--data is required"},
      {{"predict", "--data", "[1]"}, "expected exactly one deployment ID"},
      {{"predict", "d1", "--data", "[1,"}, "not valid JSON"},
      {{"predict", "d1", "--data", "@/nonexistent.json"}, "cannot read data file"},
      {{"deploy", "/nonexistent/model.onnx"}, "cannot read model file"},
      {{"deploy"}, "expected exactly one model FILE"},
      {{"delete"}, "expected exactly one deployment ID"},
  };
  for (const Case& c : cases) {
    auto o = RunCli(c.args);
    EXPECT_EQ(o.code, 2) << c.args[0] << ": " << o.err;
    EXPECT_TRUE(Contains(o.err, c.message)) << o.err;
    EXPECT_TRUE(Contains(o.err, "usage: serveml " + c.args[0])) << o.err;
  }
  std::string model = WriteFile("m.onnx", "x");
  auto o = RunCli({"deploy", model, "--memory", "lots"});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "--memory must be an integer"));
  o = RunCli({"deploy", home_});
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(Contains(o.err, "is not a regular file"));
}

TEST_F(ClientCommandsTest, ConnectionFailureNamesTheUrl) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ::close(fd);  // nothing listens there now
  auto o = RunCli({"list", "--url", url});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "cannot connect to " + url)) << o.err;
}

TEST_F(ClientCommandsTest, LoginSavesTokenWithoutPrintingItAndLaterCommandsSendIt) {
  FakeServer server([](const Request& r) -> Reply {
    if (r.path == "/api/v1/auth/login") {
      if (Contains(r.body, "\"password\":\"right\"")) {
        return {200, R"({"access_token":"tok-SECRET","token_type":"bearer"})"};
      }
      return {
          401,
          R"({"error":{"code":"UNAUTHORIZED","message":"Invalid credentials","details":{}},"request_id":"req-5"})"};
    }
    if (r.path == "/api/v1/deployments?limit=5&status=active&search=ir%20is") {
      return {
          200,
          R"({"items":[{"id":"d1","name":"iris","status":"active","model_metadata":{"framework":"sklearn"},"created_at":"2024-01-01T00:00:00Z"}],"total":1,"limit":5,"offset":0})"};
    }
    return {404, R"({"error":{"code":"NOT_FOUND","message":"nope"},"request_id":"req-x"})"};
  });

  auto bad = RunCli({"login", "--url", server.url(), "--email", "a@b.c", "--password", "wrong"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(Contains(bad.err, "error: UNAUTHORIZED: Invalid credentials (req-5)")) << bad.err;
  EXPECT_FALSE(Contains(bad.err, "hint"));  // a login 401 is not about the token
  EXPECT_FALSE(fs::exists(home_ + "/.serveml/config.json"));

  ::setenv("SERVEML_PASSWORD", "right", 1);
  auto o = RunCli({"login", "--url", server.url() + "/", "--email", "a@b.c"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_FALSE(Contains(o.out + o.err, "tok-SECRET"));
  EXPECT_FALSE(Contains(o.out + o.err, "right"));
  const std::string config = home_ + "/.serveml/config.json";
  struct stat st;
  ASSERT_EQ(::stat(config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // --json output is redacted too.
  o = RunCli({"login", "--url", server.url(), "--email", "a@b.c", "--json"});
  ASSERT_EQ(o.code, 0);
  EXPECT_FALSE(Contains(o.out, "tok-SECRET"));
  EXPECT_TRUE(Contains(o.out, "bearer"));

  // The saved URL and token are used by default.
  o = RunCli({"list", "--limit", "5", "--status", "active", "--search", "ir is"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "iris")) << o.out;
  EXPECT_TRUE(Contains(o.out, "sklearn"));
  auto reqs = server.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_TRUE(Contains(reqs.back().headers, "Authorization: Bearer tok-SECRET"));

  // Login requests never carry the saved token.
  EXPECT_FALSE(Contains(reqs[0].headers, "Authorization"));

  o = RunCli({"logout"});
  EXPECT_EQ(o.code, 0);
  o = RunCli({"list", "--limit", "5", "--status", "active", "--search", "ir is"});
  EXPECT_FALSE(Contains(server.requests().back().headers, "Authorization"));
}

TEST_F(ClientCommandsTest, PredictSendsDataAndReportsErrors) {
  FakeServer server([](const Request& r) -> Reply {
    if (r.method == "POST" && r.path == "/api/v1/predict/d1") {
      return {200, R"({"predictions":[[1.5,2.5,3.5]],"model_version":"v1","batch_size":1})"};
    }
    return {
        404,
        R"({"error":{"code":"NOT_FOUND","message":"Deployment not found","details":{}},"request_id":"req-7"})"};
  });
  auto o = RunCli(
      {"predict", "d1", "--data", "[[1,2,3,4]]", "--url", server.url(), "--token", "sk-abc"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "\"predictions\"")) << o.out;
  EXPECT_TRUE(Contains(o.out, "3.5"));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, R"({"data":[[1,2,3,4]]})");
  EXPECT_TRUE(Contains(reqs[0].headers, "Authorization: Bearer sk-abc"));
  EXPECT_TRUE(Contains(reqs[0].headers, "Content-Type: application/json"));

  const std::string file = WriteFile("in.json", R"({"sepal_length": 5.1})");
  o = RunCli({"predict", "d1", "--data", "@" + file, "--url", server.url(), "--json"});
  ASSERT_EQ(o.code, 0);
  EXPECT_EQ(server.requests().back().body, R"({"data":{"sepal_length":5.1}})");
  EXPECT_EQ(o.out, "{\"predictions\":[[1.5,2.5,3.5]],\"model_version\":\"v1\",\"batch_size\":1}\n");

  o = RunCli({"predict", "../x y", "--data", "[1]", "--url", server.url()});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "error: NOT_FOUND: Deployment not found (req-7)")) << o.err;
  EXPECT_EQ(server.requests().back().path, "/api/v1/predict/..%2Fx%20y");
  EXPECT_FALSE(Contains(o.err, "hint"));
}

TEST_F(ClientCommandsTest, DeployWaitsUntilActive) {
  std::atomic<int> polls{0};
  FakeServer server([&](const Request& r) -> Reply {
    if (r.method == "POST" && r.path == "/api/v1/deploy") {
      return {
          200,
          R"({"id":"d9","name":"mymodel","status":"validating","created_at":"t","model_metadata":{"framework":"onnx"}})"};
    }
    if (r.method == "GET" && r.path == "/api/v1/deployments/d9") {
      if (++polls < 3) return {200, R"({"id":"d9","name":"mymodel","status":"validating"})"};
      return {
          200,
          R"({"id":"d9","name":"mymodel","status":"active","endpoint_url":"/api/v1/predict/d9"})"};
    }
    return {404, "{}"};
  });
  const std::string model = WriteFile("mymodel.onnx", std::string("ONNX\0bytes", 10));
  const std::string reqs = WriteFile("requirements.txt", "numpy==1.26\n");
  auto o = RunCli({"deploy", model, "--requirements", reqs, "--memory", "512", "--timeout", "30",
                   "--wait", "--url", server.url(), "--token", "t"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "d9"));
  EXPECT_TRUE(Contains(o.out, "status:   active"));
  EXPECT_TRUE(Contains(o.out, "endpoint: " + server.url() + "/api/v1/predict/d9")) << o.out;
  EXPECT_GE(polls.load(), 3);

  const Request upload = server.requests().front();
  EXPECT_TRUE(Contains(upload.headers, "multipart/form-data"));
  EXPECT_TRUE(Contains(upload.body, "name=\"model_file\"; filename=\"mymodel.onnx\""));
  EXPECT_TRUE(Contains(upload.body, std::string("ONNX\0bytes", 10)));
  EXPECT_TRUE(Contains(upload.body, "name=\"requirements_file\"; filename=\"requirements.txt\""));
  EXPECT_TRUE(Contains(upload.body, "numpy==1.26"));
  EXPECT_TRUE(Contains(upload.body, "name=\"name\"\r\n\r\nmymodel\r\n"));  // default name
  EXPECT_TRUE(Contains(upload.body, "name=\"memory\"\r\n\r\n512\r\n"));
  EXPECT_TRUE(Contains(upload.body, "name=\"timeout\"\r\n\r\n30\r\n"));
}

TEST_F(ClientCommandsTest, DeployReportsFailureAndTimeout) {
  FakeServer server([&](const Request& r) -> Reply {
    if (r.method == "POST") {
      if (Contains(r.body, "\r\n\r\nslow\r\n"))
        return {200, R"({"id":"s1","status":"validating"})"};
      return {200, R"({"id":"f1","name":"bad","status":"validating"})"};
    }
    if (r.path == "/api/v1/deployments/f1") {
      return {
          200,
          R"({"id":"f1","status":"failed","error_message":"unsupported estimator FooRegressor; export to ONNX"})"};
    }
    return {200, R"({"id":"s1","status":"validating"})"};
  });
  const std::string model = WriteFile("m.pkl", "pickle");
  auto o = RunCli({"deploy", model, "--name", "bad", "--wait", "--url", server.url()});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.out, "status:   failed"));
  EXPECT_TRUE(Contains(
      o.err, "error: DEPLOYMENT_FAILED: unsupported estimator FooRegressor; export to ONNX"))
      << o.err;

  o = RunCli({"deploy", model, "--name", "slow", "--wait", "--wait-timeout", "0.3", "--url",
              server.url()});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "timed out after 0.3 s waiting for deployment s1")) << o.err;

  // Without --wait: prints the id and status and returns at once.
  o = RunCli({"deploy", model, "--name", "bad", "--url", server.url()});
  EXPECT_EQ(o.code, 0);
  EXPECT_TRUE(Contains(o.out, "f1"));
  EXPECT_TRUE(Contains(o.out, "validating"));
}

TEST_F(ClientCommandsTest, DeleteStatusAndNonJsonResponses) {
  FakeServer server([](const Request& r) -> Reply {
    if (r.method == "DELETE" && r.path == "/api/v1/deployments/d1") return {204, ""};
    if (r.path == "/api/v1/status") {
      return {
          200,
          R"({"api":{"status":"healthy"},"database":{"status":"healthy","latency_ms":1},"issues":[]})"};
    }
    return {502, "<html>bad gateway</html>"};
  });
  auto o = RunCli({"delete", "d1", "--url", server.url()});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "Deleted deployment d1"));

  o = RunCli({"status", "--url", server.url()});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(Contains(o.out, "api: healthy"));
  EXPECT_TRUE(Contains(o.out, "database: healthy (latency_ms=1)"));
  EXPECT_TRUE(Contains(o.out, "issues: none"));

  o = RunCli({"delete", "zz", "--url", server.url()});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "error: HTTP 502: <html>bad gateway</html> (req-header)")) << o.err;
}

TEST_F(ClientCommandsTest, UnauthorizedWithoutTokenGivesHint) {
  FakeServer server([](const Request&) -> Reply {
    return {401, R"({"error":{"code":"UNAUTHORIZED","message":"Missing token"},"request_id":"r"})"};
  });
  auto o = RunCli({"list", "--url", server.url()});
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(Contains(o.err, "UNAUTHORIZED: Missing token (r)"));
  EXPECT_TRUE(Contains(o.err, "serveml login"));
}

}  // namespace
}  // namespace serveml::cli
