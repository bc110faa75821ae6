// Deployments: the lifecycle of a deployed model — upload, validation, versions, rollback,
// deletion — and the in-memory directory the prediction path reads.
//
// Isolation: an uploaded file is only ever parsed by a confined child process
// (import_sandbox.h). The child's ONNX is stored as a blob of its own (the version's
// onnx_sha256) and is all the server loads afterwards: at validation, on a cold start, for
// downloads. Versions stored before that column existed are converted once through the
// child (at start, or on their first load).
//
// Crash safety: an upload's artifact is stored durably in the BlobStore (fsync + rename)
// before any row references it; every multi-row state change (create, validation result,
// new version, rollback, delete) is one store transaction; a deployment only becomes
// `active` after its version validated. At start every deployment's state is derived
// again from its versions, and versions left `validating` are validated again, once: a
// version whose validation was started twice without finishing is failed with the reason.
//
// Thread safety: all methods are thread safe. Methods marked "blocking" touch disk or the
// database and must not run on I/O threads; Resolve() is the hot path and only reads
// memory (plus a lazy model load on a cold start).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "platform/accounts.h"
#include "platform/import_sandbox.h"
#include "platform/metrics.h"
#include "runtime/loaded_model.h"
#include "runtime/model_cache.h"
#include "store/blob_store.h"
#include "store/metadata_store.h"

namespace serveml::platform {

// An uploaded model file waiting to be deployed. The temp file is consumed.
struct Upload {
  std::string temp_path;  // on the BlobStore's filesystem
  std::string filename;   // as the client named it
  uint64_t size = 0;
};

struct DeploymentConfig {
  std::optional<int64_t> memory_mb;
  std::optional<int64_t> timeout_seconds;
  std::optional<int64_t> min_instances;
  std::optional<int64_t> max_instances;
  std::optional<bool> is_public;
};

struct DeploymentPatch {
  std::optional<std::string> name;
  DeploymentConfig config;
};

// Limits of what uploads may cost: the importer child's confinement and per-user quotas.
struct DeploymentLimits {
  SandboxLimits sandbox;
  int64_t max_deployments_per_user = 100;                 // --quota-deployments
  int64_t max_versions_per_user = 1000;                   // --quota-versions (all deployments)
  int64_t max_stored_bytes_per_user = int64_t{20} << 30;  // --quota-storage-mb
  size_t max_validation_queue = 10000;  // --validate-queue (uploads waiting for the child)
};

// What the prediction path needs, resolved for one caller.
struct ServingHandle {
  std::string deployment_id;
  std::string version;
  std::shared_ptr<runtime::LoadedModel> model;
  // Where the prediction path records its outcome (lock-free); never null.
  std::shared_ptr<DeploymentMetrics> metrics;
  bool cold_start = false;
  // The deployment's configuration that bounds one prediction.
  int64_t timeout_seconds = 30;
  int64_t memory_mb = 512;
};

// Detects the framework from the file name and its first bytes: "onnx", "sklearn",
// "xgboost", "lightgbm"; InvalidInput for anything else.
Result<std::string> DetectFramework(const std::string& filename, const std::string& head);

class Deployments {
 public:
  // Pointers must outlive this object. `validate_threads` run uploads' validation.
  // `metrics` records predictions; if null, Deployments owns one with default options.
  Deployments(store::MetadataStore* store, store::BlobStore* blobs, runtime::ModelCache* cache,
              size_t validate_threads, Metrics* metrics = nullptr,
              DeploymentLimits limits = DeploymentLimits());
  ~Deployments();

  // Builds the in-memory directory from the store and re-queues deployments left
  // `validating` by a previous run. Blocking.
  Status Start();
  // Waits for running validations; queued ones stay `validating` for the next start.
  void Shutdown();

  // Stores the artifact and creates the deployment with status `validating`; validation
  // continues in the background. QuotaExceeded when the user already stores as many
  // deployments, versions or bytes as the limits allow. Blocking.
  Result<store::Deployment> Create(const std::string& user_id, const std::string& name,
                                   Upload upload, const DeploymentConfig& config,
                                   const std::string& requirements);
  // NotFound unless it exists and belongs to user_id. Blocking.
  Result<store::Deployment> Get(const std::string& user_id, const std::string& id);
  Result<std::pair<std::vector<store::Deployment>, int64_t>> List(
      const store::DeploymentFilter& filter);
  Result<store::Deployment> Patch(const std::string& user_id, const std::string& id,
                                  const DeploymentPatch& patch);
  Status Delete(const std::string& user_id, const std::string& id);
  // Uploads a new version; it becomes current once validated. Blocking.
  Result<store::DeploymentVersion> AddVersion(const std::string& user_id, const std::string& id,
                                              Upload upload);
  Result<std::vector<store::DeploymentVersion>> Versions(const std::string& user_id,
                                                         const std::string& id);
  // Makes an earlier validated version current. Blocking.
  Result<store::Deployment> Rollback(const std::string& user_id, const std::string& id,
                                     const std::string& version);
  // Reads the current artifact bytes (for downloads). Blocking.
  Result<std::string> ReadArtifact(const std::string& user_id, const std::string& id);
  // The current version as ONNX: the artifact itself for ONNX uploads, else the converted
  // graph. Blocking (may load the model).
  Result<std::string> ReadOnnx(const std::string& user_id, const std::string& id);

  // Hot path: the model to run for `caller` (nullptr = anonymous) on deployment `id`.
  // NotFound if it does not exist or is not visible to the caller; InvalidInput-style
  // errors if it is not active. With `load_if_needed` a model that is not resident is
  // loaded (a cold start, blocking); without it the handle comes back with model ==
  // nullptr so the caller can retry off the I/O thread.
  Result<ServingHandle> Resolve(const Principal* caller, const std::string& id,
                                bool load_if_needed);

  // All-time prediction totals of one deployment (persisted plus not yet flushed). Blocking.
  Result<store::MetricsTotals> MetricsTotals(const std::string& id);
  // All-time prediction requests over a user's current deployments. Blocking.
  Result<int64_t> TotalPredictions(const std::string& user_id);
  Metrics* metrics() const { return metrics_; }
  // Number of deployments waiting for or in validation.
  int64_t validating() const { return validating_.load(); }
  // What `user_id` stores, and the limits (for QUOTA_EXCEEDED details). Blocking.
  Result<store::UserUsage> Usage(const std::string& user_id);
  const DeploymentLimits& limits() const { return limits_; }

 private:
  struct DirEntry {
    std::string user_id;
    std::string status;
    std::string current_version;
    std::string error_message;
    bool is_public = false;
    int64_t min_instances = 0;
    int64_t timeout_seconds = 30;
    int64_t memory_mb = 512;
    std::shared_ptr<DeploymentMetrics> metrics;
  };

  // What the importer child made of one version's upload.
  struct Converted {
    std::string onnx_sha256;
    int64_t onnx_size_bytes = 0;
    std::string model_type;
    std::string metadata_json;
    std::vector<std::string> feature_names;
  };

  Result<store::DeploymentVersion> StoreVersion(const std::string& deployment_id,
                                                const std::string& version, Upload upload);
  Status CheckQuota(const std::string& user_id, int64_t new_deployments, int64_t new_bytes);
  // Unavailable when --validate-queue uploads already wait for the importer child: a new
  // upload is refused before anything is stored (the client retries), rather than stored
  // and left `validating` until the next start.
  Status CheckValidationQueue() const;
  void QueueValidation(const std::string& deployment_id, const std::string& version);
  void Validate(const std::string& deployment_id, const std::string& version);
  // Runs the version's upload through the importer child and stores its ONNX. Blocking.
  Result<Converted> Convert(const store::DeploymentVersion& v);
  // Converts an active version stored before onnx_sha256 existed and records the result.
  Result<store::DeploymentVersion> ConvertLegacy(const std::string& deployment_id,
                                                 const std::string& version);
  Result<std::shared_ptr<runtime::LoadedModel>> LoadVersion(const store::DeploymentVersion& v);
  void SetDirEntry(const store::Deployment& d);
  // Removes blobs no version references any more (under blob_mu_).
  void RemoveUnreferenced(const std::vector<std::string>& shas);

  store::MetadataStore* store_;
  store::BlobStore* blobs_;
  const DeploymentLimits limits_;
  runtime::ModelCache* cache_;
  std::unique_ptr<Metrics> owned_metrics_;
  Metrics* metrics_;
  ThreadPool validators_;
  std::atomic<int64_t> validating_{0};
  std::atomic<bool> shutting_down_{false};

  mutable std::shared_mutex dir_mu_;
  std::unordered_map<std::string, DirEntry> dir_;

  std::mutex version_mu_;  // serializes version number allocation and status changes
  // Serializes "store a blob and reference it" against "find a blob unreferenced and remove
  // it", so a delete never removes bytes another upload just started to use.
  std::mutex blob_mu_;
};

}  // namespace serveml::platform
