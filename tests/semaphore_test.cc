// Semaphore and BoundedSemaphore: Tornado's locks_test.py SemaphoreTest,
// SemaphoreContextManagerTest and BoundedSemaphoreTest scenarios (FIFO
// hand-over, timeouts and cancellation taking no permit), and the Releaser
// guard.
#include "eddy/sync/semaphore.h"

#include <algorithm>
#include <stdexcept>
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
#include "tests/manual_scheduler.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using SemaphoreTest = testing::SyncLoopTest;
using History = std::vector<std::string>;

TEST_F(SemaphoreTest, NegativeInitialValueThrowsInvalidArgument) {
  EXPECT_THROW(Semaphore(-1), std::invalid_argument);
  EXPECT_THROW(BoundedSemaphore(-1), std::invalid_argument);
}

// Tornado's test_acquire.
TEST_F(SemaphoreTest, WaitersGetReleasedPermitsInFifoOrder) {
  Semaphore sem(1);
  Future<Semaphore::Releaser> first = sem.acquire();
  EXPECT_TRUE(first.done());  // a free permit: done at once
  EXPECT_EQ(sem.value(), 0);
  first.result().detach();

  Future<Semaphore::Releaser> second = sem.acquire();
  Future<Semaphore::Releaser> third = sem.acquire();
  EXPECT_FALSE(second.done());
  EXPECT_FALSE(third.done());
  EXPECT_EQ(sem.waiter_count(), 2u);

  sem.release();
  EXPECT_TRUE(second.done());
  EXPECT_FALSE(third.done());
  EXPECT_EQ(sem.value(), 0);  // handed over, not counted

  // A later acquire() cannot overtake the waiting `third`.
  Future<Semaphore::Releaser> fourth = sem.acquire();
  sem.release();
  EXPECT_TRUE(third.done());
  EXPECT_FALSE(fourth.done());
  second.result().detach();
  third.result().detach();
  fourth.cancel();
}

TEST_F(SemaphoreTest, ReleaseCallbacksRunOnALaterTurn) {
  Semaphore sem(0);
  record_done(sem.acquire(), "acquired");
  sem.release();
  EXPECT_TRUE(history_.empty());
  drain();
  EXPECT_EQ(history_, (History{"acquired"}));
}

// Tornado's test_acquire_timeout.
TEST_F(SemaphoreTest, TimedOutAcquireTakesNoPermit) {
  Semaphore sem(2);
  // Detached: the permits stay taken although the guards are gone.
  sem.acquire().result().detach();
  sem.acquire().result().detach();
  EXPECT_EQ(sem.value(), 0);

  Future<Semaphore::Releaser> timed = sem.acquire(absl::Milliseconds(10));
  Future<Semaphore::Releaser> patient = sem.acquire();
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(failed_with<TimeoutError>(timed));
  EXPECT_FALSE(patient.done());

  sem.release();
  EXPECT_TRUE(patient.done());  // the permit skipped the timed-out waiter
  sem.release();
  EXPECT_EQ(sem.value(), 1);
  patient.result().detach();
}

// Tornado's test_acquire_timeout_preempted.
TEST_F(SemaphoreTest, ReleaseBeforeTheTimeoutWins) {
  Semaphore sem(1);
  sem.acquire().result().detach();
  loop_.call_later(absl::Milliseconds(10), [&] { sem.release(); });
  Future<Semaphore::Releaser> f = sem.acquire(absl::Milliseconds(20));
  advance(absl::Milliseconds(10));
  ASSERT_TRUE(f.done());
  EXPECT_TRUE(f.result().holds());
  advance(absl::Milliseconds(20));
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST_F(SemaphoreTest, CancelledAcquireTakesNoPermit) {
  Semaphore sem(0);
  Future<Semaphore::Releaser> a = sem.acquire();
  Future<Semaphore::Releaser> b = sem.acquire(absl::Seconds(1));
  Future<Semaphore::Releaser> c = sem.acquire();
  a.cancel();
  b.cancel();
  EXPECT_EQ(sem.waiter_count(), 1u);
  sem.release();
  EXPECT_TRUE(c.done());
  EXPECT_TRUE(c.result().holds());
  c.result().detach();
  sem.release();
  EXPECT_EQ(sem.value(), 1);
  drain();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

// Tornado's test_release_unacquired: a plain Semaphore may grow.
TEST_F(SemaphoreTest, ReleaseWithoutAcquireRaisesThePlainSemaphoresValue) {
  Semaphore sem(1);
  sem.release();
  EXPECT_EQ(sem.value(), 2);
  Future<Semaphore::Releaser> a = sem.acquire();
  Future<Semaphore::Releaser> b = sem.acquire();
  Future<Semaphore::Releaser> c = sem.acquire();
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
  EXPECT_FALSE(c.done());
  c.cancel();
}

// BoundedSemaphoreTest.test_release_unacquired.
TEST_F(SemaphoreTest, BoundedSemaphoreRefusesToGrowPastItsInitialValue) {
  BoundedSemaphore sem(2);
  EXPECT_THROW(sem.release(), SemaphoreOverReleaseError);
  EXPECT_THROW(sem.release(), std::logic_error);  // the documented base
  EXPECT_EQ(sem.value(), 2);
  Future<Semaphore::Releaser> a = sem.acquire();
  Future<Semaphore::Releaser> b = sem.acquire();
  Future<Semaphore::Releaser> c = sem.acquire();
  a.result().detach();
  b.result().detach();
  sem.release();  // to `c`
  EXPECT_TRUE(c.done());
  c.result().detach();
  sem.release();
  sem.release();
  EXPECT_THROW(sem.release(), SemaphoreOverReleaseError);
}

TEST_F(SemaphoreTest, ReleaserGivesThePermitBackWhenDestroyed) {
  Semaphore sem(1);
  {
    Semaphore::Releaser guard = sem.acquire().result();
    EXPECT_TRUE(guard.holds());
    EXPECT_EQ(sem.value(), 0);
  }
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(SemaphoreTest, ReleaserResetDetachAndMoveAssignment) {
  Semaphore sem(2);
  Semaphore::Releaser a = sem.acquire().result();
  Semaphore::Releaser b = sem.acquire().result();
  EXPECT_EQ(sem.value(), 0);

  a.reset();
  EXPECT_FALSE(a.holds());
  EXPECT_EQ(sem.value(), 1);
  a.reset();  // idempotent
  EXPECT_EQ(sem.value(), 1);

  a = std::move(b);  // `a` held nothing; now holds b's permit
  EXPECT_TRUE(a.holds());
  EXPECT_FALSE(b.holds());
  EXPECT_EQ(sem.value(), 1);

  Semaphore::Releaser c = sem.acquire().result();
  a = std::move(c);  // releases a's permit first
  EXPECT_EQ(sem.value(), 1);

  a.detach();
  EXPECT_FALSE(a.holds());
  EXPECT_EQ(sem.value(), 1);  // detached: still taken
  sem.release();
  EXPECT_EQ(sem.value(), 2);
}

TEST_F(SemaphoreTest, ReleaserHandsItsPermitToTheOldestWaiter) {
  Semaphore sem(1);
  Semaphore::Releaser guard = sem.acquire().result();
  Future<Semaphore::Releaser> next = sem.acquire();
  guard.reset();
  EXPECT_TRUE(next.done());
  EXPECT_EQ(sem.value(), 0);
}

TEST_F(SemaphoreTest, ReleaserOutlivingItsSemaphoreReleasesNothing) {
  Semaphore::Releaser guard;
  {
    Semaphore sem(1);
    guard = sem.acquire().result();
    EXPECT_TRUE(guard.holds());
  }
  EXPECT_FALSE(guard.holds());
  guard.reset();  // no crash, nothing to release
}

TEST_F(SemaphoreTest, ReleaserErrorIsLoggedNotThrown) {
  testing::LogCapture logs;
  BoundedSemaphore sem(1);
  {
    Semaphore::Releaser guard = sem.acquire().result();
    sem.release();  // by hand: now the guard's release is one too many
  }
  EXPECT_EQ(logs.count("Semaphore released too many times"), 1u);
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(SemaphoreTest, UnretrievedPermitHandedToADroppedFutureComesBack) {
  Semaphore sem(1);
  Semaphore::Releaser guard = sem.acquire().result();
  (void)sem.acquire();  // nobody keeps this future
  Future<Semaphore::Releaser> last = sem.acquire();
  guard.reset();  // to the dropped waiter, whose guard dies with its future
  drain();
  EXPECT_TRUE(last.done());
}

// SemaphoreContextManagerTest.test_context_manager_contended: at most
// `value` coroutines inside, served in arrival order.
TEST_F(SemaphoreTest, GuardedCoroutinesNeverExceedTheValueAndRunInOrder) {
  Semaphore sem(2);
  History history;
  int inside = 0;
  int peak = 0;
  auto worker = [&](int i) -> Future<void> {
    auto permit = co_await sem.acquire();
    ++inside;
    peak = std::max(peak, inside);
    history.push_back("start " + std::to_string(i));
    co_await sleep(absl::Milliseconds(10));
    history.push_back("end " + std::to_string(i));
    --inside;
  };
  std::vector<Future<void>> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(worker(i));
  for (int step = 0; step < 4; ++step) advance(absl::Milliseconds(10));
  for (auto& w : workers) EXPECT_TRUE(w.done());
  EXPECT_EQ(peak, 2);
  EXPECT_EQ(history, (History{"start 0", "start 1", "end 0", "end 1", "start 2", "start 3",
                              "end 2", "end 3"}));
  EXPECT_EQ(sem.value(), 2);
}

// SemaphoreContextManagerTest.test_context_manager_exception: the guard
// releases when the body throws.
TEST_F(SemaphoreTest, GuardReleasesWhenTheCoroutineThrows) {
  Semaphore sem(1);
  auto body = [&]() -> Future<void> {
    auto permit = co_await sem.acquire();
    throw std::runtime_error("boom");
  };
  Future<void> f = body();
  EXPECT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::runtime_error);
  EXPECT_EQ(sem.value(), 1);
}

// test_context_manager_timeout_error.
TEST_F(SemaphoreTest, CoroutineSeesTimeoutErrorAndHoldsNothing) {
  Semaphore sem(0);
  auto body = [&]() -> Future<bool> {
    try {
      auto permit = co_await sem.acquire(absl::Milliseconds(10));
      co_return true;
    } catch (const TimeoutError&) {
      co_return false;
    }
  };
  Future<bool> f = body();
  advance(absl::Milliseconds(10));
  ASSERT_TRUE(f.done());
  EXPECT_FALSE(f.result());
  sem.release();
  EXPECT_EQ(sem.value(), 1);
}

// Cancelling a coroutine suspended in acquire() cancels its waiter.
TEST_F(SemaphoreTest, CancellingACoroutineWaitingForAPermitRemovesTheWaiter) {
  Semaphore sem(0);
  bool entered = false;
  auto body = [&]() -> Future<void> {
    auto permit = co_await sem.acquire();
    entered = true;
  };
  Future<void> f = body();
  EXPECT_EQ(sem.waiter_count(), 1u);
  f.cancel();
  drain();
  EXPECT_EQ(sem.waiter_count(), 0u);
  sem.release();
  drain();
  EXPECT_FALSE(entered);
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(SemaphoreTest, DestroyingTheSemaphoreCancelsItsWaiters) {
  std::vector<Future<Semaphore::Releaser>> waiters;
  {
    Semaphore sem(0);
    waiters = {sem.acquire(), sem.acquire(absl::Seconds(1))};
  }
  for (auto& w : waiters) EXPECT_TRUE(w.cancelled());
  drain();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST(SemaphoreWithoutLoopTest, TimeoutWithoutAnIOLoopThrowsInvalidStateError) {
  testing::ManualScheduler scheduler;
  Semaphore sem(0);
  EXPECT_THROW((void)sem.acquire(absl::Seconds(1)), InvalidStateError);
  EXPECT_EQ(sem.waiter_count(), 0u);
  Future<Semaphore::Releaser> f = sem.acquire();
  sem.release();
  scheduler.run_pending();
  EXPECT_TRUE(f.done());
}

// --- used from a foreign thread -------------------------------------------

TEST_F(SemaphoreTest, AReleaserResetOnAForeignThreadGivesThePermitToTheNextWaiter) {
  testing::LogCapture log;
  Semaphore sem(1);
  Semaphore::Releaser permit = sem.acquire().result();
  Future<Semaphore::Releaser> waiter = sem.acquire();
  std::thread other([&] { permit.reset(); });
  other.join();
  EXPECT_FALSE(permit.holds());
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"), 1u);
  drain();
  ASSERT_TRUE(waiter.done());
  EXPECT_TRUE(waiter.result().holds());
  EXPECT_EQ(sem.value(), 0);
  waiter.result().reset();
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(SemaphoreTest, AReleaserResetOnAForeignThreadWithNobodyWaitingReleasesOnTheLoopsThread) {
  testing::LogCapture log;
  Semaphore sem(2);
  Semaphore::Releaser permit = sem.acquire().result();
  EXPECT_EQ(sem.value(), 1);
  std::thread other([&] { permit.reset(); });
  other.join();
  EXPECT_FALSE(permit.holds());
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"), 1u);
  EXPECT_EQ(sem.value(), 1);  // untouched off the loop's thread
  drain();
  EXPECT_EQ(sem.value(), 2);
}

// Its loop closed, nobody can take the release to that loop's thread, and
// this thread must not touch the semaphore: the permit stays out (logged).
TEST_F(SemaphoreTest, AReleaserResetOnAForeignThreadAfterItsLoopClosedGivesNothingBack) {
  testing::LogCapture log;
  Semaphore sem(1);
  Semaphore::Releaser permit;
  {
    IOLoop gone;
    gone.make_current();
    permit = sem.acquire().result();
  }
  loop_.make_current();
  std::thread other([&] { permit.reset(); });
  other.join();
  EXPECT_FALSE(permit.holds());
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"), 1u);
  EXPECT_EQ(log.count("is closed: the permit is not given back"), 1u) << log.size();
  EXPECT_EQ(sem.value(), 0);
}

TEST_F(SemaphoreTest, ReleaseOnAForeignThreadIsRefusedAndChangesNothing) {
  Semaphore sem(0);
  Future<Semaphore::Releaser> waiter = sem.acquire();
  std::thread other([&] {
    try {
      sem.release();
      ADD_FAILURE() << "no exception";
    } catch (const InvalidStateError& ex) {
      EXPECT_NE(std::string(ex.what()).find("Semaphore::release: called from a thread"),
                std::string::npos)
          << ex.what();
    }
  });
  other.join();
  EXPECT_EQ(sem.waiter_count(), 1u);
  EXPECT_EQ(sem.value(), 0);
  sem.release();
  drain();
  EXPECT_TRUE(waiter.done());
}

TEST_F(SemaphoreTest, DestroyedOnAForeignThreadItLogsAndItsLoopCancelsTheWaiters) {
  testing::LogCapture log;
  auto sem = std::make_unique<Semaphore>(0);
  Future<Semaphore::Releaser> waiter = sem->acquire();
  std::thread other([&] { sem.reset(); });  // used to call std::terminate
  other.join();
  EXPECT_EQ(log.count("destroyed on a thread that does not own"), 1u);
  drain();
  EXPECT_TRUE(waiter.cancelled());
}

}  // namespace
}  // namespace eddy
