// Server configuration: embedded defaults, overridden by a JSON config file, then by
// SERVEML_* environment variables, then by command-line flags (last wins).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace serveml::app {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string data_dir = "./data";
  int io_threads = 0;        // 0 = one per core
  int blocking_threads = 4;  // control-plane work (db, disk, password hashing)
  int model_threads = 0;     // 0 = one per core
  int validate_threads = 2;
  int64_t max_body_bytes = 10 << 20;      // prediction bodies (--max-body-mb)
  int64_t max_json_body_bytes = 1 << 20;  // other JSON bodies (--max-json-body-kb)
  // Slow clients and connection caps (http::ServerOptions).
  int header_timeout_seconds = 10;
  int body_timeout_seconds = 30;
  int64_t min_body_bytes_per_second = 1024;
  int64_t max_connections = 10000;
  int64_t max_connections_per_address = 256;
  std::string trusted_proxies;  // comma-separated IPs/CIDRs whose X-Forwarded-For is used
  int64_t max_upload_bytes = 1ll << 30;
  int64_t model_memory_budget_bytes = 4ll << 30;
  int64_t token_ttl_seconds = 24 * 3600;
  int drain_seconds = 30;
  std::string log_level = "info";
  bool bench_routes = false;  // POST /_bench/noop and GET /api/v1/_routes (tests)
  // Per-deployment metrics: retention per resolution (days) and cost-estimate prices (USD).
  int64_t metrics_minute_retention_days = 2;
  int64_t metrics_5m_retention_days = 14;
  int64_t metrics_hour_retention_days = 90;
  int64_t metrics_day_retention_days = 730;
  double price_per_million_requests = 0.20;
  double price_per_gb_second = 0.0000166667;
  int metrics_flush_ms = 1000;  // how often finished minutes are written
  // The importer child that parses every upload (platform/import_sandbox.h).
  int64_t validate_memory_mb = 2048;
  int64_t validate_cpu_seconds = 120;
  int64_t validate_timeout_seconds = 300;
  int64_t validate_max_onnx_mb = 4096;
  // Per-user quotas (403 QUOTA_EXCEEDED).
  int64_t quota_deployments = 100;
  int64_t quota_versions = 1000;
  int64_t quota_storage_mb = 20480;
  // Pools: password hashing has its own; every queue is bounded (over it: 503 Retry-After).
  int hash_threads = 0;  // 0 = half the cores (at least 1): hashing never takes them all
  int64_t hash_queue = 64;
  int64_t blocking_queue = 4096;
  int64_t model_queue = 4096;
  int64_t validate_queue = 10000;
  // Accounts.
  std::string registration = "open";    // open | closed
  int64_t registrations_per_hour = 20;  // per client address; 0 = unlimited
  int64_t login_free_failures = 5;      // per (account, address), then doubling delays
  int64_t login_max_delay_seconds = 900;
  int64_t login_failures_per_address = 100;  // per 15 minutes, over all accounts
  // Loopback clients skip per-address throttles (benchmarks, local tests). Off by default.
  bool exempt_loopback = false;
};

// Parses `serve` flags (argv[0] is "serve"). Usage errors are InvalidInput.
Result<ServerConfig> LoadServerConfig(int argc, char** argv);

}  // namespace serveml::app
