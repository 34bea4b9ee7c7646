// Adversarial tests of the loop side: IOLoop, Future, the combinators,
// coroutines and sync/, used the way a demanding user would (and checked
// against Tornado 6.2 where it defines the behaviour).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/first_completed.h"
#include "eddy/futures/future.h"
#include "eddy/futures/multi.h"
#include "eddy/futures/wait_iterator.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/with_timeout.h"
#include "eddy/sync/condition.h"
#include "eddy/sync/event.h"
#include "eddy/sync/lock.h"
#include "eddy/sync/queue.h"
#include "eddy/sync/semaphore.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/loop_test_util.h"

namespace eddy {
namespace {

using testing::LogCapture;

// A loop on a manual clock, current for the test.
class AdversarialTest : public ::testing::Test {
 protected:
  AdversarialTest() : clock(std::make_shared<ManualClock>()), loop(IOLoop::Options{clock}) {
    loop.make_current();
  }
  ~AdversarialTest() override { IOLoop::clear_current(); }

  // Runs the loop until nothing is queued (time does not move).
  void drain() {
    for (int i = 0; i < 1000; ++i) {
      loop.run_sync([] {});
      if (loop.stats().callbacks == 0) return;
    }
    ADD_FAILURE() << "the loop never went idle";
  }
  void advance(absl::Duration d) {
    clock->advance(d);
    drain();
  }

  std::shared_ptr<ManualClock> clock;
  IOLoop loop;
};

// --- with_timeout -------------------------------------------------------------

// Tornado's timeout_callback checks `if not result.done()` before failing
// the result: a caller that cancelled the with_timeout future must not
// make the timer throw InvalidStateError into the loop's error log.
TEST_F(AdversarialTest, WithTimeoutResultCancelledByTheCallerThenTheTimerFiresQuietly) {
  LogCapture log;
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(1), f);
  EXPECT_TRUE(r.cancel());
  advance(absl::Seconds(2));
  EXPECT_TRUE(r.cancelled());
  EXPECT_FALSE(f.done());  // not cancelled: Tornado semantics
  EXPECT_EQ(log.size(), 0u) << (log.size() ? log.lines()[0] : "");
  f.set_result(1);
  drain();
  EXPECT_EQ(log.size(), 0u) << (log.size() ? log.lines()[0] : "");
}

// As Tornado's error_callback: a wrapped future that fails after the
// timer fired is logged, also when the caller had cancelled the result.
TEST_F(AdversarialTest, WithTimeoutResultCancelledThenTheWrappedFutureFailsLate) {
  LogCapture log;
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(1), f);
  r.cancel();
  advance(absl::Seconds(2));
  f.set_exception(std::make_exception_ptr(std::runtime_error("late failure")));
  drain();
  EXPECT_EQ(log.count("late failure"), 1u);
  EXPECT_EQ(log.count("InvalidStateError"), 0u);
}

// A caller that gives up on a long timeout (cancels the result) must not
// leave the timer, and the futures it holds, queued until the deadline: a
// loop that does this for every request would grow for an hour.
TEST_F(AdversarialTest, WithTimeoutResultCancelledDropsItsTimerAtOnce) {
  const size_t before = loop.stats().timers;
  Future<int> f;
  Future<int> r = with_timeout(absl::Hours(1), f);
  EXPECT_EQ(loop.stats().timers, before + 1);
  EXPECT_TRUE(r.cancel());
  drain();
  EXPECT_EQ(loop.stats().timers, before);
  EXPECT_FALSE(f.done());  // not cancelled: Tornado semantics
}

// The same for a ConcurrentFuture, whose bridge holds the pool side.
TEST_F(AdversarialTest, WithTimeoutOnAConcurrentFutureCancelledDropsItsTimer) {
  const size_t before = loop.stats().timers;
  ConcurrentFuture<int> cf;
  Future<int> r = with_timeout(absl::Hours(1), cf, TimeoutOptions{{}, /*cancel_on_timeout=*/true});
  r.cancel();
  drain();
  EXPECT_EQ(loop.stats().timers, before);
  EXPECT_FALSE(cf.done());
  cf.set_result(1);
  drain();
}

// A failure after the caller cancelled, before the deadline, is logged once
// (as Tornado logs it at the deadline), and a success is not.
TEST_F(AdversarialTest, WithTimeoutResultCancelledThenTheWrappedFutureFailsBeforeTheDeadline) {
  LogCapture log;
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(10), f);
  r.cancel();
  drain();
  f.set_exception(std::make_exception_ptr(std::runtime_error("early failure")));
  drain();
  advance(absl::Seconds(20));
  EXPECT_EQ(log.count("early failure"), 1u) << (log.size() ? log.lines()[0] : "");

  Future<int> g;
  Future<int> r2 = with_timeout(absl::Seconds(10), g);
  r2.cancel();
  g.set_result(1);
  advance(absl::Seconds(20));
  EXPECT_EQ(log.size(), 1u) << (log.size() ? log.lines()[0] : "");
}

// A timeout the caller did not cancel still logs a late failure once.
TEST_F(AdversarialTest, WithTimeoutTimedOutThenTheWrappedFutureFailsIsLoggedOnce) {
  LogCapture log;
  Future<int> f;
  Future<int> r = with_timeout(absl::Seconds(1), f);
  advance(absl::Seconds(2));
  EXPECT_TRUE(r.done());
  EXPECT_THROW(r.result(), TimeoutError);
  f.set_exception(std::make_exception_ptr(std::runtime_error("late failure")));
  drain();
  EXPECT_EQ(log.count("late failure"), 1u) << (log.size() ? log.lines()[0] : "");
}

// --- run_sync ------------------------------------------------------------------

// A stop() issued while run_sync runs belongs to that run (asyncio clears
// its stopping flag when run_forever returns); it must not make a later
// run_sync fail as "stopped".
TEST_F(AdversarialTest, AStopDuringARunSyncThatFinishesDoesNotLeakIntoTheNextRun) {
  int v = loop.run_sync([this]() -> Future<int> {
    Future<int> f;
    loop.add_callback([this, f]() mutable {
      loop.stop();
      f.set_result(1);
    });
    return f;
  });
  EXPECT_EQ(v, 1);
  // This future needs two turns: a stale stop request would end the run
  // after the first one.
  int w = loop.run_sync([this]() -> Future<int> {
    Future<int> f;
    loop.add_callback([this, f]() mutable {
      loop.add_callback([f]() mutable { f.set_result(2); });
    });
    return f;
  });
  EXPECT_EQ(w, 2);
  // And start() runs until its own stop(), not one iteration.
  int turns = 0;
  std::function<void()> tick = [&] {
    if (++turns == 3) {
      loop.stop();
    } else {
      loop.add_callback(tick);
    }
  };
  loop.add_callback(tick);
  loop.start();
  EXPECT_EQ(turns, 3);
}

TEST_F(AdversarialTest, RunSyncTimeoutThenTheLoopIsReused) {
  Future<int> pending;
  EXPECT_THROW(loop.run_sync([&] { return pending; }, absl::Seconds(0)), TimeoutError);
  EXPECT_TRUE(pending.cancelled());
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(loop.stats().timers, 0u);
  int v = loop.run_sync([this]() -> Future<int> {
    Future<int> f;
    loop.add_callback([f]() mutable { f.set_result(5); });
    return f;
  });
  EXPECT_EQ(v, 5);
}

TEST_F(AdversarialTest, RunSyncFromInsideACallbackThrowsAndTheOuterRunGoesOn) {
  bool threw = false;
  int v = loop.run_sync([&]() -> Future<int> {
    Future<int> f;
    loop.add_callback([&, f]() mutable {
      try {
        loop.run_sync([] { return 1; });
      } catch (const InvalidStateError&) {
        threw = true;
      }
      f.set_result(7);
    });
    return f;
  });
  EXPECT_TRUE(threw);
  EXPECT_EQ(v, 7);
}


// --- close, other threads ----------------------------------------------------------

// Counts closures that ran and closures that were destroyed: each one
// queued must end exactly one of these two ways, whatever close() does.
struct Tally {
  std::atomic<int> made{0};
  std::atomic<int> ran{0};
  std::atomic<int> destroyed{0};
};
struct Counted {
  explicit Counted(Tally* t) : tally(t) { tally->made.fetch_add(1); }
  Counted(Counted&& o) noexcept : tally(std::exchange(o.tally, nullptr)) {}
  Counted(const Counted&) = delete;
  ~Counted() {
    if (tally != nullptr) tally->destroyed.fetch_add(1);
  }
  Tally* tally;
};

TEST(AdversarialCloseTest, PostsFromOtherThreadsWhileTheLoopRunsAndClosesAreNeverLost) {
  Tally tally;
  auto loop = std::make_unique<IOLoop>();
  std::atomic<bool> go{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 3; ++t) {
    posters.emplace_back([&, l = loop.get()] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 20000; ++i) {
        bool ok = l->add_callback([c = Counted(&tally)] { c.tally->ran.fetch_add(1); });
        if (!ok) {
          refused.fetch_add(1);
          break;  // closed for good
        }
      }
    });
  }
  go.store(true);
  // Run a while, then close under the posters' feet.
  for (int i = 0; i < 50; ++i) loop->run_sync([] {});
  loop->close();
  for (auto& t : posters) t.join();
  EXPECT_FALSE(loop->add_callback([] {}));
  loop.reset();
  EXPECT_EQ(tally.destroyed.load(), tally.made.load());
  EXPECT_LE(tally.ran.load(), tally.made.load());
}

// close() drops timers and callbacks whose captures, when destroyed, touch
// the closing loop: futures completing, waiters of a Lock handed over,
// a coroutine frame holding the lock.
TEST(AdversarialCloseTest, CloseWithTimersCallbacksAndCoroutinesOwningLoopResources) {
  auto log = std::make_unique<LogCapture>();
  auto loop = std::make_unique<IOLoop>();
  loop->make_current();
  auto lock = std::make_unique<Lock>();
  bool second_got_lock = false;
  bool first_finished = false;
  // The first coroutine holds the lock across a long sleep; the second
  // waits for it with a timeout (a timer of its own).
  auto holder = [&]() -> Future<void> {
    auto guard = co_await lock->acquire();
    co_await sleep(absl::Hours(1));
    first_finished = true;
  };
  auto waiter = [&]() -> Future<void> {
    auto guard = co_await lock->acquire(absl::Hours(2));
    second_got_lock = true;
  };
  Future<void> a = holder();
  Future<void> b = waiter();
  Future<int> orphan;
  loop->call_later(absl::Hours(3), [orphan]() mutable { orphan.set_result(1); });
  loop->add_callback([orphan] {});
  loop->run_sync([] {});
  EXPECT_TRUE(lock->locked());
  loop->close();
  EXPECT_FALSE(first_finished);
  EXPECT_FALSE(second_got_lock);
  // The frames are gone: the guard the first held went back to the lock,
  // and nobody can take it again from a dead frame.
  EXPECT_FALSE(a.done());
  EXPECT_FALSE(b.done());
  lock.reset();
  loop.reset();
  IOLoop::clear_current();
  EXPECT_EQ(log->size(), 0u) << (log->size() ? log->lines()[0] : "");
}

// --- coroutines -------------------------------------------------------------------

TEST_F(AdversarialTest, AwaitingAnAlreadyCancelledFutureThrowsCancelledErrorThere) {
  Future<int> f;
  f.cancel();
  auto body = [&]() -> Future<std::string> {
    try {
      co_await f;
    } catch (const CancelledError&) {
      co_return "caught";
    }
    co_return "not thrown";
  };
  Future<std::string> r = body();
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), "caught");
}

// A cancelled coroutine that catches CancelledError and goes on awaiting:
// its result stays cancelled, its later awaits still work, nothing is
// logged.
TEST_F(AdversarialTest, ACancelledCoroutineMayCleanUpWithMoreAwaits) {
  LogCapture log;
  Future<int> first;
  Future<int> cleanup;
  bool finished = false;
  auto body = [&]() -> Future<int> {
    bool cancelled = false;
    try {
      co_await first;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (!cancelled) co_return -1;
    int v = co_await cleanup;
    finished = v == 9;
    co_return v;
  };
  Future<int> r = body();
  EXPECT_TRUE(r.cancel());
  EXPECT_TRUE(first.cancelled());
  drain();
  EXPECT_FALSE(finished);
  // Cancelling again does nothing, and must not reach `cleanup`.
  EXPECT_FALSE(r.cancel());
  EXPECT_FALSE(cleanup.done());
  cleanup.set_result(9);
  drain();
  EXPECT_TRUE(finished);
  EXPECT_TRUE(r.cancelled());
  EXPECT_EQ(log.size(), 0u) << (log.size() ? log.lines()[0] : "");
}

// An exception escaping a cancelled coroutine (not CancelledError) must not
// vanish.
TEST_F(AdversarialTest, AnotherExceptionEscapingACancelledCoroutineIsLogged) {
  LogCapture log;
  Future<int> first;
  auto body = [&]() -> Future<int> {
    try {
      co_await first;
    } catch (const CancelledError&) {
      throw std::runtime_error("cleanup failed");
    }
    co_return 0;
  };
  Future<int> r = body();
  r.cancel();
  drain();
  EXPECT_EQ(log.count("cleanup failed"), 1u);
}

TEST_F(AdversarialTest, CancellingACoroutineAwaitingAVectorLeavesTheChildrenRunning) {
  LogCapture log;
  Future<int> a, b;
  auto body = [&]() -> Future<int> {
    std::vector<Future<int>> both = {a, b};
    std::vector<int> v = co_await both;
    co_return v[0] + v[1];
  };
  Future<int> r = body();
  EXPECT_TRUE(r.cancel());
  drain();
  EXPECT_FALSE(a.done());
  EXPECT_FALSE(b.done());
  a.set_result(1);
  b.set_exception(std::make_exception_ptr(std::runtime_error("late b")));
  drain();
  EXPECT_TRUE(r.cancelled());
  // Nobody will ever see b's failure but the log.
  EXPECT_EQ(log.count("late b"), 1u);
}

// --- multi --------------------------------------------------------------------------

TEST_F(AdversarialTest, MultiTupleWithTheSameFutureTwice) {
  Future<int> f;
  Future<std::string> g;
  auto r = multi(f, g, f);
  f.set_result(4);
  g.set_result("x");
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), std::make_tuple(4, std::string("x"), 4));
}

TEST_F(AdversarialTest, MultiLogsEachExtraFailureOnceEvenWhenListedTwice) {
  LogCapture log;
  Future<int> first, second;
  Future<std::vector<int>> r = multi(std::vector<Future<int>>{first, second, second, first});
  second.set_exception(std::make_exception_ptr(std::runtime_error("second")));
  first.set_exception(std::make_exception_ptr(std::logic_error("first")));
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_THROW(r.result(), std::logic_error);
  // Tornado logs every other failure it meets; the same exception listed
  // twice is one failure.
  EXPECT_GE(log.count("second"), 1u);
  EXPECT_EQ(log.count("first"), 0u);
}

TEST_F(AdversarialTest, MultiOverEmptyContainersIsDoneAtOnceWithAnEmptyResult) {
  auto v = multi(std::vector<Future<int>>{});
  auto m = multi(std::map<std::string, Future<int>>{});
  auto vv = multi(std::vector<Future<void>>{});
  ASSERT_TRUE(v.done() && m.done() && vv.done());
  EXPECT_TRUE(v.result().empty());
  EXPECT_TRUE(m.result().empty());
}

// --- first_completed, WaitIterator -------------------------------------------

TEST_F(AdversarialTest, FirstCompletedWithTheSameFutureTwiceNamesTheFirstPosition) {
  Future<int> f, g;
  Future<size_t> r = first_completed(std::vector<Future<int>>{g, f, f});
  f.set_result(1);
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 1u);
}

TEST_F(AdversarialTest, WaitIteratorDrivenByACoroutineSeesEveryIndexOnce) {
  std::vector<Future<int>> children(4);
  auto body = [&]() -> Future<std::vector<size_t>> {
    WaitIterator<int> it(children);
    std::vector<size_t> order;
    while (!it.done()) {
      int v = co_await it.next();
      EXPECT_EQ(v, static_cast<int>(it.current_index()) * 10);
      order.push_back(it.current_index());
    }
    co_return order;
  };
  Future<std::vector<size_t>> r = body();
  children[2].set_result(20);
  children[0].set_result(0);
  drain();
  children[3].set_result(30);
  children[1].set_result(10);
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), (std::vector<size_t>{2, 0, 3, 1}));
}

// --- sync ------------------------------------------------------------------------------

TEST_F(AdversarialTest, BoundedSemaphoreCountsOnlyRealReleasesAfterTimeouts) {
  BoundedSemaphore sem(1);
  Future<Semaphore::Releaser> held = sem.acquire();
  ASSERT_TRUE(held.done());
  held.result().detach();
  Future<Semaphore::Releaser> late = sem.acquire(absl::Seconds(1));
  advance(absl::Seconds(2));
  EXPECT_THROW(late.result(), TimeoutError);
  sem.release();
  EXPECT_EQ(sem.value(), 1);
  EXPECT_THROW(sem.release(), SemaphoreOverReleaseError);
  EXPECT_EQ(sem.value(), 1);
}

TEST_F(AdversarialTest, ConditionNotifyNSkipsTimedOutAndCancelledWaiters) {
  Condition cond;
  Future<void> w1 = cond.wait(absl::Seconds(1));
  Future<void> w2 = cond.wait();
  Future<void> w3 = cond.wait(absl::Seconds(1));
  Future<void> w4 = cond.wait();
  Future<void> w5 = cond.wait();
  w2.cancel();
  advance(absl::Seconds(2));
  EXPECT_EQ(cond.notify(2), 2u);
  drain();
  EXPECT_TRUE(w4.done());
  EXPECT_TRUE(w5.done());
  EXPECT_THROW(w1.result(), TimeoutError);
  EXPECT_THROW(w3.result(), TimeoutError);
  EXPECT_EQ(cond.waiter_count(), 0u);
}

TEST_F(AdversarialTest, QueuePutAndGetTimeoutsWithMaxsize) {
  Queue<int> q(1);
  ASSERT_TRUE(q.put(1).done());
  Future<void> p2 = q.put(2, absl::Seconds(1));
  Future<void> p3 = q.put(3);
  advance(absl::Seconds(2));
  EXPECT_THROW(p2.result(), TimeoutError);
  EXPECT_FALSE(p3.done());
  Future<int> g1 = q.get();
  ASSERT_TRUE(g1.done());
  EXPECT_EQ(g1.result(), 1);
  drain();
  EXPECT_TRUE(p3.done());
  Future<int> g2 = q.get(absl::Seconds(1));
  ASSERT_TRUE(g2.done());
  EXPECT_EQ(g2.result(), 3);  // 2 timed out: never entered
  Future<int> g3 = q.get(absl::Seconds(1));
  advance(absl::Seconds(2));
  EXPECT_THROW(g3.result(), TimeoutError);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  q.task_done();
  q.task_done();
  EXPECT_TRUE(q.join().done());
}

TEST_F(AdversarialTest, EventWaiterThatTimedOutStaysFailedAfterSet) {
  Event e;
  Future<void> w = e.wait(absl::Seconds(1));
  Future<void> forever = e.wait();
  advance(absl::Seconds(2));
  e.set();
  drain();
  EXPECT_THROW(w.result(), TimeoutError);
  EXPECT_TRUE(forever.done());
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST_F(AdversarialTest, LockHandedToAWaiterWhoseCoroutineWasCancelledComesBack) {
  Lock lock;
  Future<Semaphore::Releaser> held = lock.acquire();
  ASSERT_TRUE(held.done());
  bool ran = false;
  auto body = [&]() -> Future<void> {
    auto guard = co_await lock.acquire();
    ran = true;
  };
  Future<void> r = body();
  // Released and cancelled in the same turn: the release hands the lock to
  // the waiting acquire() first.
  held.result().reset();
  r.cancel();
  drain();
  // Either the coroutine ran with the lock and gave it back, or it never
  // got it: the lock must not stay taken.
  EXPECT_FALSE(lock.locked());
  (void)ran;
}


// --- deep eager starts -----------------------------------------------------------------

// Each level starts the next: past internal::kMaxEagerDepth the start of a
// level waits for the next turn.
Future<int> nest(int depth, int* started, Future<int> gate) {
  ++*started;
  if (depth == 0) co_return co_await gate;
  co_return co_await nest(depth - 1, started, gate) + 1;
}

// A coroutine whose start was deferred is suspended too: cancelling it
// before that turn must end it there (CancelledError at its start), not let
// its body run later as if nothing happened.
TEST_F(AdversarialTest, ACoroutineCancelledBeforeItsDeferredStartNeverRunsItsBody) {
  LogCapture log;
  int started = 0;
  Future<int> gate;
  Future<int> outer = nest(3 * internal::kMaxEagerDepth, &started, gate);
  const int started_eagerly = started;
  ASSERT_LT(started_eagerly, 3 * internal::kMaxEagerDepth + 1);  // some start was deferred
  EXPECT_TRUE(outer.cancel());
  drain();
  EXPECT_EQ(started, started_eagerly);
  EXPECT_TRUE(outer.cancelled());
  EXPECT_FALSE(gate.done());
  EXPECT_EQ(log.size(), 0u) << (log.size() ? log.lines()[0] : "");
}

TEST_F(AdversarialTest, DeferredStartsStillCompleteTheWholeChain) {
  int started = 0;
  Future<int> gate;
  Future<int> outer = nest(3 * internal::kMaxEagerDepth, &started, gate);
  drain();
  EXPECT_EQ(started, 3 * internal::kMaxEagerDepth + 1);
  gate.set_result(0);
  drain();
  ASSERT_TRUE(outer.done());
  EXPECT_EQ(outer.result(), 3 * internal::kMaxEagerDepth);
}


// --- co_await of an rvalue handle to a shared future ----------------------------------

// A cache of in-flight work hands out copies of one future (Tornado code
// shares futures like this all the time). `co_await get()` awaits an
// rvalue handle, but the state is shared: taking the value out of it would
// leave an empty value to every other holder.
TEST_F(AdversarialTest, AwaitingARvalueHandleToASharedFutureLeavesTheValueToTheOthers) {
  Future<std::string> cached;
  auto get = [&] { return cached; };
  auto reader = [&]() -> Future<std::string> { co_return co_await get(); };
  Future<std::string> a = reader();
  Future<std::string> b = reader();
  cached.set_result(std::string(100, 'x'));
  drain();
  ASSERT_TRUE(a.done() && b.done());
  EXPECT_EQ(a.result(), std::string(100, 'x'));
  EXPECT_EQ(b.result(), std::string(100, 'x'));
  EXPECT_EQ(cached.result(), std::string(100, 'x'));
  // Already done: the same holds without suspending.
  Future<std::string> c = reader();
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.result(), std::string(100, 'x'));
  EXPECT_EQ(cached.result(), std::string(100, 'x'));
}

// The sole handle may still give its value away (no copy of a big value).
TEST_F(AdversarialTest, AwaitingTheOnlyHandleMovesTheValueOut) {
  struct Big {
    Big() = default;
    Big(const Big&) { ++copies(); }
    Big(Big&&) noexcept = default;
    Big& operator=(const Big&) = default;
    Big& operator=(Big&&) noexcept = default;
    static int& copies() {
      static int n = 0;
      return n;
    }
  };
  Big::copies() = 0;
  auto produce = [&]() -> Future<Big> { co_return Big(); };
  auto consume = [&]() -> Future<int> {
    Big b = co_await produce();
    (void)b;
    co_return Big::copies();
  };
  Future<int> r = consume();
  drain();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 0);
}


// --- a coroutine's future after its loop is gone -----------------------------------

// The loop destroyed the suspended frame; its future lives on in the
// caller's hands. Cancelling it must not reach into the destroyed frame (or
// the future that frame was awaiting).
TEST(AdversarialLifetimeTest, CancellingACoroutinesFutureAfterItsLoopDestroyedTheFrame) {
  Future<int> r;
  Future<void> r2;
  {
    IOLoop loop;
    loop.make_current();
    auto body = []() -> Future<int> {
      co_await sleep(absl::Hours(1));
      co_return 1;
    };
    auto plain = []() -> Future<void> {
      Future<int> never;
      co_await never;
    };
    r = body();
    r2 = plain();
    loop.run_sync([] {});
    IOLoop::clear_current();
  }
  EXPECT_FALSE(r.done());
  EXPECT_TRUE(r.cancel());
  EXPECT_TRUE(r.cancelled());
  EXPECT_TRUE(r2.cancel());
}


// --- waiters nobody can receive any more -------------------------------------------

// A consumer suspended in q.get() is destroyed with its loop; the queue
// lives on and is used from another loop. The dead getter used to take the
// next item, which was lost.
TEST(AdversarialLifetimeTest, AQueueGetterWhoseLoopWentDoesNotSwallowTheNextItem) {
  Queue<int> q;
  Condition cond;
  bool resumed = false;
  {
    IOLoop loop;
    loop.make_current();
    auto consumer = [&]() -> Future<void> {
      co_await q.get();
      resumed = true;
    };
    auto sleeper = [&]() -> Future<void> {
      co_await cond.wait();
      resumed = true;
    };
    Future<void> c = consumer();
    Future<void> w = sleeper();
    loop.run_sync([] {});
    IOLoop::clear_current();
  }
  IOLoop other;
  other.make_current();
  q.put_nowait(7);
  EXPECT_EQ(q.qsize(), 1u) << "the item went to a getter nobody can receive";
  EXPECT_EQ(q.get_nowait(), 7);
  // notify(1) must reach a live waiter, not the dead one.
  bool woken = false;
  auto live = [&]() -> Future<void> {
    co_await cond.wait();
    woken = true;
  };
  Future<void> l = live();
  cond.notify(1);
  other.run_sync([&] { return l; });
  EXPECT_TRUE(woken);
  EXPECT_FALSE(resumed);
  IOLoop::clear_current();
}

// A get() whose future the caller dropped (no callback, no await) does not
// take an item either; one with a callback does.
TEST_F(AdversarialTest, DroppedGettersAreSkippedButGettersWithCallbacksAreServed) {
  Queue<int> q;
  (void)q.get();  // dropped: nobody can receive
  int got = 0;
  q.get().add_done_callback([&](Future<int>& f) { got = f.result(); });
  q.put_nowait(1);
  q.put_nowait(2);
  drain();
  EXPECT_EQ(got, 1);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get_nowait(), 2);
}

// A put() whose future the caller dropped still puts its item when room
// appears (fire and forget), as in Tornado.
TEST_F(AdversarialTest, ADroppedPutStillPutsItsItem) {
  Queue<int> q(1);
  q.put_nowait(1);
  (void)q.put(2);  // waits for room; its future is dropped
  EXPECT_EQ(q.get_nowait(), 1);
  drain();
  EXPECT_EQ(q.get_nowait(), 2);
}

// --- cancellation that arrives while a coroutine is not suspended -----------------

// A consumer's get() is answered and, in the same turn, the consumer is
// cancelled (a shutdown cancelling every task). Its resume is already
// queued, so the cancel cannot reach the finished get(); asyncio keeps such
// a cancellation (Task._must_cancel) and throws it at the next await. It
// must not be lost: a consumer that ignores it would loop forever with its
// future saying "cancelled".
TEST_F(AdversarialTest, ACancellationArrivingWithTheResumeQueuedEndsTheNextAwait) {
  Queue<int> q;
  std::vector<int> got;
  bool saw_cancel = false;
  auto consumer = [&]() -> Future<void> {
    try {
      for (;;) got.push_back(co_await q.get());
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
  };
  Future<void> c = consumer();
  q.put_nowait(1);        // completes the pending get(): resume queued
  EXPECT_TRUE(c.cancel());
  drain();
  // The item already handed over is not lost; the next get() is cancelled.
  EXPECT_EQ(got, std::vector<int>{1});
  EXPECT_TRUE(saw_cancel);
  EXPECT_TRUE(c.cancelled());
  q.put_nowait(2);
  drain();
  EXPECT_EQ(got, std::vector<int>{1});
  EXPECT_EQ(q.qsize(), 1u);  // nobody took it
}

// The same when the coroutine cancels itself (through its own future)
// while it runs.
TEST_F(AdversarialTest, ACoroutineCancelledWhileRunningGetsCancelledErrorAtItsNextAwait) {
  auto self = std::make_shared<Future<void>>();
  Future<int> gate;
  Future<int> next;
  bool after = false;
  bool saw_cancel = false;
  auto body = [&]() -> Future<void> {
    co_await gate;
    self->cancel();  // e.g. a shutdown() that cancels every task, this one too
    try {
      co_await next;
      after = true;
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
  };
  *self = body();
  gate.set_result(1);
  drain();
  EXPECT_TRUE(saw_cancel);
  EXPECT_FALSE(after);
  EXPECT_TRUE(next.cancelled());  // the await it reached took the cancellation
  EXPECT_TRUE(self->cancelled());
}

}  // namespace
}  // namespace eddy
