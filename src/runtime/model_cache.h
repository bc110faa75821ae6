// ModelCache: the loaded models resident in this process, keyed by "<deployment>@<version>".
// Models load lazily on first use (a cold start) and are evicted least-recently-used when
// their total size exceeds the memory budget; pinned keys (min_instances > 0) are never
// evicted. Concurrent first requests for one key load it once.
//
// Thread safety: all methods are thread safe. Find() takes a shared lock only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/status.h"
#include "runtime/loaded_model.h"

namespace serveml::runtime {

class ModelCache {
 public:
  using Loader = std::function<Result<std::shared_ptr<LoadedModel>>()>;

  explicit ModelCache(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}

  // The resident model for `key`, or nullptr. Marks it recently used.
  std::shared_ptr<LoadedModel> Find(const std::string& key);
  // The resident model, or loads it with `loader` (once, even under concurrent callers).
  // *cold_start is set when this call waited for a load.
  Result<std::shared_ptr<LoadedModel>> GetOrLoad(const std::string& key, const Loader& loader,
                                                 bool* cold_start);
  // Inserts an already-loaded model (e.g. the one validation just loaded).
  void Put(const std::string& key, std::shared_ptr<LoadedModel> model);
  // Drops every key that starts with `prefix` (e.g. "<deployment>@").
  void ErasePrefix(const std::string& prefix);
  void SetPinned(const std::string& key, bool pinned);

  int64_t resident_bytes() const { return resident_bytes_.load(); }
  size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<LoadedModel> model;
    std::atomic<int64_t> last_used{0};
  };
  void EvictLocked();  // requires mu_ held exclusively

  const int64_t budget_bytes_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  std::unordered_set<std::string> pinned_;
  std::atomic<int64_t> resident_bytes_{0};
  std::atomic<int64_t> tick_{0};

  std::mutex load_mu_;
  std::condition_variable load_cv_;
  std::unordered_set<std::string> loading_;
};

}  // namespace serveml::runtime
