// InlineExecutor (Tornado's DummyExecutor): the call runs inside submit, on
// the submitting thread, and the returned future is already done.
#include <atomic>
#include <latch>
#include <stdexcept>
#include <thread>

#include "eddy/executor/executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "gtest/gtest.h"
#include "tests/manual_scheduler.h"

namespace eddy {
namespace {

using testing::ManualScheduler;

TEST(InlineExecutorTest, SubmitRunsTheCallInsideSubmitOnTheCallingThread) {
  InlineExecutor executor;
  bool ran = false;
  ConcurrentFuture<std::thread::id> f = executor.submit([&ran] {
    ran = true;
    return std::this_thread::get_id();
  });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(f.done()) << "already done when submit returns";
  EXPECT_EQ(f.result(), std::this_thread::get_id());
}

TEST(InlineExecutorTest, ExceptionIsStoredInTheFuture) {
  InlineExecutor executor;
  auto f = executor.submit([]() -> int { throw std::out_of_range("nope"); });
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::out_of_range);
}

TEST(InlineExecutorTest, SubmitAfterShutdownThrowsExecutorShutdownError) {
  InlineExecutor executor;
  executor.submit([] {});
  ShutdownReport r = executor.shutdown();
  EXPECT_EQ(r.submitted, 1u);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_THROW(executor.submit([] {}), ExecutorShutdownError);
  EXPECT_EQ(executor.shutdown().submitted, 1u) << "shutdown is idempotent";
}

TEST(InlineExecutorTest, CancelledTokenSkipsTheCall) {
  InlineExecutor executor;
  CancellationSource source;
  source.cancel();
  bool ran = false;
  auto f = executor.submit(source.token(), [&ran] { ran = true; });
  EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(ran);
  EXPECT_EQ(executor.shutdown().cancelled, 1u);
}

TEST(InlineExecutorTest, SubmitFromLoopCompletesOnTheNextTurn) {
  ManualScheduler loop;
  InlineExecutor executor;
  Future<ConcurrentFuture<int>> admitted = executor.submit_from_loop([] { return 6; });
  EXPECT_FALSE(admitted.done()) << "loop futures never complete inline";
  loop.run_pending();
  ASSERT_TRUE(admitted.done());
  EXPECT_EQ(admitted.result().result(), 6);
}

TEST(InlineExecutorTest, AWaitingShutdownWaitsForACallRunningOnAnotherThread) {
  // Safe from any thread: a call submitted on one thread is running when
  // another shuts down with wait=true, which returns once it has finished.
  InlineExecutor executor;
  std::latch started(1);
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  std::thread submitter([&] {
    executor.submit([&] {
      started.count_down();
      while (!release.load()) std::this_thread::yield();
      finished.store(true);
    });
  });
  started.wait();
  std::thread releaser([&] {
    // Lets the call finish only once shutdown is under way; if shutdown
    // did not wait, it would return first and the checks below would see
    // the call still running.
    for (;;) {
      try {
        executor.submit([] {});  // runs at once while shutdown has not begun
      } catch (const ExecutorShutdownError&) {
        break;
      }
      std::this_thread::yield();
    }
    release.store(true);
  });
  ShutdownReport r = executor.shutdown(/*wait=*/true);
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(r.running, 0u);
  EXPECT_GE(r.submitted, 1u);
  EXPECT_EQ(r.completed, r.submitted);
  submitter.join();
  releaser.join();
}

TEST(InlineExecutorTest, AWaitingShutdownFromInsideItsOwnCallDoesNotWaitForItself) {
  InlineExecutor executor;
  ShutdownReport inner;
  executor.submit([&] { inner = executor.shutdown(/*wait=*/true); });
  EXPECT_EQ(inner.running, 1u) << "the call that asked is still running";
  ShutdownReport after = executor.shutdown();
  EXPECT_EQ(after.running, 0u);
  EXPECT_EQ(after.completed, 1u);
}

}  // namespace
}  // namespace eddy
