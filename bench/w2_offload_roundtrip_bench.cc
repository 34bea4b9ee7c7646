// W2 offload_roundtrip: the loop submits one tiny task to a pool, the
// result comes back on the loop thread, then the next; 100,000 sequential
// round trips, each timed into a histogram (p50, p99).
//
// Every contender: a loop on the benchmark thread, a pool of workers()
// threads, the task returns its argument + 1, the loop adds it to a sum.
//   Eddy         loop.run_in_executor(pool, fn) -> Future; its done callback
//                starts the next round trip.
//   EddyCoro     the same from a coroutine: co_await run_in_executor(...).
//   EddyAddFuture pool.submit(fn) -> ConcurrentFuture, loop.add_future(f, cb):
//                the lower-level bridge.
//   Asio         asio::post(pool, fn), which asio::post(io_context, cb)s back.
//                With no I/O object or timer, Asio's io_context sleeps on a
//                condition variable, not in epoll: its hop back is a futex
//                wake, cheaper than any epoll loop's eventfd hop.
//   AsioReactor  the same with a timer pending on the io_context (as any
//                program with a socket or a timer has): run() then sleeps
//                in epoll_wait, and the hop back is an eventfd write, as
//                eddy's (whose loop always polls its fds).
//   Libuv        uv_queue_work; its after-work callback (on the loop thread)
//                queues the next.
// The floors (floor_bench.cc, same binary) bound what any of them can do.
//
// Back to back (the rows above), eddy's worker and loop poll for each other
// briefly before they sleep, so a streamed round trip makes neither hop of
// BM_Floor_RoundTrip (review 8, F1); its floor is BM_Floor_CacheLine. The
// sporadic rows wait 1 ms on a loop timer between round trips (2,000 trips,
// kW2SporadicTrips), long enough for every pool and loop to go to sleep, so
// each trip wakes a pool thread and is woken back: the two hops the floor
// measures. Only the round trip is timed into the histogram, not the gap;
// CPU time (process-wide) covers both, and an idle gap costs ~0 CPU unless
// someone polls through it.
//   OffloadSporadic_Eddy   run_in_executor + done callback; call_later(1 ms)
//   OffloadSporadic_Asio   post / post back; steady_timer(1 ms)
//   OffloadSporadic_Libuv  uv_queue_work; uv_timer_start(1 ms)
//
// Look for: streamed, eddy's p50 below both peers' and within a few x of
// BM_Floor_CacheLine; sporadic, eddy's p50 within 2x of BM_Floor_RoundTrip's
// and below both peers', and its CPU time per trip (cpu_time / N) against
// theirs; p99 within a few x of p50.
#include <chrono>
#include <cstdint>
#include <optional>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/eddy_offload.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

constexpr int kWarmRoundTrips = 200;
constexpr int kWarmSporadicTrips = 20;
constexpr auto kSporadicGap = std::chrono::milliseconds(1);

int64_t tiny_task(int64_t v) { return v + 1; }

// --- eddy --------------------------------------------------------------------

// How a round trip crosses to the pool and back.
enum class Bridge {
  kRunInExecutor,  // IOLoop::run_in_executor, a loop Future and its callback
  kAddFuture,      // the lower level: submit() and IOLoop::add_future()
};

// Drives n sequential round trips from completion callbacks.
template <Bridge kBridge>
class EddyRoundTrips {
 public:
  EddyRoundTrips(IOLoop& loop, ThreadPoolExecutor& pool, LatencyHistogram* hist)
      : loop_(loop), pool_(pool), hist_(hist) {}

  // Loop thread. Resolves the returned future after n round trips.
  Future<void> run(int64_t n) {
    remaining_ = n;
    done_ = Future<void>();
    next();
    return done_;
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    int64_t v = remaining_;
    auto on_done = [this](auto& f) {
      if (hist_ != nullptr) hist_->record(now_ns() - start_);
      sum_ += f.result();
      if (--remaining_ > 0) {
        next();
      } else {
        done_.set_result();
      }
    };
    if constexpr (kBridge == Bridge::kRunInExecutor) {
      offload(loop_, pool_, [v] { return tiny_task(v); }).add_done_callback(on_done);
    } else {
      loop_.add_future(pool_.submit([v] { return tiny_task(v); }), on_done);
    }
  }

  IOLoop& loop_;
  ThreadPoolExecutor& pool_;
  LatencyHistogram* hist_;
  Future<void> done_;
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

template <Bridge kBridge>
void eddy_round_trips(benchmark::State& state) {
  const int64_t n = scaled(kW2RoundTrips);
  IOLoop loop;
  ThreadPoolExecutor pool(workers());
  LatencyHistogram hist;
  EddyRoundTrips<kBridge> warm(loop, pool, nullptr);
  loop.run_sync([&] { return warm.run(kWarmRoundTrips); });
  EddyRoundTrips<kBridge> trips(loop, pool, &hist);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    loop.run_sync([&] { return trips.run(n); });
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
}

void BM_OffloadRoundTrip_Eddy(benchmark::State& state) {
  eddy_round_trips<Bridge::kRunInExecutor>(state);
}
EDDY_WORKLOAD(BM_OffloadRoundTrip_Eddy);

Future<int64_t> coroutine_round_trips(IOLoop& loop, ThreadPoolExecutor& pool, int64_t n,
                                      LatencyHistogram* hist) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t start = now_ns();
    sum += co_await offload(loop, pool, [i] { return tiny_task(i); });
    if (hist != nullptr) hist->record(now_ns() - start);
  }
  co_return sum;
}

void BM_OffloadRoundTrip_EddyCoro(benchmark::State& state) {
  const int64_t n = scaled(kW2RoundTrips);
  IOLoop loop;
  ThreadPoolExecutor pool(workers());
  LatencyHistogram hist;
  loop.run_sync([&] { return coroutine_round_trips(loop, pool, kWarmRoundTrips, nullptr); });
  uint64_t allocs = allocations();
  int64_t sum = 0;
  for (auto _ : state) {
    sum = loop.run_sync([&] { return coroutine_round_trips(loop, pool, n, &hist); });
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(sum);
}
EDDY_WORKLOAD(BM_OffloadRoundTrip_EddyCoro);

// The lower-level bridge: submit() and add_future() instead of
// run_in_executor().
void BM_OffloadRoundTrip_EddyAddFuture(benchmark::State& state) {
  eddy_round_trips<Bridge::kAddFuture>(state);
}
EDDY_WORKLOAD(BM_OffloadRoundTrip_EddyAddFuture);

// --- Boost.Asio --------------------------------------------------------------

class AsioRoundTrips {
 public:
  AsioRoundTrips(asio::io_context& io, asio::thread_pool& pool, LatencyHistogram* hist,
                 bool reactor = false)
      : io_(io), pool_(pool), hist_(hist), reactor_(reactor) {}

  // Runs n round trips to completion on the calling thread.
  void run(int64_t n) {
    remaining_ = n;
    // Keeps run() from returning while the task is away on the pool.
    auto guard = asio::make_work_guard(io_);
    guard_ = &guard;
    // A pending timer makes the io_context wait in its reactor (epoll).
    std::optional<asio::steady_timer> keep;
    if (reactor_) {
      keep.emplace(io_, std::chrono::hours(1));
      keep->async_wait([](const boost::system::error_code&) {});
    }
    keep_ = keep ? &*keep : nullptr;
    asio::post(io_, [this] { next(); });
    io_.run();
    io_.restart();
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    asio::post(pool_, [this, v = remaining_] {
      int64_t r = tiny_task(v);
      asio::post(io_, [this, r] { back(r); });
    });
  }
  void back(int64_t r) {
    if (hist_ != nullptr) hist_->record(now_ns() - start_);
    sum_ += r;
    if (--remaining_ > 0) {
      next();
    } else {
      guard_->reset();
      if (keep_ != nullptr) keep_->cancel();
    }
  }

  asio::io_context& io_;
  asio::thread_pool& pool_;
  LatencyHistogram* hist_;
  const bool reactor_;
  asio::executor_work_guard<asio::io_context::executor_type>* guard_ = nullptr;
  asio::steady_timer* keep_ = nullptr;
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

void asio_round_trips(benchmark::State& state, bool reactor) {
  const int64_t n = scaled(kW2RoundTrips);
  asio::io_context io(1);
  asio::thread_pool pool(workers());
  LatencyHistogram hist;
  AsioRoundTrips(io, pool, nullptr, reactor).run(kWarmRoundTrips);
  AsioRoundTrips trips(io, pool, &hist, reactor);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    trips.run(n);
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
  pool.join();
}

void BM_OffloadRoundTrip_Asio(benchmark::State& state) { asio_round_trips(state, false); }
EDDY_WORKLOAD(BM_OffloadRoundTrip_Asio);

void BM_OffloadRoundTrip_AsioReactor(benchmark::State& state) { asio_round_trips(state, true); }
EDDY_WORKLOAD(BM_OffloadRoundTrip_AsioReactor);

// --- libuv -------------------------------------------------------------------

class UvRoundTrips {
 public:
  UvRoundTrips(uv_loop_t* loop, LatencyHistogram* hist) : loop_(loop), hist_(hist) {
    req_.data = this;
  }

  void run(int64_t n) {
    remaining_ = n;
    next();
    uv_run(loop_, UV_RUN_DEFAULT);
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    value_ = remaining_;
    uv_check(uv_queue_work(loop_, &req_, &UvRoundTrips::work, &UvRoundTrips::after_work),
             "uv_queue_work");
  }
  // Pool thread.
  static void work(uv_work_t* req) {
    auto* self = static_cast<UvRoundTrips*>(req->data);
    self->value_ = tiny_task(self->value_);
  }
  // Loop thread.
  static void after_work(uv_work_t* req, int) {
    auto* self = static_cast<UvRoundTrips*>(req->data);
    if (self->hist_ != nullptr) self->hist_->record(now_ns() - self->start_);
    self->sum_ += self->value_;
    if (--self->remaining_ > 0) self->next();
  }

  uv_loop_t* loop_;
  LatencyHistogram* hist_;
  uv_work_t req_;
  int64_t value_ = 0;  // written by the pool thread, read after the hop back
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadRoundTrip_Libuv(benchmark::State& state) {
  const int64_t n = scaled(kW2RoundTrips);
  UvLoop loop;
  LatencyHistogram hist;
  UvRoundTrips(loop.get(), nullptr).run(kWarmRoundTrips);
  UvRoundTrips trips(loop.get(), &hist);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    trips.run(n);
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
}
EDDY_WORKLOAD(BM_OffloadRoundTrip_Libuv);

// --- sporadic round trips: a 1 ms idle gap between trips ---------------------

class EddySporadicTrips {
 public:
  EddySporadicTrips(IOLoop& loop, ThreadPoolExecutor& pool, LatencyHistogram* hist)
      : loop_(loop), pool_(pool), hist_(hist) {}

  // Loop thread. Resolves the returned future after n round trips.
  Future<void> run(int64_t n) {
    remaining_ = n;
    done_ = Future<void>();
    next();
    return done_;
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    int64_t v = remaining_;
    offload(loop_, pool_, [v] { return tiny_task(v); }).add_done_callback([this](auto& f) {
      if (hist_ != nullptr) hist_->record(now_ns() - start_);
      sum_ += f.result();
      if (--remaining_ > 0) {
        loop_.call_later(kSporadicGap, [this] { next(); });
      } else {
        done_.set_result();
      }
    });
  }

  IOLoop& loop_;
  ThreadPoolExecutor& pool_;
  LatencyHistogram* hist_;
  Future<void> done_;
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadSporadic_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW2SporadicTrips);
  IOLoop loop;
  ThreadPoolExecutor pool(workers());
  LatencyHistogram hist;
  EddySporadicTrips warm(loop, pool, nullptr);
  loop.run_sync([&] { return warm.run(kWarmSporadicTrips); });
  EddySporadicTrips trips(loop, pool, &hist);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    loop.run_sync([&] { return trips.run(n); });
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
}
EDDY_WORKLOAD(BM_OffloadSporadic_Eddy);

class AsioSporadicTrips {
 public:
  AsioSporadicTrips(asio::io_context& io, asio::thread_pool& pool, LatencyHistogram* hist)
      : io_(io), pool_(pool), hist_(hist), gap_(io) {}

  // Runs n round trips to completion on the calling thread.
  void run(int64_t n) {
    remaining_ = n;
    // Keeps run() from returning while the task is away on the pool.
    auto guard = asio::make_work_guard(io_);
    guard_ = &guard;
    asio::post(io_, [this] { next(); });
    io_.run();
    io_.restart();
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    asio::post(pool_, [this, v = remaining_] {
      int64_t r = tiny_task(v);
      asio::post(io_, [this, r] { back(r); });
    });
  }
  void back(int64_t r) {
    if (hist_ != nullptr) hist_->record(now_ns() - start_);
    sum_ += r;
    if (--remaining_ > 0) {
      gap_.expires_after(kSporadicGap);
      gap_.async_wait([this](const boost::system::error_code&) { next(); });
    } else {
      guard_->reset();
    }
  }

  asio::io_context& io_;
  asio::thread_pool& pool_;
  LatencyHistogram* hist_;
  asio::steady_timer gap_;  // with it, io_context sleeps in epoll (as eddy's loop)
  asio::executor_work_guard<asio::io_context::executor_type>* guard_ = nullptr;
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadSporadic_Asio(benchmark::State& state) {
  const int64_t n = scaled(kW2SporadicTrips);
  asio::io_context io(1);
  asio::thread_pool pool(workers());
  LatencyHistogram hist;
  AsioSporadicTrips(io, pool, nullptr).run(kWarmSporadicTrips);
  AsioSporadicTrips trips(io, pool, &hist);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    trips.run(n);
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
  pool.join();
}
EDDY_WORKLOAD(BM_OffloadSporadic_Asio);

class UvSporadicTrips {
 public:
  UvSporadicTrips(uv_loop_t* loop, LatencyHistogram* hist) : loop_(loop), hist_(hist) {
    req_.data = this;
    uv_check(uv_timer_init(loop_, &gap_), "uv_timer_init");
    gap_.data = this;
  }
  ~UvSporadicTrips() {
    uv_close(reinterpret_cast<uv_handle_t*>(&gap_), nullptr);
    uv_run(loop_, UV_RUN_DEFAULT);  // runs the close
  }

  void run(int64_t n) {
    remaining_ = n;
    next();
    uv_run(loop_, UV_RUN_DEFAULT);  // returns when no request or timer is active
  }
  int64_t sum() const { return sum_; }

 private:
  void next() {
    start_ = now_ns();
    value_ = remaining_;
    uv_check(uv_queue_work(loop_, &req_, &UvSporadicTrips::work, &UvSporadicTrips::after_work),
             "uv_queue_work");
  }
  // Pool thread.
  static void work(uv_work_t* req) {
    auto* self = static_cast<UvSporadicTrips*>(req->data);
    self->value_ = tiny_task(self->value_);
  }
  // Loop thread.
  static void after_work(uv_work_t* req, int) {
    auto* self = static_cast<UvSporadicTrips*>(req->data);
    if (self->hist_ != nullptr) self->hist_->record(now_ns() - self->start_);
    self->sum_ += self->value_;
    if (--self->remaining_ > 0) {
      uint64_t gap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(kSporadicGap).count();
      uv_check(uv_timer_start(
                   &self->gap_, [](uv_timer_t* t) { static_cast<UvSporadicTrips*>(t->data)->next(); },
                   gap_ms, 0),
               "uv_timer_start");
    }
  }

  uv_loop_t* loop_;
  LatencyHistogram* hist_;
  uv_work_t req_;
  uv_timer_t gap_;
  int64_t value_ = 0;  // written by the pool thread, read after the hop back
  int64_t remaining_ = 0;
  int64_t start_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadSporadic_Libuv(benchmark::State& state) {
  const int64_t n = scaled(kW2SporadicTrips);
  UvLoop loop;
  LatencyHistogram hist;
  {
    UvSporadicTrips warm(loop.get(), nullptr);
    warm.run(kWarmSporadicTrips);
  }
  UvSporadicTrips trips(loop.get(), &hist);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    trips.run(n);
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  benchmark::DoNotOptimize(trips.sum());
}
EDDY_WORKLOAD(BM_OffloadSporadic_Libuv);


}  // namespace
}  // namespace eddy::bench
