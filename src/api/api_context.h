// ApiContext: the services the API handlers use, wired by app/. Everything pointed to
// outlives the server. Read-only after start, so handlers share it across threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/thread_pool.h"
#include "platform/accounts.h"
#include "platform/deployments.h"
#include "store/blob_store.h"
#include "store/metadata_store.h"

namespace serveml::api {

struct ApiContext {
  platform::Accounts* accounts = nullptr;
  platform::Deployments* deployments = nullptr;
  store::MetadataStore* store = nullptr;
  store::BlobStore* blobs = nullptr;
  // Runs blocking control-plane work (database, disk, password hashing).
  ThreadPool* blocking = nullptr;
  // Runs model executions that are too expensive for an I/O thread.
  ThreadPool* models = nullptr;
  // Runs password hashing (register, login, password change) only, so that metadata reads
  // on `blocking` never wait behind it. Bounded queue: over it the caller gets 503.
  ThreadPool* hashing = nullptr;
  std::string version = SERVEML_VERSION;
  int64_t started_at_unix = 0;
  std::string data_dir;
  std::atomic<bool>* draining = nullptr;  // set once shutdown begins
};

}  // namespace serveml::api
