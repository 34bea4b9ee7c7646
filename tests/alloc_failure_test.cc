// Allocation failure (std::bad_alloc) inside library calls: each test fails
// every allocation of a call in turn (tests/alloc_failure.h) and checks
// that the call either succeeds or throws leaving things usable: no
// corrupted timer heap, no lost or never-woken waiter, no leak, no
// std::terminate, and the real error reported.
//
// This binary replaces the global operator new: keep it a cc_test of its
// own.
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/internal/timer_queue.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/time.h"
#include "eddy/sync/condition.h"
#include "eddy/sync/event.h"
#include "eddy/sync/lock.h"
#include "eddy/sync/queue.h"
#include "eddy/sync/semaphore.h"
#include "gtest/gtest.h"
#include "tests/alloc_failure.h"
#include "tests/live_count.h"
#include "tests/log_capture.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using internal::TimerQueue;
using testing::FailAllocation;
using testing::Tracked;

// Enough to cover every allocation of the calls below; a sweep that gets
// here never stopped failing.
constexpr long kMaxSweep = 200;

MonotonicTime at_ms(int64_t ms) { return MonotonicTime::from_nanoseconds(ms * 1000000); }

// Runs call() with the n-th allocation from now failing: whether the call
// threw std::bad_alloc, and whether the armed failure fired at all (a sweep
// over n stops once it did not: the call made fewer allocations).
struct Attempt {
  bool threw;
  bool fired;
};
template <class Call>
Attempt with_failing_allocation(long n, Call&& call) {
  FailAllocation fail(n);
  bool threw = false;
  try {
    call();
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  return {threw, fail.fired()};
}

// Pops every due timer, runs it, and returns how many ran.
int fire_all(TimerQueue& q) {
  int ran = 0;
  absl::AnyInvocable<void()> fn;
  while (q.pop_due(at_ms(1000000), q.next_seq(), &fn)) {
    fn();
    fn = nullptr;
    ++ran;
  }
  return ran;
}

// The injector itself: an allocation in eddy's code (a library of its own
// in a dynamically linked build) fails when armed, and only then.
TEST(AllocFailureTest, TheArmedAllocationThrowsOnceInLibraryCode) {
  TimerQueue q;
  {
    FailAllocation fail(0);
    EXPECT_THROW(q.add(at_ms(1), [] {}), std::bad_alloc);
    EXPECT_TRUE(fail.fired());
    q.add(at_ms(1), [] {});  // once
  }
  EXPECT_EQ(q.size(), 1u);
}

// Defect: growing slots_ and position_ (or heap_) one after the other left
// them out of step when the second growth threw (the next add wrote past
// position_), and a throw after the slot was filled kept the callback in a
// slot nothing pointed to. Every prefill size crosses a growth somewhere.
TEST(AllocFailureTest, TimerQueueAddThatThrowsLeavesTheQueueUnchangedAndDestroysTheCallback) {
  ASSERT_EQ(Tracked::live, 0);
  for (int prefill : {0, 1, 2, 3, 4, 7, 8, 9, 16, 17, 32}) {
    for (long n = 0; n < kMaxSweep; ++n) {
      TimerQueue q;
      int ran = 0;
      for (int i = 0; i < prefill; ++i) q.add(at_ms(10 + i), [&ran] { ++ran; });
      absl::AnyInvocable<void()> fn = [t = Tracked(1), &ran] { ++ran; };
      ASSERT_EQ(Tracked::live, 1);
      const auto [threw, fired] = with_failing_allocation(n, [&] {
        q.add(at_ms(5), std::move(fn));
      });
      EXPECT_EQ(threw, fired);
      if (threw) {
        EXPECT_EQ(Tracked::live, 0) << "the failed timer's callback was kept; prefill " << prefill
                                    << ", n " << n;
        EXPECT_EQ(q.size(), static_cast<size_t>(prefill));
      }
      // The queue goes on working: more timers (each growth again), half
      // of them removed, the rest firing in deadline order.
      std::vector<int> order;
      std::vector<TimerQueue::Id> ids;
      for (int i = 0; i < 40; ++i) {
        ids.push_back(q.add(at_ms(100 - i), [&order, i] { order.push_back(i); }));
      }
      for (int i = 0; i < 40; i += 2) EXPECT_TRUE(q.remove(ids[i]));
      EXPECT_EQ(fire_all(q), prefill + 20 + (threw ? 0 : 1));
      ASSERT_EQ(order.size(), 20u);
      for (int i = 0; i < 20; ++i) EXPECT_EQ(order[i], 39 - 2 * i);
      EXPECT_EQ(ran, prefill + (threw ? 0 : 1));
      EXPECT_EQ(Tracked::live, 0);
      if (!fired) break;
      ASSERT_LT(n + 1, kMaxSweep);
    }
  }
}

// The same through the loop: call_later that throws, then timers still fire.
TEST(AllocFailureTest, CallLaterThatThrowsLeavesTheLoopsTimersWorking) {
  for (long n = 0; n < kMaxSweep; ++n) {
    IOLoop loop;
    const bool fired =
        with_failing_allocation(n, [&] { loop.call_later(absl::Milliseconds(1), [] {}); }).fired;
    int ran = 0;
    for (int i = 0; i < 20; ++i) loop.call_later(absl::ZeroDuration(), [&ran] { ++ran; });
    loop.run_sync([&] { return sleep(absl::Milliseconds(2)); });
    EXPECT_EQ(ran, 20);
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

using AllocFailureSyncTest = testing::SyncLoopTest;

// Defect: set() set the flag, then taking the waiters out (a new
// std::deque) threw: the waiters stayed queued and a retried set() did
// nothing, so they were never woken.
TEST_F(AllocFailureSyncTest, EventSetThatThrowsChangesNothingAndARetryWakesTheWaiters) {
  for (long n = 0; n < kMaxSweep; ++n) {
    Event ev;
    Future<void> a = ev.wait();
    Future<void> b = ev.wait();
    const auto [threw, fired] = with_failing_allocation(n, [&] {
      ev.set();
    });
    if (threw) {
      EXPECT_FALSE(ev.is_set()) << "n " << n;
      EXPECT_FALSE(a.done());
      EXPECT_FALSE(b.done());
      ev.set();
    }
    EXPECT_TRUE(ev.is_set());
    drain();
    EXPECT_TRUE(a.done()) << "n " << n;
    EXPECT_TRUE(b.done()) << "n " << n;
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

// Defect: notify() popped a waiter, then growing its list of woken
// waiters threw: that waiter was out of the queue and never woken.
TEST_F(AllocFailureSyncTest, ConditionNotifyThatThrowsLosesNoWaiter) {
  for (long n = 0; n < kMaxSweep; ++n) {
    Condition c;
    Future<void> first = c.wait();
    Future<void> second = c.wait();
    const auto [threw, fired] = with_failing_allocation(n, [&] {
      EXPECT_EQ(c.notify(1), 1u);
    });
    if (threw) {
      EXPECT_EQ(c.waiter_count(), 2u) << "n " << n;
      EXPECT_EQ(c.notify(1), 1u);
    }
    drain();
    EXPECT_TRUE(first.done()) << "n " << n;
    EXPECT_FALSE(second.done());
    EXPECT_EQ(c.waiter_count(), 1u);
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

TEST_F(AllocFailureSyncTest, ConditionNotifyAllThatThrowsLeavesEveryWaiterForARetry) {
  for (long n = 0; n < kMaxSweep; ++n) {
    Condition c;
    Future<void> a = c.wait();
    Future<void> b = c.wait();
    const auto [threw, fired] = with_failing_allocation(n, [&] {
      EXPECT_EQ(c.notify_all(), 2u);
    });
    if (threw) {
      EXPECT_EQ(c.notify_all(), 2u) << "n " << n;
    }
    drain();
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

// Defect: a primitive's destructor (noexcept) took its waiters out into a
// new std::deque; when that allocation threw, std::terminate. Now they are
// cancelled in place, whatever fails.
template <class MakeAndWait>
void destroy_while_allocation_fails(MakeAndWait make_and_wait) {
  for (long n = 0; n < kMaxSweep; ++n) {
    auto [primitive, waiters] = make_and_wait();
    bool fired;
    {
      testing::LogCapture logs;  // a cancel that fails is logged
      FailAllocation fail(n);
      primitive.reset();
      fired = fail.fired();
    }
    for (auto& w : waiters) EXPECT_TRUE(w.cancelled()) << "n " << n;
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

TEST_F(AllocFailureSyncTest, EventDestroyedWhileAllocationFailsCancelsItsWaiters) {
  destroy_while_allocation_fails([] {
    auto ev = std::make_unique<Event>();
    std::vector<Future<void>> waiters = {ev->wait(), ev->wait()};
    return std::make_pair(std::move(ev), std::move(waiters));
  });
  drain();
}

TEST_F(AllocFailureSyncTest, ConditionDestroyedWhileAllocationFailsCancelsItsWaiters) {
  destroy_while_allocation_fails([] {
    auto c = std::make_unique<Condition>();
    std::vector<Future<void>> waiters = {c->wait(), c->wait()};
    return std::make_pair(std::move(c), std::move(waiters));
  });
  drain();
}

TEST_F(AllocFailureSyncTest, LockDestroyedWhileAllocationFailsCancelsItsWaiters) {
  std::vector<Lock::Releaser> held;
  destroy_while_allocation_fails([&held] {
    auto lock = std::make_unique<Lock>();
    Future<Lock::Releaser> first = lock->acquire();
    held.push_back(std::move(first.result()));
    std::vector<Future<Lock::Releaser>> waiters = {lock->acquire(), lock->acquire()};
    return std::make_pair(std::move(lock), std::move(waiters));
  });
  held.clear();
  drain();
}

TEST_F(AllocFailureSyncTest, QueueDestroyedWhileAllocationFailsCancelsItsGettersAndPutters) {
  destroy_while_allocation_fails([] {
    auto getters = std::make_unique<Queue<int>>();
    std::vector<Future<int>> waiting = {getters->get(), getters->get()};
    return std::make_pair(std::move(getters), std::move(waiting));
  });
  destroy_while_allocation_fails([] {
    auto putters = std::make_unique<Queue<int>>(1);
    putters->put_nowait(0);
    std::vector<Future<void>> waiting = {putters->put(1), putters->put(2)};
    return std::make_pair(std::move(putters), std::move(waiting));
  });
  drain();
}

// Defect: MultiBlock allocated its result future with a raw new, then its
// vectors: a throw from those leaked the result (and its loop anchor).
// Each attempt completes the children and runs the loop, so that nothing
// of the attempt may remain allocated.
template <class Drain, class Children, class Complete>
void multi_leaves_nothing_allocated(Drain drain, Children make, Complete complete) {
  auto attempt = [&](long n) {
    auto children = make();
    bool fired = false;
    {
      FailAllocation fail(n);
      try {
        auto result = multi(children);
        fail.disarm();
        complete(children);
        drain();
        EXPECT_TRUE(result.done());
      } catch (const std::bad_alloc&) {
      }
      fired = fail.fired();
    }
    complete(children);
    drain();
    return fired;
  };
  attempt(-1);  // warms up the loop's own storage
  for (long n = 0; n < kMaxSweep; ++n) {
    const int64_t before = testing::outstanding_allocations();
    const bool fired = attempt(n);
    EXPECT_EQ(testing::outstanding_allocations(), before) << "n " << n;
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

TEST_F(AllocFailureSyncTest, MultiOverAVectorThatThrowsLeaksNothing) {
  multi_leaves_nothing_allocated(
      [this] { drain(); }, [] { return std::vector<Future<int>>(3); },
      [](std::vector<Future<int>>& fs) {
        for (Future<int>& f : fs) {
          if (!f.done()) f.set_result(1);
        }
      });
}

TEST_F(AllocFailureSyncTest, MultiOverAMapThatThrowsLeaksNothing) {
  multi_leaves_nothing_allocated(
      [this] { drain(); },
      [] {
        std::map<int, Future<int>> fs;
        for (int i = 0; i < 3; ++i) fs.emplace(i, Future<int>());
        return fs;
      },
      [](std::map<int, Future<int>>& fs) {
        for (auto& [k, f] : fs) {
          if (!f.done()) f.set_result(k);
        }
      });
}

// Defect: the completer was moved into fn's future's callback before
// attaching it could throw; the callback, destroyed on the way, failed the
// ConcurrentFuture with CancelledError "the loop was closed" and the real
// error was dropped.
TEST(AllocFailureTest, RunInLoopFailsWithTheAllocationErrorNotWithCancelledError) {
  int saw_bad_alloc = 0;
  for (long n = 0; n < kMaxSweep; ++n) {
    IOLoop loop;
    std::optional<Future<int>> inner;
    bool fired = false;
    ConcurrentFuture<int> r = loop.run_in_loop([&] {
      inner.emplace();
      // A callback already: attaching the next one allocates a vector.
      inner->add_done_callback([](Future<int>&) {});
      testing::fail_allocation(n);
      return *inner;
    });
    // Disarms at the end of the turn that ran fn.
    loop.run_sync([&] {
      fired = testing::allocation_failure_fired();
      testing::disarm_allocation_failure();
    });
    testing::disarm_allocation_failure();
    // Done at once only by a failure. An allocation whose failure is no
    // error (the recycler's nothrow new of a slot array, which it does
    // without) leaves the work going on.
    if (r.done()) {
      EXPECT_TRUE(fired);
      std::exception_ptr e = r.exception(absl::ZeroDuration());
      EXPECT_TRUE(internal::holds_exception<std::bad_alloc>(e))
          << "n " << n << ": " << describe_exception(e);
      ++saw_bad_alloc;
    } else {
      inner->set_result(7);
      loop.run_sync([] {});
      EXPECT_EQ(r.result(absl::ZeroDuration()), 7) << "n " << n;
    }
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
  EXPECT_GT(saw_bad_alloc, 0);
}

}  // namespace
}  // namespace eddy
