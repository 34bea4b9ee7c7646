// The sync primitives out of memory: when the loop has no room for the
// posts that completing their waiters needs (set_result/cancel would throw
// std::bad_alloc), Event::set, Condition::notify/notify_all,
// Semaphore/Lock::release and a Queue get that admits a waiting putter
// throw std::bad_alloc having changed nothing (every waiter still queued,
// the flag not set, the permit still held), and a retry once memory is
// back wakes every waiter exactly once.
//
// This binary links tests/fail_big (a replaced global operator new, as
// post_nofail_test): while armed, allocations of 8 KiB or more fail (the
// loop's queue blocks are that big; nothing else here is).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/sync/condition.h"
#include "eddy/sync/event.h"
#include "eddy/sync/lock.h"
#include "eddy/sync/queue.h"
#include "eddy/sync/semaphore.h"
#include "gtest/gtest.h"
#include "tests/fail_big.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

using testing::drain;
using testing::fail_big_allocations;
using testing::FailBig;
using testing::fill_callback_queue;

class SyncOomTest : public ::testing::Test {
 protected:
  SyncOomTest() { loop_.make_current(); }
  ~SyncOomTest() override { IOLoop::clear_current(); }

  // A waiter counting its completions in woken_[i] (cancelled ones too).
  template <class T>
  void watch(Future<T> f) {
    const size_t i = woken_.size();
    woken_.push_back(0);
    f.add_done_callback([this, i](Future<T>&) { ++woken_[i]; });
  }
  // Leaves the loop's callback queue with no room and no spare block, the
  // big allocations failing while `fail` lives.
  void exhaust(IOLoop& loop) {
    fill_callback_queue(loop);
    fill_callback_queue(loop);
  }
  std::vector<int> woken_;
  IOLoop loop_;
};

TEST_F(SyncOomTest, EventSetThrowsWithNothingChangedAndARetryWakesEveryWaiter) {
  Event event;
  for (int i = 0; i < 3; ++i) watch(event.wait());
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(event.set(), std::bad_alloc);
    EXPECT_FALSE(event.is_set());
    EXPECT_EQ(event.waiter_count(), 3u);
  }
  event.set();
  EXPECT_TRUE(event.is_set());
  drain(loop_);
  EXPECT_EQ(woken_, (std::vector<int>{1, 1, 1}));
}

TEST_F(SyncOomTest, ConditionNotifyAllThrowsWithNothingChangedAndARetryWakesEveryWaiter) {
  Condition cond;
  for (int i = 0; i < 3; ++i) watch(cond.wait());
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(cond.notify_all(), std::bad_alloc);
    EXPECT_EQ(cond.waiter_count(), 3u);
  }
  EXPECT_EQ(cond.notify_all(), 3u);
  drain(loop_);
  EXPECT_EQ(woken_, (std::vector<int>{1, 1, 1}));
}

TEST_F(SyncOomTest, ConditionNotifyThrowsWithNothingChangedAndARetryWakesTheWaiters) {
  Condition cond;
  for (int i = 0; i < 3; ++i) watch(cond.wait());
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(cond.notify(2), std::bad_alloc);
    EXPECT_EQ(cond.waiter_count(), 3u);
  }
  EXPECT_EQ(cond.notify(2), 2u);
  drain(loop_);
  EXPECT_EQ(woken_, (std::vector<int>{1, 1, 0}));
  EXPECT_EQ(cond.notify(), 1u);
  drain(loop_);
  EXPECT_EQ(woken_, (std::vector<int>{1, 1, 1}));
}

TEST_F(SyncOomTest, LockReleaseThrowsKeepingTheLockAndARetryHandsItToTheWaiter) {
  Lock lock;
  Future<Lock::Releaser> first = lock.acquire();
  ASSERT_TRUE(first.done());
  first.result().detach();
  Future<Lock::Releaser> second = lock.acquire();
  watch(second);
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(lock.release(), std::bad_alloc);
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(second.done());
  }
  EXPECT_FALSE(lock.acquire().done()) << "the permit was given away from under the waiter";
  lock.release();
  drain(loop_);
  ASSERT_TRUE(second.done());
  EXPECT_EQ(woken_[0], 1);
  EXPECT_TRUE(lock.locked());
}

TEST_F(SyncOomTest, SemaphoreReleaseThrowsKeepingThePermitAndARetryHandsItOver) {
  Semaphore sem(0);
  Future<Semaphore::Releaser> waiter = sem.acquire();
  watch(waiter);
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(sem.release(), std::bad_alloc);
    EXPECT_EQ(sem.value(), 0);
    EXPECT_FALSE(waiter.done());
  }
  sem.release();
  drain(loop_);
  ASSERT_TRUE(waiter.done());
  EXPECT_EQ(woken_[0], 1);
  EXPECT_EQ(sem.value(), 0);
  waiter.result().reset();
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(SyncOomTest, AGetThatWouldAdmitAPutterThrowsWithNothingChangedAndARetryCompletesIt) {
  Queue<std::string> q(1);
  q.put_nowait("first");
  Future<void> putter = q.put("second");
  watch(putter);
  {
    FailBig fail;
    exhaust(loop_);
    EXPECT_THROW(q.get_nowait(), std::bad_alloc);
    EXPECT_THROW((void)q.get(), std::bad_alloc);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_FALSE(putter.done());
  }
  EXPECT_EQ(q.get_nowait(), "first");
  drain(loop_);
  EXPECT_EQ(woken_[0], 1);
  EXPECT_EQ(q.get_nowait(), "second");
}

// A destructor cannot throw: it reserves room for every cancel first. With
// memory for that, every waiter is cancelled.
TEST_F(SyncOomTest, ADestroyedEventCancelsEveryWaiterWhenItsCancelsNeedANewBlock) {
  std::vector<Future<void>> waiters;
  {
    Event event;
    for (int i = 0; i < 300; ++i) {
      waiters.push_back(event.wait());
      watch(waiters.back());
    }
  }
  drain(loop_);
  for (Future<void>& w : waiters) EXPECT_TRUE(w.cancelled());
  EXPECT_EQ(std::count(woken_.begin(), woken_.end(), 1), 300);
}

// With no memory even for that, the waiters whose cancel cannot be posted
// stay pending (logged once, with the count): nothing crashes or leaks.
TEST_F(SyncOomTest, ADestroyedEventWithNoRoomAtAllLogsTheWaitersItCannotCancel) {
  testing::LogCapture logs;
  std::optional<Event> event(std::in_place);
  Future<void> waiter = event->wait();
  watch(waiter);
  {
    FailBig fail;
    exhaust(loop_);
    event.reset();
  }
  EXPECT_EQ(logs.count("1 waiter(s) left pending"), 1u);
  drain(loop_);
  EXPECT_FALSE(waiter.done());
}

}  // namespace
}  // namespace eddy
