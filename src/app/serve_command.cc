#include "app/serve_command.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "api/api_context.h"
#include "api/errors.h"
#include "api/metrics_routes.h"
#include "api/openapi.h"
#include "api/rest_v1.h"
#include "api/web_routes.h"
#include "app/config.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/isa.h"
#include "http/router.h"
#include "http/server.h"
#include "platform/accounts.h"
#include "platform/auth.h"
#include "platform/deployments.h"
#include "platform/metrics.h"
#include "platform/scheduler.h"
#include "runtime/model_cache.h"
#include "store/blob_store.h"
#include "store/metadata_store.h"

namespace serveml::app {

namespace {

size_t OrCores(int n) {
  if (n > 0) return static_cast<size_t>(n);
  unsigned c = std::thread::hardware_concurrency();
  return c ? c : 2;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

int Fail(const std::string& what, const Status& st) {
  LOG_ERROR("startup failed").Str("step", what).Str("error", st.ToString());
  std::fprintf(stderr, "serveml: %s: %s\n", what.c_str(), st.message().c_str());
  return 1;
}

}  // namespace

int ServeCommand(int argc, char** argv) {
  auto cfg_r = LoadServerConfig(argc, argv);
  if (!cfg_r.ok()) {
    std::fprintf(stderr,
                 "serveml serve: %s\nusage: serveml serve [--host H] [--port P] "
                 "[--data-dir D] [--config FILE]\n",
                 cfg_r.status().message().c_str());
    return 2;
  }
  const ServerConfig cfg = *cfg_r;
  log::SetLevel(log::ParseLevel(cfg.log_level));
  if (!InitCrypto()) return Fail("crypto", Internal("libsodium failed to initialize"));

  // Signals are handled by sigwait in this thread; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  if (ec)
    return Fail("data dir", Internal("cannot create '" + cfg.data_dir + "': " + ec.message()));
  ::chmod(cfg.data_dir.c_str(), 0700);

  (void)engine::ActiveIsa();  // settles the kernels' ISA (and oneDNN's cap) before any load
  auto store = store::OpenSqliteStore(cfg.data_dir + "/serveml.db");
  if (!store.ok()) return Fail("metadata store", store.status());
  auto blobs = store::OpenLocalBlobStore(cfg.data_dir + "/blobs");
  if (!blobs.ok()) return Fail("blob store", blobs.status());
  auto signer = platform::TokenSigner::LoadOrCreate(cfg.data_dir + "/jwt.key");
  if (!signer.ok()) return Fail("signing key", signer.status());

  ThreadPool blocking(static_cast<size_t>(cfg.blocking_threads), "blocking",
                      static_cast<size_t>(cfg.blocking_queue));
  ThreadPool models(OrCores(cfg.model_threads), "models", static_cast<size_t>(cfg.model_queue));
  ThreadPool hashing(cfg.hash_threads > 0 ? static_cast<size_t>(cfg.hash_threads)
                                          : std::max<size_t>(1, OrCores(0) / 2),
                     "hashing", static_cast<size_t>(cfg.hash_queue));
  runtime::ModelCache cache(cfg.model_memory_budget_bytes);
  platform::AccountsOptions account_opts;
  account_opts.registration_open = cfg.registration == "open";
  account_opts.registrations_per_hour_per_address = cfg.registrations_per_hour;
  account_opts.login.free_failures = cfg.login_free_failures;
  account_opts.login.max_delay_seconds = cfg.login_max_delay_seconds;
  account_opts.login.failures_per_address = cfg.login_failures_per_address;
  account_opts.exempt_loopback = cfg.exempt_loopback;
  platform::Accounts accounts(store->get(), std::move(signer).value(), cfg.token_ttl_seconds,
                              account_opts);
  platform::MetricsOptions metrics_opts;
  metrics_opts.minute_retention_days = cfg.metrics_minute_retention_days;
  metrics_opts.five_minute_retention_days = cfg.metrics_5m_retention_days;
  metrics_opts.hour_retention_days = cfg.metrics_hour_retention_days;
  metrics_opts.day_retention_days = cfg.metrics_day_retention_days;
  metrics_opts.price_per_million_requests = cfg.price_per_million_requests;
  metrics_opts.price_per_gb_second = cfg.price_per_gb_second;
  platform::Metrics metrics(store->get(), metrics_opts);
  platform::DeploymentLimits limits;
  limits.sandbox.memory_mb = cfg.validate_memory_mb;
  limits.sandbox.cpu_seconds = cfg.validate_cpu_seconds;
  limits.sandbox.wall_seconds = cfg.validate_timeout_seconds;
  limits.sandbox.max_onnx_mb = cfg.validate_max_onnx_mb;
  limits.max_deployments_per_user = cfg.quota_deployments;
  limits.max_versions_per_user = cfg.quota_versions;
  limits.max_stored_bytes_per_user = cfg.quota_storage_mb << 20;
  limits.max_validation_queue = static_cast<size_t>(cfg.validate_queue);
  platform::Deployments deployments(store->get(), blobs->get(), &cache,
                                    static_cast<size_t>(cfg.validate_threads), &metrics, limits);
  if (Status st = deployments.Start(); !st.ok()) return Fail("deployments", st);

  // Built-in scheduler: metrics flush (finished minutes), roll-ups and retention.
  platform::Scheduler scheduler;
  scheduler.Every("metrics-flush", std::chrono::milliseconds(std::max(50, cfg.metrics_flush_ms)),
                  [&metrics] { return metrics.Flush(); });
  scheduler.Every("metrics-rollup", std::chrono::seconds(10),
                  [&metrics] { return metrics.RollUp(); });
  scheduler.Every("metrics-retention", std::chrono::minutes(10),
                  [&metrics] { return metrics.ApplyRetention(); });
  scheduler.Start();

  std::atomic<bool> draining{false};
  api::ApiContext ctx;
  ctx.accounts = &accounts;
  ctx.deployments = &deployments;
  ctx.store = store->get();
  ctx.blobs = blobs->get();
  ctx.blocking = &blocking;
  ctx.models = &models;
  ctx.hashing = &hashing;
  ctx.started_at_unix = NowUnixSeconds();
  ctx.data_dir = cfg.data_dir;
  ctx.draining = &draining;

  http::Router router;
  api::RegisterRestV1(&router, &ctx);
  api::RegisterMetricsRoutes(&router, &ctx);
  api::RegisterOpenApiRoutes(&router);
  api::RegisterWebRoutes(&router);
  if (cfg.bench_routes) {
    router.Add(
        "POST", "/_bench/noop",
        [](http::Request&, http::Responder respond) {
          respond(http::Response::Json(200, "{\"ok\":true}"));
        },
        http::RoutePolicy{http::BodyKind::kPredict, false});
    // Test-only fault injection: throws std::runtime_error or std::bad_alloc on an I/O
    // thread or in a task of one of the pools; the answer must be 500 SERVICE_ERROR and
    // the process must go on.
    router.Add("POST", "/_test/throw", [&ctx](http::Request& req, http::Responder respond) {
      std::string pool, kind;
      req.QueryParam("pool", &pool);
      req.QueryParam("kind", &kind);
      auto fail = [kind] {
        if (kind == "bad_alloc") throw std::bad_alloc();
        throw std::runtime_error("injected fault");
      };
      if (pool == "io") fail();
      ThreadPool* p = pool == "models"    ? ctx.models
                      : pool == "hashing" ? ctx.hashing
                                          : ctx.blocking;
      if (!p->Submit([respond, fail] {
            (void)respond;  // dropped unanswered when the task throws
            fail();
          })) {
        respond(http::Response::Json(503, "{}"));
      }
    });
    // Test-only: keeps one worker of a pool busy for `ms` milliseconds (at most 60 s), so a
    // test can fill a pool and watch the real routes on it answer 503 with Retry-After.
    router.Add("POST", "/_test/occupy", [&ctx](http::Request& req, http::Responder respond) {
      std::string pool, ms_text;
      req.QueryParam("pool", &pool);
      req.QueryParam("ms", &ms_text);
      const int64_t ms = std::clamp<int64_t>(std::atoll(ms_text.c_str()), 0, 60'000);
      ThreadPool* p = pool == "models"    ? ctx.models
                      : pool == "hashing" ? ctx.hashing
                                          : ctx.blocking;
      if (!p->Submit([ms] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); })) {
        return respond(http::Response::Json(503, "{}"));
      }
      respond(http::Response::Json(200, "{}"));
    });
    // Test-only: the route table, for the OpenAPI cross-check. Registered last.
    router.Add("GET", "/api/v1/_routes", [&router](http::Request&, http::Responder respond) {
      respond(http::Response::Json(200, api::RouteListJson(router)));
    });
  }

  http::ServerOptions opts;
  opts.host = cfg.host;
  opts.port = static_cast<uint16_t>(cfg.port);
  opts.io_threads = OrCores(cfg.io_threads);
  opts.max_predict_body_bytes = static_cast<uint64_t>(cfg.max_body_bytes);
  opts.max_json_body_bytes = static_cast<uint64_t>(cfg.max_json_body_bytes);
  opts.header_timeout_seconds = cfg.header_timeout_seconds;
  opts.body_timeout_seconds = cfg.body_timeout_seconds;
  opts.min_body_bytes_per_second = static_cast<uint64_t>(cfg.min_body_bytes_per_second);
  opts.max_connections = cfg.max_connections;
  opts.max_connections_per_address = cfg.max_connections_per_address;
  opts.exempt_loopback = cfg.exempt_loopback;
  for (const auto& p : SplitList(cfg.trusted_proxies)) opts.trusted_proxies.push_back(p);
  // Credentials are checked from the headers before the body of an authenticated route is
  // read: a stranger cannot make the server buffer or store anything.
  opts.pre_authenticate =
      [&accounts](const http::Request& req) -> std::optional<http::PreAuthFailure> {
    auto p = accounts.Authenticate(req.Header("authorization"));
    if (p.ok()) return std::nullopt;
    http::PreAuthFailure f;
    f.status = api::HttpStatusFor(p.status().code());
    f.code = std::string(api::ApiCodeFor(p.status().code()));
    f.message = p.status().message();
    return f;
  };
  opts.max_upload_bytes = static_cast<uint64_t>(cfg.max_upload_bytes);
  opts.upload_dir = (*blobs)->temp_dir();
  opts.error_body = [](int /*status*/, std::string_view code, std::string_view message,
                       std::string_view request_id) {
    return api::ErrorBody(code, message, request_id);
  };
  opts.default_headers = {{"X-Content-Type-Options", "nosniff"},
                          {"X-Frame-Options", "DENY"},
                          {"Referrer-Policy", "no-referrer"},
                          {"Cache-Control", "no-store"}};
  opts.access_log = [](const http::Request& req, int status, int64_t micros) {
    auto line = status >= 500 ? LOG_WARN("request") : LOG_INFO("request");
    line.Str("method", req.method)
        .Str("path", req.path)
        .Int("status", status)
        .Num("ms", static_cast<double>(micros) / 1000.0)
        .Str("request_id", req.request_id)
        .Str("remote", req.remote_addr);
  };
  if (log::GetLevel() > log::Level::kInfo) opts.access_log = nullptr;
  http::Server server(opts, &router);
  if (std::string err = server.Start(); !err.empty()) {
    return Fail("listen", Unavailable(err));
  }
  LOG_INFO("serveml listening")
      .Str("host", cfg.host)
      .Int("port", server.port())
      .Str("data_dir", cfg.data_dir)
      .Str("version", SERVEML_VERSION)
      .Int("io_threads", static_cast<int64_t>(opts.io_threads))
      .Str("engine_isa", engine::IsaSummary());

  int sig = 0;
  sigwait(&sigs, &sig);
  LOG_INFO("shutting down: draining in-flight requests")
      .Str("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  draining = true;
  server.Stop(cfg.drain_seconds);
  models.Shutdown();
  hashing.Shutdown();
  blocking.Shutdown();
  scheduler.Stop();
  if (Status st = metrics.FlushAll(); !st.ok()) {
    LOG_ERROR("could not write the last metrics").Str("error", st.ToString());
  }
  deployments.Shutdown();
  LOG_INFO("stopped");
  return 0;
}

}  // namespace serveml::app
