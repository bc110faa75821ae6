#include "http/server.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "test_client.h"

namespace serveml::http {
namespace {

using testing::ClientResponse;
using testing::RoundTrip;
using testing::TestConn;
using namespace std::chrono_literals;

std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

std::string Post(const std::string& target, const std::string& body,
                 const std::string& content_type = "application/json") {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n;
}

// "req-" + 16 lower-case hex chars.
bool IsGeneratedId(const std::string& id) {
  if (id.size() != 20 || id.rfind("req-", 0) != 0) return false;
  for (size_t i = 4; i < id.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i])) && (id[i] < 'a' || id[i] > 'f')) {
      return false;
    }
  }
  return true;
}

// Polls `pred` for up to two seconds.
template <typename P>
bool WaitFor(P pred) {
  for (int i = 0; i < 400; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// Joins detached-style helper threads that answer requests later.
class Background {
 public:
  ~Background() { Join(); }
  template <typename F>
  void Run(F f) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(std::move(f));
  }
  void Join() {
    std::vector<std::thread> t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      t.swap(threads_);
    }
    for (auto& th : t) th.join();
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/serveml-http-test-XXXXXX";
    upload_dir_ = mkdtemp(tmpl);

    router_.Add("GET", "/hello", [](Request& req, Responder respond) {
      Response r = Response::Json(200, R"({"hello":"world"})");
      r.headers.emplace_back("X-Handler", "hello");
      (void)req;
      respond(std::move(r));
    });
    router_.Add("GET", "/echo/{id}", [](Request& req, Responder respond) {
      nlohmann::json j;
      j["id"] = std::string(req.Param("id"));
      j["path"] = req.path;
      j["query"] = req.query;
      std::string q;
      j["q"] = req.QueryParam("q", &q) ? q : "<none>";
      j["request_id"] = req.request_id;
      j["remote"] = req.remote_addr;
      j["client"] = req.client_addr;
      j["ua"] = std::string(req.Header("user-agent"));
      respond(Response::Json(200, j.dump()));
    });
    router_.Add("POST", "/echo", [](Request& req, Responder respond) {
      Response r;
      r.content_type = "application/octet-stream";
      r.body = std::move(req.body);
      respond(std::move(r));
    });
    router_.Add("DELETE", "/echo/{id}",
                [](Request&, Responder respond) { respond(Response::Json(204, "")); });
    router_.Add(
        "POST", "/upload",
        [this](Request& req, Responder respond) {
          nlohmann::json j = nlohmann::json::array();
          for (const FormPart& p : req.form) {
            nlohmann::json pj;
            pj["name"] = p.name;
            pj["filename"] = p.filename;
            pj["value"] = p.value;
            pj["size"] = p.size;
            if (!p.file_path.empty()) {
              std::string content = ReadFile(p.file_path);
              pj["file_bytes_read"] = content.size();
              std::lock_guard<std::mutex> lock(mu_);
              upload_paths_.push_back(p.file_path);
              upload_contents_.push_back(std::move(content));
            }
            j.push_back(pj);
          }
          respond(Response::Json(200, j.dump()));
        },
        RoutePolicy{BodyKind::kUpload});
    router_.Add("GET", "/slow", [this](Request& req, Responder respond) {
      int ms = 300;
      std::string v;
      if (req.QueryParam("ms", &v)) ms = std::stoi(v);
      std::string id = req.request_id;
      bg_.Run([respond, ms, id] {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        respond(Response::Json(200, "{\"slow\":true,\"id\":\"" + id + "\"}"));
      });
    });
    // Uses the Request from another thread until it responds (the server's contract).
    router_.Add("POST", "/slow-ref", [this](Request& req, Responder respond) {
      bg_.Run([&req, respond] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        Response r;
        r.content_type = "text/plain";
        r.body = req.path + "|" + req.body + "|" + std::string(req.Header("x-a"));
        respond(std::move(r));
      });
    });
    router_.Add("GET", "/throw",
                [](Request&, Responder) -> void { throw std::runtime_error("boom"); });
    router_.Add("GET", "/drop", [](Request&, Responder) {});
    router_.Add("GET", "/twice", [](Request&, Responder respond) {
      respond(Response::Json(200, "first"));
      respond(Response::Json(200, "second"));
    });
  }

  void TearDown() override {
    if (server_) server_->Stop(1);
    bg_.Join();
    server_.reset();
    std::string cmd = "rm -rf " + upload_dir_;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void StartServer(ServerOptions opts = {}) {
    opts.port = 0;
    opts.io_threads = opts.io_threads ? opts.io_threads : 2;
    opts.upload_dir = upload_dir_;
    server_ = std::make_unique<Server>(opts, &router_);
    ASSERT_EQ(server_->Start(), "");
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  Router router_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::string upload_dir_;
  Background bg_;
  std::mutex mu_;
  std::vector<std::string> upload_paths_;
  std::vector<std::string> upload_contents_;  // bytes the handler read from the temp files
};

TEST_F(ServerTest, SimpleGetAndHeaders) {
  ServerOptions opts;
  opts.default_headers = {{"X-Content-Type-Options", "nosniff"}};
  StartServer(opts);
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/hello"), &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"hello":"world"})");
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("content-length"), std::to_string(r.body.size()));
  EXPECT_EQ(r.Header("server"), "serveml");
  EXPECT_EQ(r.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.Header("x-handler"), "hello");
  EXPECT_TRUE(r.HasHeader("date"));
  EXPECT_TRUE(IsGeneratedId(r.Header("x-request-id"))) << r.Header("x-request-id");
}

TEST_F(ServerTest, KeepAliveReusesOneConnection) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(c.Send(Get("/hello")));
    ClientResponse r;
    ASSERT_TRUE(c.ReadResponse(&r)) << i;
    ASSERT_EQ(r.status, 200);
    EXPECT_FALSE(r.HasHeader("connection"));
    ids.insert(r.Header("x-request-id"));
  }
  EXPECT_EQ(ids.size(), 200u);  // fresh id per request
  EXPECT_EQ(server_->connections(), 1);
}

TEST_F(ServerTest, PipelinedRequests) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(Get("/echo/1") + Get("/echo/2") + Post("/echo", "xyz")));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(nlohmann::json::parse(r.body)["id"], "1");
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(nlohmann::json::parse(r.body)["id"], "2");
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.body, "xyz");
  EXPECT_EQ(r.Header("content-type"), "application/octet-stream");
}

TEST_F(ServerTest, RequestIdKeptOrReplaced) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/echo/1", "X-Request-ID: my-trace.ID_42\r\n"), &r));
  EXPECT_EQ(r.Header("x-request-id"), "my-trace.ID_42");
  EXPECT_EQ(nlohmann::json::parse(r.body)["request_id"], "my-trace.ID_42");

  for (std::string bad : {std::string(65, 'a'), std::string("has space"), std::string("a/b")}) {
    ASSERT_TRUE(RoundTrip(port_, Get("/echo/1", "X-Request-ID: " + bad + "\r\n"), &r));
    EXPECT_TRUE(IsGeneratedId(r.Header("x-request-id"))) << bad;
  }
  std::string ok64(64, 'b');
  ASSERT_TRUE(RoundTrip(port_, Get("/nope", "x-request-id: " + ok64 + "\r\n"), &r));
  EXPECT_EQ(r.Header("x-request-id"), ok64);  // also on server-made errors
  EXPECT_EQ(nlohmann::json::parse(r.body)["request_id"], ok64);
}

TEST_F(ServerTest, PathAndQueryDecoding) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/echo/a%20b?q=x+y%26z&other=1", "User-Agent: t/1\r\n"), &r));
  ASSERT_EQ(r.status, 200);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["id"], "a b");
  EXPECT_EQ(j["path"], "/echo/a b");
  EXPECT_EQ(j["query"], "q=x+y%26z&other=1");
  EXPECT_EQ(j["q"], "x y&z");
  EXPECT_EQ(j["remote"], "127.0.0.1");
  EXPECT_EQ(j["ua"], "t/1");
  ASSERT_TRUE(RoundTrip(port_, Get("/echo/abc/"), &r));  // trailing slash
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, NotFoundErrorShape) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/does/not/exist"), &r));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "NOT_FOUND");
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["details"].is_object());
  EXPECT_EQ(j["request_id"], r.Header("x-request-id"));
}

TEST_F(ServerTest, CustomErrorBody) {
  ServerOptions opts;
  opts.error_body = [](int status, std::string_view code, std::string_view, std::string_view id) {
    return std::to_string(status) + "|" + std::string(code) + "|" + std::string(id);
  };
  StartServer(opts);
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/nope"), &r));
  EXPECT_EQ(r.body, "404|NOT_FOUND|" + r.Header("x-request-id"));
}

TEST_F(ServerTest, MethodNotAllowed) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, "PUT /echo/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "GET, HEAD, DELETE");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "INVALID_INPUT");
}

TEST_F(ServerTest, HeadUsesGetRouteWithoutBody) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r, /*head_only=*/true));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-length"), "17");
  // The next response must start right away: no body bytes were sent.
  ASSERT_TRUE(c.Send(Get("/hello")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.body, R"({"hello":"world"})");
}

TEST_F(ServerTest, NoContentResponse) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("DELETE /echo/1 HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/hello")));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 204);
  EXPECT_FALSE(r.HasHeader("content-length"));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, PostBodyAndChunked) {
  StartServer();
  ClientResponse r;
  std::string body(100000, 'z');
  ASSERT_TRUE(RoundTrip(port_, Post("/echo", body), &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, body);
  ASSERT_TRUE(RoundTrip(port_,
                        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                        &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello world");
}

TEST_F(ServerTest, BodyTooLargeWithContentLength) {
  ServerOptions opts;
  opts.max_json_body_bytes = 1000;
  StartServer(opts);
  // Exactly at the limit: fine.
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Post("/echo", std::string(1000, 'a')), &r));
  EXPECT_EQ(r.status, 200);
  // Over the limit: answered from the header alone, before any body byte is sent.
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "PAYLOAD_TOO_LARGE");
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, BodyTooLargeChunked) {
  ServerOptions opts;
  opts.max_json_body_bytes = 1000;
  StartServer(opts);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk = "200\r\n" + std::string(0x200, 'q') + "\r\n";
  ASSERT_TRUE(c.Send(chunk + chunk + chunk));  // 1536 bytes > 1000
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "PAYLOAD_TOO_LARGE");
  EXPECT_TRUE(c.WaitClosed());
}

std::string MultipartBody(const std::string& boundary, const std::string& file_content) {
  return "--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\niris\r\n"
         "--" +
         boundary +
         "\r\nContent-Disposition: form-data; name=\"model_file\"; filename=\"model.pkl\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" +
         file_content + "\r\n--" + boundary + "--\r\n";
}

TEST_F(ServerTest, MultipartUploadStreamedToTempFile) {
  StartServer();
  std::string content;
  for (uint64_t i = 0; i < 300000; ++i) content.push_back(static_cast<char>((i * 7919) % 251));
  content += "\r\n--boun\r\n-bound--";  // boundary-like bytes inside the file
  std::string body = MultipartBody("bound", content);
  std::string req =
      "POST /upload HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: multipart/form-data; boundary=\"bound\"\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(req));
  // Dribble the body in odd-sized pieces.
  for (size_t pos = 0; pos < body.size(); pos += 77777)
    ASSERT_TRUE(c.Send(body.substr(pos, 77777)));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "name");
  EXPECT_EQ(j[0]["value"], "iris");
  EXPECT_EQ(j[1]["filename"], "model.pkl");
  EXPECT_EQ(j[1]["size"], content.size());
  // The temp file is removed once the response is written.
  ASSERT_TRUE(c.Send(Get("/hello")));
  ASSERT_TRUE(c.ReadResponse(&r));
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(upload_paths_.size(), 1u);
  EXPECT_TRUE(upload_contents_[0] == content);
  EXPECT_EQ(upload_paths_[0].rfind(upload_dir_, 0), 0u);
  EXPECT_NE(access(upload_paths_[0].c_str(), F_OK), 0);
  EXPECT_EQ(CountFiles(upload_dir_), 0u);
}

TEST_F(ServerTest, MultipartChunkedAndExpectContinue) {
  StartServer();
  std::string body = MultipartBody("xx", "payload");
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(
      c.Send("POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
             "Content-Type: multipart/form-data; boundary=xx\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 100);
  char hex[16];
  snprintf(hex, sizeof(hex), "%zx", body.size());
  ASSERT_TRUE(c.Send(std::string(hex) + "\r\n" + body + "\r\n0\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponse(&r));
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j[1]["size"], 7);
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(upload_contents_.size(), 1u);
  EXPECT_EQ(upload_contents_[0], "payload");
}

TEST_F(ServerTest, MultipartTooLargeRemovesTempFiles) {
  ServerOptions opts;
  opts.max_upload_bytes = 200000;
  StartServer(opts);
  std::string body = MultipartBody("bb", std::string(500000, 'x'));
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  // Chunked, so the limit can only be noticed while streaming.
  ASSERT_TRUE(
      c.Send("POST /upload HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: multipart/form-data; boundary=bb\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  char hex[16];
  snprintf(hex, sizeof(hex), "%zx", body.size());
  c.Send(std::string(hex) + "\r\n" + body + "\r\n0\r\n\r\n");  // may fail once we close
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(CountFiles(upload_dir_), 0u);

  // Declared too large: rejected from the header.
  ASSERT_TRUE(RoundTrip(port_,
                        "POST /upload HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: multipart/form-data; boundary=bb\r\n"
                        "Content-Length: 300000\r\n\r\n",
                        &r));
  EXPECT_EQ(r.status, 413);
}

TEST_F(ServerTest, MalformedMultipartIs400) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(
      port_, Post("/upload", "--b\r\nno headers here", "multipart/form-data; boundary=b"), &r));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "INVALID_INPUT");
  // An upload to an unknown route is refused before anything is written to disk.
  ASSERT_TRUE(RoundTrip(port_,
                        Post("/nowhere", MultipartBody("b", std::string(100000, 'x')),
                             "multipart/form-data; boundary=b"),
                        &r));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("connection"), "close") << r.body << " " << r.headers.size();
  ASSERT_TRUE(RoundTrip(port_, Post("/upload", "x", "multipart/form-data"), &r));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(nlohmann::json::parse(r.body)["error"]["message"].get<std::string>().find("boundary"),
            std::string::npos);
  EXPECT_EQ(CountFiles(upload_dir_), 0u);
}

TEST_F(ServerTest, MalformedHttpIs400) {
  StartServer();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, "THIS IS NOT HTTP\r\n\r\n", &r));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "INVALID_INPUT");
  EXPECT_TRUE(IsGeneratedId(r.Header("x-request-id")));
  ASSERT_TRUE(RoundTrip(port_, "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n", &r));
  EXPECT_EQ(r.status, 400);
  ASSERT_TRUE(RoundTrip(port_, "GET /echo/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", &r));
  EXPECT_EQ(r.status, 400);
  ASSERT_TRUE(RoundTrip(
      port_, "GET /hello HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", &r));
  EXPECT_EQ(r.status, 431);
}

TEST_F(ServerTest, Http10AndConnectionClose) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("GET /hello HTTP/1.0\r\n\r\n"));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version, "HTTP/1.0");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());

  TestConn k;
  ASSERT_TRUE(k.Connect(port_));
  ASSERT_TRUE(k.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  ASSERT_TRUE(k.ReadResponse(&r));
  EXPECT_EQ(r.Header("connection"), "keep-alive");
  ASSERT_TRUE(k.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  ASSERT_TRUE(k.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);

  TestConn d;
  ASSERT_TRUE(d.Connect(port_));
  ASSERT_TRUE(d.Send(Get("/hello", "Connection: close\r\n")));
  ASSERT_TRUE(d.ReadResponse(&r));
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(d.WaitClosed());
}

TEST_F(ServerTest, RespondsFromAnotherThread) {
  StartServer();
  auto t0 = std::chrono::steady_clock::now();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/slow?ms=150", "X-Request-ID: slow-1\r\n"), &r));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 140ms);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["id"], "slow-1");
  EXPECT_EQ(r.Header("x-request-id"), "slow-1");
  // The counter drops once the write completes, which may be just after the client reads.
  EXPECT_TRUE(WaitFor([&] { return server_->in_flight() == 0; }));
}

TEST_F(ServerTest, RequestStaysValidUntilResponded) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  for (int i = 0; i < 5; ++i) {
    std::string body = "body-" + std::to_string(i);
    ASSERT_TRUE(c.Send("POST /slow-ref HTTP/1.1\r\nHost: x\r\nX-A: " + std::to_string(i) +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    ClientResponse r;
    ASSERT_TRUE(c.ReadResponse(&r));
    EXPECT_EQ(r.body, "/slow-ref|" + body + "|" + std::to_string(i));
    EXPECT_EQ(r.Header("content-type"), "text/plain");
  }
}

TEST_F(ServerTest, SlowRequestDoesNotBlockOthers) {
  ServerOptions opts;
  opts.io_threads = 1;
  StartServer(opts);
  TestConn slow;
  ASSERT_TRUE(slow.Connect(port_));
  ASSERT_TRUE(slow.Send(Get("/slow?ms=500")));
  auto t0 = std::chrono::steady_clock::now();
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/hello"), &r));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 400ms);
  ASSERT_TRUE(slow.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, HandlerExceptionsAndMisuse) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ClientResponse r;
  ASSERT_TRUE(c.Send(Get("/throw")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "SERVICE_ERROR");
  ASSERT_TRUE(c.Send(Get("/drop")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 500);
  ASSERT_TRUE(c.Send(Get("/twice")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.body, "first");
  // The connection is still usable afterwards.
  ASSERT_TRUE(c.Send(Get("/hello")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, ConcurrentClients) {
  StartServer();
  constexpr int kClients = 8, kRequests = 250;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      TestConn c;
      if (!c.Connect(port_)) return;
      for (int i = 0; i < kRequests; ++i) {
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        bool slow = i % 50 == 0;
        if (!c.Send(Get(slow ? "/slow?ms=5" : "/echo/" + id))) return;
        ClientResponse r;
        if (!c.ReadResponse(&r) || r.status != 200) return;
        if (!slow && nlohmann::json::parse(r.body)["id"] != id) return;
        ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
}

TEST_F(ServerTest, AccessLogCalled) {
  std::mutex mu;
  std::vector<std::string> lines;
  ServerOptions opts;
  opts.access_log = [&](const Request& req, int status, int64_t micros) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(req.method + " " + req.path + " " + std::to_string(status) + " " +
                    req.request_id + (micros >= 0 ? "" : " negative"));
  };
  StartServer(opts);
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/hello", "X-Request-ID: a1\r\n"), &r));
  ASSERT_TRUE(RoundTrip(port_, Get("/missing", "X-Request-ID: a2\r\n"), &r));
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "GET /hello 200 a1");
  EXPECT_EQ(lines[1], "GET /missing 404 a2");
}

TEST_F(ServerTest, IdleKeepAliveTimeout) {
  ServerOptions opts;
  opts.idle_timeout_seconds = 1;
  StartServer(opts);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(Get("/hello")));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.WaitClosed());
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 700ms);
  EXPECT_LT(waited, 3s);
}

TEST_F(ServerTest, StopDrainsInFlightAndRefusesNewConnections) {
  StartServer();
  TestConn idle;  // an idle keep-alive connection is closed by Stop
  ASSERT_TRUE(idle.Connect(port_));
  ASSERT_TRUE(idle.Send(Get("/hello")));
  ClientResponse r;
  ASSERT_TRUE(idle.ReadResponse(&r));
  ASSERT_TRUE(WaitFor([&] { return server_->in_flight() == 0; }));

  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(Get("/slow?ms=600")));
  ASSERT_TRUE(WaitFor([&] { return server_->in_flight() == 1; }));

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->Stop(10);
    stopped = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(stopped.load());
  TestConn late;
  EXPECT_FALSE(late.Connect(port_));
  EXPECT_EQ(late.error(), ECONNREFUSED);
  EXPECT_TRUE(idle.WaitClosed());

  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["slow"], true);
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_EQ(server_->in_flight(), 0);
  server_->Stop(1);  // idempotent
}

TEST_F(ServerTest, StopGivesUpAfterDrainDeadline) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(Get("/slow?ms=1800")));
  ASSERT_TRUE(WaitFor([&] { return server_->in_flight() == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  server_->Stop(1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_TRUE(c.WaitClosed());
  // The late Responder call (from the background thread) must be harmless.
  bg_.Join();
}

// --- Route policies, authentication before the body, deadlines, connection caps ---

std::string Header(const std::string& name, const std::string& value) {
  return name + ": " + value + "\r\n";
}

std::string ErrorCode(const ClientResponse& r) {
  return nlohmann::json::parse(r.body)["error"]["code"].get<std::string>();
}

std::string ErrorMessage(const ClientResponse& r) {
  return nlohmann::json::parse(r.body)["error"]["message"].get<std::string>();
}

// A pre_authenticate that wants "Authorization: Bearer good".
std::optional<PreAuthFailure> BearerGood(const Request& req) {
  std::string_view auth = req.Header("authorization");
  if (auth.empty()) return PreAuthFailure{401, "UNAUTHORIZED", "missing Authorization header"};
  if (auth != "Bearer good") return PreAuthFailure{403, "FORBIDDEN", "not allowed"};
  return std::nullopt;
}

TEST_F(ServerTest, PreAuthRefusesHugeUploadWithoutReadingIt) {
  std::atomic<int> handler_calls{0};
  std::atomic<int> pre_auth_calls{0};
  std::mutex seen_mu;
  std::string seen_param, seen_client;
  router_.Add(
      "POST", "/secure/{kind}/upload",
      [&](Request& req, Responder respond) {
        handler_calls.fetch_add(1);
        respond(Response::Json(200, std::to_string(req.form.size())));
      },
      RoutePolicy{BodyKind::kUpload, /*authenticated=*/true});
  ServerOptions opts;
  opts.pre_authenticate = [&](const Request& req) {
    pre_auth_calls.fetch_add(1);
    std::lock_guard<std::mutex> lock(seen_mu);
    seen_param = std::string(req.Param("kind"));
    seen_client = req.client_addr;
    EXPECT_TRUE(req.body.empty());
    return BearerGood(req);
  };
  StartServer(opts);

  // Declares 200 MiB (well within max_upload_bytes) and sends only the headers and the
  // first 64 KiB, a file part included: the 401 must come back on that alone.
  const uint64_t declared = 200ull << 20;
  std::string head =
      "POST /secure/model/upload HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: multipart/form-data; boundary=bb\r\n"
      "Expect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(declared) + "\r\n\r\n";
  std::string first = MultipartBody("bb", std::string(64 << 10, 'm')).substr(0, 64 << 10);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send(head + first));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 401);  // no "100 Continue" before it
  EXPECT_EQ(r.Header("www-authenticate"), "Bearer");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_EQ(ErrorCode(r), "UNAUTHORIZED");
  EXPECT_EQ(ErrorMessage(r), "missing Authorization header");
  EXPECT_EQ(nlohmann::json::parse(r.body)["request_id"], r.Header("x-request-id"));
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(CountFiles(upload_dir_), 0u);  // no temp file was ever created
  EXPECT_EQ(handler_calls.load(), 0);
  EXPECT_EQ(pre_auth_calls.load(), 1);
  EXPECT_EQ(server_->pre_auth_failures(), 1u);
  {
    std::lock_guard<std::mutex> lock(seen_mu);
    EXPECT_EQ(seen_param, "model");  // path params are filled in before the check
    EXPECT_EQ(seen_client, "127.0.0.1");
  }

  // A wrong token: 403 as returned, without WWW-Authenticate.
  ASSERT_TRUE(RoundTrip(port_,
                        "POST /secure/model/upload HTTP/1.1\r\nHost: x\r\n"
                        "Authorization: Bearer bad\r\n"
                        "Content-Type: multipart/form-data; boundary=bb\r\n"
                        "Content-Length: " +
                            std::to_string(declared) + "\r\n\r\n",
                        &r));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorCode(r), "FORBIDDEN");
  EXPECT_FALSE(r.HasHeader("www-authenticate"));

  // With credentials: 100 Continue, then the upload goes through.
  std::string body = MultipartBody("bb", "weights");
  TestConn ok;
  ASSERT_TRUE(ok.Connect(port_));
  ASSERT_TRUE(
      ok.Send("POST /secure/model/upload HTTP/1.1\r\nHost: x\r\n"
              "Authorization: Bearer good\r\nExpect: 100-continue\r\n"
              "Content-Type: multipart/form-data; boundary=bb\r\n"
              "Content-Length: " +
              std::to_string(body.size()) + "\r\n\r\n"));
  ASSERT_TRUE(ok.ReadResponse(&r));
  EXPECT_EQ(r.status, 100);
  ASSERT_TRUE(ok.Send(body));
  ASSERT_TRUE(ok.ReadResponse(&r));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "2");
  EXPECT_EQ(handler_calls.load(), 1);
}

TEST_F(ServerTest, PreAuthFailureWithoutBodyKeepsConnection) {
  router_.Add(
      "GET", "/private", [](Request&, Responder respond) { respond(Response::Json(200, "{}")); },
      RoutePolicy{BodyKind::kNone, true});
  ServerOptions opts;
  opts.pre_authenticate = BearerGood;
  StartServer(opts);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ClientResponse r;
  ASSERT_TRUE(c.Send(Get("/private")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(r.HasHeader("connection"));
  ASSERT_TRUE(c.Send(Get("/private", "Authorization: Bearer good\r\n")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  // Routes without the flag never see the check.
  ASSERT_TRUE(c.Send(Get("/hello")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server_->pre_auth_failures(), 1u);
}

TEST_F(ServerTest, PreAuthThrowIs500) {
  router_.Add(
      "GET", "/private", [](Request&, Responder respond) { respond(Response::Json(200, "{}")); },
      RoutePolicy{BodyKind::kNone, true});
  ServerOptions opts;
  opts.pre_authenticate = [](const Request&) -> std::optional<PreAuthFailure> {
    throw std::runtime_error("token store down");
  };
  StartServer(opts);
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/private"), &r));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(ErrorCode(r), "SERVICE_ERROR");
}

TEST_F(ServerTest, MultipartToJsonRouteIs415WithoutReadingIt) {
  StartServer();
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(
      c.Send("POST /echo HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: multipart/form-data; boundary=bb\r\n"
             "Content-Length: 100000000\r\n\r\n" +
             MultipartBody("bb", "x")));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(ErrorCode(r), "UNSUPPORTED_MEDIA_TYPE");
  EXPECT_NE(ErrorMessage(r).find("multipart/form-data"), std::string::npos);
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(CountFiles(upload_dir_), 0u);
  EXPECT_EQ(server_->rejected_bodies(), 1u);
}

TEST_F(ServerTest, JsonBodyOverDefaultLimitIs413NamingIt) {
  StartServer();  // default max_json_body_bytes: 1 MiB
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Post("/echo", std::string(1 << 20, 'j')), &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1u << 20);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(
      c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 1048577\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorCode(r), "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(ErrorMessage(r), "request body is larger than the limit of 1048576 bytes");
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, PredictRouteTakesLargerBodies) {
  router_.Add(
      "POST", "/predict/{id}",
      [](Request& req, Responder respond) {
        respond(Response::Json(200, std::to_string(req.body.size())));
      },
      RoutePolicy{BodyKind::kPredict});
  StartServer();
  std::string five(5 << 20, 'p');
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Post("/predict/m", five), &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::to_string(five.size()));
  // The same body is too large for a JSON route.
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                     std::to_string(five.size()) + "\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  // And the predict cap (10 MiB by default) holds for chunked bodies too.
  TestConn big;
  ASSERT_TRUE(big.Connect(port_));
  ASSERT_TRUE(
      big.Send("POST /predict/m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk = "100000\r\n" + std::string(1 << 20, 'c') + "\r\n";  // 1 MiB chunks
  for (int i = 0; i < 11; ++i) {
    if (!big.Send(chunk)) break;  // the server may have stopped reading
  }
  ASSERT_TRUE(big.ReadResponse(&r));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(ErrorMessage(r), "request body is larger than the limit of 10485760 bytes");
}

TEST_F(ServerTest, SlowLorisHeadersTimeOut) {
  ServerOptions opts;
  opts.header_timeout_seconds = 1;
  StartServer(opts);  // idle timeout stays 60 s: every byte would reset that one
  TestConn c;
  ASSERT_TRUE(c.Connect(port_, /*recv_timeout_ms=*/5000));
  std::atomic<bool> stop{false};
  auto t0 = std::chrono::steady_clock::now();
  std::thread dribble([&] {
    std::string req = Get("/hello", "X-Pad: " + std::string(200, 'a') + "\r\n");
    for (char ch : req) {
      if (stop.load() || !c.Send(std::string(1, ch))) return;
      std::this_thread::sleep_for(200ms);
    }
  });
  ClientResponse r;
  bool got = c.ReadResponse(&r);
  auto waited = std::chrono::steady_clock::now() - t0;
  stop = true;
  dribble.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(ErrorCode(r), "TIMEOUT");
  EXPECT_EQ(ErrorMessage(r), "request headers not received within 1 s");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_GE(waited, 700ms);
  EXPECT_LT(waited, 2500ms);
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server_->timeouts(), 1u);
}

TEST_F(ServerTest, BodyDeadline) {
  ServerOptions opts;
  opts.body_timeout_seconds = 1;
  opts.min_body_bytes_per_second = 0;
  StartServer(opts);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf"));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(ErrorMessage(r), "request body not received within 1 s");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_TRUE(c.WaitClosed());
}

// Sends `body` after `head` at about `bytes_per_second` in 10 pieces a second until done,
// `stop` is set or a send fails.
void Dribble(TestConn* c, const std::string& body, size_t bytes_per_second,
             std::atomic<bool>* stop) {
  size_t step = std::max<size_t>(1, bytes_per_second / 10);
  for (size_t pos = 0; pos < body.size() && !stop->load(); pos += step) {
    if (!c->Send(body.substr(pos, step))) return;
    std::this_thread::sleep_for(100ms);
  }
}

TEST_F(ServerTest, UploadBelowMinimumRateIsCut) {
  ServerOptions opts;
  opts.min_body_bytes_per_second = 2000;
  opts.min_rate_window_seconds = 1;
  StartServer(opts);
  // An upload (no whole-body deadline applies) trickling at ~500 B/s after a quick start
  // that creates its temp file.
  std::string body = MultipartBody("bb", std::string(200000, 'u'));
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(
      c.Send("POST /upload HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: multipart/form-data; boundary=bb\r\n"
             "Content-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 1000)));
  ASSERT_TRUE(WaitFor([&] { return CountFiles(upload_dir_) == 1; }));
  std::atomic<bool> stop{false};
  auto t0 = std::chrono::steady_clock::now();
  std::thread sender([&] { Dribble(&c, body.substr(1000), 500, &stop); });
  ClientResponse r;
  bool got = c.ReadResponse(&r);
  auto waited = std::chrono::steady_clock::now() - t0;
  stop = true;
  sender.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(ErrorCode(r), "TIMEOUT");
  EXPECT_EQ(ErrorMessage(r), "request body arrived slower than 2000 bytes per second");
  EXPECT_LT(waited, 3s);
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(CountFiles(upload_dir_), 0u);  // the partial upload is gone
  EXPECT_TRUE(upload_paths_.empty());
}

TEST_F(ServerTest, BodyAboveMinimumRateIsNotCut) {
  ServerOptions opts;
  opts.min_body_bytes_per_second = 2000;
  opts.min_rate_window_seconds = 1;
  StartServer(opts);
  // ~6 KB/s for about 2.5 s: several windows long, always above the minimum.
  std::string body(15000, 'b');
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  std::atomic<bool> stop{false};
  Dribble(&c, body, 6000, &stop);
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(server_->timeouts(), 0u);
}

// Opens a connection and checks that it is served.
bool OpenServed(TestConn* c, uint16_t port) {
  ClientResponse r;
  return c->Connect(port) && c->Send(Get("/hello")) && c->ReadResponse(&r) && r.status == 200;
}

void ExpectTooManyConnections(uint16_t port) {
  TestConn c;
  ASSERT_TRUE(c.Connect(port));
  ClientResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));  // sent without any request
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_EQ(ErrorCode(r), "SERVICE_ERROR");
  EXPECT_EQ(ErrorMessage(r), "too many connections");
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ServerTest, PerAddressConnectionCap) {
  ServerOptions opts;
  opts.max_connections_per_address = 2;
  StartServer(opts);
  auto a = std::make_unique<TestConn>();
  TestConn b;
  ASSERT_TRUE(OpenServed(a.get(), port_));
  ASSERT_TRUE(OpenServed(&b, port_));
  ExpectTooManyConnections(port_);
  EXPECT_EQ(server_->rejected_connections(), 1u);
  EXPECT_EQ(server_->connections(), 2);
  // A slot frees when a connection closes.
  a.reset();
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 1; }));
  TestConn d;
  EXPECT_TRUE(OpenServed(&d, port_));
}

TEST_F(ServerTest, GlobalConnectionCap) {
  ServerOptions opts;
  opts.max_connections = 3;
  opts.max_connections_per_address = 0;
  StartServer(opts);
  EXPECT_EQ(server_->max_connections(), 3);
  TestConn a, b, c;
  ASSERT_TRUE(OpenServed(&a, port_));
  ASSERT_TRUE(OpenServed(&b, port_));
  ASSERT_TRUE(OpenServed(&c, port_));
  ExpectTooManyConnections(port_);
  ExpectTooManyConnections(port_);
  EXPECT_EQ(server_->rejected_connections(), 2u);
  c.Close();
  ASSERT_TRUE(WaitFor([&] { return server_->connections() == 2; }));
  TestConn d;
  EXPECT_TRUE(OpenServed(&d, port_));
}

TEST_F(ServerTest, GlobalCapClampedToOpenFileLimit) {
  ServerOptions opts;
  opts.max_connections = std::numeric_limits<int64_t>::max();
  StartServer(opts);
  struct rlimit nofile;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  if (nofile.rlim_cur != RLIM_INFINITY) {
    EXPECT_LT(server_->max_connections(), static_cast<int64_t>(nofile.rlim_cur));
  }
  EXPECT_GE(server_->max_connections(), 1);
}

TEST_F(ServerTest, ExemptLoopbackAndTrustedProxiesAreNotCappedPerAddress) {
  for (int variant = 0; variant < 2; ++variant) {
    ServerOptions opts;
    opts.max_connections_per_address = 1;
    if (variant == 0) opts.exempt_loopback = true;
    if (variant == 1) opts.trusted_proxies = {"127.0.0.1"};
    StartServer(opts);
    TestConn a, b, c;
    EXPECT_TRUE(OpenServed(&a, port_)) << variant;
    EXPECT_TRUE(OpenServed(&b, port_)) << variant;
    EXPECT_TRUE(OpenServed(&c, port_)) << variant;
    EXPECT_EQ(server_->rejected_connections(), 0u);
    server_->Stop(1);
    server_.reset();
  }
  // Without either, loopback is capped like any address.
  ServerOptions opts;
  opts.max_connections_per_address = 1;
  StartServer(opts);
  TestConn a;
  ASSERT_TRUE(OpenServed(&a, port_));
  ExpectTooManyConnections(port_);
}

TEST_F(ServerTest, ClientAddressFromTrustedProxy) {
  ServerOptions opts;
  opts.trusted_proxies = {"10.0.0.0/8", "127.0.0.0/8", "::1"};
  StartServer(opts);
  TestConn c;
  ASSERT_TRUE(c.Connect(port_));
  auto client_of = [&](const std::string& extra) {
    ClientResponse r;
    if (!c.Send(Get("/echo/1", extra)) || !c.ReadResponse(&r)) return std::string("<io>");
    auto j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["remote"], "127.0.0.1");  // the socket peer, always
    return j["client"].get<std::string>();
  };
  EXPECT_EQ(client_of(Header("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.1.1")), "203.0.113.9");
  EXPECT_EQ(client_of(Header("X-Forwarded-For", "6.6.6.6") +
                      Header("X-Forwarded-For", "2001:DB8::7, 10.0.0.2")),
            "2001:db8::7");
  EXPECT_EQ(client_of(""), "127.0.0.1");  // same connection, no header: the peer again
  EXPECT_EQ(client_of(Header("X-Forwarded-For", "garbage")), "127.0.0.1");

  // The peer is not trusted: the header is ignored.
  server_->Stop(1);
  server_.reset();
  ServerOptions plain;
  plain.trusted_proxies = {"10.0.0.0/8"};
  StartServer(plain);
  ClientResponse r;
  ASSERT_TRUE(RoundTrip(port_, Get("/echo/1", Header("X-Forwarded-For", "203.0.113.9")), &r));
  EXPECT_EQ(nlohmann::json::parse(r.body)["client"], "127.0.0.1");
}

TEST(ServerStartTest, BadTrustedProxyRefusesToStart) {
  Router router;
  ServerOptions opts;
  opts.port = 0;
  opts.io_threads = 1;
  opts.trusted_proxies = {"10.0.0.0/8", "proxy.internal"};
  Server s(opts, &router);
  EXPECT_NE(s.Start().find("proxy.internal"), std::string::npos);
}

TEST(ServerStartTest, BindFailureReported) {
  Router router;
  ServerOptions opts;
  opts.port = 0;
  opts.io_threads = 1;
  Server a(opts, &router);
  ASSERT_EQ(a.Start(), "");
  ServerOptions opts2 = opts;
  opts2.port = a.port();
  Server b(opts2, &router);
  std::string err = b.Start();
  EXPECT_NE(err, "");
  b.Stop();
  a.Stop();
  a.Stop();
}

}  // namespace
}  // namespace serveml::http
