// IOLoop::run_sync: results, exceptions, timeouts, the kinds of fn.
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::thrown_what;

TEST(RunSyncTest, ReturnsTheFuturesResult) {
  IOLoop loop;
  int v = loop.run_sync([&loop]() -> Future<int> {
    Future<int> f;
    loop.add_callback([f]() mutable { f.set_result(3); });
    return f;
  });
  EXPECT_EQ(v, 3);
}

TEST(RunSyncTest, RethrowsTheFuturesException) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop]() -> Future<int> {
    Future<int> f;
    loop.add_callback(
        [f]() mutable { f.set_exception(std::make_exception_ptr(std::runtime_error("no"))); });
    return f;
  }),
               std::runtime_error);
}

TEST(RunSyncTest, AnExceptionThrownByFnPropagates) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([]() -> Future<int> { throw std::logic_error("early"); }),
               std::logic_error);
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(loop.run_sync([] { return 1; }), 1);  // still usable
}

TEST(RunSyncTest, APlainValueIsReturnedAsIs) {
  IOLoop loop;
  EXPECT_EQ(loop.run_sync([] { return std::string("plain"); }), "plain");
  bool ran = false;
  loop.run_sync([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(RunSyncTest, APlainFnStillLetsTheCallbacksItQueuedRunOnce) {
  IOLoop loop;
  bool ran = false;
  loop.run_sync([&] { loop.add_callback([&] { ran = true; }); });
  EXPECT_TRUE(ran);
}

// As Tornado (and asyncio's run_until_complete): fn runs as a callback of
// the loop, behind the callbacks already queued; it used to run before
// them, outside the loop's turn.
// Tornado: ioloop.py run_sync (add_callback(run); start())
TEST(RunSyncTest, CallbacksQueuedBeforeRunSyncRunBeforeFn) {
  IOLoop loop;
  loop.make_current();
  std::vector<std::string> order;
  loop.add_callback([&] { order.push_back("queued"); });
  loop.run_sync([&] { order.push_back("fn"); });
  EXPECT_EQ(order, (std::vector<std::string>{"queued", "fn"}));
  loop.add_callback([&] { order.push_back("queued 2"); });
  EXPECT_EQ(loop.run_sync([&] {
    order.push_back("future fn");
    return make_ready_future(7);
  }),
            7);
  EXPECT_EQ(order, (std::vector<std::string>{"queued", "fn", "queued 2", "future fn"}));
  IOLoop::clear_current();
}

// A throwing fn still lets the loop run what it queued before throwing,
// then its exception propagates (Tornado stores it in the future and the
// loop goes round once more); it used to propagate with no iteration.
// Tornado: ioloop_test.py test_sync_exception
TEST(RunSyncTest, AThrowingFnStillLetsTheCallbacksItQueuedRun) {
  IOLoop loop;
  bool ran = false;
  EXPECT_THROW(loop.run_sync([&]() -> Future<int> {
    loop.add_callback([&] { ran = true; });
    throw std::logic_error("early");
  }),
               std::logic_error);
  EXPECT_TRUE(ran);
  EXPECT_FALSE(loop.is_running());
}

// A timeout cancels the ConcurrentFuture fn returned, not only the loop's
// bridge to it: work still queued in its pool never runs (Tornado cancels
// the concurrent future itself; with_timeout already did).
// Tornado: ioloop_test.py test_timeout (ioloop.py run_sync timeout_callback)
TEST(RunSyncTest, ATimeoutCancelsAConcurrentFutureThatIsStillQueued) {
  IOLoop loop;
  ConcurrentFuture<int> queued;  // pending, as a task waiting in a pool's queue
  EXPECT_THROW(loop.run_sync([&] { return queued; }, absl::Milliseconds(10)), TimeoutError);
  EXPECT_TRUE(queued.cancelled());
  ConcurrentFuture<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  EXPECT_THROW(loop.run_sync([&] { return running; }, absl::Milliseconds(10)), TimeoutError);
  EXPECT_TRUE(running.running()) << "running work cannot be cancelled";
  running.set_result(1);
}

TEST(RunSyncTest, ReturnsAConcurrentFuturesResult) {
  IOLoop loop;
  std::thread worker;
  int v = loop.run_sync([&] {
    ConcurrentFuture<int> cf;
    worker = std::thread([cf]() mutable { cf.set_result(9); });
    return cf;
  });
  worker.join();
  EXPECT_EQ(v, 9);
}

TEST(RunSyncTest, MoveOnlyResultsAreMovedOut) {
  IOLoop loop;
  std::unique_ptr<int> p = loop.run_sync([] { return make_ready_future(std::make_unique<int>(4)); });
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 4);
}

// A container of move-only values, which std::is_copy_constructible_v takes
// for copyable, is moved out too (run_sync and run_in_loop).
TEST(RunSyncTest, ContainersOfMoveOnlyValuesAreMovedOut) {
  using Rows = std::vector<std::unique_ptr<int>>;
  IOLoop loop;
  Rows rows = loop.run_sync([] {
    Rows r;
    r.push_back(std::make_unique<int>(4));
    return make_ready_future(std::move(r));
  });
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(*rows[0], 4);
  ConcurrentFuture<Rows> from_loop = loop.run_in_loop([]() -> Future<Rows> {
    Rows r;
    r.push_back(std::make_unique<int>(5));
    return make_ready_future(std::move(r));
  });
  loop.run_sync([] {});
  ASSERT_TRUE(from_loop.done());
  EXPECT_EQ(*from_loop.result().at(0), 5);
}

TEST(RunSyncTest, TimeoutThrowsTimeoutErrorAndCancelsTheFuture) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  Future<int> pending;
  bool cancelled_seen = false;
  EXPECT_THROW(loop.run_sync(
                   [&] {
                     pending = Future<int>();
                     pending.add_done_callback(
                         [&](Future<int>& f) { cancelled_seen = f.cancelled(); });
                     return pending;
                   },
                   absl::Seconds(5)),
               TimeoutError);
  EXPECT_TRUE(pending.cancelled());
  EXPECT_TRUE(cancelled_seen);  // the cancellation got its iteration
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST(RunSyncTest, TimeoutOnTheSteadyClock) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([] { return Future<void>(); }, absl::Milliseconds(10)),
               TimeoutError);
}

TEST(RunSyncTest, ATimeoutThatDoesNotExpireIsRemoved) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  int v = loop.run_sync(
      [] {
        return [] {
          Future<int> f;
          IOLoop::current().call_later(absl::Seconds(1), [f]() mutable { f.set_result(1); });
          return f;
        }();
      },
      absl::Seconds(60));
  EXPECT_EQ(v, 1);
  EXPECT_EQ(loop.stats().timers, 0u);
}

TEST(RunSyncTest, StopBeforeTheFutureIsDoneThrows) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop] {
    loop.add_callback([&loop] { loop.stop(); });
    return Future<void>();
  }),
               InvalidStateError);
}

TEST(RunSyncTest, NestedRunSyncThrowsInvalidStateError) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([&loop] { return loop.run_sync([] { return 1; }); }),
               InvalidStateError);
}

// fn returning a moved-from future is an InvalidStateError naming run_sync:
// for a Future it used to read "Future:: : the handle is empty (moved
// from)"; a ConcurrentFuture crashed the process.
TEST(RunSyncTest, AnEmptyFutureFromFnIsAnErrorNamingRunSync) {
  IOLoop loop;
  EXPECT_EQ(thrown_what<InvalidStateError>([&] {
              loop.run_sync([] {
                Future<int> f;
                Future<int> g = std::move(f);
                return f;  // NOLINT(bugprone-use-after-move)
              });
            }),
            "IOLoop::run_sync: fn returned an empty Future (moved from)");
  EXPECT_EQ(thrown_what<InvalidStateError>([&] {
              loop.run_sync([] {
                ConcurrentFuture<int> f;
                ConcurrentFuture<int> g = std::move(f);
                return f;  // NOLINT(bugprone-use-after-move)
              });
            }),
            "IOLoop::run_sync: fn returned an empty ConcurrentFuture (moved from)");
  EXPECT_EQ(loop.run_sync([] { return make_ready_future(4); }), 4) << "the loop is still usable";
}

// A future of another, live loop can only complete when that loop runs,
// and it does not while this one does: run_sync used to hang forever (or,
// with a timeout, report a TimeoutError that named the wrong problem).
TEST(RunSyncTest, AFutureOfAnotherLoopIsRefusedInsteadOfHanging) {
  IOLoop a;
  a.make_current();
  Future<void> f = sleep(absl::Milliseconds(1));
  IOLoop b;
  try {
    b.run_sync([&] { return f; }, absl::Milliseconds(300));
    ADD_FAILURE() << "no exception";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("Future of another loop"), std::string::npos)
        << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception: " << e.what();
  }
  EXPECT_FALSE(f.done());
  a.run_sync([&] { return f; });  // its own loop runs it
  EXPECT_TRUE(f.done());
  IOLoop::clear_current();
}

// A future whose loop is gone, or that never had one, completes inline and
// needs no loop to run: still accepted.
TEST(RunSyncTest, AFutureOfAGoneLoopOrOfNoLoopIsAccepted) {
  Future<int> unbound;
  Future<int> orphan = [] {
    IOLoop gone;
    gone.make_current();
    Future<int> f;
    IOLoop::clear_current();
    return f;
  }();
  IOLoop loop;
  loop.add_callback([unbound, orphan]() mutable {
    unbound.set_result(1);
    orphan.set_result(2);
  });
  EXPECT_EQ(loop.run_sync([&] { return unbound; }), 1);
  EXPECT_EQ(loop.run_sync([&] { return orphan; }), 2);
}

// Running another loop inside one of this loop's callbacks is allowed; it
// blocks this loop until it returns (see run_sync's comment). A future of
// the outer loop handed to the inner run is refused, not waited for.
TEST(RunSyncTest, AnotherLoopMayRunInsideACallbackButNotWaitForTheOuterLoopsFuture) {
  IOLoop outer;
  bool outer_callback_ran = false;
  int inner_result = 0;
  outer.run_sync([&] {
    Future<void> of_outer;
    outer.add_callback([&] { outer_callback_ran = true; });
    IOLoop inner;
    inner_result = inner.run_sync([] { return 7; });
    EXPECT_FALSE(outer_callback_ran) << "the outer loop ran during the inner run";
    EXPECT_THROW(inner.run_sync([&] { return of_outer; }), InvalidStateError);
  });
  EXPECT_EQ(inner_result, 7);
  EXPECT_TRUE(outer_callback_ran);
}

// fn may hand back a future by reference (a getter returning
// `const Future<void>&`) or as a const value: it is waited for as a future
// returned by value, and run_sync returns its value. The traits used to be
// matched against the reference type: run_sync then ran one non-waiting
// iteration and returned the still pending future itself. (Written to
// compile either way, so that it fails rather than not compiling before.)
TEST(RunSyncTest, AFutureReturnedByReferenceOrAsConstIsWaitedFor) {
  IOLoop loop;
  loop.make_current();
  Future<void> ready = sleep(absl::Milliseconds(20));
  loop.run_sync([&]() -> const Future<void>& { return ready; });
  EXPECT_TRUE(ready.done());

  Future<int> value;
  loop.call_later(absl::Milliseconds(5), [value]() mutable { value.set_result(5); });
  auto&& got = loop.run_sync([&]() -> Future<int>& { return value; });
  EXPECT_TRUE(value.done());
  constexpr bool kUnwrapped = std::is_same_v<std::remove_cvref_t<decltype(got)>, int>;
  EXPECT_TRUE(kUnwrapped);
  if constexpr (kUnwrapped) {
    EXPECT_EQ(got, 5);
  }

  Future<int> later;
  loop.call_later(absl::Milliseconds(5), [later]() mutable { later.set_result(6); });
  auto&& got_const = loop.run_sync([&]() -> const Future<int> { return later; });
  EXPECT_TRUE(later.done());
  EXPECT_TRUE((std::is_same_v<std::remove_cvref_t<decltype(got_const)>, int>));

  ConcurrentFuture<int> cf;
  std::thread worker([cf]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    cf.set_result(9);
  });
  auto&& got_cf = loop.run_sync([&]() -> ConcurrentFuture<int>& { return cf; });
  EXPECT_TRUE(cf.done());
  constexpr bool kCfUnwrapped = std::is_same_v<std::remove_cvref_t<decltype(got_cf)>, int>;
  EXPECT_TRUE(kCfUnwrapped);
  if constexpr (kCfUnwrapped) {
    EXPECT_EQ(got_cf, 9);
  }
  worker.join();

  // A plain reference that is not a future is still returned as is.
  int plain = 3;
  int& same = loop.run_sync([&]() -> int& { return plain; });
  EXPECT_EQ(&same, &plain);
  IOLoop::clear_current();
}

TEST(RunSyncTest, FuturesCreatedInFnBelongToTheLoop) {
  IOLoop::clear_current();
  IOLoop loop;
  Scheduler* seen = nullptr;
  loop.run_sync([&] { seen = Scheduler::current(); });
  EXPECT_EQ(seen, &loop);
  EXPECT_EQ(Scheduler::current(), nullptr);
}

TEST(RunSyncTest, SleepFinishesOnAnAutoAdvancingClockWithoutWaiting) {
  auto clock = std::make_shared<ManualClock>(ManualClock::Options{{}, /*auto_advance=*/true});
  IOLoop loop(IOLoop::Options{clock});
  MonotonicTime start = loop.time();
  loop.run_sync([] { return sleep(absl::Hours(24)); });
  EXPECT_EQ(loop.time() - start, absl::Hours(24));
}

}  // namespace
}  // namespace eddy
