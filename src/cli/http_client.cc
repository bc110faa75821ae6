#include "cli/http_client.h"

#include <curl/curl.h>

#include <mutex>

#include "cli/client_config.h"

#ifndef SERVEML_VERSION
#define SERVEML_VERSION "dev"
#endif

namespace serveml::cli {
namespace {

size_t WriteBody(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

size_t ReadHeader(char* data, size_t size, size_t nmemb, void* user) {
  const size_t n = size * nmemb;
  std::string_view line(data, n);
  constexpr std::string_view kName = "x-request-id:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size(); ++i) {
      char c = line[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != kName[i]) {
        match = false;
        break;
      }
    }
    if (match) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
        v.remove_suffix(1);
      }
      static_cast<HttpResponse*>(user)->request_id = std::string(v);
    }
  }
  return n;
}

int OnProgress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t ultotal,
               curl_off_t ulnow) {
  auto* progress = static_cast<ProgressRenderer*>(user);
  progress->Update(static_cast<uint64_t>(ulnow < 0 ? 0 : ulnow),
                   static_cast<uint64_t>(ultotal < 0 ? 0 : ultotal));
  return 0;
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct MimeDeleter {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;
using Mime = std::unique_ptr<curl_mime, MimeDeleter>;

bool IsConnectError(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY;
}

}  // namespace

std::string UrlEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

bool EnsureCurlInitialized() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  return ok;
}

struct HttpClient::Impl {
  CURL* curl = nullptr;
  char error[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(std::string base_url, std::string token)
    : base_url_(std::move(base_url)), token_(std::move(token)), impl_(std::make_unique<Impl>()) {
  EnsureCurlInitialized();
  impl_->curl = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (impl_ && impl_->curl) curl_easy_cleanup(impl_->curl);
}

namespace {

// Sets the options shared by every request and returns the header list to keep alive.
Slist CommonSetup(CURL* curl, char* error_buf, const std::string& url, const std::string& token,
                  HttpResponse* response, bool has_json_body) {
  curl_easy_reset(curl);  // keeps the connection cache
  error_buf[0] = '\0';
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "serveml-cli/" SERVEML_VERSION);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  // Abort a transfer that makes no progress for a minute, but never cap a slow upload.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response->body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, response);

  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (has_json_body) headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!token.empty()) {
    const std::string auth = "Authorization: Bearer " + token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  return Slist(headers);
}

// Runs the transfer; `response` is the object the callbacks were bound to in CommonSetup.
Result<HttpResponse> Execute(CURL* curl, const char* error_buf, const std::string& url,
                             HttpResponse* response) {
  CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    std::string detail = error_buf[0] ? error_buf : curl_easy_strerror(code);
    const std::string shown = RedactUrl(url);
    if (IsConnectError(code)) {
      return Unavailable("cannot connect to " + shown + ": " + detail +
                         " (is the server running? set --url or SERVEML_URL)");
    }
    return Unavailable("request to " + shown + " failed: " + detail);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
  return std::move(*response);
}

}  // namespace

Result<HttpResponse> HttpClient::Get(std::string_view path) {
  if (!impl_->curl) return Internal("curl_easy_init failed");
  const std::string url = base_url_ + std::string(path);
  HttpResponse response;
  Slist headers = CommonSetup(impl_->curl, impl_->error, url, token_, &response, false);
  curl_easy_setopt(impl_->curl, CURLOPT_HTTPGET, 1L);
  return Execute(impl_->curl, impl_->error, url, &response);
}

Result<HttpResponse> HttpClient::Delete(std::string_view path) {
  if (!impl_->curl) return Internal("curl_easy_init failed");
  const std::string url = base_url_ + std::string(path);
  HttpResponse response;
  Slist headers = CommonSetup(impl_->curl, impl_->error, url, token_, &response, false);
  curl_easy_setopt(impl_->curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  return Execute(impl_->curl, impl_->error, url, &response);
}

Result<HttpResponse> HttpClient::PostJson(std::string_view path, const std::string& json_body) {
  if (!impl_->curl) return Internal("curl_easy_init failed");
  const std::string url = base_url_ + std::string(path);
  HttpResponse response;
  Slist headers = CommonSetup(impl_->curl, impl_->error, url, token_, &response, true);
  curl_easy_setopt(impl_->curl, CURLOPT_POST, 1L);
  curl_easy_setopt(impl_->curl, CURLOPT_POSTFIELDS, json_body.data());
  curl_easy_setopt(impl_->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(json_body.size()));
  return Execute(impl_->curl, impl_->error, url, &response);
}

Result<HttpResponse> HttpClient::PostMultipart(std::string_view path,
                                               const std::vector<MultipartPart>& parts,
                                               ProgressRenderer* progress) {
  if (!impl_->curl) return Internal("curl_easy_init failed");
  const std::string url = base_url_ + std::string(path);
  HttpResponse response;
  Slist headers = CommonSetup(impl_->curl, impl_->error, url, token_, &response, false);

  Mime mime(curl_mime_init(impl_->curl));
  if (!mime) return Internal("curl_mime_init failed");
  for (const MultipartPart& p : parts) {
    curl_mimepart* part = curl_mime_addpart(mime.get());
    curl_mime_name(part, p.name.c_str());
    if (p.is_file) {
      // Streams the file during the transfer; also sets filename to its basename.
      if (curl_mime_filedata(part, p.value.c_str()) != CURLE_OK) {
        return InvalidInput("cannot read " + p.value);
      }
      curl_mime_type(part,
                     p.content_type.empty() ? "application/octet-stream" : p.content_type.c_str());
    } else {
      curl_mime_data(part, p.value.data(), p.value.size());
    }
  }
  curl_easy_setopt(impl_->curl, CURLOPT_MIMEPOST, mime.get());
  if (progress) {
    curl_easy_setopt(impl_->curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(impl_->curl, CURLOPT_XFERINFODATA, progress);
    curl_easy_setopt(impl_->curl, CURLOPT_NOPROGRESS, 0L);
  }
  auto result = Execute(impl_->curl, impl_->error, url, &response);
  if (progress) progress->Finish();
  return result;
}

}  // namespace serveml::cli
