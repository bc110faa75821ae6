#include "platform/login_throttle.h"

#include <algorithm>
#include <vector>

namespace serveml::platform {

namespace {

std::string PairKey(const std::string& account, const std::string& address) {
  return account + '\n' + address;
}

// Drops the older half of `m` by `time_of(value)`.
template <typename Map, typename TimeOf>
void DropOldestHalf(Map& m, TimeOf time_of) {
  std::vector<int64_t> times;
  times.reserve(m.size());
  for (const auto& [k, v] : m) times.push_back(time_of(v));
  auto mid = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
  std::nth_element(times.begin(), mid, times.end());
  const int64_t cut = times.empty() ? 0 : *mid;
  for (auto it = m.begin(); it != m.end();) {
    it = time_of(it->second) <= cut ? m.erase(it) : std::next(it);
  }
}

}  // namespace

int64_t LoginThrottle::PairDelay(const Pair& p) const {
  if (p.failures < opts_.free_failures) return 0;
  const int64_t over = p.failures - opts_.free_failures;
  if (over >= 30) return opts_.max_delay_seconds;
  return std::min<int64_t>(int64_t{1} << over, opts_.max_delay_seconds);
}

int64_t LoginThrottle::RetryAfter(const std::string& account, const std::string& address,
                                  int64_t now) {
  std::lock_guard lock(mu_);
  int64_t wait = 0;
  if (auto it = addresses_.find(address); it != addresses_.end()) {
    const Window& w = it->second;
    if (now < w.start + opts_.address_window_seconds && w.count >= opts_.failures_per_address) {
      wait = w.start + opts_.address_window_seconds - now;
    }
  }
  if (auto it = pairs_.find(PairKey(account, address)); it != pairs_.end()) {
    const int64_t until = it->second.last_failure + PairDelay(it->second);
    wait = std::max(wait, until - now);
  }
  return std::max<int64_t>(wait, 0);
}

void LoginThrottle::RecordFailure(const std::string& account, const std::string& address,
                                  int64_t now) {
  std::lock_guard lock(mu_);
  if (pairs_.size() >= opts_.max_entries || addresses_.size() >= opts_.max_entries) Trim(now);
  Pair& p = pairs_[PairKey(account, address)];
  // A pair quiet for longer than its delay allows plus a window starts over.
  if (p.failures > 0 &&
      now - p.last_failure > opts_.max_delay_seconds + opts_.address_window_seconds) {
    p.failures = 0;
  }
  ++p.failures;
  p.last_failure = now;
  Window& w = addresses_[address];
  if (now >= w.start + opts_.address_window_seconds) {
    w.start = now;
    w.count = 0;
  }
  ++w.count;
}

void LoginThrottle::RecordSuccess(const std::string& account, const std::string& address) {
  std::lock_guard lock(mu_);
  pairs_.erase(PairKey(account, address));
}

void LoginThrottle::Trim(int64_t now) {
  const int64_t keep = opts_.max_delay_seconds + opts_.address_window_seconds;
  for (auto it = pairs_.begin(); it != pairs_.end();) {
    it = now - it->second.last_failure > keep ? pairs_.erase(it) : std::next(it);
  }
  for (auto it = addresses_.begin(); it != addresses_.end();) {
    it = now >= it->second.start + opts_.address_window_seconds ? addresses_.erase(it)
                                                                : std::next(it);
  }
  if (pairs_.size() >= opts_.max_entries) {
    DropOldestHalf(pairs_, [](const Pair& p) { return p.last_failure; });
  }
  if (addresses_.size() >= opts_.max_entries) {
    DropOldestHalf(addresses_, [](const Window& w) { return w.start; });
  }
}

int64_t WindowCounter::TryAdd(const std::string& key, int64_t now) {
  if (limit_ <= 0) return 0;
  std::lock_guard lock(mu_);
  if (windows_.size() >= max_entries_) {
    for (auto it = windows_.begin(); it != windows_.end();) {
      it = now >= it->second.start + window_ ? windows_.erase(it) : std::next(it);
    }
    if (windows_.size() >= max_entries_) {
      DropOldestHalf(windows_, [](const Window& w) { return w.start; });
    }
  }
  Window& w = windows_[key];
  if (now >= w.start + window_) {
    w.start = now;
    w.count = 0;
  }
  if (w.count >= limit_) return std::max<int64_t>(1, w.start + window_ - now);
  ++w.count;
  return 0;
}

}  // namespace serveml::platform
