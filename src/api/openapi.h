// The OpenAPI 3 document of the REST API (docs/openapi.json, compiled in at build time) and
// its rendering at /docs (a self-contained HTML page: no CDN, works offline).
#pragma once

#include <string>
#include <string_view>

#include "http/router.h"

namespace serveml::api {

// The document, byte for byte as kept in the repo. Immutable; thread safe.
std::string_view OpenApiDocument();
// The /docs page (fetches /api/v1/openapi.json and renders it).
std::string_view DocsPage();

// Adds GET /api/v1/openapi.json and GET /docs.
void RegisterOpenApiRoutes(http::Router* router);

// `[{"method":"GET","path":"/api/v1/..."}, ...]` for every route of `router`, in order (the
// test-only /api/v1/_routes, so tests can check the document against the router).
std::string RouteListJson(const http::Router& router);

}  // namespace serveml::api
