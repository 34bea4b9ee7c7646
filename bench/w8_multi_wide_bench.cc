// W8 multi_wide: multi() over 1,000,000 pending futures, as a vector and
// as a std::map, then resolve them all and wait for the result; also at
// 100,000, to check that the cost is linear in N.
//
// Timed: making the children (and the map), multi(), resolving every child
// in order, and running the loop until the multi future is done. The
// result's values are summed through then() so that run_sync hands back a
// number, not a million-element copy.
//
// No peer has a wait-for-all combinator (Asio's parallel_group came in
// Boost 1.80; libuv has none): W8 is read against its target, time(1M) /
// time(100k) <= 10 for both shapes.
//
// Look for: ns_per_item equal at both sizes (linear); map a constant
// factor above vector.
#include <cstdint>
#include <map>
#include <vector>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "eddy/futures/future.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/io_loop.h"

namespace eddy::bench {
namespace {

Future<int64_t> wide_list(int64_t n) {
  std::vector<Future<int64_t>> children(n);
  std::vector<Future<int64_t>> handles = children;  // to resolve them after the move
  Future<std::vector<int64_t>> all = multi(std::move(children));
  for (int64_t i = 0; i < n; ++i) handles[i].set_result(i);
  return all.then([](std::vector<int64_t>& values) {
    int64_t sum = 0;
    for (int64_t v : values) sum += v;
    return sum;
  });
}

Future<int64_t> wide_map(int64_t n) {
  std::map<int64_t, Future<int64_t>> children;
  std::vector<Future<int64_t>> handles(n);
  for (int64_t i = 0; i < n; ++i) children.emplace_hint(children.end(), i, handles[i]);
  Future<std::map<int64_t, int64_t>> all = multi(std::move(children));
  for (int64_t i = 0; i < n; ++i) handles[i].set_result(i);
  return all.then([](std::map<int64_t, int64_t>& values) {
    int64_t sum = 0;
    for (const auto& [k, v] : values) sum += v;
    return sum;
  });
}

template <Future<int64_t> (*Wide)(int64_t)>
void run_wide(benchmark::State& state) {
  const int64_t n = scaled(state.range(0));
  IOLoop loop;
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = loop.run_sync([n] { return Wide(n); });
  }
  finish(state, n, allocs);
  if (sum != n * (n - 1) / 2) state.SkipWithError("multi: wrong sum");
}

void BM_MultiWide_List_Eddy(benchmark::State& state) { run_wide<wide_list>(state); }
EDDY_WORKLOAD(BM_MultiWide_List_Eddy)->Arg(kW8SmallChildren)->Arg(kW8Children);

void BM_MultiWide_Map_Eddy(benchmark::State& state) { run_wide<wide_map>(state); }
EDDY_WORKLOAD(BM_MultiWide_Map_Eddy)->Arg(kW8SmallChildren)->Arg(kW8Children);

}  // namespace
}  // namespace eddy::bench
