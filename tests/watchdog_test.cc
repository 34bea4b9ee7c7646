// set_blocking_log_threshold: the watchdog reports slow callbacks while
// they still run, and again with their total time. The slow callbacks here
// block until the report arrives, so nothing depends on timing.
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"

namespace eddy {
namespace {

using testing::WaitableLog;

TEST(WatchdogTest, ReportsASlowCallbackWhileItRunsAndAgainWhenItFinishes) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool reported_while_running = false;
  loop.add_callback([&] { reported_while_running = log.wait_for("still running"); });
  loop.run_sync([] {});
  EXPECT_TRUE(reported_while_running) << log.joined();
  EXPECT_EQ(log.count("callback posted at"), 2u) << log.joined();
  EXPECT_GE(log.count("watchdog_test.cc"), 2u) << log.joined();
  EXPECT_EQ(log.count("in total"), 1u) << log.joined();
  loop.set_blocking_log_threshold(absl::ZeroDuration());
}

TEST(WatchdogTest, NamesASlowTimerAsATimer) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool seen = false;
  loop.call_later(absl::ZeroDuration(), [&] { seen = log.wait_for("timer scheduled at"); });
  loop.run_sync([] {});
  EXPECT_TRUE(seen) << log.joined();
}

// A coroutine that blocks after its co_await is named by where it is, not
// reported as an anonymous future callback.
Future<int> slow_after_await(Future<int> f, WaitableLog& log, bool& seen) {
  const int v = co_await f;
  seen = log.wait_for("still running");
  co_return v;
}

TEST(WatchdogTest, NamesACoroutineThatBlocksAfterAnAwaitByItsLocation) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool seen = false;
  const int v = loop.run_sync([&] {
    Future<int> f;
    loop.add_callback([f]() mutable { f.set_result(7); });
    return slow_after_await(f, log, seen);
  });
  EXPECT_EQ(v, 7);
  EXPECT_TRUE(seen) << log.joined();
  EXPECT_EQ(log.count("Blocking: coroutine at"), 2u) << log.joined();
  EXPECT_GE(log.count("slow_after_await"), 2u) << log.joined();
  loop.set_blocking_log_threshold(absl::ZeroDuration());
}

// The same for the resumes that do not come through the loop's queue as a
// resume of their own: a ConcurrentFuture's outcome delivered from another
// thread, and a start deferred by deep nesting.
Future<int> slow_after_concurrent_await(ConcurrentFuture<int> f, WaitableLog& log, bool& seen) {
  const int v = co_await f;
  seen = log.wait_for("still running");
  co_return v;
}

TEST(WatchdogTest, NamesACoroutineResumedByAConcurrentFutureByItsLocation) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool seen = false;
  ConcurrentFuture<int> work;
  std::thread completer;
  const int v = loop.run_sync([&] {
    Future<int> waiting = slow_after_concurrent_await(work, log, seen);
    // Completed from another thread once the coroutine is suspended on it.
    completer = std::thread([work]() mutable { work.set_result(7); });
    return waiting;
  });
  completer.join();
  EXPECT_EQ(v, 7);
  EXPECT_TRUE(seen) << log.joined();
  EXPECT_EQ(log.count("Blocking: coroutine at"), 2u) << log.joined();
  EXPECT_GE(log.count("slow_after_concurrent_await"), 2u) << log.joined();
  loop.set_blocking_log_threshold(absl::ZeroDuration());
}

Future<int> nest_then_block(int depth, WaitableLog& log, bool& seen) {
  if (depth == 0) {
    seen = log.wait_for("still running");
    co_return 0;
  }
  co_return co_await nest_then_block(depth - 1, log, seen) + 1;
}

TEST(WatchdogTest, NamesACoroutineWhoseStartWasDeferredByItsLocation) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool seen = false;
  // Deeper than the eager starts allowed on one stack (internal::kMaxEagerDepth):
  // the innermost starts on a later turn.
  const int v = loop.run_sync([&] { return nest_then_block(100, log, seen); });
  EXPECT_EQ(v, 100);
  EXPECT_TRUE(seen) << log.joined();
  EXPECT_EQ(log.count("Blocking: coroutine at"), 2u) << log.joined();
  EXPECT_GE(log.count("nest_then_block"), 2u) << log.joined();
  loop.set_blocking_log_threshold(absl::ZeroDuration());
}

// Once a coroutine resumed from inside a callback suspends or ends, what
// blocks after it in the same callback is that callback again, not the
// coroutine: here a future's second awaiter (resumed among the future's
// callbacks) ends at once, and the next callback of the future blocks.
Future<int> second_awaiter(Future<int> f) { co_return co_await f; }

TEST(WatchdogTest, NamesTheCallbackAgainOnceTheCoroutineItResumedReturns) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(20));
  bool seen = false;
  const int v = loop.run_sync([&]() -> Future<int> {
    Future<int> f;
    Future<int> first = second_awaiter(f);   // the future's waiter
    Future<int> second = second_awaiter(f);  // among its callbacks
    f.add_done_callback([&](Future<int>&) { seen = log.wait_for("still running"); });
    loop.add_callback([f]() mutable { f.set_result(5); });
    return second;
  });
  EXPECT_EQ(v, 5);
  EXPECT_TRUE(seen) << log.joined();
  EXPECT_EQ(log.count("Blocking: future callback has been running"), 1u) << log.joined();
  EXPECT_EQ(log.count("coroutine at"), 0u) << log.joined();
  loop.set_blocking_log_threshold(absl::ZeroDuration());
}

// A coroutine resumed from a delivery may switch the watchdog off (and on
// and off again) itself: the bracket it runs in still ends cleanly.
Future<int> switches_watchdog(ConcurrentFuture<int> f, IOLoop& loop) {
  const int v = co_await f;
  loop.set_blocking_log_threshold(absl::ZeroDuration());
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  loop.set_blocking_log_threshold(absl::ZeroDuration());
  co_return v;
}

TEST(WatchdogTest, ACoroutineResumedFromADeliveryMaySwitchTheWatchdogOff) {
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  ConcurrentFuture<int> work;
  std::thread completer;
  const int v = loop.run_sync([&] {
    Future<int> waiting = switches_watchdog(work, loop);
    completer = std::thread([work]() mutable { work.set_result(9); });
    return waiting;
  });
  completer.join();
  EXPECT_EQ(v, 9);
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  int ran = 0;
  loop.run_sync([&] { ++ran; });
  EXPECT_EQ(ran, 1);
}

TEST(WatchdogTest, FastCallbacksAreNotReported) {
  WaitableLog log;
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Seconds(30));
  int ran = 0;
  for (int i = 0; i < 100; ++i) loop.add_callback([&] { ++ran; });
  loop.run_sync([] {});
  EXPECT_EQ(ran, 100);
  EXPECT_EQ(log.lines().size(), 0u) << log.joined();
}

TEST(WatchdogTest, MaySwitchItselfOffFromInsideACallback) {
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  bool ran = false;
  loop.add_callback([&] {
    loop.set_blocking_log_threshold(absl::ZeroDuration());
    ran = true;
  });
  loop.add_callback([&] { loop.set_blocking_log_threshold(absl::Milliseconds(50)); });
  loop.run_sync([] {});
  EXPECT_TRUE(ran);
}

TEST(WatchdogTest, MaySwitchItselfOffTwiceOrOffOnOffFromInsideOneCallback) {
  // The running callback's watchdog must survive until its bracket ends,
  // however often it is switched inside (ASan: heap-use-after-free before).
  IOLoop loop;
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  int ran = 0;
  loop.add_callback([&] {
    loop.set_blocking_log_threshold(absl::ZeroDuration());
    loop.set_blocking_log_threshold(absl::ZeroDuration());
    ++ran;
  });
  loop.add_callback([&] { loop.set_blocking_log_threshold(absl::Milliseconds(50)); });
  loop.add_callback([&] {
    loop.set_blocking_log_threshold(absl::ZeroDuration());
    loop.set_blocking_log_threshold(absl::Milliseconds(50));
    loop.set_blocking_log_threshold(absl::ZeroDuration());
    ++ran;
  });
  loop.run_sync([] {});
  loop.set_blocking_log_threshold(absl::Milliseconds(50));
  loop.run_sync([&] { ++ran; });
  EXPECT_EQ(ran, 3);
}

}  // namespace
}  // namespace eddy
