// W4 loop_callbacks: 10,000,000 same-thread add_callback no-ops.
//
// Two shapes, every callback posted from the loop's own thread:
//   batch  a driver callback posts 1,000 no-ops and then itself, so the
//          queue stays small (10,000,000 queued closures at once would
//          measure the allocator instead). 1,000 handlers outstanding is
//          the shape where Asio 1.74 allocates every handler: it recycles
//          one handler block per thread (review 8, F3).
//   chain  each callback posts the next: one outstanding at a time (the
//          shape of W9's one-loop-callback baseline), where Asio recycles.
// Contenders, in both shapes:
//   Eddy        IOLoop::add_callback from a loop callback.
//   Asio        asio::post(io_context, fn) from a handler (concurrency hint
//               1, which lets Asio use its thread-private queue).
//   AsioUnsafe  the same on io_context(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE):
//               no scheduler locking, and posts from other threads are not
//               allowed. A variant, not the peer: eddy's add_callback stays
//               thread-safe, and a loop that gets offloaded results back
//               needs cross-thread posts.
//   libuv has no same-thread callback queue (uv_async coalesces, uv_idle
//         runs one fixed callback): no row.
//
// Look for: ns_per_item at or below Asio's in both shapes; allocs_per_item
// ~0 (a no-op lambda fits AnyInvocable's inline storage; the queue is
// reused).
#include <algorithm>
#include <cstdint>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

constexpr int64_t kBatch = 1'000;

// --- eddy --------------------------------------------------------------------

class EddyPoster {
 public:
  explicit EddyPoster(IOLoop& loop) : loop_(loop) {}

  // Loop thread: posts n no-ops, batch by batch, then stops the loop.
  void start(int64_t n) {
    remaining_ = n;
    batch();
  }

 private:
  void batch() {
    int64_t k = std::min(kBatch, remaining_);
    remaining_ -= k;
    for (int64_t i = 0; i < k; ++i) loop_.add_callback([] {});
    if (remaining_ > 0) {
      loop_.add_callback([this] { batch(); });
    } else {
      loop_.add_callback([this] { loop_.stop(); });  // FIFO: after the no-ops
    }
  }

  IOLoop& loop_;
  int64_t remaining_ = 0;
};

void BM_LoopCallbacks_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW4Callbacks);
  IOLoop loop;
  loop.make_current();
  EddyPoster poster(loop);
  poster.start(kBatch * 10);  // warm the queues up to their working size
  loop.start();
  uint64_t allocs = allocations();
  for (auto _ : state) {
    poster.start(n);
    loop.start();
  }
  finish(state, n, allocs);
  IOLoop::clear_current();
}
EDDY_WORKLOAD(BM_LoopCallbacks_Eddy);

// --- Boost.Asio --------------------------------------------------------------

class AsioPoster {
 public:
  explicit AsioPoster(asio::io_context& io) : io_(io) {}

  // Posts n no-ops, batch by batch, and runs them all.
  void run(int64_t n) {
    remaining_ = n;
    asio::post(io_, [this] { batch(); });
    io_.run();  // returns when no work is left
    io_.restart();
  }

 private:
  void batch() {
    int64_t k = std::min(kBatch, remaining_);
    remaining_ -= k;
    for (int64_t i = 0; i < k; ++i) asio::post(io_, [] {});
    if (remaining_ > 0) asio::post(io_, [this] { batch(); });
  }

  asio::io_context& io_;
  int64_t remaining_ = 0;
};

// Runs n callbacks in `Shape` on io_context(hint), once to warm up.
template <class Shape>
void asio_callbacks(benchmark::State& state, int hint) {
  const int64_t n = scaled(kW4Callbacks);
  asio::io_context io(hint);
  Shape poster(io);
  poster.run(kBatch * 10);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    poster.run(n);
  }
  finish(state, n, allocs);
}

void BM_LoopCallbacks_Asio(benchmark::State& state) { asio_callbacks<AsioPoster>(state, 1); }
EDDY_WORKLOAD(BM_LoopCallbacks_Asio);

void BM_LoopCallbacks_AsioUnsafe(benchmark::State& state) {
  asio_callbacks<AsioPoster>(state, BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
}
EDDY_WORKLOAD(BM_LoopCallbacks_AsioUnsafe);

// --- the chain: each callback posts the next ---------------------------------

class EddyChain {
 public:
  explicit EddyChain(IOLoop& loop) : loop_(loop) {}

  // Loop thread: queues the first of n callbacks; the last stops the loop.
  void start(int64_t n) {
    remaining_ = n;
    loop_.add_callback([this] { step(); });
  }

 private:
  void step() {
    if (--remaining_ > 0) {
      loop_.add_callback([this] { step(); });
    } else {
      loop_.stop();
    }
  }

  IOLoop& loop_;
  int64_t remaining_ = 0;
};

void BM_LoopCallbacksChain_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW4Callbacks);
  IOLoop loop;
  loop.make_current();
  EddyChain chain(loop);
  chain.start(kBatch * 10);
  loop.start();
  uint64_t allocs = allocations();
  for (auto _ : state) {
    chain.start(n);
    loop.start();
  }
  finish(state, n, allocs);
  IOLoop::clear_current();
}
EDDY_WORKLOAD(BM_LoopCallbacksChain_Eddy);

class AsioChain {
 public:
  explicit AsioChain(asio::io_context& io) : io_(io) {}

  // Runs n callbacks, each posted by the one before.
  void run(int64_t n) {
    remaining_ = n;
    asio::post(io_, [this] { step(); });
    io_.run();  // returns when no work is left
    io_.restart();
  }

 private:
  void step() {
    if (--remaining_ > 0) asio::post(io_, [this] { step(); });
  }

  asio::io_context& io_;
  int64_t remaining_ = 0;
};

void BM_LoopCallbacksChain_Asio(benchmark::State& state) { asio_callbacks<AsioChain>(state, 1); }
EDDY_WORKLOAD(BM_LoopCallbacksChain_Asio);

void BM_LoopCallbacksChain_AsioUnsafe(benchmark::State& state) {
  asio_callbacks<AsioChain>(state, BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
}
EDDY_WORKLOAD(BM_LoopCallbacksChain_AsioUnsafe);

}  // namespace
}  // namespace eddy::bench
