// add_future (loop and concurrent futures) and run_in_loop.
#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/live_count.h"
#include "tests/loop_test_util.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::Event;
using testing::Probe;
using testing::ProbeLog;
using testing::thrown_what;
using testing::Tracked;

class AddFutureTest : public ::testing::Test {
 protected:
  AddFutureTest() { loop.make_current(); }
  ~AddFutureTest() override { IOLoop::clear_current(); }
  IOLoop loop;
};

TEST_F(AddFutureTest, LoopFutureCallbackRunsOnTheLoopAfterCompletion) {
  Future<int> f;
  int got = 0;
  loop.add_future(f, [&](Future<int>& done) { got = done.result(); });
  f.set_result(5);
  EXPECT_EQ(got, 0);  // never inline
  loop.run_sync([] {});
  EXPECT_EQ(got, 5);
}

TEST_F(AddFutureTest, CallbackMayTakeNoArguments) {
  Future<void> f;
  bool ran = false;
  loop.add_future(f, [&] { ran = true; });
  f.set_result();
  loop.run_sync([] {});
  EXPECT_TRUE(ran);
}

TEST_F(AddFutureTest, ConcurrentFutureCompletedOnAnotherThreadWhileTheLoopSleeps) {
  ConcurrentFuture<int> cf;
  Future<void> done;
  std::thread::id ran_on;
  int got = 0;
  loop.add_future(cf, [&](ConcurrentFuture<int>& f) {
    got = f.result();
    ran_on = std::this_thread::get_id();
    done.set_result();
  });
  Event sleeping;
  loop.add_callback([&] { sleeping.set(); });
  std::thread::id worker_id;
  std::thread worker([&] {
    worker_id = std::this_thread::get_id();
    ASSERT_TRUE(sleeping.wait());
    cf.set_result(42);  // the loop has nothing else to do: it is asleep
  });
  loop.run_sync([&] { return done; });
  worker.join();
  EXPECT_EQ(got, 42);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_NE(ran_on, worker_id);
}

TEST_F(AddFutureTest, AlreadyDoneConcurrentFutureStillCallsBackLater) {
  ConcurrentFuture<int> cf;
  cf.set_result(1);
  bool ran = false;
  loop.add_future(cf, [&] { ran = true; });
  EXPECT_FALSE(ran);
  loop.run_sync([] {});
  EXPECT_TRUE(ran);
}

TEST_F(AddFutureTest, AlreadyDoneConcurrentFutureGetsItselfAndLetsGoAfterTheCallback) {
  ASSERT_EQ(Tracked::live.load(), 0);
  std::vector<int> got;
  {
    ConcurrentFuture<Tracked> done_first;
    ConcurrentFuture<Tracked> pending;
    loop.add_future(pending, [&got](ConcurrentFuture<Tracked>& f) { got.push_back(f.result().v); });
    pending.set_result(Tracked(1));  // delivered through the loop's inbox
    done_first.set_result(Tracked(2));
    loop.add_future(done_first, [&got, expected = done_first](ConcurrentFuture<Tracked>& f) {
      EXPECT_TRUE(f == expected);
      got.push_back(f.result().v);
    });
    EXPECT_TRUE(got.empty());  // never inline
    Future<void> both;
    loop.add_callback([&] { loop.add_callback([&] { both.set_result(); }); });
    loop.run_sync([&] { return both; });
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_EQ(Tracked::live.load(), 0);  // neither callback kept its future
}

TEST(AddFutureLifetimeTest, AlreadyDoneFuturesCallbackDiesUnrunOnTheLoopWhenTheLoopCloses) {
  ASSERT_EQ(Tracked::live.load(), 0);
  auto probes = std::make_shared<ProbeLog>();
  bool ran = false;
  std::thread::id loop_thread;
  std::thread owner([&] {
    loop_thread = std::this_thread::get_id();
    IOLoop loop;
    ConcurrentFuture<Tracked> cf;
    cf.set_result(Tracked(1));
    loop.add_future(cf, [&ran, p = Probe(probes)] { ran = true; });
  });  // the loop goes before any iteration ran
  owner.join();
  EXPECT_FALSE(ran);
  EXPECT_EQ(probes->alive.load(), 0);
  EXPECT_EQ(probes->destroyed_on(), loop_thread);
  EXPECT_EQ(Tracked::live.load(), 0);
}

TEST_F(AddFutureTest, ConcurrentFailureReachesTheCallback) {
  ConcurrentFuture<int> cf;
  Future<void> done;
  std::string what;
  loop.add_future(cf, [&](ConcurrentFuture<int>& f) {
    try {
      f.result();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    done.set_result();
  });
  std::thread worker([&] { cf.set_exception(std::make_exception_ptr(std::runtime_error("bad"))); });
  loop.run_sync([&] { return done; });
  worker.join();
  EXPECT_EQ(what, "bad");
}

// A moved-from future is an InvalidStateError naming add_future, and
// nothing is registered: for a Future it used to read "Future:: : the
// handle is empty (moved from)"; a ConcurrentFuture crashed the process.
TEST_F(AddFutureTest, AnEmptyFutureIsAnErrorNamingAddFuture) {
  Future<int> f;
  Future<int> taken = std::move(f);
  bool called = false;
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { loop.add_future(f, [&] { called = true; }); }),
            "IOLoop::add_future: the Future f is empty (moved from)");
  ConcurrentFuture<int> cf;
  ConcurrentFuture<int> taken_cf = std::move(cf);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { loop.add_future(cf, [&] { called = true; }); }),
            "IOLoop::add_future: the ConcurrentFuture f is empty (moved from)");
  loop.run_sync([] {});
  EXPECT_FALSE(called);
}

TEST_F(AddFutureTest, TheCallbackGetsTheSameFutureAndNothingHoldsItAfterwards) {
  ASSERT_EQ(Tracked::live.load(), 0);
  std::vector<Future<void>> done(3);
  std::vector<int> got;
  {
    std::vector<ConcurrentFuture<Tracked>> cfs(3);
    for (int i = 0; i < 3; ++i) {
      loop.add_future(cfs[i], [&, i, expected = cfs[i]](ConcurrentFuture<Tracked>& f) {
        EXPECT_TRUE(f == expected);  // the future itself, not a copy of its value
        got.push_back(f.result().v);
        done[i].set_result();
      });
    }
    std::thread worker([&] {
      for (int i = 2; i >= 0; --i) cfs[i].set_result(Tracked(10 + i));
    });
    loop.run_sync([&] { return multi(done); });
    worker.join();
  }
  EXPECT_EQ(got, (std::vector<int>{12, 11, 10}));
  // Each callback (and its copy of the future) died after it ran, and the
  // future handed to it went with the delivery: no handle kept the values.
  EXPECT_EQ(Tracked::live.load(), 0);
}

TEST(AddFutureLifetimeTest, FutureCompletedAfterTheLoopWentIsNotKeptAlive) {
  ASSERT_EQ(Tracked::live.load(), 0);
  ConcurrentFuture<Tracked> cf;
  bool ran = false;
  {
    IOLoop loop;
    loop.make_current();
    loop.add_future(cf, [&ran] { ran = true; });
    IOLoop::clear_current();
  }
  std::thread worker([cf]() mutable { cf.set_result(Tracked(1)); });
  worker.join();
  EXPECT_EQ(Tracked::live.load(), 1);  // cf still holds its value
  cf = ConcurrentFuture<Tracked>();
  // The delivery that could not post let go of the done future it was handed.
  EXPECT_EQ(Tracked::live.load(), 0);
  EXPECT_FALSE(ran);
}

TEST(AddFutureLifetimeTest, CallbackDiesOnTheLoopThreadWhenTheLoopGoesFirst) {
  auto probes = std::make_shared<ProbeLog>();
  ConcurrentFuture<int> cf;
  bool ran = false;
  {
    IOLoop loop;
    loop.make_current();
    loop.add_future(cf, [&ran, p = Probe(probes)] { ran = true; });
    IOLoop::clear_current();
  }
  EXPECT_EQ(probes->alive.load(), 0);
  EXPECT_EQ(probes->destroyed_on(), std::this_thread::get_id());
  std::thread worker([&] { cf.set_result(1); });  // nothing left to deliver to
  worker.join();
  EXPECT_FALSE(ran);
}

TEST(AddFutureLifetimeTest, ConcurrentFutureDroppedUnfinishedFreesTheCallbackOnTheLoop) {
  auto probes = std::make_shared<ProbeLog>();
  IOLoop loop;
  loop.make_current();
  std::thread::id destroyed_on;
  {
    ConcurrentFuture<int> cf;
    loop.add_future(cf, [p = Probe(probes)] {});
    std::thread other([cf = std::move(cf)]() mutable { ConcurrentFuture<int> last = std::move(cf); });
    other.join();
  }
  // The last handle died on the other thread; the callback dies here, on a
  // later iteration.
  loop.run_sync([] {});
  EXPECT_EQ(probes->alive.load(), 0);
  EXPECT_EQ(probes->destroyed_on(), std::this_thread::get_id());
  IOLoop::clear_current();
}

// Counts the copies of a callback's capture alive, and those destroyed on
// a thread other than the loop's.
struct Census {
  std::thread::id loop_thread = std::this_thread::get_id();
  std::atomic<int> alive{0};
  std::atomic<int> destroyed_off_loop{0};
};

class Witness {
 public:
  explicit Witness(Census* c) : c_(c) { ++c_->alive; }
  Witness(const Witness& o) : c_(o.c_) { ++c_->alive; }
  Witness(Witness&& o) noexcept : c_(o.c_) { ++c_->alive; }
  Witness& operator=(const Witness&) = delete;
  ~Witness() {
    --c_->alive;
    if (std::this_thread::get_id() != c_->loop_thread) ++c_->destroyed_off_loop;
  }

 private:
  Census* c_;
};

// Thousands of deliveries in flight while the loop goes away: some have run,
// some wait in the loop's queue when it closes, some are posted after it is
// gone, some futures complete only then. Each callback runs at most once,
// and every copy of its captures dies on the loop's thread, exactly once.
TEST(AddFutureLifetimeTest, DeliveriesInFlightWhenTheLoopGoesDieOnTheLoopExactlyOnce) {
  ASSERT_EQ(Tracked::live.load(), 0);
  constexpr int kFutures = 2000;
  for (int round = 0; round < 20; ++round) {
    Census census;
    int ran = 0;
    std::vector<ConcurrentFuture<Tracked>> futures(kFutures);
    std::atomic<bool> go{false};
    std::thread completer([&go, futures]() mutable {
      while (!go.load()) std::this_thread::yield();
      for (auto& f : futures) f.set_result(Tracked(1));
    });
    {
      IOLoop loop;
      loop.make_current();
      for (auto& f : futures) {
        loop.add_future(f, [&ran, w = Witness(&census)](ConcurrentFuture<Tracked>& done) {
          EXPECT_EQ(done.result().v, 1);
          ++ran;
        });
      }
      go.store(true);
      // Some deliveries run (none in the first round, more in each later
      // one); the rest are still on their way when the loop goes.
      const int target = round * kFutures / 20;
      while (ran < target) loop.run_sync([] {});
      IOLoop::clear_current();
    }
    completer.join();
    futures.clear();
    EXPECT_LE(ran, kFutures);
    EXPECT_EQ(census.alive.load(), 0) << "round " << round;
    EXPECT_EQ(census.destroyed_off_loop.load(), 0) << "round " << round;
    EXPECT_EQ(Tracked::live.load(), 0) << "round " << round;
  }
}

TEST(RunInLoopTest, RunsOnTheLoopThreadAndReturnsTheValueToAnotherThread) {
  IOLoop loop;
  Event stop_now;
  std::thread::id loop_thread = std::this_thread::get_id();
  int got = 0;
  std::thread::id ran_on;
  std::thread client([&] {
    ConcurrentFuture<int> r = loop.run_in_loop([&] {
      ran_on = std::this_thread::get_id();
      return 6 * 7;
    });
    got = r.result();
    loop.stop();
  });
  loop.start();
  client.join();
  EXPECT_EQ(got, 42);
  EXPECT_EQ(ran_on, loop_thread);
}

TEST(RunInLoopTest, AFunctionReturningAFutureCompletesWithThatFuturesOutcome) {
  IOLoop loop;
  std::string got;
  std::thread client([&] {
    ConcurrentFuture<std::string> r = loop.run_in_loop([&loop]() -> Future<std::string> {
      Future<std::string> f;
      loop.call_later(absl::Milliseconds(1), [f]() mutable { f.set_result("later"); });
      return f;
    });
    got = r.result();
    loop.stop();
  });
  loop.start();
  client.join();
  EXPECT_EQ(got, "later");
}

// As run_sync: a future returned by reference completes the
// ConcurrentFuture with its outcome (this did not compile before: the
// result type was ConcurrentFuture<Future<T>&>).
TEST(RunInLoopTest, AFutureReturnedByReferenceCompletesWithThatFuturesOutcome) {
  IOLoop loop;
  Future<int> kept;
  int got = 0;
  std::thread client([&] {
    ConcurrentFuture<int> r = loop.run_in_loop([&]() -> const Future<int>& {
      kept = Future<int>();
      loop.call_later(absl::Milliseconds(1), [f = kept]() mutable { f.set_result(8); });
      return kept;
    });
    got = r.result();
    loop.stop();
  });
  loop.start();
  client.join();
  EXPECT_EQ(got, 8);
}

TEST(RunInLoopTest, ExceptionsTravelToTheWaiter) {
  IOLoop loop;
  bool threw = false;
  std::thread client([&] {
    ConcurrentFuture<void> r = loop.run_in_loop([] { throw std::runtime_error("in loop"); });
    try {
      r.result();
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "in loop";
    }
    loop.stop();
  });
  loop.start();
  client.join();
  EXPECT_TRUE(threw);
}

TEST(RunInLoopTest, ALoopClosedFirstFailsTheFutureInsteadOfHanging) {
  ConcurrentFuture<int> r;
  {
    IOLoop loop;
    r = loop.run_in_loop([] { return 1; });  // queued, never run
  }
  EXPECT_THROW(r.result(), CancelledError);
  IOLoop closed;
  closed.close();
  EXPECT_THROW(closed.run_in_loop([] { return 1; }).result(), CancelledError);
}

// fn's future may outlive the loop (a handle the application keeps, an
// Event's waiter): closing the loop still fails the ConcurrentFuture with
// CancelledError, at the close. (Its completer used to live only in a
// callback on that future, so it stayed pending as long as the future
// lived.) What the future gets after the close is not passed on.
TEST(RunInLoopTest, ALoopClosedWhileFnsFutureIsPendingFailsItEvenIfThatFutureOutlivesTheLoop) {
  std::optional<Future<int>> held;  // outlives the loop
  ConcurrentFuture<int> r;
  {
    IOLoop loop;
    r = loop.run_in_loop([&] {
      held.emplace();
      return *held;
    });
    loop.run_sync([] {});  // runs fn
    ASSERT_TRUE(held.has_value());
    EXPECT_FALSE(r.done());
    loop.close();
    EXPECT_TRUE(r.done());
  }
  EXPECT_THROW(r.result(absl::Seconds(1)), CancelledError);
  held->set_result(7);  // the loop is gone: its callbacks run inline
  EXPECT_THROW(r.result(), CancelledError);
  held.reset();
}

// The same with the waiter on another thread, blocked before the close: it
// wakes with CancelledError instead of waiting for as long as the future
// lives.
TEST(RunInLoopTest, AThreadWaitingOnFnsFutureWakesWhenTheLoopIsDestroyed) {
  std::optional<Future<void>> held;
  auto loop = std::make_unique<IOLoop>();
  ConcurrentFuture<void> r = loop->run_in_loop([&] {
    held.emplace();
    return *held;
  });
  std::atomic<bool> cancelled{false};
  std::thread waiter([&] {
    try {
      r.result(absl::Seconds(5));
    } catch (const CancelledError&) {
      cancelled = true;
    } catch (const TimeoutError&) {
    }
  });
  loop->run_sync([] {});  // runs fn
  loop.reset();
  waiter.join();
  EXPECT_TRUE(cancelled);
  held.reset();
}

// Without a close, the outcome of fn's future arrives as before, and a
// future of fn's destroyed pending fails the ConcurrentFuture.
TEST(RunInLoopTest, FnsFutureCompletingOrDyingPendingStillDecidesTheOutcome) {
  IOLoop loop;
  std::optional<Future<int>> held;
  ConcurrentFuture<int> value = loop.run_in_loop([&] {
    held.emplace();
    return *held;
  });
  ConcurrentFuture<int> dropped = loop.run_in_loop([] { return Future<int>(); });
  loop.run_sync([] {});
  EXPECT_TRUE(dropped.done());
  EXPECT_THROW(dropped.result(absl::ZeroDuration()), CancelledError);
  EXPECT_FALSE(value.done());
  held->set_result(5);
  loop.run_sync([] {});  // held's callbacks run
  EXPECT_EQ(value.result(absl::ZeroDuration()), 5);
  held.reset();
  loop.run_sync([] {});
  loop.close();
  EXPECT_EQ(value.result(absl::ZeroDuration()), 5);
}

TEST(RunInLoopTest, WaitingWithoutTimeoutOnTheLoopsOwnThreadThrowsInsteadOfDeadlocking) {
  IOLoop loop;
  loop.make_current();
  ConcurrentFuture<int> r = loop.run_in_loop([] { return 1; });
  try {
    r.result();
    FAIL() << "no error";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("deadlock"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.exception(), InvalidStateError);
  // Inside a callback of the running loop, too.
  bool threw = false;
  loop.add_callback([&] {
    ConcurrentFuture<int> r2 = loop.run_in_loop([] { return 2; });
    try {
      r2.result();
    } catch (const InvalidStateError&) {
      threw = true;
    }
  });
  loop.run_sync([] {});
  EXPECT_TRUE(threw);
  // Once done, there is nothing to wait for.
  EXPECT_EQ(r.result(), 1);
  IOLoop::clear_current();
}

// With a timeout the wait would block the loop for all of it and then time
// out, the work never done meanwhile: it throws at once too (an hour's
// timeout would otherwise hang the test). A zero timeout only looks.
TEST(RunInLoopTest, WaitingWithATimeoutOnTheLoopsOwnThreadThrowsAtOnceTooButAZeroTimeoutPolls) {
  IOLoop loop;
  loop.make_current();
  const absl::Duration kHour = absl::Hours(1);
  ConcurrentFuture<int> r = loop.run_in_loop([] { return 1; });
  const std::string what = thrown_what<InvalidStateError>([&] { r.result(kHour); });
  EXPECT_NE(what.find("would deadlock"), std::string::npos) << what;
  EXPECT_EQ(what.find("or a timeout"), std::string::npos) << what;
  EXPECT_THROW(r.result(absl::InfiniteDuration()), InvalidStateError);
  EXPECT_THROW(r.exception(kHour), InvalidStateError);
  EXPECT_THROW(ConcurrentFuture<int>(r).result(kHour), InvalidStateError);  // a temporary
  EXPECT_THROW(r.result(absl::ZeroDuration()), TimeoutError);
  EXPECT_THROW(r.exception(absl::ZeroDuration()), TimeoutError);
  EXPECT_THROW(r.result(-absl::Seconds(1)), TimeoutError);
  // Inside a callback of the running loop, too (the review's case:
  // result(2s) blocked the loop for 2 s, then timed out).
  std::string in_loop;
  ConcurrentFuture<int> r2;
  loop.add_callback([&] {
    r2 = loop.run_in_loop([] { return 2; });
    in_loop = thrown_what<InvalidStateError>([&] { r2.result(absl::Seconds(2)); });
  });
  loop.run_sync([] {});
  EXPECT_NE(in_loop.find("would deadlock"), std::string::npos) << in_loop;
  loop.run_sync([] {});
  EXPECT_EQ(r2.result(kHour), 2) << "the loop went on and completed it";
  EXPECT_EQ(r.result(kHour), 1) << "done: nothing to wait for";
  IOLoop::clear_current();
}

}  // namespace
}  // namespace eddy
