// IOLoop::run_sync: results, exceptions, timeouts, the kinds of fn.
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

TEST(RunSyncTest, ReturnsTheFuturesResult) {
  IOLoop loop;
  int v = loop.run_sync([&loop]() -> Future<int> {
    Future<int> f;
    loop.add_callback([f]() mutable { f.set_result(3); });
    return f;
  });
  EXPECT_EQ(v, 3);
}

TEST(RunSyncTest, RethrowsTheFuturesException) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop]() -> Future<int> {
    Future<int> f;
    loop.add_callback(
        [f]() mutable { f.set_exception(std::make_exception_ptr(std::runtime_error("no"))); });
    return f;
  }),
               std::runtime_error);
}

TEST(RunSyncTest, AnExceptionThrownByFnPropagates) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([]() -> Future<int> { throw std::logic_error("early"); }),
               std::logic_error);
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(loop.run_sync([] { return 1; }), 1);  // still usable
}

TEST(RunSyncTest, APlainValueIsReturnedAsIs) {
  IOLoop loop;
  EXPECT_EQ(loop.run_sync([] { return std::string("plain"); }), "plain");
  bool ran = false;
  loop.run_sync([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(RunSyncTest, APlainFnStillLetsTheCallbacksItQueuedRunOnce) {
  IOLoop loop;
  bool ran = false;
  loop.run_sync([&] { loop.add_callback([&] { ran = true; }); });
  EXPECT_TRUE(ran);
}

TEST(RunSyncTest, ReturnsAConcurrentFuturesResult) {
  IOLoop loop;
  std::thread worker;
  int v = loop.run_sync([&] {
    ConcurrentFuture<int> cf;
    worker = std::thread([cf]() mutable { cf.set_result(9); });
    return cf;
  });
  worker.join();
  EXPECT_EQ(v, 9);
}

TEST(RunSyncTest, MoveOnlyResultsAreMovedOut) {
  IOLoop loop;
  std::unique_ptr<int> p = loop.run_sync([] { return make_ready_future(std::make_unique<int>(4)); });
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 4);
}

TEST(RunSyncTest, TimeoutThrowsTimeoutErrorAndCancelsTheFuture) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  Future<int> pending;
  bool cancelled_seen = false;
  EXPECT_THROW(loop.run_sync(
                   [&] {
                     pending = Future<int>();
                     pending.add_done_callback(
                         [&](Future<int>& f) { cancelled_seen = f.cancelled(); });
                     return pending;
                   },
                   absl::Seconds(5)),
               TimeoutError);
  EXPECT_TRUE(pending.cancelled());
  EXPECT_TRUE(cancelled_seen);  // the cancellation got its iteration
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST(RunSyncTest, TimeoutOnTheSteadyClock) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([] { return Future<void>(); }, absl::Milliseconds(10)),
               TimeoutError);
}

TEST(RunSyncTest, ATimeoutThatDoesNotExpireIsRemoved) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  int v = loop.run_sync(
      [] {
        return [] {
          Future<int> f;
          IOLoop::current().call_later(absl::Seconds(1), [f]() mutable { f.set_result(1); });
          return f;
        }();
      },
      absl::Seconds(60));
  EXPECT_EQ(v, 1);
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST(RunSyncTest, StopBeforeTheFutureIsDoneThrows) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop] {
    loop.add_callback([&loop] { loop.stop(); });
    return Future<void>();
  }),
               InvalidStateError);
}

TEST(RunSyncTest, NestedRunSyncThrowsInvalidStateError) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop] { return loop.run_sync([] { return 1; }); }),
               InvalidStateError);
}

// fn returning a moved-from future is an InvalidStateError naming run_sync:
// for a Future it used to read "Future:: : the handle is empty (moved
// from)"; a ConcurrentFuture crashed the process.
TEST(RunSyncTest, AnEmptyFutureFromFnIsAnErrorNamingRunSync) {
  IOLoop loop;
  EXPECT_EQ(thrown_what<InvalidStateError>([&] {
              loop.run_sync([] {
                Future<int> f;
                Future<int> g = std::move(f);
                return f;  // NOLINT(bugprone-use-after-move)
              });
            }),
            "IOLoop::run_sync: fn returned an empty Future (moved from)");
  EXPECT_EQ(thrown_what<InvalidStateError>([&] {
              loop.run_sync([] {
                ConcurrentFuture<int> f;
                ConcurrentFuture<int> g = std::move(f);
                return f;  // NOLINT(bugprone-use-after-move)
              });
            }),
            "IOLoop::run_sync: fn returned an empty ConcurrentFuture (moved from)");
  EXPECT_EQ(loop.run_sync([] { return make_ready_future(4); }), 4) << "the loop is still usable";
}

TEST(RunSyncTest, FuturesCreatedInFnBelongToTheLoop) {
  IOLoop::clear_current();
  IOLoop loop;
  Scheduler* seen = nullptr;
  loop.run_sync([&] { seen = Scheduler::current(); });
  EXPECT_EQ(seen, &loop);
  EXPECT_EQ(Scheduler::current(), nullptr);
}

TEST(RunSyncTest, SleepFinishesOnAnAutoAdvancingClockWithoutWaiting) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  MonotonicTime start = loop.time();
  loop.run_sync([] { return sleep(absl::Hours(24)); });
  EXPECT_EQ(loop.time() - start, absl::Hours(24));
}

}  // namespace
}  // namespace eddy
