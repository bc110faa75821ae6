#include "app/config.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

namespace serveml::app {

namespace {

Status SetField(ServerConfig* c, std::string_view key, const std::string& v) {
  try {
    if (key == "host")
      c->host = v;
    else if (key == "port")
      c->port = std::stoi(v);
    else if (key == "data-dir" || key == "data_dir")
      c->data_dir = v;
    else if (key == "io-threads" || key == "io_threads")
      c->io_threads = std::stoi(v);
    else if (key == "blocking-threads" || key == "blocking_threads")
      c->blocking_threads = std::stoi(v);
    else if (key == "model-threads" || key == "model_threads")
      c->model_threads = std::stoi(v);
    else if (key == "validate-threads" || key == "validate_threads")
      c->validate_threads = std::stoi(v);
    else if (key == "max-body-mb" || key == "max_body_mb")
      c->max_body_bytes = std::stoll(v) << 20;
    else if (key == "max-upload-mb" || key == "max_upload_mb")
      c->max_upload_bytes = std::stoll(v) << 20;
    else if (key == "model-memory-mb" || key == "model_memory_mb")
      c->model_memory_budget_bytes = std::stoll(v) << 20;
    else if (key == "token-ttl-seconds" || key == "token_ttl_seconds")
      c->token_ttl_seconds = std::stoll(v);
    else if (key == "drain-seconds" || key == "drain_seconds")
      c->drain_seconds = std::stoi(v);
    else if (key == "log-level" || key == "log_level")
      c->log_level = v;
    else if (key == "bench-routes" || key == "bench_routes")
      c->bench_routes = v == "true" || v == "1";
    else if (key == "metrics-minute-retention-days" || key == "metrics_minute_retention_days")
      c->metrics_minute_retention_days = std::stoll(v);
    else if (key == "metrics-5m-retention-days" || key == "metrics_5m_retention_days")
      c->metrics_5m_retention_days = std::stoll(v);
    else if (key == "metrics-hour-retention-days" || key == "metrics_hour_retention_days")
      c->metrics_hour_retention_days = std::stoll(v);
    else if (key == "metrics-day-retention-days" || key == "metrics_day_retention_days")
      c->metrics_day_retention_days = std::stoll(v);
    else if (key == "price-per-million-requests" || key == "price_per_million_requests")
      c->price_per_million_requests = std::stod(v);
    else if (key == "price-per-gb-second" || key == "price_per_gb_second")
      c->price_per_gb_second = std::stod(v);
    else if (key == "metrics-flush-ms" || key == "metrics_flush_ms")
      c->metrics_flush_ms = std::stoi(v);
    else if (key == "validate-memory-mb" || key == "validate_memory_mb")
      c->validate_memory_mb = std::stoll(v);
    else if (key == "validate-cpu-seconds" || key == "validate_cpu_seconds")
      c->validate_cpu_seconds = std::stoll(v);
    else if (key == "validate-timeout-seconds" || key == "validate_timeout_seconds")
      c->validate_timeout_seconds = std::stoll(v);
    else if (key == "validate-max-onnx-mb" || key == "validate_max_onnx_mb")
      c->validate_max_onnx_mb = std::stoll(v);
    else if (key == "quota-deployments" || key == "quota_deployments")
      c->quota_deployments = std::stoll(v);
    else if (key == "quota-versions" || key == "quota_versions")
      c->quota_versions = std::stoll(v);
    else if (key == "quota-storage-mb" || key == "quota_storage_mb")
      c->quota_storage_mb = std::stoll(v);
    else if (key == "hash-threads" || key == "hash_threads")
      c->hash_threads = std::stoi(v);
    else if (key == "hash-queue" || key == "hash_queue")
      c->hash_queue = std::stoll(v);
    else if (key == "blocking-queue" || key == "blocking_queue")
      c->blocking_queue = std::stoll(v);
    else if (key == "model-queue" || key == "model_queue")
      c->model_queue = std::stoll(v);
    else if (key == "validate-queue" || key == "validate_queue")
      c->validate_queue = std::stoll(v);
    else if (key == "registration")
      c->registration = v;
    else if (key == "registrations-per-hour" || key == "registrations_per_hour")
      c->registrations_per_hour = std::stoll(v);
    else if (key == "login-free-failures" || key == "login_free_failures")
      c->login_free_failures = std::stoll(v);
    else if (key == "login-max-delay-seconds" || key == "login_max_delay_seconds")
      c->login_max_delay_seconds = std::stoll(v);
    else if (key == "login-failures-per-address" || key == "login_failures_per_address")
      c->login_failures_per_address = std::stoll(v);
    else if (key == "max-json-body-kb" || key == "max_json_body_kb")
      c->max_json_body_bytes = std::stoll(v) << 10;
    else if (key == "header-timeout-seconds" || key == "header_timeout_seconds")
      c->header_timeout_seconds = std::stoi(v);
    else if (key == "body-timeout-seconds" || key == "body_timeout_seconds")
      c->body_timeout_seconds = std::stoi(v);
    else if (key == "min-body-rate" || key == "min_body_rate")
      c->min_body_bytes_per_second = std::stoll(v);
    else if (key == "max-connections" || key == "max_connections")
      c->max_connections = std::stoll(v);
    else if (key == "max-connections-per-address" || key == "max_connections_per_address")
      c->max_connections_per_address = std::stoll(v);
    else if (key == "trusted-proxies" || key == "trusted_proxies")
      c->trusted_proxies = v;
    else if (key == "exempt-loopback" || key == "exempt_loopback")
      c->exempt_loopback = v == "true" || v == "1";
    else
      return InvalidInput("unknown option '" + std::string(key) + "'");
  } catch (const std::exception&) {
    return InvalidInput("option '" + std::string(key) + "' needs a number, got '" + v + "'");
  }
  return Status::Ok();
}

}  // namespace

Result<ServerConfig> LoadServerConfig(int argc, char** argv) {
  ServerConfig c;
  // Config file first (flags and environment override it).
  std::string config_file;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--config") config_file = argv[i + 1];
  }
  if (const char* e = std::getenv("SERVEML_CONFIG"); e && config_file.empty()) config_file = e;
  if (!config_file.empty()) {
    std::ifstream f(config_file);
    if (!f) return InvalidInput("cannot read config file '" + config_file + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidInput("config file '" + config_file + "' is not a JSON object");
    }
    for (auto& [k, v] : j.items()) {
      std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      RETURN_IF_ERROR(SetField(&c, k, s));
    }
  }
  static const char* kEnv[][2] = {{"SERVEML_HOST", "host"},
                                  {"SERVEML_PORT", "port"},
                                  {"SERVEML_DATA_DIR", "data-dir"},
                                  {"SERVEML_LOG_LEVEL", "log-level"},
                                  {"SERVEML_IO_THREADS", "io-threads"}};
  for (const auto& e : kEnv) {
    if (const char* v = std::getenv(e[0]); v && *v) RETURN_IF_ERROR(SetField(&c, e[1], v));
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.rfind("--", 0) != 0) return InvalidInput("unexpected argument '" + std::string(a) + "'");
    std::string key(a.substr(2));
    std::string value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (key == "bench-routes" || key == "exempt-loopback") {
      value = "true";
    } else {
      if (i + 1 >= argc) return InvalidInput("option '--" + key + "' needs a value");
      value = argv[++i];
    }
    if (key == "config") continue;
    RETURN_IF_ERROR(SetField(&c, key, value));
  }
  if (c.port < 0 || c.port > 65535) return InvalidInput("port must be 0..65535");
  if (c.validate_memory_mb < 64 || c.validate_cpu_seconds < 1 || c.validate_timeout_seconds < 1 ||
      c.validate_max_onnx_mb < 1) {
    return InvalidInput("validate limits must be positive (memory at least 64 MiB)");
  }
  if (c.registration != "open" && c.registration != "closed") {
    return InvalidInput("registration must be 'open' or 'closed'");
  }
  if (c.hash_threads < 0 || c.hash_queue < 1 || c.blocking_queue < 1 || c.model_queue < 1 ||
      c.validate_queue < 1) {
    return InvalidInput("thread and queue sizes must be at least 1");
  }
  if (c.quota_deployments < 0 || c.quota_versions < 0 || c.quota_storage_mb < 0) {
    return InvalidInput("quotas must not be negative");
  }
  return c;
}

}  // namespace serveml::app
