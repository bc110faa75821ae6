// ThreadPool: a fixed set of worker threads draining one FIFO queue.
// Thread safe. The destructor (or Shutdown) runs every task already queued, then joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace serveml {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads, std::string name = "pool");
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`. Returns false (and drops it) once Shutdown has begun.
  bool Submit(std::function<void()> task);
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
};

}  // namespace serveml
