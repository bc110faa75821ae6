// REST API v1: health/status, auth, API keys, deployments, versions and predictions, as
// listed in SPEC.md. Handlers translate JSON to native calls at the edge and answer in the
// API's error shape; blocking work runs on ctx->blocking, never on an I/O thread.
#pragma once

#include "api/api_context.h"
#include "http/router.h"

namespace serveml::api {

// Adds every v1 route to `router`. `ctx` must outlive the router.
void RegisterRestV1(http::Router* router, ApiContext* ctx);

}  // namespace serveml::api
