// The web dashboard: static files built from web/ by Vite and compiled into the binary
// (web/embed.cmake generates the file table). Pages live under /ui/; `GET /` answers the
// dashboard's index.html to browsers (see rest_v1.cc). API paths are never shadowed: only
// /ui and /ui/... are registered here.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "http/http.h"
#include "http/router.h"

namespace serveml::api {

namespace web {

// One embedded file. `path` is relative to web/dist with a leading '/', e.g.
// "/assets/index-1a2b3c.js"; `etag` is a quoted strong validator of the content.
struct EmbeddedFile {
  const char* path;
  const unsigned char* data;
  size_t size;
  const char* etag;
};

// The files compiled into this binary; empty when web/dist was missing at build time.
// Defined in the generated web_assets.cc.
std::span<const EmbeddedFile> EmbeddedFiles();

}  // namespace web

// URL prefix of the dashboard's pages and assets.
inline constexpr std::string_view kDashboardPrefix = "/ui";

// True when the binary has a built dashboard (index.html) in it.
bool HasDashboard();

// True when the request's Accept header asks for text/html (a browser navigating).
bool WantsHtml(const http::Request& req);

// The dashboard's index.html with its cache, ETag and security headers (304 when the
// request's If-None-Match matches). Only call when HasDashboard().
http::Response DashboardIndex(const http::Request& req);

// Answers GET/HEAD for a path under /ui: an embedded file, 404 for a missing file under
// /ui/assets/, else index.html (client-side routes), or 404 when no dashboard is built in.
http::Response ServeDashboard(const http::Request& req);

// Registers GET /ui and /ui/{...} (up to 6 segments deep).
void RegisterWebRoutes(http::Router* router);

}  // namespace serveml::api
