// W3 offload_fanout: the loop submits 1,000 tiny tasks to a pool and waits
// for all of them; 200 rounds.
//
// Every contender: a loop on the benchmark thread, a pool of workers()
// threads, the task returns its argument + 1, the loop sums the results.
//   Eddy      1,000 loop.run_in_executor futures, multi(vector) of them; the
//             multi future's callback starts the next round.
//   EddyCoro  the same from a coroutine: co_await the vector of futures.
//   EddyNoBatch  for context: Eddy with Options::batch_scheduling = false,
//             the peers' scheduling policy (SCHED_OTHER) for the workers.
//   Asio      asio::post(pool, fn) x 1,000, each posting its result back to
//             the io_context; the last one back starts the next round.
//   Libuv     uv_queue_work x 1,000; the last after-work callback starts the
//             next round.
//
// Look for: ns_per_item at or below the faster peer's. Eddy pays for a
// Future per task and for multi's bookkeeping; the peers only count.
#include <cstdint>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/eddy_offload.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

constexpr int64_t kTasks = kW3TasksPerRound;
constexpr int64_t kWarmRounds = 2;

int64_t tiny_task(int64_t v) { return v + 1; }

// --- eddy --------------------------------------------------------------------

class EddyFanout {
 public:
  EddyFanout(IOLoop& loop, ThreadPoolExecutor& pool) : loop_(loop), pool_(pool) {}

  // Loop thread. Resolves after `rounds` rounds.
  Future<void> run(int64_t rounds) {
    rounds_left_ = rounds;
    done_ = Future<void>();
    round();
    return done_;
  }
  int64_t sum() const { return sum_; }

 private:
  void round() {
    std::vector<Future<int64_t>> children;
    children.reserve(kTasks);
    for (int64_t i = 0; i < kTasks; ++i) {
      children.push_back(offload(loop_, pool_, [i] { return tiny_task(i); }));
    }
    multi(std::move(children)).add_done_callback([this](Future<std::vector<int64_t>>& all) {
      for (int64_t v : all.result()) sum_ += v;
      if (--rounds_left_ > 0) {
        round();
      } else {
        done_.set_result();
      }
    });
  }

  IOLoop& loop_;
  ThreadPoolExecutor& pool_;
  Future<void> done_;
  int64_t rounds_left_ = 0;
  int64_t sum_ = 0;
};

void eddy_fanout(benchmark::State& state, bool batch_scheduling) {
  const int64_t rounds = scaled(kW3Rounds);
  IOLoop loop;
  ThreadPoolExecutor::Options options;
  options.max_workers = workers();
  options.batch_scheduling = batch_scheduling;
  ThreadPoolExecutor pool(std::move(options));
  EddyFanout fanout(loop, pool);
  loop.run_sync([&] { return fanout.run(kWarmRounds); });
  uint64_t allocs = allocations();
  for (auto _ : state) {
    loop.run_sync([&] { return fanout.run(rounds); });
  }
  finish(state, rounds * kTasks, allocs);
  benchmark::DoNotOptimize(fanout.sum());
}

void BM_OffloadFanout_Eddy(benchmark::State& state) { eddy_fanout(state, true); }
EDDY_WORKLOAD(BM_OffloadFanout_Eddy);

// Eddy's workers under the peers' scheduling policy (SCHED_OTHER).
void BM_OffloadFanout_EddyNoBatch(benchmark::State& state) { eddy_fanout(state, false); }
EDDY_WORKLOAD(BM_OffloadFanout_EddyNoBatch);

Future<int64_t> coroutine_fanout(IOLoop& loop, ThreadPoolExecutor& pool, int64_t rounds) {
  int64_t sum = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    std::vector<Future<int64_t>> children;
    children.reserve(kTasks);
    for (int64_t i = 0; i < kTasks; ++i) {
      children.push_back(offload(loop, pool, [i] { return tiny_task(i); }));
    }
    std::vector<int64_t> values = co_await std::move(children);
    for (int64_t v : values) sum += v;
  }
  co_return sum;
}

void BM_OffloadFanout_EddyCoro(benchmark::State& state) {
  const int64_t rounds = scaled(kW3Rounds);
  IOLoop loop;
  ThreadPoolExecutor pool(workers());
  loop.run_sync([&] { return coroutine_fanout(loop, pool, kWarmRounds); });
  uint64_t allocs = allocations();
  int64_t sum = 0;
  for (auto _ : state) {
    sum = loop.run_sync([&] { return coroutine_fanout(loop, pool, rounds); });
  }
  finish(state, rounds * kTasks, allocs);
  benchmark::DoNotOptimize(sum);
}
EDDY_WORKLOAD(BM_OffloadFanout_EddyCoro);

// --- Boost.Asio --------------------------------------------------------------

class AsioFanout {
 public:
  AsioFanout(asio::io_context& io, asio::thread_pool& pool) : io_(io), pool_(pool) {}

  void run(int64_t rounds) {
    rounds_left_ = rounds;
    auto guard = asio::make_work_guard(io_);
    guard_ = &guard;
    asio::post(io_, [this] { round(); });
    io_.run();
    io_.restart();
  }
  int64_t sum() const { return sum_; }

 private:
  void round() {
    pending_ = kTasks;
    for (int64_t i = 0; i < kTasks; ++i) {
      asio::post(pool_, [this, i] {
        int64_t r = tiny_task(i);
        asio::post(io_, [this, r] { back(r); });
      });
    }
  }
  void back(int64_t r) {
    sum_ += r;
    if (--pending_ > 0) return;
    if (--rounds_left_ > 0) {
      round();
    } else {
      guard_->reset();
    }
  }

  asio::io_context& io_;
  asio::thread_pool& pool_;
  asio::executor_work_guard<asio::io_context::executor_type>* guard_ = nullptr;
  int64_t rounds_left_ = 0;
  int64_t pending_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadFanout_Asio(benchmark::State& state) {
  const int64_t rounds = scaled(kW3Rounds);
  asio::io_context io(1);
  asio::thread_pool pool(workers());
  AsioFanout fanout(io, pool);
  fanout.run(kWarmRounds);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    fanout.run(rounds);
  }
  finish(state, rounds * kTasks, allocs);
  benchmark::DoNotOptimize(fanout.sum());
  pool.join();
}
EDDY_WORKLOAD(BM_OffloadFanout_Asio);

// --- libuv -------------------------------------------------------------------

class UvFanout {
 public:
  explicit UvFanout(uv_loop_t* loop) : loop_(loop), reqs_(kTasks) {
    for (int64_t i = 0; i < kTasks; ++i) {
      reqs_[i].self = this;
      reqs_[i].value = i;
    }
  }

  void run(int64_t rounds) {
    rounds_left_ = rounds;
    round();
    uv_run(loop_, UV_RUN_DEFAULT);
  }
  int64_t sum() const { return sum_; }

 private:
  struct Req {
    uv_work_t work;
    UvFanout* self;
    int64_t value;
    int64_t result;
  };

  void round() {
    pending_ = kTasks;
    for (Req& r : reqs_) {
      r.work.data = &r;
      uv_check(uv_queue_work(loop_, &r.work, &UvFanout::work, &UvFanout::after_work),
               "uv_queue_work");
    }
  }
  static void work(uv_work_t* w) {
    auto* r = static_cast<Req*>(w->data);
    r->result = tiny_task(r->value);
  }
  static void after_work(uv_work_t* w, int) {
    auto* r = static_cast<Req*>(w->data);
    UvFanout* self = r->self;
    self->sum_ += r->result;
    if (--self->pending_ > 0) return;
    if (--self->rounds_left_ > 0) self->round();
  }

  uv_loop_t* loop_;
  std::vector<Req> reqs_;
  int64_t rounds_left_ = 0;
  int64_t pending_ = 0;
  int64_t sum_ = 0;
};

void BM_OffloadFanout_Libuv(benchmark::State& state) {
  const int64_t rounds = scaled(kW3Rounds);
  UvLoop loop;
  UvFanout fanout(loop.get());
  fanout.run(kWarmRounds);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    fanout.run(rounds);
  }
  finish(state, rounds * kTasks, allocs);
  benchmark::DoNotOptimize(fanout.sum());
}
EDDY_WORKLOAD(BM_OffloadFanout_Libuv);

}  // namespace
}  // namespace eddy::bench
