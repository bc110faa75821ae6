// A minimal blocking HTTP client for the CLI, on libcurl.
//
// One HttpClient holds one curl handle, so consecutive requests (e.g. status polling)
// reuse the connection. Requests carry `Authorization: Bearer <token>` when a token is
// set; the token is never logged or included in any message. Redirects are not followed
// (so the token is never forwarded to another host).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/progress.h"
#include "core/status.h"

namespace serveml::cli {

// A completed HTTP exchange (any status code, including 4xx/5xx).
struct HttpResponse {
  long status = 0;
  std::string body;
  std::string request_id;  // the X-Request-ID response header, if any
};

// One part of a multipart/form-data body. For a file part, `value` is a path whose
// contents are streamed from disk during the upload (never read into memory).
struct MultipartPart {
  std::string name;
  std::string value;
  bool is_file = false;
  std::string content_type;  // optional, for file parts
};

// Percent-encodes `s` for use as one URL path segment or query value (RFC 3986
// unreserved characters are kept, everything else is %XX).
std::string UrlEscape(std::string_view s);

// Calls curl_global_init once per process (thread-safe). Returns false on failure.
bool EnsureCurlInitialized();

class HttpClient {
 public:
  // `base_url` is e.g. "http://127.0.0.1:8000" (no trailing slash); `token` may be empty.
  HttpClient(std::string base_url, std::string token);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `path` starts with "/" and is appended to the base URL (already escaped by the caller).
  // A non-OK Status means no HTTP response was obtained (connection refused, DNS, timeout,
  // TLS, ...); its message names the URL. HTTP error statuses are returned as responses.
  Result<HttpResponse> Get(std::string_view path);
  Result<HttpResponse> Delete(std::string_view path);
  Result<HttpResponse> PostJson(std::string_view path, const std::string& json_body);
  // Uploads a multipart/form-data body. When `progress` is non-null it receives upload
  // progress updates and is Finish()ed before returning.
  Result<HttpResponse> PostMultipart(std::string_view path, const std::vector<MultipartPart>& parts,
                                     ProgressRenderer* progress);

  const std::string& base_url() const { return base_url_; }

 private:
  struct Impl;
  std::string base_url_;
  std::string token_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace serveml::cli
