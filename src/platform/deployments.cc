#include "platform/deployments.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"

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
                         runtime::ModelCache* cache, size_t validate_threads, Metrics* metrics)
    : store_(store),
      blobs_(blobs),
      cache_(cache),
      owned_metrics_(metrics ? nullptr : std::make_unique<Metrics>(store, MetricsOptions{})),
      metrics_(metrics ? metrics : owned_metrics_.get()),
      validators_(validate_threads, "validate") {}

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
  if (!e.metrics) e.metrics = metrics_->ForDeployment(d.id);
}

Status Deployments::Start() {
  for (const char* status : {store::kStatusActive, store::kStatusFailed, store::kStatusValidating}) {
    ASSIGN_OR_RETURN(auto list, store_->ListDeploymentsByStatus(status));
    for (const auto& d : list) SetDirEntry(d);
  }
  // Re-validate what a previous run left half-done.
  ASSIGN_OR_RETURN(auto all, store_->ListDeploymentsByStatus(store::kStatusValidating));
  ASSIGN_OR_RETURN(auto active, store_->ListDeploymentsByStatus(store::kStatusActive));
  all.insert(all.end(), active.begin(), active.end());
  int requeued = 0;
  for (const auto& d : all) {
    ASSIGN_OR_RETURN(auto versions, store_->ListVersions(d.id));
    bool any = false;
    for (const auto& v : versions) {
      if (v.status == store::kStatusValidating) {
        QueueValidation(d.id, v.version);
        any = true;
        ++requeued;
      }
    }
    if (!any && d.status == store::kStatusValidating && d.current_version.empty()) {
      store::Deployment f = d;
      f.status = store::kStatusFailed;
      f.error_message = "the upload was interrupted before it was stored; upload the model again";
      f.updated_at = NowUnixMicros();
      RETURN_IF_ERROR(store_->UpdateDeployment(f));
      SetDirEntry(f);
    }
  }
  if (requeued) LOG_INFO("re-queued interrupted validations").Int("count", requeued);
  return Status::Ok();
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
  RETURN_IF_ERROR(store_->CreateDeployment(d));
  RETURN_IF_ERROR(store_->AddVersion(v));
  SetDirEntry(d);
  QueueValidation(id, "v1");
  return d;
}

void Deployments::QueueValidation(const std::string& deployment_id, const std::string& version) {
  validating_.fetch_add(1);
  bool queued = validators_.Submit([this, deployment_id, version] {
    if (!shutting_down_) Validate(deployment_id, version);
    validating_.fetch_sub(1);
  });
  if (!queued) validating_.fetch_sub(1);
}

Result<std::shared_ptr<runtime::LoadedModel>> Deployments::LoadVersion(
    const store::DeploymentVersion& v) {
  ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(v.blob_sha256));
  return runtime::LoadedModel::Load(bytes, v.framework);
}

void Deployments::Validate(const std::string& deployment_id, const std::string& version) {
  int64_t t0 = MonotonicNanos();
  auto v = store_->GetVersion(deployment_id, version);
  if (!v.ok()) return;  // deleted meanwhile
  auto model = LoadVersion(*v);
  std::lock_guard lock(version_mu_);
  auto d = store_->GetDeployment(deployment_id);
  if (!d.ok()) return;
  int64_t now = NowUnixMicros();
  store::DeploymentVersion nv = *v;
  store::Deployment nd = *d;
  if (model.ok()) {
    nv.status = store::kStatusActive;
    nv.model_type = (*model)->model_type();
    nv.metadata_json = (*model)->MetadataJson();
    nd.status = store::kStatusActive;
    nd.error_message.clear();
    nd.current_version = version;
    nd.framework = nv.framework;
    nd.model_type = nv.model_type;
    nd.metadata_json = nv.metadata_json;
    nd.size_bytes = nv.size_bytes;
    cache_->Put(deployment_id + "@" + version, *model);
  } else {
    nv.status = store::kStatusFailed;
    nv.error_message = model.status().message();
    if (nd.current_version.empty()) {
      nd.status = store::kStatusFailed;
      nd.error_message = nv.error_message;
    }
  }
  nd.updated_at = now;
  // Version first: a deployment never points at a version that is not active.
  Status s1 = store_->UpdateVersion(nv);
  Status s2 = s1.ok() ? store_->UpdateDeployment(nd) : s1;
  if (!s2.ok()) {
    LOG_ERROR("could not record validation result").Str("deployment_id", deployment_id)
        .Str("error", s2.ToString());
    return;
  }
  SetDirEntry(nd);
  auto line = LOG_INFO("validated model");
  line.Str("deployment_id", deployment_id).Str("version", version).Str("status", nv.status)
      .Num("ms", static_cast<double>(MonotonicNanos() - t0) / 1e6);
  if (!model.ok()) line.Str("error", nv.error_message);
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
  for (const auto& v : versions) {
    auto referenced = store_->BlobReferenced(v.blob_sha256);
    if (referenced.ok() && !*referenced) (void)blobs_->Remove(v.blob_sha256);
  }
  return Status::Ok();
}

Result<store::DeploymentVersion> Deployments::AddVersion(const std::string& user_id,
                                                         const std::string& id, Upload upload) {
  std::lock_guard lock(version_mu_);
  ASSIGN_OR_RETURN(store::Deployment d, Get(user_id, id));
  ASSIGN_OR_RETURN(auto versions, store_->ListVersions(id));
  std::string version = "v" + std::to_string(versions.size() + 1);
  ASSIGN_OR_RETURN(store::DeploymentVersion v, StoreVersion(id, version, std::move(upload)));
  RETURN_IF_ERROR(store_->AddVersion(v));
  if (d.current_version.empty()) {
    d.status = store::kStatusValidating;
    d.error_message.clear();
    d.updated_at = NowUnixMicros();
    RETURN_IF_ERROR(store_->UpdateDeployment(d));
    SetDirEntry(d);
  }
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
  d.current_version = version;
  d.status = store::kStatusActive;
  d.error_message.clear();
  d.model_type = v->model_type;
  d.metadata_json = v->metadata_json;
  d.framework = v->framework;
  d.size_bytes = v->size_bytes;
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
  Principal owner;
  owner.user_id = user_id;
  ASSIGN_OR_RETURN(ServingHandle h, Resolve(&owner, id, /*load_if_needed=*/true));
  return h.model->converted_onnx();
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
