// ThreadPoolExecutor: Python's concurrent.futures.ThreadPoolExecutor
// behaviours (lazy workers, idle reuse, names, initializer failure, the
// shutdown variants, cancelling queued work), plus the queue bound, the
// shutdown report and cancellation tokens.
#include "eddy/executor/thread_pool_executor.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::Gate;
using testing::LogCapture;
using testing::ManualScheduler;
using testing::thrown_what;
using testing::wait_until;

std::string current_thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

void expect_report_balanced(const ShutdownReport& r) {
  EXPECT_EQ(r.submitted, r.completed + r.cancelled + r.failed + r.running + r.queued);
}

TEST(ThreadPoolExecutorTest, SubmitRunsOnPoolThreadAndReturnsResult) {
  ThreadPoolExecutor pool(2);
  ConcurrentFuture<std::thread::id> f = pool.submit([] { return std::this_thread::get_id(); });
  EXPECT_NE(f.result(), std::this_thread::get_id());
}

TEST(ThreadPoolExecutorTest, ArgumentsAreForwardedAndVoidCallsGiveVoidFutures) {
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<int> sum = pool.submit([](int a, int b) { return a + b; }, 2, 3);
  EXPECT_EQ(sum.result(), 5);
  std::atomic<int> hits{0};
  ConcurrentFuture<void> v = pool.submit([&hits] { ++hits; });
  v.result();
  EXPECT_EQ(hits.load(), 1);
}

TEST(ThreadPoolExecutorTest, MoveOnlyCallablesArgumentsAndResultsWork) {
  ThreadPoolExecutor pool(1);
  auto owned = std::make_unique<int>(20);
  ConcurrentFuture<std::unique_ptr<int>> f = pool.submit(
      [extra = std::make_unique<int>(1)](std::unique_ptr<int> p) {
        *p += *extra;
        return p;
      },
      std::move(owned));
  std::unique_ptr<int> result = std::move(f.result());
  EXPECT_EQ(*result, 21);
}

TEST(ThreadPoolExecutorTest, ReferenceResultsAreCopiedOut) {
  ThreadPoolExecutor pool(1);
  static const std::string kText = "kept";
  ConcurrentFuture<std::string> f = pool.submit([]() -> const std::string& { return kText; });
  EXPECT_EQ(f.result(), "kept");
}

// The natural one-liner: result() on submit's temporary returns the value,
// which the range for keeps alive (a reference into the future's state
// died with the temporary: a use after free under ASan, a crash in most
// plain runs).
TEST(ThreadPoolExecutorTest, RangeForOverTheResultOfATemporarySubmitIsSafe) {
  ThreadPoolExecutor pool(2);
  auto query = [] {
    return std::vector<std::string>{std::string(64, 'a'), std::string(64, 'b')};
  };
  for (int round = 0; round < 100; ++round) {
    std::string seen;
    for (const std::string& row : pool.submit(query).result()) seen += row.substr(0, 1);
    ASSERT_EQ(seen, "ab");
  }
  std::unique_ptr<int> p = pool.submit([] { return std::make_unique<int>(7); }).result();
  EXPECT_EQ(*p, 7);
}

TEST(ThreadPoolExecutorTest, MemberFunctionsTakeTheObjectFirst) {
  struct Counter {
    int add(int n) { return total += n; }
    int total = 1;
  };
  Counter c;
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(pool.submit(&Counter::add, &c, 4).result(), 5);
}

TEST(ThreadPoolExecutorTest, ExceptionIsStoredAndTheWorkerGoesOn) {
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<int> bad = pool.submit([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(bad.result(), std::runtime_error);
  ConcurrentFuture<int> good = pool.submit([] { return 7; });
  EXPECT_EQ(good.result(), 7);
  EXPECT_EQ(pool.thread_count(), 1);
}

// An empty callable is refused at the call and nothing is queued: it used
// to be accepted, and to abort (or crash) the process on the worker that
// ran it; an empty std::function failed its future with
// std::bad_function_call, long after the call.
TEST(ThreadPoolExecutorTest, SubmitRejectsAnEmptyCallableAndQueuesNothing) {
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(thrown_what<std::invalid_argument>(
                [&] { (void)pool.submit(absl::AnyInvocable<int()>()); }),
            "Executor::submit: fn is empty");
  int (*null_fn)(int) = nullptr;
  EXPECT_THROW((void)pool.submit(null_fn, 1), std::invalid_argument);
  EXPECT_THROW((void)pool.submit(std::function<void()>()), std::invalid_argument);
  struct Job {
    int run() { return 1; }
  };
  Job job;
  int (Job::*null_method)() = nullptr;
  EXPECT_THROW((void)pool.submit(null_method, &job), std::invalid_argument);
  CancellationSource source;
  EXPECT_THROW((void)pool.submit(source.token(), absl::AnyInvocable<void(CancellationToken)>()),
               std::invalid_argument);
  EXPECT_EQ(pool.stats().submitted, 0u);
  EXPECT_EQ(pool.submit([] { return 3; }).result(), 3);
}

TEST(ThreadPoolExecutorTest, NegativeMaxWorkersThrowsInvalidArgument) {
  EXPECT_THROW(ThreadPoolExecutor(-1), std::invalid_argument);
  EXPECT_THROW(ThreadPoolExecutor(ThreadPoolExecutor::Options{.max_workers = -3}),
               std::invalid_argument);
}

TEST(ThreadPoolExecutorTest, ZeroMaxWorkersMeansMinOf32AndCoresPlusFour) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  int expected = static_cast<int>(std::min(32u, cores + 4));
  EXPECT_EQ(ThreadPoolExecutor::default_max_workers(), expected);
  ThreadPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), expected);
}

TEST(ThreadPoolExecutorTest, WorkersStartLazilyOnePerSubmitUpToMaxWorkers) {
  ThreadPoolExecutor pool(3);
  EXPECT_EQ(pool.thread_count(), 0) << "no worker before the first submit";
  Gate gate;
  std::vector<ConcurrentFuture<void>> fs;
  for (int i = 1; i <= 3; ++i) {
    fs.push_back(pool.submit([&gate] { gate.wait(); }));
    EXPECT_EQ(pool.thread_count(), i) << "every worker is busy, so each submit starts one";
  }
  fs.push_back(pool.submit([&gate] { gate.wait(); }));
  EXPECT_EQ(pool.thread_count(), 3) << "never more than max_workers";
  gate.open();
  for (auto& f : fs) f.result();
  EXPECT_EQ(pool.thread_count(), 3);
}

TEST(ThreadPoolExecutorTest, IdleWorkerIsReusedInsteadOfStartingAnother) {
  ThreadPoolExecutor pool(4);
  pool.submit([] {}).result();
  ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 1; }));
  for (int i = 0; i < 5; ++i) {
    pool.submit([] {}).result();
    ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 1; }));
  }
  EXPECT_EQ(pool.thread_count(), 1);
}

TEST(ThreadPoolExecutorTest, ASubmitResultLoopRunsOnOneWorker) {
  // CPython's test_idle_thread_reuse, without waiting for the worker to
  // look idle: the next submit comes as soon as result() returns, while
  // the worker that completed it has not gone back to the queue yet.
  for (int round = 0; round < 20; ++round) {
    ThreadPoolExecutor pool(4);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(pool.submit([i] { return 2 * i; }).result(), 2 * i);
    EXPECT_EQ(pool.thread_count(), 1) << "round " << round;
    // A failing call is the same.
    for (int i = 0; i < 3; ++i) {
      EXPECT_THROW(pool.submit([] { throw std::runtime_error("x"); }).result(),
                   std::runtime_error);
    }
    EXPECT_EQ(pool.thread_count(), 1) << "round " << round;
  }
}

TEST(ThreadPoolExecutorTest, ACallRunInlineInsideATaskDoesNotCountItsWorkerAsAboutToBeFree) {
  // The task completes an InlineExecutor's call and goes on to wait for a
  // task of its own pool: that one needs the second worker.
  for (int round = 0; round < 20; ++round) {
    ThreadPoolExecutor pool(2);
    InlineExecutor inline_executor;
    ConcurrentFuture<int> outer = pool.submit([&] {
      int a = inline_executor.submit([] { return 40; }).result();
      return a + pool.submit([] { return 2; }).result(absl::Seconds(10));
    });
    EXPECT_EQ(outer.result(absl::Seconds(60)), 42) << "round " << round;
    EXPECT_EQ(pool.thread_count(), 2) << "round " << round;
  }
}

TEST(ThreadPoolExecutorTest, ADoneCallbackThatWaitsForItsOwnPoolGetsAnotherWorker) {
  // The callback runs on the worker that completed the future, after the
  // completion: that worker is not free while it runs (as in Python).
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> seen{0};
    Gate go;
    Gate done;
    ThreadPoolExecutor pool(2);  // joined before the gates die
    ConcurrentFuture<int> first = pool.submit([&] {
      go.wait();  // the callback is registered by then: the worker runs it
      return 1;
    });
    first.add_done_callback([&](ConcurrentFuture<int>& f) {
      try {
        seen = f.result() + pool.submit([] { return 1; }).result(absl::Seconds(10));
      } catch (const TimeoutError&) {
        seen = -1;  // no worker for the nested task
      }
      done.open();
    });
    go.open();
    done.wait();
    EXPECT_EQ(seen.load(), 2) << "round " << round;
  }
}

TEST(ThreadPoolExecutorTest, ABurstAfterACompletionStillStartsWorkers) {
  // The worker about to be free takes one task of the burst, not all: the
  // three tasks wait for each other, so they deadlock unless three run.
  ThreadPoolExecutor pool(3);
  pool.submit([] {}).result();
  Gate all;
  std::atomic<int> arrived{0};
  auto meet = [&] {
    if (++arrived == 3) all.open();
    all.wait();
  };
  std::vector<ConcurrentFuture<void>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(pool.submit(meet));
  for (auto& f : fs) f.result();
  EXPECT_EQ(pool.thread_count(), 3);
}

TEST(ThreadPoolExecutorTest, TwoTasksThatNeedEachOtherRunInParallel) {
  // Each waits for the other to arrive: deadlocks unless both run at once.
  ThreadPoolExecutor pool(2);
  Gate both;
  std::atomic<int> arrived{0};
  auto meet = [&] {
    if (++arrived == 2) both.open();
    both.wait();
  };
  auto a = pool.submit(meet);
  auto b = pool.submit(meet);
  a.result();
  b.result();
}

TEST(ThreadPoolExecutorTest, ThreadsAreNamedPrefixUnderscoreIndex) {
  ThreadPoolExecutor pool({.max_workers = 2, .thread_name_prefix = "db"});
  Gate gate;
  auto a = pool.submit([&] {
    gate.wait();
    return current_thread_name();
  });
  auto b = pool.submit([&] {
    gate.wait();
    return current_thread_name();
  });
  gate.wait_arrived(2);  // both running, so on two workers
  gate.open();
  std::vector<std::string> names = {a.result(), b.result()};
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"db_0", "db_1"}));
}

TEST(ThreadPoolExecutorTest, LongPrefixIsCutToFifteenCharactersKeepingTheIndex) {
  ThreadPoolExecutor pool({.max_workers = 1, .thread_name_prefix = "a_very_long_pool_name"});
  EXPECT_EQ(pool.submit(current_thread_name).result(), "a_very_long_p_0");
}

TEST(ThreadPoolExecutorTest, DefaultNamesStartWithEddyPool) {
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(pool.submit(current_thread_name).result().rfind("eddy-pool-", 0), 0u);
}

TEST(ThreadPoolExecutorTest, InitializerRunsOnEachWorkerBeforeItsTasks) {
  thread_local bool initialized = false;
  std::atomic<int> calls{0};
  ThreadPoolExecutor pool({.max_workers = 2, .initializer = [&calls] {
                             initialized = true;
                             ++calls;
                           }});
  Gate gate;
  auto a = pool.submit([&] {
    gate.wait();
    return initialized;
  });
  auto b = pool.submit([&] {
    gate.wait();
    return initialized;
  });
  gate.wait_arrived(2);  // both running, so both workers are initialized
  gate.open();
  EXPECT_TRUE(a.result());
  EXPECT_TRUE(b.result());
  EXPECT_EQ(calls.load(), 2);
}

// Whether this machine lets a thread take SCHED_BATCH (a sandbox may not).
bool batch_policy_available() {
  bool ok = false;
  std::thread probe([&ok] {
    sched_param param{};
    ok = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
  });
  probe.join();
  return ok;
}

TEST(ThreadPoolExecutorTest, WorkersRunUnderBatchSchedulingByDefault) {
  if (!batch_policy_available()) GTEST_SKIP() << "SCHED_BATCH is not available here";
  const int submitter_policy = sched_getscheduler(0);
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(pool.submit([] { return sched_getscheduler(0); }).result(), SCHED_BATCH);
  EXPECT_EQ(sched_getscheduler(0), submitter_policy) << "the submitting thread keeps its policy";
}

TEST(ThreadPoolExecutorTest, BatchSchedulingOffKeepsTheDefaultPolicy) {
  ThreadPoolExecutor pool({.max_workers = 1, .batch_scheduling = false});
  EXPECT_EQ(pool.submit([] { return sched_getscheduler(0); }).result(), SCHED_OTHER);
}

TEST(ThreadPoolExecutorTest, WorkersStartedFromARealTimeThreadStayRealTime) {
  if (!batch_policy_available()) GTEST_SKIP() << "SCHED_BATCH is not available here";
  // Workers start on the submitting thread and inherit its policy; one the
  // user chose is left alone. A real-time policy needs privileges: Bazel's
  // sandbox lacks them (skipped), the test binary run as root has them.
  int policy = -1;
  std::thread submitter([&policy] {
    sched_param param{};
    param.sched_priority = sched_get_priority_min(SCHED_RR);
    if (pthread_setschedparam(pthread_self(), SCHED_RR, &param) != 0) return;
    ThreadPoolExecutor pool(1);
    policy = pool.submit([] { return sched_getscheduler(0); }).result();
  });
  submitter.join();
  if (policy == -1) GTEST_SKIP() << "SCHED_RR needs privileges this process lacks";
  EXPECT_EQ(policy, SCHED_RR);
}

TEST(ThreadPoolExecutorTest, InitializerRunsAfterThePolicyIsSetAndMayChangeIt) {
  if (!batch_policy_available()) GTEST_SKIP() << "SCHED_BATCH is not available here";
  std::atomic<int> seen_by_initializer{-1};
  ThreadPoolExecutor pool({.max_workers = 1, .initializer = [&seen_by_initializer] {
                             seen_by_initializer = sched_getscheduler(0);
                             sched_param param{};
                             pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
                           }});
  EXPECT_EQ(pool.submit([] { return sched_getscheduler(0); }).result(), SCHED_OTHER);
  EXPECT_EQ(seen_by_initializer.load(), SCHED_BATCH);
}

// An empty std::function as the initializer means no initializer, as the
// default does: it used to be wrapped into one that threw
// std::bad_function_call on the first worker, which broke the pool.
TEST(ThreadPoolExecutorTest, AnEmptyInitializerMeansNone) {
  LogCapture log;
  std::function<void()> none;
  ThreadPoolExecutor pool({.max_workers = 1, .initializer = none});
  EXPECT_EQ(pool.submit([] { return 1; }).result(absl::Seconds(60)), 1);
  EXPECT_FALSE(pool.broken());

  ThreadPoolExecutor::Options options;
  options.initializer = std::function<void()>();
  ThreadPoolExecutor assigned(std::move(options));
  EXPECT_EQ(assigned.submit([] { return 2; }).result(absl::Seconds(60)), 2);
  EXPECT_FALSE(assigned.broken());

  void (*null_fn)() = nullptr;
  ThreadPoolExecutor by_pointer({.max_workers = 1, .initializer = null_fn});
  EXPECT_EQ(by_pointer.submit([] { return 3; }).result(absl::Seconds(60)), 3);
  EXPECT_EQ(log.size(), 0u);

  // A std::function that holds something still runs.
  std::atomic<int> calls{0};
  std::function<void()> counting = [&calls] { ++calls; };
  ThreadPoolExecutor counted({.max_workers = 1, .initializer = counting});
  counted.submit([] {}).result(absl::Seconds(60));
  EXPECT_EQ(calls.load(), 1);
}

TEST(ThreadPoolExecutorTest, InitializerFailureBreaksThePool) {
  LogCapture log;
  ThreadPoolExecutor pool({.max_workers = 1, .initializer = [] {
                             throw std::runtime_error("no database");
                           }});
  ConcurrentFuture<int> pending = pool.submit([] { return 1; });
  EXPECT_THROW(pending.result(), BrokenExecutorError) << "queued work fails";
  EXPECT_TRUE(pool.broken());
  EXPECT_THROW(pool.submit([] { return 2; }), BrokenExecutorError) << "later submits fail";
  EXPECT_EQ(log.count("initializer"), 1u);
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(r.completed, 0u);
  expect_report_balanced(r);
}

// Python: concurrent/futures/thread.py submit() checks _broken before
// _shutdown (test_init.py test_initializer covers the broken pool before shutdown)
TEST(ThreadPoolExecutorTest, ABrokenPoolThatIsShutDownStillRefusesWithBrokenExecutorError) {
  LogCapture log;
  ThreadPoolExecutor pool({.max_workers = 1, .initializer = [] {
                             throw std::runtime_error("no database");
                           }});
  ConcurrentFuture<int> pending = pool.submit([] { return 1; });
  EXPECT_THROW(pending.result(), BrokenExecutorError);
  pool.shutdown();
  EXPECT_THROW(pool.submit([] { return 2; }), BrokenExecutorError)
      << "the reason it is unusable, not merely that it was shut down";
}

TEST(ThreadPoolExecutorTest, SubmitAfterShutdownThrowsExecutorShutdownError) {
  ThreadPoolExecutor pool(1);
  pool.shutdown();
  EXPECT_THROW(pool.submit([] {}), ExecutorShutdownError);
  EXPECT_THROW(pool.submit([] { return 1; }), ExecutorShutdownError);
}

TEST(ThreadPoolExecutorTest, ShutdownWaitRunsEveryQueuedTaskAndJoins) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  auto first = pool.submit([&] {
    gate.wait();
    ++ran;
  });
  gate.wait_arrived(1);
  std::vector<ConcurrentFuture<void>> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(pool.submit([&] { ++ran; }));

  ShutdownReport early = pool.shutdown(/*wait=*/false);
  EXPECT_EQ(early.running, 1u);
  EXPECT_EQ(early.queued, 10u);
  expect_report_balanced(early);

  gate.open();
  ShutdownReport r = pool.shutdown(/*wait=*/true);
  EXPECT_EQ(ran.load(), 11) << "a waiting shutdown runs what is queued";
  EXPECT_EQ(r.completed, 11u);
  EXPECT_EQ(r.running, 0u);
  EXPECT_EQ(r.queued, 0u);
  for (auto& f : rest) EXPECT_TRUE(f.done());
}

TEST(ThreadPoolExecutorTest, ShutdownCancelFuturesCancelsQueuedAndLetsRunningFinish) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto running = pool.submit([&] {
    gate.wait();
    return 1;
  });
  gate.wait_arrived(1);
  std::atomic<int> ran{0};
  std::vector<ConcurrentFuture<void>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([&] { ++ran; }));

  ShutdownReport r = pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_EQ(r.cancelled, 5u);
  EXPECT_EQ(r.running, 1u);
  EXPECT_EQ(r.queued, 0u);
  for (auto& f : queued) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());

  gate.open();
  EXPECT_EQ(running.result(), 1) << "the running task finishes";
  ShutdownReport end = pool.shutdown();
  EXPECT_EQ(end.completed, 1u);
  EXPECT_EQ(end.cancelled, 5u);
  EXPECT_EQ(ran.load(), 0);
  expect_report_balanced(end);
}

TEST(ThreadPoolExecutorTest, CancelledQueuedTaskNeverRuns) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  std::atomic<bool> ran{false};
  auto f = pool.submit([&] { ran = true; });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW(f.result(), CancelledError);
  gate.open();
  ShutdownReport r = pool.shutdown();
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(r.cancelled, 1u);
  EXPECT_EQ(r.completed, 1u);
}

TEST(ThreadPoolExecutorTest, RunningTaskCannotBeCancelled) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto f = pool.submit([&] {
    gate.wait();
    return 3;
  });
  gate.wait_arrived(1);
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel());
  gate.open();
  EXPECT_EQ(f.result(), 3);
}

TEST(ThreadPoolExecutorTest, ShutdownIsIdempotentAndSafeFromSeveralThreads) {
  ThreadPoolExecutor pool(2);
  Gate gate;
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) {
    pool.submit([&] {
      gate.wait();
      ++ran;
    });
  }
  std::vector<std::thread> closers;
  std::vector<ShutdownReport> reports(4);
  for (int i = 0; i < 4; ++i) {
    closers.emplace_back([&, i] { reports[i] = pool.shutdown(/*wait=*/true); });
  }
  gate.open();
  for (auto& t : closers) t.join();
  for (const ShutdownReport& r : reports) {
    EXPECT_EQ(r.completed, 20u) << "every waiting shutdown returns after all work is done";
    EXPECT_EQ(r.running, 0u);
  }
  EXPECT_EQ(ran.load(), 20);
  EXPECT_EQ(pool.shutdown().completed, 20u);
}

TEST(ThreadPoolExecutorTest, DestructorRunsQueuedTasksAndJoins) {
  std::atomic<int> ran{0};
  {
    ThreadPoolExecutor pool(1);
    for (int i = 0; i < 50; ++i) pool.submit([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(ThreadPoolExecutorTest, ShutdownFromAPoolTaskDoesNotWaitForItself) {
  ThreadPoolExecutor pool(1);
  ConcurrentFuture<ShutdownReport> f = pool.submit([&] { return pool.shutdown(/*wait=*/true); });
  ShutdownReport inside = f.result();
  EXPECT_EQ(inside.running, 1u) << "the calling task is still running";
  EXPECT_THROW(pool.submit([] {}), ExecutorShutdownError);
}

TEST(ThreadPoolExecutorTest, TasksSubmittedFromTasksRun) {
  ThreadPoolExecutor pool(2);
  auto outer = pool.submit([&] { return pool.submit([] { return 9; }); });
  EXPECT_EQ(outer.result().result(), 9);
}

// --- queue bound ------------------------------------------------------------

TEST(ThreadPoolExecutorTest, BoundedSubmitBlocksUntilThereIsRoom) {
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] { return 1; });  // fills the queue
  EXPECT_EQ(pool.stats().queued, 1u);

  std::atomic<bool> submitted{false};
  std::optional<ConcurrentFuture<int>> third;
  std::thread producer([&] {
    third = pool.submit([] { return 3; });
    submitted = true;
  });
  EXPECT_FALSE(submitted.load()) << "no room until the worker takes the queued task";
  EXPECT_EQ(pool.stats().submitted, 2u);
  gate.open();
  producer.join();
  EXPECT_TRUE(submitted.load());
  EXPECT_EQ(queued.result(), 1);
  EXPECT_EQ(third->result(), 3);
}

TEST(ThreadPoolExecutorTest, BlockedSubmitThrowsWhenThePoolShutsDown) {
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] {});
  std::atomic<bool> threw{false};
  std::thread producer([&] {
    try {
      pool.submit([] {});
    } catch (const ExecutorShutdownError&) {
      threw = true;
    }
  });
  ShutdownReport r = pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  producer.join();
  EXPECT_TRUE(threw.load());
  EXPECT_TRUE(queued.cancelled());
  gate.open();
  r = pool.shutdown();
  EXPECT_EQ(r.submitted, 2u);
  expect_report_balanced(r);
}

TEST(ThreadPoolExecutorTest, SubmitFromLoopCompletesOnALaterTurnWhenThereIsRoom) {
  ManualScheduler loop;
  ThreadPoolExecutor pool(1);
  Future<ConcurrentFuture<int>> admitted = pool.submit_from_loop([] { return 4; });
  EXPECT_FALSE(admitted.done()) << "completes on a later turn, never inline";
  ASSERT_TRUE(wait_until([&] {
    loop.run_pending();
    return admitted.done();
  }));
  EXPECT_EQ(admitted.result().result(), 4);
}

TEST(ThreadPoolExecutorTest, SubmitFromLoopParksWhenFullAndCompletesOnAdmission) {
  ManualScheduler loop;
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] { return 1; });

  Future<ConcurrentFuture<int>> admitted = pool.submit_from_loop([] { return 2; });
  loop.run_pending();
  EXPECT_FALSE(admitted.done()) << "the queue is full: the loop thread did not block, it waits";
  EXPECT_EQ(pool.stats().queued, 2u) << "the parked task counts as queued";

  gate.open();
  ASSERT_TRUE(wait_until([&] {
    loop.run_pending();
    return admitted.done();
  }));
  EXPECT_EQ(admitted.result().result(), 2);
  EXPECT_EQ(queued.result(), 1);
}

TEST(ThreadPoolExecutorTest, ShutdownCancelFuturesCancelsParkedTasksAndSignalsTheirAdmission) {
  ManualScheduler loop;
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  auto running = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  auto queued = pool.submit([] {});
  Future<ConcurrentFuture<int>> admitted = pool.submit_from_loop([] { return 2; });

  ShutdownReport r = pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_EQ(r.cancelled, 2u);
  loop.run_pending();
  ASSERT_TRUE(admitted.done());
  EXPECT_TRUE(admitted.result().cancelled());
  gate.open();
  pool.shutdown();
}

TEST(ThreadPoolExecutorTest, SubmitFromLoopRejectsAnEmptyCallableAndQueuesNothing) {
  ManualScheduler loop;
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(thrown_what<std::invalid_argument>(
                [&] { (void)pool.submit_from_loop(absl::AnyInvocable<int()>()); }),
            "Executor::submit_from_loop: fn is empty");
  void (*null_fn)() = nullptr;
  EXPECT_THROW((void)pool.submit_from_loop(null_fn), std::invalid_argument);
  EXPECT_THROW((void)pool.submit_from_loop(std::function<int()>()), std::invalid_argument);
  EXPECT_EQ(loop.run_pending(), 0);
  EXPECT_EQ(pool.stats().submitted, 0u);
}

TEST(ThreadPoolExecutorTest, SubmitFromLoopWithoutALoopThrowsInvalidStateError) {
  ThreadPoolExecutor pool(1);
  EXPECT_THROW(pool.submit_from_loop([] {}), InvalidStateError);
}

// --- cancellation tokens ----------------------------------------------------

TEST(ThreadPoolExecutorTest, CallableTakingATokenGetsOneThatIsNeverCancelled) {
  ThreadPoolExecutor pool(1);
  auto f = pool.submit([](CancellationToken token, int x) {
    return !token.cancelled() && !token.can_be_cancelled() ? x : -1;
  }, 5);
  EXPECT_EQ(f.result(), 5);
}

TEST(ThreadPoolExecutorTest, TokenCancelledBeforeTheTaskStartsCancelsItsFuture) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  CancellationSource source;
  std::atomic<bool> ran{false};
  auto f = pool.submit(source.token(), [&] { ran = true; });
  source.cancel();
  gate.open();
  EXPECT_THROW(f.result(), CancelledError);
  EXPECT_FALSE(ran.load());
}

TEST(ThreadPoolExecutorTest, TaskQueuedPastItsDeadlineFailsWithTimeoutErrorWithoutRunning) {
  ThreadPoolExecutor pool(1);
  CancellationSource source(Deadline::after(absl::ZeroDuration()));
  std::atomic<bool> ran{false};
  auto f = pool.submit(source.token(), [&] { ran = true; });
  EXPECT_THROW(f.result(), TimeoutError);
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(pool.shutdown().cancelled, 1u);
}

TEST(ThreadPoolExecutorTest, RunningTaskSeesItsTokenCancelled) {
  ThreadPoolExecutor pool(1);
  CancellationSource source;
  auto f = pool.submit(source.token(), [](CancellationToken token) {
    // A cancellable wait: returns as soon as cancel() is called.
    return token.wait_for_cancel(absl::InfiniteDuration());
  });
  ASSERT_TRUE(wait_until([&] { return f.running(); }));
  source.cancel();
  EXPECT_TRUE(f.result());
}

TEST(ThreadPoolExecutorTest, MemberFunctionTakesTheTokenAfterTheObject) {
  struct Job {
    int run(CancellationToken token, int x) { return token.cancel_requested() ? -1 : x * 2; }
  };
  Job job;
  ThreadPoolExecutor pool(1);
  CancellationSource source;
  EXPECT_EQ(pool.submit(source.token(), &Job::run, &job, 21).result(), 42);
}

TEST(ThreadPoolExecutorTest, ThrowIfCancelledThrowsTheMatchingError) {
  CancellationSource source;
  CancellationToken token = source.token();
  EXPECT_NO_THROW(token.throw_if_cancelled());
  source.cancel();
  EXPECT_THROW(token.throw_if_cancelled(), CancelledError);
  CancellationSource expired(Deadline::after(absl::ZeroDuration()));
  EXPECT_THROW(expired.token().throw_if_cancelled(), TimeoutError);
  EXPECT_FALSE(CancellationToken().cancelled());
}

// A moved-from source used to crash (a null dereference) in cancel(),
// cancel_requested() and deadline(), and token() handed out a token that
// nothing could ever cancel. Each throws InvalidStateError now.
TEST(CancellationSourceTest, AMovedFromSourceThrowsInvalidStateError) {
  CancellationSource source;
  CancellationToken token = source.token();
  CancellationSource moved = std::move(source);
  auto empty = [](const std::string& op) {
    return "CancellationSource::" + op + ": the handle is empty (moved from)";
  };
  // NOLINTBEGIN(bugprone-use-after-move)
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)source.cancel(); }), empty("cancel"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)source.cancel_requested(); }),
            empty("cancel_requested"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)source.deadline(); }), empty("deadline"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)source.token(); }), empty("token"));
  // NOLINTEND(bugprone-use-after-move)
  EXPECT_FALSE(token.cancel_requested());
  EXPECT_TRUE(moved.cancel());
  EXPECT_TRUE(token.cancel_requested()) << "the source it was moved to still signals";
}

TEST(CancellationSourceTest, ValidIsFalseOnlyForAMovedFromSource) {
  CancellationSource source;
  EXPECT_TRUE(source.valid());
  CancellationSource moved = std::move(source);
  EXPECT_FALSE(source.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.valid());
}

// --- the report -------------------------------------------------------------

TEST(ThreadPoolExecutorTest, ReportAccountsForEveryTask) {
  ThreadPoolExecutor pool(2);
  std::vector<ConcurrentFuture<void>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(pool.submit([] {}));
  for (int i = 0; i < 100; i += 3) fs[i].cancel();
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.submitted, 100u);
  EXPECT_EQ(r.running, 0u);
  EXPECT_EQ(r.queued, 0u);
  uint64_t cancelled = 0;
  for (auto& f : fs) cancelled += f.cancelled();
  EXPECT_EQ(r.cancelled, cancelled);
  EXPECT_EQ(r.completed, 100u - cancelled);
}

}  // namespace
}  // namespace eddy
