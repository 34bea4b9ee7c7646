// Small helpers for the peers eddy is measured against: Boost.Asio and
// libuv, both from Debian packages (@boost//:asio, @libuv//:libuv). Each
// peer is used the way its documentation suggests, its fastest
// straightforward way: Asio's io_context (concurrency hint 1: one thread
// runs it) on the calling thread and asio::thread_pool; libuv's loop on the
// calling thread, its threadpool (sized like the others through
// UV_THREADPOOL_SIZE, set by bench_main), uv_queue_work, uv_timer and
// uv_async. Every pool gets the same number of threads (workers()).
//
// Threading: a UvLoop belongs to the thread that runs it, as uv_loop_t does.
#ifndef EDDY_BENCH_PEERS_H_
#define EDDY_BENCH_PEERS_H_

#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <latch>

// ThreadSanitizer does not model the std::atomic_thread_fence that Asio's
// handler invocation brackets use (GCC's -Wtsan says so for every handler);
// the scheduler's mutex orders the same accesses, visibly to tsan. Only the
// sanitizer build of bench_smoke_test is affected.
#if defined(__SANITIZE_THREAD__) && !defined(BOOST_ASIO_DISABLE_FENCED_BLOCK)
#define BOOST_ASIO_DISABLE_FENCED_BLOCK 1
#endif
// Boost 1.74 turns on co_await support for clang only with the Coroutines
// TS (<experimental/coroutine>); clang 14 in C++20 mode has the standard
// coroutines that the same code uses under g++ (--config=clang builds W9).
#if defined(__clang__) && !defined(BOOST_ASIO_HAS_CO_AWAIT) && \
    defined(__cpp_impl_coroutine) && __cpp_impl_coroutine >= 201902
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif
#include <boost/asio.hpp>

namespace eddy::bench {

namespace asio = boost::asio;

// Aborts with libuv's message when a libuv call fails.
inline void uv_check(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "%s: %s\n", what, uv_strerror(rc));
    std::abort();
  }
}

// A uv_loop_t that is initialised on construction and, on destruction,
// closes whatever handles are left and then the loop itself.
class UvLoop {
 public:
  UvLoop() { uv_check(uv_loop_init(&loop_), "uv_loop_init"); }
  ~UvLoop() {
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_check(uv_loop_close(&loop_), "uv_loop_close");
  }
  UvLoop(const UvLoop&) = delete;
  UvLoop& operator=(const UvLoop&) = delete;

  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_;
};

// Runs `tasks` no-op tasks through an Asio thread pool and waits for them:
// the pool's threads are started and have run before anything is timed.
inline void warm_up(asio::thread_pool& pool, int tasks) {
  std::latch done(tasks);
  for (int i = 0; i < tasks; ++i) asio::post(pool, [&done] { done.count_down(); });
  done.wait();
}

// The same for libuv's global pool (started on the first uv_queue_work):
// queues `tasks` no-op works on `loop` and runs it until they are back.
inline void warm_up(uv_loop_t* loop, int tasks) {
  struct Warm {
    uv_work_t req;
  };
  auto* reqs = new Warm[tasks];
  for (int i = 0; i < tasks; ++i) {
    uv_check(uv_queue_work(
                 loop, &reqs[i].req, [](uv_work_t*) {}, [](uv_work_t*, int) {}),
             "uv_queue_work");
  }
  uv_run(loop, UV_RUN_DEFAULT);
  delete[] reqs;
}

}  // namespace eddy::bench

#endif  // EDDY_BENCH_PEERS_H_
