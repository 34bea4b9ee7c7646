// ThreadPoolExecutor's queue and wake-up protocol: submits link tasks in
// without the workers' lock and wake a worker only when none is polling,
// so these tests go after the races that protocol must win. A lost wake-up
// shows as a task that never runs (the backstop in result() turns the hang
// into a failure); a queued task stuck behind a blocked one, as a task that
// cannot finish while the gate is closed. Meant to run under tsan too.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"

namespace eddy {
namespace {

using testing::Gate;
using testing::wait_until;

// Not a timing assertion: only turns a lost wake-up (a hang) into a failure.
const absl::Duration kBackstop = absl::Seconds(60);

int rounds(int plain) {
#ifdef EDDY_SANITIZED
  return plain / 5;
#else
  return plain;
#endif
}

// Starts all `n` workers (they start lazily) and returns once every one is
// asleep, so that the next submit goes through the all-started path.
void start_workers_and_let_them_sleep(ThreadPoolExecutor& pool, int n) {
  Gate gate;
  std::vector<ConcurrentFuture<void>> fs;
  for (int i = 0; i < n; ++i) fs.push_back(pool.submit([&gate] { gate.wait(); }));
  gate.wait_arrived(n);
  gate.open();
  for (auto& f : fs) f.result(kBackstop);
  ASSERT_EQ(pool.thread_count(), n);
  ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == n; }));
}

TEST(ThreadPoolWakeTest, SubmitAndWaitOneAtATimeNeverLosesAWakeUp) {
  // Each task finds its workers in whatever state the last one left them:
  // polling, going to sleep, asleep, or just woken.
  ThreadPoolExecutor pool(2);
  start_workers_and_let_them_sleep(pool, 2);
  for (int i = 0; i < rounds(20'000); ++i) {
    ASSERT_EQ(pool.submit([i] { return i; }).result(kBackstop), i);
  }
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, r.submitted);
}

// A worker stops polling after a while and goes to sleep; a submit that
// lands between the two finds it neither polling nor asleep. Pauses of
// 0-63 us between tasks sweep across that moment (a worker polls for some
// 20-60 us). One worker, so that no other one covers for it.
void submit_at_scattered_moments(ThreadPoolExecutor& pool) {
  start_workers_and_let_them_sleep(pool, 1);
  uint32_t seed = 12345;
  for (int i = 0; i < rounds(20'000); ++i) {
    ASSERT_EQ(pool.submit([i] { return i; }).result(kBackstop), i);
    seed = seed * 1664525u + 1013904223u;
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(seed >> 26);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
}

TEST(ThreadPoolWakeTest, SubmitsAtScatteredMomentsNeverLoseAWakeUp) {
  ThreadPoolExecutor pool(1);
  submit_at_scattered_moments(pool);
}

TEST(ThreadPoolWakeTest, BoundedSubmitsAtScatteredMomentsNeverLoseAWakeUp) {
  // A bounded pool's submits go through the workers' lock.
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  submit_at_scattered_moments(pool);
}

TEST(ThreadPoolWakeTest, TaskSubmittedToSleepingWorkersRuns) {
  ThreadPoolExecutor pool(3);
  start_workers_and_let_them_sleep(pool, 3);
  for (int i = 0; i < rounds(200); ++i) {
    ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 3; })) << "round " << i;
    ASSERT_EQ(pool.submit([] { return 5; }).result(kBackstop), 5) << "round " << i;
  }
}

TEST(ThreadPoolWakeTest, BurstsFromSeveralProducersAllRun) {
  // Bursts of 1..8 tasks from 4 threads at once, with pauses in between in
  // which the workers poll and go to sleep: pushes race each other, the
  // workers' registrations and the pollers' claims.
  ThreadPoolExecutor pool(3);
  start_workers_and_let_them_sleep(pool, 3);
  constexpr int kProducers = 4;
  std::atomic<int64_t> ran{0};
  std::atomic<int64_t> expected{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < rounds(2'000); ++i) {
        int burst = 1 + (i * 7 + p) % 8;
        std::vector<ConcurrentFuture<void>> fs;
        for (int k = 0; k < burst; ++k) fs.push_back(pool.submit([&ran] { ++ran; }));
        expected += burst;
        for (auto& f : fs) f.result(kBackstop);
        if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(ran.load(), expected.load());
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(r.completed, static_cast<uint64_t>(expected.load()) + 3);
}

// The constraint the wake policy must keep: a queued task and an idle
// worker mean the worker runs it now, not after some other task finishes.
// Here the other task never finishes until the queued one has run.
TEST(ThreadPoolWakeTest, QueuedTaskStartsWhileAnotherWorkerIsBlocked) {
  ThreadPoolExecutor pool(2);
  start_workers_and_let_them_sleep(pool, 2);
  for (int i = 0; i < rounds(500); ++i) {
    // Vary what the idle worker is doing when the second task arrives:
    // polling (right after a task), or asleep.
    if (i % 4 == 0) {
      ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 2; }));
    }
    Gate gate;
    ConcurrentFuture<void> blocked = pool.submit([&gate] { gate.wait(); });
    if (i % 2 == 0) gate.wait_arrived(1);  // else: two quick submits
    ConcurrentFuture<int> queued = pool.submit([] { return 1; });
    EXPECT_EQ(queued.result(kBackstop), 1) << "round " << i;
    EXPECT_FALSE(blocked.done());
    gate.open();
    blocked.result(kBackstop);
  }
}

// The race behind it: a submit that pushes while a worker pops the last
// task lands in front of the stub that worker pushes behind it, so the
// queue's back says "empty" with a task queued; the other worker, about to
// sleep, must not believe it. Back-to-back submits, many rounds: the first
// task blocks until the test has the second one's result.
TEST(ThreadPoolWakeTest, ATaskPushedWhileAWorkerTakesTheLastOneStartsOnTheIdleWorker) {
  ThreadPoolExecutor pool(2);
  start_workers_and_let_them_sleep(pool, 2);
  for (int i = 0; i < rounds(5000); ++i) {
    Gate gate;
    ConcurrentFuture<void> blocked = pool.submit([&gate] { gate.wait(); });
    ConcurrentFuture<int> queued = pool.submit([] { return 1; });
    ASSERT_EQ(queued.result(kBackstop), 1) << "round " << i;
    gate.open();
    blocked.result(kBackstop);
  }
}

TEST(ThreadPoolWakeTest, EveryQueuedTaskFindsAnIdleWorkerWhileOthersBlock) {
  // Three blocked tasks occupy three of four workers; the fourth task must
  // still run, whichever worker was polling or asleep.
  ThreadPoolExecutor pool(4);
  start_workers_and_let_them_sleep(pool, 4);
  for (int i = 0; i < rounds(200); ++i) {
    Gate gate;
    std::vector<ConcurrentFuture<void>> blocked;
    for (int k = 0; k < 3; ++k) blocked.push_back(pool.submit([&gate] { gate.wait(); }));
    ConcurrentFuture<int> last = pool.submit([] { return 4; });
    EXPECT_EQ(last.result(kBackstop), 4) << "round " << i;
    gate.wait_arrived(3);
    gate.open();
    for (auto& f : blocked) f.result(kBackstop);
  }
}

// Producers keep submitting while another thread shuts the pool down:
// every submit either throws ExecutorShutdownError or its task runs (a
// waiting shutdown returns only after it did), as Python's submit, which
// takes the shutdown lock.
void shutdown_while_submitting(bool cancel_futures) {
  constexpr int kProducers = 3;
  for (int round = 0; round < rounds(100); ++round) {
    ThreadPoolExecutor pool(2);
    std::atomic<int64_t> ran{0};
    std::atomic<int64_t> accepted{0};
    std::atomic<int> started{0};
    std::vector<std::vector<ConcurrentFuture<void>>> futures(kProducers);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        ++started;
        for (;;) {
          try {
            futures[p].push_back(pool.submit([&ran] { ++ran; }));
            ++accepted;
          } catch (const ExecutorShutdownError&) {
            return;
          }
        }
      });
    }
    ASSERT_TRUE(wait_until([&] { return started.load() == kProducers && accepted.load() > 50; }));
    ShutdownReport r = pool.shutdown(/*wait=*/true, cancel_futures);
    for (auto& t : producers) t.join();
    EXPECT_EQ(r.submitted, static_cast<uint64_t>(accepted.load()));
    EXPECT_EQ(r.running, 0u);
    EXPECT_EQ(r.queued, 0u);
    EXPECT_EQ(r.submitted, r.completed + r.cancelled);
    EXPECT_EQ(r.completed, static_cast<uint64_t>(ran.load()));
    if (!cancel_futures) {
      EXPECT_EQ(r.cancelled, 0u);
    }
    uint64_t cancelled = 0;
    for (auto& fs : futures) {
      for (auto& f : fs) {
        ASSERT_TRUE(f.done()) << "a waiting shutdown leaves no accepted task behind";
        if (f.cancelled()) ++cancelled;
      }
    }
    EXPECT_EQ(cancelled, r.cancelled);
  }
}

TEST(ThreadPoolWakeTest, ShutdownWhileSubmittingRunsEveryAcceptedTask) {
  shutdown_while_submitting(/*cancel_futures=*/false);
}

TEST(ThreadPoolWakeTest, ShutdownCancelWhileSubmittingSettlesEveryAcceptedTask) {
  shutdown_while_submitting(/*cancel_futures=*/true);
}

TEST(ThreadPoolWakeTest, SubmitsRacingTheStartOfWorkersAllRun) {
  // Submits from several threads while the pool is still starting workers
  // (the path under the workers' lock) and right after the last one
  // started (the path without it).
  for (int round = 0; round < rounds(200); ++round) {
    ThreadPoolExecutor pool(3);
    std::atomic<int> ran{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; ++p) {
      producers.emplace_back([&] {
        std::vector<ConcurrentFuture<void>> fs;
        for (int i = 0; i < 20; ++i) fs.push_back(pool.submit([&ran] { ++ran; }));
        for (auto& f : fs) f.result(kBackstop);
      });
    }
    for (auto& t : producers) t.join();
    EXPECT_EQ(ran.load(), 60);
    EXPECT_LE(pool.thread_count(), 3);
  }
}

TEST(ThreadPoolWakeTest, BoundedQueueUnderSeveralProducersRunsEverything) {
  ThreadPoolExecutor pool({.max_workers = 2, .max_queue_size = 2});
  std::atomic<int64_t> ran{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < rounds(5'000); ++i) pool.submit([&ran] { ++ran; });
    });
  }
  for (auto& t : producers) t.join();
  ShutdownReport r = pool.shutdown();
  EXPECT_EQ(ran.load(), 3 * rounds(5'000));
  EXPECT_EQ(r.completed, r.submitted);
}

TEST(ThreadPoolWakeTest, IdleWorkersAreCountedOnceAsleep) {
  ThreadPoolExecutor pool(2);
  start_workers_and_let_them_sleep(pool, 2);
  EXPECT_EQ(pool.idle_workers(), 2);
  Gate gate;
  ConcurrentFuture<void> f = pool.submit([&gate] { gate.wait(); });
  gate.wait_arrived(1);
  ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 1; }))
      << "the claimed sleeper is not idle any more";
  gate.open();
  f.result(kBackstop);
  ASSERT_TRUE(wait_until([&] { return pool.idle_workers() == 2; }));
}

}  // namespace
}  // namespace eddy
