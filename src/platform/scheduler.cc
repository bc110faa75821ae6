#include "platform/scheduler.h"

#include <pthread.h>

#include "core/log.h"

namespace serveml::platform {

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Every(std::string name, std::chrono::milliseconds period, Job job) {
  jobs_.push_back(Entry{std::move(name), period, std::move(job), {}, {}});
}

void Scheduler::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  auto now = std::chrono::steady_clock::now();
  for (auto& e : jobs_) e.next = now + e.period;
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::RunNow() {
  std::unique_lock lock(mu_);
  if (!started_ || stopping_) return;
  uint64_t want = ++run_now_requested_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return run_now_done_ >= want || stopping_; });
}

void Scheduler::Loop() {
  pthread_setname_np(pthread_self(), "scheduler");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    uint64_t forced = run_now_requested_;
    bool force = forced > run_now_done_;
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& e : jobs_) {
      if (stopping_) break;
      if (!force && e.next > now) {
        next = std::min(next, e.next);
        continue;
      }
      lock.unlock();
      Status st;
      try {
        st = e.job();
      } catch (const std::exception& ex) {
        st = Internal(std::string("exception: ") + ex.what());
      } catch (...) {
        st = Internal("unknown exception");
      }
      lock.lock();
      auto done = std::chrono::steady_clock::now();
      if (!st.ok() && done - e.last_error_log >= std::chrono::minutes(1)) {
        e.last_error_log = done;
        LOG_WARN("scheduled job failed").Str("job", e.name).Str("error", st.ToString());
      }
      e.next = done + e.period;
      next = std::min(next, e.next);
    }
    if (force) {
      run_now_done_ = forced;
      cv_.notify_all();
    }
    if (stopping_) break;
    if (next == std::chrono::steady_clock::time_point::max()) next = now + std::chrono::hours(1);
    cv_.wait_until(lock, next, [&] { return stopping_ || run_now_requested_ > run_now_done_; });
  }
  cv_.notify_all();
}

}  // namespace serveml::platform
