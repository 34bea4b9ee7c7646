// The waiter deque behind sync/: finished waiters are skipped and swept, so
// timed-out or cancelled waits never pile up (Tornado's
// _TimeoutGarbageCollector).
#include "eddy/sync/internal/waiter_queue.h"

#include <optional>
#include <vector>

#include "eddy/futures/future.h"
#include "gtest/gtest.h"
#include "tests/manual_scheduler.h"

namespace eddy::internal {
namespace {

TEST(WaiterQueueTest, PopLiveSkipsFinishedWaitersInFifoOrder) {
  testing::ManualScheduler scheduler;
  WaiterQueue<Future<void>> q;
  std::vector<Future<void>> w(4);
  for (auto& f : w) q.push(f);
  w[0].cancel();
  w[2].cancel();
  EXPECT_EQ(q.live_count(), 2u);
  std::optional<Future<void>> a = q.pop_live();
  std::optional<Future<void>> b = q.pop_live();
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_TRUE(*a == w[1]);
  EXPECT_TRUE(*b == w[3]);
  EXPECT_FALSE(q.pop_live().has_value());
  EXPECT_EQ(q.stored(), 0u);
}

TEST(WaiterQueueTest, FinishedWaitersAreSweptSoStorageStaysBounded) {
  testing::ManualScheduler scheduler;
  WaiterQueue<Future<void>> q;
  Future<void> live;
  q.push(live);
  for (int i = 0; i < 100000; ++i) {
    Future<void> abandoned;
    q.push(abandoned);
    abandoned.cancel();
    // At most about twice the live waiters, plus the sweep threshold.
    ASSERT_LE(q.stored(), 2 * WaiterQueue<Future<void>>::kMinSweep + 2);
  }
  EXPECT_EQ(q.live_count(), 1u);
  std::optional<Future<void>> first = q.pop_live();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(*first == live);
}

TEST(WaiterQueueTest, ManyLiveWaitersCostAmortisedConstantSweeps) {
  testing::ManualScheduler scheduler;
  WaiterQueue<Future<void>> q;
  std::vector<Future<void>> live(10000);
  for (auto& f : live) q.push(f);
  EXPECT_EQ(q.stored(), 10000u);
  EXPECT_EQ(q.live_count(), 10000u);
  for (auto& f : live) {
    std::optional<Future<void>> w = q.pop_live();
    ASSERT_TRUE(w.has_value());
    ASSERT_TRUE(*w == f);
  }
}

struct Entry {
  Future<void> waiter;
  int payload;
};

TEST(WaiterQueueTest, EntriesMayCarryAPayloadBesideTheWaiter) {
  testing::ManualScheduler scheduler;
  WaiterQueue<Entry> q;
  Future<void> a;
  Future<void> b;
  q.push(Entry{a, 1});
  q.push(Entry{b, 2});
  a.cancel();
  EXPECT_TRUE(q.has_live());
  EXPECT_EQ(q.front().payload, 2);
  std::optional<Entry> e = q.pop_live();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->payload, 2);
}

}  // namespace
}  // namespace eddy::internal
