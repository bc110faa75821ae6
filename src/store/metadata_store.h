// MetadataStore: users, API keys, deployments and their versions. One interface, one
// folder per implementation (sqlite/ now, postgres/ later).
//
// Thread safety: every method may be called from any thread concurrently.
// Errors: NotFound when a row does not exist, Conflict on a uniqueness violation,
// Unavailable when the disk is full or the database is locked past its timeout,
// Internal otherwise. Times are Unix microseconds (UTC).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace serveml::store {

struct User {
  std::string id;        // uuid
  std::string email;     // unique, stored lower-cased
  std::string username;  // unique
  std::string full_name;
  std::string password_hash;  // Argon2id encoded string (libsodium crypto_pwhash_str)
  int64_t created_at = 0;
  // Session tokens carry it; only tokens of the current generation are accepted.
  int64_t token_generation = 0;
};

struct ApiKey {
  std::string id;  // uuid
  std::string user_id;
  std::string name;
  std::string prefix;    // first characters of the key, shown in listings ("sk-AbCd")
  std::string key_hash;  // hex sha256 of the full key; unique
  std::string scopes;    // space-separated, e.g. "predict" or "predict manage"
  int64_t created_at = 0;
  int64_t last_used_at = 0;  // 0 = never
  bool revoked = false;
};

// Deployment status values.
inline constexpr const char* kStatusValidating = "validating";
inline constexpr const char* kStatusActive = "active";
inline constexpr const char* kStatusFailed = "failed";

struct Deployment {
  std::string id;  // uuid
  std::string user_id;
  std::string name;
  std::string status;         // validating | active | failed
  std::string error_message;  // why it failed (empty otherwise)
  std::string framework;      // "onnx", "sklearn", ...
  std::string model_type;     // e.g. "LogisticRegression" or the ONNX graph name
  int64_t size_bytes = 0;
  std::string current_version;  // "v1"...; the version predictions use
  std::string metadata_json;    // model metadata JSON object (inputs, outputs, classes...)
  // Configuration
  int64_t memory_mb = 512;
  int64_t timeout_seconds = 30;
  int64_t min_instances = 0;
  int64_t max_instances = 4;
  bool is_public = false;
  std::string requirements;  // requirements.txt contents, recorded only
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct DeploymentVersion {
  std::string deployment_id;
  std::string version;      // "v1", "v2", ...
  std::string blob_sha256;  // artifact in the BlobStore
  int64_t size_bytes = 0;
  std::string status;  // validating | active | failed
  std::string error_message;
  std::string framework;
  std::string model_type;
  std::string metadata_json;
  std::string filename;  // original upload name
  int64_t created_at = 0;
  // The ONNX the isolated importer produced from the upload (for ONNX uploads the upload
  // itself): the only bytes the server ever loads for this version. Empty until validated
  // (and on versions stored before this column existed, until they are converted).
  std::string onnx_sha256;
  int64_t onnx_size_bytes = 0;
  // How many times validation of this version was started. A version found `validating`
  // at start with attempts >= 2 was interrupted twice and is failed instead of retried.
  int64_t validation_attempts = 0;
};

// A multi-row change of deployment state, applied in one transaction: all of it or none.
// Order: create_deployment, add_versions, update_versions, update_deployment.
struct StateChange {
  std::optional<Deployment> create_deployment;
  std::vector<DeploymentVersion> add_versions;
  std::vector<DeploymentVersion> update_versions;
  std::optional<Deployment> update_deployment;  // overwrites every mutable column
};

// What one user stores (quotas).
struct UserUsage {
  int64_t deployments = 0;
  int64_t versions = 0;      // over all of the user's deployments
  int64_t stored_bytes = 0;  // uploads plus converted ONNX, over all versions
};

struct DeploymentFilter {
  std::string user_id;    // required: listings are always per owner
  std::string status;     // optional exact match
  std::string framework;  // optional exact match
  std::string search;     // optional case-insensitive substring of name or id
  int64_t limit = 20;     // 1..100
  int64_t offset = 0;
};

inline constexpr int64_t kMaxDeploymentPageSize = 100;

// --- Per-deployment metrics (written by platform/metrics, see 0002_metrics.sql) ---------

// The four aggregate tables. Rows of one resolution start at multiples of its length.
enum class MetricsResolution { kMinute = 0, kFiveMinutes = 1, kHour = 2, kDay = 3 };

// Length of one bucket of `r` in seconds (60, 300, 3600, 86400).
constexpr int64_t MetricsBucketSeconds(MetricsResolution r) {
  switch (r) {
    case MetricsResolution::kMinute:
      return 60;
    case MetricsResolution::kFiveMinutes:
      return 300;
    case MetricsResolution::kHour:
      return 3600;
    case MetricsResolution::kDay:
      return 86400;
  }
  return 60;
}

// Short name of `r` ("1m", "5m", "1h", "1d"): the API's resolution parameter and the key
// the store records roll-up progress under.
constexpr const char* MetricsResolutionName(MetricsResolution r) {
  switch (r) {
    case MetricsResolution::kMinute:
      return "1m";
    case MetricsResolution::kFiveMinutes:
      return "5m";
    case MetricsResolution::kHour:
      return "1h";
    case MetricsResolution::kDay:
      return "1d";
  }
  return "1m";
}

// One aggregate row: what the predictions of one deployment in one time bucket did. The
// histogram and caller blobs are encoded by platform/metrics and opaque to the store.
struct MetricsRow {
  std::string deployment_id;
  int64_t bucket_start = 0;  // Unix seconds (UTC), a multiple of the bucket length
  int64_t request_count = 0;
  int64_t error_count = 0;
  int64_t row_count = 0;  // sum of batch sizes
  int64_t cold_starts = 0;
  int64_t latency_sum_ns = 0;  // sum of request latencies, nanoseconds
  std::string histogram;       // encoded latency histogram
  std::string callers;         // encoded set of caller hashes
};

// All-time counters of one deployment (kept beside the rows so retention never lowers them).
struct MetricsTotals {
  int64_t request_count = 0;
  int64_t error_count = 0;
  int64_t row_count = 0;
  int64_t cold_starts = 0;
  int64_t latency_sum_ns = 0;
};

// The filter a store actually applies: limit clamped to 1..kMaxDeploymentPageSize, offset
// to >= 0. Stores call it themselves; the API layer may call it to echo the effective page.
inline DeploymentFilter NormalizeDeploymentFilter(DeploymentFilter f) {
  if (f.limit < 1) f.limit = 1;
  if (f.limit > kMaxDeploymentPageSize) f.limit = kMaxDeploymentPageSize;
  if (f.offset < 0) f.offset = 0;
  return f;
}

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Users. The email is stored lower-cased; usernames are unique regardless of case.
  // In every Create*/Add*, a created_at of 0 means "now".
  virtual Status CreateUser(const User& user) = 0;
  virtual Result<User> GetUserById(const std::string& id) = 0;
  virtual Result<User> GetUserByEmail(const std::string& email_lower) = 0;
  // Increments the user's token generation (revoking every session token issued before)
  // and, if given, replaces the password hash, in one statement. Returns the new
  // generation. NotFound for an unknown user.
  virtual Result<int64_t> RevokeTokens(const std::string& user_id,
                                       const std::optional<std::string>& new_password_hash) = 0;

  // API keys
  virtual Status CreateApiKey(const ApiKey& key) = 0;
  virtual Result<ApiKey> GetApiKeyByHash(const std::string& key_hash) = 0;
  // Newest first, revoked keys included.
  virtual Result<std::vector<ApiKey>> ListApiKeys(const std::string& user_id) = 0;
  // Marks revoked. NotFound unless the key exists and belongs to user_id.
  virtual Status RevokeApiKey(const std::string& user_id, const std::string& key_id) = 0;
  virtual Status TouchApiKey(const std::string& key_id, int64_t used_at) = 0;

  // Deployments
  virtual Status CreateDeployment(const Deployment& d) = 0;
  virtual Result<Deployment> GetDeployment(const std::string& id) = 0;
  // Items of one page and the total matching count.
  virtual Result<std::pair<std::vector<Deployment>, int64_t>> ListDeployments(
      const DeploymentFilter& filter) = 0;
  // Overwrites every mutable column of the row with `d` (matched by id).
  virtual Status UpdateDeployment(const Deployment& d) = 0;
  // Deletes the deployment and its versions.
  virtual Status DeleteDeployment(const std::string& id) = 0;
  // Every deployment in any of the given statuses (startup recovery, warm-up); several
  // statuses may be given comma-separated ("validating,active"). Oldest first.
  virtual Result<std::vector<Deployment>> ListDeploymentsByStatus(const std::string& status) = 0;
  virtual Result<int64_t> CountDeployments(const std::string& user_id) = 0;

  // Versions
  virtual Status AddVersion(const DeploymentVersion& v) = 0;
  virtual Status UpdateVersion(const DeploymentVersion& v) = 0;
  virtual Result<DeploymentVersion> GetVersion(const std::string& deployment_id,
                                               const std::string& version) = 0;
  // Oldest first.
  virtual Result<std::vector<DeploymentVersion>> ListVersions(const std::string& deployment_id) = 0;
  // True if any version of any deployment references this blob (as its upload or as its
  // converted ONNX).
  virtual Result<bool> BlobReferenced(const std::string& sha256) = 0;
  // Applies `change` in one transaction. Errors as the single-row methods; on any error
  // nothing of it is stored.
  virtual Status Apply(const StateChange& change) = 0;
  // Counts of what `user_id` stores (zeros for an unknown user).
  virtual Result<UserUsage> GetUserUsage(const std::string& user_id) = 0;

  // Metrics. Rows and totals are deleted with their deployment. Implementations that do not
  // keep metrics answer Unsupported (the defaults below).
  //
  // Rows of resolution `r` with from <= bucket_start < to, for one deployment or (empty id)
  // for all, ordered by bucket_start then deployment_id.
  virtual Result<std::vector<MetricsRow>> ListMetrics(MetricsResolution r,
                                                      const std::string& deployment_id,
                                                      int64_t from, int64_t to);
  // In one transaction: replaces the rows of `r` with the same (deployment_id, bucket_start)
  // by `rows`, adds each of `totals_delta` (bucket_start and blobs ignored) to its
  // deployment's totals, and, if given, records that `r` is rolled up until
  // `rolled_up_until`. Rows and deltas of deployments that no longer exist are skipped.
  virtual Status WriteMetrics(MetricsResolution r, const std::vector<MetricsRow>& rows,
                              const std::vector<MetricsRow>& totals_delta,
                              std::optional<int64_t> rolled_up_until);
  // The last `rolled_up_until` recorded for `r`; nullopt if none yet.
  virtual Result<std::optional<int64_t>> GetMetricsWatermark(MetricsResolution r);
  // Totals of one deployment (zeros if it has none).
  virtual Result<MetricsTotals> GetMetricsTotals(const std::string& deployment_id);
  // Sum of request_count over the totals of every deployment of `user_id`.
  virtual Result<int64_t> SumUserRequests(const std::string& user_id);
  // Deletes rows of `r` with bucket_start < before; returns how many.
  virtual Result<int64_t> DeleteMetricsBefore(MetricsResolution r, int64_t before);
};

inline Result<std::vector<MetricsRow>> MetadataStore::ListMetrics(MetricsResolution,
                                                                  const std::string&, int64_t,
                                                                  int64_t) {
  return Unsupported("this metadata store does not keep metrics");
}
inline Status MetadataStore::WriteMetrics(MetricsResolution, const std::vector<MetricsRow>&,
                                          const std::vector<MetricsRow>&, std::optional<int64_t>) {
  return Unsupported("this metadata store does not keep metrics");
}
inline Result<std::optional<int64_t>> MetadataStore::GetMetricsWatermark(MetricsResolution) {
  return Unsupported("this metadata store does not keep metrics");
}
inline Result<MetricsTotals> MetadataStore::GetMetricsTotals(const std::string&) {
  return Unsupported("this metadata store does not keep metrics");
}
inline Result<int64_t> MetadataStore::SumUserRequests(const std::string&) {
  return Unsupported("this metadata store does not keep metrics");
}
inline Result<int64_t> MetadataStore::DeleteMetricsBefore(MetricsResolution, int64_t) {
  return Unsupported("this metadata store does not keep metrics");
}

// Opens (creating if needed) the SQLite database at `path` in WAL mode and applies the
// pending migrations from src/store/sqlite/migrations (compiled in).
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path);

}  // namespace serveml::store
