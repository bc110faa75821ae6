#include "engine/arena.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <new>

namespace serveml::engine {

namespace {
constexpr size_t kCtrlBytes = 64;     // room for one shared_ptr control block
constexpr size_t kHeaderBytes = 128;  // Block header; the buffer starts right after it
constexpr std::align_val_t kAlign{64};
thread_local TensorArena* tls_current = nullptr;
thread_local bool tls_zero_fill = true;
}  // namespace

struct TensorArena::Block {
  // Storage for the control block of the shared_ptr that currently hands out this block.
  alignas(64) unsigned char ctrl[kCtrlBytes];
  Block* next = nullptr;
  size_t capacity = 0;
  uint64_t last_used = 0;
  int cls = 0;

  void* data() { return reinterpret_cast<unsigned char*>(this) + kHeaderBytes; }
};

// Allocator for the shared_ptr control block of an arena buffer: the control block lives
// in the block's header, and its deallocation (the last thing that touches the block)
// gives the block back to the arena. Holds the arena alive while the buffer is out.
template <typename T>
struct ArenaBlockAllocator {
  using value_type = T;

  ArenaBlockAllocator(std::shared_ptr<TensorArena> a, TensorArena::Block* b) noexcept
      : arena(std::move(a)), block(b) {}
  template <typename U>
  ArenaBlockAllocator(const ArenaBlockAllocator<U>& o) noexcept  // NOLINT: rebinding
      : arena(o.arena), block(o.block) {}

  T* allocate(size_t n) {
    static_assert(sizeof(T) <= kCtrlBytes && alignof(T) <= 64,
                  "shared_ptr control block does not fit the arena block header");
    if (n != 1) throw std::bad_alloc();
    return reinterpret_cast<T*>(block->ctrl);
  }
  void deallocate(T*, size_t) noexcept { arena->Recycle(block); }

  template <typename U>
  bool operator==(const ArenaBlockAllocator<U>& o) const noexcept {
    return block == o.block;
  }

  std::shared_ptr<TensorArena> arena;
  TensorArena::Block* block;
};

namespace {
struct NoopDelete {
  void operator()(void*) const noexcept {}
};
}  // namespace

TensorArena::TensorArena(size_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}

TensorArena::~TensorArena() {
  for (Block*& head : free_) {
    while (head) {
      Block* b = head;
      head = b->next;
      FreeBlock(b);
    }
  }
}

int TensorArena::ClassOf(size_t bytes) {
  if (bytes <= 256) return bytes <= 64 ? 0 : static_cast<int>((bytes + 63) / 64) - 1;
  const int e = static_cast<int>(std::bit_width(bytes - 1)) - 1;  // 2^e < bytes <= 2^(e+1)
  const size_t base = size_t{1} << e;
  const size_t step = base >> 2;
  const size_t q = (bytes - base + step - 1) / step;  // 1..4
  return 4 + (e - 8) * 4 + static_cast<int>(q) - 1;
}

size_t TensorArena::ClassBytes(size_t bytes) {
  const int cls = ClassOf(bytes);
  if (cls < 4) return 64 * static_cast<size_t>(cls + 1);
  const int e = (cls - 4) / 4 + 8;
  const size_t q = static_cast<size_t>((cls - 4) % 4 + 1);
  const size_t base = size_t{1} << e;
  return base + q * (base >> 2);
}

TensorArena::Block* TensorArena::NewBlock(int cls, size_t capacity) {
  static_assert(sizeof(Block) <= kHeaderBytes);
  void* mem = ::operator new(kHeaderBytes + capacity, kAlign);
  Block* b = ::new (mem) Block();
  b->capacity = capacity;
  b->cls = cls;
  return b;
}

void TensorArena::FreeBlock(Block* b) {
  b->~Block();
  ::operator delete(static_cast<void*>(b), kAlign);
}

std::shared_ptr<void> TensorArena::Wrap(Block* b) {
  return std::shared_ptr<void>(b->data(), NoopDelete{},
                               ArenaBlockAllocator<char>(shared_from_this(), b));
}

std::shared_ptr<void> TensorArena::Allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const int cls = ClassOf(bytes);
  Block* b = nullptr;
  uint64_t now = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now = clock_;
    b = free_[cls];
    if (b) {
      free_[cls] = b->next;
      b->next = nullptr;
      stats_.cached_bytes -= b->capacity;
      --stats_.cached_blocks;
      ++stats_.hits;
    } else {
      ++stats_.misses;
    }
    const size_t cap = b ? b->capacity : ClassBytes(bytes);
    stats_.live_bytes += cap;
    live_.store(stats_.live_bytes, std::memory_order_relaxed);
    window_peak_ = std::max<uint64_t>(window_peak_, stats_.live_bytes);
  }
  if (!b) {
    try {
      b = NewBlock(cls, ClassBytes(bytes));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.live_bytes -= ClassBytes(bytes);
      live_.store(stats_.live_bytes, std::memory_order_relaxed);
      throw;
    }
  }
  b->last_used = now;  // the block is ours until its buffer is released
  return Wrap(b);
}

void TensorArena::Reserve(const std::vector<size_t>& sizes) {
  for (size_t bytes : sizes) {
    if (bytes == 0) continue;
    const int cls = ClassOf(bytes);
    const size_t cap = ClassBytes(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (detached_ || stats_.cached_bytes + cap > CapLocked()) return;
    }
    Block* b = NewBlock(cls, cap);
    std::lock_guard<std::mutex> lock(mu_);
    b->last_used = clock_;
    PushLocked(b);
  }
}

void TensorArena::PushLocked(Block* b) {
  b->next = free_[b->cls];
  free_[b->cls] = b;
  stats_.cached_bytes += b->capacity;
  ++stats_.cached_blocks;
}

void TensorArena::Recycle(Block* b) {
  std::unique_lock<std::mutex> lock(mu_);
  stats_.live_bytes -= b->capacity;
  live_.store(stats_.live_bytes, std::memory_order_relaxed);
  const size_t cap = CapLocked();
  if (detached_ || b->capacity > cap) {
    ++stats_.evictions;
    lock.unlock();
    FreeBlock(b);
    return;
  }
  b->last_used = clock_;
  PushLocked(b);
  if (stats_.cached_bytes > cap) EvictLocked(cap);
}

void TensorArena::EvictLocked(size_t target) {
  while (stats_.cached_bytes > target) {
    // The least recently used free block: each list is most-recent-first, so look at tails.
    Block** victim = nullptr;
    uint64_t oldest = std::numeric_limits<uint64_t>::max();
    for (Block*& head : free_) {
      for (Block** p = &head; *p; p = &(*p)->next) {
        if (!(*p)->next && (*p)->last_used <= oldest) {
          oldest = (*p)->last_used;
          victim = p;
        }
      }
    }
    if (!victim) return;
    Block* b = *victim;
    *victim = nullptr;
    stats_.cached_bytes -= b->capacity;
    --stats_.cached_blocks;
    ++stats_.evictions;
    FreeBlock(b);
  }
}

void TensorArena::EndRun(uint64_t max_idle_runs) {
  std::lock_guard<std::mutex> lock(mu_);
  ++clock_;
  if (clock_ % 8 != 0) return;
  if (clock_ % 64 == 0) {  // peak live bytes over the last 64-128 runs
    prev_window_peak_ = window_peak_;
    window_peak_ = stats_.live_bytes;
  }
  for (Block*& head : free_) {
    for (Block** p = &head; *p;) {
      Block* b = *p;
      if (clock_ - b->last_used > max_idle_runs) {
        *p = b->next;
        stats_.cached_bytes -= b->capacity;
        --stats_.cached_blocks;
        ++stats_.evictions;
        FreeBlock(b);
      } else {
        p = &b->next;
      }
    }
  }
}

void TensorArena::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  detached_ = true;
  for (Block*& head : free_) {
    while (head) {
      Block* b = head;
      head = b->next;
      stats_.cached_bytes -= b->capacity;
      --stats_.cached_blocks;
      ++stats_.evictions;
      FreeBlock(b);
    }
  }
}

TensorArena::Stats TensorArena::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.cap_bytes = CapLocked();
  return s;
}

size_t TensorArena::CapLocked() const {
  const uint64_t peak = std::max(window_peak_, prev_window_peak_);
  return std::max<size_t>(max_cached_bytes_, static_cast<size_t>(peak + peak / 4));
}

ArenaScope::ArenaScope(TensorArena* arena) : prev_(tls_current) { tls_current = arena; }
ArenaScope::~ArenaScope() {
  tls_current = prev_;
  tls_zero_fill = true;
}
void ArenaScope::Set(TensorArena* arena, bool zero_fill) {
  tls_current = arena;
  tls_zero_fill = zero_fill;
}

TensorArena* CurrentArena() { return tls_current; }
bool CurrentArenaZeroFill() { return tls_zero_fill; }

}  // namespace serveml::engine
