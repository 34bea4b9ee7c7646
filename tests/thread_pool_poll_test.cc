// ThreadPoolExecutor polls its queue for a while before a worker sleeps,
// but only while polling pays: sporadic work (a task every few
// milliseconds) stops the polling, so an idle pool does not burn a core
// after every task; a fast stream of tasks starts it again. The counts
// come from the pool's own bookkeeping (no timing is asserted).
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "gtest/gtest.h"

namespace eddy {

struct ThreadPoolExecutorTestPeer {
  static uint64_t polls(ThreadPoolExecutor& pool) {
    std::lock_guard<ThreadPoolExecutor::QueueMutex> lock(pool.mu_);
    return pool.polls_;
  }
  static uint64_t polls_run_out(ThreadPoolExecutor& pool) {
    std::lock_guard<ThreadPoolExecutor::QueueMutex> lock(pool.mu_);
    return pool.polls_run_out_;
  }
};

namespace {

using Peer = ThreadPoolExecutorTestPeer;

// Not a timing assertion: only turns a hang into a failure.
const absl::Duration kBackstop = absl::Seconds(60);

// Waits for `f` by polling it, so the submitter answers within a
// microsecond or so, like a loop thread that polls its inbox.
template <class T>
T spin_result(ConcurrentFuture<T>& f) {
  while (!f.done()) std::this_thread::yield();
  return f.result(kBackstop);
}

TEST(ThreadPoolPollTest, SporadicTasksStopThePolling) {
  ThreadPoolExecutor pool(1);
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(pool.submit([i] { return i; }).result(kBackstop), i);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  // The first poll runs out (nothing comes for 3 ms); after that the
  // worker goes straight to sleep.
  EXPECT_LE(Peer::polls_run_out(pool), 4u) << "of " << kTasks << " sporadic tasks";
  EXPECT_LE(Peer::polls(pool), 8u);
}

TEST(ThreadPoolPollTest, AStreamOfTasksAfterAQuietSpellPollsAgain) {
  ThreadPoolExecutor pool(1);
  for (int i = 0; i < 20; ++i) {
    pool.submit([] {}).result(kBackstop);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  const uint64_t polls_before = Peer::polls(pool);
  constexpr int kTrips = 2'000;
  for (int i = 0; i < kTrips; ++i) {
    ConcurrentFuture<int> f = pool.submit([i] { return i; });
    ASSERT_EQ(spin_result(f), i);
  }
  // The next task comes within a poll of the last one's end: a couple of
  // such quick wake-ups in a row and the worker polls again. (How many of
  // its polls then find work depends on whether the two threads share a
  // core at the time: one that runs out backs off again, by design.)
  const uint64_t polls = Peer::polls(pool) - polls_before;
  EXPECT_GE(polls, 1u) << "polls in a stream of " << kTrips << " tasks";
}


// Pins the calling thread to `cpu`; false where the sandbox forbids it.
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

// The submitter and the worker on one core: while the worker polls, the
// submitter cannot run, so every poll runs out and holds up the next task
// by the poll's length. After a few such polls the pool polls only once
// every 2^k tasks.
TEST(ThreadPoolPollTest, PollsThatHoldUpTheSubmittersCoreBackOff) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof(original), &original), 0);
  const int cpu = sched_getcpu();
  if (cpu < 0 || !pin_to(cpu)) GTEST_SKIP() << "cannot pin threads here";
  {
    ThreadPoolExecutor pool(ThreadPoolExecutor::Options{
        .max_workers = 1, .initializer = [cpu] { pin_to(cpu); }});
    constexpr int kTrips = 500;
    for (int i = 0; i < kTrips; ++i) {
      ConcurrentFuture<int> f = pool.submit([i] { return i; });
      ASSERT_EQ(spin_result(f), i);
    }
    // Without the back-off, every other trip would poll and run out.
    EXPECT_LE(Peer::polls_run_out(pool), 30u) << "of " << kTrips << " trips on one core";
  }
  sched_setaffinity(0, sizeof(original), &original);
}

}  // namespace
}  // namespace eddy
