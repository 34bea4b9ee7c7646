// eddy::testing::AsyncTest: a fresh loop per test, run() with a timeout,
// failing on logged errors, expect_log, and the manual clock.
#include "eddy/testing/async_test.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/callback_adapters.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/log.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/with_timeout.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

class AsyncTestTest : public testing::AsyncTest {};

TEST_F(AsyncTestTest, LoopIsCurrentOnTheTestThread) {
  EXPECT_EQ(&IOLoop::current(), &loop());
}

TEST_F(AsyncTestTest, RunReturnsTheCoroutinesValue) {
  int v = run([&]() -> Future<int> {
    co_await sleep(absl::Milliseconds(1));
    co_return 7;
  });
  EXPECT_EQ(v, 7);
}

TEST_F(AsyncTestTest, RunRethrowsTheCoroutinesException) {
  EXPECT_THROW(run([]() -> Future<void> {
                 co_await sleep(absl::ZeroDuration());
                 throw std::out_of_range("inside");
               }),
               std::out_of_range);
}

// run() forwards to run_sync: a future returned by reference is waited
// for too (it used to come back at once, still pending, and the test
// passed without waiting).
TEST_F(AsyncTestTest, RunWaitsForAFutureReturnedByReference) {
  Future<void> ready = sleep(absl::Milliseconds(10));
  run([&]() -> const Future<void>& { return ready; });
  EXPECT_TRUE(ready.done());
  Future<int> value;
  loop().call_later(absl::Milliseconds(5), [value]() mutable { value.set_result(4); });
  auto&& got = run([&]() -> Future<int>& { return value; });
  EXPECT_TRUE(value.done());
  EXPECT_TRUE((std::is_same_v<std::remove_cvref_t<decltype(got)>, int>));
}

TEST_F(AsyncTestTest, RunThatTimesOutFailsTheTest) {
  Future<void> never;
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          run([&] { return never; }, absl::Milliseconds(20));
        } catch (const TimeoutError&) {
        }
      },
      "did not finish within");
}

TEST_F(AsyncTestTest, ErrorLoggedByALoopCallbackFailsTheTest) {
  run([&]() -> Future<void> {
    loop().add_callback([] { throw std::runtime_error("callback exploded"); });
    co_await sleep(absl::Milliseconds(1));
  });
  EXPECT_NONFATAL_FAILURE(check_logs(), "callback exploded");
}

TEST_F(AsyncTestTest, ExpectedLogDoesNotFailTheTest) {
  expect_log("callback exploded");
  run([&]() -> Future<void> {
    loop().add_callback([] { throw std::runtime_error("callback exploded"); });
    co_await sleep(absl::Milliseconds(1));
  });
  EXPECT_EQ(logged_errors().size(), 1u);
}

TEST_F(AsyncTestTest, MissingExpectedLogFailsTheTest) {
  expect_log("never happens");
  EXPECT_NONFATAL_FAILURE(check_logs(), "never happens");
}

TEST_F(AsyncTestTest, ExpectLogMatchesAWarningToo) {
  // The watchdog reports a blocking callback as a warning: a test that
  // expects that report must be able to say so.
  expect_log("slow thing happened");
  log(LogLevel::kWarning, "slow thing happened");
  check_logs();  // would fail the test: "saw it 0 time(s)"
}

TEST_F(AsyncTestTest, AWarningNobodyExpectedDoesNotFailTheTest) {
  log(LogLevel::kWarning, "just a warning");
  check_logs();
  EXPECT_TRUE(logged_errors().empty());
}

TEST_F(AsyncTestTest, RunWithAnInfiniteTimeoutWaitsForTheResult) {
  // An infinite limit is no limit (it overflowed the real-time wait, which
  // then expired at once).
  int v = run(
      [&]() -> Future<int> {
        co_await sleep(absl::Milliseconds(20));
        co_return 5;
      },
      absl::InfiniteDuration());
  EXPECT_EQ(v, 5);
}

class ManualClockAsyncTest : public testing::AsyncTest {
 protected:
  ManualClockAsyncTest() : AsyncTest({.manual_clock = true, .auto_advance = true}) {}
};

TEST_F(ManualClockAsyncTest, AnHourOfSleepPassesWithoutWaiting) {
  MonotonicTime start = loop().time();
  run([]() -> Future<void> { co_await sleep(absl::Hours(1)); }, absl::Seconds(5));
  EXPECT_GE(loop().time() - start, absl::Hours(1));
}

TEST_F(ManualClockAsyncTest, ClockIsAvailable) {
  MonotonicTime start = loop().time();
  clock().advance(absl::Minutes(2));
  EXPECT_EQ(loop().time() - start, absl::Minutes(2));
}

// Real time a pool call takes in the tests below: long enough that the
// loop goes idle (and would jump the clock) many times before it returns.
constexpr std::chrono::milliseconds kSlowCall{50};

int slow_call(int v) {
  std::this_thread::sleep_for(kSlowCall);
  return v;
}

// The clock does not jump while an offload runs: with_timeout(2s) around a
// call of 50 ms of real time used to time out in about a millisecond (the
// idle loop jumped to the 2 s timer), and succeeds now, with the clock
// where it was.
TEST_F(ManualClockAsyncTest, WithTimeoutAroundASlowOffloadSucceeds) {
  ThreadPoolExecutor pool(1);
  const MonotonicTime start = loop().time();
  int v = run([&] {
    return with_timeout(absl::Seconds(2), loop().run_in_executor(&pool, slow_call, 7));
  });
  EXPECT_EQ(v, 7);
  EXPECT_EQ(loop().time(), start);
}

// The same for a ConcurrentFuture of a pool, bridged onto the loop: by
// with_timeout itself (chain_future), by co_await, and by add_future.
TEST_F(ManualClockAsyncTest, WithTimeoutAroundAPoolsConcurrentFutureSucceeds) {
  ThreadPoolExecutor pool(1);
  int v = run([&] { return with_timeout(absl::Seconds(2), pool.submit(slow_call, 8)); });
  EXPECT_EQ(v, 8);
}

TEST_F(ManualClockAsyncTest, AnAwaitedConcurrentFutureArrivesBeforeAPendingTimer) {
  ThreadPoolExecutor pool(1);
  std::vector<std::string> events;
  loop().call_later(absl::Seconds(1), [&] { events.push_back("timer"); });
  run([&]() -> Future<void> {
    events.push_back("call " + std::to_string(co_await pool.submit(slow_call, 9)));
  });
  EXPECT_EQ(events, (std::vector<std::string>{"call 9"}));
}

TEST_F(ManualClockAsyncTest, AddFutureOfAConcurrentFutureArrivesBeforeAPendingTimer) {
  ThreadPoolExecutor pool(1);
  std::vector<std::string> events;
  Future<void> done;
  loop().call_later(absl::Seconds(1), [&, done]() mutable {
    events.push_back("timer");
    done.set_result();
  });
  loop().add_future(pool.submit(slow_call, 10), [&] { events.push_back("call"); });
  run([&] { return done; });
  EXPECT_EQ(events, (std::vector<std::string>{"call", "timer"}));
}

// Timers still fire in deadline order: one due already fires while the
// call runs (due timers need no jump), and a later one only once the call
// has reported and the loop is idle with nothing pending, at its deadline.
// Meanwhile the loop sleeps in epoll for the call's post, as on a real
// clock, instead of spinning.
TEST_F(ManualClockAsyncTest, TimersFireInOrderAndTheLaterOneOnlyOnceTheOffloadReported) {
  ThreadPoolExecutor pool(1);
  const MonotonicTime start = loop().time();
  std::vector<std::string> events;
  std::vector<MonotonicTime> at;
  loop().call_later(absl::Seconds(1), [&] {
    events.push_back("1s timer");
    at.push_back(loop().time());
  });
  const uint64_t iterations_before = loop().stats().iterations;
  run([&]() -> Future<void> {
    Future<int> call = loop().run_in_executor(&pool, slow_call, 11);
    loop().call_later(absl::ZeroDuration(), [&] {
      events.push_back("due timer");
      at.push_back(loop().time());
    });
    int v = co_await call;
    events.push_back("call " + std::to_string(v));
    at.push_back(loop().time());
    co_await sleep(absl::Seconds(2));
    events.push_back("2s sleep");
    at.push_back(loop().time());
  });
  EXPECT_EQ(events,
            (std::vector<std::string>{"due timer", "call 11", "1s timer", "2s sleep"}));
  EXPECT_EQ(at, (std::vector<MonotonicTime>{start, start, start + absl::Seconds(1),
                                            start + absl::Seconds(2)}));
  // A loop polling while it waited would have turned thousands of times.
  EXPECT_LT(loop().stats().iterations - iterations_before, 50u);
}

// What the loop does not wait for: a callback adapter's `done` (legacy
// code calls it from this loop's own timers as often as from a thread) and
// a run_in_loop future of this very loop. The clock jumps as before.
TEST_F(ManualClockAsyncTest, ACallbackCalledFromThisLoopsTimerStillLetsTheClockJump) {
  int v = run(
      [&] {
        return from_callback<int>([&](ResultCallback<int> done) {
          loop().call_later(absl::Hours(1), [done] { done(12); });
        });
      },
      absl::Seconds(5));
  EXPECT_EQ(v, 12);
}

TEST_F(ManualClockAsyncTest, RunInLoopOfThisLoopStillLetsTheClockJump) {
  int v = run(
      [&]() -> Future<int> {
        co_return co_await loop().run_in_loop([]() -> Future<int> {
          co_await sleep(absl::Hours(1));
          co_return 13;
        });
      },
      absl::Seconds(5));
  EXPECT_EQ(v, 13);
}

// The limit: a ConcurrentFuture that nobody completes holds the clock, as
// it would hold a real-clock loop until its timeout. A test that means to
// time such work out moves the clock itself.
TEST_F(ManualClockAsyncTest, TimingOutWorkThatNeverReportsTakesAnAdvance) {
  ConcurrentFuture<int> never;
  std::atomic<bool> finished{false};
  std::thread mover([&] {
    while (!finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      clock().advance(absl::Seconds(1));
    }
  });
  EXPECT_THROW(run([&] { return with_timeout(absl::Seconds(2), never); }, absl::Seconds(5)),
               TimeoutError);
  finished.store(true);
  mover.join();
}

}  // namespace
}  // namespace eddy
