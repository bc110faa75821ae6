#include "http/router.h"

#include <array>

namespace serveml::http {

namespace {

constexpr size_t kMaxSegments = 32;

// Splits "/a/b/c" (leading slash, one trailing slash ignored) into segments. Returns the
// number of segments, or kMaxSegments + 1 if there are too many.
size_t SplitPath(std::string_view path, std::array<std::string_view, kMaxSegments>* out) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return 0;
  size_t n = 0;
  while (true) {
    if (n == kMaxSegments) return kMaxSegments + 1;
    size_t slash = path.find('/');
    (*out)[n++] = path.substr(0, slash);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return n;
}

// True if route `a` is more specific than `b` (first differing segment literal in a).
template <typename Seg>
bool MoreSpecific(const std::vector<Seg>& a, const std::vector<Seg>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].capture != b[i].capture) return !a[i].capture;
  }
  return false;
}

void AppendMethod(std::string* allow, std::string_view method) {
  // Linear de-duplication: only runs for 405 answers.
  std::string_view existing = *allow;
  while (!existing.empty()) {
    size_t comma = existing.find(", ");
    if (existing.substr(0, comma) == method) return;
    if (comma == std::string_view::npos) break;
    existing.remove_prefix(comma + 2);
  }
  if (!allow->empty()) allow->append(", ");
  allow->append(method);
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler, RoutePolicy policy) {
  std::vector<Segment> segs;
  std::array<std::string_view, kMaxSegments> parts;
  size_t n = SplitPath(pattern, &parts);
  if (n > kMaxSegments) n = kMaxSegments;  // such a route could never match; keep it inert
  for (size_t i = 0; i < n; ++i) {
    std::string_view p = parts[i];
    Segment s;
    if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
      s.capture = true;
      s.text = std::string(p.substr(1, p.size() - 2));
    } else {
      s.text = std::string(p);
    }
    segs.push_back(std::move(s));
  }
  compiled_.push_back(std::move(segs));
  routes_.push_back(Route{std::move(method), std::move(pattern), std::move(handler), policy});
}

Router::MatchResult Router::Match(Request* req, const Handler** handler) const {
  return Match(req, handler, nullptr);
}

Router::MatchResult Router::Match(Request* req, const Handler** handler, std::string* allow) const {
  const Route* route = nullptr;
  MatchResult r = MatchRoute(req, &route, allow);
  if (r == MatchResult::kFound) *handler = &route->handler;
  return r;
}

Router::MatchResult Router::MatchRoute(Request* req, const Route** route,
                                       std::string* allow) const {
  std::array<std::string_view, kMaxSegments> parts;
  size_t n = SplitPath(req->path, &parts);
  if (n > kMaxSegments) return MatchResult::kNotFound;
  const bool is_head = req->method == "HEAD";

  int best = -1;      // best route with the exact method
  int best_get = -1;  // best GET route (HEAD fallback)
  bool path_matched = false;
  for (size_t r = 0; r < compiled_.size(); ++r) {
    const std::vector<Segment>& segs = compiled_[r];
    if (segs.size() != n) continue;
    bool ok = true;
    for (size_t i = 0; i < n && ok; ++i) {
      ok = segs[i].capture ? !parts[i].empty() : segs[i].text == parts[i];
    }
    if (!ok) continue;
    path_matched = true;
    const std::string& m = routes_[r].method;
    if (m == req->method) {
      if (best < 0 || MoreSpecific(segs, compiled_[best])) best = static_cast<int>(r);
    } else if (is_head && m == "GET") {
      if (best_get < 0 || MoreSpecific(segs, compiled_[best_get])) best_get = static_cast<int>(r);
    }
  }
  if (best < 0) best = best_get;
  if (best >= 0) {
    const std::vector<Segment>& segs = compiled_[best];
    for (size_t i = 0; i < n; ++i) {
      if (segs[i].capture) req->path_params.emplace_back(segs[i].text, std::string(parts[i]));
    }
    *route = &routes_[best];
    return MatchResult::kFound;
  }
  if (!path_matched) return MatchResult::kNotFound;
  if (allow != nullptr) {
    allow->clear();
    for (size_t r = 0; r < compiled_.size(); ++r) {
      const std::vector<Segment>& segs = compiled_[r];
      if (segs.size() != n) continue;
      bool ok = true;
      for (size_t i = 0; i < n && ok; ++i) {
        ok = segs[i].capture ? !parts[i].empty() : segs[i].text == parts[i];
      }
      if (!ok) continue;
      AppendMethod(allow, routes_[r].method);
      if (routes_[r].method == "GET") AppendMethod(allow, "HEAD");
    }
  }
  return MatchResult::kMethodNotAllowed;
}

}  // namespace serveml::http
