// PeriodicCallback, on a manual clock: counts, overruns, jitter, stopping.
#include "eddy/loop/periodic_callback.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"

namespace eddy {
namespace {

using testing::WaitableLog;

// A current loop on an auto-advancing manual clock: run_for(d) runs the
// loop through d of loop time at once.
class PeriodicCallbackTest : public ::testing::Test {
 protected:
  PeriodicCallbackTest()
      : clock(std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true})),
        loop(IOLoop::Options{clock}) {
    loop.make_current();
    start = loop.time();
  }
  ~PeriodicCallbackTest() override { IOLoop::clear_current(); }

  void run_for(absl::Duration d) {
    loop.run_sync([d] { return sleep(d); });
  }
  absl::Duration elapsed() const { return loop.time() - start; }

  std::shared_ptr<ManualClock> clock;
  IOLoop loop;
  MonotonicTime start;
};

TEST_F(PeriodicCallbackTest, CallsOncePerIntervalOverAKnownSpan) {
  std::vector<absl::Duration> at;
  PeriodicCallback pc([&] { at.push_back(elapsed()); }, absl::Seconds(1));
  EXPECT_FALSE(pc.is_running());
  pc.start();
  EXPECT_TRUE(pc.is_running());
  run_for(absl::Milliseconds(10500));
  ASSERT_EQ(at.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(at[i], absl::Seconds(i + 1));
}

TEST_F(PeriodicCallbackTest, AnOverrunSkipsTheMissedIntervalsInsteadOfBunching) {
  std::vector<absl::Duration> at;
  PeriodicCallback pc(
      [&] {
        at.push_back(elapsed());
        if (at.size() == 1) clock->advance(absl::Milliseconds(3500));  // a slow call
      },
      absl::Seconds(1));
  pc.start();
  run_for(absl::Milliseconds(7500));
  // 1 s: runs until 4.5 s; 2, 3 and 4 s are skipped; back on the grid at 5 s.
  EXPECT_EQ(at, (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(5), absl::Seconds(6),
                                             absl::Seconds(7)}));
}

// Tornado: ioloop_test.py TestPeriodicCallbackMath test_overrun
TEST_F(PeriodicCallbackTest, OverrunsOfSeveralCyclesSkipWholeCyclesAndComeBackOnTheGrid) {
  // How long each call runs, in seconds of loop time, at a 10 s period.
  const std::vector<int> durations = {9, 9, 10, 11, 20, 20, 35, 35, 0, 0, 0};
  std::vector<int64_t> at;  // seconds since start() of each call
  PeriodicCallback* self = nullptr;
  PeriodicCallback pc(
      [&] {
        at.push_back(absl::ToInt64Seconds(elapsed()));
        clock->advance(absl::Seconds(durations[at.size() - 1]));
        if (at.size() == durations.size()) self->stop();
      },
      absl::Seconds(10));
  self = &pc;
  pc.start();
  run_for(absl::Seconds(300));
  EXPECT_EQ(at, (std::vector<int64_t>{10, 20, 30,  // on schedule
                                      50, 70,      // one cycle late (a call ending on 40 s skips it)
                                      100, 130,    // two cycles late
                                      170, 210,    // three cycles late
                                      220, 230}));  // back on schedule
}

TEST_F(PeriodicCallbackTest, AFutureReturningCallbackIsWaitedFor) {
  std::vector<absl::Duration> at;
  PeriodicCallback pc(
      [&]() -> Future<void> {
        at.push_back(elapsed());
        return sleep(absl::Milliseconds(2500));
      },
      absl::Seconds(1));
  pc.start();
  run_for(absl::Milliseconds(9500));
  // 1 s, done at 3.5 s -> next grid point 4 s, done at 6.5 s -> 7 s.
  EXPECT_EQ(at, (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(4), absl::Seconds(7)}));
}

TEST_F(PeriodicCallbackTest, StopFromInsideTheCallbackEndsIt) {
  int calls = 0;
  PeriodicCallback* self = nullptr;
  PeriodicCallback pc(
      [&] {
        if (++calls == 3) self->stop();
      },
      absl::Seconds(1));
  self = &pc;
  pc.start();
  run_for(absl::Seconds(10));
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(pc.is_running());
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST_F(PeriodicCallbackTest, StopThenStartKeepsASingleSchedule) {
  int calls = 0;
  PeriodicCallback pc([&] { ++calls; }, absl::Seconds(1));
  pc.start();
  pc.stop();
  pc.start();
  pc.start();  // already running: no-op
  run_for(absl::Milliseconds(3500));
  EXPECT_EQ(calls, 3);
}

TEST_F(PeriodicCallbackTest, DestroyingItRemovesItsTimer) {
  int calls = 0;
  {
    PeriodicCallback pc([&] { ++calls; }, absl::Seconds(1));
    pc.start();
    EXPECT_EQ(loop.stats().timers, 1u);
  }
  EXPECT_EQ(loop.stats().timers, 0u);
  run_for(absl::Seconds(3));
  EXPECT_EQ(calls, 0);
}

TEST_F(PeriodicCallbackTest, JitterKeepsEachPeriodWithinItsWindow) {
  std::vector<absl::Duration> at;
  PeriodicCallback pc([&] { at.push_back(elapsed()); }, absl::Seconds(1), 0.5);
  pc.start();
  run_for(absl::Seconds(50));
  ASSERT_GE(at.size(), 30u);
  absl::Duration previous = absl::ZeroDuration();
  for (absl::Duration t : at) {
    EXPECT_GE(t - previous, absl::Milliseconds(750));
    EXPECT_LE(t - previous, absl::Milliseconds(1250));
    previous = t;
  }
}

TEST_F(PeriodicCallbackTest, ExceptionsAreLoggedAndTheScheduleGoesOn) {
  WaitableLog log;
  int calls = 0;
  PeriodicCallback pc(
      [&] {
        ++calls;
        throw std::runtime_error("periodic boom");
      },
      absl::Seconds(1));
  pc.start();
  run_for(absl::Milliseconds(3500));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(log.count("periodic boom"), 3u) << log.joined();
}

// A CancelledError out of fn, thrown or in its future, is not logged (as
// Tornado's loop does not log one); the schedule goes on.
// Tornado: ioloop.py PeriodicCallback._run / IOLoop._run_callback
TEST_F(PeriodicCallbackTest, ACancelledErrorFromFnIsNotLoggedAndTheScheduleGoesOn) {
  WaitableLog log;
  int plain_calls = 0;
  PeriodicCallback plain(
      [&] {
        ++plain_calls;
        throw CancelledError();
      },
      absl::Seconds(1));
  int async_calls = 0;
  PeriodicCallback async(
      [&]() -> Future<void> {
        ++async_calls;
        return make_exceptional_future(std::make_exception_ptr(CancelledError()));
      },
      absl::Seconds(1));
  plain.start();
  async.start();
  run_for(absl::Milliseconds(3500));
  EXPECT_EQ(plain_calls, 3);
  EXPECT_EQ(async_calls, 3);
  EXPECT_EQ(log.count("CancelledError"), 0u) << log.joined();
}

// fn returned an empty (moved-from) Future: run() used to throw out of the
// timer ("Exception in timer: ... the handle is empty") before scheduling
// the next call, so the schedule stopped for good while is_running() stayed
// true. It is logged like an exception, and the schedule goes on.
TEST_F(PeriodicCallbackTest, AnEmptyFutureFromFnIsLoggedAndTheScheduleGoesOn) {
  WaitableLog log;
  int calls = 0;
  PeriodicCallback pc(
      [&]() -> Future<void> {
        ++calls;
        Future<void> g;
        Future<void> taken = std::move(g);
        return g;  // empty
      },
      absl::Seconds(1));
  pc.start();
  run_for(absl::Milliseconds(3500));
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(pc.is_running());
  EXPECT_EQ(log.count("Exception in PeriodicCallback"), 3u) << log.joined();
  EXPECT_EQ(log.count("fn returned an empty Future"), 3u) << log.joined();
}

TEST_F(PeriodicCallbackTest, InvalidArgumentsAreRejected) {
  EXPECT_THROW(PeriodicCallback([] {}, absl::ZeroDuration()), std::invalid_argument);
  EXPECT_THROW(PeriodicCallback([] {}, absl::Seconds(-1)), std::invalid_argument);
  EXPECT_THROW(PeriodicCallback([] {}, absl::InfiniteDuration()), std::invalid_argument);
  EXPECT_THROW(PeriodicCallback([] {}, absl::Seconds(1), -0.1), std::invalid_argument);
  EXPECT_THROW(PeriodicCallback([] {}, absl::Seconds(1), 1.5), std::invalid_argument);
}

TEST_F(PeriodicCallbackTest, AnEmptyFnIsRejected) {
  void (*null_fn)() = nullptr;
  EXPECT_THROW(PeriodicCallback(null_fn, absl::Seconds(1)), std::invalid_argument);
  EXPECT_THROW(PeriodicCallback(absl::AnyInvocable<void()>(), absl::Seconds(1)),
               std::invalid_argument);
  EXPECT_THROW(PeriodicCallback(absl::AnyInvocable<Future<void>()>(), absl::Seconds(1)),
               std::invalid_argument);
  EXPECT_THROW(PeriodicCallback(std::function<void()>(), absl::Seconds(1)),
               std::invalid_argument);
}

TEST(PeriodicCallbackLifetimeTest, OutlivingItsLoopIsHarmless) {
  auto pc = std::make_unique<PeriodicCallback>([] {}, absl::Seconds(1));
  {
    IOLoop loop;
    loop.make_current();
    pc->start();
    IOLoop::clear_current();
  }
  EXPECT_FALSE(pc->is_running());
  pc.reset();  // must not touch the dead loop
}

// Destroyed on another thread while running (its owner let go on a pool
// thread): the destructor used to throw from remove_timeout's thread check
// and call std::terminate. Now fn is not called again and the loop's
// thread removes the timer.
TEST_F(PeriodicCallbackTest, DestroyedOnAForeignThreadItLogsAndStopsOnTheLoop) {
  WaitableLog log;
  int calls = 0;
  auto pc = std::make_unique<PeriodicCallback>([&] { ++calls; }, absl::Seconds(1));
  pc->start();
  run_for(absl::Milliseconds(2500));
  EXPECT_EQ(calls, 2);
  std::thread other([&] { pc.reset(); });
  other.join();
  EXPECT_EQ(log.count("PeriodicCallback destroyed on a thread that does not own"), 1u)
      << log.joined();
  run_for(absl::Seconds(5));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(loop.stats().timers, 0u);
}

// Its loop closed, nothing may run on its thread any more and this thread
// must not touch the state (its loop reference is that loop's): the state
// is leaked on purpose, and that is logged.
TEST_F(PeriodicCallbackTest, DestroyedOnAForeignThreadAfterItsLoopClosedItTouchesNothing) {
  WaitableLog log;
  auto pc = std::make_unique<PeriodicCallback>([] {}, absl::Seconds(1));
  {
    IOLoop gone;
    gone.make_current();
    pc->start();
  }
  loop.make_current();
  std::thread other([&] { pc.reset(); });
  other.join();
  EXPECT_EQ(log.count("PeriodicCallback destroyed on a thread that does not own"), 1u)
      << log.joined();
  EXPECT_EQ(log.count("is closed: its state is leaked"), 1u) << log.joined();
}

TEST_F(PeriodicCallbackTest, StopOnAForeignThreadIsRefusedAndChangesNothing) {
  int calls = 0;
  PeriodicCallback pc([&] { ++calls; }, absl::Seconds(1));
  pc.start();
  std::thread other([&] { EXPECT_THROW(pc.stop(), InvalidStateError); });
  other.join();
  EXPECT_TRUE(pc.is_running());
  run_for(absl::Milliseconds(1500));
  EXPECT_EQ(calls, 1);
  pc.stop();
  EXPECT_FALSE(pc.is_running());
}

}  // namespace
}  // namespace eddy
