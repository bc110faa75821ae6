// Scheduler: one background thread running periodic jobs (metrics flush and roll-ups today;
// backups, alarms and webhook retries later).
//
// Jobs run one at a time on the scheduler's thread, in the order they fall due; a job that
// overruns delays the others (keep jobs short, or split them). A failing job is logged (at
// most once a minute per job) and runs again at its next period.
//
// Thread safety: Every() only before Start(); Start(), Stop() and RunNow() from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace serveml::platform {

class Scheduler {
 public:
  using Job = std::function<Status()>;

  Scheduler() = default;
  // Stops (see Stop()).
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Adds `job`, first run one `period` after Start(). Not thread safe; before Start() only.
  void Every(std::string name, std::chrono::milliseconds period, Job job);
  // Starts the thread. Idempotent.
  void Start();
  // Wakes the thread, lets a running job finish, joins. Jobs do not run again. Idempotent.
  void Stop();
  // Makes every job due now and waits until they all ran once (tests, admin). Returns at
  // once if the scheduler is not running.
  void RunNow();

 private:
  struct Entry {
    std::string name;
    std::chrono::milliseconds period;
    Job job;
    std::chrono::steady_clock::time_point next;
    std::chrono::steady_clock::time_point last_error_log;
  };
  void Loop();

  std::vector<Entry> jobs_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  uint64_t run_now_requested_ = 0;  // generation counters for RunNow()
  uint64_t run_now_done_ = 0;
  std::thread thread_;
};

}  // namespace serveml::platform
