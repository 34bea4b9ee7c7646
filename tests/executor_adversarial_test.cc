// Adversarial tests of the executor side, written as a demanding user would
// poke at it: timeouts at the edges of absl::Duration, futures settled by
// hand around the pool, submits and shutdowns from callbacks and from many
// threads, a failing initializer under concurrent submits, bounded queues
// with parked tasks, and the loop bridge. Python's concurrent.futures and
// Tornado 6.2 are the reference for what is expected.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/run_on_executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"

namespace eddy {
namespace {

using testing::Gate;
using testing::LogCapture;
using testing::ManualScheduler;
using testing::wait_until;

void expect_report_balanced(const ShutdownReport& r) {
  EXPECT_EQ(r.submitted, r.completed + r.cancelled + r.failed + r.running + r.queued);
}

// --- timeouts at the edges ---------------------------------------------------

// A timeout far longer than any program runs means "wait": it must not
// overflow into a deadline in the past and time out at once.
TEST(ExecutorAdversarialTest, HugeResultTimeoutWaitsInsteadOfTimingOutAtOnce) {
  for (absl::Duration huge : {absl::Hours(24 * 365 * 1000), absl::Seconds(INT64_MAX),
                              absl::Nanoseconds(INT64_MAX)}) {
    ConcurrentFuture<int> f;
    std::thread completer([&] {
      // Not synchronisation: the test passes however the threads
      // interleave once the timeout is right. The pause only lets the
      // wait start first, so that a timeout that wrapped into the past
      // shows as a TimeoutError.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      f.set_result(7);
    });
    int got = -1;
    EXPECT_NO_THROW(got = f.result(huge)) << absl::FormatDuration(huge);
    completer.join();
    EXPECT_EQ(got, 7);
    ConcurrentFuture<int> g;
    std::thread completer2([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      g.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
    });
    std::exception_ptr e;
    EXPECT_NO_THROW(e = g.exception(huge)) << absl::FormatDuration(huge);
    completer2.join();
    EXPECT_NE(e, nullptr);
  }
}

// Zero and negative timeouts poll, as Python's result(timeout=0): a done
// future answers, a pending one times out with TimeoutError.
TEST(ExecutorAdversarialTest, ZeroAndNegativeTimeoutsPoll) {
  for (absl::Duration t : {absl::ZeroDuration(), absl::Nanoseconds(-1), absl::Seconds(-5),
                           -absl::InfiniteDuration(), absl::Seconds(INT64_MIN)}) {
    ConcurrentFuture<int> pending;
    EXPECT_THROW(pending.result(t), TimeoutError) << absl::FormatDuration(t);
    EXPECT_THROW(pending.exception(t), TimeoutError) << absl::FormatDuration(t);
    EXPECT_FALSE(pending.done());
    ConcurrentFuture<int> done;
    done.set_result(3);
    EXPECT_EQ(done.result(t), 3);
    ConcurrentFuture<int> cancelled;
    cancelled.cancel();
    EXPECT_THROW(cancelled.result(t), CancelledError);
    // A pending future can still complete after a timed-out wait.
    pending.set_result(1);
    EXPECT_EQ(pending.result(t), 1);
  }
}

TEST(ExecutorAdversarialTest, HugeDeadlineIsNotAlreadyPassed) {
  for (absl::Duration huge : {absl::Hours(24 * 365 * 1000), absl::Seconds(INT64_MAX),
                              absl::Nanoseconds(INT64_MAX)}) {
    Deadline d = Deadline::after(huge);
    EXPECT_FALSE(d.passed()) << absl::FormatDuration(huge);
    EXPECT_GT(d.remaining(), absl::Hours(1)) << absl::FormatDuration(huge);
    CancellationSource source(d);
    EXPECT_FALSE(source.token().expired()) << absl::FormatDuration(huge);
  }
  // And a task submitted with such a deadline runs.
  ThreadPoolExecutor pool(1);
  CancellationSource source(Deadline::after(absl::Hours(24 * 365 * 1000)));
  auto f = pool.submit(source.token(), [](CancellationToken t) { return t.cancelled() ? 0 : 1; });
  EXPECT_EQ(f.result(), 1);
}

TEST(ExecutorAdversarialTest, NegativeHugeDeadlineHasPassed) {
  Deadline d = Deadline::after(absl::Seconds(INT64_MIN));
  EXPECT_TRUE(d.passed());
  EXPECT_FALSE(d.is_none());
}

// remaining() of a deadline long past is <= zero: when - now overflowed
// int64 nanoseconds (UBSan) and came out as ~+292 years.
TEST(ExecutorAdversarialTest, ALongPassedDeadlineHasNoTimeRemaining) {
  EXPECT_LE(Deadline::after(absl::Seconds(INT64_MIN)).remaining(), absl::ZeroDuration());
  EXPECT_LE(Deadline::after(-absl::InfiniteDuration()).remaining(), absl::ZeroDuration());
  EXPECT_LE(Deadline::at(Deadline::Clock::time_point::min()).remaining(), absl::ZeroDuration());
  EXPECT_GT(Deadline::after(absl::Hours(1)).remaining(), absl::Minutes(59));
}

// wait_for_cancel(huge) on a token from a source is a wait until cancel.
TEST(ExecutorAdversarialTest, WaitForCancelWithAHugeTimeoutWaitsForTheCancel) {
  CancellationSource source;
  CancellationToken token = source.token();
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    EXPECT_TRUE(token.wait_for_cancel(absl::Seconds(INT64_MAX)));
    returned = true;
  });
  // As above: a pause that lets a wrongly expired wait show, not
  // synchronisation.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(returned.load()) << "returned before the cancel";
  source.cancel();
  waiter.join();
  EXPECT_TRUE(returned.load());
}

// --- results whose copy or move throws ----------------------------------------

// Copying it throws once armed: a result type whose copy can fail (an
// allocation, a user-written copy constructor) and that has no move.
struct FragileCopy {
  static inline std::atomic<bool> armed{false};
  int v = 0;
  explicit FragileCopy(int x) : v(x) {}
  FragileCopy(const FragileCopy& o) : v(o.v) {
    if (armed.load()) throw std::runtime_error("copy failed");
  }
  FragileCopy& operator=(const FragileCopy&) = default;
};

// A failed store of the result must not leave the future claimed forever
// ("running", every waiter blocked): the task's future fails with the
// copy's exception, and the worker goes on.
TEST(ExecutorAdversarialTest, ResultWhoseCopyThrowsFailsTheFutureInsteadOfHangingIt) {
  ThreadPoolExecutor pool(1);
  FragileCopy::armed = true;
  ConcurrentFuture<FragileCopy> f = pool.submit([] { return FragileCopy(1); });
  EXPECT_THROW(f.result(absl::Seconds(60)), std::runtime_error);
  FragileCopy::armed = false;
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_EQ(pool.submit([] { return 5; }).result(), 5) << "the worker went on";
  expect_report_balanced(pool.shutdown());
}

// The same through set_result by hand: the throwing set_result leaves the
// future as it was (pending), so it can still be completed or cancelled.
TEST(ExecutorAdversarialTest, SetResultWhoseCopyThrowsLeavesTheFuturePending) {
  ConcurrentFuture<FragileCopy> f;
  FragileCopy value(2);
  FragileCopy::armed = true;
  EXPECT_THROW(f.set_result(value), std::runtime_error);
  FragileCopy::armed = false;
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_TRUE(f.cancel()) << "still pending, so cancellable";
  EXPECT_THROW(f.result(), CancelledError);

  // Running, with a waiter blocked on it: the failed store leaves it
  // running, and a later completion still wakes the waiter.
  ConcurrentFuture<FragileCopy> g;
  ASSERT_TRUE(g.set_running_or_notify_cancel());
  std::thread waiter([&] { EXPECT_EQ(g.result().v, 3); });
  FragileCopy::armed = true;
  EXPECT_THROW(g.set_result(value), std::runtime_error);
  EXPECT_THROW(g.try_set_result(value), std::runtime_error);
  FragileCopy::armed = false;
  EXPECT_TRUE(g.running());
  g.set_result(FragileCopy(3));
  waiter.join();
}

// --- misuse of the settling methods --------------------------------------------

// try_set_exception(nullptr) must be refused like set_exception(nullptr): a
// future "failed" with no exception makes result() call
// std::rethrow_exception(nullptr), which terminates.
TEST(ExecutorAdversarialTest, TrySetExceptionWithNullIsRefused) {
  ConcurrentFuture<int> f;
  EXPECT_THROW(f.try_set_exception(nullptr), std::invalid_argument);
  EXPECT_FALSE(f.done());
  f.set_result(1);
  EXPECT_EQ(f.result(), 1);
  EXPECT_THROW(f.set_exception(nullptr), std::invalid_argument);
}

// --- futures settled by the user around the pool ---------------------------

// The user completes the future while its task runs (Python's worker would
// log an InvalidStateError here): the user's outcome stands, the task's
// result is dropped quietly, the worker goes on and the task counts as
// completed.
TEST(ExecutorAdversarialTest, FutureSettledByTheUserWhileItsTaskRunsKeepsTheUsersOutcome) {
  LogCapture logs;
  ThreadPoolExecutor pool(1);
  Gate gate;
  ConcurrentFuture<int> f = pool.submit([&] {
    gate.wait();
    return 1;
  });
  gate.wait_arrived(1);
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel()) << "a running future cannot be cancelled";
  f.set_result(2);
  gate.open();
  EXPECT_EQ(pool.submit([] { return 3; }).result(), 3);
  EXPECT_EQ(f.result(), 2);

  ConcurrentFuture<int> g = pool.submit([&] { return 4; });
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, 3u);
  expect_report_balanced(r);
  EXPECT_EQ(g.result(), 4);
  EXPECT_EQ(logs.size(), 0u);
}

// --- exceptions that are not std::exception ---------------------------------

TEST(ExecutorAdversarialTest, NonStdExceptionsReachResultAndCallbackFailuresAreLogged) {
  LogCapture logs;
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<int> f = pool.submit([]() -> int { throw 42; });
  try {
    f.result();
    ADD_FAILURE() << "no exception";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
  EXPECT_NE(f.exception(), nullptr);

  // Three callbacks on a task's future; the middle one throws a non-std
  // exception: it is logged, the others run, the worker goes on.
  Gate gate;
  ConcurrentFuture<void> g = pool.submit([&] { gate.wait(); });
  std::atomic<int> ran{0};
  g.add_done_callback([&] { ran += 1; });
  g.add_done_callback([] { throw 3.5; });
  g.add_done_callback([&] { ran += 10; });
  gate.open();
  g.result();
  EXPECT_EQ(pool.submit([] { return 1; }).result(), 1);
  EXPECT_EQ(ran.load(), 11);
  EXPECT_EQ(logs.count("double"), 1u) << "the callback failure is logged with its type";
}

// --- submit and shutdown from callbacks and tasks ----------------------------

// A chain in which each done-callback (on a worker) submits the next task.
TEST(ExecutorAdversarialTest, DoneCallbacksOnWorkersCanSubmitMoreWork) {
  ThreadPoolExecutor pool(2);
  constexpr int kDepth = 200;
  ConcurrentFuture<int> last;
  std::atomic<int> ran{0};
  std::function<void(int)> step = [&](int depth) {
    ConcurrentFuture<int> f = pool.submit([&ran, depth] {
      ran.fetch_add(1);
      return depth;
    });
    if (depth == kDepth) {
      chain_future(f, last);
      return;
    }
    f.add_done_callback([&step, depth] { step(depth + 1); });
  };
  step(1);
  EXPECT_EQ(last.result(), kDepth);
  EXPECT_EQ(ran.load(), kDepth);
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, static_cast<uint64_t>(kDepth));
  expect_report_balanced(r);
}

// shutdown(wait=true) from a done callback that runs on one of the pool's
// workers: it cannot join its own thread, so it returns without waiting;
// nothing deadlocks, queued work still runs, later submits are refused and
// the destructor joins.
TEST(ExecutorAdversarialTest, WaitingShutdownFromADoneCallbackOnAWorkerDoesNotDeadlock) {
  auto pool = std::make_unique<ThreadPoolExecutor>(1);
  Gate gate;
  ConcurrentFuture<void> first = pool->submit([&] { gate.wait(); });
  ConcurrentFuture<int> queued = pool->submit([] { return 2; });
  ConcurrentFuture<bool> shut;
  first.add_done_callback([&] {
    pool->shutdown(/*wait=*/true);
    bool refused = false;
    try {
      pool->submit([] {});
    } catch (const ExecutorShutdownError&) {
      refused = true;
    }
    shut.set_result(refused);
  });
  gate.open();
  EXPECT_TRUE(shut.result());
  EXPECT_EQ(queued.result(), 2) << "shutdown without cancel_futures runs queued work";
  ShutdownReport r = pool->shutdown();
  EXPECT_EQ(r.running, 0u);
  EXPECT_EQ(r.queued, 0u);
  pool.reset();
}

// --- a user's completion racing the worker that starts the task ---------------

// A value whose move number `poison` blocks until released and then
// throws.
struct MoveThrowsLate {
  static inline Gate* release = nullptr;
  int v = 0;
  int poison = 0;  // moves left before the throwing one
  explicit MoveThrowsLate(int v, int poison = 0) : v(v), poison(poison) {}
  MoveThrowsLate(const MoveThrowsLate& o) = default;
  MoveThrowsLate(MoveThrowsLate&& o) : v(o.v), poison(o.poison > 0 ? o.poison - 1 : 0) {
    if (o.poison == 1) {
      release->wait();  // counts as arrived: the claim is held
      throw std::runtime_error("move failed");
    }
  }
};

// The user's set_result claims the queued task's future, the worker tries
// to start the task meanwhile, then the user's store throws and hands the
// claim back. The worker used to take "claimed" for "done" and skip the
// task: the future stayed pending forever. Now it waits for the outcome
// and runs the task.
TEST(ExecutorAdversarialTest, AThrowingSetResultRacingTheWorkerDoesNotLoseTheTask) {
  Gate release, hold;
  MoveThrowsLate::release = &release;
  ThreadPoolExecutor pool(1);
  auto blocker = pool.submit([&] { hold.wait(); });
  hold.wait_arrived(1);
  ConcurrentFuture<MoveThrowsLate> f = pool.submit([] { return MoveThrowsLate(42); });
  std::thread user([&] {
    // The prvalue initializes set_result's parameter in place: the one
    // move is the store into the state.
    EXPECT_THROW(f.set_result(MoveThrowsLate(7, /*poison=*/1)), std::runtime_error);
  });
  release.wait_arrived(1);  // the user's set_result holds the claim
  hold.open();              // the worker finishes the blocker and reaches f's task
  // Not a timing assertion: whether the worker gets there before the
  // release or after, the task must run.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  release.open();
  user.join();
  EXPECT_EQ(f.result(absl::Seconds(20)).v, 42) << "the task was skipped";
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, 2u);
}

// The completion side of the same race: the task is running when the
// user's set_result claims its future; the task then returns, and the
// worker's completion found the claim and dropped its value as "done
// already". The user's store throws and hands the claim back: the future
// stayed running forever. Now the worker waits for the outcome and, the
// claim handed back, completes the future itself.
TEST(ExecutorAdversarialTest, AThrowingSetResultRacingTheTasksCompletionDoesNotLoseTheResult) {
  Gate release, finish;
  MoveThrowsLate::release = &release;
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<MoveThrowsLate> f = pool.submit([&] {
    finish.wait();
    return MoveThrowsLate(42);
  });
  finish.wait_arrived(1);  // the task is running
  std::thread user([&] {
    EXPECT_THROW(f.set_result(MoveThrowsLate(7, /*poison=*/1)), std::runtime_error);
  });
  release.wait_arrived(1);  // the user's set_result holds the claim
  finish.open();            // the task returns; the worker tries to complete f
  // Not a timing assertion: whether the worker gets there before the
  // release or after, the task's value must not be lost.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  release.open();
  user.join();
  EXPECT_EQ(f.result(absl::Seconds(20)).v, 42) << "the task's value was dropped";
  pool.shutdown();
}

// cancel() meeting a claim that is handed back: the future is pending
// again, so the cancel must win, not report "running or done".
TEST(ExecutorAdversarialTest, ACancelRacingAThrowingSetResultCancels) {
  Gate release;
  MoveThrowsLate::release = &release;
  ConcurrentFuture<MoveThrowsLate> f;
  std::thread user([&] {
    EXPECT_THROW(f.set_result(MoveThrowsLate(7, /*poison=*/1)), std::runtime_error);
  });
  release.wait_arrived(1);
  bool cancelled = false;
  std::thread canceller([&] { cancelled = f.cancel(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // not a timing assertion
  release.open();
  user.join();
  canceller.join();
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(f.cancelled());
}

// --- a pool destroyed by its own task ----------------------------------------

// An object that owns its pool, as run_on_executor's users write it.
struct PoolOwner {
  explicit PoolOwner(int workers) : pool(workers) {}
  ThreadPoolExecutor pool;
};

// A submitted lambda holds the last shared_ptr to the pool's owner; it dies
// when the task is disposed, on the worker. That aborted the process ("a
// worker cannot join itself"). Now the destructor runs the queued work on
// that worker, joins the others, and the worker leaves.
TEST(ExecutorAdversarialTest, APoolDestroyedWhenItsTaskDropsTheLastReferenceDoesNotAbort) {
  for (int workers : {1, 2, 4}) {
    auto owner = std::make_shared<PoolOwner>(workers);
    Gate gate;
    std::atomic<int> queued_ran{0};
    ConcurrentFuture<int> first = owner->pool.submit([o = owner, &gate] {
      gate.wait();
      return 1;
    });
    gate.wait_arrived(1);
    std::vector<ConcurrentFuture<int>> queued;
    for (int i = 0; i < 5; ++i) {
      queued.push_back(owner->pool.submit([&queued_ran, i] {
        queued_ran.fetch_add(1);
        return i;
      }));
    }
    std::weak_ptr<PoolOwner> watch = owner;
    owner.reset();  // the running task's capture is the last reference now
    gate.open();
    EXPECT_EQ(first.result(absl::Seconds(60)), 1);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(queued[i].result(absl::Seconds(60)), i);
    EXPECT_EQ(queued_ran.load(), 5) << "the destructor still runs what was queued";
    ASSERT_TRUE(wait_until([&] { return watch.expired(); }));
  }
}

// The same when the task's body itself drops the last reference while it
// runs (the destructor runs inside run(), not in dispose()).
TEST(ExecutorAdversarialTest, APoolDestroyedInsideItsRunningTaskFinishesThatTask) {
  auto owner = std::make_shared<PoolOwner>(2);
  Gate gate;
  std::atomic<bool> after_destroy{false};
  ConcurrentFuture<int> f = owner->pool.submit([o = owner, &gate, &after_destroy]() mutable {
    gate.wait();
    o.reset();  // ~ThreadPoolExecutor here, on this worker
    after_destroy = true;
    return 7;
  });
  gate.wait_arrived(1);
  ConcurrentFuture<int> behind = owner->pool.submit([] { return 8; });
  owner.reset();
  gate.open();
  EXPECT_EQ(f.result(absl::Seconds(60)), 7);
  EXPECT_TRUE(after_destroy.load());
  EXPECT_EQ(behind.result(absl::Seconds(60)), 8);
}

// A bounded pool with parked tasks, destroyed from its own task: the parked
// tasks are admitted and run too.
TEST(ExecutorAdversarialTest, ABoundedPoolDestroyedByItsTaskRunsItsParkedTasks) {
  struct BoundedOwner {
    ThreadPoolExecutor pool{ThreadPoolExecutor::Options{.max_workers = 1, .max_queue_size = 1}};
  };
  auto bounded = std::make_shared<BoundedOwner>();
  Gate gate;
  std::vector<ConcurrentFuture<int>> children;
  ConcurrentFuture<void> first = bounded->pool.submit([b = bounded, &gate, &children] {
    gate.wait();
    // Parked: the queue holds one and this is the pool's own thread.
    for (int i = 0; i < 3; ++i) children.push_back(b->pool.submit([i] { return i; }));
  });
  gate.wait_arrived(1);
  bounded.reset();
  gate.open();
  first.result(absl::Seconds(60));
  ASSERT_EQ(children.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(children[i].result(absl::Seconds(60)), i);
}

// --- a failing initializer under concurrent submits -------------------------

TEST(ExecutorAdversarialTest, InitializerFailingWhileSubmitsAreInFlightLosesNothing) {
  LogCapture logs;
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> inits{0};
    ThreadPoolExecutor pool({.max_workers = 4, .initializer = [&inits] {
                               // The second worker's initializer fails.
                               if (inits.fetch_add(1) == 1) throw std::runtime_error("init");
                             }});
    constexpr int kThreads = 4, kPerThread = 50;
    std::vector<std::vector<ConcurrentFuture<int>>> futures(kThreads);
    std::atomic<int> refused{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          try {
            futures[t].push_back(pool.submit([i] { return i; }));
          } catch (const BrokenExecutorError&) {
            refused.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : submitters) t.join();
    int ran = 0, failed = 0;
    for (auto& v : futures) {
      for (auto& f : v) {
        // Every accepted task either ran or failed with BrokenExecutorError:
        // none is left pending (result() would block forever).
        try {
          f.result(absl::Seconds(60));
          ++ran;
        } catch (const BrokenExecutorError&) {
          ++failed;
        }
      }
    }
    EXPECT_EQ(ran + failed + refused.load(), kThreads * kPerThread);
    ShutdownReport r = pool.shutdown();
    EXPECT_EQ(r.completed, static_cast<uint64_t>(ran));
    EXPECT_EQ(r.failed, static_cast<uint64_t>(failed));
    expect_report_balanced(r);
    if (inits.load() >= 2) {
      EXPECT_TRUE(pool.broken());
    }
  }
}

// --- bounded queues, parked tasks and shutdown ---------------------------------

// A task that fans out subtasks onto its own full, bounded pool: with every
// worker waiting for room only a worker could make, the pool deadlocked
// (the test timed out). Now the pool's own submits park, in order.
TEST(ExecutorAdversarialTest, ATaskSubmittingToItsOwnFullPoolDoesNotDeadlockIt) {
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  std::mutex mu;
  std::vector<int> order;
  auto record = [&](int v) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(v);
  };
  std::vector<ConcurrentFuture<void>> children;
  auto parent = pool.submit([&] {
    for (int i = 0; i < 4; ++i) children.push_back(pool.submit([&, i] { record(i); }));
    record(-1);
  });
  // A failure would otherwise hang the test until Bazel's timeout.
  ASSERT_NO_THROW(parent.result(absl::Seconds(30))) << "the pool deadlocked itself";
  for (auto& c : children) ASSERT_NO_THROW(c.result(absl::Seconds(30)));
  EXPECT_EQ(order, (std::vector<int>{-1, 0, 1, 2, 3})) << "subtasks run in submission order";
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, 5u);
}

// The same with two workers, each task splitting into two until a depth:
// every worker is a submitter at once.
TEST(ExecutorAdversarialTest, RecursiveFanOutOnABoundedPoolCompletes) {
  ThreadPoolExecutor pool({.max_workers = 2, .max_queue_size = 2});
  std::atomic<int> leaves{0};
  std::function<void(int)> split = [&](int depth) {
    if (depth == 0) {
      leaves.fetch_add(1);
      return;
    }
    pool.submit(split, depth - 1);
    pool.submit(split, depth - 1);
  };
  pool.submit(split, 8);
  ASSERT_TRUE(wait_until([&] { return leaves.load() == 256; }))
      << "stuck at " << leaves.load() << " of 256 leaves";
  pool.shutdown();
}

// Parked by submit_from_loop, then the pool is destroyed without
// cancel_futures: the parked task is admitted, runs, and the loop hears of
// its admission on a later turn.
TEST(ExecutorAdversarialTest, DestroyingABoundedPoolRunsItsParkedTasks) {
  ManualScheduler loop;
  auto pool = std::make_unique<ThreadPoolExecutor>(
      ThreadPoolExecutor::Options{.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool->submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool->submit([] { return 1; });
  std::vector<Future<ConcurrentFuture<int>>> admitted;
  for (int i = 0; i < 3; ++i) admitted.push_back(pool->submit_from_loop([i] { return 10 + i; }));
  loop.run_pending();
  for (auto& a : admitted) EXPECT_FALSE(a.done());
  EXPECT_EQ(pool->stats().queued, 4u);
  std::thread destroyer([&] { pool.reset(); });
  gate.open();
  destroyer.join();
  EXPECT_EQ(queued.result(), 1);
  loop.run_pending();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(admitted[i].done());
    EXPECT_EQ(admitted[i].result().result(), 10 + i) << "parked tasks run in order";
  }
}

// Blocked submitters and parked tasks, then shutdown(cancel_futures) from
// another thread: the blocked submits throw ExecutorShutdownError, every
// accepted future is done after the waiting shutdown, the report balances.
TEST(ExecutorAdversarialTest, CancelFuturesShutdownWakesBlockedSubmittersAndCancelsParked) {
  ManualScheduler loop;
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] { return 1; });
  auto parked = pool.submit_from_loop([] { return 2; });
  std::atomic<int> refused{0};
  std::vector<std::thread> blocked;
  for (int i = 0; i < 3; ++i) {
    blocked.emplace_back([&] {
      try {
        pool.submit([] { return 3; }).result();
        ADD_FAILURE() << "a blocked submit got through a full queue";
      } catch (const ExecutorShutdownError&) {
        refused.fetch_add(1);
      }
    });
  }
  // Whether the three submitters are blocked yet or not, they cannot get
  // through while the worker is held, and shutdown refuses them.
  ShutdownReport r = pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  for (auto& t : blocked) t.join();
  EXPECT_EQ(refused.load(), 3);
  EXPECT_TRUE(queued.cancelled());
  loop.run_pending();
  ASSERT_TRUE(parked.done());
  EXPECT_TRUE(parked.result().cancelled());
  gate.open();
  r = pool.shutdown();
  EXPECT_EQ(r.submitted, 3u);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(r.cancelled, 2u);
  expect_report_balanced(r);
}


// The loop goes away while its task is parked, then the pool is destroyed:
// the task still runs and its admission, posted to a dead loop, is dropped
// (no crash, nothing run off the loop thread).
TEST(ExecutorAdversarialTest, ParkedTaskWhoseLoopDiesBeforeAdmission) {
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] { return 1; });
  std::atomic<bool> parked_ran{false};
  Future<int> offloaded;
  {
    IOLoop loop;
    loop.make_current();
    auto admitted = pool.submit_from_loop([&] {
      parked_ran = true;
      return std::string(100, 'x');
    });
    offloaded = loop.run_in_executor(&pool, [] { return 3; });
    EXPECT_EQ(pool.stats().queued, 3u);
  }
  gate.open();
  ShutdownReport r = pool.shutdown();
  EXPECT_TRUE(parked_ran.load());
  EXPECT_EQ(r.completed, 4u);
  expect_report_balanced(r);
}

// run_in_executor on a pool whose initializer throws: the loop Future fails
// with BrokenExecutorError on the loop thread instead of staying pending,
// and later offloads are refused at once.
TEST(ExecutorAdversarialTest, RunInExecutorOnAPoolThatBreaksFailsTheFuture) {
  LogCapture logs;
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool({.max_workers = 1, .initializer = [] {
                             throw std::runtime_error("no database");
                           }});
  Future<int> f = loop.run_in_executor(&pool, [] { return 1; });
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id delivered_on;
  f.add_done_callback([&](Future<int>&) { delivered_on = std::this_thread::get_id(); });
  EXPECT_THROW(loop.run_sync([&] { return f; }, absl::Seconds(60)), BrokenExecutorError);
  EXPECT_THROW(loop.run_in_executor(&pool, [] { return 1; }), BrokenExecutorError);
  loop.run_sync([] {});  // the callback runs on a later turn
  EXPECT_EQ(delivered_on, loop_thread);
  EXPECT_GE(logs.count("no database"), 1u) << "the initializer's failure is logged";
}

// Blocking submitters, a loop thread parking tasks with submit_from_loop,
// and a waiting shutdown(cancel_futures) from yet another thread: every
// accepted task is done when shutdown returns, every admission reaches its
// loop, the report balances, and no submit is lost or counted twice.
TEST(ExecutorAdversarialTest, CancelFuturesShutdownRacingBlockedAndParkedSubmits) {
#ifdef EDDY_SANITIZED
  constexpr int kRounds = 5;
#else
  constexpr int kRounds = 30;
#endif
  for (int round = 0; round < kRounds; ++round) {
    ThreadPoolExecutor pool({.max_workers = 2, .max_queue_size = 2});
    constexpr int kSubmitters = 3, kPerSubmitter = 100, kFromLoop = 100;
    std::atomic<int> ran{0};
    std::vector<std::vector<ConcurrentFuture<int>>> accepted(kSubmitters);
    std::vector<std::thread> threads;
    for (int t = 0; t < kSubmitters; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerSubmitter; ++i) {
          try {
            accepted[t].push_back(pool.submit([&ran, i] {
              ran.fetch_add(1);
              return i;
            }));
          } catch (const ExecutorShutdownError&) {
            return;  // refused, as every later submit will be
          }
        }
      });
    }
    std::vector<ConcurrentFuture<int>> from_loop;
    std::atomic<bool> loop_started{false};
    threads.emplace_back([&] {
      ManualScheduler loop;
      std::vector<Future<ConcurrentFuture<int>>> admissions;
      for (int i = 0; i < kFromLoop; ++i) {
        try {
          admissions.push_back(pool.submit_from_loop([&ran, i] {
            ran.fetch_add(1);
            return i;
          }));
        } catch (const ExecutorShutdownError&) {
          break;
        }
        loop_started = true;
      }
      loop_started = true;
      // Every admission reaches the loop: on admission, or when shutdown
      // cancels the parked task.
      EXPECT_TRUE(wait_until([&] {
        loop.run_pending();
        for (auto& a : admissions) {
          if (!a.done()) return false;
        }
        return true;
      }));
      for (auto& a : admissions) from_loop.push_back(a.result());
    });
    wait_until([&] { return loop_started.load(); });
    ShutdownReport r = pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
    for (auto& t : threads) t.join();
    uint64_t total = 0, cancelled = 0;
    auto check = [&](ConcurrentFuture<int>& f) {
      ++total;
      ASSERT_TRUE(f.done()) << "an accepted task is still pending after a waiting shutdown";
      cancelled += f.cancelled();
    };
    for (auto& v : accepted) {
      for (auto& f : v) check(f);
    }
    for (auto& f : from_loop) check(f);
    EXPECT_EQ(r.submitted, total);
    EXPECT_EQ(r.completed, static_cast<uint64_t>(ran.load()));
    EXPECT_EQ(r.cancelled, cancelled);
    EXPECT_EQ(r.running + r.queued, 0u);
    expect_report_balanced(r);
  }
}


// The pattern run_on_executor.h shows: the object owns its pool, and a
// std::shared_ptr self keeps it alive until the call is done. When the
// caller drops its reference while the call runs, the task holds the last
// one: the object, and with it its pool, must not be destroyed on one of
// that pool's own workers (the pool's destructor would have to join the
// thread it runs on).
class OwnsItsPool {
 public:
  int load(int x) {
    gate->wait();
    return x * 2;
  }
  Gate* gate = nullptr;
  std::unique_ptr<ThreadPoolExecutor> executor = std::make_unique<ThreadPoolExecutor>(1);
};

TEST(ExecutorAdversarialTest, RunOnExecutorSelfHoldingItsOwnPoolMayBeDroppedDuringTheCall) {
  IOLoop loop;
  loop.make_current();
  Gate gate;
  auto store = std::make_shared<OwnsItsPool>();
  store->gate = &gate;
  std::weak_ptr<OwnsItsPool> watch = store;
  Future<int> f = run_on_executor(store, &OwnsItsPool::load, 21);
  gate.wait_arrived(1);
  store.reset();  // the running call holds the last reference now
  gate.open();
  EXPECT_EQ(loop.run_sync([&] { return f; }, absl::Seconds(60)), 42);
  EXPECT_TRUE(wait_until([&] { return watch.expired(); }));
}


// Records the thread its last copy dies on.
struct DiesOn {
  std::shared_ptr<std::atomic<std::thread::id>> where =
      std::make_shared<std::atomic<std::thread::id>>();
  DiesOn() = default;
  DiesOn(const DiesOn&) = default;
  DiesOn(DiesOn&& o) noexcept : where(std::move(o.where)) {}
  ~DiesOn() {
    if (where && where.use_count() == 2) where->store(std::this_thread::get_id());
  }
};

// An offloaded call's captures and arguments are destroyed on the loop
// thread once the outcome is delivered (as the OwnsItsPool case needs),
// whether the call ran, threw, or was cancelled while queued.
TEST(ExecutorAdversarialTest, OffloadedCallIsDestroyedOnTheLoopThread) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  const std::thread::id loop_thread = std::this_thread::get_id();
  // By reference: a by-value parameter is the callee's own copy, which
  // dies where the call runs.
  auto probe = [](const DiesOn&) { return 2; };
  {
    DiesOn d;
    auto where = d.where;
    Future<int> f = loop.run_in_executor(&pool, [d = std::move(d)] { return 1; });
    EXPECT_EQ(loop.run_sync([&] { return f; }), 1);
    EXPECT_EQ(where->load(), loop_thread);
  }
  {
    DiesOn d;
    auto where = d.where;
    Future<int> f = loop.run_in_executor(&pool, [](const DiesOn&) -> int { throw std::runtime_error("x"); },
                                         std::move(d));
    EXPECT_THROW(loop.run_sync([&] { return f; }), std::runtime_error);
    EXPECT_EQ(where->load(), loop_thread);
  }
  {
    Gate gate;
    auto blocker = pool.submit([&] { gate.wait(); });
    gate.wait_arrived(1);
    DiesOn d;
    auto where = d.where;
    Future<int> f = loop.run_in_executor(&pool, probe, std::move(d));
    f.cancel();
    gate.open();
    pool.shutdown();
    loop.run_sync([] {});
    EXPECT_TRUE(f.cancelled());
    EXPECT_EQ(where->load(), loop_thread);
  }
}


// Copies fine until the budget runs out, then throws.
struct CopyBudget {
  static inline std::atomic<int> budget{INT32_MAX};
  int v = 0;
  explicit CopyBudget(int x) : v(x) {}
  CopyBudget(const CopyBudget& o) : v(o.v) {
    if (budget.fetch_sub(1) <= 0) throw std::runtime_error("copy failed");
  }
  CopyBudget& operator=(const CopyBudget&) = default;
};

// The worker stores the value (one copy, CopyBudget has no move), and the
// loop moves it into the Future: when that second copy throws, the Future
// fails with it instead of staying pending forever.
TEST(ExecutorAdversarialTest, OffloadedResultWhoseCopyFailsOnDeliveryFailsTheFuture) {
  LogCapture logs;
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  CopyBudget::budget = 1;
  Future<CopyBudget> f = loop.run_in_executor(&pool, [] { return CopyBudget(1); });
  try {
    loop.run_sync([&]() -> Future<void> {
      Future<void> done;
      f.add_done_callback([done](Future<CopyBudget>&) mutable { done.set_result(); });
      return done;
    }, absl::Seconds(20));
  } catch (const TimeoutError&) {
    ADD_FAILURE() << "the Future never completed";
  }
  CopyBudget::budget = INT32_MAX;
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::runtime_error);
}


// chain_future copies a's value into b; when that copy throws, b fails with
// it instead of staying pending forever.
TEST(ExecutorAdversarialTest, ChainFutureWhoseCopyThrowsFailsTheTarget) {
  LogCapture logs;
  {
    ConcurrentFuture<CopyBudget> a, b;
    chain_future(a, b);
    CopyBudget::budget = 1;  // set_result's own copy succeeds, the chain's fails
    a.set_result(CopyBudget(1));
    CopyBudget::budget = INT32_MAX;
    ASSERT_TRUE(b.done());
    EXPECT_THROW(b.result(), std::runtime_error);
  }
  {
    IOLoop loop;
    loop.make_current();
    ConcurrentFuture<CopyBudget> a;
    Future<CopyBudget> b;
    chain_future(a, b);
    CopyBudget::budget = 1;
    a.set_result(CopyBudget(1));
    loop.run_sync([] {});
    CopyBudget::budget = INT32_MAX;
    ASSERT_TRUE(b.done());
    EXPECT_THROW(b.result(), std::runtime_error);
  }
  {
    // Loop future to loop future, the copy_outcome every chain shares.
    IOLoop loop;
    loop.make_current();
    Future<CopyBudget> a, b;
    chain_future(a, b);
    CopyBudget::budget = 1;
    a.set_result(CopyBudget(1));
    loop.run_sync([] {});
    CopyBudget::budget = INT32_MAX;
    ASSERT_TRUE(b.done());
    EXPECT_THROW(b.result(), std::runtime_error);
  }
}

// run_in_loop hands its value to a ConcurrentFuture another thread waits
// on: a copy that throws there fails that future instead of hanging the
// waiter, whether fn returns the value or a Future of it.
TEST(ExecutorAdversarialTest, RunInLoopWhoseValueCopyThrowsFailsTheConcurrentFuture) {
  LogCapture logs;
  IOLoop loop;
  CopyBudget::budget = 0;  // every copy throws from here on
  bool direct_failed = false;
  bool chained_failed = false;
  std::thread client([&] {
    ConcurrentFuture<CopyBudget> direct = loop.run_in_loop([] { return CopyBudget(1); });
    // The Future fn returns is resolved (one copy allowed), and it is
    // handing its value over that fails.
    ConcurrentFuture<CopyBudget> chained = loop.run_in_loop([] {
      Future<CopyBudget> f;
      CopyBudget::budget = 1;
      f.set_result(CopyBudget(2));
      return f;
    });
    // Before the fix both waits ran into their timeout (TimeoutError).
    try {
      direct.result(absl::Seconds(10));
    } catch (const std::runtime_error& e) {
      direct_failed = std::string(e.what()) == "copy failed";
    }
    try {
      chained.result(absl::Seconds(10));
    } catch (const std::runtime_error& e) {
      chained_failed = std::string(e.what()) == "copy failed";
    }
    loop.stop();
  });
  loop.start();
  client.join();
  CopyBudget::budget = INT32_MAX;
  EXPECT_TRUE(direct_failed);
  EXPECT_TRUE(chained_failed);
}

}  // namespace
}  // namespace eddy
