// Timers: ordering, cancellation (which leaves the heap at once), the manual clock.
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/time.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"

namespace eddy {
namespace {

using testing::Event;
using testing::Probe;
using testing::ProbeLog;
using testing::WaitableLog;

// A loop on a manual clock, current for the test's duration.
struct ManualLoop {
  explicit ManualLoop(bool auto_advance = false)
      : clock(std::make_shared<ManualClock>(ManualClock::Options{{}, auto_advance})),
        loop(IOLoop::Options{clock}) {
    loop.make_current();
  }
  ~ManualLoop() { IOLoop::clear_current(); }

  // Runs one iteration without waiting.
  // One iteration: a stop() made before start() lets it run exactly one,
  // without waiting (run_sync runs fn in one and what fn queued in another).
  void turn() {
    loop.stop();
    loop.start();
  }

  std::shared_ptr<ManualClock> clock;
  IOLoop loop;
};

TEST(MonotonicTimeTest, ArithmeticWithDurationsAndSaturation) {
  MonotonicTime t = MonotonicTime::from_epoch(absl::Seconds(10));
  EXPECT_EQ((t + absl::Milliseconds(1500)) - t, absl::Milliseconds(1500));
  EXPECT_EQ(t - (t - absl::Seconds(3)), absl::Seconds(3));
  EXPECT_LT(t, t + absl::Nanoseconds(1));
  EXPECT_EQ(t + absl::InfiniteDuration(), MonotonicTime::infinite_future());
  EXPECT_EQ(MonotonicTime::infinite_future() + absl::Hours(1), MonotonicTime::infinite_future());
  EXPECT_EQ(t - absl::InfiniteDuration(), MonotonicTime::infinite_past());
}

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(ManualClock::Options{MonotonicTime::from_epoch(absl::Seconds(5)), false});
  EXPECT_EQ(clock.now(), MonotonicTime::from_epoch(absl::Seconds(5)));
  clock.advance(absl::Seconds(2));
  EXPECT_EQ(clock.now(), MonotonicTime::from_epoch(absl::Seconds(7)));
  clock.advance_to(MonotonicTime::from_epoch(absl::Seconds(6)));  // backwards: ignored
  EXPECT_EQ(clock.now(), MonotonicTime::from_epoch(absl::Seconds(7)));
  EXPECT_THROW(clock.advance(absl::Seconds(-1)), std::invalid_argument);
}

TEST(TimersTest, TimerDoesNotFireBeforeItsDeadline) {
  ManualLoop m;
  bool fired = false;
  m.loop.call_later(absl::Seconds(10), [&] { fired = true; });
  m.turn();
  EXPECT_FALSE(fired);
  m.clock->advance(absl::Seconds(9));
  m.turn();
  EXPECT_FALSE(fired);
  m.clock->advance(absl::Seconds(1));
  m.turn();
  EXPECT_TRUE(fired);
}

TEST(TimersTest, TimersFireInDeadlineOrder) {
  ManualLoop m;
  std::vector<int> order;
  m.loop.call_later(absl::Seconds(3), [&] { order.push_back(3); });
  m.loop.call_later(absl::Seconds(1), [&] { order.push_back(1); });
  m.loop.call_at(m.loop.time() + absl::Seconds(2), [&] { order.push_back(2); });
  m.clock->advance(absl::Seconds(5));
  m.turn();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimersTest, TimersDueAtTheSameTimeFireInSchedulingOrder) {
  ManualLoop m;
  std::vector<int> order;
  MonotonicTime when = m.loop.time() + absl::Seconds(1);
  for (int i = 0; i < 50; ++i) m.loop.call_at(when, [&order, i] { order.push_back(i); });
  m.clock->advance(absl::Seconds(1));
  m.turn();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST(TimersTest, RemovedTimerNeverFiresAndItsCallbackDiesAtOnce) {
  ManualLoop m;
  auto probes = std::make_shared<ProbeLog>();
  bool fired = false;
  TimeoutHandle h = m.loop.call_later(absl::Seconds(1), [&fired, p = Probe(probes)] { fired = true; });
  EXPECT_EQ(probes->alive.load(), 1);
  m.loop.remove_timeout(h);
  EXPECT_EQ(probes->alive.load(), 0);
  m.clock->advance(absl::Seconds(2));
  m.turn();
  EXPECT_FALSE(fired);
  EXPECT_EQ(m.loop.stats().timers, 0u);
}

TEST(TimersTest, RemovingAFiredRemovedOrEmptyHandleIsANoOp) {
  ManualLoop m;
  int fired = 0;
  TimeoutHandle h = m.loop.call_later(absl::ZeroDuration(), [&] { ++fired; });
  EXPECT_TRUE(static_cast<bool>(h));
  m.turn();
  EXPECT_EQ(fired, 1);
  m.loop.remove_timeout(h);  // fired
  m.loop.remove_timeout(h);  // again
  m.loop.remove_timeout(TimeoutHandle());
  // The freed slot is reused by the next timer; the old handle must not
  // cancel it.
  bool second = false;
  m.loop.call_later(absl::ZeroDuration(), [&] { second = true; });
  m.loop.remove_timeout(h);
  m.turn();
  EXPECT_TRUE(second);
}

TEST(TimersTest, AnEmptyCallableIsRejectedAndNoTimerIsArmed) {
  ManualLoop m;
  void (*null_fn)() = nullptr;
  EXPECT_THROW(m.loop.call_later(absl::ZeroDuration(), null_fn), std::invalid_argument);
  EXPECT_THROW(m.loop.call_later(absl::ZeroDuration(), nullptr), std::invalid_argument);
  EXPECT_THROW(m.loop.call_at(m.loop.time(), absl::AnyInvocable<void()>()),
               std::invalid_argument);
  EXPECT_THROW(m.loop.add_timeout(absl::ZeroDuration(), absl::AnyInvocable<void()>()),
               std::invalid_argument);
  EXPECT_THROW(m.loop.add_timeout(m.loop.time(), nullptr), std::invalid_argument);
  EXPECT_EQ(m.loop.stats().timers, 0u);
  try {
    m.loop.call_later(absl::Seconds(1), nullptr);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "IOLoop::call_later: fn is empty");
  }
  m.turn();  // nothing to fire, nothing to crash
}

// Every loop numbers its timers from 1: the first timer of two loops had
// equal handles, and b.remove_timeout(a's handle) silently cancelled b's
// timer while a's fired anyway.
TEST(TimersTest, AnotherLoopsHandleIsRefusedAndCancelsNothing) {
  IOLoop a;
  IOLoop b;
  bool a_fired = false;
  bool b_fired = false;
  TimeoutHandle ha = a.call_later(absl::ZeroDuration(), [&] { a_fired = true; });
  TimeoutHandle hb = b.call_later(absl::ZeroDuration(), [&] { b_fired = true; });
  EXPECT_FALSE(ha == hb);
  try {
    b.remove_timeout(ha);
    ADD_FAILURE() << "no exception";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to another loop"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(b.stats().timers, 1u);
  b.run_sync([] {});
  EXPECT_TRUE(b_fired);
  // Through its own loop the handle works as ever.
  a.remove_timeout(ha);
  a.run_sync([] {});
  EXPECT_FALSE(a_fired);
  // A handle that names nothing stays a no-op on any loop, and so does any
  // handle on a closed loop.
  b.remove_timeout(TimeoutHandle());
  TimeoutHandle again = a.call_later(absl::Hours(1), [] {});
  b.close();
  b.remove_timeout(again);
  EXPECT_EQ(a.stats().timers, 1u);
}

TEST(TimersTest, ATimerMayRemoveAnotherDueInTheSameIteration) {
  // Tornado's test_remove_timeout_from_timeout.
  ManualLoop m;
  bool second_fired = false;
  TimeoutHandle second;
  m.loop.call_later(absl::Seconds(1), [&] { m.loop.remove_timeout(second); });
  second = m.loop.call_later(absl::Seconds(1), [&] { second_fired = true; });
  m.clock->advance(absl::Seconds(1));
  m.turn();
  EXPECT_FALSE(second_fired);
}

TEST(TimersTest, ATimerMayRemoveItself) {
  ManualLoop m;
  TimeoutHandle self;
  int fired = 0;
  self = m.loop.call_later(absl::ZeroDuration(), [&] {
    ++fired;
    m.loop.remove_timeout(self);
  });
  m.turn();
  m.turn();
  EXPECT_EQ(fired, 1);
}

TEST(TimersTest, NegativeDelayFiresOnTheNextIteration) {
  ManualLoop m;
  bool fired = false;
  m.loop.call_later(absl::Seconds(-5), [&] { fired = true; });
  EXPECT_FALSE(fired);
  m.turn();
  EXPECT_TRUE(fired);
}

TEST(TimersTest, AZeroDelayTimerArmedByATimerWaitsForTheNextIteration) {
  // On a manual clock "now" does not move, so without the phase's sequence
  // limit this would fire forever within one iteration.
  ManualLoop m;
  int fired = 0;
  std::function<void()> rearm = [&] {
    ++fired;
    m.loop.call_later(absl::ZeroDuration(), [&] { rearm(); });
  };
  m.loop.call_later(absl::ZeroDuration(), [&] { rearm(); });
  m.turn();
  EXPECT_EQ(fired, 1);
  m.turn();
  EXPECT_EQ(fired, 2);
}

TEST(TimersTest, APastTimerArmedByATimerDoesNotHoldBackTimersAlreadyDue) {
  // C, armed in the past by A, waits for the next iteration; B, due when
  // the phase began, still fires in this one (asyncio moves every due
  // timer to its ready list before running any).
  ManualLoop m;
  std::vector<std::string> order;
  m.loop.call_later(absl::ZeroDuration(), [&] {
    order.push_back("A");
    m.loop.call_later(absl::Seconds(-5), [&] { order.push_back("C"); });
  });
  m.loop.call_later(absl::ZeroDuration(), [&] { order.push_back("B"); });
  m.turn();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B"}));
  m.turn();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B", "C"}));
}

TEST(TimersTest, ATimerRearmingItselfInThePastDoesNotStarveTheOthers) {
  ManualLoop m;
  int rearmed = 0;
  bool other = false;
  std::function<void()> rearm = [&] {
    ++rearmed;
    m.loop.call_later(absl::Seconds(-1), [&] { rearm(); });
  };
  m.loop.call_later(absl::ZeroDuration(), [&] { rearm(); });
  m.loop.call_later(absl::ZeroDuration(), [&] { other = true; });
  m.turn();
  m.turn();
  EXPECT_TRUE(other);
  EXPECT_EQ(rearmed, 2);
}

TEST(TimersTest, ThrowingTimerIsLoggedAndTheLoopGoesOn) {
  WaitableLog log;
  ManualLoop m;
  bool after = false;
  m.loop.call_later(absl::ZeroDuration(), [] { throw std::runtime_error("timer boom"); });
  m.loop.call_later(absl::ZeroDuration(), [&] { after = true; });
  m.turn();
  EXPECT_TRUE(after);
  EXPECT_EQ(log.count("timer boom"), 1u) << log.joined();
  EXPECT_EQ(log.count("Exception in timer"), 1u) << log.joined();
}

TEST(TimersTest, CancelledTimersLeaveTheHeapUnderAMillionTimers) {
  ManualLoop m;
  constexpr int kTimers = 1000000;
  constexpr int kKept = 10;
  std::vector<TimeoutHandle> handles;
  handles.reserve(kTimers);
  int fired = 0;
  for (int i = 0; i < kTimers; ++i) {
    handles.push_back(m.loop.call_later(absl::Seconds(1 + i % 1000), [&fired] { ++fired; }));
  }
  EXPECT_EQ(m.loop.stats().timer_heap_entries, static_cast<size_t>(kTimers));
  for (int i = kKept; i < kTimers; ++i) m.loop.remove_timeout(handles[i]);
  IOLoop::Stats s = m.loop.stats();
  EXPECT_EQ(s.timers, static_cast<size_t>(kKept));
  // A cancelled timer leaves the heap at once: nothing dead piles up.
  EXPECT_EQ(s.timer_heap_entries, static_cast<size_t>(kKept)) << s.timer_heap_entries;
  m.clock->advance(absl::Seconds(1001));
  m.turn();
  EXPECT_EQ(fired, kKept);
  EXPECT_EQ(m.loop.stats().timers, 0u);
}

// The W6 shape: schedule all, then cancel exactly every other one. The
// cancelled entries must not stay in the heap until they would have fired.
TEST(TimersTest, CancellingEveryOtherTimerLeavesOnlyTheLiveOnes) {
  ManualLoop m;
  constexpr int kTimers = 2 * 1024;
  std::vector<TimeoutHandle> handles;
  int fired = 0;
  for (int i = 0; i < kTimers; ++i) {
    handles.push_back(m.loop.call_later(absl::Seconds(1 + i), [&fired] { ++fired; }));
  }
  for (int i = 0; i < kTimers; i += 2) m.loop.remove_timeout(handles[i]);
  IOLoop::Stats s = m.loop.stats();
  EXPECT_EQ(s.timers, static_cast<size_t>(kTimers / 2));
  EXPECT_EQ(s.timer_heap_entries, static_cast<size_t>(kTimers / 2))
      << "cancelled entries were left in the heap";
  m.clock->advance(absl::Seconds(kTimers + 1));
  m.turn();
  EXPECT_EQ(fired, kTimers / 2);
}

TEST(TimersTest, AdvancingTheClockFromAnotherThreadWakesABlockedLoop) {
  ManualLoop m;
  Future<void> slept = sleep(absl::Seconds(30));
  Event blocked;
  m.loop.add_callback([&] { blocked.set(); });
  std::thread mover([&] {
    ASSERT_TRUE(blocked.wait());
    m.clock->advance(absl::Seconds(30));
  });
  // Nothing runnable but a timer that only the clock's owner can make due:
  // the loop blocks on its inbox until the other thread moves time.
  m.loop.run_sync([&] { return slept; });
  mover.join();
  EXPECT_TRUE(slept.done());
}

TEST(TimersTest, AutoAdvancingClockJumpsToTheNextTimerWhenIdle) {
  ManualLoop m(/*auto_advance=*/true);
  MonotonicTime start = m.loop.time();
  std::vector<absl::Duration> fired_at;
  m.loop.call_later(absl::Hours(2), [&] { fired_at.push_back(m.loop.time() - start); });
  m.loop.call_later(absl::Hours(1), [&] { fired_at.push_back(m.loop.time() - start); });
  m.loop.run_sync([] { return sleep(absl::Hours(3)); });
  EXPECT_EQ(fired_at, (std::vector<absl::Duration>{absl::Hours(1), absl::Hours(2)}));
  EXPECT_EQ(m.loop.time() - start, absl::Hours(3));
}

// An auto-advancing clock jumps only to deadlines that can come: with a
// timer at infinity left, the loop waits for the other thread's post, and
// time stays where it was. The poster sleeps so that the loop is idle by
// then (were it not, the test would check less, never fail wrongly).
TEST(TimersTest, AutoAdvancingClockNeverJumpsToAnInfiniteDeadline) {
  ManualLoop m(/*auto_advance=*/true);
  const MonotonicTime start = m.loop.time();
  m.loop.call_later(absl::InfiniteDuration(), [] {});
  ConcurrentFuture<int> posted;
  std::thread poster([posted]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    posted.set_result(1);
  });
  EXPECT_EQ(m.loop.run_sync([&] { return posted; }), 1);
  poster.join();
  EXPECT_EQ(m.loop.time(), start);
}

TEST(TimersTest, RunSyncWithAnInfiniteTimeoutOnAnAutoAdvancingClockDoesNotTimeOut) {
  ManualLoop m(/*auto_advance=*/true);
  ConcurrentFuture<int> posted;
  std::thread poster([posted]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    posted.set_result(2);
  });
  EXPECT_EQ(m.loop.run_sync([&] { return posted; }, absl::InfiniteDuration()), 2);
  poster.join();
}

TEST(TimersTest, TimerOnTheSteadyClockFiresNoEarlierThanItsDeadline) {
  IOLoop loop;
  MonotonicTime deadline = loop.time() + absl::Milliseconds(5);
  MonotonicTime fired_at;
  bool fired = false;
  loop.make_current();
  Future<void> done;
  loop.call_at(deadline, [&] {
    fired_at = loop.time();
    fired = true;
    done.set_result();
  });
  loop.run_sync([&] { return done; });
  IOLoop::clear_current();
  EXPECT_TRUE(fired);
  EXPECT_GE(fired_at, deadline);
}

// The loop sleeps toward its next steady-clock timer on a timerfd armed at
// that deadline; each later (and each earlier) deadline must re-arm it.
TEST(TimersTest, SteadyClockTimersInSequenceEachFireNoEarlierThanTheirDeadline) {
  IOLoop loop;
  loop.make_current();
  std::vector<MonotonicTime> deadlines;
  std::vector<MonotonicTime> fired;
  Future<void> done;
  const MonotonicTime start = loop.time();
  // Scheduled out of order, some sharing a deadline.
  for (int ms : {4, 1, 3, 2, 2, 6, 5}) {
    MonotonicTime d = start + absl::Milliseconds(ms);
    deadlines.push_back(d);
    loop.call_at(d, [&, d] {
      fired.push_back(loop.time());
      EXPECT_GE(loop.time(), d);
      if (fired.size() == 7) done.set_result();
    });
  }
  loop.run_sync([&] { return done; }, absl::Seconds(10));
  IOLoop::clear_current();
  ASSERT_EQ(fired.size(), 7u);
  for (size_t i = 1; i < fired.size(); ++i) EXPECT_GE(fired[i], fired[i - 1]);
}

// While the loop sleeps toward a far timer, another thread posts a callback
// that adds a near one: the loop must wake for it, not for the far one.
TEST(TimersTest, AnEarlierTimerAddedWhileTheLoopSleepsTowardALaterOneFiresFirst) {
  IOLoop loop;
  loop.make_current();
  Future<void> done;
  bool far_fired = false;
  loop.call_later(absl::Seconds(30), [&] { far_fired = true; });
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    loop.add_callback([&] {
      loop.call_later(absl::Milliseconds(2), [&] { done.set_result(); });
    });
  });
  loop.run_sync([&] { return done; }, absl::Seconds(20));
  poster.join();
  IOLoop::clear_current();
  EXPECT_TRUE(done.done());
  EXPECT_FALSE(far_fired);
}

TEST(TimersTest, AddTimeoutAcceptsADelayOrADeadline) {
  ManualLoop m;
  std::vector<int> order;
  m.loop.add_timeout(absl::Seconds(2), [&] { order.push_back(2); });
  m.loop.add_timeout(m.loop.time() + absl::Seconds(1), [&] { order.push_back(1); });
  m.clock->advance(absl::Seconds(2));
  m.turn();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace eddy
