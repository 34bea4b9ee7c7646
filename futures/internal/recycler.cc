#include "eddy/futures/internal/recycler.h"

#include <atomic>
#include <cstring>
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

// Empty arrays kept per class for the next spills; beyond it they are
// freed (a burst's many batches, once taken, would otherwise leave as many
// arrays behind for good).
constexpr size_t kMaxSpares = 16;

// Blocks in transit between threads: an array of local_max(c) slots, the
// first `count` of them holding blocks. The arrays circulate with the
// blocks: a thread that takes a batch keeps its array as its own free list
// and leaves its old, empty one on the central list as a spare, which the
// next spill fills. So the steady state allocates no arrays, and moving a
// batch copies no pointers on the taking side.
struct Batch {
  void** slots = nullptr;
  uint32_t count = 0;
};

struct Central {
  std::mutex mu;
  std::vector<Batch> batches;  // guarded by mu
  std::vector<void**> spares;  // empty arrays; guarded by mu
  size_t bytes = 0;            // guarded by mu
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

void** new_slots(size_t c) { return new (std::nothrow) void*[local_max(c)]; }

// Gives this thread's list of class c its array. False if none could be had
// (then the list stays without one, and the caller does without).
bool take_slots(size_t c) {
  FreeList& local = t_cache.lists[c];
  local.slots = new_slots(c);
  if (local.slots == nullptr) return false;
  local.capacity = local_max(c);
  return true;
}

// A block the recycler does not keep goes back to operator delete, counted.
void release_block(void* p) {
  ::operator delete(p);
  if (t_cache.state != kLive) {
    g_released.fetch_add(1, std::memory_order_relaxed);
  } else if (++t_cache.released_unpublished == kStatsBatch) {
    g_released.fetch_add(kStatsBatch, std::memory_order_relaxed);
    t_cache.released_unpublished = 0;
  }
}

// Under central.mu: files a batch. False, with nothing changed, when it
// would pass the bound.
bool file_batch_locked(size_t c, Central& central, Batch batch) {
  const size_t bytes = size_t{batch.count} * class_size(c);
  if (central.bytes + bytes > kCentralMaxBytes) {
    central.full.store(true, std::memory_order_relaxed);
    return false;
  }
  central.batches.push_back(batch);
  central.bytes += bytes;
  central.nonempty.store(true, std::memory_order_relaxed);
  g_central_bytes.fetch_add(bytes, std::memory_order_relaxed);
  return true;
}

// Takes a batch from the central list, leaving `spare` (an empty array, or
// nullptr) there in exchange. {nullptr, 0} when there is none.
Batch pop_central(size_t c, void** spare) {
  Central& central = centrals()[c];
  if (!central.nonempty.load(std::memory_order_relaxed)) return {};
  std::lock_guard<std::mutex> lock(central.mu);
  if (central.batches.empty()) return {};
  Batch batch = central.batches.back();
  central.batches.pop_back();
  if (central.batches.empty()) central.nonempty.store(false, std::memory_order_relaxed);
  central.full.store(false, std::memory_order_relaxed);
  const size_t bytes = size_t{batch.count} * class_size(c);
  central.bytes -= bytes;
  g_central_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  if (spare != nullptr) {
    if (central.spares.size() < kMaxSpares) {
      central.spares.push_back(spare);
    } else {
      delete[] spare;  // after a burst: more arrays than spills will want
    }
  }
  return batch;
}

// Hands the thread's blocks to the central list when the thread exits
// (within the bound; the rest go back to operator delete).
struct CacheFlusher {
  ~CacheFlusher() {
    g_fresh.fetch_add(std::exchange(t_cache.fresh_unpublished, 0), std::memory_order_relaxed);
    g_released.fetch_add(std::exchange(t_cache.released_unpublished, 0), std::memory_order_relaxed);
    t_cache.state = kDead;
    for (size_t c = 0; c < kClasses; ++c) {
      FreeList& local = t_cache.lists[c];
      void** slots = std::exchange(local.slots, nullptr);
      const uint32_t count = std::exchange(local.count, 0);
      local.capacity = 0;
      if (slots == nullptr) continue;
      if (count != 0) {
        Central& central = centrals()[c];
        std::lock_guard<std::mutex> lock(central.mu);
        if (file_batch_locked(c, central, Batch{slots, count})) continue;
      }
      for (uint32_t i = 0; i < count; ++i) ::operator delete(slots[i]);
      g_released.fetch_add(count, std::memory_order_relaxed);
      delete[] slots;
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

// The thread's list of class c is full and `p` is being freed. The older
// half of the list (the bottom of the stack, coldest in cache) goes to the
// central list, in a spare array, and p joins the rest.
//
// Unless the central list is full: then this is a burst beyond the
// recycler's bounds (a million futures dropped at once), and p goes
// straight back to operator delete. Blocks then reach glibc in the order
// the program frees them, as without a recycler: released in half-lists,
// in stack order, they cost W8 at 1M children ~12 ns more per child to
// free (28 -> 16 ns), mostly in glibc coalescing them later.
void spill(size_t c, void* p) noexcept {
  FreeList& local = t_cache.lists[c];
  Central& central = centrals()[c];
  const uint32_t half = local.count / 2;
  bool moved = false;
  if (!central.full.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(central.mu);
    void** slots = nullptr;
    if (!central.spares.empty()) {
      slots = central.spares.back();
      central.spares.pop_back();
    } else {
      slots = new_slots(c);
    }
    if (slots != nullptr) {
      std::memcpy(slots, local.slots, size_t{half} * sizeof(void*));
      moved = file_batch_locked(c, central, Batch{slots, half});
      if (!moved) central.spares.push_back(slots);
    }
  }
  if (!moved) {
    release_block(p);
    return;
  }
  std::memmove(local.slots, local.slots + half, size_t{local.count - half} * sizeof(void*));
  local.count -= half;
  local.slots[local.count++] = p;
}

}  // namespace

void* allocate_slow(size_t c) {
  if (t_cache.state == kUnused) start_cache();
  if (t_cache.state == kDead) return fresh_block(c);
  FreeList& local = t_cache.lists[c];  // empty
  Batch batch = pop_central(c, local.slots);
  if (batch.count == 0) {
    if (local.slots == nullptr) take_slots(c);  // so that this thread keeps what it frees
    return fresh_block(c);
  }
  local.slots = batch.slots;
  local.capacity = local_max(c);
  local.count = batch.count - 1;
  return local.slots[local.count];
}

// The thread's cache is not started yet, or already flushed (the thread is
// exiting), or this class has no array yet, or its list is full.
void deallocate_slow(void* p, size_t c) noexcept {
  if (t_cache.state == kUnused) start_cache();
  FreeList& local = t_cache.lists[c];
  if (t_cache.state == kDead || (local.capacity == 0 && !take_slots(c))) {
    release_block(p);
    return;
  }
  if (local.count < local.capacity) {
    local.slots[local.count++] = p;  // the array was just taken
    return;
  }
  spill(c, p);
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
