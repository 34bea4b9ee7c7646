// Lock: Tornado's locks_test.py LockTests scenarios (FIFO hand-over,
// timeouts, releasing an unlocked lock), the guard with co_await, and a
// critical section spanning co_await points.
#include "eddy/sync/lock.h"

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using LockTest = testing::SyncLoopTest;
using History = std::vector<std::string>;

// Tornado's test_acquire_release.
TEST_F(LockTest, AcquireLocksAndReleaseUnlocks) {
  Lock lock;
  EXPECT_FALSE(lock.locked());
  Future<Lock::Releaser> f = lock.acquire();
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(lock.locked());
  f.result().detach();
  lock.release();
  EXPECT_FALSE(lock.locked());
}

// Tornado's test_multi_release.
TEST_F(LockTest, ReleasingAnUnlockedLockThrowsInvalidStateError) {
  Lock lock;
  EXPECT_THROW(lock.release(), InvalidStateError);
  lock.acquire().result().detach();
  lock.release();
  EXPECT_THROW(lock.release(), InvalidStateError);
}

// Tornado's test_acquire_fifo.
TEST_F(LockTest, CoroutinesGetTheLockInTheOrderTheyAsked) {
  Lock lock;
  History history;
  Lock::Releaser held = lock.acquire().result();
  auto worker = [&](int i) -> Future<void> {
    auto guard = co_await lock.acquire();
    history.push_back(std::to_string(i));
  };
  std::vector<Future<void>> workers;
  for (int i = 0; i < 5; ++i) workers.push_back(worker(i));
  EXPECT_EQ(lock.waiter_count(), 5u);
  held.reset();
  drain();
  for (auto& w : workers) EXPECT_TRUE(w.done());
  EXPECT_EQ(history, (History{"0", "1", "2", "3", "4"}));
  EXPECT_FALSE(lock.locked());
}

// Tornado's test_acquire_timeout.
TEST_F(LockTest, AcquireTimesOutWithTimeoutErrorAndLeavesTheLockToItsHolder) {
  Lock lock;
  lock.acquire().result().detach();
  Future<Lock::Releaser> f = lock.acquire(absl::Milliseconds(10));
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(failed_with<TimeoutError>(f));
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST_F(LockTest, CancelledAcquireIsSkipped) {
  Lock lock;
  Lock::Releaser held = lock.acquire().result();
  Future<Lock::Releaser> cancelled = lock.acquire();
  Future<Lock::Releaser> next = lock.acquire();
  cancelled.cancel();
  held.reset();
  EXPECT_TRUE(next.done());
  EXPECT_TRUE(next.result().holds());
  EXPECT_TRUE(lock.locked());
}

TEST_F(LockTest, CriticalSectionSpanningAwaitsIsNotInterleaved) {
  Lock lock;
  History history;
  auto writer = [&](std::string name) -> Future<void> {
    auto guard = co_await lock.acquire();
    history.push_back(name + " header");
    co_await sleep(absl::Milliseconds(5));
    history.push_back(name + " body");
  };
  Future<void> a = writer("a");
  Future<void> b = writer("b");
  for (int i = 0; i < 2; ++i) advance(absl::Milliseconds(5));
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
  EXPECT_EQ(history, (History{"a header", "a body", "b header", "b body"}));
  EXPECT_FALSE(lock.locked());
}

// Tornado's test_acquire_fifo_async_with, in manual style: detach the
// guard and release by hand.
TEST_F(LockTest, ManualStyleDetachAndRelease) {
  Lock lock;
  History history;
  auto worker = [&](int i) -> Future<void> {
    (co_await lock.acquire()).detach();
    history.push_back(std::to_string(i));
    co_await sleep(absl::Milliseconds(1));
    lock.release();
  };
  std::vector<Future<void>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(worker(i));
  for (int i = 0; i < 3; ++i) advance(absl::Milliseconds(1));
  for (auto& w : workers) EXPECT_TRUE(w.done());
  EXPECT_EQ(history, (History{"0", "1", "2"}));
  EXPECT_FALSE(lock.locked());
}

TEST_F(LockTest, DiscardingTheGuardUnlocksAtOnce) {
  Lock lock;
  auto careless = [&]() -> Future<bool> {
    (void)co_await lock.acquire();  // the guard is a temporary: unlocked here
    co_return lock.locked();
  };
  Future<bool> f = careless();
  ASSERT_TRUE(f.done());
  EXPECT_FALSE(f.result());
}

TEST_F(LockTest, DestroyingTheLockCancelsItsWaiters) {
  Future<Lock::Releaser> waiter;
  Lock::Releaser held;
  {
    Lock lock;
    held = lock.acquire().result();
    waiter = lock.acquire();
  }
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_FALSE(held.holds());
}

// --- used from a foreign thread -------------------------------------------

// A guard dropped on a pool thread used to empty itself first; the release
// then failed the thread check (caught and logged): the lock stayed locked
// with no holder and every waiter hung. The release is handed to the
// waiters' loop instead.
TEST_F(LockTest, AGuardDroppedOnAForeignThreadHandsTheLockToTheNextWaiter) {
  testing::LogCapture log;
  Lock lock;
  Lock::Releaser guard = lock.acquire().result();
  Future<Lock::Releaser> waiter = lock.acquire();
  std::thread other([g = std::move(guard)]() mutable { g.reset(); });
  other.join();
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"), 1u);
  drain();
  ASSERT_TRUE(waiter.done());
  EXPECT_FALSE(waiter.cancelled());
  EXPECT_TRUE(waiter.result().holds());
  EXPECT_TRUE(lock.locked());
  waiter.result().reset();
  EXPECT_FALSE(lock.locked());
}

// With nobody waiting, the guard could not tell it was on a foreign thread
// (it looked at the front waiter's loop) and unlocked right there, racing
// the loop's next acquire(): a lost wake-up, or a lock left locked with no
// holder. It knows its loop now, waiters or not.
TEST_F(LockTest, AGuardDroppedOnAForeignThreadWithNobodyWaitingUnlocksOnTheLoopsThread) {
  testing::LogCapture log;
  Lock lock;
  Lock::Releaser guard = lock.acquire().result();
  std::thread other([g = std::move(guard)]() mutable { g.reset(); });
  other.join();
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"), 1u);
  EXPECT_TRUE(lock.locked());  // untouched off the loop's thread
  drain();
  EXPECT_FALSE(lock.locked());
  Future<Lock::Releaser> again = lock.acquire();
  EXPECT_TRUE(again.done());
}

TEST_F(LockTest, ReleaseOnAForeignThreadIsRefusedNamingLockRelease) {
  Lock lock;
  (void)lock.acquire().result().detach();
  Future<Lock::Releaser> waiter = lock.acquire();
  std::thread other([&] {
    try {
      lock.release();
      ADD_FAILURE() << "no exception";
    } catch (const InvalidStateError& ex) {
      EXPECT_NE(std::string(ex.what()).find("Lock::release: called from a thread"),
                std::string::npos)
          << ex.what();
    }
  });
  other.join();
  EXPECT_TRUE(lock.locked());
  EXPECT_EQ(lock.waiter_count(), 1u);
  lock.release();
  drain();
  EXPECT_TRUE(waiter.done());
}

// The last owner of an object holding a Lock let go of it on a pool thread,
// with a waiter pending: the destructor used to call std::terminate.
TEST_F(LockTest, DestroyedOnAForeignThreadItLogsAndItsLoopCancelsTheWaiters) {
  testing::LogCapture log;
  auto lock = std::make_shared<Lock>();
  Future<Lock::Releaser> held = lock->acquire();
  Future<Lock::Releaser> waiting = lock->acquire();
  std::thread other([l = std::move(lock)]() mutable { l.reset(); });
  other.join();
  EXPECT_EQ(log.count("destroyed on a thread that does not own"), 1u);
  drain();
  EXPECT_TRUE(waiting.cancelled());
  EXPECT_FALSE(held.result().holds());  // the lock is gone: the guard releases nothing
}

}  // namespace
}  // namespace eddy
