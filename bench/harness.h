// Shared pieces of eddy's benchmark binaries (bench/*_bench.cc): the
// workload sizes and how --eddy_scale shrinks them, the latency histogram
// behind every p50/p99 figure, and the counters every workload exports.
//
//   void BM_PoolThroughput_Asio(benchmark::State& state) {
//     const int64_t n = eddy::bench::scaled(eddy::bench::kW1Tasks);
//     ...
//     for (auto _ : state) { ... }            // exactly one run of the workload
//     eddy::bench::finish(state, n, allocs);   // N, items/s, allocations per item
//   }
//   EDDY_WORKLOAD(BM_PoolThroughput_Asio);
//
// Every workload benchmark runs its workload once per repetition
// (Iterations(1)): one repetition is one full W<k> run, timed in wall-clock
// time; tools/run-benchmarks asks for several repetitions, interleaved at
// random across contenders (--benchmark_enable_random_interleaving), and
// reports medians and spreads.
//
// Threading: the settings are written once by bench_main before any
// benchmark runs and only read afterwards. A LatencyHistogram belongs to
// one thread at a time.
#ifndef EDDY_BENCH_HARNESS_H_
#define EDDY_BENCH_HARNESS_H_

#include <array>
#include <chrono>
#include <cstdint>

#include "benchmark/benchmark.h"

namespace eddy::bench {

// The standard workloads' sizes (shared/DESIGN.md, "The standard workloads").
inline constexpr int64_t kW1Tasks = 1'000'000;
inline constexpr int64_t kW2RoundTrips = 100'000;
// W2's sporadic shape (beyond DESIGN.md, review 8): round trips with a 1 ms
// idle gap between them, so that pool and loop go to sleep between calls.
inline constexpr int64_t kW2SporadicTrips = 2'000;
inline constexpr int64_t kW3TasksPerRound = 1'000;
inline constexpr int64_t kW3Rounds = 200;
inline constexpr int64_t kW4Callbacks = 10'000'000;
inline constexpr int64_t kW5Callbacks = 1'000'000;
inline constexpr int64_t kW6Timers = 1'000'000;
inline constexpr int64_t kW7Futures = 10'000'000;
inline constexpr int64_t kW8Children = 1'000'000;
inline constexpr int64_t kW8SmallChildren = 100'000;
inline constexpr int64_t kW9Awaits = 1'000'000;
// X1 (beyond DESIGN.md): Executor::map from a thread that is not a loop,
// W3's sizes.
inline constexpr int64_t kX1ItemsPerRound = kW3TasksPerRound;
inline constexpr int64_t kX1Rounds = kW3Rounds;
// The floor ping-pongs: as many round trips as W2.
inline constexpr int64_t kFloorRoundTrips = kW2RoundTrips;

// Command-line settings, parsed by bench_main (see parse_flags).
struct Settings {
  double scale = 1.0;          // --eddy_scale: multiplies every N above
  int64_t timer_span_ms = 1000;  // --eddy_timer_span_ms: W6's [0, span) spread
  int workers = 0;             // --eddy_workers: pool size; 0: the core count
};
Settings& settings();

// Removes eddy's own flags (--eddy_scale=, --eddy_timer_span_ms=,
// --eddy_workers=) from argv and stores them in settings(); exits with a
// message on a malformed value. Also sets UV_THREADPOOL_SIZE (unless the
// environment already has it) so libuv's pool has as many threads as the
// other pools, and records the run's context (scale, workers,
// GLIBC_TUNABLES, build mode) in the benchmark output.
void parse_flags(int* argc, char** argv);

// n * scale, at least 1.
int64_t scaled(int64_t n);

// Worker threads every pool gets (eddy, Asio, libuv alike): --eddy_workers,
// else the core count.
int workers();

// Monotonic nanoseconds (std::chrono::steady_clock, a vDSO call).
inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A log-linear latency histogram: exact below 64 ns, then 32 buckets per
// power of two (at most ~3% relative error), up to ~2^40 ns (18 minutes);
// larger values land in the last bucket. record() never allocates, so it
// can sit on a measured path.
class LatencyHistogram {
 public:
  void record(int64_t ns);
  void reset();
  int64_t count() const { return count_; }
  // The value below which a fraction q (0..1) of the recorded samples lie,
  // as the midpoint of its bucket; 0 when empty.
  double percentile(double q) const;
  double mean() const { return count_ == 0 ? 0.0 : double(sum_) / double(count_); }
  int64_t max() const { return max_; }

  static int bucket_of(int64_t ns);
  // [lower, upper) of a bucket, in ns.
  static int64_t bucket_lower(int bucket);
  static int64_t bucket_upper(int bucket);

 private:
  static constexpr int kSubBits = 5;  // 32 buckets per octave
  static constexpr int kMaxExponent = 40;
  static constexpr int kBuckets = (kMaxExponent - kSubBits + 1) << kSubBits;
  std::array<int64_t, kBuckets> counts_{};
  int64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t max_ = 0;
};

// Exports p50_us, p99_us, mean_us and max_us counters from `h`.
void report_latency(benchmark::State& state, const LatencyHistogram& h);

// Exports the standard counters of one workload run of n items: N,
// items_per_second (SetItemsProcessed), and allocs_per_item
// (allocations counted since `allocs_before`, all threads; only when the
// binary counts allocations).
void finish(benchmark::State& state, int64_t n, uint64_t allocs_before);

}  // namespace eddy::bench

// Registers a workload benchmark with the standard settings: one iteration
// per repetition, wall-clock time, milliseconds, and the CPU time of the
// whole process (so a spinning pool shows up as cpu_time > real_time).
#define EDDY_WORKLOAD(fn)                  \
  BENCHMARK(fn)                            \
      ->Iterations(1)                      \
      ->UseRealTime()                      \
      ->MeasureProcessCPUTime()            \
      ->Unit(benchmark::kMillisecond)

#endif  // EDDY_BENCH_HARNESS_H_
