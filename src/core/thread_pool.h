// ThreadPool: a fixed set of worker threads draining one bounded FIFO queue.
// Thread safe. The destructor (or Shutdown) runs every task already queued, then joins.
// A task that throws is caught at the pool's edge and logged (with the pool's name); the
// worker goes on with the next task, so no exception from a task ends the process.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace serveml {

class ThreadPool {
 public:
  // `max_queue`: tasks waiting (not yet started) at most; 0 = unbounded. Submit refuses
  // beyond it, so callers can answer 503 instead of queueing without limit.
  explicit ThreadPool(size_t threads, std::string name = "pool", size_t max_queue = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`. Returns false (and drops it) when the queue is full or once Shutdown has
  // begun (stopping() tells which).
  bool Submit(std::function<void()> task);
  bool stopping() const;
  // Tasks refused because the queue was full, since start.
  uint64_t rejected() const;
  // Stops accepting, finishes queued tasks, joins the workers. Idempotent.
  void Shutdown();
  size_t size() const { return workers_.size(); }
  // Tasks queued and not yet started.
  size_t pending() const;

 private:
  void WorkerLoop();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::string name_;
  size_t max_queue_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace serveml
