// Router: maps (method, path pattern) to handlers. Patterns are literal segments and
// "{name}" segments that capture one path segment, e.g. "/api/v1/deployments/{id}".
// Literal segments win over captures. Add() everything before the server starts; Match()
// is then thread safe (read only).
//
// Matching details: a trailing slash is ignored on both sides ("/a/" matches "/a"); a
// capture never matches an empty segment; when several routes match, the one whose first
// differing segment is literal wins; a HEAD request falls back to the GET route of the
// same path. Routes are scanned linearly (tens of routes: cheaper than a tree here).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/http.h"

namespace serveml::http {

class Router {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    Handler handler;
  };

  // `method` is upper case ("GET"); `pattern` starts with '/'. Not thread safe.
  void Add(std::string method, std::string pattern, Handler handler);

  enum class MatchResult { kFound, kNotFound, kMethodNotAllowed };
  // On kFound sets *handler and appends captures to req->path_params.
  MatchResult Match(Request* req, const Handler** handler) const;
  // Same, and on kMethodNotAllowed sets *allow to the methods the path accepts, e.g.
  // "GET, HEAD, DELETE" (for the Allow header). `allow` may be null.
  MatchResult Match(Request* req, const Handler** handler, std::string* allow) const;

  // Every registered route, in insertion order (for the OpenAPI cross-check).
  const std::vector<Route>& routes() const { return routes_; }

 private:
  struct Segment {
    std::string text;  // literal text, or the capture name
    bool capture = false;
  };
  std::vector<Route> routes_;
  std::vector<std::vector<Segment>> compiled_;  // parallel to routes_
};

}  // namespace serveml::http
