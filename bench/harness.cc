#include "eddy/bench/harness.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "eddy/bench/alloc_counter.h"

namespace eddy::bench {

Settings& settings() {
  static Settings s;
  return s;
}

namespace {

// Returns the value of `--name=value` if arg is that flag, else nullptr.
const char* flag_value(const char* arg, const char* name) {
  size_t len = std::strlen(name);
  if (std::strncmp(arg, name, len) != 0 || arg[len] != '=') return nullptr;
  return arg + len + 1;
}

[[noreturn]] void bad_flag(const char* arg) {
  std::fprintf(stderr, "bad flag value: %s\n", arg);
  std::exit(2);
}

double parse_double(const char* arg, const char* text) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(v > 0)) bad_flag(arg);
  return v;
}

int64_t parse_int(const char* arg, const char* text, int64_t min) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) bad_flag(arg);
  return v;
}

}  // namespace

void parse_flags(int* argc, char** argv) {
  Settings& s = settings();
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const char* arg = argv[i];
    if (const char* v = flag_value(arg, "--eddy_scale")) {
      s.scale = parse_double(arg, v);
    } else if (const char* v = flag_value(arg, "--eddy_timer_span_ms")) {
      s.timer_span_ms = parse_int(arg, v, 1);
    } else if (const char* v = flag_value(arg, "--eddy_workers")) {
      s.workers = static_cast<int>(parse_int(arg, v, 0));
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = nullptr;

  // libuv sizes its global pool from the environment, once, on first use:
  // give it the same number of threads as eddy's and Asio's pools.
  std::string pool_size = std::to_string(workers());
  setenv("UV_THREADPOOL_SIZE", pool_size.c_str(), /*overwrite=*/0);

  const char* tunables = std::getenv("GLIBC_TUNABLES");
  benchmark::AddCustomContext("eddy_scale", std::to_string(s.scale));
  benchmark::AddCustomContext("eddy_workers", std::to_string(workers()));
  benchmark::AddCustomContext("eddy_timer_span_ms", std::to_string(s.timer_span_ms));
  benchmark::AddCustomContext("uv_threadpool_size", std::getenv("UV_THREADPOOL_SIZE"));
  benchmark::AddCustomContext("glibc_tunables", tunables != nullptr ? tunables : "");
  benchmark::AddCustomContext("counting_allocations", counting_allocations() ? "yes" : "no");
#ifdef NDEBUG
  benchmark::AddCustomContext("eddy_build", "optimized (NDEBUG)");
#else
  benchmark::AddCustomContext("eddy_build", "DEBUG (figures are meaningless; use --config=opt)");
#endif
  benchmark::AddCustomContext("compiler", __VERSION__);
}

int64_t scaled(int64_t n) {
  return std::max<int64_t>(1, std::llround(double(n) * settings().scale));
}

int workers() {
  if (settings().workers > 0) return settings().workers;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int LatencyHistogram::bucket_of(int64_t ns) {
  if (ns < (int64_t{1} << kSubBits)) return ns < 0 ? 0 : static_cast<int>(ns);
  int e = std::bit_width(static_cast<uint64_t>(ns)) - 1;  // 2^e <= ns < 2^(e+1)
  if (e >= kMaxExponent) return kBuckets - 1;
  int sub = static_cast<int>((ns >> (e - kSubBits)) & ((1 << kSubBits) - 1));
  return ((e - kSubBits + 1) << kSubBits) + sub;
}

int64_t LatencyHistogram::bucket_lower(int bucket) {
  if (bucket < (1 << kSubBits)) return bucket;
  int e = (bucket >> kSubBits) + kSubBits - 1;
  int sub = bucket & ((1 << kSubBits) - 1);
  return (int64_t{(1 << kSubBits) + sub}) << (e - kSubBits);
}

int64_t LatencyHistogram::bucket_upper(int bucket) {
  if (bucket < (1 << kSubBits)) return bucket + 1;
  int e = (bucket >> kSubBits) + kSubBits - 1;
  return bucket_lower(bucket) + (int64_t{1} << (e - kSubBits));
}

void LatencyHistogram::record(int64_t ns) {
  ++counts_[bucket_of(ns)];
  ++count_;
  sum_ += ns;
  if (ns > max_) max_ = ns;
}

void LatencyHistogram::reset() { *this = LatencyHistogram(); }

double LatencyHistogram::percentile(double q) const {
  if (count_ == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * double(count_))));
  int64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      int64_t lo = bucket_lower(b), hi = bucket_upper(b);
      return hi - lo == 1 ? double(lo) : double(lo) + double(hi - lo) / 2.0;
    }
  }
  return double(max_);
}

void report_latency(benchmark::State& state, const LatencyHistogram& h) {
  state.counters["p50_us"] = h.percentile(0.50) / 1e3;
  state.counters["p99_us"] = h.percentile(0.99) / 1e3;
  state.counters["mean_us"] = h.mean() / 1e3;
  state.counters["max_us"] = double(h.max()) / 1e3;
}

void finish(benchmark::State& state, int64_t n, uint64_t allocs_before) {
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["N"] = double(n);
  if (counting_allocations()) {
    double allocs = double(allocations() - allocs_before);
    state.counters["allocs_per_item"] = allocs / double(n) / double(state.iterations());
  }
}

}  // namespace eddy::bench
