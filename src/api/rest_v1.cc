#include "api/rest_v1.h"

#include <sys/statvfs.h>

#include <charconv>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/errors.h"
#include "api/predict_codec.h"
#include "api/web_routes.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/address.h"

namespace serveml::api {

namespace {

using json = nlohmann::json;
using http::Request;
using http::Responder;
using http::Response;

Response JsonResponse(int status, const json& j) {
  return Response::Json(status, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string Iso(int64_t micros) { return FormatIso8601(micros); }

// The answer when a pool refuses work: 503 with Retry-After, naming why.
Response PoolRefused(const ThreadPool& pool, std::string_view request_id) {
  if (pool.stopping()) return ErrorResponse(Unavailable("the server is shutting down"), request_id);
  Response r = ErrorResponse(Unavailable("the server is busy; retry in a moment"), request_id);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// Runs `fn(req)` on `pool` (the blocking pool unless given).
template <typename Fn>
void Offload(ApiContext* ctx, Request& req, Responder respond, Fn fn, ThreadPool* pool = nullptr) {
  if (pool == nullptr) pool = ctx->blocking;
  auto shared = http::DetachRequest(req);
  bool ok = pool->Submit([shared, respond, fn]() mutable {
    Response r;
    try {
      r = fn(*shared);
    } catch (const std::exception& e) {
      LOG_ERROR("handler failed").Str("request_id", shared->request_id).Str("error", e.what());
      r = ErrorResponse(Internal("internal error"), shared->request_id);
    }
    respond(std::move(r));
  });
  if (!ok) respond(PoolRefused(*pool, shared->request_id));
}

// What registration and login throttles key on: the client address (the peer, or the
// client a trusted proxy names in X-Forwarded-For), widened to its /64 for IPv6.
std::string ClientAddr(const Request& req) { return http::ClientNetworkKey(req.client_addr); }

// 429 RATE_LIMITED with Retry-After.
Response RateLimitedResponse(const Status& st, int64_t retry_after, std::string_view request_id) {
  Response r = ErrorResponse(st, request_id);
  r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, retry_after)));
  return r;
}

// Parses a JSON object body; sets *err on failure.
bool ParseJsonObject(const Request& req, json* out, Response* err) {
  *out = json::parse(req.body, nullptr, false);
  if (out->is_discarded()) {
    *err = ErrorResponse(InvalidInput("request body is not valid JSON"), req.request_id);
    return false;
  }
  if (!out->is_object()) {
    *err = ErrorResponse(InvalidInput("request body must be a JSON object"), req.request_id);
    return false;
  }
  return true;
}

// Reads a string field; missing/null gives "" unless required.
bool StringField(const json& j, const char* key, bool required, std::string* out, Status* st) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      *st = ValidationError(std::string("field '") + key + "' is required");
      return false;
    }
    out->clear();
    return true;
  }
  if (!it->is_string()) {
    *st = ValidationError(std::string("field '") + key + "' must be a string");
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

Result<platform::Principal> Authenticate(ApiContext* ctx, const Request& req) {
  return ctx->accounts->Authenticate(req.Header("authorization"));
}

// Management routes need a token or an API key with the "manage" scope.
Result<platform::Principal> AuthenticateManage(ApiContext* ctx, const Request& req) {
  ASSIGN_OR_RETURN(auto p, Authenticate(ctx, req));
  if (!p.Can("manage")) return Forbidden("this API key may only make predictions");
  return p;
}

json UserJson(const store::User& u) {
  return json{{"id", u.id},
              {"email", u.email},
              {"username", u.username},
              {"full_name", u.full_name.empty() ? json(nullptr) : json(u.full_name)},
              {"created_at", Iso(u.created_at)}};
}

std::string BaseUrl(const Request& req) {
  std::string_view host = req.Header("host");
  std::string_view proto = req.Header("x-forwarded-proto");
  std::string scheme = proto == "https" ? "https" : "http";
  return host.empty() ? std::string() : scheme + "://" + std::string(host);
}

json DeploymentJson(ApiContext* ctx, const store::Deployment& d, const std::string& base_url,
                    bool detail) {
  json meta = json::object();
  if (!d.metadata_json.empty()) {
    json m = json::parse(d.metadata_json, nullptr, false);
    if (m.is_object()) meta = std::move(m);
  }
  meta["framework"] = d.framework;
  meta["model_type"] = d.model_type.empty() ? json(nullptr) : json(d.model_type);
  meta["size_mb"] =
      std::round(static_cast<double>(d.size_bytes) / (1024.0 * 1024.0) * 1000.0) / 1000.0;
  json j{{"id", d.id},
         {"name", d.name},
         {"status", d.status},
         {"created_at", Iso(d.created_at)},
         {"updated_at", Iso(d.updated_at)},
         {"endpoint_url", base_url + "/api/v1/predict/" + d.id},
         {"current_version", d.current_version.empty() ? json(nullptr) : json(d.current_version)},
         {"error_message", d.error_message.empty() ? json(nullptr) : json(d.error_message)},
         {"model_metadata", meta},
         {"configuration",
          {{"memory_mb", d.memory_mb},
           {"timeout_seconds", d.timeout_seconds},
           {"min_instances", d.min_instances},
           {"max_instances", d.max_instances},
           {"is_public", d.is_public}}}};
  if (detail) {
    // All-time totals, persisted with the per-minute metrics (same data as /metrics/{id}).
    auto t = ctx->deployments->MetricsTotals(d.id);
    store::MetricsTotals tot = t.ok() ? *t : store::MetricsTotals{};
    if (!t.ok())
      LOG_WARN("metrics totals unavailable")
          .Str("deployment_id", d.id)
          .Str("error", t.status().ToString());
    double avg = tot.request_count ? static_cast<double>(tot.latency_sum_ns) /
                                         static_cast<double>(tot.request_count) / 1e6
                                   : 0.0;
    j["metrics_summary"] = {{"request_count", tot.request_count},
                            {"error_count", tot.error_count},
                            {"avg_latency_ms", std::round(avg * 1000.0) / 1000.0},
                            {"cold_starts", tot.cold_starts},
                            {"total_rows", tot.row_count}};
    j["requirements"] = d.requirements.empty() ? json(nullptr) : json(d.requirements);
  }
  return j;
}

json VersionJson(const store::DeploymentVersion& v, const std::string& current) {
  return json{{"version", v.version},
              {"status", v.status},
              {"is_current", v.version == current},
              {"created_at", Iso(v.created_at)},
              {"framework", v.framework},
              {"model_type", v.model_type.empty() ? json(nullptr) : json(v.model_type)},
              {"size_bytes", v.size_bytes},
              {"sha256", v.blob_sha256},
              {"filename", v.filename},
              {"error_message", v.error_message.empty() ? json(nullptr) : json(v.error_message)}};
}

bool ParseInt(std::string_view s, int64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Optional integer form/JSON field into a DeploymentConfig member.
Status FormInt(const Request& req, const char* name, std::optional<int64_t>* out) {
  const http::FormPart* p = req.Part(name);
  if (!p || p->value.empty()) return Status::Ok();
  int64_t v = 0;
  if (!ParseInt(p->value, &v))
    return ValidationError(std::string("field '") + name + "' must be an integer");
  *out = v;
  return Status::Ok();
}

Status JsonInt(const json& j, const char* name, std::optional<int64_t>* out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer())
    return ValidationError(std::string("field '") + name + "' must be an integer");
  *out = it->get<int64_t>();
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Internal("cannot read uploaded part");
  std::string s;
  s.resize(limit + 1);
  f.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(f.gcount()));
  if (s.size() > limit) return ValidationError("requirements_file must be at most 64 KiB");
  return s;
}

Result<platform::Upload> TakeModelUpload(const Request& req) {
  const http::FormPart* p = req.Part("model_file");
  if (!p) return ValidationError("multipart field 'model_file' is required");
  if (p->file_path.empty()) return ValidationError("'model_file' must be a file upload");
  platform::Upload u;
  u.temp_path = p->file_path;
  u.filename = p->filename;
  u.size = p->size;
  return u;
}

std::string StemOf(const std::string& filename) {
  std::string base = filename.substr(
      filename.find_last_of('/') == std::string::npos ? 0 : filename.find_last_of('/') + 1);
  auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// ---------------------------------------------------------------------------------------
// Handlers

Response Health(ApiContext* ctx) {
  json j{{"status", "healthy"},
         {"message", "Welcome to ServeML API"},
         {"version", ctx->version},
         {"timestamp", Iso(NowUnixMicros())}};
  return JsonResponse(200, j);
}

Response StatusPage(ApiContext* ctx, const Request& /*req*/) {
  json issues = json::array();
  std::string db = "operational";
  auto count = ctx->store->ListDeploymentsByStatus(store::kStatusValidating);
  if (!count.ok()) {
    db = "down";
    issues.push_back({{"component", "database"}, {"message", count.status().message()}});
  }
  std::string storage = "operational";
  struct statvfs vfs {};
  if (statvfs(ctx->blobs->temp_dir().c_str(), &vfs) == 0) {
    double free_mb =
        static_cast<double>(vfs.f_bavail) * static_cast<double>(vfs.f_frsize) / 1048576.0;
    if (free_mb < 256) {
      storage = "degraded";
      issues.push_back({{"component", "storage"},
                        {"message", "less than 256 MiB of disk left for model artifacts"}});
    }
  } else {
    storage = "down";
    issues.push_back(
        {{"component", "storage"}, {"message", "artifact directory is not accessible"}});
  }
  bool draining = ctx->draining && ctx->draining->load();
  std::string overall = issues.empty() && !draining ? "operational" : "degraded";
  json j{{"status", overall},
         {"api", draining ? "draining" : "operational"},
         {"deployments", ctx->deployments->validating() > 100 ? "degraded" : "operational"},
         {"predictions", "operational"},
         {"database", db},
         {"storage", storage},
         {"issues", issues},
         {"version", ctx->version},
         {"uptime_seconds", NowUnixSeconds() - ctx->started_at_unix},
         {"timestamp", Iso(NowUnixMicros())}};
  return JsonResponse(200, j);
}

Response Register(ApiContext* ctx, const Request& req) {
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  std::string email, username, password, full_name;
  Status st;
  if (!StringField(body, "email", true, &email, &st) ||
      !StringField(body, "username", true, &username, &st) ||
      !StringField(body, "password", true, &password, &st) ||
      !StringField(body, "full_name", false, &full_name, &st)) {
    return ErrorResponse(st, req.request_id);
  }
  int64_t retry_after = 0;
  auto r =
      ctx->accounts->Register(email, username, password, full_name, ClientAddr(req), &retry_after);
  if (!r.ok()) {
    if (r.status().code() == Code::kRateLimited) {
      return RateLimitedResponse(r.status(), retry_after, req.request_id);
    }
    return ErrorResponse(r.status(), req.request_id);
  }
  LOG_INFO("user registered").Str("user_id", r->user.id).Str("request_id", req.request_id);
  return JsonResponse(200, json{{"access_token", r->access_token},
                                {"token_type", "bearer"},
                                {"expires_in", ctx->accounts->token_ttl_seconds()},
                                {"user", UserJson(r->user)}});
}

Response Login(ApiContext* ctx, const Request& req) {
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  std::string email, password;
  Status st;
  if (!StringField(body, "email", true, &email, &st) ||
      !StringField(body, "password", true, &password, &st)) {
    return ErrorResponse(st, req.request_id);
  }
  int64_t retry_after = 0;
  auto token = ctx->accounts->Login(email, password, ClientAddr(req), &retry_after);
  if (!token.ok()) {
    if (token.status().code() == Code::kRateLimited) {
      LOG_WARN("login throttled").Str("remote", ClientAddr(req)).Str("request_id", req.request_id);
      return RateLimitedResponse(token.status(), retry_after, req.request_id);
    }
    return ErrorResponse(token.status(), req.request_id);
  }
  return JsonResponse(200, json{{"access_token", *token},
                                {"token_type", "bearer"},
                                {"expires_in", ctx->accounts->token_ttl_seconds()}});
}

Response Logout(ApiContext* ctx, const Request& req) {
  auto p = Authenticate(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  if (p->via_api_key) {
    return ErrorResponse(InvalidInput("an API key cannot log out; revoke it instead"),
                         req.request_id);
  }
  Status st = ctx->accounts->Logout(p->user_id);
  if (!st.ok()) return ErrorResponse(st, req.request_id);
  return JsonResponse(200, json{{"logged_out", true},
                                {"message", "every session token of this account is revoked"}});
}

Response ChangePassword(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  if (p->via_api_key) {
    return ErrorResponse(Forbidden("log in with your password to change it"), req.request_id);
  }
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  std::string current, next;
  Status st;
  if (!StringField(body, "current_password", true, &current, &st) ||
      !StringField(body, "new_password", true, &next, &st)) {
    return ErrorResponse(st, req.request_id);
  }
  auto token = ctx->accounts->ChangePassword(p->user_id, current, next);
  if (!token.ok()) return ErrorResponse(token.status(), req.request_id);
  return JsonResponse(200, json{{"access_token", *token},
                                {"token_type", "bearer"},
                                {"expires_in", ctx->accounts->token_ttl_seconds()}});
}

Response Me(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  auto u = ctx->accounts->GetUser(p->user_id);
  if (!u.ok()) {
    return ErrorResponse(
        u.status().code() == Code::kNotFound ? Unauthorized("user no longer exists") : u.status(),
        req.request_id);
  }
  auto count = ctx->store->CountDeployments(p->user_id);
  if (!count.ok()) return ErrorResponse(count.status(), req.request_id);
  json j = UserJson(*u);
  j["deployment_count"] = *count;
  auto total = ctx->deployments->TotalPredictions(p->user_id);
  if (!total.ok()) return ErrorResponse(total.status(), req.request_id);
  j["total_predictions"] = *total;
  return JsonResponse(200, j);
}

json ApiKeyJson(const store::ApiKey& k) {
  return json{{"id", k.id},
              {"name", k.name},
              {"prefix", k.prefix},
              {"scopes", platform::SplitScopes(k.scopes)},
              {"created_at", Iso(k.created_at)},
              {"last_used_at", k.last_used_at ? json(Iso(k.last_used_at)) : json(nullptr)},
              {"revoked", k.revoked}};
}

Response CreateApiKey(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  std::string name;
  Status st;
  if (!StringField(body, "name", true, &name, &st)) return ErrorResponse(st, req.request_id);
  std::vector<std::string> scopes;
  if (auto it = body.find("scopes"); it != body.end() && !it->is_null()) {
    if (!it->is_array())
      return ErrorResponse(ValidationError("'scopes' must be a list"), req.request_id);
    for (const auto& s : *it) {
      if (!s.is_string())
        return ErrorResponse(ValidationError("'scopes' must be a list of strings"), req.request_id);
      scopes.push_back(s.get<std::string>());
    }
  }
  auto k = ctx->accounts->CreateApiKey(p->user_id, name, scopes);
  if (!k.ok()) return ErrorResponse(k.status(), req.request_id);
  json j = ApiKeyJson(k->key);
  j["key"] = k->plaintext;
  return JsonResponse(200, j);
}

Response ListApiKeys(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  auto keys = ctx->accounts->ListApiKeys(p->user_id);
  if (!keys.ok()) return ErrorResponse(keys.status(), req.request_id);
  json items = json::array();
  for (const auto& k : *keys) items.push_back(ApiKeyJson(k));
  return JsonResponse(200, json{{"items", items}, {"total", items.size()}});
}

Response RevokeApiKey(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  std::string id(req.Param("id"));
  Status st = ctx->accounts->RevokeApiKey(p->user_id, id);
  if (!st.ok()) {
    if (st.code() == Code::kNotFound) st = NotFound("API key '" + id + "' not found");
    return ErrorResponse(st, req.request_id);
  }
  return JsonResponse(200, json{{"id", id}, {"revoked", true}});
}

// The error response for a failed upload; QUOTA_EXCEEDED carries the numbers in details.
Response UploadError(ApiContext* ctx, const Status& st, const std::string& user_id,
                     const Request& req) {
  if (st.code() == Code::kUnavailable) {  // validation queue full, disk full: retry later
    Response r = ErrorResponse(st, req.request_id);
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (st.code() != Code::kQuotaExceeded) return ErrorResponse(st, req.request_id);
  json details = json::object();
  if (auto u = ctx->deployments->Usage(user_id); u.ok()) {
    const auto& lim = ctx->deployments->limits();
    details = {
        {"deployments", u->deployments},   {"max_deployments", lim.max_deployments_per_user},
        {"versions", u->versions},         {"max_versions", lim.max_versions_per_user},
        {"stored_bytes", u->stored_bytes}, {"max_stored_bytes", lim.max_stored_bytes_per_user}};
  }
  return ErrorResponse(st, req.request_id, details.dump());
}

Response Deploy(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  if (req.form.empty()) {
    return ErrorResponse(
        InvalidInput("send the model as multipart/form-data with a 'model_file' part"),
        req.request_id);
  }
  auto upload = TakeModelUpload(req);
  if (!upload.ok()) return ErrorResponse(upload.status(), req.request_id);
  platform::DeploymentConfig config;
  Status st = FormInt(req, "memory", &config.memory_mb);
  if (st.ok()) st = FormInt(req, "timeout", &config.timeout_seconds);
  if (st.ok()) st = FormInt(req, "min_instances", &config.min_instances);
  if (st.ok()) st = FormInt(req, "max_instances", &config.max_instances);
  if (!st.ok()) return ErrorResponse(st, req.request_id);
  if (const auto* pub = req.Part("is_public"); pub && !pub->value.empty()) {
    config.is_public = pub->value == "true" || pub->value == "1";
  }
  std::string requirements;
  if (const auto* r = req.Part("requirements_file")) {
    if (!r->file_path.empty()) {
      auto text = ReadSmallFile(r->file_path, 64 * 1024);
      if (!text.ok()) return ErrorResponse(text.status(), req.request_id);
      requirements = std::move(text).value();
    } else {
      requirements = r->value;
    }
  }
  std::string name;
  if (const auto* n = req.Part("name")) name = n->value;
  if (name.empty()) name = StemOf(upload->filename);
  auto d = ctx->deployments->Create(p->user_id, name, *upload, config, requirements);
  if (!d.ok()) return UploadError(ctx, d.status(), p->user_id, req);
  LOG_INFO("deployment created")
      .Str("deployment_id", d->id)
      .Str("user_id", p->user_id)
      .Str("framework", d->framework)
      .Int("size_bytes", d->size_bytes)
      .Str("request_id", req.request_id);
  json j{{"id", d->id},
         {"name", d->name},
         {"status", d->status},
         {"created_at", Iso(d->created_at)},
         {"endpoint_url", BaseUrl(req) + "/api/v1/predict/" + d->id},
         {"model_metadata",
          {{"framework", d->framework},
           {"model_type", nullptr},
           {"size_mb",
            std::round(static_cast<double>(d->size_bytes) / 1048576.0 * 1000.0) / 1000.0}}}};
  return JsonResponse(200, j);
}

Response ListDeployments(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  store::DeploymentFilter f;
  f.user_id = p->user_id;
  std::string v;
  if (req.QueryParam("limit", &v)) {
    if (!ParseInt(v, &f.limit) || f.limit < 1 || f.limit > 100) {
      return ErrorResponse(ValidationError("limit must be an integer from 1 to 100"),
                           req.request_id);
    }
  }
  if (req.QueryParam("offset", &v)) {
    if (!ParseInt(v, &f.offset) || f.offset < 0) {
      return ErrorResponse(ValidationError("offset must be a non-negative integer"),
                           req.request_id);
    }
  }
  if (req.QueryParam("status", &v)) f.status = v;
  if (req.QueryParam("framework", &v)) f.framework = v;
  if (req.QueryParam("search", &v)) f.search = v;
  auto list = ctx->deployments->List(f);
  if (!list.ok()) return ErrorResponse(list.status(), req.request_id);
  std::string base = BaseUrl(req);
  json items = json::array();
  for (const auto& d : list->first) items.push_back(DeploymentJson(ctx, d, base, false));
  return JsonResponse(
      200,
      json{{"items", items}, {"total", list->second}, {"limit", f.limit}, {"offset", f.offset}});
}

Response GetDeployment(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  auto d = ctx->deployments->Get(p->user_id, std::string(req.Param("id")));
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);
  return JsonResponse(200, DeploymentJson(ctx, *d, BaseUrl(req), true));
}

Response PatchDeployment(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  platform::DeploymentPatch patch;
  Status st;
  if (auto it = body.find("name"); it != body.end() && !it->is_null()) {
    if (!it->is_string())
      return ErrorResponse(ValidationError("'name' must be a string"), req.request_id);
    patch.name = it->get<std::string>();
  }
  const json* cfg = &body;
  if (auto it = body.find("configuration"); it != body.end() && it->is_object()) cfg = &*it;
  st = JsonInt(*cfg, "memory_mb", &patch.config.memory_mb);
  if (st.ok() && !patch.config.memory_mb) st = JsonInt(*cfg, "memory", &patch.config.memory_mb);
  if (st.ok()) st = JsonInt(*cfg, "timeout_seconds", &patch.config.timeout_seconds);
  if (st.ok() && !patch.config.timeout_seconds)
    st = JsonInt(*cfg, "timeout", &patch.config.timeout_seconds);
  if (st.ok()) st = JsonInt(*cfg, "min_instances", &patch.config.min_instances);
  if (st.ok()) st = JsonInt(*cfg, "max_instances", &patch.config.max_instances);
  if (!st.ok()) return ErrorResponse(st, req.request_id);
  if (auto it = cfg->find("is_public"); it != cfg->end() && !it->is_null()) {
    if (!it->is_boolean())
      return ErrorResponse(ValidationError("'is_public' must be true or false"), req.request_id);
    patch.config.is_public = it->get<bool>();
  }
  auto d = ctx->deployments->Patch(p->user_id, std::string(req.Param("id")), patch);
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);
  return JsonResponse(200, DeploymentJson(ctx, *d, BaseUrl(req), true));
}

Response DeleteDeployment(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  std::string id(req.Param("id"));
  Status st = ctx->deployments->Delete(p->user_id, id);
  if (!st.ok()) return ErrorResponse(st, req.request_id);
  LOG_INFO("deployment deleted").Str("deployment_id", id).Str("request_id", req.request_id);
  return JsonResponse(200, json{{"id", id}, {"deleted", true}, {"message", "deployment deleted"}});
}

Response AddVersion(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  auto upload = TakeModelUpload(req);
  if (!upload.ok()) return ErrorResponse(upload.status(), req.request_id);
  auto v = ctx->deployments->AddVersion(p->user_id, std::string(req.Param("id")), *upload);
  if (!v.ok()) return UploadError(ctx, v.status(), p->user_id, req);
  return JsonResponse(200, VersionJson(*v, ""));
}

Response ListVersions(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  std::string id(req.Param("id"));
  auto d = ctx->deployments->Get(p->user_id, id);
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);
  auto vs = ctx->deployments->Versions(p->user_id, id);
  if (!vs.ok()) return ErrorResponse(vs.status(), req.request_id);
  json items = json::array();
  for (const auto& v : *vs) items.push_back(VersionJson(v, d->current_version));
  return JsonResponse(200,
                      json{{"deployment_id", id},
                           {"current_version",
                            d->current_version.empty() ? json(nullptr) : json(d->current_version)},
                           {"items", items}});
}

Response Rollback(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  json body;
  Response err;
  if (!ParseJsonObject(req, &body, &err)) return err;
  std::string version;
  Status st;
  if (!StringField(body, "version", true, &version, &st)) return ErrorResponse(st, req.request_id);
  auto d = ctx->deployments->Rollback(p->user_id, std::string(req.Param("id")), version);
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);
  LOG_INFO("deployment rolled back").Str("deployment_id", d->id).Str("version", version);
  return JsonResponse(200, DeploymentJson(ctx, *d, BaseUrl(req), true));
}

Response DownloadOnnx(ApiContext* ctx, const Request& req) {
  auto p = AuthenticateManage(ctx, req);
  if (!p.ok()) return ErrorResponse(p.status(), req.request_id);
  std::string id(req.Param("id"));
  auto d = ctx->deployments->Get(p->user_id, id);
  if (!d.ok()) return ErrorResponse(d.status(), req.request_id);
  auto bytes = ctx->deployments->ReadOnnx(p->user_id, id);
  if (!bytes.ok()) return ErrorResponse(bytes.status(), req.request_id);
  Response r;
  r.content_type = "application/octet-stream";
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + id + ".onnx\"");
  r.body = std::move(bytes).value();
  return r;
}

// Parses, runs and answers one prediction. Runs on an I/O thread for cheap resident
// models, otherwise on the model pool. Every outcome is recorded in the deployment's
// metrics (lock-free); a success records the same latency it reports as response_time_ms.
Response RunPrediction(const Request& req, const platform::ServingHandle& h, int64_t t0,
                       uint64_t caller) {
  const auto& sig = h.model->signature();
  auto record = [&](bool ok, int64_t rows, int64_t latency_ns) {
    h.metrics->Record(latency_ns, ok, rows, caller);
  };
  auto input = ParsePredictRequest(req.body, sig);
  if (!input.ok()) {
    record(false, 0, MonotonicNanos() - t0);
    return ErrorResponse(input.status(), req.request_id);
  }
  engine::RunOptions run;
  run.deadline_ns = t0 + h.timeout_seconds * 1'000'000'000;
  run.deadline_label = "timeout_seconds";
  run.max_bytes = h.memory_mb << 20;
  run.memory_label = "the deployment's memory_mb";
  auto outputs = h.model->Run(input->tensors, run);
  if (!outputs.ok()) {
    record(false, input->batch, MonotonicNanos() - t0);
    Status st = outputs.status();
    if (st.code() == Code::kTimeout) {
      st = Timeout("the prediction took longer than the deployment's timeout of " +
                   std::to_string(h.timeout_seconds) + " s and was stopped");
    } else if (st.code() != Code::kInvalidInput) {
      st = Status(Code::kPrediction, "the model failed: " + st.message());
    }
    LOG_WARN("prediction failed")
        .Str("deployment_id", h.deployment_id)
        .Str("request_id", req.request_id)
        .Str("error", st.message());
    return ErrorResponse(st, req.request_id);
  }
  int64_t elapsed = MonotonicNanos() - t0;
  // Reported with microsecond precision; record exactly what the client sees.
  double ms = std::round(static_cast<double>(elapsed) / 1e3) / 1e3;
  auto body = WritePredictResponse(sig, *outputs, input->single, input->batch, h.version, ms);
  if (!body.ok()) {
    record(false, input->batch, MonotonicNanos() - t0);
    return ErrorResponse(body.status(), req.request_id);
  }
  record(true, input->batch, static_cast<int64_t>(std::llround(ms * 1e6)));
  return Response::Json(200, std::move(body).value());
}

// The caller a prediction is attributed to (metrics' unique users): the API key, else the
// user, else (anonymous call to a public deployment) the client address.
uint64_t CallerOf(const platform::Principal* p, const Request& req) {
  if (p) return platform::CallerHash(p->via_api_key ? p->api_key_id : p->user_id);
  std::string anon = "anon:" + req.client_addr;
  return platform::CallerHash(anon);
}

void Predict(ApiContext* ctx, Request& req, Responder respond) {
  int64_t t0 = MonotonicNanos();
  std::string id(req.Param("id"));
  std::optional<platform::Principal> caller;
  if (!req.Header("authorization").empty()) {
    auto p = Authenticate(ctx, req);
    if (!p.ok()) return respond(ErrorResponse(p.status(), req.request_id));
    caller = std::move(p).value();
  }
  const platform::Principal* cp = caller ? &*caller : nullptr;
  auto h = ctx->deployments->Resolve(cp, id, /*load_if_needed=*/false);
  if (!h.ok()) {
    if (h.status().code() == Code::kNotFound && !cp) {
      return respond(ErrorResponse(
          Unauthorized("missing Authorization header (use 'Bearer <token>')"), req.request_id));
    }
    return respond(ErrorResponse(h.status(), req.request_id));
  }
  // Inline on the I/O thread only when the model is cheap and the request small.
  constexpr size_t kInlineBodyBytes = 64 << 10;
  if (h->model && h->model->cheap() && req.body.size() <= kInlineBodyBytes) {
    return respond(RunPrediction(req, *h, t0, CallerOf(cp, req)));
  }
  // Cold or expensive: off the I/O thread.
  auto shared = http::DetachRequest(req);
  std::optional<platform::Principal> caller_copy = caller;
  bool ok = ctx->models->Submit([ctx, shared, respond, caller_copy, id, t0] {
    const platform::Principal* p = caller_copy ? &*caller_copy : nullptr;
    auto handle = ctx->deployments->Resolve(p, id, /*load_if_needed=*/true);
    if (!handle.ok()) return respond(ErrorResponse(handle.status(), shared->request_id));
    respond(RunPrediction(*shared, *handle, t0, CallerOf(p, *shared)));
  });
  if (!ok) respond(PoolRefused(*ctx->models, shared->request_id));
}

}  // namespace

void RegisterRestV1(http::Router* router, ApiContext* ctx) {
  auto offload = [ctx](Response (*fn)(ApiContext*, const Request&)) {
    return [ctx, fn](Request& req, Responder respond) {
      Offload(ctx, req, std::move(respond), [ctx, fn](Request& r) { return fn(ctx, r); });
    };
  };
  auto health = [ctx](Request&, Responder respond) { respond(Health(ctx)); };
  // Browsers (Accept: text/html) get the web dashboard when it is built in; every other
  // client gets the health JSON.
  router->Add("GET", "/", [ctx](Request& req, Responder respond) {
    if (WantsHtml(req) && HasDashboard()) return respond(DashboardIndex(req));
    respond(Health(ctx));
  });
  router->Add("GET", "/health", health);
  router->Add("GET", "/api/v1/status", offload(&StatusPage));
  // Password hashing runs on its own small pool (ctx->hashing).
  auto hashing = [ctx](Response (*fn)(ApiContext*, const Request&)) {
    return [ctx, fn](Request& req, Responder respond) {
      Offload(
          ctx, req, std::move(respond), [ctx, fn](Request& r) { return fn(ctx, r); },
          ctx->hashing ? ctx->hashing : ctx->blocking);
    };
  };
  // Route policies: what body each route takes, and whether its credentials are checked
  // from the headers before a byte of the body is read (http::RoutePolicy).
  using http::BodyKind;
  const http::RoutePolicy json_public{BodyKind::kJson, false};
  const http::RoutePolicy json_auth{BodyKind::kJson, true};
  const http::RoutePolicy none_auth{BodyKind::kNone, true};
  const http::RoutePolicy upload_auth{BodyKind::kUpload, true};
  router->Add("POST", "/api/v1/auth/register", hashing(&Register), json_public);
  router->Add("POST", "/api/v1/auth/login", hashing(&Login), json_public);
  router->Add("POST", "/api/v1/auth/logout", offload(&Logout), none_auth);
  router->Add("POST", "/api/v1/auth/password", hashing(&ChangePassword), json_auth);
  router->Add("GET", "/api/v1/auth/me", offload(&Me), none_auth);
  router->Add("POST", "/api/v1/api-keys", offload(&CreateApiKey), json_auth);
  router->Add("GET", "/api/v1/api-keys", offload(&ListApiKeys), none_auth);
  router->Add("DELETE", "/api/v1/api-keys/{id}", offload(&RevokeApiKey), none_auth);
  router->Add("POST", "/api/v1/deploy", offload(&Deploy), upload_auth);
  router->Add("GET", "/api/v1/deployments", offload(&ListDeployments), none_auth);
  router->Add("GET", "/api/v1/deployments/{id}", offload(&GetDeployment), none_auth);
  router->Add("PATCH", "/api/v1/deployments/{id}", offload(&PatchDeployment), json_auth);
  router->Add("DELETE", "/api/v1/deployments/{id}", offload(&DeleteDeployment), none_auth);
  router->Add("POST", "/api/v1/deployments/{id}/versions", offload(&AddVersion), upload_auth);
  router->Add("GET", "/api/v1/deployments/{id}/versions", offload(&ListVersions), none_auth);
  router->Add("POST", "/api/v1/deployments/{id}/rollback", offload(&Rollback), json_auth);
  router->Add("GET", "/api/v1/deployments/{id}/onnx", offload(&DownloadOnnx), none_auth);
  // Public deployments answer anonymous callers, so predictions are not pre-authenticated;
  // their body has its own cap (max_predict_body_bytes).
  router->Add(
      "POST", "/api/v1/predict/{id}",
      [ctx](Request& req, Responder respond) { Predict(ctx, req, std::move(respond)); },
      http::RoutePolicy{BodyKind::kPredict, false});
}

}  // namespace serveml::api
