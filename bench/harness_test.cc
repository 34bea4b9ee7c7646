// The benchmark harness's own arithmetic: the latency histogram that every
// p50/p99 figure in bench/REPORT.md comes from, and workload scaling.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"
#include "gtest/gtest.h"

namespace eddy::bench {
namespace {

TEST(LatencyHistogramTest, EmptyHistogramReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.percentile(0.5), 0.0);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  for (int64_t ns = 0; ns < 64; ++ns) {
    int b = LatencyHistogram::bucket_of(ns);
    EXPECT_EQ(LatencyHistogram::bucket_lower(b), ns);
    EXPECT_EQ(LatencyHistogram::bucket_upper(b), ns + 1);
  }
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithoutGapsOrOverlap) {
  for (int b = 0; b < 1000; ++b) {
    EXPECT_EQ(LatencyHistogram::bucket_upper(b), LatencyHistogram::bucket_lower(b + 1)) << b;
    EXPECT_EQ(LatencyHistogram::bucket_of(LatencyHistogram::bucket_lower(b)), b);
    EXPECT_EQ(LatencyHistogram::bucket_of(LatencyHistogram::bucket_upper(b) - 1), b);
  }
}

TEST(LatencyHistogramTest, BucketWidthIsWithinThreePercentOfItsValue) {
  for (int64_t ns : {100, 1'000, 12'345, 1'000'000, 987'654'321}) {
    int b = LatencyHistogram::bucket_of(ns);
    double width = double(LatencyHistogram::bucket_upper(b) - LatencyHistogram::bucket_lower(b));
    EXPECT_LE(width / double(ns), 1.0 / 32 + 1e-9) << ns;
  }
}

TEST(LatencyHistogramTest, HugeValuesLandInTheLastBucket) {
  LatencyHistogram h;
  h.record(int64_t{1} << 50);
  EXPECT_EQ(h.count(), 1);
  EXPECT_GT(h.percentile(1.0), 0.0);
  EXPECT_EQ(h.max(), int64_t{1} << 50);
}

TEST(LatencyHistogramTest, PercentilesMatchSortedSamplesWithinBucketError) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(9.0, 1.0);  // ~8 us median
  std::vector<int64_t> samples(100'000);
  LatencyHistogram h;
  for (int64_t& s : samples) {
    s = static_cast<int64_t>(dist(rng));
    h.record(s);
  }
  std::sort(samples.begin(), samples.end());
  for (double q : {0.5, 0.9, 0.99}) {
    double exact = double(samples[static_cast<size_t>(q * double(samples.size())) - 1]);
    EXPECT_NEAR(h.percentile(q), exact, exact * 0.04) << q;
  }
}

TEST(LatencyHistogramTest, MeanAndMaxAreExact) {
  LatencyHistogram h;
  h.record(10);
  h.record(20);
  h.record(1'000'003);
  EXPECT_DOUBLE_EQ(h.mean(), (10 + 20 + 1'000'003) / 3.0);
  EXPECT_EQ(h.max(), 1'000'003);
  h.reset();
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.max(), 0);
}

TEST(HarnessTest, ScaledNeverDropsBelowOne) {
  settings().scale = 0.5;
  EXPECT_EQ(scaled(1'000'000), 500'000);
  settings().scale = 1e-9;
  EXPECT_EQ(scaled(1'000'000), 1);
  settings().scale = 1.0;
}

TEST(AllocCounterTest, CountsOperatorNewWhenEnabled) {
  if (!counting_allocations()) GTEST_SKIP() << "sanitizer build: operator new is not replaced";
  uint64_t before = allocations();
  auto* p = new int(1);
  auto* q = new int[4];
  // Keep the compiler from eliding the pair (allowed for new-expressions).
  benchmark::DoNotOptimize(p);
  benchmark::DoNotOptimize(q);
  delete p;
  delete[] q;
  EXPECT_GE(allocations() - before, 2u);
}

}  // namespace
}  // namespace eddy::bench
