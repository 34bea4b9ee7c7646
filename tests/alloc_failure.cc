// The replaced global operator new of alloc_failure.h.
//
// The per-thread state is constinit thread_local: reading it inside
// operator new must not allocate (no lazy initialisation). Every form of
// new and delete is replaced, so that memory always comes from malloc and
// goes back to free (sanitizers intercept both).
#include "tests/alloc_failure.h"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace eddy::testing {
namespace {

constinit thread_local long t_countdown = -1;  // -1: disarmed
constinit thread_local bool t_fired = false;
std::atomic<int64_t> g_outstanding{0};

void* allocate(std::size_t size, std::size_t align) {
  if (t_countdown >= 0 && t_countdown-- == 0) {
    t_fired = true;
    throw std::bad_alloc();
  }
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  g_outstanding.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  g_outstanding.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void fail_allocation(long n) {
  t_fired = false;
  t_countdown = n;
}
void disarm_allocation_failure() { t_countdown = -1; }
bool allocation_failure_fired() { return t_fired; }
int64_t outstanding_allocations() { return g_outstanding.load(std::memory_order_relaxed); }

}  // namespace eddy::testing

using eddy::testing::allocate;
using eddy::testing::deallocate;

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, static_cast<std::size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, static_cast<std::size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(p);
}
