// InlineExecutor (Tornado's DummyExecutor): the call runs inside submit, on
// the submitting thread, and the returned future is already done.
#include <atomic>
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

}  // namespace
}  // namespace eddy
