// W7 future_resolve: create a loop Future, attach one callback, resolve it,
// and let the callback run on the loop; 10,000,000 times.
//
// Futures are made in batches of 1,000 from a loop callback (the driver
// re-posts itself), so the loop also dispatches each future's callback
// turn: this is the whole life of a future, not just its constructor.
// allocs_per_item is the heap allocations per future on all threads (the
// binary's operator new counts them; see alloc_counter.h).
//
// No peer has a loop-bound future with callbacks (Asio 1.74 and libuv have
// none), so W7 is read against its targets: at most one allocation per
// future (its shared state), and a small callback stored without a second.
//
// Look for: allocs_per_item <= 1.0; ns_per_item a small multiple of one
// loop callback (W4).
#include <algorithm>
#include <cstdint>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

constexpr int64_t kBatch = 1'000;

class FutureChurn {
 public:
  explicit FutureChurn(IOLoop& loop) : loop_(loop) {}

  // Loop thread: makes n futures, batch by batch; stops the loop when the
  // last callback has run.
  void start(int64_t n) {
    total_ = n;
    left_to_make_ = n;
    ran_ = 0;
    batch();
  }
  int64_t sum() const { return sum_; }

 private:
  void batch() {
    int64_t k = std::min(kBatch, left_to_make_);
    left_to_make_ -= k;
    for (int64_t i = 0; i < k; ++i) {
      Future<int64_t> f;
      // One pointer of captured state: fits the callback's inline storage.
      f.add_done_callback([this](Future<int64_t>& done) {
        sum_ += done.result();
        if (++ran_ == total_) loop_.stop();
      });
      f.set_result(i);
    }
    if (left_to_make_ > 0) loop_.add_callback([this] { batch(); });
  }

  IOLoop& loop_;
  int64_t total_ = 0;
  int64_t left_to_make_ = 0;
  int64_t ran_ = 0;
  int64_t sum_ = 0;
};

void BM_FutureResolve_Eddy(benchmark::State& state) {
  const int64_t n = scaled(kW7Futures);
  IOLoop loop;
  loop.make_current();
  FutureChurn churn(loop);
  churn.start(kBatch * 10);  // warm the loop's queue up
  loop.start();
  uint64_t allocs = allocations();
  for (auto _ : state) {
    churn.start(n);
    loop.start();
  }
  finish(state, n, allocs);
  benchmark::DoNotOptimize(churn.sum());
  IOLoop::clear_current();
}
EDDY_WORKLOAD(BM_FutureResolve_Eddy);

}  // namespace
}  // namespace eddy::bench
