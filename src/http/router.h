// Router: maps (method, path pattern) to handlers. Patterns are literal segments and
// "{name}" segments that capture one path segment, e.g. "/api/v1/deployments/{id}".
// Literal segments win over captures. Add() everything before the server starts; Match()
// is then thread safe (read only).
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

  void Add(std::string method, std::string pattern, Handler handler);

  enum class MatchResult { kFound, kNotFound, kMethodNotAllowed };
  // On kFound sets *handler and appends captures to req->path_params.
  MatchResult Match(Request* req, const Handler** handler) const;

  // Every registered route, in insertion order (for the OpenAPI cross-check).
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace serveml::http
