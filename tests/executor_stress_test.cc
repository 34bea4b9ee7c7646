// ThreadPoolExecutor under contention: 8 submitting threads, random cancels
// (right after submit, and of older futures that may already be running),
// futures dropped right after submit (fire and forget) and a concurrent
// shutdown(cancel_futures). Every task is accounted for exactly once: it
// ran once and its future has a value, or it never ran and its future was
// cancelled, or its submit threw. Bounded and clean under tsan; the task
// count shrinks under sanitizers (EDDY_STRESS_TASKS overrides).
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"

namespace eddy {
namespace {

constexpr int kThreads = 8;

int tasks_per_thread() {
  if (const char* env = std::getenv("EDDY_STRESS_TASKS")) return std::atoi(env);
#ifdef EDDY_SANITIZED
  return 25'000;
#else
  return 100'000;
#endif
}

// kDropped: fire and forget, the future dropped right after submit (its
// task may already be running): it runs once, unless a shutdown with
// cancel_futures finds it still queued.
enum Outcome : uint8_t { kNone = 0, kValue = 1, kCancelled = 2, kRejected = 3, kDropped = 4 };

struct Ledger {
  explicit Ledger(size_t n) : runs(n), outcomes(n), callbacks(n) {}
  std::vector<std::atomic<uint8_t>> runs;       // times the task body ran
  std::vector<std::atomic<uint8_t>> outcomes;   // what its future ended as
  std::vector<std::atomic<uint8_t>> callbacks;  // times its done callback ran
};

void run_stress(bool with_shutdown) {
  const int per_thread = tasks_per_thread();
  const size_t total = static_cast<size_t>(per_thread) * kThreads;
  Ledger ledger(total);
  ThreadPoolExecutor pool(4);
  std::atomic<size_t> accepted{0};

  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::vector<ConcurrentFuture<void>> recent;
      for (int i = 0; i < per_thread; ++i) {
        size_t id = static_cast<size_t>(t) * per_thread + i;
        std::optional<ConcurrentFuture<void>> f;
        try {
          f = pool.submit([&ledger, id] { ledger.runs[id].fetch_add(1); });
        } catch (const ExecutorShutdownError&) {
          ledger.outcomes[id] = kRejected;
          continue;
        }
        accepted.fetch_add(1, std::memory_order_relaxed);
        if (rng() % 4 == 0) {
          ledger.outcomes[id] = kDropped;
          continue;
        }
        f->add_done_callback([&ledger, id](ConcurrentFuture<void>& done) {
          ledger.callbacks[id].fetch_add(1);
          ledger.outcomes[id] = done.cancelled() ? kCancelled : kValue;
        });
        uint32_t dice = rng() % 16;
        if (dice == 0) f->cancel();  // most likely still queued
        if (dice == 1 && !recent.empty()) recent[rng() % recent.size()].cancel();  // may be running
        if (recent.size() < 64) {
          recent.push_back(std::move(*f));
        } else {
          recent[rng() % recent.size()] = std::move(*f);
        }
      }
    });
  }
  std::thread closer;
  if (with_shutdown) {
    closer = std::thread([&] {
      while (accepted.load(std::memory_order_relaxed) < total / 2) std::this_thread::yield();
      pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
    });
  }
  for (auto& p : producers) p.join();
  if (closer.joinable()) closer.join();
  ShutdownReport r = pool.shutdown();

  uint64_t ran = 0, cancelled = 0, rejected = 0;
  for (size_t id = 0; id < total; ++id) {
    uint8_t runs = ledger.runs[id].load();
    uint8_t outcome = ledger.outcomes[id].load();
    ASSERT_LE(runs, 1) << "task " << id << " ran twice";
    if (outcome == kRejected) {
      ASSERT_EQ(runs, 0);
      ASSERT_EQ(ledger.callbacks[id].load(), 0);
      ++rejected;
      continue;
    }
    if (outcome == kDropped) {
      ASSERT_EQ(ledger.callbacks[id].load(), 0);
      if (!with_shutdown) {
        ASSERT_EQ(runs, 1) << "fire-and-forget task " << id << " never ran";
      }
      ++(runs == 1 ? ran : cancelled);
      continue;
    }
    ASSERT_EQ(ledger.callbacks[id].load(), 1) << "task " << id << " lost or completed twice";
    if (outcome == kValue) {
      ASSERT_EQ(runs, 1) << "task " << id << " has a value but never ran";
      ++ran;
    } else {
      ASSERT_EQ(outcome, kCancelled);
      ASSERT_EQ(runs, 0) << "task " << id << " was cancelled but ran";
      ++cancelled;
    }
  }
  EXPECT_EQ(ran + cancelled + rejected, total);
  EXPECT_EQ(r.submitted, ran + cancelled);
  EXPECT_EQ(r.completed, ran);
  EXPECT_EQ(r.cancelled, cancelled);
  EXPECT_EQ(r.running, 0u);
  EXPECT_EQ(r.queued, 0u);
  if (!with_shutdown) {
    EXPECT_EQ(rejected, 0u);
  }
}

TEST(ExecutorStressTest, EightSubmittersWithRandomCancelsCountEveryTaskOnce) {
  run_stress(/*with_shutdown=*/false);
}

TEST(ExecutorStressTest, ConcurrentShutdownWithCancelFuturesLosesNothing) {
  run_stress(/*with_shutdown=*/true);
}

}  // namespace
}  // namespace eddy
