#include "benchmark/benchmark.h"
#include "eddy/selftest/ticker.h"

namespace eddy::selftest {
namespace {

void BM_ScheduleAndRun(benchmark::State& state) {
  Ticker ticker;
  int sink = 0;
  for (auto _ : state) {
    for (int i = 0; i < state.range(0); ++i) {
      ticker.CallLater(absl::Microseconds(i), [&sink] { ++sink; });
    }
    benchmark::DoNotOptimize(ticker.RunDue(absl::Seconds(1)));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ScheduleAndRun)->Arg(16)->Arg(1024);

}  // namespace
}  // namespace eddy::selftest
