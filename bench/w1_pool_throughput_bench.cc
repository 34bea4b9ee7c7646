// W1 pool_throughput: one producer submits 1,000,000 tiny tasks to a pool
// of workers() threads, then waits for all of them.
//
// Every contender runs on a pool of the same size, started and warmed up
// before the clock starts (but for the two shutdown rows below). Each is
// judged in its fastest straightforward use; the two peers wait for "all
// done" in different shapes:
//   Eddy      ThreadPoolExecutor::submit from the benchmark thread; the
//             returned ConcurrentFuture is dropped (fire and forget). The
//             task counts down a std::latch the producer waits on.
//   Asio      asio::post to an asio::thread_pool, the same task.
//   Libuv     uv_queue_work from the loop thread, an empty work callback,
//             an after-work callback that counts on the loop; "all done"
//             is uv_run returning (libuv has no other way to learn that
//             work finished).
//   EddyLoop  eddy in libuv's shape, for context: the loop thread submits
//             every task and hands each ConcurrentFuture to
//             IOLoop::add_future, whose callback counts on the loop
//             (Tornado's add_future(executor.submit(fn), callback)). A
//             million futures are in flight at once, more than eddy's
//             recyclers keep, so its blocks come from malloc.
//   EddyShutdown, AsioJoin  for context: each pool's own "wait for all",
//             no counter in the task. Python's `with ThreadPoolExecutor()`
//             (shutdown(wait=true) runs what is queued, then joins) and
//             asio::thread_pool::join() without stop() (waits until no
//             work is outstanding). A pool per run, its threads started in
//             the timed region (a run of 1,000 tasks, start and
//             join included, takes 0.15 ms for eddy, 0.3 ms for Asio).
//   EddyNoBatch  for context: Eddy with Options::batch_scheduling = false.
//             eddy's workers switch themselves to SCHED_BATCH by default;
//             the peers' pool threads stay SCHED_OTHER (review 8, F7).
// The latch is a cache line both workers write for every task while the
// producer polls it: a cost of the workload, paid by Eddy and Asio alike.
// The shutdown rows show what the pools cost without it.
//
// Look for: ns_per_item at or below the faster peer's; allocs_per_item
// (eddy: at most 2, the task with its future's state and, in the loop
// shape, the delivery; recycled unless a burst outgrows the recyclers)
// flat across repetitions; cpu_time well above real_time means workers
// spin while idle.
#include <atomic>
#include <cstdint>
#include <latch>
#include <thread>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

void eddy_pool_throughput(benchmark::State& state, bool batch_scheduling) {
  const int64_t n = scaled(kW1Tasks);
  ThreadPoolExecutor::Options options;
  options.max_workers = workers();
  options.batch_scheduling = batch_scheduling;
  ThreadPoolExecutor pool(std::move(options));
  {
    // Start every worker (they start lazily, on demand) before timing.
    std::latch warm(workers() * 4);
    for (int i = 0; i < workers() * 4; ++i) pool.submit([&warm] { warm.count_down(); });
    warm.wait();
  }
  uint64_t allocs = allocations();
  for (auto _ : state) {
    std::latch done(n);
    for (int64_t i = 0; i < n; ++i) pool.submit([&done] { done.count_down(); });
    done.wait();
  }
  finish(state, n, allocs);
}

void BM_PoolThroughput_Eddy(benchmark::State& state) { eddy_pool_throughput(state, true); }
EDDY_WORKLOAD(BM_PoolThroughput_Eddy);

// Eddy's workers under the peers' scheduling policy (SCHED_OTHER).
void BM_PoolThroughput_EddyNoBatch(benchmark::State& state) { eddy_pool_throughput(state, false); }
EDDY_WORKLOAD(BM_PoolThroughput_EddyNoBatch);

// Python's idiom for fire-and-forget work, `with ThreadPoolExecutor(...)`:
// the pool's own shutdown(wait=true) is "wait for all". Its workers start
// on the first submits.
void BM_PoolThroughput_EddyShutdown(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  uint64_t allocs = allocations();
  uint64_t completed = 0;
  for (auto _ : state) {
    ThreadPoolExecutor pool(workers());
    for (int64_t i = 0; i < n; ++i) pool.submit([] {});
    completed = pool.shutdown().completed;
  }
  finish(state, n, allocs);
  if (completed != static_cast<uint64_t>(n)) state.SkipWithError("eddy: not every task ran");
}
EDDY_WORKLOAD(BM_PoolThroughput_EddyShutdown);

// libuv's requests are caller-owned and allocated (and faulted in) before
// its clock starts. With 1,000,000 tasks in flight eddy's blocks come from
// malloc, and a first touch of fresh pages costs this VM ~2 us each: one
// untimed run of the full size warms eddy's heap the same way.
void BM_PoolThroughput_EddyLoop(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  IOLoop loop;
  ThreadPoolExecutor pool(workers());
  int64_t remaining = 0;
  Future<void> all_done;
  auto run = [&](int64_t count) {
    remaining = count;
    all_done = Future<void>();
    for (int64_t i = 0; i < count; ++i) {
      loop.add_future(pool.submit([] {}), [&] {
        if (--remaining == 0) all_done.set_result();
      });
    }
    return all_done;
  };
  loop.run_sync([&] { return run(n); });
  uint64_t allocs = allocations();
  for (auto _ : state) loop.run_sync([&] { return run(n); });
  finish(state, n, allocs);
  if (remaining != 0) state.SkipWithError("eddy: not every task came back");
}
EDDY_WORKLOAD(BM_PoolThroughput_EddyLoop);

void BM_PoolThroughput_Asio(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  asio::thread_pool pool(workers());
  warm_up(pool, workers() * 4);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    std::latch done(n);
    for (int64_t i = 0; i < n; ++i) asio::post(pool, [&done] { done.count_down(); });
    done.wait();
  }
  finish(state, n, allocs);
  pool.join();
}
EDDY_WORKLOAD(BM_PoolThroughput_Asio);

// Asio's idiom for the same: thread_pool::join() without stop() waits
// until the pool has no outstanding work.
void BM_PoolThroughput_AsioJoin(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    asio::thread_pool pool(workers());
    for (int64_t i = 0; i < n; ++i) asio::post(pool, [] {});
    pool.join();
  }
  finish(state, n, allocs);
}
EDDY_WORKLOAD(BM_PoolThroughput_AsioJoin);

void BM_PoolThroughput_Libuv(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  UvLoop loop;
  warm_up(loop.get(), workers() * 4);
  // Requests are caller-owned in libuv; allocating them up front is its
  // idiomatic (and fastest) use.
  std::vector<uv_work_t> reqs(n);
  int64_t remaining = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    remaining = n;
    for (int64_t i = 0; i < n; ++i) {
      reqs[i].data = &remaining;
      uv_queue_work(
          loop.get(), &reqs[i], [](uv_work_t*) {},
          [](uv_work_t* req, int) { --*static_cast<int64_t*>(req->data); });
    }
    uv_run(loop.get(), UV_RUN_DEFAULT);
  }
  finish(state, n, allocs);
  if (remaining != 0) state.SkipWithError("libuv: not every task came back");
}
EDDY_WORKLOAD(BM_PoolThroughput_Libuv);

// Not a contender: the machine's state while W1 ran. Two threads bounce one
// cache line (an atomic counter) 200,000 times; the figure is one round
// trip. This VM shows two placements of its two vCPUs, ~90 ns and ~390 ns
// per round trip, lasting minutes each; every task in W1 moves its block
// from the submitting core to a worker's and back, so eddy's rows (not
// libuv's, which are bound by system calls) run about twice as long in the
// slow one.
constexpr int64_t kLineRoundTrips = 200'000;

void BM_PoolThroughput_LineRoundTrip(benchmark::State& state) {
  const int64_t n = scaled(kLineRoundTrips);
  alignas(64) std::atomic<int64_t> line{0};
  uint64_t allocs = allocations();
  for (auto _ : state) {
    line.store(0, std::memory_order_relaxed);
    std::thread other([&line, n] {
      for (int64_t i = 0; i < n; ++i) {
        while (line.load(std::memory_order_acquire) != 2 * i + 1) {
        }
        line.store(2 * i + 2, std::memory_order_release);
      }
    });
    for (int64_t i = 0; i < n; ++i) {
      line.store(2 * i + 1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != 2 * i + 2) {
      }
    }
    other.join();
  }
  finish(state, n, allocs);
}
EDDY_WORKLOAD(BM_PoolThroughput_LineRoundTrip);

}  // namespace
}  // namespace eddy::bench
