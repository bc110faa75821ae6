// Router: maps (method, path pattern) to handlers. Patterns are literal segments and
// "{name}" segments that capture one path segment, e.g. "/api/v1/deployments/{id}".
// Literal segments win over captures. Add() everything before the server starts; Match()
// is then thread safe (read only).
//
// Matching details: a trailing slash is ignored on both sides ("/a/" matches "/a"); a
// capture never matches an empty segment; when several routes match, the one whose first
// differing segment is literal wins; a HEAD request falls back to the GET route of the
// same path. Routes are scanned linearly (tens of routes: cheaper than a tree here).
//
// Each route carries a RoutePolicy that the server applies right after the request headers,
// before reading any body byte: which body class (and so which size cap) the route takes,
// whether multipart uploads are allowed, and whether ServerOptions::pre_authenticate runs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/http.h"

namespace serveml::http {

// What kind of body a route takes; selects the size cap (see ServerOptions).
enum class BodyKind {
  kNone,     // no body expected; one is still accepted up to max_json_body_bytes
  kJson,     // small API documents: max_json_body_bytes
  kPredict,  // inference inputs: max_predict_body_bytes
  kUpload,   // multipart/form-data uploads (max_upload_bytes); the only kind that may be
             // multipart, others get 415. A non-multipart body gets max_json_body_bytes.
};

struct RoutePolicy {
  BodyKind body = BodyKind::kJson;
  // Run ServerOptions::pre_authenticate on the headers before any body byte is read.
  bool authenticated = false;
};

class Router {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    Handler handler;
    RoutePolicy policy;
  };

  // `method` is upper case ("GET"); `pattern` starts with '/'. Not thread safe.
  void Add(std::string method, std::string pattern, Handler handler, RoutePolicy policy = {});

  enum class MatchResult { kFound, kNotFound, kMethodNotAllowed };
  // On kFound sets *handler and appends captures to req->path_params.
  MatchResult Match(Request* req, const Handler** handler) const;
  // Same, and on kMethodNotAllowed sets *allow to the methods the path accepts, e.g.
  // "GET, HEAD, DELETE" (for the Allow header). `allow` may be null.
  MatchResult Match(Request* req, const Handler** handler, std::string* allow) const;
  // Same, giving the whole matched route (handler and policy). The pointer stays valid
  // until the next Add().
  MatchResult MatchRoute(Request* req, const Route** route, std::string* allow = nullptr) const;

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
