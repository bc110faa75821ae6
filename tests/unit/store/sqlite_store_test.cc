#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"
#include "store/metadata_store.h"
#include "store/sqlite/migrations.h"

namespace serveml::store {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto());
    log::SetLevel(log::Level::kError);
    std::string tmpl = (fs::temp_directory_path() / "serveml-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/meta.db";
  }
  void TearDown() override {
    store_.reset();
    log::SetLevel(log::Level::kInfo);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  MetadataStore& Open(const SqliteStoreOptions& options = {}) {
    auto r = OpenSqliteStore(path_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    return *store_;
  }

  // Runs `sql` on a separate raw connection and returns the first column of the first row.
  std::string RawQuery(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    std::string out;
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  static User MakeUser(const std::string& name) {
    User u;
    u.id = NewUuid();
    u.email = name + "@example.com";
    u.username = name;
    u.full_name = "Full " + name;
    u.password_hash = "$argon2id$fake";
    u.created_at = 1000;
    return u;
  }

  static Deployment MakeDeployment(const std::string& user_id, const std::string& name,
                                   int64_t created_at) {
    Deployment d;
    d.id = NewUuid();
    d.user_id = user_id;
    d.name = name;
    d.status = kStatusValidating;
    d.framework = "sklearn";
    d.model_type = "LogisticRegression";
    d.size_bytes = 1234;
    d.metadata_json = R"({"inputs":4})";
    d.created_at = created_at;
    d.updated_at = created_at;
    return d;
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_F(SqliteStoreTest, MigrationsApplyOnceAndReopenIsIdempotent) {
  Open();
  const std::string latest = std::to_string(LatestSqliteSchemaVersion());
  EXPECT_EQ(RawQuery("SELECT count(*) FROM schema_migrations"), latest);
  EXPECT_EQ(RawQuery("SELECT max(version) FROM schema_migrations"), latest);
  EXPECT_EQ(RawQuery("PRAGMA journal_mode"), "wal");
  User u = MakeUser("alice");
  ASSERT_TRUE(store_->CreateUser(u).ok());
  store_.reset();

  Open();  // reopen: nothing re-applied, data kept
  Open();
  EXPECT_EQ(RawQuery("SELECT count(*) FROM schema_migrations"), latest);
  EXPECT_TRUE(store_->GetUserById(u.id).ok());
  EXPECT_NE(RawQuery("SELECT applied_at FROM schema_migrations WHERE version = 1"), "0");
}

TEST_F(SqliteStoreTest, EmbeddedMigrationsAreContiguous) {
  auto migrations = sqlite::EmbeddedMigrations();
  ASSERT_FALSE(migrations.empty());
  for (size_t i = 0; i < migrations.size(); ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
    EXPECT_FALSE(migrations[i].sql.empty());
  }
  EXPECT_NE(migrations[0].sql.find("CREATE TABLE users"), std::string_view::npos);
}

TEST_F(SqliteStoreTest, DatabaseNewerThanBinaryIsRefused) {
  Open();
  store_.reset();
  RawExec(
      "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
      "VALUES (9999, '9999_future.sql', '', 1)");
  auto r = OpenSqliteStore(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("newer than this binary"), std::string::npos)
      << r.status().message();
}

TEST_F(SqliteStoreTest, DatabaseFileIsPrivate) {
  Open();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST_F(SqliteStoreTest, RejectsInMemoryPath) {
  auto r = OpenSqliteStore(":memory:");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidInput);
}

TEST_F(SqliteStoreTest, UserCrudAndUniqueness) {
  auto& s = Open();
  User u = MakeUser("alice");
  u.email = "Alice@Example.COM";
  ASSERT_TRUE(s.CreateUser(u).ok());

  auto by_id = s.GetUserById(u.id);
  ASSERT_TRUE(by_id.ok()) << by_id.status().ToString();
  EXPECT_EQ(by_id->email, "alice@example.com");  // stored lower-cased
  EXPECT_EQ(by_id->username, "alice");
  EXPECT_EQ(by_id->full_name, "Full alice");
  EXPECT_EQ(by_id->password_hash, "$argon2id$fake");
  EXPECT_EQ(by_id->created_at, 1000);

  auto by_email = s.GetUserByEmail("alice@example.com");
  ASSERT_TRUE(by_email.ok());
  EXPECT_EQ(by_email->id, u.id);

  EXPECT_EQ(s.GetUserById("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(s.GetUserByEmail("bob@example.com").status().code(), Code::kNotFound);

  User dup_email = MakeUser("alice2");
  dup_email.email = "ALICE@example.com";
  Status st = s.CreateUser(dup_email);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "email already registered");

  User dup_name = MakeUser("other");
  dup_name.username = "ALICE";  // usernames are unique case-insensitively
  st = s.CreateUser(dup_name);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "username already taken");

  User dup_id = MakeUser("carol");
  dup_id.id = u.id;
  EXPECT_EQ(s.CreateUser(dup_id).code(), Code::kConflict);
}

TEST_F(SqliteStoreTest, CreatedAtDefaultsToNow) {
  auto& s = Open();
  User u = MakeUser("dave");
  u.created_at = 0;
  ASSERT_TRUE(s.CreateUser(u).ok());
  EXPECT_GT(s.GetUserById(u.id)->created_at, 1'600'000'000'000'000);
}

TEST_F(SqliteStoreTest, ApiKeyCrud) {
  auto& s = Open();
  User u = MakeUser("alice");
  User other = MakeUser("bob");
  ASSERT_TRUE(s.CreateUser(u).ok());
  ASSERT_TRUE(s.CreateUser(other).ok());

  ApiKey k;
  k.id = NewUuid();
  k.user_id = u.id;
  k.name = "ci";
  k.prefix = "sk-AbCd";
  k.key_hash = Sha256Hex("sk-AbCdsecret");
  k.scopes = "predict";
  k.created_at = 10;
  ASSERT_TRUE(s.CreateApiKey(k).ok());

  ApiKey k2 = k;
  k2.id = NewUuid();
  k2.name = "second";
  k2.key_hash = Sha256Hex("sk-other");
  k2.created_at = 20;
  ASSERT_TRUE(s.CreateApiKey(k2).ok());

  auto got = s.GetApiKeyByHash(k.key_hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id, k.id);
  EXPECT_EQ(got->user_id, u.id);
  EXPECT_EQ(got->name, "ci");
  EXPECT_EQ(got->prefix, "sk-AbCd");
  EXPECT_EQ(got->scopes, "predict");
  EXPECT_EQ(got->last_used_at, 0);
  EXPECT_FALSE(got->revoked);
  EXPECT_EQ(s.GetApiKeyByHash("0000").status().code(), Code::kNotFound);

  auto list = s.ListApiKeys(u.id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, k2.id);  // newest first
  EXPECT_TRUE(s.ListApiKeys(other.id)->empty());

  // Uniqueness of the hash.
  ApiKey dup = k;
  dup.id = NewUuid();
  Status st = s.CreateApiKey(dup);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "api key already exists");

  // A key for a user that does not exist.
  ApiKey orphan = k;
  orphan.id = NewUuid();
  orphan.user_id = "missing";
  orphan.key_hash = Sha256Hex("x");
  EXPECT_EQ(s.CreateApiKey(orphan).code(), Code::kNotFound);

  ASSERT_TRUE(s.TouchApiKey(k.id, 777).ok());
  EXPECT_EQ(s.GetApiKeyByHash(k.key_hash)->last_used_at, 777);
  EXPECT_EQ(s.TouchApiKey("missing", 1).code(), Code::kNotFound);

  // Only the owner can revoke.
  EXPECT_EQ(s.RevokeApiKey(other.id, k.id).code(), Code::kNotFound);
  EXPECT_FALSE(s.GetApiKeyByHash(k.key_hash)->revoked);
  ASSERT_TRUE(s.RevokeApiKey(u.id, k.id).ok());
  EXPECT_TRUE(s.GetApiKeyByHash(k.key_hash)->revoked);
  EXPECT_TRUE(s.RevokeApiKey(u.id, k.id).ok());  // idempotent
  EXPECT_EQ(s.RevokeApiKey(u.id, "missing").code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, DeploymentCrud) {
  auto& s = Open();
  User u = MakeUser("alice");
  ASSERT_TRUE(s.CreateUser(u).ok());

  Deployment d = MakeDeployment(u.id, "iris", 100);
  d.requirements = "scikit-learn==1.4\n";
  d.is_public = true;
  d.memory_mb = 1024;
  d.timeout_seconds = 10;
  d.min_instances = 1;
  d.max_instances = 3;
  ASSERT_TRUE(s.CreateDeployment(d).ok());

  auto got = s.GetDeployment(d.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->user_id, u.id);
  EXPECT_EQ(got->name, "iris");
  EXPECT_EQ(got->status, "validating");
  EXPECT_EQ(got->framework, "sklearn");
  EXPECT_EQ(got->model_type, "LogisticRegression");
  EXPECT_EQ(got->size_bytes, 1234);
  EXPECT_EQ(got->metadata_json, R"({"inputs":4})");
  EXPECT_EQ(got->memory_mb, 1024);
  EXPECT_EQ(got->timeout_seconds, 10);
  EXPECT_EQ(got->min_instances, 1);
  EXPECT_EQ(got->max_instances, 3);
  EXPECT_TRUE(got->is_public);
  EXPECT_EQ(got->requirements, "scikit-learn==1.4\n");
  EXPECT_EQ(got->created_at, 100);
  EXPECT_EQ(got->updated_at, 100);

  EXPECT_EQ(s.CreateDeployment(d).code(), Code::kConflict);
  Deployment orphan = MakeDeployment("no-such-user", "x", 1);
  EXPECT_EQ(s.CreateDeployment(orphan).code(), Code::kNotFound);

  d.status = kStatusFailed;
  d.error_message = "unsupported estimator Foo; export to ONNX";
  d.current_version = "v1";
  d.is_public = false;
  d.updated_at = 200;
  d.created_at = 999;  // not mutable: ignored
  ASSERT_TRUE(s.UpdateDeployment(d).ok());
  got = s.GetDeployment(d.id);
  EXPECT_EQ(got->status, "failed");
  EXPECT_EQ(got->error_message, "unsupported estimator Foo; export to ONNX");
  EXPECT_EQ(got->current_version, "v1");
  EXPECT_FALSE(got->is_public);
  EXPECT_EQ(got->updated_at, 200);
  EXPECT_EQ(got->created_at, 100);

  Deployment bad_status = d;
  bad_status.status = "exploded";
  EXPECT_EQ(s.UpdateDeployment(bad_status).code(), Code::kInvalidInput);

  Deployment missing = MakeDeployment(u.id, "ghost", 1);
  EXPECT_EQ(s.UpdateDeployment(missing).code(), Code::kNotFound);

  EXPECT_EQ(*s.CountDeployments(u.id), 1);
  ASSERT_TRUE(s.DeleteDeployment(d.id).ok());
  EXPECT_EQ(s.GetDeployment(d.id).status().code(), Code::kNotFound);
  EXPECT_EQ(s.DeleteDeployment(d.id).code(), Code::kNotFound);
  EXPECT_EQ(*s.CountDeployments(u.id), 0);
}

TEST_F(SqliteStoreTest, VersionsCrudAndDeleteCascade) {
  auto& s = Open();
  User u = MakeUser("alice");
  ASSERT_TRUE(s.CreateUser(u).ok());
  Deployment d = MakeDeployment(u.id, "iris", 100);
  ASSERT_TRUE(s.CreateDeployment(d).ok());

  const std::string blob1 = Sha256Hex("model-1");
  const std::string blob2 = Sha256Hex("model-2");
  for (int i = 1; i <= 11; ++i) {
    DeploymentVersion v;
    v.deployment_id = d.id;
    v.version = "v" + std::to_string(i);
    v.blob_sha256 = i == 2 ? blob2 : blob1;
    v.size_bytes = i;
    v.status = kStatusValidating;
    v.filename = "model.pkl";
    v.created_at = 500;  // same timestamp: insertion order decides
    ASSERT_TRUE(s.AddVersion(v).ok());
  }
  auto list = s.ListVersions(d.id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 11u);
  for (int i = 0; i < 11; ++i) EXPECT_EQ((*list)[i].version, "v" + std::to_string(i + 1));

  DeploymentVersion dup = (*list)[0];
  Status st = s.AddVersion(dup);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "version already exists for this deployment");

  DeploymentVersion orphan = dup;
  orphan.deployment_id = "missing";
  st = s.AddVersion(orphan);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "deployment not found");

  DeploymentVersion v2 = *s.GetVersion(d.id, "v2");
  EXPECT_EQ(v2.blob_sha256, blob2);
  EXPECT_EQ(v2.filename, "model.pkl");
  v2.status = kStatusActive;
  v2.framework = "onnx";
  v2.model_type = "main_graph";
  v2.metadata_json = "{}";
  ASSERT_TRUE(s.UpdateVersion(v2).ok());
  auto got = s.GetVersion(d.id, "v2");
  EXPECT_EQ(got->status, "active");
  EXPECT_EQ(got->framework, "onnx");
  EXPECT_EQ(got->model_type, "main_graph");
  EXPECT_EQ(s.GetVersion(d.id, "v99").status().code(), Code::kNotFound);
  DeploymentVersion missing = v2;
  missing.version = "v99";
  EXPECT_EQ(s.UpdateVersion(missing).code(), Code::kNotFound);

  EXPECT_TRUE(*s.BlobReferenced(blob1));
  EXPECT_TRUE(*s.BlobReferenced(blob2));
  EXPECT_FALSE(*s.BlobReferenced(Sha256Hex("other")));

  ASSERT_TRUE(s.DeleteDeployment(d.id).ok());
  EXPECT_TRUE(s.ListVersions(d.id)->empty());
  EXPECT_FALSE(*s.BlobReferenced(blob1));
  EXPECT_EQ(RawQuery("SELECT count(*) FROM deployment_versions"), "0");
}

TEST_F(SqliteStoreTest, ListDeploymentsFiltersPaginationAndIsolation) {
  auto& s = Open();
  User alice = MakeUser("alice");
  User bob = MakeUser("bob");
  ASSERT_TRUE(s.CreateUser(alice).ok());
  ASSERT_TRUE(s.CreateUser(bob).ok());

  std::vector<Deployment> mine;
  for (int i = 0; i < 30; ++i) {
    Deployment d =
        MakeDeployment(alice.id, (i % 3 == 0 ? "Iris-" : "churn-") + std::to_string(i), 1000 + i);
    d.status = i % 2 == 0 ? kStatusActive : kStatusFailed;
    d.framework = i % 5 == 0 ? "onnx" : "sklearn";
    ASSERT_TRUE(s.CreateDeployment(d).ok());
    mine.push_back(d);
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s.CreateDeployment(MakeDeployment(bob.id, "iris-bob", 5000 + i)).ok());
  }

  DeploymentFilter f;
  f.user_id = alice.id;
  f.limit = 10;
  auto page = s.ListDeployments(f);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->second, 30);
  ASSERT_EQ(page->first.size(), 10u);
  EXPECT_EQ(page->first[0].id, mine[29].id);  // newest first
  EXPECT_EQ(page->first[9].id, mine[20].id);
  for (const auto& d : page->first) EXPECT_EQ(d.user_id, alice.id);

  f.offset = 25;
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 30);
  ASSERT_EQ(page->first.size(), 5u);
  EXPECT_EQ(page->first[4].id, mine[0].id);

  f.offset = 100;
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 30);
  EXPECT_TRUE(page->first.empty());

  // Clamping: limit to 1..100, offset to >= 0.
  f.offset = -5;
  f.limit = 0;
  page = s.ListDeployments(f);
  EXPECT_EQ(page->first.size(), 1u);
  f.limit = 100000;
  page = s.ListDeployments(f);
  EXPECT_EQ(page->first.size(), 30u);
  EXPECT_EQ(NormalizeDeploymentFilter(f).limit, 100);

  f = {};
  f.user_id = alice.id;
  f.limit = 100;
  f.status = kStatusActive;
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 15);
  for (const auto& d : page->first) EXPECT_EQ(d.status, "active");

  f.framework = "onnx";  // i % 10 == 0 -> 0, 10, 20
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 3);

  f = {};
  f.user_id = alice.id;
  f.limit = 100;
  f.search = "iRIS";  // case-insensitive, name
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 10);
  for (const auto& d : page->first) EXPECT_EQ(d.name.rfind("Iris-", 0), 0u);

  f.search = mine[7].id.substr(4, 8);  // substring of an id
  std::transform(f.search.begin(), f.search.end(), f.search.begin(), ::toupper);
  page = s.ListDeployments(f);
  ASSERT_GE(page->second, 1);
  bool found = false;
  for (const auto& d : page->first) found |= d.id == mine[7].id;
  EXPECT_TRUE(found);

  f.search = "%";  // no wildcard semantics
  EXPECT_EQ(s.ListDeployments(f)->second, 0);

  // Bob sees only his own, even with a search matching Alice's names.
  f = {};
  f.user_id = bob.id;
  f.search = "iris";
  page = s.ListDeployments(f);
  EXPECT_EQ(page->second, 5);
  for (const auto& d : page->first) EXPECT_EQ(d.user_id, bob.id);

  f.user_id = "";
  EXPECT_EQ(s.ListDeployments(f).status().code(), Code::kInvalidInput);

  EXPECT_EQ(*s.CountDeployments(alice.id), 30);
  EXPECT_EQ(*s.CountDeployments(bob.id), 5);
}

TEST_F(SqliteStoreTest, ListDeploymentsByStatus) {
  auto& s = Open();
  User u = MakeUser("alice");
  ASSERT_TRUE(s.CreateUser(u).ok());
  for (int i = 0; i < 6; ++i) {
    Deployment d = MakeDeployment(u.id, "d" + std::to_string(i), 100 - i);
    d.status = i < 2 ? kStatusValidating : (i < 5 ? kStatusActive : kStatusFailed);
    ASSERT_TRUE(s.CreateDeployment(d).ok());
  }
  auto validating = s.ListDeploymentsByStatus(kStatusValidating);
  ASSERT_TRUE(validating.ok());
  ASSERT_EQ(validating->size(), 2u);
  EXPECT_EQ((*validating)[0].name, "d1");  // oldest first
  EXPECT_EQ(s.ListDeploymentsByStatus("active")->size(), 3u);
  auto both = s.ListDeploymentsByStatus("validating,active");
  ASSERT_EQ(both->size(), 5u);
  for (size_t i = 1; i < both->size(); ++i) {
    EXPECT_LE((*both)[i - 1].created_at, (*both)[i].created_at);
  }
  EXPECT_TRUE(s.ListDeploymentsByStatus("nothing")->empty());
}

TEST_F(SqliteStoreTest, DiskFullIsUnavailable) {
  SqliteStoreOptions options;
  options.max_page_count = 40;  // a tiny "disk"
  auto& s = Open(options);
  User u = MakeUser("alice");
  ASSERT_TRUE(s.CreateUser(u).ok());
  Status last;
  for (int i = 0; i < 1000 && last.ok(); ++i) {
    Deployment d = MakeDeployment(u.id, "big", i);
    d.requirements = std::string(8192, 'x');
    last = s.CreateDeployment(d);
  }
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.code(), Code::kUnavailable);
  EXPECT_EQ(last.message().rfind("disk full", 0), 0u) << last.message();
  // The store keeps working for reads after the failure.
  EXPECT_TRUE(s.GetUserById(u.id).ok());
}

TEST_F(SqliteStoreTest, LockHeldPastTimeoutIsUnavailableAndReadsContinue) {
  SqliteStoreOptions options;
  options.busy_timeout_ms = 50;
  auto& s = Open(options);
  User u = MakeUser("alice");
  ASSERT_TRUE(s.CreateUser(u).ok());

  // Another process holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  Status st = s.CreateUser(MakeUser("bob"));
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.ToString();
  // WAL: readers are not blocked by the writer.
  EXPECT_TRUE(s.GetUserById(u.id).ok());

  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(s.CreateUser(MakeUser("bob")).ok());
}

TEST_F(SqliteStoreTest, ConcurrentWritersAndReaders) {
  auto& s = Open();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      User u = MakeUser("user" + std::to_string(t));
      if (!s.CreateUser(u).ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kPerThread; ++i) {
        Deployment d = MakeDeployment(u.id, "m" + std::to_string(i), i);
        if (!s.CreateDeployment(d).ok()) ++failures;
        auto got = s.GetDeployment(d.id);
        if (!got.ok() || got->name != d.name) ++failures;  // read your own write
        DeploymentVersion v;
        v.deployment_id = d.id;
        v.version = "v1";
        v.blob_sha256 = Sha256Hex(d.id);
        v.status = kStatusActive;
        if (!s.AddVersion(v).ok()) ++failures;
        d.status = kStatusActive;
        if (!s.UpdateDeployment(d).ok()) ++failures;
        DeploymentFilter f;
        f.user_id = u.id;
        f.limit = 5;
        auto page = s.ListDeployments(f);
        if (!page.ok() || page->second != i + 1) ++failures;
        if (page.ok()) {
          for (const auto& item : page->first) {
            if (item.user_id != u.id) ++failures;
          }
        }
        if (!s.GetUserByEmail(u.email).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(s.ListDeploymentsByStatus(kStatusActive)->size(),
            static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileShareData) {
  auto& a = Open();
  auto second = OpenSqliteStore(path_);
  ASSERT_TRUE(second.ok());
  auto& b = **second;
  User u = MakeUser("alice");
  ASSERT_TRUE(a.CreateUser(u).ok());
  EXPECT_TRUE(b.GetUserById(u.id).ok());
  EXPECT_EQ(b.CreateUser(u).code(), Code::kConflict);
}

}  // namespace
}  // namespace serveml::store

namespace serveml::store {
namespace {

class SqliteStoreTxnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto());
    std::string tmpl = (fs::temp_directory_path() / "serveml-sqlite-txn-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto r = OpenSqliteStore(dir_ + "/meta.db");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    user_.id = NewUuid();
    user_.email = "u@example.com";
    user_.username = "u_u";
    user_.password_hash = "$argon2id$fake";
    ASSERT_TRUE(store_->CreateUser(user_).ok());
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Deployment NewDeployment() {
    Deployment d;
    d.id = NewUuid();
    d.user_id = user_.id;
    d.name = "d";
    d.status = kStatusValidating;
    return d;
  }
  DeploymentVersion NewVersion(const std::string& dep, const std::string& v, int64_t size) {
    DeploymentVersion x;
    x.deployment_id = dep;
    x.version = v;
    x.blob_sha256 = Sha256Hex(dep + v);
    x.size_bytes = size;
    x.status = kStatusValidating;
    return x;
  }
  std::string dir_;
  User user_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_F(SqliteStoreTxnTest, ApplyIsAllOrNothing) {
  Deployment d = NewDeployment();
  StateChange c;
  c.create_deployment = d;
  c.add_versions.push_back(NewVersion(d.id, "v1", 10));
  c.add_versions.push_back(NewVersion(d.id, "v1", 10));  // duplicate: the whole change fails
  EXPECT_EQ(store_->Apply(c).code(), Code::kConflict);
  EXPECT_EQ(store_->GetDeployment(d.id).status().code(), Code::kNotFound);
  c.add_versions.pop_back();
  ASSERT_TRUE(store_->Apply(c).ok());
  // Version and deployment change together, or not at all.
  DeploymentVersion v = *store_->GetVersion(d.id, "v1");
  v.status = kStatusActive;
  v.onnx_sha256 = Sha256Hex("onnx");
  v.onnx_size_bytes = 5;
  v.validation_attempts = 1;
  Deployment nd = d;
  nd.status = kStatusActive;
  nd.current_version = "v1";
  nd.id = "missing";
  StateChange u;
  u.update_versions.push_back(v);
  u.update_deployment = nd;
  EXPECT_EQ(store_->Apply(u).code(), Code::kNotFound);
  EXPECT_EQ(store_->GetVersion(d.id, "v1")->status, kStatusValidating);
  u.update_deployment->id = d.id;
  ASSERT_TRUE(store_->Apply(u).ok());
  auto got = store_->GetVersion(d.id, "v1");
  EXPECT_EQ(got->status, kStatusActive);
  EXPECT_EQ(got->onnx_sha256, Sha256Hex("onnx"));
  EXPECT_EQ(got->onnx_size_bytes, 5);
  EXPECT_EQ(got->validation_attempts, 1);
  EXPECT_EQ(store_->GetDeployment(d.id)->current_version, "v1");
  EXPECT_TRUE(*store_->BlobReferenced(Sha256Hex("onnx")));
}

TEST_F(SqliteStoreTxnTest, UserUsageCountsDeploymentsVersionsAndBytes) {
  EXPECT_EQ(store_->GetUserUsage(user_.id)->deployments, 0);
  Deployment a = NewDeployment(), b = NewDeployment();
  StateChange c;
  c.create_deployment = a;
  DeploymentVersion v1 = NewVersion(a.id, "v1", 100);
  v1.onnx_sha256 = Sha256Hex("converted");
  v1.onnx_size_bytes = 40;
  c.add_versions = {v1, NewVersion(a.id, "v2", 200)};
  ASSERT_TRUE(store_->Apply(c).ok());
  StateChange c2;
  c2.create_deployment = b;
  DeploymentVersion onnx = NewVersion(b.id, "v1", 1000);
  onnx.onnx_sha256 = onnx.blob_sha256;  // an ONNX upload is its own ONNX: counted once
  onnx.onnx_size_bytes = 1000;
  c2.add_versions = {onnx};
  ASSERT_TRUE(store_->Apply(c2).ok());
  auto u = store_->GetUserUsage(user_.id);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->deployments, 2);
  EXPECT_EQ(u->versions, 3);
  EXPECT_EQ(u->stored_bytes, 100 + 40 + 200 + 1000);
}

TEST_F(SqliteStoreTxnTest, RevokeTokensBumpsTheGeneration) {
  EXPECT_EQ(store_->GetUserById(user_.id)->token_generation, 0);
  EXPECT_EQ(*store_->RevokeTokens(user_.id, std::nullopt), 1);
  EXPECT_EQ(store_->GetUserById(user_.id)->password_hash, "$argon2id$fake");
  EXPECT_EQ(*store_->RevokeTokens(user_.id, std::string("$argon2id$new")), 2);
  auto u = store_->GetUserById(user_.id);
  EXPECT_EQ(u->token_generation, 2);
  EXPECT_EQ(u->password_hash, "$argon2id$new");
  EXPECT_EQ(store_->RevokeTokens("nobody", std::nullopt).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace serveml::store
