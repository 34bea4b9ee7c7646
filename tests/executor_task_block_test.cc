// A submitted task and its future's state share one block: the block lives
// until the last of the task and the future handles lets go of it, on any
// thread, while the call's captures go as soon as the executor is done with
// the task (run, cancelled, failed or dropped), even if a future lives on.
// ASan builds give every block to operator new/delete, so they check these
// lifetimes exactly.
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "eddy/executor/executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/internal/recycler.h"
#include "gtest/gtest.h"
#include "tests/count_news.h"
#include "tests/live_count.h"
#include "tests/log_capture.h"


namespace eddy {
namespace {

// A capture whose lifetime the tests watch: destroyed() once the last copy
// of capture() is gone.
struct Witness {
  std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<int> capture() {
    return std::shared_ptr<int>(new int(0), [flag = flag](int* p) {
      delete p;
      flag->store(true);
    });
  }
  bool destroyed() const { return flag->load(); }
};

using testing::LogCapture;
using testing::Tracked;

// Keeps the tasks it is given, unsettled, until drop() (or its destruction)
// disposes of them: an executor that loses its queue.
class KeepingExecutor final : public Executor {
 public:
  ShutdownReport shutdown(bool, bool) override { return {}; }
  void drop() { tasks_.clear(); }
  Task* last() const { return tasks_.back().get(); }

 protected:
  void execute(TaskPtr task) override { tasks_.push_back(std::move(task)); }

 private:
  std::vector<TaskPtr> tasks_;
};

// A pool of one worker, held busy until release(): what is submitted
// meanwhile stays queued.
struct BlockedPool {
  std::latch started{1};
  std::latch gate{1};
  ThreadPoolExecutor pool{1};  // after the latches: joins before they go
  ConcurrentFuture<void> blocker = pool.submit([this] {
    started.count_down();
    gate.wait();
  });
  BlockedPool() { started.wait(); }
  ~BlockedPool() { release(); }
  void release() {
    if (!released) gate.count_down();
    released = true;
  }
  bool released = false;
};

TEST(ExecutorTaskBlockTest, TheStateIsPartOfTheTask) {
  KeepingExecutor executor;
  auto fn = [] { return 1; };
  ConcurrentFuture<int> f = executor.submit(fn);
  using Call = internal::CallTask<int, decltype(fn)>;
  const auto* task = reinterpret_cast<const char*>(static_cast<Call*>(executor.last()));
  const auto* state = reinterpret_cast<const char*>(&internal::ConcurrentAccess::state(f));
  // A state of its own would be another live object, never inside the task.
  EXPECT_GE(state, task);
  EXPECT_LE(state + sizeof(internal::ConcurrentState<int>), task + sizeof(Call));
  executor.drop();
  EXPECT_TRUE(f.cancelled());
}

TEST(ExecutorTaskBlockTest, OneAllocationPerSubmit) {
#if EDDY_RECYCLER_BYPASS
  InlineExecutor executor;
  std::vector<ConcurrentFuture<int>> futures;
  futures.reserve(3);
  for (int i = 0; i < 3; ++i) {
    const int64_t before = testing::thread_news();
    futures.push_back(executor.submit([i] { return i; }));
    EXPECT_EQ(testing::thread_news() - before, 1) << "the task and its future's state in one block";
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(futures[i].result(), i);
#else
  GTEST_SKIP() << "blocks come from the recycler's caches: counted in ASan builds only";
#endif
}

TEST(ExecutorTaskBlockTest, FutureOutlivesTheExecutorAndTheTask) {
  Witness w;
  ConcurrentFuture<Tracked> f;
  {
    ThreadPoolExecutor pool(2);
    f = pool.submit([c = w.capture()] { return Tracked(7); });
  }
  EXPECT_TRUE(w.destroyed()) << "the call went with the task, not with the future";
  ConcurrentFuture<Tracked> copy = f;
  f = ConcurrentFuture<Tracked>();
  EXPECT_EQ(copy.result().v, 7);
  EXPECT_EQ(Tracked::live.load(), 1);
  copy = ConcurrentFuture<Tracked>();
  EXPECT_EQ(Tracked::live.load(), 0) << "the block went with the last handle";
}

TEST(ExecutorTaskBlockTest, FutureDroppedBeforeTheTaskRuns) {
  std::atomic<int> ran{0};
  Witness w;
  {
    BlockedPool blocked;
    blocked.pool.submit([&ran, c = w.capture()] { return Tracked(++ran); });
    EXPECT_FALSE(w.destroyed());
    blocked.release();
    blocked.pool.shutdown(/*wait=*/true);
    EXPECT_TRUE(w.destroyed());
  }
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(Tracked::live.load(), 0) << "the worker freed the block";
}

// A task whose future nobody holds any more runs without the future's
// atomic protocol (nobody can look). What a user could still see of it
// must not change: a failure is logged, a callback runs, a value that
// cannot be stored fails the future instead of vanishing.
TEST(ExecutorTaskBlockTest, AFailureOfADroppedFutureIsLoggedAsNeverRetrieved) {
  LogCapture log;
  {
    BlockedPool blocked;
    blocked.pool.submit([]() -> int { throw std::runtime_error("dropped and failed"); });
    blocked.release();
    blocked.pool.shutdown(/*wait=*/true);
  }
  EXPECT_EQ(log.count("dropped and failed"), 1u);
  EXPECT_EQ(log.count("never retrieved"), 1u);
}

TEST(ExecutorTaskBlockTest, ACallbackOnADroppedFutureStillRuns) {
  std::atomic<int> got{0};
  {
    BlockedPool blocked;
    ConcurrentFuture<int> f = blocked.pool.submit([] { return 7; });
    f.add_done_callback([&got](ConcurrentFuture<int>& done) { got = done.result(); });
    f = ConcurrentFuture<int>();  // only the task holds the state now
    blocked.release();
    blocked.pool.shutdown(/*wait=*/true);
  }
  EXPECT_EQ(got.load(), 7) << "the callback registered before the drop ran";
}

// A value whose move constructor throws: the store into the state fails.
struct MoveThrows {
  MoveThrows() = default;
  MoveThrows(MoveThrows&&) { throw std::runtime_error("the value could not be stored"); }
};

TEST(ExecutorTaskBlockTest, ADroppedFutureWhoseValueCannotBeStoredLogsTheFailure) {
  LogCapture log;
  std::atomic<int> ran{0};
  {
    BlockedPool blocked;
    blocked.pool.submit([&ran] {
      ++ran;
      return MoveThrows();
    });
    blocked.release();
    ShutdownReport r = blocked.pool.shutdown(/*wait=*/true);
    EXPECT_EQ(r.completed, 2u);
  }
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(log.count("the value could not be stored"), 1u);
}

TEST(ExecutorTaskBlockTest, QueuedTaskCancelledByShutdownDropsItsCall) {
  Witness w;
  BlockedPool blocked;
  ConcurrentFuture<int> f = blocked.pool.submit([c = w.capture()] { return 1; });
  blocked.pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(w.destroyed()) << "while a future still holds the block";
  blocked.release();
  blocked.pool.shutdown(/*wait=*/true);
  EXPECT_THROW(f.result(), CancelledError);
}

TEST(ExecutorTaskBlockTest, QueuedTaskWhoseFutureWasCancelledDropsItsCall) {
  Witness w;
  std::atomic<bool> ran{false};
  BlockedPool blocked;
  ConcurrentFuture<int> f = blocked.pool.submit([&ran, c = w.capture()] {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(f.cancel());
  EXPECT_FALSE(w.destroyed()) << "still queued";
  blocked.release();
  blocked.pool.shutdown(/*wait=*/true);
  EXPECT_TRUE(w.destroyed()) << "the worker skipped the task and dropped its call";
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(f.cancelled());
}

TEST(ExecutorTaskBlockTest, TaskDroppedUnsettledCancelsItsFuture) {
  Witness w;
  KeepingExecutor executor;
  ConcurrentFuture<Tracked> f = executor.submit([c = w.capture()] { return Tracked(1); });
  ConcurrentFuture<Tracked> g = f;
  bool called = false;
  g.add_done_callback([&called](ConcurrentFuture<Tracked>& done) { called = done.cancelled(); });
  executor.drop();
  EXPECT_TRUE(called);
  EXPECT_TRUE(w.destroyed());
  f = ConcurrentFuture<Tracked>();
  EXPECT_TRUE(g.cancelled());
}

// What the completion wakes (a callback, a waiter, a coroutine on the loop)
// finds the call's captures gone: they die on the worker as soon as the
// call returns, not after the future completes. (Before, the worker
// completed the future first, and an awaiting coroutine resumed while a
// slow capture died saw the worker's handles still held, and copied the
// result instead of moving it.)
TEST(ExecutorTaskBlockTest, TheCallsCapturesAreGoneWhenItsFutureCompletes) {
  ThreadPoolExecutor pool(1);
  for (bool fails : {false, true}) {
    Witness w;
    std::latch go(1);
    ConcurrentFuture<int> f = pool.submit([&go, fails, c = w.capture()] {
      go.wait();
      if (fails) throw std::runtime_error("boom");
      return 1;
    });
    std::atomic<int> seen{-1};
    std::latch called(1);
    f.add_done_callback([&](ConcurrentFuture<int>&) {
      seen = w.destroyed() ? 1 : 0;
      called.count_down();
    });
    go.count_down();
    if (fails) {
      EXPECT_THROW(f.result(), std::runtime_error);
    } else {
      EXPECT_EQ(f.result(), 1);
    }
    EXPECT_TRUE(w.destroyed()) << "a waiter woken by the completion found the capture alive";
    // The callbacks run on the worker after the waiters wake: wait for it.
    called.wait();
    EXPECT_EQ(seen.load(), 1) << "the done callback ran while the capture was alive";
  }
}

// A call returning a reference into its own capture: the value is copied
// out before the capture dies.
TEST(ExecutorTaskBlockTest, AResultReferringIntoACaptureIsCopiedBeforeTheCaptureDies) {
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<std::vector<int>> f =
      pool.submit([v = std::vector<int>{1, 2, 3}]() -> const std::vector<int>& { return v; });
  EXPECT_EQ(f.result(), (std::vector<int>{1, 2, 3}));
}

TEST(ExecutorTaskBlockTest, ExceptionsReachResult) {
  ThreadPoolExecutor pool(2);
  ConcurrentFuture<int> f = pool.submit([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(f.result(), std::runtime_error);
  ConcurrentFuture<void> g = pool.submit([] { throw std::logic_error("void boom"); });
  EXPECT_NE(g.exception(), nullptr);
  EXPECT_THROW(g.result(), std::logic_error);
}

// Copies of a submitted future dropped on several threads while the task
// runs and after: the block is freed once, by whichever thread is last.
TEST(ExecutorTaskBlockTest, CopiesReleasedOnSeveralThreads) {
  ThreadPoolExecutor pool(2);
  for (int round = 0; round < 300; ++round) {
    std::atomic<int> seen{0};
    {
      ConcurrentFuture<Tracked> f = pool.submit([round] { return Tracked(round); });
      std::vector<std::thread> threads;
      for (int t = 0; t < 3; ++t) {
        threads.emplace_back([copy = f, &seen, round, t]() mutable {
          if (t == 0) {
            copy = ConcurrentFuture<Tracked>();  // maybe before the task ran
            return;
          }
          ConcurrentFuture<Tracked> mine = std::move(copy);
          if (mine.result().v == round) ++seen;
        });
      }
      f = ConcurrentFuture<Tracked>();
      for (auto& t : threads) t.join();
    }
    EXPECT_EQ(seen.load(), 2);
  }
  pool.shutdown(/*wait=*/true);
  EXPECT_EQ(Tracked::live.load(), 0);
}

// A user may settle a submitted future themselves while the task is still
// queued. The worker then skips the call (counted as never run) instead of
// throwing out of the task, which would end the process.
TEST(ExecutorTaskBlockTest, FutureSettledByTheUserBeforeTheTaskRunsSkipsTheCall) {
  ThreadPoolExecutor pool(1);
  std::latch release(1);
  ConcurrentFuture<void> blocker = pool.submit([&release] { release.wait(); });
  std::atomic<bool> ran{false};
  ConcurrentFuture<int> f = pool.submit([&ran] {
    ran = true;
    return 1;
  });
  f.set_result(42);
  release.count_down();
  blocker.result();
  ShutdownReport report = pool.shutdown(/*wait=*/true);
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(f.result(), 42);
  EXPECT_EQ(report.completed, 1u);  // the blocker
  EXPECT_EQ(report.cancelled, 1u);  // the skipped call
}

}  // namespace
}  // namespace eddy
