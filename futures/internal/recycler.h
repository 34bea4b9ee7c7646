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
// Bounds: a thread keeps at most kLocalMax blocks per class (half go to
// the central list when it overflows); the central list keeps at most
// kCentralMaxBytes per class and returns the rest to operator delete. A
// thread's blocks go to the central list when it exits. Blocks above
// kMaxRecycled bytes, and every block in AddressSanitizer builds (so that
// it keeps catching use-after-free), go straight to operator new/delete.
//
// Threading: every function is safe from any thread.
#ifndef EDDY_FUTURES_INTERNAL_RECYCLER_H_
#define EDDY_FUTURES_INTERNAL_RECYCLER_H_

#include <cstddef>
#include <cstdint>
#include <new>

namespace eddy::internal {

inline constexpr size_t kRecycleGranule = 32;
inline constexpr size_t kMaxRecycled = 512;

// Memory for `size` bytes, aligned as operator new(size) is.
void* recycled_allocate(size_t size);
// Gives back memory from recycled_allocate(size), with the same size.
void recycled_deallocate(void* p, size_t size) noexcept;

// Counters for tests and benchmarks (process-wide).
struct RecyclerStats {
  // Blocks taken from operator new; a thread's count is published in
  // batches of 64 (and when it exits), so recent ones may not show yet.
  uint64_t fresh = 0;
  uint64_t released = 0;     // blocks given back to operator delete
  uint64_t central_bytes = 0;  // bytes on the central lists now
};
RecyclerStats recycler_stats();

// Base class giving a type (and the types derived from it, through a
// virtual destructor) recycled operator new/delete. Over-aligned types use
// the global aligned forms.
struct Recycled {
  static void* operator new(size_t size) { return recycled_allocate(size); }
  static void operator delete(void* p, size_t size) noexcept { recycled_deallocate(p, size); }
  static void* operator new(size_t size, std::align_val_t align) {
    return ::operator new(size, align);
  }
  static void operator delete(void* p, size_t size, std::align_val_t align) noexcept {
    ::operator delete(p, size, align);
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
      ::operator delete(p, n * sizeof(T), std::align_val_t(alignof(T)));
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
