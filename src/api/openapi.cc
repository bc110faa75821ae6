#include "api/openapi.h"

#include <nlohmann/json.hpp>

namespace serveml::api {

namespace embedded {
std::string_view OpenApiJson();  // generated from docs/openapi.json
std::string_view DocsHtml();     // generated from src/api/docs_page.html
}  // namespace embedded

std::string_view OpenApiDocument() { return embedded::OpenApiJson(); }
std::string_view DocsPage() { return embedded::DocsHtml(); }

void RegisterOpenApiRoutes(http::Router* router) {
  router->Add("GET", "/api/v1/openapi.json", [](http::Request&, http::Responder respond) {
    http::Response r = http::Response::Json(200, std::string(OpenApiDocument()));
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
    respond(std::move(r));
  });
  router->Add("GET", "/docs", [](http::Request&, http::Responder respond) {
    http::Response r;
    r.status = 200;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(DocsPage());
    // Everything is inline; the page only talks to this server.
    r.headers.emplace_back(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
    respond(std::move(r));
  });
}

std::string RouteListJson(const http::Router& router) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& route : router.routes()) {
    items.push_back({{"method", route.method}, {"path", route.pattern}});
  }
  return items.dump();
}

}  // namespace serveml::api
