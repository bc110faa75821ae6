// HTTP/1.1 server adapter over Boost.Beast: one io_context per I/O thread, keep-alive,
// request ids, body limits, multipart uploads streamed to disk, graceful drain.
//
// Every request gets an id ("req-" + 16 hex chars) echoed as X-Request-ID (an incoming
// X-Request-ID of sane length and charset is kept instead). Errors the server itself
// produces (unknown route 404, wrong method 405, body too large 413, malformed request
// 400) use the API error shape via the `error_body` callback in Options, with the codes
// NOT_FOUND (404), INVALID_INPUT (400, 405, 431), PAYLOAD_TOO_LARGE (413) and
// SERVICE_ERROR (500: a handler threw or dropped its Responder without calling it).
//
// Threading: each I/O thread runs its own io_context; a connection lives on one of them
// for its whole life. Handlers run on that thread; their Responder may be called from any
// thread and the write is posted back. Responders must be called (or dropped) before the
// Server is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http.h"
#include "http/router.h"

namespace serveml::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                    // 0 picks a free port (see Server::port())
  size_t io_threads = 0;                   // 0 = number of cores
  uint64_t max_body_bytes = 10ull << 20;   // non-multipart bodies, else 413
  uint64_t max_upload_bytes = 1ull << 30;  // multipart bodies, else 413
  uint64_t max_field_bytes = 1ull << 20;   // each plain multipart field, else 413
  uint32_t max_header_bytes = 16u << 10;   // request line + headers, else 431
  std::string upload_dir = "/tmp";         // temp files for multipart file parts
  int idle_timeout_seconds = 60;           // keep-alive idle limit
  // Builds an error body in the API's shape: (http status, CODE, message, request id).
  // When unset the server writes
  // {"error":{"code":..,"message":..,"details":{}},"request_id":..} itself.
  std::function<std::string(int, std::string_view, std::string_view, std::string_view)> error_body;
  // Headers added to every response (security headers, CORS...).
  std::vector<std::pair<std::string, std::string>> default_headers;
  // Called after each response is written: method, path, status, micros, request id.
  // Runs on the I/O thread: keep it cheap and non-blocking.
  std::function<void(const Request&, int status, int64_t micros)> access_log;
};

class Server {
 public:
  // The router must outlive the server.
  Server(ServerOptions options, const Router* router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the I/O threads. Returns an error message on failure, "" on success.
  // Call once.
  std::string Start();
  // Bound port (useful with port 0). Valid after Start().
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to `drain_seconds`), closes idle
  // keep-alive connections, joins the I/O threads. Idempotent; safe from any thread
  // except an I/O thread.
  void Stop(int drain_seconds = 30);
  // Requests being handled right now (dispatched, response not yet written). Thread safe.
  int64_t in_flight() const;
  // Open client connections. Thread safe.
  int64_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace serveml::http
