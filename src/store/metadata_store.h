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
  std::string id;             // uuid
  std::string email;          // unique, stored lower-cased
  std::string username;       // unique
  std::string full_name;
  std::string password_hash;  // Argon2id encoded string (libsodium crypto_pwhash_str)
  int64_t created_at = 0;
};

struct ApiKey {
  std::string id;          // uuid
  std::string user_id;
  std::string name;
  std::string prefix;      // first characters of the key, shown in listings ("sk-AbCd")
  std::string key_hash;    // hex sha256 of the full key; unique
  std::string scopes;      // space-separated, e.g. "predict" or "predict manage"
  int64_t created_at = 0;
  int64_t last_used_at = 0;  // 0 = never
  bool revoked = false;
};

// Deployment status values.
inline constexpr const char* kStatusValidating = "validating";
inline constexpr const char* kStatusActive = "active";
inline constexpr const char* kStatusFailed = "failed";

struct Deployment {
  std::string id;            // uuid
  std::string user_id;
  std::string name;
  std::string status;        // validating | active | failed
  std::string error_message; // why it failed (empty otherwise)
  std::string framework;     // "onnx", "sklearn", ...
  std::string model_type;    // e.g. "LogisticRegression" or the ONNX graph name
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
  std::string version;        // "v1", "v2", ...
  std::string blob_sha256;    // artifact in the BlobStore
  int64_t size_bytes = 0;
  std::string status;         // validating | active | failed
  std::string error_message;
  std::string framework;
  std::string model_type;
  std::string metadata_json;
  std::string filename;       // original upload name
  int64_t created_at = 0;
};

struct DeploymentFilter {
  std::string user_id;     // required: listings are always per owner
  std::string status;      // optional exact match
  std::string framework;   // optional exact match
  std::string search;      // optional case-insensitive substring of name or id
  int64_t limit = 20;      // 1..100
  int64_t offset = 0;
};

inline constexpr int64_t kMaxDeploymentPageSize = 100;

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
  // True if any version of any deployment references this blob.
  virtual Result<bool> BlobReferenced(const std::string& sha256) = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode and applies the
// pending migrations from src/store/sqlite/migrations (compiled in).
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path);

}  // namespace serveml::store
