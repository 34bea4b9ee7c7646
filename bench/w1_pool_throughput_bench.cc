// W1 pool_throughput: one producer submits 1,000,000 tiny tasks to a pool
// of workers() threads, then waits for all of them.
//
// Every contender runs on a pool of the same size, started and warmed up
// before the clock starts. eddy and Asio run the same task (count down a
// std::latch the producer waits on); libuv's work callback is empty, and
// its after-work callbacks count on the loop thread instead (no atomic
// shared by the workers):
//   Eddy   ThreadPoolExecutor::submit from the benchmark thread; the
//          returned ConcurrentFuture is dropped (fire and forget).
//   Asio   asio::post to an asio::thread_pool.
//   Libuv  uv_queue_work from the loop thread; "all done" is uv_run
//          returning, after every after-work callback ran on the loop
//          (libuv has no other way to learn that work finished).
//
// Look for: ns_per_item at or below the faster peer's; allocs_per_item
// (eddy: at most 2, the task and its future's state, mostly recycled) flat
// across repetitions; cpu_time well above real_time means workers spin
// while idle.
#include <cstdint>
#include <latch>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/executor/thread_pool_executor.h"

namespace eddy::bench {
namespace {

void BM_PoolThroughput_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW1Tasks);
  ThreadPoolExecutor pool(workers());
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
EDDY_WORKLOAD(BM_PoolThroughput_Eddy);

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

}  // namespace
}  // namespace eddy::bench
