// eddy::testing::AsyncTest: a fresh loop per test, run() with a timeout,
// failing on logged errors, expect_log, and the manual clock.
#include "eddy/testing/async_test.h"

#include <stdexcept>
#include <string>
#include <type_traits>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/log.h"
#include "eddy/loop/sleep.h"
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

}  // namespace
}  // namespace eddy
