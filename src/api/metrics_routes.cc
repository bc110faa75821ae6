#include "api/metrics_routes.h"

#include <charconv>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "core/clock.h"
#include "core/log.h"
#include "platform/metrics.h"

namespace serveml::api {

namespace {

using json = nlohmann::json;
using http::Request;
using http::Responder;
using http::Response;
using store::MetricsResolution;

constexpr int64_t kMaxHours = 2 * 366 * 24;  // two years
constexpr int64_t kMaxPoints = 10080;        // a week of minutes

double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

bool ParseResolution(std::string_view s, MetricsResolution* r) {
  if (s == "1m")
    *r = MetricsResolution::kMinute;
  else if (s == "5m")
    *r = MetricsResolution::kFiveMinutes;
  else if (s == "1h")
    *r = MetricsResolution::kHour;
  else if (s == "1d")
    *r = MetricsResolution::kDay;
  else
    return false;
  return true;
}

Response GetMetrics(ApiContext* ctx, const Request& req) {
  auto p = ctx->accounts->Authenticate(req.Header("authorization"));
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  if (!p->Can("manage"))
    return ErrorResponse(Forbidden("this API key may only make predictions"), req.request_id);
  std::string id(req.Param("id"));
  auto d = ctx->deployments->Get(p->user_id, id);
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);

  int64_t hours = 24;
  std::string v;
  if (req.QueryParam("hours", &v)) {
    auto r = std::from_chars(v.data(), v.data() + v.size(), hours);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || hours < 1 || hours > kMaxHours) {
      return ErrorResponse(
          ValidationError("hours must be an integer from 1 to " + std::to_string(kMaxHours)),
          req.request_id);
    }
  }
  MetricsResolution res = platform::Metrics::DefaultResolution(hours);
  if (req.QueryParam("resolution", &v) && !v.empty()) {
    if (!ParseResolution(v, &res)) {
      return ErrorResponse(ValidationError("resolution must be one of 1m, 5m, 1h, 1d"),
                           req.request_id);
    }
  }
  if (hours * 3600 / store::MetricsBucketSeconds(res) > kMaxPoints) {
    return ErrorResponse(ValidationError("too many points: use a coarser resolution for " +
                                         std::to_string(hours) + " hours"),
                         req.request_id);
  }
  platform::Metrics* metrics = ctx->deployments->metrics();
  auto rep = metrics->Query(id, d->memory_mb, hours, res);
  if (!rep.ok()) return ErrorResponse(rep.status(), req.request_id);

  json timestamps = json::array(), requests = json::array(), errors = json::array(),
       avg = json::array(), p50 = json::array(), p95 = json::array(), p99 = json::array();
  for (const auto& pt : rep->series) {
    timestamps.push_back(FormatIso8601(pt.bucket_start * 1000000));
    requests.push_back(pt.aggregate.requests);
    errors.push_back(pt.aggregate.errors);
    avg.push_back(Round3(pt.aggregate.AvgLatencyMs()));
    p50.push_back(Round3(pt.aggregate.PercentileMs(0.50)));
    p95.push_back(Round3(pt.aggregate.PercentileMs(0.95)));
    p99.push_back(Round3(pt.aggregate.PercentileMs(0.99)));
  }
  const platform::MetricsAggregate& t = rep->total;
  const auto& opts = metrics->options();
  json j{{"deployment_id", id},
         {"period",
          {{"start", FormatIso8601(rep->start * 1000000)},
           {"end", FormatIso8601(rep->end * 1000000)},
           {"hours", hours},
           {"resolution", store::MetricsResolutionName(res)}}},
         {"metrics",
          {{"request_count", t.requests},
           {"error_count", t.errors},
           {"error_rate",
            t.requests ? Round3(static_cast<double>(t.errors) / static_cast<double>(t.requests))
                       : 0.0},
           {"avg_latency_ms", Round3(t.AvgLatencyMs())},
           {"p50_latency_ms", Round3(t.PercentileMs(0.50))},
           {"p95_latency_ms", Round3(t.PercentileMs(0.95))},
           {"p99_latency_ms", Round3(t.PercentileMs(0.99))},
           {"cold_starts", t.cold_starts},
           {"unique_users", t.callers.size()},
           {"total_rows", t.rows}}},
         {"time_series",
          {{"timestamps", timestamps},
           {"request_counts", requests},
           {"error_counts", errors},
           {"avg_latencies", avg},
           {"p50_latencies", p50},
           {"p95_latencies", p95},
           {"p99_latencies", p99}}},
         {"cost_estimate",
          {{"total_usd", rep->cost_requests_usd + rep->cost_compute_usd},
           {"breakdown",
            {{"requests_usd", rep->cost_requests_usd},
             {"compute_usd", rep->cost_compute_usd},
             {"request_count", t.requests},
             {"gb_seconds", rep->gb_seconds},
             {"memory_mb", d->memory_mb},
             {"price_per_million_requests", opts.price_per_million_requests},
             {"price_per_gb_second", opts.price_per_gb_second}}}}}};
  return Response::Json(200, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

void RegisterMetricsRoutes(http::Router* router, ApiContext* ctx) {
  router->Add(
      "GET", "/api/v1/metrics/{id}",
      [ctx](Request& req, Responder respond) {
        // Blocking (database reads): run on the blocking pool with a copy of the request.
        auto shared = http::DetachRequest(req);
        bool ok = ctx->blocking->Submit([ctx, shared, respond]() mutable {
          Response r;
          try {
            r = GetMetrics(ctx, *shared);
          } catch (const std::exception& e) {
            LOG_ERROR("handler failed")
                .Str("request_id", shared->request_id)
                .Str("error", e.what());
            r = ErrorResponse(Internal("internal error"), shared->request_id);
          }
          respond(std::move(r));
        });
        if (!ok) {
          Response r = ErrorResponse(
              Unavailable(ctx->blocking->stopping() ? "the server is shutting down"
                                                    : "the server is busy; retry in a moment"),
              req.request_id);
          if (!ctx->blocking->stopping()) r.headers.emplace_back("Retry-After", "1");
          respond(std::move(r));
        }
      },
      http::RoutePolicy{http::BodyKind::kNone, true});
}

}  // namespace serveml::api
