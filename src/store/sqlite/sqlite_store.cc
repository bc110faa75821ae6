// SQLite MetadataStore.
//
// Connections: one writer connection guarded by a mutex (SQLite allows one writer at a time
// anyway, so serializing writes in-process costs nothing and avoids SQLITE_BUSY between our
// own connections), plus a pool of read connections. In WAL mode readers never block the
// writer and the writer never blocks readers, so reads run in parallel with each other and
// with a write. Every connection is used by one thread at a time (opened NOMUTEX) and keeps
// its own cache of prepared statements.
#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "store/sqlite/migrations.h"

namespace serveml::store {
namespace {

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Human message for a uniqueness violation, naming the field ("email already registered").
std::string UniqueMessage(std::string_view errmsg) {
  static const std::pair<std::string_view, std::string_view> kFields[] = {
      {"users.email", "email already registered"},
      {"users.username", "username already taken"},
      {"users.id", "user id already exists"},
      {"api_keys.key_hash", "api key already exists"},
      {"api_keys.id", "api key id already exists"},
      {"deployments.id", "deployment id already exists"},
      {"deployment_versions.deployment_id", "version already exists for this deployment"},
  };
  for (const auto& [field, message] : kFields) {
    if (errmsg.find(field) != std::string_view::npos) return std::string(message);
  }
  return std::string(errmsg);
}

// Maps a SQLite result code to a Status. `fk_message` is the NotFound message used when a
// foreign key is violated (the referenced row does not exist).
Status FromSqlite(int rc, sqlite3* db, std::string_view context,
                  std::string_view fk_message = "referenced row does not exist") {
  const int primary = rc & 0xff;
  std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string where = std::string(context) + ": " + msg;
  switch (primary) {
    case SQLITE_FULL:
      return Unavailable("disk full: " + where);
    case SQLITE_IOERR:
      return Unavailable("disk I/O error (disk full or failing?): " + where);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable("database is busy (locked past the timeout): " + where);
    case SQLITE_NOMEM:
      return Unavailable("out of memory: " + where);
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return Unavailable("database not writable: " + where);
    case SQLITE_CONSTRAINT:
      switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
          return Conflict(UniqueMessage(msg));
        case SQLITE_CONSTRAINT_FOREIGNKEY:
          return NotFound(std::string(fk_message));
        default:
          return InvalidInput("invalid value: " + where);
      }
    default:
      return Internal("sqlite: " + where);
  }
}

// A prepared statement borrowed from a connection's cache; reset and unbound on scope exit.
// Text is bound with SQLITE_TRANSIENT (copied), so temporaries are safe to bind.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    if (s_ == nullptr) return;
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(std::exchange(o.s_, nullptr)), bind_rc_(o.bind_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;

  // Parameters are 1-based.
  Stmt& Text(int i, std::string_view v) {
    Check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    Check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& Bool(int i, bool v) { return Int(i, v ? 1 : 0); }
  Stmt& Blob(int i, std::string_view v) {
    // A zero-length blob must still bind as a BLOB (not NULL) for the NOT NULL columns.
    Check(sqlite3_bind_blob64(s_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_TRANSIENT));
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(s_);
  }
  // Runs a statement that returns no rows.
  Status Exec(std::string_view context,
              std::string_view fk_message = "referenced row does not exist") {
    int rc = Step();
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::Ok();
    return FromSqlite(rc, db_, context, fk_message);
  }

  // Columns are 0-based. NULL reads as "" / 0.
  std::string ColText(int c) const {
    const unsigned char* p = sqlite3_column_text(s_, c);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(s_, c)));
  }
  int64_t ColInt(int c) const { return sqlite3_column_int64(s_, c); }
  bool ColBool(int c) const { return sqlite3_column_int64(s_, c) != 0; }
  std::string ColBlob(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    if (p == nullptr) return {};
    return std::string(static_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(s_, c)));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
  int bind_rc_ = SQLITE_OK;
};

// One sqlite3 handle and its prepared-statement cache. Not thread safe: used by one
// thread at a time (the writer under the store's mutex, readers leased from the pool).
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const std::string& path,
                                                  const SqliteStoreOptions& options, bool writer) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<Connection>(new Connection(db));  // closes db on failure too
    if (rc != SQLITE_OK) return FromSqlite(rc, db, "open " + path);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, options.busy_timeout_ms);
    // Durability: synchronous=FULL. In WAL mode NORMAL is already crash-safe against a
    // process crash and keeps the database consistent on power loss, but the last commits
    // before an OS crash or power cut may roll back. A deployment row we acknowledged to the
    // user (and whose blob we fsynced) must survive that too, so every commit fsyncs the WAL.
    // Metadata writes are rare (register, deploy, status changes; never per prediction), so
    // the extra fsync per commit is not on any hot path.
    std::string pragmas =
        "PRAGMA foreign_keys=ON;"
        "PRAGMA synchronous=FULL;"
        "PRAGMA temp_store=MEMORY;";
    if (writer) {
      pragmas += "PRAGMA journal_mode=WAL;PRAGMA journal_size_limit=67108864;";
      if (options.max_page_count > 0) {
        pragmas += "PRAGMA max_page_count=" + std::to_string(options.max_page_count) + ";";
      }
    } else {
      pragmas += "PRAGMA query_only=ON;";  // readers can never write, by construction
    }
    RETURN_IF_ERROR(conn->ExecScript(pragmas, "configure connection"));
    if (writer) {
      ASSIGN_OR_RETURN(std::string mode, conn->QueryText("PRAGMA journal_mode"));
      if (AsciiLower(mode) != "wal") {
        return Unavailable("could not enable WAL mode on " + path + " (journal_mode=" + mode + ")");
      }
    }
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  sqlite3* db() const { return db_; }

  // A cached prepared statement for `sql` (prepared on first use).
  Result<sqlite3_stmt*> PrepareCached(std::string_view sql) {
    std::string key(sql);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return FromSqlite(rc, db_, "prepare");
    cache_.emplace(std::move(key), stmt);
    return stmt;
  }

  // Runs one or more statements without results (pragmas, BEGIN/COMMIT, migrations).
  Status ExecScript(const std::string& sql, std::string_view context) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return FromSqlite(rc, db_, context);
    return Status::Ok();
  }

  Result<std::string> QueryText(const std::string& sql) {
    ASSIGN_OR_RETURN(sqlite3_stmt * s, PrepareCached(sql));
    Stmt st(db_, s);
    int rc = st.Step();
    if (rc != SQLITE_ROW) return FromSqlite(rc, db_, sql);
    return st.ColText(0);
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// Explicit transaction; rolls back unless Commit() succeeded.
class Txn {
 public:
  Txn(Connection* c) : c_(c) {}
  ~Txn() {
    if (active_) (void)c_->ExecScript("ROLLBACK", "rollback");
  }
  // IMMEDIATE takes the write lock up front (no deadlock-prone read-to-write upgrade);
  // DEFERRED (for readers) pins one snapshot for several statements.
  Status Begin(bool immediate) {
    RETURN_IF_ERROR(c_->ExecScript(immediate ? "BEGIN IMMEDIATE" : "BEGIN", "begin"));
    active_ = true;
    return Status::Ok();
  }
  Status Commit() {
    RETURN_IF_ERROR(c_->ExecScript("COMMIT", "commit"));
    active_ = false;
    return Status::Ok();
  }

 private:
  Connection* c_;
  bool active_ = false;
};

// --- SQL -------------------------------------------------------------------------------

constexpr std::string_view kUserColumns =
    "id, email, username, full_name, password_hash, created_at, token_generation";
constexpr std::string_view kApiKeyColumns =
    "id, user_id, name, prefix, key_hash, scopes, created_at, last_used_at, revoked";
constexpr std::string_view kDeploymentColumns =
    "id, user_id, name, status, error_message, framework, model_type, size_bytes, "
    "current_version, metadata_json, memory_mb, timeout_seconds, min_instances, "
    "max_instances, is_public, requirements, created_at, updated_at";
constexpr std::string_view kVersionColumns =
    "deployment_id, version, blob_sha256, size_bytes, status, error_message, framework, "
    "model_type, metadata_json, filename, created_at, onnx_sha256, onnx_size_bytes, "
    "validation_attempts";

std::string Sql(std::string_view a, std::string_view b = {}, std::string_view c = {}) {
  std::string s(a);
  s += b;
  s += c;
  return s;
}

User ReadUser(const Stmt& s) {
  User u;
  u.id = s.ColText(0);
  u.email = s.ColText(1);
  u.username = s.ColText(2);
  u.full_name = s.ColText(3);
  u.password_hash = s.ColText(4);
  u.created_at = s.ColInt(5);
  u.token_generation = s.ColInt(6);
  return u;
}

ApiKey ReadApiKey(const Stmt& s) {
  ApiKey k;
  k.id = s.ColText(0);
  k.user_id = s.ColText(1);
  k.name = s.ColText(2);
  k.prefix = s.ColText(3);
  k.key_hash = s.ColText(4);
  k.scopes = s.ColText(5);
  k.created_at = s.ColInt(6);
  k.last_used_at = s.ColInt(7);
  k.revoked = s.ColBool(8);
  return k;
}

Deployment ReadDeployment(const Stmt& s) {
  Deployment d;
  d.id = s.ColText(0);
  d.user_id = s.ColText(1);
  d.name = s.ColText(2);
  d.status = s.ColText(3);
  d.error_message = s.ColText(4);
  d.framework = s.ColText(5);
  d.model_type = s.ColText(6);
  d.size_bytes = s.ColInt(7);
  d.current_version = s.ColText(8);
  d.metadata_json = s.ColText(9);
  d.memory_mb = s.ColInt(10);
  d.timeout_seconds = s.ColInt(11);
  d.min_instances = s.ColInt(12);
  d.max_instances = s.ColInt(13);
  d.is_public = s.ColBool(14);
  d.requirements = s.ColText(15);
  d.created_at = s.ColInt(16);
  d.updated_at = s.ColInt(17);
  return d;
}

DeploymentVersion ReadVersion(const Stmt& s) {
  DeploymentVersion v;
  v.deployment_id = s.ColText(0);
  v.version = s.ColText(1);
  v.blob_sha256 = s.ColText(2);
  v.size_bytes = s.ColInt(3);
  v.status = s.ColText(4);
  v.error_message = s.ColText(5);
  v.framework = s.ColText(6);
  v.model_type = s.ColText(7);
  v.metadata_json = s.ColText(8);
  v.filename = s.ColText(9);
  v.created_at = s.ColInt(10);
  v.onnx_sha256 = s.ColText(11);
  v.onnx_size_bytes = s.ColInt(12);
  v.validation_attempts = s.ColInt(13);
  return v;
}

int64_t OrNow(int64_t t) { return t != 0 ? t : NowUnixMicros(); }

// Metrics tables by resolution (see 0002_metrics.sql).
const char* MetricsTable(MetricsResolution r) {
  switch (r) {
    case MetricsResolution::kMinute:
      return "metrics_minute";
    case MetricsResolution::kFiveMinutes:
      return "metrics_5m";
    case MetricsResolution::kHour:
      return "metrics_hour";
    case MetricsResolution::kDay:
      return "metrics_day";
  }
  return "metrics_minute";
}
constexpr std::string_view kMetricsColumns =
    "deployment_id, bucket_start, request_count, error_count, row_count, cold_starts, "
    "latency_sum_ns, histogram, callers";

MetricsRow ReadMetricsRow(const Stmt& s) {
  MetricsRow r;
  r.deployment_id = s.ColText(0);
  r.bucket_start = s.ColInt(1);
  r.request_count = s.ColInt(2);
  r.error_count = s.ColInt(3);
  r.row_count = s.ColInt(4);
  r.cold_starts = s.ColInt(5);
  r.latency_sum_ns = s.ColInt(6);
  r.histogram = s.ColBlob(7);
  r.callers = s.ColBlob(8);
  return r;
}

// --- The store -------------------------------------------------------------------------

class SqliteStore final : public MetadataStore {
 public:
  SqliteStore(std::string path, SqliteStoreOptions options, std::unique_ptr<Connection> writer)
      : path_(std::move(path)), options_(options), writer_(std::move(writer)) {}

  Status Migrate();

  // Users -------------------------------------------------------------------------------
  Status CreateUser(const User& user) override {
    static const std::string kSql =
        Sql("INSERT INTO users (", kUserColumns, ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    return Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
      s.Text(1, user.id)
          .Text(2, AsciiLower(user.email))
          .Text(3, user.username)
          .Text(4, user.full_name)
          .Text(5, user.password_hash)
          .Int(6, OrNow(user.created_at))
          .Int(7, user.token_generation);
      return s.Exec("create user");
    });
  }

  Result<User> GetUserById(const std::string& id) override {
    static const std::string kSql = Sql("SELECT ", kUserColumns, " FROM users WHERE id = ?1");
    return ReadOne<User>(kSql, id, ReadUser, "user not found");
  }

  Result<User> GetUserByEmail(const std::string& email_lower) override {
    static const std::string kSql = Sql("SELECT ", kUserColumns, " FROM users WHERE email = ?1");
    return ReadOne<User>(kSql, AsciiLower(email_lower), ReadUser, "user not found");
  }

  Result<int64_t> RevokeTokens(const std::string& user_id,
                               const std::optional<std::string>& new_password_hash) override {
    static const std::string kSql =
        "UPDATE users SET token_generation = token_generation + 1, "
        "password_hash = CASE WHEN ?2 = 1 THEN ?3 ELSE password_hash END "
        "WHERE id = ?1 RETURNING token_generation";
    int64_t gen = 0;
    Status st = Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
      s.Text(1, user_id)
          .Bool(2, new_password_hash.has_value())
          .Text(3, new_password_hash.value_or(""));
      int rc = s.Step();
      if (rc == SQLITE_DONE) return NotFound("user not found");
      if (rc != SQLITE_ROW) return FromSqlite(rc, c.db(), "revoke tokens");
      gen = s.ColInt(0);
      while ((rc = s.Step()) == SQLITE_ROW) {
      }
      if (rc != SQLITE_DONE) return FromSqlite(rc, c.db(), "revoke tokens");
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return gen;
  }

  // API keys ----------------------------------------------------------------------------
  Status CreateApiKey(const ApiKey& key) override {
    static const std::string kSql = Sql("INSERT INTO api_keys (", kApiKeyColumns,
                                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    return Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
      s.Text(1, key.id)
          .Text(2, key.user_id)
          .Text(3, key.name)
          .Text(4, key.prefix)
          .Text(5, key.key_hash)
          .Text(6, key.scopes)
          .Int(7, OrNow(key.created_at))
          .Int(8, key.last_used_at)
          .Bool(9, key.revoked);
      return s.Exec("create api key", "user not found");
    });
  }

  Result<ApiKey> GetApiKeyByHash(const std::string& key_hash) override {
    static const std::string kSql =
        Sql("SELECT ", kApiKeyColumns, " FROM api_keys WHERE key_hash = ?1");
    return ReadOne<ApiKey>(kSql, key_hash, ReadApiKey, "api key not found");
  }

  Result<std::vector<ApiKey>> ListApiKeys(const std::string& user_id) override {
    static const std::string kSql = Sql("SELECT ", kApiKeyColumns,
                                        " FROM api_keys WHERE user_id = ?1 "
                                        "ORDER BY created_at DESC, id DESC");
    return ReadMany<ApiKey>(kSql, user_id, ReadApiKey);
  }

  Status RevokeApiKey(const std::string& user_id, const std::string& key_id) override {
    static const std::string kSql =
        "UPDATE api_keys SET revoked = 1 WHERE id = ?1 AND user_id = ?2";
    return Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
      s.Text(1, key_id).Text(2, user_id);
      RETURN_IF_ERROR(s.Exec("revoke api key"));
      if (sqlite3_changes(c.db()) == 0) return NotFound("api key not found");
      return Status::Ok();
    });
  }

  Status TouchApiKey(const std::string& key_id, int64_t used_at) override {
    static const std::string kSql = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1";
    return Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
      s.Text(1, key_id).Int(2, used_at);
      RETURN_IF_ERROR(s.Exec("touch api key"));
      if (sqlite3_changes(c.db()) == 0) return NotFound("api key not found");
      return Status::Ok();
    });
  }

  // Deployments -------------------------------------------------------------------------
  Status CreateDeployment(const Deployment& d) override {
    return Write([&](Connection& c) { return InsertDeployment(c, d); });
  }

  Result<Deployment> GetDeployment(const std::string& id) override {
    static const std::string kSql =
        Sql("SELECT ", kDeploymentColumns, " FROM deployments WHERE id = ?1");
    return ReadOne<Deployment>(kSql, id, ReadDeployment, "deployment not found");
  }

  Result<std::pair<std::vector<Deployment>, int64_t>> ListDeployments(
      const DeploymentFilter& filter) override {
    // Empty optional filters match everything. The search is a case-insensitive (ASCII)
    // substring of name or id; instr() avoids LIKE's wildcard escaping.
    static const std::string kWhere =
        " FROM deployments WHERE user_id = ?1"
        " AND (?2 = '' OR status = ?2)"
        " AND (?3 = '' OR framework = ?3)"
        " AND (?4 = '' OR instr(lower(name), ?4) > 0 OR instr(lower(id), ?4) > 0)";
    static const std::string kCount = Sql("SELECT count(*)", kWhere);
    static const std::string kPage = Sql(Sql("SELECT ", kDeploymentColumns), kWhere,
                                         " ORDER BY created_at DESC, id DESC LIMIT ?5 OFFSET ?6");
    if (filter.user_id.empty()) return InvalidInput("deployment listing requires a user id");
    const DeploymentFilter f = NormalizeDeploymentFilter(filter);
    const std::string search = AsciiLower(f.search);

    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    Connection& c = *lease.conn;
    Txn txn(&c);  // one snapshot for the page and the count
    RETURN_IF_ERROR(txn.Begin(/*immediate=*/false));
    auto bind = [&](Stmt& s) {
      s.Text(1, f.user_id).Text(2, f.status).Text(3, f.framework).Text(4, search);
    };
    int64_t total = 0;
    {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kCount));
      bind(s);
      int rc = s.Step();
      if (rc != SQLITE_ROW) return FromSqlite(rc, c.db(), "count deployments");
      total = s.ColInt(0);
    }
    std::vector<Deployment> items;
    {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, kPage));
      bind(s);
      s.Int(5, f.limit).Int(6, f.offset);
      RETURN_IF_ERROR(Collect(s, c, ReadDeployment, &items, "list deployments"));
    }
    RETURN_IF_ERROR(txn.Commit());
    return std::make_pair(std::move(items), total);
  }

  Status UpdateDeployment(const Deployment& d) override {
    return Write([&](Connection& c) { return UpdateDeploymentRow(c, d); });
  }

  Status DeleteDeployment(const std::string& id) override {
    static const std::string kVersions = "DELETE FROM deployment_versions WHERE deployment_id = ?1";
    static const std::string kDeployment = "DELETE FROM deployments WHERE id = ?1";
    return Write([&](Connection& c) -> Status {
      Txn txn(&c);
      RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
      {
        ASSIGN_OR_RETURN(Stmt s, Bound(c, kVersions));
        s.Text(1, id);
        RETURN_IF_ERROR(s.Exec("delete versions"));
      }
      {
        ASSIGN_OR_RETURN(Stmt s, Bound(c, kDeployment));
        s.Text(1, id);
        RETURN_IF_ERROR(s.Exec("delete deployment"));
      }
      if (sqlite3_changes(c.db()) == 0) return NotFound("deployment not found");
      return txn.Commit();
    });
  }

  Result<std::vector<Deployment>> ListDeploymentsByStatus(const std::string& status) override {
    // `status` may name several statuses separated by commas or spaces
    // ("validating,active"). Oldest first.
    static const std::string kSql = Sql("SELECT ", kDeploymentColumns,
                                        " FROM deployments WHERE status = ?1 "
                                        "ORDER BY created_at ASC, id ASC");
    std::set<std::string> statuses;
    std::string cur;
    for (char ch : status + ",") {
      if (ch == ',' || ch == ' ') {
        if (!cur.empty()) statuses.insert(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    std::vector<Deployment> all;
    for (const std::string& st : statuses) {
      ASSIGN_OR_RETURN(std::vector<Deployment> part,
                       ReadMany<Deployment>(kSql, st, ReadDeployment));
      for (auto& d : part) all.push_back(std::move(d));
    }
    if (statuses.size() > 1) {
      std::sort(all.begin(), all.end(), [](const Deployment& a, const Deployment& b) {
        return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
      });
    }
    return all;
  }

  Result<int64_t> CountDeployments(const std::string& user_id) override {
    static const std::string kSql = "SELECT count(*) FROM deployments WHERE user_id = ?1";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, user_id);
    int rc = s.Step();
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "count deployments");
    return s.ColInt(0);
  }

  // Versions ----------------------------------------------------------------------------
  Status AddVersion(const DeploymentVersion& v) override {
    return Write([&](Connection& c) { return InsertVersion(c, v); });
  }

  Status UpdateVersion(const DeploymentVersion& v) override {
    return Write([&](Connection& c) { return UpdateVersionRow(c, v); });
  }

  Result<DeploymentVersion> GetVersion(const std::string& deployment_id,
                                       const std::string& version) override {
    static const std::string kSql =
        Sql("SELECT ", kVersionColumns,
            " FROM deployment_versions WHERE deployment_id = ?1 AND version = ?2");
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, deployment_id).Text(2, version);
    int rc = s.Step();
    if (rc == SQLITE_DONE) return NotFound("version not found");
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "get version");
    return ReadVersion(s);
  }

  Result<std::vector<DeploymentVersion>> ListVersions(const std::string& deployment_id) override {
    // Insertion order (rowid) breaks created_at ties, so "v2" sorts after "v1" and "v10"
    // after "v9" without parsing version names.
    static const std::string kSql = Sql("SELECT ", kVersionColumns,
                                        " FROM deployment_versions WHERE deployment_id = ?1 "
                                        "ORDER BY created_at ASC, rowid ASC");
    return ReadMany<DeploymentVersion>(kSql, deployment_id, ReadVersion);
  }

  Result<bool> BlobReferenced(const std::string& sha256) override {
    static const std::string kSql =
        "SELECT EXISTS (SELECT 1 FROM deployment_versions WHERE blob_sha256 = ?1) OR "
        "EXISTS (SELECT 1 FROM deployment_versions WHERE onnx_sha256 = ?1)";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, sha256);
    int rc = s.Step();
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "blob referenced");
    return s.ColInt(0) != 0;
  }

  Status Apply(const StateChange& change) override {
    return Write([&](Connection& c) -> Status {
      Txn txn(&c);
      RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
      if (change.create_deployment) RETURN_IF_ERROR(InsertDeployment(c, *change.create_deployment));
      for (const auto& v : change.add_versions) RETURN_IF_ERROR(InsertVersion(c, v));
      for (const auto& v : change.update_versions) RETURN_IF_ERROR(UpdateVersionRow(c, v));
      if (change.update_deployment) {
        RETURN_IF_ERROR(UpdateDeploymentRow(c, *change.update_deployment));
      }
      return txn.Commit();
    });
  }

  Result<UserUsage> GetUserUsage(const std::string& user_id) override {
    // A blob shared by an upload and its ONNX (ONNX uploads) counts once.
    static const std::string kSql =
        "SELECT (SELECT count(*) FROM deployments WHERE user_id = ?1), count(v.version), "
        "coalesce(sum(v.size_bytes + CASE WHEN v.onnx_sha256 = v.blob_sha256 THEN 0 "
        "ELSE v.onnx_size_bytes END), 0) "
        "FROM deployment_versions v JOIN deployments d ON d.id = v.deployment_id "
        "WHERE d.user_id = ?1";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, user_id);
    int rc = s.Step();
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "user usage");
    UserUsage u;
    u.deployments = s.ColInt(0);
    u.versions = s.ColInt(1);
    u.stored_bytes = s.ColInt(2);
    return u;
  }

  // Metrics -----------------------------------------------------------------------------
  Result<std::vector<MetricsRow>> ListMetrics(MetricsResolution r, const std::string& deployment_id,
                                              int64_t from, int64_t to) override {
    const std::string sql = Sql("SELECT ", kMetricsColumns,
                                std::string(" FROM ") + MetricsTable(r) +
                                    " WHERE bucket_start >= ?1 AND bucket_start < ?2" +
                                    (deployment_id.empty() ? "" : " AND deployment_id = ?3") +
                                    " ORDER BY bucket_start, deployment_id");
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, sql));
    s.Int(1, from).Int(2, to);
    if (!deployment_id.empty()) s.Text(3, deployment_id);
    std::vector<MetricsRow> out;
    RETURN_IF_ERROR(Collect(s, *lease.conn, ReadMetricsRow, &out, "list metrics"));
    return out;
  }

  Status WriteMetrics(MetricsResolution r, const std::vector<MetricsRow>& rows,
                      const std::vector<MetricsRow>& totals_delta,
                      std::optional<int64_t> rolled_up_until) override {
    // INSERT ... SELECT ... WHERE EXISTS skips rows of deployments deleted meanwhile
    // instead of failing the whole batch on the foreign key.
    const std::string upsert = Sql("INSERT OR REPLACE INTO ", MetricsTable(r),
                                   Sql(" (", kMetricsColumns,
                                       ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 "
                                       "WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ?1)"));
    static const std::string kTotals =
        "INSERT INTO metrics_totals (deployment_id, request_count, error_count, row_count, "
        "cold_starts, latency_sum_ns) SELECT ?1, ?2, ?3, ?4, ?5, ?6 "
        "WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ?1) "
        "ON CONFLICT (deployment_id) DO UPDATE SET "
        "request_count = request_count + excluded.request_count, "
        "error_count = error_count + excluded.error_count, "
        "row_count = row_count + excluded.row_count, "
        "cold_starts = cold_starts + excluded.cold_starts, "
        "latency_sum_ns = latency_sum_ns + excluded.latency_sum_ns";
    static const std::string kWatermark =
        "INSERT OR REPLACE INTO metrics_rollup_state (resolution, rolled_up_until) VALUES (?1, ?2)";
    return Write([&](Connection& c) -> Status {
      Txn txn(&c);
      RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
      for (const MetricsRow& row : rows) {
        ASSIGN_OR_RETURN(Stmt s, Bound(c, upsert));
        s.Text(1, row.deployment_id)
            .Int(2, row.bucket_start)
            .Int(3, row.request_count)
            .Int(4, row.error_count)
            .Int(5, row.row_count)
            .Int(6, row.cold_starts)
            .Int(7, row.latency_sum_ns)
            .Blob(8, row.histogram)
            .Blob(9, row.callers);
        RETURN_IF_ERROR(s.Exec("write metrics"));
      }
      for (const MetricsRow& d : totals_delta) {
        ASSIGN_OR_RETURN(Stmt s, Bound(c, kTotals));
        s.Text(1, d.deployment_id)
            .Int(2, d.request_count)
            .Int(3, d.error_count)
            .Int(4, d.row_count)
            .Int(5, d.cold_starts)
            .Int(6, d.latency_sum_ns);
        RETURN_IF_ERROR(s.Exec("add metrics totals"));
      }
      if (rolled_up_until) {
        ASSIGN_OR_RETURN(Stmt s, Bound(c, kWatermark));
        s.Text(1, MetricsResolutionName(r)).Int(2, *rolled_up_until);
        RETURN_IF_ERROR(s.Exec("write rollup state"));
      }
      return txn.Commit();
    });
  }

  Result<std::optional<int64_t>> GetMetricsWatermark(MetricsResolution r) override {
    static const std::string kSql =
        "SELECT rolled_up_until FROM metrics_rollup_state WHERE resolution = ?1";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, MetricsResolutionName(r));
    int rc = s.Step();
    if (rc == SQLITE_DONE) return std::optional<int64_t>();
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "read rollup state");
    return std::optional<int64_t>(s.ColInt(0));
  }

  Result<MetricsTotals> GetMetricsTotals(const std::string& deployment_id) override {
    static const std::string kSql =
        "SELECT request_count, error_count, row_count, cold_starts, latency_sum_ns "
        "FROM metrics_totals WHERE deployment_id = ?1";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, deployment_id);
    int rc = s.Step();
    MetricsTotals t;
    if (rc == SQLITE_DONE) return t;
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "read metrics totals");
    t.request_count = s.ColInt(0);
    t.error_count = s.ColInt(1);
    t.row_count = s.ColInt(2);
    t.cold_starts = s.ColInt(3);
    t.latency_sum_ns = s.ColInt(4);
    return t;
  }

  Result<int64_t> SumUserRequests(const std::string& user_id) override {
    static const std::string kSql =
        "SELECT coalesce(sum(t.request_count), 0) FROM metrics_totals t "
        "JOIN deployments d ON d.id = t.deployment_id WHERE d.user_id = ?1";
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, kSql));
    s.Text(1, user_id);
    int rc = s.Step();
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "sum user requests");
    return s.ColInt(0);
  }

  Result<int64_t> DeleteMetricsBefore(MetricsResolution r, int64_t before) override {
    const std::string sql =
        std::string("DELETE FROM ") + MetricsTable(r) + " WHERE bucket_start < ?1";
    int64_t changed = 0;
    Status st = Write([&](Connection& c) -> Status {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, sql));
      s.Int(1, before);
      RETURN_IF_ERROR(s.Exec("delete expired metrics"));
      changed = sqlite3_changes64(c.db());
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return changed;
  }

 private:
  // A read connection borrowed from the pool; returned (or closed) on destruction.
  struct Lease {
    SqliteStore* store = nullptr;
    std::unique_ptr<Connection> conn;
    Lease(SqliteStore* s, std::unique_ptr<Connection> c) : store(s), conn(std::move(c)) {}
    Lease(Lease&& o) noexcept : store(std::exchange(o.store, nullptr)), conn(std::move(o.conn)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (store != nullptr && conn != nullptr) store->ReleaseReader(std::move(conn));
    }
  };

  Result<Lease> AcquireReader() {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!idle_readers_.empty()) {
        auto c = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return Lease(this, std::move(c));
      }
    }
    ASSIGN_OR_RETURN(auto c, Connection::Open(path_, options_, /*writer=*/false));
    return Lease(this, std::move(c));
  }

  void ReleaseReader(std::unique_ptr<Connection> c) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (static_cast<int>(idle_readers_.size()) < options_.max_idle_readers) {
      idle_readers_.push_back(std::move(c));
    }
    // else: `c` closes here (under the lock; closing a reader is cheap).
  }

  template <typename Fn>
  Status Write(Fn&& fn) {
    std::lock_guard<std::mutex> lock(write_mu_);
    return fn(*writer_);
  }

  static Result<Stmt> Bound(Connection& c, const std::string& sql) {
    ASSIGN_OR_RETURN(sqlite3_stmt * s, c.PrepareCached(sql));
    return Stmt(c.db(), s);
  }

  template <typename T, typename ReadFn>
  static Status Collect(Stmt& s, Connection& c, ReadFn read, std::vector<T>* out,
                        std::string_view context) {
    for (;;) {
      int rc = s.Step();
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) return FromSqlite(rc, c.db(), context);
      out->push_back(read(s));
    }
  }

  template <typename T, typename ReadFn>
  Result<T> ReadOne(const std::string& sql, const std::string& key, ReadFn read,
                    const char* not_found) {
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, sql));
    s.Text(1, key);
    int rc = s.Step();
    if (rc == SQLITE_DONE) return NotFound(not_found);
    if (rc != SQLITE_ROW) return FromSqlite(rc, lease.conn->db(), "read");
    return read(s);
  }

  template <typename T, typename ReadFn>
  Result<std::vector<T>> ReadMany(const std::string& sql, const std::string& key, ReadFn read) {
    ASSIGN_OR_RETURN(Lease lease, AcquireReader());
    ASSIGN_OR_RETURN(Stmt s, Bound(*lease.conn, sql));
    s.Text(1, key);
    std::vector<T> out;
    RETURN_IF_ERROR(Collect(s, *lease.conn, read, &out, "list"));
    return out;
  }

  // Binds name..requirements (14 columns) starting at parameter `first`.
  static void BindDeploymentMutable(Stmt& s, const Deployment& d, int first) {
    s.Text(first + 0, d.name)
        .Text(first + 1, d.status)
        .Text(first + 2, d.error_message)
        .Text(first + 3, d.framework)
        .Text(first + 4, d.model_type)
        .Int(first + 5, d.size_bytes)
        .Text(first + 6, d.current_version)
        .Text(first + 7, d.metadata_json)
        .Int(first + 8, d.memory_mb)
        .Int(first + 9, d.timeout_seconds)
        .Int(first + 10, d.min_instances)
        .Int(first + 11, d.max_instances)
        .Bool(first + 12, d.is_public)
        .Text(first + 13, d.requirements);
  }

  // Binds blob_sha256..filename (8 columns) starting at parameter `first`.
  // Row writers shared by the single-row methods and Apply (caller holds write_mu_).
  static Status InsertDeployment(Connection& c, const Deployment& d) {
    static const std::string kSql =
        Sql("INSERT INTO deployments (", kDeploymentColumns,
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
            "?17, ?18)");
    ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
    int64_t created = OrNow(d.created_at);
    s.Text(1, d.id).Text(2, d.user_id);
    BindDeploymentMutable(s, d, 3);
    s.Int(17, created).Int(18, d.updated_at != 0 ? d.updated_at : created);
    return s.Exec("create deployment", "user not found");
  }

  static Status UpdateDeploymentRow(Connection& c, const Deployment& d) {
    static const std::string kSql =
        "UPDATE deployments SET name = ?3, status = ?4, error_message = ?5, framework = ?6, "
        "model_type = ?7, size_bytes = ?8, current_version = ?9, metadata_json = ?10, "
        "memory_mb = ?11, timeout_seconds = ?12, min_instances = ?13, max_instances = ?14, "
        "is_public = ?15, requirements = ?16, updated_at = ?17 WHERE id = ?1";
    ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
    s.Text(1, d.id);
    BindDeploymentMutable(s, d, 3);
    s.Int(17, OrNow(d.updated_at));
    RETURN_IF_ERROR(s.Exec("update deployment"));
    if (sqlite3_changes(c.db()) == 0) return NotFound("deployment not found");
    return Status::Ok();
  }

  static Status InsertVersion(Connection& c, const DeploymentVersion& v) {
    static const std::string kSql =
        Sql("INSERT INTO deployment_versions (", kVersionColumns,
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
    s.Text(1, v.deployment_id).Text(2, v.version);
    BindVersionMutable(s, v, 3);
    s.Int(11, OrNow(v.created_at));
    return s.Exec("add version", "deployment not found");
  }

  static Status UpdateVersionRow(Connection& c, const DeploymentVersion& v) {
    static const std::string kSql =
        "UPDATE deployment_versions SET blob_sha256 = ?3, size_bytes = ?4, status = ?5, "
        "error_message = ?6, framework = ?7, model_type = ?8, metadata_json = ?9, "
        "filename = ?10, onnx_sha256 = ?12, onnx_size_bytes = ?13, validation_attempts = ?14 "
        "WHERE deployment_id = ?1 AND version = ?2";
    ASSIGN_OR_RETURN(Stmt s, Bound(c, kSql));
    s.Text(1, v.deployment_id).Text(2, v.version);
    BindVersionMutable(s, v, 3);
    RETURN_IF_ERROR(s.Exec("update version"));
    if (sqlite3_changes(c.db()) == 0) return NotFound("version not found");
    return Status::Ok();
  }

  static void BindVersionMutable(Stmt& s, const DeploymentVersion& v, int first) {
    s.Text(first + 0, v.blob_sha256)
        .Int(first + 1, v.size_bytes)
        .Text(first + 2, v.status)
        .Text(first + 3, v.error_message)
        .Text(first + 4, v.framework)
        .Text(first + 5, v.model_type)
        .Text(first + 6, v.metadata_json)
        .Text(first + 7, v.filename)
        .Text(first + 9, v.onnx_sha256)
        .Int(first + 10, v.onnx_size_bytes)
        .Int(first + 11, v.validation_attempts);
  }

  const std::string path_;
  const SqliteStoreOptions options_;
  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;  // guarded by pool_mu_
};

// Applies pending migrations, each in its own IMMEDIATE transaction (so two processes
// opening the same database at once cannot both apply one), recorded in schema_migrations.
Status SqliteStore::Migrate() {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& c = *writer_;
  RETURN_IF_ERROR(
      c.ExecScript("CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version INTEGER NOT NULL PRIMARY KEY,"
                   " name TEXT NOT NULL,"
                   " checksum TEXT NOT NULL,"
                   " applied_at INTEGER NOT NULL)",
                   "create schema_migrations"));
  const auto migrations = sqlite::EmbeddedMigrations();
  const int latest = migrations.empty() ? 0 : migrations.back().version;

  for (const sqlite::Migration& m : migrations) {
    Txn txn(&c);
    RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
    // Re-read inside the write lock: another process may have migrated meanwhile.
    std::set<int64_t> applied;
    std::unordered_map<int64_t, std::string> checksums;
    {
      ASSIGN_OR_RETURN(Stmt s, Bound(c, "SELECT version, checksum FROM schema_migrations"));
      for (;;) {
        int rc = s.Step();
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return FromSqlite(rc, c.db(), "read schema_migrations");
        applied.insert(s.ColInt(0));
        checksums[s.ColInt(0)] = s.ColText(1);
      }
    }
    if (!applied.empty() && *applied.rbegin() > latest) {
      return Unsupported("database " + path_ + " has schema version " +
                         std::to_string(*applied.rbegin()) + ", newer than this binary supports (" +
                         std::to_string(latest) +
                         "); run a newer serveml or restore a backup made by this version");
    }
    const std::string checksum = Sha256Hex(m.sql);
    if (applied.count(m.version) != 0) {
      if (checksums[m.version] != checksum) {
        LOG_WARN("applied migration differs from the compiled-in one")
            .Str("migration", m.name)
            .Str("database", path_);
      }
      continue;  // txn rolls back (nothing written)
    }
    if (m.version != migrations.front().version && applied.count(m.version - 1) == 0) {
      return Internal("database " + path_ + " is missing migration " +
                      std::to_string(m.version - 1) + " before " + std::string(m.name));
    }
    RETURN_IF_ERROR(c.ExecScript(std::string(m.sql), "migration " + std::string(m.name)));
    {
      ASSIGN_OR_RETURN(Stmt s, Bound(c,
                                     "INSERT INTO schema_migrations (version, name, checksum, "
                                     "applied_at) VALUES (?1, ?2, ?3, ?4)"));
      s.Int(1, m.version).Text(2, m.name).Text(3, checksum).Int(4, NowUnixMicros());
      RETURN_IF_ERROR(s.Exec("record migration"));
    }
    RETURN_IF_ERROR(txn.Commit());
    LOG_INFO("applied database migration").Str("migration", m.name).Str("database", path_);
  }
  return Status::Ok();
}

}  // namespace

int LatestSqliteSchemaVersion() {
  const auto migrations = sqlite::EmbeddedMigrations();
  return migrations.empty() ? 0 : migrations.back().version;
}

Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path,
                                                       const SqliteStoreOptions& options) {
  if (sqlite3_threadsafe() == 0) return Internal("sqlite3 was built without thread support");
  InitCrypto();  // Sha256 for migration checksums
  if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) {
    // Every connection must see the same database, so it has to be a plain file path.
    return InvalidInput("sqlite store needs a database file path, got '" + path + "'");
  }
  // Create the file ourselves so it is private (0600); SQLite gives -wal/-shm the same mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot create database " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
  ASSIGN_OR_RETURN(auto writer, Connection::Open(path, options, /*writer=*/true));
  auto store = std::make_unique<SqliteStore>(path, options, std::move(writer));
  RETURN_IF_ERROR(store->Migrate());
  return std::unique_ptr<MetadataStore>(std::move(store));
}

Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, SqliteStoreOptions{});
}

}  // namespace serveml::store
