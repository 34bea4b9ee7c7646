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
// The same binary measures the machine's floor for this shape: N heap
// blocks the size of a future's state, made, referenced, written and freed
// in the passes the list workload makes over its children, without eddy.
// Once by operator new/delete, once placed in one preallocated array (no
// allocator at all), and once with the map workload's passes (the same
// blocks, a std::map of them in, a std::map of values out). Their
// time(1M) / time(100k) shows what "linear" can mean here: at 100k the
// blocks stay in the CPU caches between passes, at 1M they stream from
// DRAM on every pass.
//
// Look for: ns_per_item equal at both sizes (linear); map a constant
// factor above vector; eddy's ratio against the floor's.
#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
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

// --- the machine's floor ----------------------------------------------------

constexpr size_t kStateBytes = sizeof(internal::FutureState<int64_t>);

// Stands in for a future's state: a reference count, a value, the slot a
// watcher writes, and the rest of the state's bytes.
struct FloorBlock {
  int64_t refs = 1;
  int64_t value = 0;
  int64_t* watcher = nullptr;
  std::byte rest[kStateBytes - 3 * sizeof(int64_t)] = {};
};
static_assert(sizeof(FloorBlock) == kStateBytes);

// wide_list's passes over its children: make them, copy the handles (a
// reference each), watch each (write a slot pointer, drop the first
// handle), resolve each (write the value, copy it to its slot), sum the
// slots, drop the last handles (free).
template <bool kArena>
int64_t floor_list(int64_t n, FloorBlock* arena) {
  std::vector<FloorBlock*> children(n);
  for (int64_t i = 0; i < n; ++i) {
    children[i] = kArena ? new (arena + i) FloorBlock() : new FloorBlock();
  }
  std::vector<FloorBlock*> handles = children;
  for (FloorBlock* b : handles) ++b->refs;
  std::vector<int64_t> slots(n);
  for (int64_t i = 0; i < n; ++i) {
    children[i]->watcher = &slots[i];
    --children[i]->refs;
  }
  children = {};
  benchmark::ClobberMemory();
  for (int64_t i = 0; i < n; ++i) {
    handles[i]->value = i;
    *handles[i]->watcher = handles[i]->value;
  }
  benchmark::ClobberMemory();
  int64_t sum = 0;
  for (int64_t v : slots) sum += v;
  for (FloorBlock* b : handles) {
    if (--b->refs == 0) {
      if constexpr (kArena) {
        b->~FloorBlock();
      } else {
        delete b;
      }
    }
  }
  benchmark::ClobberMemory();
  return sum;
}

template <bool kArena>
void run_floor(benchmark::State& state) {
  const int64_t n = scaled(state.range(0));
  std::vector<FloorBlock> arena_storage(kArena ? n : 0);
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = floor_list<kArena>(n, arena_storage.data());
  }
  finish(state, n, allocs);
  if (sum != n * (n - 1) / 2) state.SkipWithError("floor: wrong sum");
}

void BM_MultiWide_Floor_Malloc(benchmark::State& state) { run_floor<false>(state); }
EDDY_WORKLOAD(BM_MultiWide_Floor_Malloc)->Arg(kW8SmallChildren)->Arg(kW8Children);

void BM_MultiWide_Floor_Array(benchmark::State& state) { run_floor<true>(state); }
EDDY_WORKLOAD(BM_MultiWide_Floor_Array)->Arg(kW8SmallChildren)->Arg(kW8Children);

// wide_map's passes, without eddy: the blocks and their handles, a
// std::map of them (a reference each), the keys and slots (watch each,
// drop the map), resolve each, a std::map of the results, sum it, drop the
// last handles and the result map.
int64_t floor_map(int64_t n) {
  std::vector<FloorBlock*> handles(n);
  for (int64_t i = 0; i < n; ++i) handles[i] = new FloorBlock();
  std::map<int64_t, FloorBlock*> children;
  for (int64_t i = 0; i < n; ++i) {
    children.emplace_hint(children.end(), i, handles[i]);
    ++handles[i]->refs;
  }
  std::vector<int64_t> keys(n);
  std::vector<int64_t> slots(n);
  size_t j = 0;
  for (auto& [key, block] : children) {
    keys[j] = key;
    block->watcher = &slots[j];
    --block->refs;
    ++j;
  }
  children = {};
  benchmark::ClobberMemory();
  for (int64_t i = 0; i < n; ++i) {
    handles[i]->value = i;
    *handles[i]->watcher = handles[i]->value;
  }
  benchmark::ClobberMemory();
  std::map<int64_t, int64_t> values;
  for (int64_t k = 0; k < n; ++k) values.emplace_hint(values.end(), keys[k], slots[k]);
  int64_t sum = 0;
  for (const auto& [key, v] : values) sum += v;
  for (FloorBlock* b : handles) {
    if (--b->refs == 0) delete b;
  }
  values = {};
  benchmark::ClobberMemory();
  return sum;
}

void BM_MultiWide_Floor_Map(benchmark::State& state) {
  const int64_t n = scaled(state.range(0));
  int64_t sum = 0;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    sum = floor_map(n);
  }
  finish(state, n, allocs);
  if (sum != n * (n - 1) / 2) state.SkipWithError("floor: wrong sum");
}
EDDY_WORKLOAD(BM_MultiWide_Floor_Map)->Arg(kW8SmallChildren)->Arg(kW8Children);

}  // namespace
}  // namespace eddy::bench
