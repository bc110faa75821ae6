#include "platform/deployments.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/thread_pool.h"

namespace serveml::platform {

namespace {

std::string LowerExt(const std::string& filename) {
  auto dot = filename.rfind('.');
  if (dot == std::string::npos) return "";
  std::string ext = filename.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::string ReadHead(const std::string& path, size_t n) {
  std::string head(n, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t got = ::read(fd, head.data(), n);
  ::close(fd);
  head.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return head;
}

Status ValidateConfig(const DeploymentConfig& c) {
  if (c.memory_mb && (*c.memory_mb < 64 || *c.memory_mb > 65536)) {
    return ValidationError("memory must be between 64 and 65536 MB");
  }
  if (c.timeout_seconds && (*c.timeout_seconds < 1 || *c.timeout_seconds > 900)) {
    return ValidationError("timeout must be between 1 and 900 seconds");
  }
  if (c.min_instances && (*c.min_instances < 0 || *c.min_instances > 64)) {
    return ValidationError("min_instances must be between 0 and 64");
  }
  if (c.max_instances && (*c.max_instances < 1 || *c.max_instances > 64)) {
    return ValidationError("max_instances must be between 1 and 64");
  }
  return Status::Ok();
}

void ApplyConfig(const DeploymentConfig& c, store::Deployment* d) {
  if (c.memory_mb) d->memory_mb = *c.memory_mb;
  if (c.timeout_seconds) d->timeout_seconds = *c.timeout_seconds;
  if (c.min_instances) d->min_instances = *c.min_instances;
  if (c.max_instances) d->max_instances = *c.max_instances;
  if (c.is_public) d->is_public = *c.is_public;
}

Status ValidateName(const std::string& name) {
  if (name.empty() || name.size() > 100) {
    return ValidationError("name is required and must be at most 100 characters");
  }
  for (unsigned char c : name) {
    if (c < 0x20) return ValidationError("name must not contain control characters");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> DetectFramework(const std::string& filename, const std::string& head) {
  std::string ext = LowerExt(filename);
  if (ext == "onnx") return std::string("onnx");
  if (ext == "pkl" || ext == "pickle" || ext == "joblib") return std::string("sklearn");
  if (ext == "json" || ext == "ubj" || ext == "xgb") return std::string("xgboost");
  if (ext == "txt" || ext == "lgb" || ext == "lgbm") return std::string("lightgbm");
  if (ext.empty() || ext == "bin" || ext == "model") {
    if (!head.empty() && static_cast<unsigned char>(head[0]) == 0x80) return std::string("sklearn");
    if (head.rfind("tree", 0) == 0) return std::string("lightgbm");
    if (!head.empty() && head[0] == '{') return std::string("xgboost");
    if (!head.empty() && head[0] == 0x08) return std::string("onnx");
  }
  return InvalidInput("unsupported model file '" + filename +
                      "': upload an .onnx, .pkl/.joblib (scikit-learn), XGBoost .json/.ubj or "
                      "LightGBM .txt model");
}

Deployments::Deployments(store::MetadataStore* store, store::BlobStore* blobs,
                         runtime::ModelCache* cache, size_t validate_threads, Metrics* metrics,
                         DeploymentLimits limits)
    : store_(store),
      blobs_(blobs),
      limits_(std::move(limits)),
      cache_(cache),
      owned_metrics_(metrics ? nullptr : std::make_unique<Metrics>(store, MetricsOptions{})),
      metrics_(metrics ? metrics : owned_metrics_.get()),
      validators_(validate_threads, "validate", limits_.max_validation_queue) {}

Deployments::~Deployments() { Shutdown(); }

void Deployments::Shutdown() {
  shutting_down_ = true;
  validators_.Shutdown();
}

void Deployments::SetDirEntry(const store::Deployment& d) {
  std::unique_lock lock(dir_mu_);
  DirEntry& e = dir_[d.id];
  e.user_id = d.user_id;
  e.status = d.status;
  e.current_version = d.current_version;
  e.error_message = d.error_message;
  e.is_public = d.is_public;
  e.min_instances = d.min_instances;
  e.timeout_seconds = d.timeout_seconds;
  e.memory_mb = d.memory_mb;
  if (!e.metrics) e.metrics = metrics_->ForDeployment(d.id);
}

namespace {

// Makes `v` (an active version) the deployment's current one.
void MakeCurrent(const store::DeploymentVersion& v, store::Deployment* d) {
  d->status = store::kStatusActive;
  d->error_message.clear();
  d->current_version = v.version;
  d->framework = v.framework;
  d->model_type = v.model_type;
  d->metadata_json = v.metadata_json;
  d->size_bytes = v.size_bytes;
}

// The state a deployment must have given its versions (oldest first): its current version
// if that one is active; else the newest active version; else `validating` while any
// version still is; else `failed` with the newest version's error.
store::Deployment DeriveState(store::Deployment d,
                              const std::vector<store::DeploymentVersion>& versions) {
  const store::DeploymentVersion* current = nullptr;
  const store::DeploymentVersion* newest_active = nullptr;
  bool any_validating = false;
  for (const auto& v : versions) {
    if (v.version == d.current_version && v.status == store::kStatusActive) current = &v;
    if (v.status == store::kStatusActive) newest_active = &v;
    any_validating |= v.status == store::kStatusValidating;
  }
  if (!current) current = newest_active;
  if (current) {
    MakeCurrent(*current, &d);
  } else if (any_validating) {
    d.status = store::kStatusValidating;
    d.current_version.clear();
  } else {
    d.status = store::kStatusFailed;
    d.current_version.clear();
    d.error_message =
        versions.empty() ? "the upload was interrupted before it was stored; upload the model again"
                         : versions.back().error_message;
  }
  return d;
}

bool SameState(const store::Deployment& a, const store::Deployment& b) {
  return a.status == b.status && a.current_version == b.current_version &&
         a.error_message == b.error_message;
}

}  // namespace

Status Deployments::Start() {
  int requeued = 0, gave_up = 0, repaired = 0, legacy = 0;
  for (const char* status :
       {store::kStatusActive, store::kStatusFailed, store::kStatusValidating}) {
    ASSIGN_OR_RETURN(auto list, store_->ListDeploymentsByStatus(status));
    for (auto& d : list) {
      ASSIGN_OR_RETURN(auto versions, store_->ListVersions(d.id));
      store::StateChange change;
      // A validation that was started and never finished: retried once, then failed.
      for (auto& v : versions) {
        if (v.status != store::kStatusValidating || v.validation_attempts < 2) continue;
        v.status = store::kStatusFailed;
        v.error_message =
            "validation was interrupted twice (the server stopped or crashed while validating "
            "this file); upload it again";
        change.update_versions.push_back(v);
        ++gave_up;
      }
      store::Deployment derived = DeriveState(d, versions);
      if (!SameState(derived, d) || !change.update_versions.empty()) {
        derived.updated_at = NowUnixMicros();
        change.update_deployment = derived;
        RETURN_IF_ERROR(store_->Apply(change));
        if (!SameState(derived, d)) ++repaired;
      }
      SetDirEntry(derived);
      for (const auto& v : versions) {
        if (v.status == store::kStatusValidating) {
          QueueValidation(d.id, v.version);
          ++requeued;
        } else if (v.status == store::kStatusActive && v.onnx_sha256.empty() &&
                   v.framework != "onnx") {
          // Stored before isolation: convert once through the importer child.
          std::string id = d.id, version = v.version;
          validating_.fetch_add(1);
          bool queued = validators_.Submit([this, id, version] {
            if (!shutting_down_) {
              auto r = ConvertLegacy(id, version);
              if (!r.ok()) {
                LOG_WARN("could not convert a stored version")
                    .Str("deployment_id", id)
                    .Str("version", version)
                    .Str("error", r.status().ToString());
              }
            }
            validating_.fetch_sub(1);
          });
          if (!queued) validating_.fetch_sub(1);
          ++legacy;
        }
      }
    }
  }
  if (requeued || gave_up || repaired || legacy) {
    LOG_INFO("start-up recovery")
        .Int("revalidating", requeued)
        .Int("failed_after_retry", gave_up)
        .Int("states_repaired", repaired)
        .Int("converting_stored_versions", legacy);
  }
  return Status::Ok();
}

Result<store::UserUsage> Deployments::Usage(const std::string& user_id) {
  return store_->GetUserUsage(user_id);
}

Status Deployments::CheckQuota(const std::string& user_id, int64_t new_deployments,
                               int64_t new_bytes) {
  ASSIGN_OR_RETURN(store::UserUsage u, store_->GetUserUsage(user_id));
  if (new_deployments > 0 && u.deployments + new_deployments > limits_.max_deployments_per_user) {
    return QuotaExceeded("quota exceeded: you have " + std::to_string(u.deployments) + " of " +
                         std::to_string(limits_.max_deployments_per_user) +
                         " deployments; delete one to deploy another");
  }
  if (u.versions + 1 > limits_.max_versions_per_user) {
    return QuotaExceeded("quota exceeded: you store " + std::to_string(u.versions) + " of " +
                         std::to_string(limits_.max_versions_per_user) +
                         " model versions; delete a deployment to upload more");
  }
  if (u.stored_bytes + new_bytes > limits_.max_stored_bytes_per_user) {
    return QuotaExceeded("quota exceeded: this upload of " + std::to_string(new_bytes) +
                         " bytes would bring your stored models to " +
                         std::to_string(u.stored_bytes + new_bytes) + " bytes, over the limit of " +
                         std::to_string(limits_.max_stored_bytes_per_user) + " bytes");
  }
  return Status::Ok();
}

void Deployments::RemoveUnreferenced(const std::vector<std::string>& shas) {
  std::lock_guard blob_lock(blob_mu_);
  for (const auto& sha : shas) {
    if (sha.empty()) continue;
    auto referenced = store_->BlobReferenced(sha);
    if (referenced.ok() && !*referenced) (void)blobs_->Remove(sha);
  }
}

Result<store::DeploymentVersion> Deployments::StoreVersion(const std::string& deployment_id,
                                                           const std::string& version,
                                                           Upload upload) {
  std::string head = ReadHead(upload.temp_path, 16);
  if (upload.size == 0 || head.empty()) return InvalidInput("model_file is empty");
  ASSIGN_OR_RETURN(std::string framework, DetectFramework(upload.filename, head));
  ASSIGN_OR_RETURN(std::string sha, blobs_->PutFile(upload.temp_path));
  store::DeploymentVersion v;
  v.deployment_id = deployment_id;
  v.version = version;
  v.blob_sha256 = sha;
  v.size_bytes = static_cast<int64_t>(upload.size);
  v.status = store::kStatusValidating;
  v.framework = framework;
  v.filename = upload.filename;
  v.created_at = NowUnixMicros();
  return v;
}

Result<store::Deployment> Deployments::Create(const std::string& user_id, const std::string& name,
                                              Upload upload, const DeploymentConfig& config,
                                              const std::string& requirements) {
  RETURN_IF_ERROR(ValidateName(name));
  RETURN_IF_ERROR(ValidateConfig(config));
  if (requirements.size() > 64 * 1024) {
    return ValidationError("requirements_file must be at most 64 KiB");
  }
  std::string id = NewUuid();
  std::lock_guard lock(version_mu_);
  RETURN_IF_ERROR(CheckValidationQueue());
  RETURN_IF_ERROR(CheckQuota(user_id, 1, static_cast<int64_t>(upload.size)));
  std::lock_guard blob_lock(blob_mu_);
  ASSIGN_OR_RETURN(store::DeploymentVersion v, StoreVersion(id, "v1", std::move(upload)));
  store::Deployment d;
  d.id = id;
  d.user_id = user_id;
  d.name = name;
  d.status = store::kStatusValidating;
  d.framework = v.framework;
  d.size_bytes = v.size_bytes;
  d.requirements = requirements;
  d.created_at = v.created_at;
  d.updated_at = v.created_at;
  ApplyConfig(config, &d);
  store::StateChange change;
  change.create_deployment = d;
  change.add_versions.push_back(v);
  RETURN_IF_ERROR(store_->Apply(change));
  SetDirEntry(d);
  QueueValidation(id, "v1");
  return d;
}

Status Deployments::CheckValidationQueue() const {
  if (validators_.pending() < limits_.max_validation_queue) return Status::Ok();
  return Unavailable("the validation queue is full (" +
                     std::to_string(limits_.max_validation_queue) +
                     " uploads waiting, --validate-queue); nothing was stored, retry in a moment");
}

void Deployments::QueueValidation(const std::string& deployment_id, const std::string& version) {
  validating_.fetch_add(1);
  bool queued = validators_.Submit([this, deployment_id, version] {
    if (!shutting_down_) Validate(deployment_id, version);
    validating_.fetch_sub(1);
  });
  if (!queued) {
    validating_.fetch_sub(1);
    LOG_WARN("validation queue full; the version is validated at the next start")
        .Str("deployment_id", deployment_id)
        .Str("version", version);
  }
}

Result<Deployments::Converted> Deployments::Convert(const store::DeploymentVersion& v) {
  ASSIGN_OR_RETURN(int fd, blobs_->OpenForRead(v.blob_sha256));
  SandboxRequest req;
  req.artifact_fd = fd;
  req.sha256 = v.blob_sha256;
  req.framework = v.framework;
  req.onnx_out_path = blobs_->temp_dir() + "/onnx-" + RandomHex(12) + ".part";
  auto r = RunImportSandbox(req, limits_.sandbox);
  ::close(fd);
  if (!r.ok()) {
    ::unlink(req.onnx_out_path.c_str());
    return r.status();
  }
  Converted c;
  c.model_type = r->model_type;
  c.metadata_json = r->metadata_json;
  c.feature_names = r->feature_names;
  if (!r->wrote_onnx) {  // an ONNX upload is its own ONNX
    ::unlink(req.onnx_out_path.c_str());
    c.onnx_sha256 = v.blob_sha256;
    c.onnx_size_bytes = v.size_bytes;
    return c;
  }
  struct stat st {};
  if (::stat(req.onnx_out_path.c_str(), &st) != 0) return Internal("the converted model vanished");
  c.onnx_size_bytes = static_cast<int64_t>(st.st_size);
  std::lock_guard blob_lock(blob_mu_);
  auto sha = blobs_->PutFile(req.onnx_out_path);
  if (!sha.ok()) {
    ::unlink(req.onnx_out_path.c_str());
    return sha.status();
  }
  c.onnx_sha256 = *sha;
  return c;
}

namespace {

runtime::LoadedModel::ImportInfo InfoOf(const store::DeploymentVersion& v) {
  runtime::LoadedModel::ImportInfo info;
  info.model_type = v.model_type;
  auto j = nlohmann::json::parse(v.metadata_json, nullptr, false);
  if (j.is_object()) {
    if (auto it = j.find("feature_names"); it != j.end() && it->is_array()) {
      for (const auto& f : *it) {
        if (f.is_string()) info.feature_names.push_back(f.get<std::string>());
      }
    }
  }
  return info;
}

}  // namespace

Result<store::DeploymentVersion> Deployments::ConvertLegacy(const std::string& deployment_id,
                                                            const std::string& version) {
  ASSIGN_OR_RETURN(store::DeploymentVersion v, store_->GetVersion(deployment_id, version));
  if (!v.onnx_sha256.empty() || v.framework == "onnx") return v;
  auto c = Convert(v);
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::DeploymentVersion now, store_->GetVersion(deployment_id, version));
  if (!now.onnx_sha256.empty()) return now;  // converted meanwhile
  if (!c.ok()) {
    // It validated under the previous, in-process importer, but not within today's limits.
    now.status = store::kStatusFailed;
    now.error_message = c.status().message();
  } else {
    now.onnx_sha256 = c->onnx_sha256;
    now.onnx_size_bytes = c->onnx_size_bytes;
  }
  store::StateChange change;
  change.update_versions.push_back(now);
  auto d = store_->GetDeployment(deployment_id);
  if (d.ok()) {
    ASSIGN_OR_RETURN(auto versions, store_->ListVersions(deployment_id));
    for (auto& x : versions) {
      if (x.version == now.version) x = now;
    }
    store::Deployment derived = DeriveState(*d, versions);
    if (!SameState(derived, *d)) {
      derived.updated_at = NowUnixMicros();
      change.update_deployment = derived;
    }
  }
  RETURN_IF_ERROR(store_->Apply(change));
  if (change.update_deployment) SetDirEntry(*change.update_deployment);
  if (!c.ok()) return c.status();
  return now;
}

Result<std::shared_ptr<runtime::LoadedModel>> Deployments::LoadVersion(
    const store::DeploymentVersion& version) {
  store::DeploymentVersion v = version;
  if (v.onnx_sha256.empty()) {
    if (v.framework == "onnx") {
      v.onnx_sha256 = v.blob_sha256;
    } else {
      ASSIGN_OR_RETURN(v, ConvertLegacy(v.deployment_id, v.version));
    }
  }
  ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(v.onnx_sha256));
  return runtime::LoadedModel::LoadConverted(bytes, InfoOf(v));
}

void Deployments::Validate(const std::string& deployment_id, const std::string& version) {
  int64_t t0 = MonotonicNanos();
  auto v = store_->GetVersion(deployment_id, version);
  if (!v.ok() || v->status != store::kStatusValidating) return;  // deleted meanwhile
  // Count the attempt first: a crash from here on is remembered at the next start.
  {
    std::lock_guard lock(version_mu_);
    auto fresh = store_->GetVersion(deployment_id, version);
    if (!fresh.ok()) return;
    fresh->validation_attempts += 1;
    if (Status st = store_->UpdateVersion(*fresh); !st.ok()) {
      LOG_ERROR("could not record a validation attempt")
          .Str("deployment_id", deployment_id)
          .Str("error", st.ToString());
      return;
    }
    v = std::move(fresh);
  }
  Result<Converted> converted = Convert(*v);
  const int64_t child_ns = MonotonicNanos() - t0;
  const Status outcome = converted.ok() ? Status::Ok() : converted.status();
  store::DeploymentVersion nv = *v;
  if (converted.ok()) {
    nv.onnx_sha256 = converted->onnx_sha256;
    nv.onnx_size_bytes = converted->onnx_size_bytes;
    nv.model_type = converted->model_type;
    nv.metadata_json = converted->metadata_json;
  }
  std::unique_lock lock(version_mu_);
  auto d = store_->GetDeployment(deployment_id);
  if (!d.ok()) return;
  if (!store_->GetVersion(deployment_id, version).ok()) return;  // deleted meanwhile
  int64_t now = NowUnixMicros();
  store::Deployment nd = *d;
  if (outcome.ok()) {
    nv.status = store::kStatusActive;
    nv.error_message.clear();
    MakeCurrent(nv, &nd);
  } else {
    nv.status = store::kStatusFailed;
    nv.error_message = outcome.message();
    if (nd.current_version.empty()) {
      nd.status = store::kStatusFailed;
      nd.error_message = nv.error_message;
    }
  }
  nd.updated_at = now;
  // One transaction: a deployment never points at a version that is not active, and a
  // version is never active under a deployment that does not know it.
  store::StateChange change;
  change.update_versions.push_back(nv);
  change.update_deployment = nd;
  if (Status st = store_->Apply(change); !st.ok()) {
    LOG_ERROR("could not record validation result")
        .Str("deployment_id", deployment_id)
        .Str("error", st.ToString());
    return;
  }
  SetDirEntry(nd);
  lock.unlock();
  const int64_t recorded_ns = MonotonicNanos() - t0;
  if (outcome.ok()) {
    // The child proved the ONNX loads and runs within the limits. Load it here right
    // away so the first prediction is warm; a prediction arriving meanwhile waits for
    // this same load (GetOrLoad loads a key once).
    bool cold = false;
    auto warm = cache_->GetOrLoad(
        deployment_id + "@" + version, [&] { return LoadVersion(nv); }, &cold);
    if (!warm.ok()) {
      LOG_WARN("could not load a validated model")
          .Str("deployment_id", deployment_id)
          .Str("error", warm.status().ToString());
    }
  }
  auto line = LOG_INFO("validated model");
  line.Str("deployment_id", deployment_id)
      .Str("version", version)
      .Str("status", nv.status)
      .Num("importer_ms", static_cast<double>(child_ns) / 1e6)
      .Num("ms", static_cast<double>(recorded_ns) / 1e6);
  if (!outcome.ok()) line.Str("error", nv.error_message);
}

Result<store::Deployment> Deployments::Get(const std::string& user_id, const std::string& id) {
  auto d = store_->GetDeployment(id);
  if (!d.ok() || d->user_id != user_id) {
    if (d.ok() || d.status().code() == Code::kNotFound) {
      return NotFound("deployment '" + id + "' not found");
    }
    return d.status();
  }
  return d;
}

Result<std::pair<std::vector<store::Deployment>, int64_t>> Deployments::List(
    const store::DeploymentFilter& filter) {
  return store_->ListDeployments(filter);
}

Result<store::Deployment> Deployments::Patch(const std::string& user_id, const std::string& id,
                                             const DeploymentPatch& patch) {
  if (patch.name) RETURN_IF_ERROR(ValidateName(*patch.name));
  RETURN_IF_ERROR(ValidateConfig(patch.config));
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  if (patch.name) d.name = *patch.name;
  ApplyConfig(patch.config, &d);
  if (d.min_instances > d.max_instances) {
    return ValidationError("min_instances must not exceed max_instances");
  }
  d.updated_at = NowUnixMicros();
  RETURN_IF_ERROR(store_->UpdateDeployment(d));
  SetDirEntry(d);
  return d;
}

Status Deployments::Delete(const std::string& user_id, const std::string& id) {
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  ASSIGN_OR_RETURN(auto versions, store_->ListVersions(id));
  RETURN_IF_ERROR(store_->DeleteDeployment(id));
  {
    std::unique_lock dl(dir_mu_);
    dir_.erase(id);
  }
  metrics_->Forget(id);
  cache_->ErasePrefix(id + "@");
  std::vector<std::string> shas;
  for (const auto& v : versions) {
    shas.push_back(v.blob_sha256);
    if (v.onnx_sha256 != v.blob_sha256) shas.push_back(v.onnx_sha256);
  }
  RemoveUnreferenced(shas);
  return Status::Ok();
}

Result<store::DeploymentVersion> Deployments::AddVersion(const std::string& user_id,
                                                         const std::string& id, Upload upload) {
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  ASSIGN_OR_RETURN(auto versions, store_->ListVersions(id));
  RETURN_IF_ERROR(CheckValidationQueue());
  RETURN_IF_ERROR(CheckQuota(user_id, 0, static_cast<int64_t>(upload.size)));
  std::string version = "v" + std::to_string(versions.size() + 1);
  std::lock_guard blob_lock(blob_mu_);
  ASSIGN_OR_RETURN(store::DeploymentVersion v, StoreVersion(id, version, std::move(upload)));
  store::StateChange change;
  change.add_versions.push_back(v);
  if (d.current_version.empty()) {
    d.status = store::kStatusValidating;
    d.error_message.clear();
    d.updated_at = NowUnixMicros();
    change.update_deployment = d;
  }
  RETURN_IF_ERROR(store_->Apply(change));
  if (change.update_deployment) SetDirEntry(d);
  QueueValidation(id, version);
  return v;
}

Result<std::vector<store::DeploymentVersion>> Deployments::Versions(const std::string& user_id,
                                                                    const std::string& id) {
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  return store_->ListVersions(id);
}

Result<store::Deployment> Deployments::Rollback(const std::string& user_id, const std::string& id,
                                                const std::string& version) {
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  auto v = store_->GetVersion(id, version);
  if (!v.ok()) {
    if (v.status().code() == Code::kNotFound) {
      return NotFound("version '" + version + "' of deployment '" + id + "' not found");
    }
    return v.status();
  }
  if (v->status != store::kStatusActive) {
    return ValidationError("version '" + version + "' is " + v->status +
                           "; only a validated version can become current");
  }
  MakeCurrent(*v, &d);
  d.updated_at = NowUnixMicros();
  RETURN_IF_ERROR(store_->UpdateDeployment(d));
  SetDirEntry(d);
  return d;
}

Result<std::string> Deployments::ReadArtifact(const std::string& user_id, const std::string& id) {
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  if (d.current_version.empty()) {
    return ValidationError("deployment '" + id + "' has no validated version");
  }
  ASSIGN_OR_RETURN(auto v, store_->GetVersion(id, d.current_version));
  return blobs_->Get(v.blob_sha256);
}

Result<std::string> Deployments::ReadOnnx(const std::string& user_id, const std::string& id) {
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  if (d.framework == "onnx") return ReadArtifact(user_id, id);
  if (d.current_version.empty()) {
    return ValidationError("deployment '" + id + "' has no validated version");
  }
  ASSIGN_OR_RETURN(auto v, store_->GetVersion(id, d.current_version));
  if (v.onnx_sha256.empty()) {
    ASSIGN_OR_RETURN(v, ConvertLegacy(id, v.version));
  }
  return blobs_->Get(v.onnx_sha256);
}

Result<ServingHandle> Deployments::Resolve(const Principal* caller, const std::string& id,
                                           bool load_if_needed) {
  ServingHandle h;
  std::string status, error;
  {
    std::shared_lock lock(dir_mu_);
    auto it = dir_.find(id);
    bool visible = it != dir_.end() &&
                   (it->second.is_public || (caller && caller->user_id == it->second.user_id));
    if (!visible) return NotFound("deployment '" + id + "' not found");
    if (caller && caller->user_id == it->second.user_id && !caller->Can("predict")) {
      return Forbidden("this API key does not have the 'predict' scope");
    }
    h.deployment_id = id;
    h.version = it->second.current_version;
    h.metrics = it->second.metrics;
    h.timeout_seconds = it->second.timeout_seconds;
    h.memory_mb = it->second.memory_mb;
    status = it->second.status;
    error = it->second.error_message;
  }
  if (h.version.empty()) {
    if (status == store::kStatusFailed) {
      return ValidationError("deployment '" + id + "' failed validation: " + error);
    }
    return ValidationError("deployment '" + id + "' is " + status +
                           "; predictions are possible once it is active");
  }
  std::string key = id + "@" + h.version;
  if (auto m = cache_->Find(key)) {
    h.model = std::move(m);
    return h;
  }
  if (!load_if_needed) return h;
  std::string version = h.version;
  auto loaded = cache_->GetOrLoad(
      key,
      [this, id, version]() -> Result<std::shared_ptr<runtime::LoadedModel>> {
        ASSIGN_OR_RETURN(auto v, store_->GetVersion(id, version));
        return LoadVersion(v);
      },
      &h.cold_start);
  if (!loaded.ok()) {
    return Status(Code::kPrediction, "could not load the model: " + loaded.status().message());
  }
  h.model = std::move(loaded).value();
  if (h.cold_start) h.metrics->RecordColdStart();
  return h;
}

Result<store::MetricsTotals> Deployments::MetricsTotals(const std::string& id) {
  return metrics_->Totals(id);
}

Result<int64_t> Deployments::TotalPredictions(const std::string& user_id) {
  std::vector<std::string> ids;
  {
    std::shared_lock lock(dir_mu_);
    for (const auto& [id, e] : dir_) {
      if (e.user_id == user_id) ids.push_back(id);
    }
  }
  return metrics_->UserTotalRequests(user_id, ids);
}

}  // namespace serveml::platform
