// Event: Tornado's locks_test.py EventTest scenarios, plus timeouts on the
// loop's (manual) clock, cancellation and the threading contract.
#include "eddy/sync/event.h"

#include <memory>
#include <optional>
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

using EventTest = testing::SyncLoopTest;

TEST_F(EventTest, StartsClear) {
  Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait().done());
}

TEST_F(EventTest, WaitOnSetEventIsAlreadyDone) {
  Event e;
  e.set();
  EXPECT_TRUE(e.is_set());
  Future<void> f = e.wait();
  EXPECT_TRUE(f.done());
  EXPECT_EQ(e.waiter_count(), 0u);
}

TEST_F(EventTest, SetCompletesWaitersButCallbacksRunOnALaterTurn) {
  Event e;
  record_done(e.wait(), "a");
  record_done(e.wait(), "b");
  EXPECT_EQ(e.waiter_count(), 2u);
  e.set();
  EXPECT_TRUE(history_.empty());  // never inside set()
  drain();
  EXPECT_EQ(history_, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e.waiter_count(), 0u);
}

TEST_F(EventTest, SettingTwiceIsHarmless) {
  Event e;
  Future<void> f = e.wait();
  e.set();
  e.set();
  drain();
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(e.is_set());
}

// Tornado's test_event_wait_clear.
TEST_F(EventTest, ClearMakesLaterWaitsBlockButKeepsCompletedOnes) {
  Event e;
  Future<void> first = e.wait();
  e.clear();
  e.set();
  Future<void> second = e.wait();
  e.clear();
  Future<void> third = e.wait();
  EXPECT_TRUE(first.done());
  EXPECT_TRUE(second.done());
  EXPECT_FALSE(third.done());
  EXPECT_FALSE(e.is_set());
}

TEST_F(EventTest, WaitFailsWithTimeoutErrorWhenTheLoopClockPassesTheTimeout) {
  Event e;
  Future<void> f = e.wait(absl::Seconds(1));
  advance(absl::Milliseconds(999));
  EXPECT_FALSE(f.done());
  advance(absl::Milliseconds(1));
  EXPECT_TRUE(failed_with<TimeoutError>(f));
  // The timed-out waiter is forgotten: set() afterwards does not touch it.
  e.set();
  drain();
  EXPECT_EQ(e.waiter_count(), 0u);
}

TEST_F(EventTest, SetBeforeTheTimeoutWinsAndRemovesTheTimer) {
  Event e;
  Future<void> f = e.wait(absl::Seconds(1));
  EXPECT_EQ(loop_.stats().timers, 1u);
  e.set();
  drain();
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_EQ(loop_.stats().timers, 0u);
  advance(absl::Seconds(2));
  EXPECT_EQ(f.exception(), nullptr);
}

TEST_F(EventTest, CancellingAWaiterStopsItsWait) {
  Event e;
  Future<void> cancelled = e.wait(absl::Seconds(1));
  Future<void> kept = e.wait();
  EXPECT_TRUE(cancelled.cancel());
  drain();
  EXPECT_EQ(e.waiter_count(), 1u);
  EXPECT_EQ(loop_.stats().timers, 0u);  // its timer went with it
  e.set();
  drain();
  EXPECT_TRUE(cancelled.cancelled());
  EXPECT_TRUE(kept.done());
}

TEST_F(EventTest, CoroutineWaitsForTheEvent) {
  Event ready;
  std::vector<std::string> log;
  auto waiter = [&]() -> Future<void> {
    log.push_back("waiting");
    co_await ready.wait();
    log.push_back("woken");
  };
  Future<void> w = waiter();
  EXPECT_EQ(log, (std::vector<std::string>{"waiting"}));
  loop_.call_later(absl::Seconds(5), [&] { ready.set(); });
  advance(absl::Seconds(5));
  EXPECT_TRUE(w.done());
  EXPECT_EQ(log, (std::vector<std::string>{"waiting", "woken"}));
}

TEST_F(EventTest, DestroyingTheEventCancelsItsWaiters) {
  Future<void> f;
  {
    Event e;
    f = e.wait(absl::Seconds(1));
  }
  EXPECT_TRUE(f.cancelled());
  drain();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST(EventWithoutLoopTest, WaitsWorkOnAnySchedulerWithoutTimeout) {
  testing::ManualScheduler scheduler;
  Event e;
  Future<void> f = e.wait();
  bool ran = false;
  f.add_done_callback([&] { ran = true; });
  e.set();
  EXPECT_FALSE(ran);
  scheduler.run_pending();
  EXPECT_TRUE(ran);
}

TEST(EventWithoutLoopTest, TimeoutWithoutAnIOLoopThrowsInvalidStateError) {
  testing::ManualScheduler scheduler;
  Event e;
  EXPECT_THROW((void)e.wait(absl::Seconds(1)), InvalidStateError);
  EXPECT_EQ(e.waiter_count(), 0u);
  // No timeout needed when it is set: no error either.
  e.set();
  EXPECT_TRUE(e.wait(absl::Seconds(1)).done());
}

// --- used from a foreign thread -------------------------------------------

// set() from a pool thread used to set the flag and take every waiter
// before the first waiter's future refused the foreign thread: the waiters
// were lost (their coroutines hung), and a correct set() on the loop was a
// no-op since the flag was already set.
TEST_F(EventTest, ASetOnAForeignThreadIsRefusedAndLeavesTheWaitersInPlace) {
  Event e;
  Future<void> w = e.wait();
  std::thread other([&] {
    try {
      e.set();
      ADD_FAILURE() << "no exception";
    } catch (const InvalidStateError& ex) {
      EXPECT_NE(std::string(ex.what()).find("Event::set"), std::string::npos) << ex.what();
    }
  });
  other.join();
  EXPECT_FALSE(e.is_set());
  EXPECT_EQ(e.waiter_count(), 1u);
  e.set();
  drain();
  EXPECT_TRUE(w.done());
  EXPECT_FALSE(w.cancelled());
}

// Destroyed on another thread with waiters, the destructor used to call
// std::terminate (the waiters' check threw out of it).
TEST_F(EventTest, DestroyedOnAForeignThreadItLogsAndItsLoopCancelsTheWaiters) {
  testing::LogCapture log;
  auto e = std::make_unique<Event>();
  Future<void> w = e->wait();
  std::thread other([&] { e.reset(); });
  other.join();
  EXPECT_EQ(log.count("Event destroyed on a thread that does not own"), 1u);
  drain();
  EXPECT_TRUE(w.cancelled());
}

// Its loop closed, nobody can cancel the waiters on their thread, and this
// thread must not touch them (their loop's thread may still be): they are
// left as they are, leaked on purpose, and that is logged.
TEST_F(EventTest, DestroyedOnAForeignThreadAfterItsLoopClosedItLeavesTheWaitersAlone) {
  testing::LogCapture log;
  auto e = std::make_unique<Event>();
  Future<void> w;
  {
    IOLoop gone;
    gone.make_current();
    w = e->wait();
  }
  loop_.make_current();
  std::thread other([&] { e.reset(); });
  other.join();
  EXPECT_EQ(log.count("Event destroyed on a thread that does not own"), 1u);
  EXPECT_EQ(log.count("is closed: they are leaked"), 1u) << log.size();
  EXPECT_FALSE(w.done());
}

}  // namespace
}  // namespace eddy
