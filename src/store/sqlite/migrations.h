// The SQLite schema migrations compiled into the binary (from sqlite/migrations/*.sql by
// embed_migrations.cmake at build time). Thread safe: the table is immutable.
#pragma once

#include <span>
#include <string_view>

namespace serveml::store::sqlite {

struct Migration {
  int version;            // 1, 2, ... (the NNNN prefix of the file name); contiguous
  std::string_view name;  // file name, e.g. "0001_init.sql"
  std::string_view sql;   // the script, run inside one transaction
};

// Every migration, ordered by version (checked at build time: no gaps, no duplicates).
std::span<const Migration> EmbeddedMigrations();

}  // namespace serveml::store::sqlite
