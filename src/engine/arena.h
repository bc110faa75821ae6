// TensorArena: recycles tensor buffers between the runs of a model, so a steady-state run
// on fixed shapes takes no intermediate tensor memory from the heap.
//
// NewTensor (kernel.h) draws from the calling thread's current arena, which the executor
// installs (ArenaScope) for the duration of a kernel call; kernels need no changes. Each
// buffer is handed out as a std::shared_ptr<void> whose control block lives in the block's
// own header, so taking a cached buffer allocates nothing. When the last Tensor sharing a
// buffer goes away (on any thread, possibly after the model and the arena's owner are gone),
// the block returns to its arena's free list; every outstanding buffer keeps the arena
// alive. Free blocks are kept per size class (four classes per power of two, so at most 25%
// slack). Cached bytes are capped at max(base cap, 1.25 x the peak bytes in use over the
// last 64-128 runs), least recently used blocks going first, and blocks unused for a number
// of runs are given back to the heap, so memory follows the current batch sizes.
//
// Thread safety: all members may be called from any thread. One arena is used by one run
// at a time (the model keeps a pool of them); buffers may be released concurrently.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace serveml::engine {

class TensorArena : public std::enable_shared_from_this<TensorArena> {
 public:
  struct Stats {
    uint64_t hits = 0;          // buffers taken from a free list
    uint64_t misses = 0;        // buffers that had to come from the heap
    uint64_t evictions = 0;     // free blocks given back to the heap (cap or ageing)
    uint64_t cached_bytes = 0;  // bytes currently held in free lists
    uint64_t cached_blocks = 0;
    uint64_t live_bytes = 0;  // bytes of blocks currently handed out
    uint64_t cap_bytes = 0;   // current cap on cached_bytes
  };

  // `max_cached_bytes` is the base cap on bytes kept in free lists (see above); a block
  // released when the cap would be exceeded evicts the least recently used free blocks
  // first. Create with std::make_shared (buffers hold the arena through shared_from_this).
  explicit TensorArena(size_t max_cached_bytes);
  ~TensorArena();
  TensorArena(const TensorArena&) = delete;
  TensorArena& operator=(const TensorArena&) = delete;

  // A buffer of at least `bytes` bytes, 64-byte aligned, contents unspecified; an empty
  // pointer for 0 bytes. Throws std::bad_alloc when the heap is exhausted.
  std::shared_ptr<void> Allocate(size_t bytes);

  // Puts buffers of the given sizes into the free lists (as if a run had used and released
  // them), within the cap. Used to pre-size an arena from a static memory plan.
  void Reserve(const std::vector<size_t>& sizes);

  // Marks the end of one run: advances the run clock and, every few runs, frees blocks not
  // handed out during the last `max_idle_runs` runs.
  void EndRun(uint64_t max_idle_runs);

  // Frees every free block now and makes later releases go straight back to the heap. For
  // the owner's destructor: outstanding buffers stay valid.
  void Detach();

  Stats stats() const;
  // stats().live_bytes without taking the lock (per-run memory budget checks).
  uint64_t live_bytes() const { return live_.load(std::memory_order_relaxed); }

  // The size a request of `bytes` is rounded up to (its size class).
  static size_t ClassBytes(size_t bytes);

 private:
  struct Block;
  template <typename T>
  friend struct ArenaBlockAllocator;

  static constexpr int kNumClasses = 4 + 4 * 56;

  static int ClassOf(size_t bytes);
  static Block* NewBlock(int cls, size_t capacity);
  static void FreeBlock(Block* b);
  std::shared_ptr<void> Wrap(Block* b);
  // Called when the last reference to `b`'s buffer is gone (from its control block's
  // deallocation, the block's last use).
  void Recycle(Block* b);
  // Requires mu_. The current cap on cached bytes.
  size_t CapLocked() const;
  // Requires mu_. Frees least recently used free blocks until cached_bytes_ <= target.
  void EvictLocked(size_t target);
  void PushLocked(Block* b);

  const size_t max_cached_bytes_;
  mutable std::mutex mu_;
  Block* free_[kNumClasses] = {};  // singly linked through Block::next, most recent first
  uint64_t clock_ = 0;             // runs ended so far
  uint64_t window_peak_ = 0;       // peak live bytes in the current 64-run window
  uint64_t prev_window_peak_ = 0;  // ... and in the previous one
  bool detached_ = false;
  Stats stats_;
  std::atomic<uint64_t> live_{0};  // mirrors stats_.live_bytes
};

// Installs `arena` (may be null: plain heap) as the calling thread's current arena until
// the scope ends, restoring the previous one.
class ArenaScope {
 public:
  explicit ArenaScope(TensorArena* arena);
  ~ArenaScope();
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;
  // Switches the current arena inside the scope (cheaper than nesting scopes).
  // `zero_fill` false lets NewTensor hand out arena buffers without clearing them; only for
  // kernels known to write every element of every tensor they allocate.
  static void Set(TensorArena* arena, bool zero_fill = true);

 private:
  TensorArena* prev_;
};

// The calling thread's current arena, or null.
TensorArena* CurrentArena();
// Whether buffers from the current arena must be zero-filled (see ArenaScope::Set).
bool CurrentArenaZeroFill();

}  // namespace serveml::engine
