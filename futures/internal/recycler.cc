#include "eddy/futures/internal/recycler.h"

#include <atomic>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace eddy::internal {
namespace recycler {

constinit thread_local ThreadCache t_cache{};

namespace {

constexpr size_t kCentralMaxBytes = size_t{4} << 20;

// Fresh blocks (and blocks a burst releases, see spill) are counted per
// thread and published in batches: an atomic add per fresh block was a
// tenth of the time of a burst of fresh allocations (a million futures
// alive at once).
constexpr uint32_t kStatsBatch = 64;

struct Central {
  std::mutex mu;
  std::vector<FreeList> batches;  // guarded by mu
  size_t bytes = 0;               // guarded by mu
  // A hint, read without mu: a thread whose own list ran dry during a burst
  // of fresh allocations does not take mu just to find the list empty.
  std::atomic<bool> nonempty{false};
  // A hint, read without mu: the last batch offered did not fit. Until a
  // batch is taken, a thread whose list overflows gives the overflowing
  // block straight back to operator delete (spill).
  std::atomic<bool> full{false};
};

// Never destroyed: blocks may be freed during static destruction.
Central* centrals() {
  static Central* c = new Central[kClasses];
  return c;
}

std::atomic<uint64_t> g_fresh{0};
std::atomic<uint64_t> g_released{0};
std::atomic<uint64_t> g_central_bytes{0};

void release_list(FreeList list) {
  uint64_t n = 0;
  for (FreeBlock* b = list.head; b != nullptr;) {
    FreeBlock* next = b->next;
    ::operator delete(static_cast<void*>(b));
    b = next;
    ++n;
  }
  g_released.fetch_add(n, std::memory_order_relaxed);
}

void push_central(size_t c, FreeList list) {
  if (list.count == 0) return;
  const size_t bytes = size_t{list.count} * class_size(c);
  Central& central = centrals()[c];
  {
    std::lock_guard<std::mutex> lock(central.mu);
    if (central.bytes + bytes <= kCentralMaxBytes) {
      central.batches.push_back(list);
      central.bytes += bytes;
      central.nonempty.store(true, std::memory_order_relaxed);
      g_central_bytes.fetch_add(bytes, std::memory_order_relaxed);
      return;
    }
    central.full.store(true, std::memory_order_relaxed);
  }
  release_list(list);
}

FreeList pop_central(size_t c) {
  Central& central = centrals()[c];
  if (!central.nonempty.load(std::memory_order_relaxed)) return {};
  std::lock_guard<std::mutex> lock(central.mu);
  if (central.batches.empty()) return {};
  FreeList list = central.batches.back();
  central.batches.pop_back();
  if (central.batches.empty()) central.nonempty.store(false, std::memory_order_relaxed);
  central.full.store(false, std::memory_order_relaxed);
  const size_t bytes = size_t{list.count} * class_size(c);
  central.bytes -= bytes;
  g_central_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  return list;
}

// Hands the thread's blocks to the central list when the thread exits.
struct CacheFlusher {
  ~CacheFlusher() {
    g_fresh.fetch_add(std::exchange(t_cache.fresh_unpublished, 0), std::memory_order_relaxed);
    g_released.fetch_add(std::exchange(t_cache.released_unpublished, 0), std::memory_order_relaxed);
    t_cache.state = kDead;
    for (size_t c = 0; c < kClasses; ++c) {
      push_central(c, t_cache.lists[c]);
      t_cache.lists[c] = {};
    }
  }
};
thread_local CacheFlusher t_flusher;

// First use on this thread: arrange the flush at thread exit.
void start_cache() {
  t_cache.state = kLive;
  (void)&t_flusher;  // odr-use: registers its destructor
}

void* fresh_block(size_t c) {
  if (t_cache.state != kLive) {
    g_fresh.fetch_add(1, std::memory_order_relaxed);
  } else if (++t_cache.fresh_unpublished == kStatsBatch) {
    g_fresh.fetch_add(kStatsBatch, std::memory_order_relaxed);
    t_cache.fresh_unpublished = 0;
  }
  return ::operator new(class_size(c));
}

}  // namespace

void* allocate_slow(size_t c) {
  if (t_cache.state == kUnused) start_cache();
  if (t_cache.state == kDead) return fresh_block(c);
  FreeList& local = t_cache.lists[c];
  FreeList batch = pop_central(c);
  if (batch.head == nullptr) return fresh_block(c);
  FreeBlock* b = batch.head;
  local.head = b->next;
  local.count = batch.count - 1;
  return b;
}

// The thread's cache is not started yet, or already flushed (the thread is
// exiting).
void deallocate_slow(void* p, size_t c) noexcept {
  if (t_cache.state == kUnused) {
    start_cache();
    recycled_deallocate(p, class_size(c));
    return;
  }
  ::operator delete(p);
  g_released.fetch_add(1, std::memory_order_relaxed);
}

// The local list of class c outgrew local_max(c): the oldest half of it
// (the far end of the stack, coldest in cache) goes to the central list.
//
// Unless the central list is full: then this is a burst beyond the
// recycler's bounds (a million futures dropped at once), and the block just
// pushed goes straight back to operator delete. Blocks then reach glibc in
// the order the program frees them, as without a recycler: released in
// half-lists, in stack order, they cost W8 at 1M children ~12 ns more per
// child to free (28 -> 16 ns), mostly in glibc coalescing them later.
void spill(size_t c) noexcept {
  FreeList& local = t_cache.lists[c];
  if (centrals()[c].full.load(std::memory_order_relaxed)) {
    FreeBlock* b = local.head;
    local.head = b->next;
    --local.count;
    ::operator delete(static_cast<void*>(b));
    if (++t_cache.released_unpublished == kStatsBatch) {
      g_released.fetch_add(kStatsBatch, std::memory_order_relaxed);
      t_cache.released_unpublished = 0;
    }
    return;
  }
  const uint32_t keep = local_max(c) / 2;
  FreeBlock* last_kept = local.head;
  for (uint32_t i = 1; i < keep; ++i) last_kept = last_kept->next;
  FreeList out{last_kept->next, local.count - keep};
  last_kept->next = nullptr;
  local.count = keep;
  push_central(c, out);
}

}  // namespace recycler

RecyclerStats recycler_stats() {
  using namespace recycler;
  RecyclerStats s;
  s.fresh = g_fresh.load(std::memory_order_relaxed);
  s.released = g_released.load(std::memory_order_relaxed);
  s.central_bytes = g_central_bytes.load(std::memory_order_relaxed);
  return s;
}

}  // namespace eddy::internal
