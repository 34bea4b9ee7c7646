// W5 cross_thread_callbacks: another thread posts 1,000,000 callbacks onto
// the loop, which runs them.
//
// The producer thread is started (and parked) before the clock starts; the
// loop runs on the benchmark thread; each callback counts, and the one that
// sees the count reach N ends the run.
//   Eddy   IOLoop::add_callback from the producer thread.
//   Asio   asio::post(io_context, fn) from the producer thread.
//   Libuv  the usual libuv pattern (libuv has no cross-thread callback
//          queue): push {fn, arg} into a mutex-guarded vector, then
//          uv_async_send (which coalesces wake-ups); the async callback
//          swaps the vector out under the lock and runs the batch.
//   LibuvWakeOnEmpty  the same, calling uv_async_send only when the push
//          finds the vector empty (a non-empty vector has a drain due):
//          the common refinement (review 8, F8).
//
// Look for: ns_per_item at or below the faster peer's; waker writes (one
// per batch, not per post) show as low CPU time on the producer side.
#include <cstdint>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/bench/peers.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

// Runs `produce` on a second thread once go() is called; joins on
// destruction. Keeps thread start-up out of the timed region.
class Producer {
 public:
  template <class F>
  explicit Producer(F produce)
      : thread_([this, produce = std::move(produce)]() mutable {
          go_.wait();
          produce();
        }) {}
  ~Producer() {
    if (!started_) go_.count_down();
    thread_.join();
  }
  void go() {
    started_ = true;
    go_.count_down();
  }

 private:
  std::latch go_{1};
  bool started_ = false;
  std::thread thread_;
};

// --- eddy --------------------------------------------------------------------

// What every contender's callback touches: one pointer's worth of capture,
// so that no contender's closure outgrows its inline storage (AnyInvocable
// keeps 16 bytes inline; Asio allocates every handler anyway).
// `ran` has a cache line of its own, and the producers read n and loop from
// locals: the loop thread writes `ran` on every callback, and a producer that
// reads the same line on every post would pay a cache miss per post (false
// sharing that measures the benchmark, not the contender). Padding, not
// alignas: the counters live on stacks, which ASan's fake stack does not
// align to 64.
template <class Loop>
struct Counter {
  Loop* loop;
  int64_t n;
  [[maybe_unused]] char pad_before[64] = {};
  int64_t ran = 0;
  [[maybe_unused]] char pad_after[64] = {};
};

void eddy_run(IOLoop& loop, int64_t n) {
  Counter<IOLoop> counter{&loop, n};
  Producer producer([&counter, n, target = &loop] {
    for (int64_t i = 0; i < n; ++i) {
      target->add_callback([c = &counter] {
        if (++c->ran == c->n) c->loop->stop();
      });
    }
  });
  producer.go();
  loop.start();
}

void BM_CrossThreadCallbacks_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW5Callbacks);
  IOLoop loop;
  loop.make_current();
  eddy_run(loop, 1'000);
  uint64_t allocs = allocations();
  const IOLoop::Stats before = loop.stats();
  for (auto _ : state) {
    eddy_run(loop, n);
  }
  finish(state, n, allocs);
  // How often the loop went to sleep and had to be woken, and how many
  // callbacks it ran per iteration.
  const IOLoop::Stats after = loop.stats();
  state.counters["wakes"] = static_cast<double>(after.waker_writes - before.waker_writes);
  state.counters["loop_iterations"] = static_cast<double>(after.iterations - before.iterations);
  IOLoop::clear_current();
}
EDDY_WORKLOAD(BM_CrossThreadCallbacks_Eddy);

// --- Boost.Asio --------------------------------------------------------------

void asio_run(asio::io_context& io, int64_t n) {
  auto guard = asio::make_work_guard(io);
  Counter<decltype(guard)> counter{&guard, n};
  Producer producer([&io, &counter, n] {
    for (int64_t i = 0; i < n; ++i) {
      asio::post(io, [c = &counter] {
        if (++c->ran == c->n) c->loop->reset();
      });
    }
  });
  producer.go();
  io.run();
  io.restart();
}

void BM_CrossThreadCallbacks_Asio(benchmark::State& state) {
  const int64_t n = scaled(kW5Callbacks);
  asio::io_context io(1);
  asio_run(io, 1'000);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    asio_run(io, n);
  }
  finish(state, n, allocs);
}
EDDY_WORKLOAD(BM_CrossThreadCallbacks_Asio);

// --- libuv -------------------------------------------------------------------

class UvInbox {
 public:
  struct Item {
    void (*fn)(void* arg);
    void* arg;
  };

  UvInbox(uv_loop_t* loop, int64_t n) : n_(n) {
    uv_check(uv_async_init(loop, &async_, &UvInbox::drain), "uv_async_init");
    async_.data = this;
  }

  // Any thread. With kWakeOnEmpty, wakes the loop only when the vector
  // was empty: the loop swaps it out before running a batch, so a
  // non-empty vector means a wake-up is already on its way.
  template <bool kWakeOnEmpty = false>
  void post(Item item) {
    bool was_empty;
    {
      std::lock_guard<std::mutex> lock(mu_);
      was_empty = items_.empty();
      items_.push_back(item);
    }
    if (!kWakeOnEmpty || was_empty) uv_check(uv_async_send(&async_), "uv_async_send");
  }

  // Its own cache line, as Counter::ran (padding, as there).
  [[maybe_unused]] char pad_before_ran_[64];
  int64_t ran = 0;
  [[maybe_unused]] char pad_after_ran_[64];

 private:
  // Loop thread.
  static void drain(uv_async_t* async) {
    auto* self = static_cast<UvInbox*>(async->data);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->batch_.swap(self->items_);
    }
    for (const Item& item : self->batch_) item.fn(item.arg);
    self->batch_.clear();
    if (self->ran == self->n_) uv_close(reinterpret_cast<uv_handle_t*>(&self->async_), nullptr);
  }

  const int64_t n_;
  uv_async_t async_;
  std::mutex mu_;
  std::vector<Item> items_;  // guarded by mu_
  std::vector<Item> batch_;  // loop thread
};

template <bool kWakeOnEmpty>
void uv_run_workload(uv_loop_t* loop, int64_t n) {
  UvInbox inbox(loop, n);
  Producer producer([&inbox, n] {
    for (int64_t i = 0; i < n; ++i) {
      inbox.post<kWakeOnEmpty>({[](void* arg) { ++static_cast<UvInbox*>(arg)->ran; }, &inbox});
    }
  });
  producer.go();
  uv_run(loop, UV_RUN_DEFAULT);  // returns once the async handle is closed
}

template <bool kWakeOnEmpty>
void uv_callbacks(benchmark::State& state) {
  const int64_t n = scaled(kW5Callbacks);
  UvLoop loop;
  uv_run_workload<kWakeOnEmpty>(loop.get(), 1'000);
  uint64_t allocs = allocations();
  for (auto _ : state) {
    uv_run_workload<kWakeOnEmpty>(loop.get(), n);
  }
  finish(state, n, allocs);
}

void BM_CrossThreadCallbacks_Libuv(benchmark::State& state) { uv_callbacks<false>(state); }
EDDY_WORKLOAD(BM_CrossThreadCallbacks_Libuv);

void BM_CrossThreadCallbacks_LibuvWakeOnEmpty(benchmark::State& state) {
  uv_callbacks<true>(state);
}
EDDY_WORKLOAD(BM_CrossThreadCallbacks_LibuvWakeOnEmpty);

}  // namespace
}  // namespace eddy::bench
