#include "tests/count_news.h"

#include <cstdlib>
#include <new>

namespace {
thread_local int64_t t_news = 0;
}  // namespace

void* operator new(size_t size) {
  ++t_news;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace eddy::testing {

int64_t thread_news() { return t_news; }

}  // namespace eddy::testing
