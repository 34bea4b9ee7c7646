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
      bool threw = false;
      bool fired;
      {
        FailAllocation fail(n);
        try {
          q.add(at_ms(5), std::move(fn));
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        fired = fail.fired();
      }
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
    bool fired;
    {
      FailAllocation fail(n);
      try {
        loop.call_later(absl::Milliseconds(1), [] {});
      } catch (const std::bad_alloc&) {
      }
      fired = fail.fired();
    }
    int ran = 0;
    for (int i = 0; i < 20; ++i) loop.call_later(absl::ZeroDuration(), [&ran] { ++ran; });
    loop.run_sync([&] { return sleep(absl::Milliseconds(2)); });
    EXPECT_EQ(ran, 20);
    if (!fired) break;
    ASSERT_LT(n + 1, kMaxSweep);
  }
}

}  // namespace
}  // namespace eddy
