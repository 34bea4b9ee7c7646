// X1 executor_map (beyond DESIGN.md's W1..W9): a thread that is not a loop
// maps a tiny function over 1,000 items on a pool and collects the results
// in input order, failures propagated; 200 rounds. W3's shape without the
// loop: Python's `results = list(pool.map(fn, items))`.
//
// Every contender: a pool of workers() threads, started and warmed before
// the clock starts; the function returns its argument + 1; the benchmark
// thread sums the results in input order and checks the sum.
//   Eddy           Executor::map(fn, items): one call, a std::vector back.
//   EddySubmit     the loop a user writes by hand: submit x1,000 into a
//                  vector of ConcurrentFuture, then result() of each in turn
//                  (concurrent.futures before map: [f.result() for f in fs]).
//   EddySubmitToken the same, each call given a token of one
//                  CancellationSource, as map gives its calls (so that its
//                  first failure stops the queued ones): what the token's
//                  shared reference count costs, copied on the submitting
//                  thread and dropped on the workers.
//   AsioUseFuture  Asio's way to get a result (or an exception) back from a
//                  thread_pool: asio::post(pool, asio::use_future(fn)) x1,000
//                  into a vector of std::future, then get() of each.
//   AsioLatch      not a contender (it does less): asio::post of a lambda
//                  that stores its result in a preallocated slot and counts
//                  down a std::latch. No exception can travel back, nothing
//                  can be cancelled or timed out: the floor a pool gives for
//                  "run these and wait", with nothing a map owes its caller.
// libuv has no equivalent: uv_queue_work's results come back only to a
// running uv loop (W3 measures that shape).
//
// Look for: ns_per_item of Eddy at or below AsioUseFuture's (the peer that
// carries results and exceptions), and its distance to AsioLatch (what
// fail-fast, cancellation and the ordered vector cost); allocs_per_item
// (eddy: the task with its state, recycled; map's own vector and waiter
// nodes once per round).
#include <cstdint>
#include <future>
#include <latch>
#include <numeric>
#include <type_traits>
#include <variant>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"

namespace eddy::bench {
namespace {

constexpr int64_t kItems = kX1ItemsPerRound;

int64_t tiny_task(int64_t v) { return v + 1; }

// The inputs every contender maps over, and the sum of fn over them.
std::vector<int64_t> inputs() {
  std::vector<int64_t> items(kItems);
  std::iota(items.begin(), items.end(), 0);
  return items;
}
constexpr int64_t kExpectedSum = kItems * (kItems + 1) / 2;

void warm_up_eddy(ThreadPoolExecutor& pool) {
  std::latch warm(workers() * 4);
  for (int i = 0; i < workers() * 4; ++i) pool.submit([&warm] { warm.count_down(); });
  warm.wait();
}

void check_sum(benchmark::State& state, int64_t sum, int64_t rounds, const char* who) {
  if (sum != kExpectedSum * rounds) state.SkipWithError(who);
}

void BM_ExecutorMap_Eddy(benchmark::State& state) {
  const int64_t rounds = scaled(kX1Rounds);
  ThreadPoolExecutor pool(workers());
  warm_up_eddy(pool);
  const std::vector<int64_t> items = inputs();
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    for (int64_t r = 0; r < rounds; ++r) {
      std::vector<int64_t> results = pool.map(tiny_task, items);
      for (int64_t v : results) sum += v;
    }
  }
  finish(state, rounds * kItems, allocs);
  check_sum(state, sum, rounds, "eddy: wrong sum");
}
EDDY_WORKLOAD(BM_ExecutorMap_Eddy);

// The hand-written loop: submit every item, then result() of each in turn;
// with kWithToken, each call gets a token of one CancellationSource, as
// map's calls do.
template <bool kWithToken>
void submit_then_collect(benchmark::State& state, const char* wrong_sum) {
  const int64_t rounds = scaled(kX1Rounds);
  ThreadPoolExecutor pool(workers());
  warm_up_eddy(pool);
  const std::vector<int64_t> items = inputs();
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    for (int64_t r = 0; r < rounds; ++r) {
      [[maybe_unused]] std::conditional_t<kWithToken, CancellationSource, std::monostate> src;
      std::vector<ConcurrentFuture<int64_t>> futures;
      futures.reserve(kItems);
      for (int64_t v : items) {
        auto fn = [v] { return tiny_task(v); };
        if constexpr (kWithToken) {
          futures.push_back(pool.submit(src.token(), fn));
        } else {
          futures.push_back(pool.submit(fn));
        }
      }
      for (auto& f : futures) sum += f.result();
    }
  }
  finish(state, rounds * kItems, allocs);
  check_sum(state, sum, rounds, wrong_sum);
}

void BM_ExecutorMap_EddySubmit(benchmark::State& state) {
  submit_then_collect<false>(state, "eddy submit: wrong sum");
}
EDDY_WORKLOAD(BM_ExecutorMap_EddySubmit);

void BM_ExecutorMap_EddySubmitToken(benchmark::State& state) {
  submit_then_collect<true>(state, "eddy submit with a token: wrong sum");
}
EDDY_WORKLOAD(BM_ExecutorMap_EddySubmitToken);

void BM_ExecutorMap_AsioUseFuture(benchmark::State& state) {
  const int64_t rounds = scaled(kX1Rounds);
  asio::thread_pool pool(workers());
  warm_up(pool, workers() * 4);
  const std::vector<int64_t> items = inputs();
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    for (int64_t r = 0; r < rounds; ++r) {
      std::vector<std::future<int64_t>> futures;
      futures.reserve(kItems);
      for (int64_t v : items) {
        futures.push_back(asio::post(pool, asio::use_future([v] { return tiny_task(v); })));
      }
      for (auto& f : futures) sum += f.get();
    }
  }
  finish(state, rounds * kItems, allocs);
  pool.join();
  check_sum(state, sum, rounds, "asio use_future: wrong sum");
}
EDDY_WORKLOAD(BM_ExecutorMap_AsioUseFuture);

void BM_ExecutorMap_AsioLatch(benchmark::State& state) {
  const int64_t rounds = scaled(kX1Rounds);
  asio::thread_pool pool(workers());
  warm_up(pool, workers() * 4);
  const std::vector<int64_t> items = inputs();
  std::vector<int64_t> results(kItems);
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    for (int64_t r = 0; r < rounds; ++r) {
      std::latch done(kItems);
      for (int64_t i = 0; i < kItems; ++i) {
        asio::post(pool, [&results, &done, &items, i] {
          results[i] = tiny_task(items[i]);
          done.count_down();
        });
      }
      done.wait();
      for (int64_t v : results) sum += v;
    }
  }
  finish(state, rounds * kItems, allocs);
  pool.join();
  check_sum(state, sum, rounds, "asio latch: wrong sum");
}
EDDY_WORKLOAD(BM_ExecutorMap_AsioLatch);

}  // namespace
}  // namespace eddy::bench
