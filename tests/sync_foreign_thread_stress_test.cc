// The tolerated misuse of sync/ and PeriodicCallback under races: a Lock
// guard dropped in a pool task while the loop takes the lock again, and
// primitives (with waiters) or a running PeriodicCallback let go on a pool
// thread while their loop is being destroyed. Bounded versions of the
// stress review's probes p15, p14 and p14b. Before the fix these raced
// (TSan), read the freed loop (ASan: heap-use-after-free; "pure virtual
// method called"; a crash in the plain build), or lost a wake-up and left
// the lock locked for good.
#include <latch>
#include <memory>
#include <random>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/sync/condition.h"
#include "eddy/sync/event.h"
#include "eddy/sync/lock.h"
#include "eddy/sync/queue.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

void spin_for(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (absl::Now() < until) {
  }
}

// The loop takes the lock, hands the guard to a pool task that drops it,
// and asks for the lock again at once, usually before the task ran. The
// guard used to release on the worker whenever no waiter was queued yet:
// ++value and the waiter deque raced with acquire(), which lost wake-ups
// (an acquire timing out with the lock free) or the lock itself.
TEST(SyncForeignThreadStressTest, GuardsDroppedInPoolTasksLoseNeitherAWakeUpNorTheLock) {
  testing::LogCapture log;  // every drop logs its misuse
  ThreadPoolExecutor pool(1);
  IOLoop loop;
  Lock lock;
  int rounds = 0;
  int timeouts = 0;
  const absl::Time stop_at = absl::Now() + absl::Seconds(2);
  loop.run_sync([&]() -> Future<void> {
    std::minstd_rand rng(15);
    while (rounds < 3000 && absl::Now() < stop_at) {
      Lock::Releaser guard;
      try {
        guard = co_await lock.acquire(absl::Seconds(5));
      } catch (const TimeoutError&) {
        ++timeouts;
        co_return;
      }
      const absl::Duration d = absl::Nanoseconds(rng() % 3000);
      (void)pool.submit([g = std::move(guard), d]() mutable {
        spin_for(d);
        g.reset();
      });
      ++rounds;
    }
  });
  pool.shutdown(/*wait=*/true);
  EXPECT_EQ(timeouts, 0) << "after " << rounds << " rounds, the lock was "
                         << (lock.locked() ? "locked" : "free (a lost wake-up)");
  // The last guard's release is on its way to the loop: the lock comes back.
  Lock::Releaser last = loop.run_sync([&] { return lock.acquire(absl::Seconds(5)); });
  EXPECT_TRUE(last.holds());
  EXPECT_EQ(log.count("Semaphore::Releaser reset on a thread that does not own"),
            static_cast<size_t>(rounds));
  EXPECT_EQ(log.count("could not release"), 0u);
}

Future<void> wait_on(Event* e) { co_await e->wait(); }
Future<void> wait_on(Condition* c) { co_await c->wait(); }
Future<void> get_from(Queue<int>* q) { (void)co_await q->get(); }
Future<void> put_into(Queue<int>* q) { co_await q->put(1); }
Future<void> join(Queue<int>* q) { co_await q->join(); }
Future<void> lock_on(Lock* l) { (void)co_await l->acquire(); }

// Runs `rounds` rounds (at most ~1 s of them): coroutines on a fresh loop
// wait on what `make()` returns (`wait(thing)` starts them), a pool task
// drops the last reference to it while this thread destroys the loop, each
// side after a random spin. The destructor on the worker used to read the
// waiters' loop, which was being freed, and to cancel (or destroy) their
// futures there when the loop no longer took posts.
template <class Make, class Wait>
void race_with_loop_teardown(int rounds, Make make, Wait wait) {
  testing::LogCapture log;  // the misuse is logged every round
  ThreadPoolExecutor pool(1);
  std::minstd_rand rng(14);
  const absl::Time stop_at = absl::Now() + absl::Seconds(1);
  for (int round = 0; round < rounds && absl::Now() < stop_at; ++round) {
    auto loop = std::make_unique<IOLoop>();
    loop->make_current();
    auto thing = make();
    wait(*thing);
    loop->run_sync([] {});
    std::latch go(2);
    ConcurrentFuture<void> dropped =
        pool.submit([t = std::move(thing), &go, d = absl::Microseconds(rng() % 60)]() mutable {
          go.arrive_and_wait();
          spin_for(d);
          t.reset();
        });
    go.arrive_and_wait();
    spin_for(absl::Microseconds(rng() % 60));
    IOLoop::clear_current();
    loop.reset();
    dropped.result();
  }
}

TEST(SyncForeignThreadStressTest, AnEventDroppedOnAPoolThreadWhileItsLoopIsDestroyed) {
  race_with_loop_teardown(
      1000, [] { return std::make_shared<Event>(); },
      [](Event& e) {
        for (int i = 0; i < 3; ++i) (void)wait_on(&e);
      });
}

TEST(SyncForeignThreadStressTest, AConditionDroppedOnAPoolThreadWhileItsLoopIsDestroyed) {
  race_with_loop_teardown(
      1000, [] { return std::make_shared<Condition>(); },
      [](Condition& c) {
        for (int i = 0; i < 3; ++i) (void)wait_on(&c);
      });
}

// Getters on one queue; putters and a join on another (full) one.
TEST(SyncForeignThreadStressTest, QueuesDroppedOnAPoolThreadWhileTheirLoopIsDestroyed) {
  race_with_loop_teardown(
      500, [] { return std::make_shared<Queue<int>>(); },
      [](Queue<int>& q) {
        for (int i = 0; i < 3; ++i) (void)get_from(&q);
      });
  race_with_loop_teardown(
      500,
      [] {
        auto q = std::make_shared<Queue<int>>(1);
        q->put_nowait(0);
        return q;
      },
      [](Queue<int>& q) {
        (void)put_into(&q);
        (void)put_into(&q);
        (void)join(&q);
      });
}

// The worker drops the held guard (a release handed to the loop, or
// refused) and then the Lock with its waiters.
TEST(SyncForeignThreadStressTest, ALockAndItsGuardDroppedOnAPoolThreadWhileItsLoopIsDestroyed) {
  struct Held {
    Lock lock;
    Lock::Releaser guard;  // destroyed first
  };
  race_with_loop_teardown(
      1000,
      [] {
        auto held = std::make_shared<Held>();
        held->guard = held->lock.acquire().result();
        return held;
      },
      [](Held& h) {
        for (int i = 0; i < 3; ++i) (void)lock_on(&h.lock);
      });
}

// ~PeriodicCallback on the worker used to ask the loop, being freed, whether
// it was on its thread, then post to it.
TEST(SyncForeignThreadStressTest, ARunningPeriodicCallbackDroppedOnAPoolThreadWhileItsLoopIsDestroyed) {
  race_with_loop_teardown(
      1000, [] { return std::make_shared<PeriodicCallback>([] {}, absl::Milliseconds(1)); },
      [](PeriodicCallback& pc) { pc.start(); });
}

}  // namespace
}  // namespace eddy
