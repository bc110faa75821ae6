// SQLite implementation of MetadataStore: tuning knobs beyond OpenSqliteStore(path).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "store/metadata_store.h"

namespace serveml::store {

struct SqliteStoreOptions {
  // How long a statement waits for a lock held by another connection or process before
  // the call fails with Unavailable. Milliseconds.
  int busy_timeout_ms = 5000;
  // Read connections kept open between calls. More concurrent readers than this still
  // work (extra connections are opened and closed on demand).
  int max_idle_readers = 4;
  // 0 = unlimited. Tests set a small value to make SQLite report SQLITE_FULL, the same
  // error a full disk produces.
  int64_t max_page_count = 0;
};

// As OpenSqliteStore(path), with options. The database file is created with mode 0600
// (it holds password and API-key hashes). Errors: Unsupported if the database was
// migrated by a newer binary; Unavailable if it cannot be opened or written.
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path,
                                                       const SqliteStoreOptions& options);

// Highest migration version compiled into this binary.
int LatestSqliteSchemaVersion();

}  // namespace serveml::store
