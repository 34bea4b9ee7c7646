// ThreadPoolExecutor under allocation failure: execute() either takes the
// task or throws with the task not taken (the Executor contract), so that a
// caller that gives up on a submit that threw (Executor::map, whose calls
// borrow map's own cancellation token) never has that task run later.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "gtest/gtest.h"
#include "tests/alloc_failure.h"

namespace eddy {
namespace {

using testing::FailAllocation;

// One worker busy, so map's submit starts the second: each allocation of
// map (the worker's start included) fails in turn. A call of a map that
// threw must never run (its token, map's local, is gone by then), and
// nothing is lost: a map that returned ran its call.
TEST(ExecutorAllocFailureTest, AMapWhoseSubmitThrowsRunsNoCallAfterItReturned) {
  bool fired = true;
  int threw = 0;
  for (long n = 0; fired; ++n) {
    ThreadPoolExecutor pool(2);
    std::atomic<bool> release{false};
    std::atomic<bool> map_returned{false};
    std::atomic<int> calls{0};
    std::atomic<int> late_calls{0};
    ConcurrentFuture<void> blocker = pool.submit([&] {
      while (!release.load()) std::this_thread::yield();
    });
    // Lets the busy worker go while map waits (a map whose worker could not
    // start waits for the busy one).
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      release = true;
    });
    bool map_threw = false;
    std::vector<int> results;
    {
      FailAllocation fail(n);
      try {
        results = pool.map(
            [&](int x) {
              ++calls;
              if (map_returned.load()) ++late_calls;
              return x;
            },
            std::vector<int>{7});
      } catch (const std::bad_alloc&) {
        map_threw = true;
      }
      fired = fail.fired();
    }
    map_returned = true;
    releaser.join();
    blocker.result();
    pool.shutdown(true);
    EXPECT_EQ(late_calls.load(), 0) << "a call ran after map threw; failing allocation " << n;
    if (!map_threw) {
      EXPECT_EQ(results, std::vector<int>{7}) << "failing allocation " << n;
      EXPECT_EQ(calls.load(), 1);
    }
    threw += map_threw ? 1 : 0;
  }
  EXPECT_GT(threw, 0) << "no allocation of map failed it: the sweep tested nothing";
}

}  // namespace
}  // namespace eddy
