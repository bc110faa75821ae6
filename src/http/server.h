// HTTP/1.1 server adapter over Boost.Beast: one io_context per I/O thread, keep-alive,
// request ids, per-route body limits, authentication before the body, slow-client
// deadlines, connection caps, multipart uploads streamed to disk, graceful drain.
//
// Every request gets an id ("req-" + 16 hex chars) echoed as X-Request-ID (an incoming
// X-Request-ID of sane length and charset is kept instead). Errors the server itself
// produces use the API error shape via the `error_body` callback in Options, with the codes
// NOT_FOUND (404), INVALID_INPUT (400, 405, 431), UNAUTHORIZED/FORBIDDEN or whatever
// pre_authenticate returns (401/403), TIMEOUT (408), PAYLOAD_TOO_LARGE (413),
// UNSUPPORTED_MEDIA_TYPE (415), SERVICE_ERROR (500: a handler threw or dropped its
// Responder without calling it; 503: over a connection cap).
//
// Order of checks once a request's headers are in (no body byte has been read yet):
//   1. target syntax (400), route lookup (404/405; a multipart body is never read for
//      these, any other body is read within max_json_body_bytes);
//   2. pre_authenticate, for routes registered with RoutePolicy::authenticated;
//   3. body class: multipart/form-data to a route whose policy is not BodyKind::kUpload
//      (415), a declared Content-Length over the route's cap (413);
//   4. only then "100 Continue" (if the client asked) and the body is read; a chunked body
//      is cut with 413 as soon as it passes the cap; no upload temp file exists before this.
// A refusal in 2-3 (or a 404/405 to a multipart body) of a request that has a body is
// answered with "Connection: close"; the server then stops sending, discards what the
// client still sends for up to 2 s (so the answer is not lost to a TCP reset) and closes.
// A bodyless request keeps its connection.
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
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http.h"
#include "http/router.h"

namespace serveml::http {

// Why pre_authenticate refused a request. Answered as
// error_body(status, code, message, request id); a 401 also carries
// "WWW-Authenticate: Bearer".
struct PreAuthFailure {
  int status = 401;
  std::string code = "UNAUTHORIZED";
  std::string message = "missing Authorization header";
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;   // 0 picks a free port (see Server::port())
  size_t io_threads = 0;  // 0 = number of cores

  // --- Body caps, by the matched route's RoutePolicy::body. A declared Content-Length over
  // the cap is answered 413 PAYLOAD_TOO_LARGE ("request body is larger than the limit of N
  // bytes" / "upload is larger than ...") before any body byte is read; a chunked body is
  // cut the same way as soon as it passes the cap.
  uint64_t max_json_body_bytes = 1ull << 20;      // BodyKind::kJson and kNone routes, the
                                                  // non-multipart bodies of kUpload routes,
                                                  // and bodies sent to 404/405 paths
  uint64_t max_predict_body_bytes = 10ull << 20;  // BodyKind::kPredict routes
  uint64_t max_upload_bytes = 1ull << 30;         // multipart bodies of BodyKind::kUpload
                                                  // routes; any other route answers a
                                                  // multipart body 415 UNSUPPORTED_MEDIA_TYPE
  uint64_t max_field_bytes = 1ull << 20;          // each plain multipart field, else 413
  uint32_t max_header_bytes = 16u << 10;          // request line + headers, else 431
  std::string upload_dir = "/tmp";                // temp files for multipart file parts

  // --- Authentication before the body. Called on the I/O thread right after the headers
  // of a request to a route registered with RoutePolicy::authenticated, before any body
  // byte is read, "100 Continue" is sent or an upload temp file is created. The request
  // has method, target, path, query, headers, path_params, remote_addr, client_addr and
  // request_id filled in; body and form are empty. Return nullopt to go on, or the
  // failure to answer (the body is then never read). Must be cheap and non-blocking (a
  // token lookup in memory, no password hashing); a throw is answered 500. Unset: no
  // check. The handler is still responsible for the full authorization decision.
  std::function<std::optional<PreAuthFailure>(const Request&)> pre_authenticate;

  // --- Deadlines, checked by a per-thread sweeper every 250 ms (so they fire up to 250 ms
  // late; no timer per read). A request that misses the header, body or rate deadline is
  // answered 408 TIMEOUT with "Connection: close" and a message naming it ("request headers
  // not received within 10 s", "request body not received within 30 s", "request body
  // arrived slower than 1024 bytes per second"), any partial upload is deleted, and the
  // connection is closed; no handler sees the request. (Should "100 Continue" still be
  // going out at that moment, the connection is closed without the 408.)
  int idle_timeout_seconds = 60;    // keep-alive idle limit, and the longest silence while
                                    // reading a request or writing a response: the
                                    // connection is closed without an answer
  int header_timeout_seconds = 10;  // from a request's first byte to the end of its
                                    // headers; <= 0 disables
  int body_timeout_seconds = 30;    // whole body of a non-upload request (JSON, predict),
                                    // from the end of its headers; <= 0 disables
  // Minimum average rate of any body, uploads included: once a body has been arriving for
  // `min_rate_window_seconds` (the grace period), the bytes received over the last window
  // (sliding, moved every window/4) must average at least this many per second. 0 disables
  // the check; the window is at least 1 s.
  uint64_t min_body_bytes_per_second = 1024;
  int min_rate_window_seconds = 10;

  // --- Connection caps. A connection over a cap gets a small 503 SERVICE_ERROR "too many
  // connections" with "Retry-After: 1" and "Connection: close" and is closed at once:
  // nothing is queued and no request on it is read.
  int64_t max_connections = 10000;  // open connections in total; lowered at Start() to the
                                    // process's RLIMIT_NOFILE minus a reserve (1/8 of it,
                                    // at least 64) for files, uploads and the store
  int64_t max_connections_per_address = 256;  // open connections from one peer IPv4 address
                                              // or IPv6 /64 (ClientNetwork, address.h);
                                              // trusted proxies are not capped (they carry
                                              // many clients); 0 disables
  // Loopback peers (127.0.0.0/8, ::1) are not counted against max_connections_per_address.
  bool exempt_loopback = false;

  // --- Client address. Peers whose address is in one of these ("10.0.0.0/8",
  // "2001:db8::/32", "192.0.2.7", "::1") are reverse proxies: Request::client_addr is
  // then taken from X-Forwarded-For (see http.h). Start() fails on an entry that does not
  // parse.
  std::vector<std::string> trusted_proxies;

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
  // The global connection cap in force (max_connections after the RLIMIT_NOFILE clamp).
  // Valid after Start().
  int64_t max_connections() const;

  // Event counters since Start(); thread safe, relaxed (for metrics, not synchronization).
  // Connections refused over max_connections or max_connections_per_address (503).
  uint64_t rejected_connections() const;
  // Requests that missed the header, body or minimum-rate deadline (408 or closed).
  uint64_t timeouts() const;
  // Requests refused by pre_authenticate.
  uint64_t pre_auth_failures() const;
  // Bodies refused for size (413) or kind (415).
  uint64_t rejected_bodies() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace serveml::http
