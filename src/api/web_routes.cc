#include "api/web_routes.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <unordered_map>

#include "api/errors.h"

namespace serveml::api {

namespace {

using http::Request;
using http::Response;

// Strict policy: everything from this origin, no inline scripts or styles, no framing.
// uPlot and Preact set styles through the CSSOM (element.style), which CSP allows.
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

constexpr std::string_view kAssetsDir = "/assets/";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

const char* ContentTypeFor(std::string_view path) {
  struct Ext {
    std::string_view ext;
    const char* type;
  };
  static constexpr Ext kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".json", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& t : kTypes) {
    if (EndsWith(path, t.ext)) return t.type;
  }
  return "application/octet-stream";
}

struct Index {
  std::unordered_map<std::string_view, const web::EmbeddedFile*> by_path;
  const web::EmbeddedFile* index_html = nullptr;
};

const Index& Files() {
  static const Index idx = [] {
    Index i;
    for (const auto& f : web::EmbeddedFiles()) i.by_path.emplace(f.path, &f);
    auto it = i.by_path.find("/index.html");
    if (it != i.by_path.end()) i.index_html = it->second;
    return i;
  }();
  return idx;
}

// True when If-None-Match lists `etag` (or is "*").
bool EtagMatches(const Request& req, std::string_view etag) {
  std::string_view inm = req.Header("if-none-match");
  if (inm.empty()) return false;
  if (inm == "*") return true;
  size_t pos = 0;
  while (pos < inm.size()) {
    size_t comma = inm.find(',', pos);
    std::string_view tok = inm.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (tok.substr(0, 2) == "W/") tok.remove_prefix(2);
    if (tok == etag) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

Response FileResponse(const Request& req, const web::EmbeddedFile& f, bool immutable) {
  Response r;
  r.headers.emplace_back("ETag", f.etag);
  // Hashed assets never change under the same name; index.html must be revalidated so a
  // new build is picked up at once.
  r.headers.emplace_back("Cache-Control",
                         immutable ? "public, max-age=31536000, immutable" : "no-cache");
  std::string_view path = f.path;
  if (EndsWith(path, ".html")) {
    r.headers.emplace_back("Content-Security-Policy", kCsp);
    r.headers.emplace_back("Vary", "Accept");
  }
  if (EtagMatches(req, f.etag)) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.status = 200;
  r.content_type = ContentTypeFor(path);
  r.body.assign(reinterpret_cast<const char*>(f.data), f.size);
  return r;
}

}  // namespace

bool HasDashboard() { return Files().index_html != nullptr; }

bool WantsHtml(const Request& req) {
  std::string accept(req.Header("accept"));
  for (char& c : accept) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t pos = accept.find("text/html");
  if (pos == std::string::npos) return false;
  // "text/html;q=0" explicitly refuses HTML.
  size_t end = accept.find(',', pos);
  std::string params = accept.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
  size_t q = params.find(";q=");
  if (q != std::string::npos) {
    std::string v = params.substr(q + 3);
    if (v == "0" || v == "0." || v == "0.0" || v == "0.00" || v == "0.000") return false;
  }
  return true;
}

Response DashboardIndex(const Request& req) {
  return FileResponse(req, *Files().index_html, /*immutable=*/false);
}

Response ServeDashboard(const Request& req) {
  const Index& files = Files();
  if (!files.index_html) {
    return ErrorResponse(NotFound("the web dashboard is not built into this binary: install Node.js "
                                  "and run `make build` (the REST API is unaffected)"),
                         req.request_id);
  }
  std::string_view path = req.path;
  if (path.substr(0, kDashboardPrefix.size()) == kDashboardPrefix) path.remove_prefix(kDashboardPrefix.size());
  if (path.empty() || path == "/" || path == "/index.html") return DashboardIndex(req);
  auto it = files.by_path.find(path);
  if (it != files.by_path.end()) {
    bool hashed = path.substr(0, kAssetsDir.size()) == kAssetsDir;
    return FileResponse(req, *it->second, hashed);
  }
  // A missing asset must not come back as HTML (the browser would try to run it).
  if (path.substr(0, kAssetsDir.size()) == kAssetsDir) {
    return ErrorResponse(NotFound("no dashboard asset " + std::string(req.path)), req.request_id);
  }
  // Client-side route (/ui/deployments/abc...): the app decides what to show.
  return DashboardIndex(req);
}

void RegisterWebRoutes(http::Router* router) {
  auto handler = [](Request& req, http::Responder respond) { respond(ServeDashboard(req)); };
  std::string pattern(kDashboardPrefix);
  router->Add("GET", pattern, handler);
  for (int depth = 1; depth <= 6; ++depth) {
    pattern += "/{p" + std::to_string(depth) + "}";
    router->Add("GET", pattern, handler);
  }
}

}  // namespace serveml::api
