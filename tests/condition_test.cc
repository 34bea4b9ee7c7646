// Condition: Tornado's locks_test.py ConditionTest scenarios (fairness,
// notify(n) skipping timed-out waiters, nested notify), with timeouts on a
// manual clock. eddy's timed-out wait fails with TimeoutError (Tornado's
// resolves to False).
#include "eddy/sync/condition.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using ConditionTest = testing::SyncLoopTest;
using History = std::vector<std::string>;

TEST_F(ConditionTest, NotifyWakesAWaiterOnALaterTurn) {
  Condition c;
  Future<void> f = c.wait();
  EXPECT_EQ(c.notify(), 1u);
  EXPECT_TRUE(f.done());
  bool ran = false;
  f.add_done_callback([&] { ran = true; });
  EXPECT_FALSE(ran);
  drain();
  EXPECT_TRUE(ran);
}

// Tornado's test_notify_1.
TEST_F(ConditionTest, NotifyOneWakesOneWaiterPerCallOldestFirst) {
  Condition c;
  record_done(c.wait(), "wait1");
  record_done(c.wait(), "wait2");
  c.notify(1);
  drain();
  history_.push_back("notify1");
  c.notify(1);
  drain();
  history_.push_back("notify2");
  EXPECT_EQ(history_, (History{"wait1", "notify1", "wait2", "notify2"}));
}

// Tornado's test_notify_n.
TEST_F(ConditionTest, NotifyNWakesTheNOldestWaitersInOrder) {
  Condition c;
  for (int i = 0; i < 6; ++i) record_done(c.wait(), std::to_string(i));
  EXPECT_EQ(c.notify(3), 3u);
  drain();
  EXPECT_EQ(history_, (History{"0", "1", "2"}));
  c.notify(1);
  drain();
  EXPECT_EQ(history_, (History{"0", "1", "2", "3"}));
  c.notify(2);
  drain();
  EXPECT_EQ(history_, (History{"0", "1", "2", "3", "4", "5"}));
}

// Tornado's test_notify_all.
TEST_F(ConditionTest, NotifyAllWakesEveryWaiterInOrder) {
  Condition c;
  for (int i = 0; i < 4; ++i) record_done(c.wait(), std::to_string(i));
  EXPECT_EQ(c.notify_all(), 4u);
  drain();
  history_.push_back("notify_all");
  EXPECT_EQ(history_, (History{"0", "1", "2", "3", "notify_all"}));
}

TEST_F(ConditionTest, NotifyWithNobodyWaitingIsLost) {
  Condition c;
  EXPECT_EQ(c.notify(), 0u);
  EXPECT_EQ(c.notify_all(), 0u);
  Future<void> f = c.wait();
  drain();
  EXPECT_FALSE(f.done());
}

// Tornado's test_wait_timeout (which expects False instead).
TEST_F(ConditionTest, WaitFailsWithTimeoutErrorWhenNotNotifiedInTime) {
  Condition c;
  Future<void> f = c.wait(absl::Milliseconds(10));
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(failed_with<TimeoutError>(f));
  EXPECT_EQ(c.notify(), 0u);  // too late: nobody left to wake
}

// Tornado's test_wait_timeout_preempted.
TEST_F(ConditionTest, NotifyBeforeTheTimeoutWins) {
  Condition c;
  Future<void> f = c.wait(absl::Milliseconds(20));
  loop_.call_later(absl::Milliseconds(10), [&] { c.notify(); });
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(f.done());
  advance(absl::Milliseconds(20));
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

// Tornado's test_notify_n_with_timeout.
TEST_F(ConditionTest, TimedOutWaiterDoesNotCountAgainstNotifyN) {
  Condition c;
  record_done(c.wait(), "0");
  record_done(c.wait(absl::Milliseconds(10)), "1");
  record_done(c.wait(), "2");
  record_done(c.wait(), "3");
  advance(absl::Milliseconds(20));
  EXPECT_EQ(history_, (History{"timeout"}));
  EXPECT_EQ(c.notify(2), 2u);
  drain();
  EXPECT_EQ(history_, (History{"timeout", "0", "2"}));
  c.notify();
  drain();
  EXPECT_EQ(history_, (History{"timeout", "0", "2", "3"}));
}

// Tornado's test_notify_all_with_timeout.
TEST_F(ConditionTest, NotifyAllSkipsTimedOutWaiters) {
  Condition c;
  record_done(c.wait(), "0");
  record_done(c.wait(absl::Milliseconds(10)), "1");
  record_done(c.wait(), "2");
  advance(absl::Milliseconds(20));
  EXPECT_EQ(history_, (History{"timeout"}));
  EXPECT_EQ(c.notify_all(), 2u);
  drain();
  EXPECT_EQ(history_, (History{"timeout", "0", "2"}));
}

TEST_F(ConditionTest, CancelledWaiterIsSkippedByNotify) {
  Condition c;
  Future<void> a = c.wait();
  Future<void> b = c.wait();
  Future<void> d = c.wait();
  b.cancel();
  EXPECT_EQ(c.waiter_count(), 2u);
  EXPECT_EQ(c.notify(2), 2u);
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.cancelled());
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.exception(), nullptr);
}

// Tornado's test_nested_notify: a woken waiter's callback notifies again.
TEST_F(ConditionTest, NestedNotifyLosesNoNotification) {
  Condition c;
  std::vector<Future<void>> waiters = {c.wait(), c.wait(), c.wait()};
  waiters[1].add_done_callback([&] { c.notify(); });
  c.notify(2);
  drain();
  for (auto& w : waiters) EXPECT_TRUE(w.done());
}

// The same without a loop: callbacks run inline, inside notify().
TEST(ConditionWithoutLoopTest, NestedNotifyInsideNotifyLosesNoNotification) {
  Condition c;
  std::vector<Future<void>> waiters = {c.wait(), c.wait(), c.wait()};
  waiters[1].add_done_callback([&] { c.notify(); });
  c.notify(2);
  for (auto& w : waiters) EXPECT_TRUE(w.done());
}

// Tornado's test_garbage_collection: timed-out waiters do not pile up.
TEST_F(ConditionTest, TimedOutWaitersDoNotPileUp) {
  testing::LogCapture logs;  // the dropped futures' TimeoutErrors are logged
  Condition c;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 101; ++i) (void)c.wait(absl::Milliseconds(10));
    advance(absl::Milliseconds(10));
  }
  Future<void> live = c.wait();
  EXPECT_EQ(c.waiter_count(), 1u);
  EXPECT_EQ(loop_.stats().timers, 0u);
  c.notify();
  EXPECT_TRUE(live.done());
}

TEST_F(ConditionTest, CoroutinesWaitInALoopUntilTheStateChanges) {
  Condition changed;
  std::vector<int> jobs;
  std::vector<int> done;
  auto worker = [&]() -> Future<void> {
    for (;;) {
      while (jobs.empty()) co_await changed.wait();
      int j = jobs.front();
      jobs.erase(jobs.begin());
      if (j < 0) co_return;
      done.push_back(j);
    }
  };
  Future<void> w = worker();
  for (int i : {1, 2, 3, -1}) {
    jobs.push_back(i);
    changed.notify();
    drain();
  }
  EXPECT_TRUE(w.done());
  EXPECT_EQ(done, (std::vector<int>{1, 2, 3}));
}

TEST_F(ConditionTest, DestroyingTheConditionCancelsItsWaiters) {
  std::vector<Future<void>> waiters;
  {
    Condition c;
    waiters = {c.wait(), c.wait(absl::Seconds(1))};
  }
  for (auto& w : waiters) EXPECT_TRUE(w.cancelled());
  drain();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

// --- used from a foreign thread -------------------------------------------

// notify_all() from a pool thread used to take every waiter before the
// first one's future refused the thread: all were lost, and a retry on the
// loop woke nobody.
TEST_F(ConditionTest, NotifyOnAForeignThreadIsRefusedAndWakesNobody) {
  Condition c;
  Future<void> w = c.wait();
  std::thread other([&] {
    EXPECT_THROW(c.notify_all(), InvalidStateError);
    try {
      c.notify();
      ADD_FAILURE() << "no exception";
    } catch (const InvalidStateError& ex) {
      EXPECT_NE(std::string(ex.what()).find("Condition::notify"), std::string::npos)
          << ex.what();
    }
  });
  other.join();
  EXPECT_EQ(c.waiter_count(), 1u);
  EXPECT_EQ(c.notify_all(), 1u);
  drain();
  EXPECT_TRUE(w.done());
  EXPECT_FALSE(w.cancelled());
}

TEST_F(ConditionTest, DestroyedOnAForeignThreadItLogsAndItsLoopCancelsTheWaiters) {
  testing::LogCapture log;
  auto c = std::make_unique<Condition>();
  Future<void> w = c->wait();
  std::thread other([&] { c.reset(); });  // used to call std::terminate
  other.join();
  EXPECT_EQ(log.count("Condition destroyed on a thread that does not own"), 1u);
  drain();
  EXPECT_TRUE(w.cancelled());
}

}  // namespace
}  // namespace eddy
