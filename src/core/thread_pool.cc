#include "core/thread_pool.h"

#include <pthread.h>

#include <exception>

#include "core/log.h"

namespace serveml {

ThreadPool::ThreadPool(size_t threads, std::string name, size_t max_queue)
    : name_(std::move(name)), max_queue_(max_queue) {
  if (threads == 0) threads = 1;
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
    std::string tname = name_.substr(0, 15);
    pthread_setname_np(workers_.back().native_handle(), tname.c_str());
  }
}

ThreadPool::~ThreadPool() { Shutdown(); }

bool ThreadPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    if (max_queue_ != 0 && queue_.size() >= max_queue_) {
      ++rejected_;
      return false;
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void ThreadPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

bool ThreadPool::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

uint64_t ThreadPool::rejected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rejected_;
}

size_t ThreadPool::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      LOG_ERROR("a background task threw").Str("pool", name_).Str("error", e.what());
    } catch (...) {
      LOG_ERROR("a background task threw").Str("pool", name_);
    }
  }
}

}  // namespace serveml
