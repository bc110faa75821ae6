#include "http/http.h"

#include <unistd.h>

#include "http/url.h"

namespace serveml::http {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool PercentDecode(std::string_view in, bool plus_as_space, std::string* out) {
  bool ok = true;
  out->reserve(out->size() + in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        char d = static_cast<char>(hi * 16 + lo);
        if (d == '\0') ok = false;
        out->push_back(d);
        i += 2;
        continue;
      }
    } else if (c == '+' && plus_as_space) {
      c = ' ';
    } else if (c == '\0') {
      ok = false;
    }
    out->push_back(c);
  }
  return ok;
}

void SplitTarget(std::string_view target, std::string_view* path, std::string_view* query) {
  // Absolute-form: scheme "://" authority path.
  if (!target.empty() && target[0] != '/') {
    size_t scheme_end = target.find("://");
    if (scheme_end != std::string_view::npos) {
      size_t path_start = target.find_first_of("/?#", scheme_end + 3);
      if (path_start == std::string_view::npos) {
        target = "/";
      } else if (target[path_start] != '/') {
        // "http://host?q": empty path.
        static constexpr std::string_view kRoot = "/";
        std::string_view rest = target.substr(path_start);
        size_t hash = rest.find('#');
        if (hash != std::string_view::npos) rest = rest.substr(0, hash);
        *path = kRoot;
        *query = rest[0] == '?' ? rest.substr(1) : std::string_view();
        return;
      } else {
        target = target.substr(path_start);
      }
    }
  }
  size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    *path = target;
    *query = {};
  } else {
    *path = target.substr(0, q);
    *query = target.substr(q + 1);
  }
}

UploadedFiles::~UploadedFiles() {
  for (const std::string& p : paths_) ::unlink(p.c_str());
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view Request::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [k, v] : path_params) {
    if (k == name) return v;
  }
  return {};
}

bool Request::QueryParam(std::string_view name, std::string* value) const {
  std::string_view rest = query;
  std::string key;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_key = pair.substr(0, eq);
    std::string_view raw_val =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // Fast path: keys without escapes compare directly.
    bool match;
    if (raw_key.find_first_of("%+") == std::string_view::npos) {
      match = raw_key == name;
    } else {
      key.clear();
      PercentDecode(raw_key, true, &key);
      match = key == name;
    }
    if (!match) continue;
    value->clear();
    PercentDecode(raw_val, true, value);
    return true;
  }
  return false;
}

const FormPart* Request::Part(std::string_view name) const {
  for (const FormPart& p : form) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::shared_ptr<Request> DetachRequest(Request& req) {
  auto d = std::make_shared<Request>();
  d->method = req.method;
  d->target = req.target;
  d->path = req.path;
  d->query = req.query;
  d->headers = req.headers;
  d->body = std::move(req.body);
  d->form = std::move(req.form);
  d->uploads = std::move(req.uploads);
  d->remote_addr = req.remote_addr;
  d->client_addr = req.client_addr;
  d->request_id = req.request_id;
  d->path_params = req.path_params;
  return d;
}

}  // namespace serveml::http
