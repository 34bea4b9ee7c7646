// Recycled memory for eddy's per-operation objects: task records, future
// states, delivery blocks. Not a public API.
//
// Why: offloading work allocates on one thread (the loop or a producer)
// and frees on another (a pool worker), millions of times a second. glibc's
// per-thread cache holds 7 blocks per size, so nearly every such pair goes
// to the shared arena and its lock, which the producer and the workers then
// fight over (perf on W1: most of the time in __lll_lock_wait_private and
// _int_malloc). Here each thread keeps its own free lists per size class,
// and whole batches of blocks move between threads through a central list
// under one lock per batch, so a block freed on a worker comes back to the
// producer at the cost of a pointer pop. This is tcmalloc's transfer cache
// in miniature.
//
// The free lists are arrays of pointers, not lists linked through the
// blocks: a block freed on another core is then handed out without reading
// it. Linked through the blocks, every allocation first loaded the next
// block's link from memory the freeing core last wrote: one cross-core
// miss per allocation, each waiting for the one before (on a VM whose
// cores are far apart, where a producer's submits spent most of their time
// on that load; bench/FINDINGS.md, eleventh pass).
//
// Bounds: a thread keeps at most local_max(c) blocks per class (the older
// half goes to the central list when it overflows), in an array of that
// many pointers (at most 4 KB; ~24 KB for a thread that uses every class);
// the central list keeps at most kCentralMaxBytes per class and returns the
// rest to operator delete. A thread's blocks go to the central list when it
// exits. Blocks above kMaxRecycled bytes, and every block in
// AddressSanitizer builds (so that it keeps catching use-after-free), go
// straight to operator new/delete.
//
// Threading: every function is safe from any thread.
#ifndef EDDY_FUTURES_INTERNAL_RECYCLER_H_
#define EDDY_FUTURES_INTERNAL_RECYCLER_H_

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define EDDY_RECYCLER_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDDY_RECYCLER_BYPASS 1
#endif
#endif
#ifndef EDDY_RECYCLER_BYPASS
#define EDDY_RECYCLER_BYPASS 0
#endif

namespace eddy::internal {

inline constexpr size_t kRecycleGranule = 32;
inline constexpr size_t kMaxRecycled = 512;

// Memory for `size` bytes, aligned as operator new(size) is.
inline void* recycled_allocate(size_t size);
// Gives back memory from recycled_allocate(size), with the same size.
inline void recycled_deallocate(void* p, size_t size) noexcept;

// Counters for tests and benchmarks (process-wide).
struct RecyclerStats {
  // Blocks taken from operator new; a thread's count is published in
  // batches of 64 (and when it exits), so recent ones may not show yet.
  uint64_t fresh = 0;
  // Blocks given back to operator delete; a burst beyond the bounds
  // (spill) publishes them in batches of 64 too.
  uint64_t released = 0;
  uint64_t central_bytes = 0;  // bytes on the central lists now
};
RecyclerStats recycler_stats();

// The per-thread cache behind the two functions above. Their fast paths (a
// pop or a push on this thread's list) are inline: with the size known at
// compile time they are a handful of instructions, where a call into the
// library cost more than the list operation (every future's life pays both).
namespace recycler {

inline constexpr size_t kClasses = kMaxRecycled / kRecycleGranule;
// A thread keeps about this many bytes per size class before it hands half
// of them to the central list, within [kMinLocal, kMaxLocal] blocks.
inline constexpr size_t kLocalBytes = 32 * 1024;
inline constexpr uint32_t kMinLocal = 32;
inline constexpr uint32_t kMaxLocal = 512;

constexpr size_t class_of(size_t size) { return size == 0 ? 0 : (size - 1) / kRecycleGranule; }
constexpr size_t class_size(size_t c) { return (c + 1) * kRecycleGranule; }
constexpr uint32_t local_max(size_t c) {
  size_t n = kLocalBytes / class_size(c);
  return static_cast<uint32_t>(n < kMinLocal ? kMinLocal : n > kMaxLocal ? kMaxLocal : n);
}

// A thread's free blocks of one class: a stack of pointers in an array of
// local_max(c) slots, taken on the thread's first use of the class (until
// then, and after the thread's cache is flushed, capacity is 0 and every
// call takes the slow path). capacity is local_max(c) or 0: the free's fast
// path then needs one comparison for "has an array" and "has room".
struct FreeList {
  void** slots = nullptr;
  uint32_t count = 0;
  uint32_t capacity = 0;
};

enum : uint8_t { kUnused = 0, kLive = 1, kDead = 2 };

// Trivially destructible, so it stays usable while the thread exits (other
// thread_local destructors may still free blocks; they go to operator
// delete once the cache is dead).
struct ThreadCache {
  FreeList lists[kClasses];
  uint32_t fresh_unpublished;
  uint32_t released_unpublished;
  uint8_t state;
};
extern constinit thread_local ThreadCache t_cache;

// The slow paths (recycler.cc).
void* allocate_slow(size_t c);
void deallocate_slow(void* p, size_t c) noexcept;

}  // namespace recycler

inline void* recycled_allocate(size_t size) {
  if (EDDY_RECYCLER_BYPASS || size > kMaxRecycled) return ::operator new(size);
  const size_t c = recycler::class_of(size);
  recycler::FreeList& local = recycler::t_cache.lists[c];
  if (local.count != 0) [[likely]] return local.slots[--local.count];
  return recycler::allocate_slow(c);
}

inline void recycled_deallocate(void* p, size_t size) noexcept {
  if (p == nullptr) return;
  if (EDDY_RECYCLER_BYPASS || size > kMaxRecycled) {
    ::operator delete(p);
    return;
  }
  const size_t c = recycler::class_of(size);
  recycler::FreeList& local = recycler::t_cache.lists[c];
  if (local.count < local.capacity) [[likely]] {
    local.slots[local.count++] = p;
    return;
  }
  recycler::deallocate_slow(p, c);
}

// Base class giving a type (and the types derived from it, through a
// virtual destructor) recycled operator new/delete. Over-aligned types use
// the global aligned forms.
struct Recycled {
  static void* operator new(size_t size) { return recycled_allocate(size); }
  static void operator delete(void* p, size_t size) noexcept { recycled_deallocate(p, size); }
  static void* operator new(size_t size, std::align_val_t align) {
    return ::operator new(size, align);
  }
  static void operator delete(void* p, size_t, std::align_val_t align) noexcept {
    // Unsized: clang enables sized deallocation only with -fsized-deallocation.
    ::operator delete(p, align);
  }
};

// A standard allocator over the same memory, for std::allocate_shared.
template <class T>
struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() = default;
  template <class U>
  RecyclingAllocator(const RecyclingAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
    } else {
      return static_cast<T*>(recycled_allocate(n * sizeof(T)));
    }
  }
  void deallocate(T* p, size_t n) noexcept {
    if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      ::operator delete(p, std::align_val_t(alignof(T)));
    } else {
      recycled_deallocate(p, n * sizeof(T));
    }
  }
  template <class U>
  friend bool operator==(const RecyclingAllocator&, const RecyclingAllocator<U>&) noexcept {
    return true;
  }
};

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_RECYCLER_H_
