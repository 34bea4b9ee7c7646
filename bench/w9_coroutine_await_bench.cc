// W9 coroutine_await: a coroutine awaits 1,000,000 futures in a row, each
// resolved from a loop callback; plus the cost of awaiting a future that is
// already done, and the baselines both are judged against.
//
//   CoroutineAwait_Eddy       per await: a Future, an add_callback that
//                             resolves it, the coroutine suspends and is
//                             resumed at the end of the turn that ran the
//                             callback (its resume is first in line for
//                             the next turn: loop/io_loop.h, phase 6).
//   CoroutineAwait_AsioTyped  per await: co_await asio::post(io, token), the
//                             coroutine (awaitable<void, Executor>) and the
//                             token (use_awaitable_t<Executor>) typed on
//                             io_context::executor_type, as Asio code written
//                             for speed does (Asio 1.74 has no promise to
//                             resolve from a handler; a posted resume is its
//                             nearest equivalent, and is one loop callback).
//   CoroutineAwait_Asio       the same with Asio's defaults, awaitable<void>
//                             and use_awaitable: the type-erased
//                             any_io_executor (review 8, F5).
//   LoopCallback_Eddy         baseline: a chain of loop callbacks, each
//                             add_callback-ing the next (one loop callback).
//   FutureCallback_Eddy       context: the await's work without the
//                             coroutine, in callback style: the same Future
//                             and resolving add_callback per step, and the
//                             next step in the future's done callback (which
//                             runs on a later turn, as the resume does).
//   AwaitReady_Eddy           per await: co_await of a Future already done
//                             (10x more awaits: each is a few ns).
//   AwaitSubCoroutine_Eddy    per await: co_await of a call of an eddy
//                             coroutine that co_returns at once (a frame and
//                             a Future each time), the like of AwaitReady_Asio.
//   AwaitReady_Asio           per await: co_await of a call of an Asio
//                             coroutine that co_returns at once (Asio 1.74
//                             has no ready-future awaitable, so this is its
//                             peer of AwaitSubCoroutine_Eddy, not of
//                             AwaitReady_Eddy).
//   FunctionCall              baseline: a call that is not inlined plus a
//                             branch on its result.
// libuv has no coroutines: no rows.
//
// Look for: AwaitReady_Eddy within noise of FunctionCall; CoroutineAwait_Eddy
// at most two loop callbacks (the resolving callback plus at most one for
// the await itself), i.e. <= 2x LoopCallback_Eddy, and below
// CoroutineAwait_AsioTyped; AwaitSubCoroutine_Eddy against AwaitReady_Asio,
// and its allocations per await (Asio recycles its frames per thread).
#include <cstdint>
#include <cstdlib>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

constexpr int64_t kReadyFactor = 10;

// --- loop-resolved awaits ----------------------------------------------------

Future<int64_t> await_loop_resolved(IOLoop& loop, int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    Future<int64_t> f;
    loop.add_callback([f, i]() mutable { f.set_result(i); });
    sum += co_await f;
  }
  co_return sum;
}

void BM_CoroutineAwait_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits);
  IOLoop loop;
  loop.run_sync([&] { return await_loop_resolved(loop, 1'000); });
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = loop.run_sync([&] { return await_loop_resolved(loop, n); });
  }
  finish(state, n, allocs);
  if (sum != n * (n - 1) / 2) state.SkipWithError("wrong sum");
}
EDDY_WORKLOAD(BM_CoroutineAwait_Eddy);

asio::awaitable<void> asio_await_posts(int64_t n, int64_t* sum) {
  auto executor = co_await asio::this_coro::executor;
  for (int64_t i = 0; i < n; ++i) {
    co_await asio::post(executor, asio::use_awaitable);
    *sum += i;
  }
}

// Without the type-erased any_io_executor: the coroutine and its completion
// token typed on io_context's own executor.
using IoExecutor = asio::io_context::executor_type;

asio::awaitable<void, IoExecutor> asio_await_posts_typed(int64_t n, int64_t* sum) {
  auto executor = co_await asio::this_coro::executor;
  for (int64_t i = 0; i < n; ++i) {
    co_await asio::post(executor, asio::use_awaitable_t<IoExecutor>());
    *sum += i;
  }
}

// Spawns `coroutine(n, &sum)` on io and runs it to the end, once to warm up
// and once per repetition.
template <class Coroutine>
void asio_await_posts_workload(benchmark::State& state, Coroutine coroutine) {
  const int64_t n = scaled(kW9Awaits);
  asio::io_context io(1);
  int64_t sum = 0;
  asio::co_spawn(io.get_executor(), coroutine(1'000, &sum), asio::detached);
  io.run();
  io.restart();
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    asio::co_spawn(io.get_executor(), coroutine(n, &sum), asio::detached);
    io.run();
    io.restart();
  }
  finish(state, n, allocs);
  if (sum != n * (n - 1) / 2) state.SkipWithError("wrong sum");
}

void BM_CoroutineAwait_AsioTyped(benchmark::State& state) {
  asio_await_posts_workload(state, asio_await_posts_typed);
}
EDDY_WORKLOAD(BM_CoroutineAwait_AsioTyped);

void BM_CoroutineAwait_Asio(benchmark::State& state) {
  asio_await_posts_workload(state, asio_await_posts);
}
EDDY_WORKLOAD(BM_CoroutineAwait_Asio);

// The baseline for a loop-resolved await: one loop callback per step.
class CallbackChain {
 public:
  explicit CallbackChain(IOLoop& loop) : loop_(loop) {}
  void start(int64_t n) {
    remaining_ = n;
    loop_.add_callback([this] { step(); });
  }
  bool ran(int64_t) const { return remaining_ == 0; }

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

// Context for the await: the same steps in callback style (Tornado's
// add_future(f, callback) before coroutines). CoroutineAwait_Eddy over this
// row is what the coroutine itself costs.
class FutureCallbackChain {
 public:
  explicit FutureCallbackChain(IOLoop& loop) : loop_(loop) {}
  void start(int64_t n) {
    n_ = n;
    i_ = 0;
    sum_ = 0;
    step();
  }
  bool ran(int64_t n) const { return sum_ == n * (n - 1) / 2; }

 private:
  void step() {
    if (i_ == n_) {
      loop_.stop();
      return;
    }
    Future<int64_t> f;
    loop_.add_callback([f, i = i_]() mutable { f.set_result(i); });
    f.add_done_callback([this](Future<int64_t>& done) {
      sum_ += done.result();
      ++i_;
      step();
    });
  }
  IOLoop& loop_;
  int64_t n_ = 0;
  int64_t i_ = 0;
  int64_t sum_ = 0;
};

// A chain of n steps per iteration: start(n) queues the first, and the loop
// runs until the last one stops it.
template <class Chain>
void run_chain(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits);
  IOLoop loop;
  loop.make_current();
  Chain chain(loop);
  chain.start(1'000);
  loop.start();
  uint64_t allocs = allocations();
  for (auto _ : state) {
    chain.start(n);
    loop.start();
  }
  finish(state, n, allocs);
  if (!chain.ran(n)) state.SkipWithError("the chain did not run every step");
  IOLoop::clear_current();
}

void BM_LoopCallback_Eddy(benchmark::State& state) { run_chain<CallbackChain>(state); }
EDDY_WORKLOAD(BM_LoopCallback_Eddy);

void BM_FutureCallback_Eddy(benchmark::State& state) { run_chain<FutureCallbackChain>(state); }
EDDY_WORKLOAD(BM_FutureCallback_Eddy);

// --- ready awaits --------------------------------------------------------------

Future<int64_t> await_ready(Future<int64_t> ready, int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += co_await ready;
  co_return sum;
}

void BM_AwaitReady_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits * kReadyFactor);
  IOLoop loop;
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = loop.run_sync([&] { return await_ready(make_ready_future<int64_t>(1), n); });
  }
  finish(state, n, allocs);
  if (sum != n) state.SkipWithError("wrong sum");
}
EDDY_WORKLOAD(BM_AwaitReady_Eddy);

// --- awaits of a sub-coroutine that co_returns at once ------------------------

Future<int64_t> eddy_ready_value() { co_return 1; }

Future<int64_t> await_sub_coroutine(int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += co_await eddy_ready_value();
  co_return sum;
}

void BM_AwaitSubCoroutine_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits * kReadyFactor);
  IOLoop loop;
  int64_t sum = 0;
  loop.run_sync([&] { return await_sub_coroutine(1'000); });
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = loop.run_sync([&] { return await_sub_coroutine(n); });
  }
  finish(state, n, allocs);
  if (sum != n) state.SkipWithError("wrong sum");
}
EDDY_WORKLOAD(BM_AwaitSubCoroutine_Eddy);

asio::awaitable<int64_t> asio_ready_value() { co_return 1; }

asio::awaitable<void> asio_await_ready(int64_t n, int64_t* sum) {
  for (int64_t i = 0; i < n; ++i) *sum += co_await asio_ready_value();
}

void BM_AwaitReady_Asio(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits * kReadyFactor);
  asio::io_context io(1);
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = 0;
    asio::co_spawn(io, asio_await_ready(n, &sum), asio::detached);
    io.run();
    io.restart();
  }
  finish(state, n, allocs);
  if (sum != n) state.SkipWithError("wrong sum");
}
EDDY_WORKLOAD(BM_AwaitReady_Asio);

[[gnu::noinline]] int64_t load_value(const int64_t* p) {
  // An empty asm keeps the call from being folded away.
  asm volatile("" ::: "memory");
  return *p;
}

void BM_FunctionCall(benchmark::State& state) {
  const int64_t n = scaled(kW9Awaits * kReadyFactor);
  const int64_t one = 1;
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = load_value(&one);
      if (v < 0) [[unlikely]] std::abort();
      sum += v;
    }
    benchmark::DoNotOptimize(sum);
  }
  finish(state, n, allocs);
}
EDDY_WORKLOAD(BM_FunctionCall);

}  // namespace
}  // namespace eddy::bench
