#include "runtime/model_cache.h"

#include <vector>

namespace serveml::runtime {

std::shared_ptr<LoadedModel> ModelCache::Find(const std::string& key) {
  std::shared_lock lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  it->second->last_used.store(tick_.fetch_add(1, std::memory_order_relaxed),
                              std::memory_order_relaxed);
  return it->second->model;
}

Result<std::shared_ptr<LoadedModel>> ModelCache::GetOrLoad(const std::string& key,
                                                           const Loader& loader,
                                                           bool* cold_start) {
  if (cold_start) *cold_start = false;
  if (auto m = Find(key)) return m;
  {
    std::unique_lock lock(load_mu_);
    while (loading_.count(key)) load_cv_.wait(lock);
    if (auto m = Find(key)) return m;
    loading_.insert(key);
  }
  if (cold_start) *cold_start = true;
  auto result = loader();
  if (result.ok()) Put(key, result.value());
  {
    std::lock_guard lock(load_mu_);
    loading_.erase(key);
  }
  load_cv_.notify_all();
  return result;
}

void ModelCache::Put(const std::string& key, std::shared_ptr<LoadedModel> model) {
  std::unique_lock lock(mu_);
  auto& slot = entries_[key];
  if (slot) resident_bytes_ -= slot->model->size_bytes();
  slot = std::make_unique<Entry>();
  slot->model = std::move(model);
  slot->last_used.store(tick_.fetch_add(1));
  resident_bytes_ += slot->model->size_bytes();
  EvictLocked();
}

void ModelCache::ErasePrefix(const std::string& prefix) {
  std::unique_lock lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.compare(0, prefix.size(), prefix) == 0) {
      resident_bytes_ -= it->second->model->size_bytes();
      pinned_.erase(it->first);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void ModelCache::SetPinned(const std::string& key, bool pinned) {
  std::unique_lock lock(mu_);
  if (pinned) pinned_.insert(key); else pinned_.erase(key);
}

size_t ModelCache::size() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

void ModelCache::EvictLocked() {
  while (resident_bytes_.load() > budget_bytes_ && entries_.size() > 1) {
    auto victim = entries_.end();
    int64_t oldest = INT64_MAX;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (pinned_.count(it->first)) continue;
      int64_t t = it->second->last_used.load(std::memory_order_relaxed);
      if (t < oldest) {
        oldest = t;
        victim = it;
      }
    }
    if (victim == entries_.end()) return;
    resident_bytes_ -= victim->second->model->size_bytes();
    entries_.erase(victim);
  }
}

}  // namespace serveml::runtime
