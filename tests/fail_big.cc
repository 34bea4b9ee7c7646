#include "tests/fail_big.h"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

// > 0: that many more big allocations fail; -1: every one fails.
std::atomic<int> g_fail_big{0};
thread_local bool t_exempt = false;

void* allocate(size_t size) {
  if (size >= eddy::testing::kBigAllocation && !t_exempt) {
    int n = g_fail_big.load(std::memory_order_relaxed);
    while (n != 0) {
      if (n < 0) throw std::bad_alloc();
      if (g_fail_big.compare_exchange_weak(n, n - 1)) throw std::bad_alloc();
    }
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

}  // namespace

namespace eddy::testing {
void fail_big_allocations(int n) { g_fail_big.store(n); }
void exempt_this_thread_from_big_failures(bool exempt) { t_exempt = exempt; }
}  // namespace eddy::testing

void* operator new(size_t size) { return allocate(size); }
void* operator new[](size_t size) { return allocate(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t size, const std::nothrow_t& t) noexcept { return operator new(size, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
