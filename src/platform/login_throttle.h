// Throttles for the unauthenticated account routes: password guessing and mass sign-ups.
//
// LoginThrottle counts failed logins per (account, client address) pair and per client
// address. A pair gets `free_failures` tries; after that each further attempt must wait a
// delay that doubles with every failure (1 s, 2 s, 4 s, ... up to max_delay_seconds) since
// the last failure, or it is answered 429 with Retry-After without checking the password.
// An address with more than `failures_per_address` failures in `address_window_seconds`
// (over all accounts) waits for the window to pass. A stranger therefore never locks an
// account's owner out: the owner's own address has its own pair. A success clears the pair.
//
// WindowCounter counts events per key in fixed windows (registrations per address).
//
// Memory: each keeps at most `max_entries` keys; when full, expired entries are dropped and,
// if that is not enough, the oldest half. Thread safety: all methods are thread safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace serveml::platform {

struct LoginThrottleOptions {
  int64_t free_failures = 5;           // per (account, address) before delays start
  int64_t max_delay_seconds = 900;     // the doubling delay stops growing here
  int64_t failures_per_address = 100;  // per address and window, over all accounts
  int64_t address_window_seconds = 900;
  size_t max_entries = 200000;
};

class LoginThrottle {
 public:
  explicit LoginThrottle(LoginThrottleOptions options = {}) : opts_(options) {}
  // 0 if an attempt for `account` from `address` may check a password now, else the
  // seconds to wait.
  int64_t RetryAfter(const std::string& account, const std::string& address, int64_t now);
  void RecordFailure(const std::string& account, const std::string& address, int64_t now);
  void RecordSuccess(const std::string& account, const std::string& address);

 private:
  struct Pair {
    int64_t failures = 0;
    int64_t last_failure = 0;
  };
  struct Window {
    int64_t start = 0;
    int64_t count = 0;
  };
  int64_t PairDelay(const Pair& p) const;
  void Trim(int64_t now);  // mu_ held

  const LoginThrottleOptions opts_;
  std::mutex mu_;
  std::unordered_map<std::string, Pair> pairs_;        // account + '\n' + address
  std::unordered_map<std::string, Window> addresses_;  // address -> failures this window
};

class WindowCounter {
 public:
  // At most `limit` events per key in each window of `window_seconds`; limit 0 = no limit.
  WindowCounter(int64_t limit, int64_t window_seconds, size_t max_entries = 200000)
      : limit_(limit), window_(window_seconds), max_entries_(max_entries) {}
  // Counts one event for `key` if the limit allows it and returns 0; otherwise returns the
  // seconds until the window ends (and counts nothing).
  int64_t TryAdd(const std::string& key, int64_t now);
  int64_t limit() const { return limit_; }

 private:
  struct Window {
    int64_t start = 0;
    int64_t count = 0;
  };
  const int64_t limit_, window_;
  const size_t max_entries_;
  std::mutex mu_;
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace serveml::platform
