// BlobStore: content-addressed storage of model artifacts, named by the lower-case hex
// sha256 of their bytes. One interface, one folder per implementation (local/ now, s3/
// later).
//
// Durability contract (local): Put writes to a temp file in the same directory, fsyncs
// it, renames it to its final name and fsyncs the directory, so a crash leaves either no
// blob or the whole blob, never a half-written one under its final name. Get verifies the
// sha256 of what it read and reports Internal on a mismatch (corruption).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace serveml::store {

// True for a well-formed blob name: exactly 64 lower-case hex characters. Stores reject
// anything else with InvalidInput (names become file paths / object keys).
inline bool IsValidBlobName(std::string_view name) {
  if (name.size() != 64) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Stores the file at `src_path` (consumed: it may be moved) and returns its sha256 hex.
  // Storing bytes that already exist is a no-op returning the same name. On success the
  // file is gone from src_path; on failure it is left there for the caller to remove.
  virtual Result<std::string> PutFile(const std::string& src_path) = 0;
  // Stores `bytes`, returns the sha256 hex.
  virtual Result<std::string> PutBytes(const std::string& bytes) = 0;
  // Reads and verifies the blob. NotFound if absent.
  virtual Result<std::string> Get(const std::string& sha256) = 0;
  // A read-only descriptor (O_CLOEXEC) on the blob's bytes, for a reader in another
  // process; the caller closes it. Not verified: the reader checks the sha256 itself.
  // NotFound if absent.
  virtual Result<int> OpenForRead(const std::string& sha256) = 0;
  virtual Result<bool> Exists(const std::string& sha256) = 0;
  // NotFound if absent. Callers check MetadataStore::BlobReferenced first.
  virtual Status Remove(const std::string& sha256) = 0;
  // A directory on the same filesystem for temporary upload files.
  virtual std::string temp_dir() const = 0;
};

// Local directory implementation rooted at `root` (created if missing): blobs live at
// root/ab/abcdef... and temp files in root/tmp (stale temp files are removed on open).
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root);

}  // namespace serveml::store
