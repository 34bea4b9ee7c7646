// A counting global operator new: see alloc_counter.h.
//
// Each thread claims one cache-line-sized slot, on its first allocation,
// from a fixed array (claiming must not allocate: we are inside operator
// new). Slots are never released, so a counter survives its thread. Threads
// beyond the array share one overflow slot, counted with an atomic add.
#include "eddy/bench/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EDDY_BENCH_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define EDDY_BENCH_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef EDDY_BENCH_COUNT_ALLOCATIONS
#define EDDY_BENCH_COUNT_ALLOCATIONS 1
#endif

namespace eddy::bench {
namespace {

constexpr int kSlots = 1024;

struct alignas(64) Slot {
  std::atomic<uint64_t> count{0};
};

Slot g_slots[kSlots];
Slot g_overflow;
std::atomic<int> g_next_slot{0};
thread_local Slot* t_slot = nullptr;

[[maybe_unused]] inline void count_one() {
  Slot* s = t_slot;
  if (s == nullptr) {
    int i = g_next_slot.fetch_add(1, std::memory_order_relaxed);
    s = t_slot = i < kSlots ? &g_slots[i] : &g_overflow;
  }
  if (s == &g_overflow) {
    s->count.fetch_add(1, std::memory_order_relaxed);
  } else {
    // Only this thread writes its slot: a plain load and store (no locked
    // instruction) keep counting cheap; readers see a recent value.
    s->count.store(s->count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

}  // namespace

bool counting_allocations() { return EDDY_BENCH_COUNT_ALLOCATIONS != 0; }

uint64_t allocations() {
  uint64_t total = g_overflow.count.load(std::memory_order_relaxed);
  int used = g_next_slot.load(std::memory_order_relaxed);
  if (used > kSlots) used = kSlots;
  for (int i = 0; i < used; ++i) total += g_slots[i].count.load(std::memory_order_relaxed);
  return total;
}

}  // namespace eddy::bench

#if EDDY_BENCH_COUNT_ALLOCATIONS

namespace {

void* counted_alloc(std::size_t size) {
  eddy::bench::count_one();
  if (size == 0) size = 1;
  for (;;) {
    if (void* p = std::malloc(size)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  eddy::bench::count_one();
  std::size_t a = static_cast<std::size_t>(align);
  if (a < sizeof(void*)) a = sizeof(void*);
  if (size == 0) size = 1;
  for (;;) {
    void* p = nullptr;
    if (posix_memalign(&p, a, size) == 0) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

}  // namespace

void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

#endif  // EDDY_BENCH_COUNT_ALLOCATIONS
