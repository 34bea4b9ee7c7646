// W6 timers: 1,000,000 one-shot timers with deadlines spread over
// [0, 1 s), every other one cancelled, the rest fire.
//
// The plan is the same for every contender: deadline i is base + d[i], the
// d[i] a fixed-seed shuffle of i * span / N; all N are scheduled, then the
// odd-numbered ones (in scheduling order) are cancelled. Two figures:
//   sched_cancel_ns  (N schedules + N/2 cancels) / N, in ns per timer;
//   last_late_ms     how late the last-due timer fired, against its
//                    deadline (the loop's clock; libuv's has 1 ms ticks).
// The benchmark's own time also includes waiting out the span.
//   Eddy   IOLoop::call_at + remove_timeout.
//   Asio   one asio::steady_timer per timer (expires_at + async_wait),
//          steady_timer::cancel; cancelled handlers run with
//          operation_aborted and return.
//   Libuv  one uv_timer_t per timer (caller-owned, allocated up front),
//          uv_timer_start (whole milliseconds from the loop's cached
//          time) + uv_timer_stop.
//
// Look for: sched_cancel_ns at or below the faster peer's; last_late_ms no
// worse than Asio's (a loop that falls behind fires its last timer late).
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/time.h"

namespace eddy::bench {
namespace {

struct TimerPlan {
  std::vector<int64_t> delay_ns;  // by scheduling order; odd positions are cancelled
  int64_t last_index = 0;         // the uncancelled timer with the latest deadline
  int64_t fires = 0;              // how many are not cancelled
};

// The plan for n timers over [0, span): built once per process and shared,
// so every contender gets exactly the same one.
const TimerPlan& plan(int64_t n, int64_t span_ns) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<TimerPlan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = plans[{n, span_ns}];
  if (p == nullptr) {
    p = std::make_unique<TimerPlan>();
    p->delay_ns.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      p->delay_ns[i] = static_cast<int64_t>(static_cast<__int128>(span_ns) * i / n);
    }
    std::mt19937_64 rng(20221122);
    std::shuffle(p->delay_ns.begin(), p->delay_ns.end(), rng);
    p->fires = (n + 1) / 2;
    for (int64_t i = 0; i < n; i += 2) {
      if (p->delay_ns[i] >= p->delay_ns[p->last_index]) p->last_index = i;
    }
  }
  return *p;
}

const TimerPlan& current_plan() {
  return plan(scaled(kW6Timers), settings().timer_span_ms * 1'000'000);
}

void report(benchmark::State& state, const TimerPlan& p, int64_t sched_ns, int64_t late_ns,
            uint64_t allocs) {
  int64_t n = static_cast<int64_t>(p.delay_ns.size());
  finish(state, n, allocs);
  state.counters["sched_cancel_ns"] = double(sched_ns) / double(n);
  state.counters["last_late_ms"] = double(late_ns) / 1e6;
}

// What every contender's timer callback updates.
struct Firing {
  const TimerPlan* plan;
  int64_t base_ns = 0;
  int64_t fired = 0;
  int64_t late_ns = 0;
  IOLoop* loop = nullptr;  // eddy's

  // Returns true when this was the last timer to fire.
  bool fire(int64_t index, int64_t now) {
    if (index == plan->last_index) late_ns = now - (base_ns + plan->delay_ns[index]);
    return ++fired == plan->fires;
  }
};

// --- eddy --------------------------------------------------------------------

void BM_Timers_Eddy(benchmark::State& state) {
  const TimerPlan& p = current_plan();
  const int64_t n = static_cast<int64_t>(p.delay_ns.size());
  IOLoop loop;
  loop.make_current();
  std::vector<TimeoutHandle> handles(n);
  Firing firing{&p};
  firing.loop = &loop;
  int64_t sched_ns = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    MonotonicTime base = loop.time();
    firing.base_ns = base.nanoseconds();
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; ++i) {
      // Two words of capture: fits AnyInvocable's inline storage.
      handles[i] = loop.call_at(base + absl::Nanoseconds(p.delay_ns[i]), [&firing, i] {
        if (firing.fire(i, firing.loop->time().nanoseconds())) firing.loop->stop();
      });
    }
    for (int64_t i = 1; i < n; i += 2) loop.remove_timeout(handles[i]);
    sched_ns = now_ns() - t0;
    loop.start();
  }
  report(state, p, sched_ns, firing.late_ns, allocs);
  IOLoop::clear_current();
}
EDDY_WORKLOAD(BM_Timers_Eddy);

// --- Boost.Asio --------------------------------------------------------------

void BM_Timers_Asio(benchmark::State& state) {
  const TimerPlan& p = current_plan();
  const int64_t n = static_cast<int64_t>(p.delay_ns.size());
  asio::io_context io(1);
  std::vector<asio::steady_timer> timers;
  timers.reserve(n);
  Firing firing{&p};
  int64_t sched_ns = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    firing.base_ns = now_ns();
    auto base = asio::steady_timer::clock_type::time_point(std::chrono::nanoseconds(firing.base_ns));
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; ++i) {
      timers.emplace_back(io, base + std::chrono::nanoseconds(p.delay_ns[i]));
      timers.back().async_wait([&firing, i](const boost::system::error_code& ec) {
        if (!ec) firing.fire(i, now_ns());
      });
    }
    for (int64_t i = 1; i < n; i += 2) timers[i].cancel();
    sched_ns = now_ns() - t0;
    io.run();  // returns when every handler (fired or aborted) has run
  }
  report(state, p, sched_ns, firing.late_ns, allocs);
}
EDDY_WORKLOAD(BM_Timers_Asio);

// --- libuv -------------------------------------------------------------------

struct UvTimers {
  std::vector<uv_timer_t> timers;
  Firing firing;
};

void BM_Timers_Libuv(benchmark::State& state) {
  const TimerPlan& p = current_plan();
  const int64_t n = static_cast<int64_t>(p.delay_ns.size());
  UvLoop loop;
  UvTimers ctx{std::vector<uv_timer_t>(n), Firing{&p}};
  int64_t sched_ns = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    // uv_timer_start counts from the loop's cached time: refresh it so the
    // base is now, as for the others.
    uv_update_time(loop.get());
    ctx.firing.base_ns = now_ns();
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; ++i) {
      uv_timer_t* t = &ctx.timers[i];
      uv_timer_init(loop.get(), t);
      t->data = &ctx;
      uv_timer_start(
          t,
          [](uv_timer_t* t) {
            auto* ctx = static_cast<UvTimers*>(t->data);
            ctx->firing.fire(t - ctx->timers.data(), now_ns());
          },
          static_cast<uint64_t>(p.delay_ns[i] / 1'000'000), 0);
    }
    for (int64_t i = 1; i < n; i += 2) uv_timer_stop(&ctx.timers[i]);
    sched_ns = now_ns() - t0;
    uv_run(loop.get(), UV_RUN_DEFAULT);  // returns when no timer is active
  }
  report(state, p, sched_ns, ctx.firing.late_ns, allocs);
  // Handles must be closed (untimed) before their memory goes.
  for (uv_timer_t& t : ctx.timers) uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(loop.get(), UV_RUN_DEFAULT);
}
EDDY_WORKLOAD(BM_Timers_Libuv);

}  // namespace
}  // namespace eddy::bench
