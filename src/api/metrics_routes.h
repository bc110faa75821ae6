// GET /api/v1/metrics/{id}: per-deployment prediction metrics (counts, latency percentiles
// from the merged histogram, unique callers, a time series and a cost estimate), and the
// API documentation routes (GET /api/v1/openapi.json, GET /docs).
#pragma once

#include "api/api_context.h"
#include "http/router.h"

namespace serveml::api {

// Adds GET /api/v1/metrics/{id}. `ctx` must outlive the router. Ownership rule as every
// deployment route: another user's deployment answers 404.
void RegisterMetricsRoutes(http::Router* router, ApiContext* ctx);

}  // namespace serveml::api
