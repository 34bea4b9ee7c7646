// sleep() and with_timeout(), mostly on a manual clock.
#include "eddy/loop/with_timeout.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::thrown_what;
using testing::WaitableLog;

class WithTimeoutTest : public ::testing::Test {
 protected:
  WithTimeoutTest() : clock(std::make_shared<ManualClock>()), loop(IOLoop::Options{clock}) {
    loop.make_current();
  }
  ~WithTimeoutTest() override { IOLoop::clear_current(); }

  void advance(absl::Duration d) {
    clock->advance(d);
    turn();
  }
  // Two iterations: one for timers, one for the future callbacks they cause.
  void turn() {
    loop.run_sync([] {});
    loop.run_sync([] {});
  }

  std::shared_ptr<ManualClock> clock;
  IOLoop loop;
};

TEST_F(WithTimeoutTest, SleepResolvesOnlyOnceItsTimeHasCome) {
  Future<void> s = sleep(absl::Seconds(5));
  turn();
  EXPECT_FALSE(s.done());
  advance(absl::Seconds(4));
  EXPECT_FALSE(s.done());
  advance(absl::Seconds(1));
  EXPECT_TRUE(s.done());
}

TEST_F(WithTimeoutTest, ACancelledSleepStaysCancelled) {
  Future<void> s = sleep(absl::Seconds(1));
  s.cancel();
  advance(absl::Seconds(1));
  EXPECT_TRUE(s.cancelled());
}

TEST_F(WithTimeoutTest, TheResultPassesThroughWhenInTime) {
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(5), f);
  f.set_result(8);
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 8);
  EXPECT_EQ(loop.stats().timers, 0u);  // the timer went with it
}

TEST_F(WithTimeoutTest, AnExceptionPassesThroughWhenInTime) {
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(5), f);
  f.set_exception(std::make_exception_ptr(std::runtime_error("early")));
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), std::runtime_error);
}

TEST_F(WithTimeoutTest, ExpiryFailsWithTimeoutErrorAndLeavesTheFutureAlone) {
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(5), f);
  advance(absl::Seconds(4));
  EXPECT_FALSE(r.done());
  advance(absl::Seconds(1));
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), TimeoutError);
  EXPECT_FALSE(f.done());  // not cancelled (Tornado semantics)
  f.set_result(1);         // still usable by whoever else waits on it
  turn();
  EXPECT_EQ(f.result(), 1);
}

TEST_F(WithTimeoutTest, TheDeadlineOverloadUsesLoopTime) {
  Future<int> f;
  Future<int> r = with_timeout(loop.time() + absl::Seconds(2), f);
  advance(absl::Seconds(2));
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), TimeoutError);
}

// Tornado: gen_test.py test_already_resolved
TEST_F(WithTimeoutTest, AnAlreadyResolvedFutureGivesItsValueWithoutTheClockMoving) {
  // Tornado's result is done when with_timeout returns; eddy's a turn later
  // (the review's C5). Either way it needs no loop time.
  Future<std::string> f;
  f.set_result("asdf");
  Future<std::string> r = with_timeout(absl::Hours(1), f);
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), "asdf");
  EXPECT_EQ(loop.stats().timers, 0u);  // the hour-long timer went with it
}

TEST_F(WithTimeoutTest, ALaterFailureIsLoggedUnlessQuiet) {
  WaitableLog log;
  Future<int> loud;
  Future<int> quiet;
  Future<int> r1 = with_timeout(absl::Seconds(1), loud);
  Future<int> r2 = with_timeout(absl::Seconds(1), quiet, QuietExceptions::of<std::logic_error>());
  advance(absl::Seconds(1));
  EXPECT_THROW(r1.result(), TimeoutError);
  EXPECT_THROW(r2.result(), TimeoutError);
  loud.set_exception(std::make_exception_ptr(std::runtime_error("loud late failure")));
  quiet.set_exception(std::make_exception_ptr(std::invalid_argument("quiet late failure")));
  turn();
  EXPECT_EQ(log.count("loud late failure"), 1u) << log.joined();
  EXPECT_EQ(log.count("quiet late failure"), 0u) << log.joined();
}

TEST_F(WithTimeoutTest, CancelOnTimeoutCancelsTheWrappedFuture) {
  WaitableLog log;
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(1), f, TimeoutOptions{{}, /*cancel_on_timeout=*/true});
  advance(absl::Seconds(1));
  EXPECT_THROW(r.result(), TimeoutError);
  EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(log.lines().size(), 0u) << log.joined();  // a cancellation is quiet
}

TEST_F(WithTimeoutTest, AFutureDoneWhenTheTimerFiresWins) {
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(1), f);
  clock->advance(absl::Seconds(1));
  f.set_result(3);  // its callbacks are queued; the timer is due: same iteration
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 3);
}

// A moved-from future is an InvalidStateError naming with_timeout, and no
// timer is set (a moved-from ConcurrentFuture used to crash the process).
TEST_F(WithTimeoutTest, AnEmptyFutureIsAnErrorNamingWithTimeout) {
  Future<int> f;
  Future<int> taken = std::move(f);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)with_timeout(absl::Seconds(1), f); }),
            "with_timeout: the Future f is empty (moved from)");
  EXPECT_THROW((void)with_timeout(loop.time() + absl::Seconds(1), f), InvalidStateError);
  ConcurrentFuture<int> cf;
  ConcurrentFuture<int> taken_cf = std::move(cf);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)with_timeout(absl::Seconds(1), cf); }),
            "with_timeout: the ConcurrentFuture f is empty (moved from)");
  EXPECT_THROW((void)with_timeout(loop.time() + absl::Seconds(1), cf), InvalidStateError);
}

TEST_F(WithTimeoutTest, AConcurrentFutureIsBridgedOntoTheLoop) {
  ConcurrentFuture<int> cf;
  Future<int> r = with_timeout(absl::Seconds(5), cf);
  std::thread worker([cf]() mutable { cf.set_result(11); });
  worker.join();
  loop.run_sync([&] { return r; });
  EXPECT_EQ(r.result(), 11);
}

TEST_F(WithTimeoutTest, AConcurrentFutureTimesOutToo) {
  ConcurrentFuture<int> cf;
  Future<int> r = with_timeout(absl::Seconds(5), cf, TimeoutOptions{{}, /*cancel_on_timeout=*/true});
  advance(absl::Seconds(5));
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), TimeoutError);
  EXPECT_TRUE(cf.cancelled());  // it was still queued, so cancel() reached it
}

TEST_F(WithTimeoutTest, AConcurrentFutureDoneWhenTheTimerFiresWins) {
  // Done before the deadline, but its delivery is still in the loop's inbox
  // when the timer is due (the loop was busy): its outcome wins, as a
  // loop future's does.
  ConcurrentFuture<int> cf;
  Future<int> r = with_timeout(absl::Seconds(1), cf);
  clock->advance(absl::Seconds(1));
  std::thread([cf]() mutable { cf.set_result(5); }).join();
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 5);
}

// Tornado: gen_test.py test_completed_concurrent_future
TEST_F(WithTimeoutTest, AnAlreadyCompletedConcurrentFutureGivesItsValueWithoutTheClockMoving) {
  ConcurrentFuture<int> cf;
  std::thread([cf]() mutable { cf.set_result(7); }).join();  // as a pool task that has finished
  ASSERT_TRUE(cf.done());
  Future<int> r = with_timeout(absl::Hours(1), cf);
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 7);
  EXPECT_EQ(loop.stats().timers, 0u);  // the hour-long timer went with it
}

// Tornado: gen_test.py test_timeout_concurrent_future
TEST_F(WithTimeoutTest, TheDeadlineOverloadForAConcurrentFutureUsesLoopTime) {
  ConcurrentFuture<int> cf;
  ASSERT_TRUE(cf.set_running_or_notify_cancel());  // a task still running on its pool
  Future<int> r = with_timeout(loop.time() + absl::Seconds(2), cf);
  advance(absl::Seconds(1));
  EXPECT_FALSE(r.done()) << "timed out before its deadline";
  advance(absl::Seconds(1));
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), TimeoutError);
  EXPECT_FALSE(cf.done());  // left running (Tornado semantics)
  std::thread([cf]() mutable { cf.set_result(1); }).join();  // the task ends later
  turn();
  EXPECT_THROW(r.result(), TimeoutError);
}

TEST_F(WithTimeoutTest, ALateFailureOfARunningConcurrentFutureIsLoggedOnceUnlessQuiet) {
  // cancel_on_timeout cannot stop a task that is already running: its
  // later failure is reported as after any timeout (once, honouring
  // `quiet`), not as an exception nobody retrieved.
  WaitableLog log;
  {
    ConcurrentFuture<int> quiet;
    ConcurrentFuture<int> loud;
    ASSERT_TRUE(quiet.set_running_or_notify_cancel());
    ASSERT_TRUE(loud.set_running_or_notify_cancel());
    const TimeoutOptions options{QuietExceptions::of<std::invalid_argument>(),
                                 /*cancel_on_timeout=*/true};
    Future<int> r1 = with_timeout(absl::Seconds(1), quiet, options);
    Future<int> r2 = with_timeout(absl::Seconds(1), loud, options);
    advance(absl::Seconds(1));
    EXPECT_THROW(r1.result(), TimeoutError);
    EXPECT_THROW(r2.result(), TimeoutError);
    EXPECT_FALSE(quiet.cancelled());
    std::thread([quiet, loud]() mutable {
      quiet.set_exception(std::make_exception_ptr(std::invalid_argument("quiet late failure")));
      loud.set_exception(std::make_exception_ptr(std::runtime_error("loud late failure")));
    }).join();
    turn();
  }
  turn();
  EXPECT_EQ(log.count("quiet late failure"), 0u) << log.joined();
  EXPECT_EQ(log.count("loud late failure"), 1u) << log.joined();
}

// The message says what the caller gave. The clock used to be read twice
// (for the deadline, then for the message), so on a clock that moves by
// itself 100ms read "timed out after 99.999389ms".
TEST(WithTimeoutSteadyClockTest, TheMessageStatesTheTimeoutAsGiven) {
  IOLoop loop;
  EXPECT_EQ(thrown_what<TimeoutError>([&] {
              loop.run_sync([] { return with_timeout(absl::Milliseconds(5), Future<int>()); });
            }),
            "with_timeout: timed out after 5ms");
  ConcurrentFuture<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  EXPECT_EQ(thrown_what<TimeoutError>([&] {
              loop.run_sync([&] { return with_timeout(absl::Milliseconds(5), running); });
            }),
            "with_timeout: timed out after 5ms");
  std::thread([running]() mutable { running.set_result(1); }).join();
}

TEST_F(WithTimeoutTest, ANegativeTimeoutIsReportedAsZero) {
  Future<int> r = with_timeout(absl::Seconds(-3), Future<int>());
  turn();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(thrown_what<TimeoutError>([&] { r.result(); }), "with_timeout: timed out after 0s");
}

// A deadline is reported as its distance from the call, to three
// significant digits: a deadline computed from the clock a moment before
// the call is a few microseconds short of what the caller meant.
TEST_F(WithTimeoutTest, TheMessageOfADeadlineSaysHowFarAheadOfTheCallItWas) {
  struct Case {
    absl::Duration ahead;
    const char* message;
  };
  const Case cases[] = {
      {absl::Seconds(2), "with_timeout: timed out at its deadline, 2s after the call"},
      {absl::Nanoseconds(99'999'389),
       "with_timeout: timed out at its deadline, 100ms after the call"},
      {absl::Nanoseconds(2'345'670'000),
       "with_timeout: timed out at its deadline, 2.35s after the call"},
      {absl::Microseconds(1234), "with_timeout: timed out at its deadline, 1.23ms after the call"},
      {absl::Nanoseconds(7), "with_timeout: timed out at its deadline, 7ns after the call"},
      {absl::ZeroDuration(), "with_timeout: timed out at its deadline, 0s after the call"},
      {absl::Seconds(-1), "with_timeout: timed out at its deadline, already past at the call"},
  };
  for (const Case& c : cases) {
    Future<int> r = with_timeout(loop.time() + c.ahead, Future<int>());
    advance(std::max(c.ahead, absl::ZeroDuration()));
    ASSERT_TRUE(r.done()) << c.message;
    EXPECT_EQ(thrown_what<TimeoutError>([&] { r.result(); }), c.message);
  }
}

TEST_F(WithTimeoutTest, TheMessageOfADeadlineForAConcurrentFutureToo) {
  ConcurrentFuture<int> cf;
  ASSERT_TRUE(cf.set_running_or_notify_cancel());
  Future<int> r = with_timeout(loop.time() + absl::Milliseconds(1500), cf);
  advance(absl::Milliseconds(1500));
  ASSERT_TRUE(r.done());
  EXPECT_EQ(thrown_what<TimeoutError>([&] { r.result(); }),
            "with_timeout: timed out at its deadline, 1.5s after the call");
  std::thread([cf]() mutable { cf.set_result(1); }).join();
  turn();
}

TEST(WithTimeoutSteadyClockTest, TimesOutForReal) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([] { return with_timeout(absl::Milliseconds(5), Future<int>()); }),
               TimeoutError);
}

TEST(SleepSteadyClockTest, SleepLastsAtLeastItsDuration) {
  IOLoop loop;
  MonotonicTime before = loop.time();
  loop.run_sync([] { return sleep(absl::Milliseconds(20)); });
  EXPECT_GE(loop.time() - before, absl::Milliseconds(20));
}

TEST(ToDurationTest, ConvertsExactlyAndSaturates) {
  using namespace std::chrono_literals;
  EXPECT_EQ(to_duration(1500ms), absl::Milliseconds(1500));
  EXPECT_EQ(to_duration(-7ns), absl::Nanoseconds(-7));
  EXPECT_EQ(to_duration(-1500001us), absl::Microseconds(-1500001));
  EXPECT_EQ(to_duration(2h), absl::Hours(2));
  EXPECT_EQ(to_duration(std::chrono::duration<int>(5)), absl::Seconds(5));
  EXPECT_EQ(to_duration(std::chrono::duration<double>(0.25)), absl::Milliseconds(250));
  EXPECT_EQ(to_duration(std::chrono::duration<int64_t, std::pico>(2500)), absl::Nanoseconds(2));
  EXPECT_EQ(to_duration(std::chrono::nanoseconds::max()),
            absl::Nanoseconds(std::chrono::nanoseconds::max().count()));
  EXPECT_EQ(to_duration(std::chrono::seconds::max()),
            absl::Seconds(std::chrono::seconds::max().count()));
  EXPECT_EQ(to_duration(std::chrono::hours::max()), absl::InfiniteDuration());
  EXPECT_EQ(to_duration(std::chrono::hours::min()), -absl::InfiniteDuration());
  EXPECT_EQ(to_duration(std::chrono::duration<double>(1e300)), absl::InfiniteDuration());
}

TEST_F(WithTimeoutTest, SleepAndWithTimeoutTakeChronoDurations) {
  using namespace std::chrono_literals;
  Future<void> s = sleep(5s);
  Future<int> pending;
  Future<int> timed = with_timeout(1500ms, pending);
  Future<int> cancelled_on_timeout;
  Future<int> timed2 = with_timeout(1s, cancelled_on_timeout, {.cancel_on_timeout = true});
  ConcurrentFuture<int> remote;
  Future<int> timed3 = with_timeout(std::chrono::milliseconds(2000), remote);
  turn();
  advance(absl::Seconds(1));
  ASSERT_TRUE(timed2.done());
  EXPECT_TRUE(cancelled_on_timeout.cancelled());
  EXPECT_FALSE(timed.done());
  advance(absl::Milliseconds(500));
  ASSERT_TRUE(timed.done());
  EXPECT_EQ(thrown_what<TimeoutError>([&] { timed.result(); }),
            "with_timeout: timed out after 1.5s");
  advance(absl::Milliseconds(500));
  ASSERT_TRUE(timed3.done());
  EXPECT_THROW(timed3.result(), TimeoutError);
  EXPECT_FALSE(s.done());
  advance(absl::Seconds(3));
  EXPECT_TRUE(s.done());
  remote.set_result(1);  // nobody waits any more
}

TEST_F(WithTimeoutTest, CallLaterTakesAChronoDelay) {
  using namespace std::chrono_literals;
  int fired = 0;
  loop.call_later(1500ms, [&] { ++fired; });
  loop.call_later(std::chrono::duration<double>(0.5), [&] { fired += 10; });
  turn();
  advance(absl::Milliseconds(500));
  EXPECT_EQ(fired, 10);
  advance(absl::Seconds(1));
  EXPECT_EQ(fired, 11);
}

}  // namespace
}  // namespace eddy
