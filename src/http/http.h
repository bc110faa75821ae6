// Transport-neutral request/response types and the handler signature. Handlers in api/
// see only these structs; Boost.Beast is linked only into the server adapter (server.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace serveml::http {

// One part of a multipart/form-data body. File parts (those with a filename) are streamed
// to a temporary file under the server's upload dir while the body arrives and are never
// held whole in memory; other parts keep their value in memory (bounded by the body limit).
struct FormPart {
  std::string name;          // form field name
  std::string filename;      // empty for plain fields
  std::string content_type;  // part Content-Type, may be empty
  std::string value;         // plain field value (empty for file parts)
  std::string file_path;     // temp file holding a file part's bytes (empty for fields)
  uint64_t size = 0;         // bytes of value or file
};

// Owns temp files of a parsed multipart body; deletes them when destroyed unless
// Release()d. Handlers that want to keep a file move it away (rename) first.
class UploadedFiles {
 public:
  UploadedFiles() = default;
  ~UploadedFiles();
  UploadedFiles(const UploadedFiles&) = delete;
  UploadedFiles& operator=(const UploadedFiles&) = delete;
  void Add(std::string path) { paths_.push_back(std::move(path)); }
  // Forgets every path: the files are no longer deleted by this object.
  void Release() { paths_.clear(); }
  // Paths currently owned, in the order they were added.
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::vector<std::string> paths_;
};

// One HTTP request as the server hands it to a handler. The server owns it and does not
// touch or reuse it until the handler's Responder has been called, so a handler may keep a
// reference (or move fields out) until it responds.
struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target, e.g. "/api/v1/deployments?limit=5"
  std::string path;    // percent-decoded path without query, e.g. "/api/v1/deployments"
  std::string query;   // raw query string without '?', e.g. "limit=5"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                        // whole body for non-multipart requests
  std::vector<FormPart> form;              // parsed multipart/form-data parts
  std::shared_ptr<UploadedFiles> uploads;  // owner of form temp files
  std::string remote_addr;                 // peer IP address (the socket's)
  // The client's IP address, canonical text ("10.0.0.1", "2001:db8::1"): the peer address,
  // or, when the peer is one of ServerOptions::trusted_proxies, the right-most
  // X-Forwarded-For entry that is not a trusted proxy (see ClientAddressFor in address.h).
  // Use this, not remote_addr, for per-client limits and logs.
  std::string client_addr;
  std::string request_id;  // "req-<hex>" assigned by the server
  std::vector<std::pair<std::string, std::string>> path_params;  // filled by the Router

  // First header value with this (lower-case) name, or empty.
  std::string_view Header(std::string_view lower_name) const;
  // Path parameter captured by a "{name}" segment, or empty.
  std::string_view Param(std::string_view name) const;
  // Percent-decoded ('+' is a space) value of the first query parameter with this name.
  // Returns false, leaving *value untouched, when absent; "?a" and "?a=" both give "".
  bool QueryParam(std::string_view name, std::string* value) const;
  // The form part with this field name, or nullptr.
  const FormPart* Part(std::string_view name) const;
};

// A copy of `req` for work that outlives the handler call (a pool task). The body and
// uploads move (they may be large); the rest is copied because the server still reads the
// request id, method and path of the original when it writes the response and the access
// log line.
std::shared_ptr<Request> DetachRequest(Request& req);

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;

  static Response Json(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
};

// Completes a request. Must be called exactly once, from any thread; the server writes
// the response on the connection's own I/O thread. Cheap to copy.
using Responder = std::function<void(Response)>;

// A request handler. Runs on an I/O thread: it must not block (no disk, no model runs,
// no password hashing) — hand such work to a pool and call `respond` from there.
using Handler = std::function<void(Request& req, Responder respond)>;

// ASCII case-insensitive equality, as header names and media types compare.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace serveml::http
