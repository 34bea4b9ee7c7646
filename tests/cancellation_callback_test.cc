// CancellationCallback: a function run when a token's source is cancelled
// (std::stop_callback's contract for eddy's tokens), so that cancelling an
// offload can wake a worker blocked in a call that polls nothing.
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

using testing::LogCapture;

TEST(CancellationCallbackTest, RunsOnceOnCancelInRegistrationOrderOnTheCancellingThread) {
  CancellationSource source;
  std::vector<int> order;
  std::thread::id ran_on;
  CancellationCallback a(source.token(), [&] { order.push_back(1); });
  CancellationCallback b(source.token(), [&] {
    order.push_back(2);
    ran_on = std::this_thread::get_id();
  });
  EXPECT_TRUE(order.empty());
  std::thread([&] { EXPECT_TRUE(source.cancel()); }).join();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_FALSE(source.cancel());
  EXPECT_EQ(order.size(), 2u) << "a second cancel() runs nothing";
}

TEST(CancellationCallbackTest, RegisteredAfterCancelRunsAtOnceInTheConstructor) {
  CancellationSource source;
  source.cancel();
  int ran = 0;
  CancellationCallback cb(source.token(), [&] { ++ran; });
  EXPECT_EQ(ran, 1);
}

TEST(CancellationCallbackTest, DestroyedBeforeCancelNeverRuns) {
  CancellationSource source;
  int ran = 0;
  {
    CancellationCallback gone(source.token(), [&] { ran += 10; });
  }
  CancellationCallback kept(source.token(), [&] { ++ran; });
  source.cancel();
  EXPECT_EQ(ran, 1);
}

TEST(CancellationCallbackTest, ATokenThatCannotBeCancelledRegistersNothing) {
  int ran = 0;
  CancellationCallback cb(CancellationToken(), [&] { ++ran; });
  EXPECT_EQ(ran, 0);
}

TEST(CancellationCallbackTest, ADeadlineAloneRunsNothing) {
  CancellationSource source(Deadline::after(absl::ZeroDuration()));
  int ran = 0;
  CancellationCallback cb(source.token(), [&] { ++ran; });
  EXPECT_TRUE(source.token().expired());
  EXPECT_EQ(ran, 0);
  source.cancel();
  EXPECT_EQ(ran, 1);
}

TEST(CancellationCallbackTest, AnEmptyFnIsAnInvalidArgument) {
  CancellationSource source;
  EXPECT_THROW(CancellationCallback(source.token(), absl::AnyInvocable<void()>()),
               std::invalid_argument);
}

TEST(CancellationCallbackTest, MoveOnlyCapturesAreKeptUntilItRuns) {
  CancellationSource source;
  auto owned = std::make_unique<int>(7);
  int seen = 0;
  CancellationCallback cb(source.token(), [p = std::move(owned), &seen] { seen = *p; });
  source.cancel();
  EXPECT_EQ(seen, 7);
}

TEST(CancellationCallbackTest, DestroyingItWhileItRunsOnAnotherThreadWaitsForIt) {
  for (int round = 0; round < 50; ++round) {
    CancellationSource source;
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    auto cb = std::make_unique<CancellationCallback>(source.token(), [&] {
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      finished = true;
    });
    std::thread canceller([&] { source.cancel(); });
    while (!started.load()) std::this_thread::yield();
    cb.reset();  // must wait for the running fn
    EXPECT_TRUE(finished.load()) << "round " << round;
    canceller.join();
  }
}

TEST(CancellationCallbackTest, ItMayDestroyItselfFromItsOwnFn) {
  CancellationSource source;
  std::optional<CancellationCallback> cb;
  int after = 0;
  cb.emplace(source.token(), [&] { cb.reset(); });
  CancellationCallback next(source.token(), [&] { ++after; });
  source.cancel();
  EXPECT_FALSE(cb.has_value());
  EXPECT_EQ(after, 1) << "the callbacks after it still run";
}

TEST(CancellationCallbackTest, AThrowingFnIsLoggedAndTheOthersStillRun) {
  LogCapture log;
  CancellationSource source;
  int ran = 0;
  CancellationCallback bad(source.token(), [] { throw std::runtime_error("close failed"); });
  CancellationCallback good(source.token(), [&] { ++ran; });
  EXPECT_TRUE(source.cancel());
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(log.count("Exception in a CancellationCallback: std::runtime_error: close failed"),
            1u);
}

TEST(CancellationCallbackTest, RegisteringAndCancellingRaceWithoutLosingOrDoublingARun) {
  for (int round = 0; round < 200; ++round) {
    CancellationSource source;
    std::atomic<int> ran{0};
    std::thread canceller([&] { source.cancel(); });
    {
      CancellationCallback cb(source.token(), [&] { ++ran; });
      canceller.join();  // cancelled by now: the fn ran in cancel() or here
      EXPECT_EQ(ran.load(), 1) << "round " << round;
    }
    EXPECT_EQ(ran.load(), 1) << "round " << round;
  }
}

// What it is for: a worker blocked in a call that polls nothing (here a
// wait on a flag only the callback sets) is woken by cancelling its
// future.
TEST(CancellationCallbackTest, CancellingAnOffloadWakesACallBlockedOutsideEddy) {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> entered{false};
  CancellationSource source;
  ConcurrentFuture<std::string> f = pool.submit(source.token(), [&](CancellationToken token) {
    std::atomic<bool> interrupted{false};
    CancellationCallback wake(token, [&] { interrupted = true; });
    entered = true;
    while (!interrupted.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    token.throw_if_cancelled();
    return std::string("not reached");
  });
  while (!entered.load()) std::this_thread::yield();
  source.cancel();
  EXPECT_THROW(f.result(absl::Seconds(30)), CancelledError);
}

}  // namespace
}  // namespace eddy
