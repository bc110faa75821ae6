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
  int io_threads = 0;                 // 0 = one per core
  int blocking_threads = 4;           // control-plane work (db, disk, password hashing)
  int model_threads = 0;              // 0 = one per core
  int validate_threads = 2;
  int64_t max_body_bytes = 10 << 20;  // JSON bodies
  int64_t max_upload_bytes = 1ll << 30;
  int64_t model_memory_budget_bytes = 4ll << 30;
  int64_t token_ttl_seconds = 24 * 3600;
  int drain_seconds = 30;
  std::string log_level = "info";
  bool bench_routes = false;          // POST /_bench/noop and GET /api/v1/_routes (tests)
  // Per-deployment metrics: retention per resolution (days) and cost-estimate prices (USD).
  int64_t metrics_minute_retention_days = 2;
  int64_t metrics_5m_retention_days = 14;
  int64_t metrics_hour_retention_days = 90;
  int64_t metrics_day_retention_days = 730;
  double price_per_million_requests = 0.20;
  double price_per_gb_second = 0.0000166667;
  int metrics_flush_ms = 1000;        // how often finished minutes are written
};

// Parses `serve` flags (argv[0] is "serve"). Usage errors are InvalidInput.
Result<ServerConfig> LoadServerConfig(int argc, char** argv);

}  // namespace serveml::app
