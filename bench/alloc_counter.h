// Counts heap allocations made through operator new, on every thread, for
// the benchmarks' "allocations per item" figures (W7 above all).
//
//   uint64_t before = eddy::bench::allocations();
//   run_workload();
//   double per_item = double(eddy::bench::allocations() - before) / n;
//
// The counting operator new/delete live in alloc_counter.cc, linked into
// every benchmark binary (cc_library alwayslink), so every contender in a
// binary pays the same ~1 ns per allocation. They forward to malloc/free
// and so keep the process's GLIBC_TUNABLES behaviour. In sanitizer builds
// the replacement is compiled out (the sanitizers bring their own operator
// new) and counting_allocations() is false.
//
// Threading: allocations() may be called from any thread; it sums per-thread
// counters without stopping anyone, so a figure read while other threads
// allocate is a moment's snapshot. Each thread counts into its own cache
// line: counting adds no contention to the workloads being measured.
#ifndef EDDY_BENCH_ALLOC_COUNTER_H_
#define EDDY_BENCH_ALLOC_COUNTER_H_

#include <cstdint>

namespace eddy::bench {

// True when operator new is replaced by the counting one in this binary.
bool counting_allocations();

// Allocations (operator new calls of every form) made by all threads of the
// process since it started; 0 when !counting_allocations().
uint64_t allocations();

}  // namespace eddy::bench

#endif  // EDDY_BENCH_ALLOC_COUNTER_H_
