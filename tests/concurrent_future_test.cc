// ConcurrentFuture<T>: thread-safe states, blocking waits, callbacks on the
// completing thread, races, and chain_future across threads.
#include "eddy/futures/concurrent_future.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/live_count.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::CopyCounted;
using testing::LogCapture;
using testing::ManualScheduler;
using testing::MoveCounted;
using testing::thrown_what;

TEST(ConcurrentFutureTest, StatesAndTransitions) {
  ConcurrentFuture<int> f;
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_TRUE(f.set_running_or_notify_cancel());
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel()) << "a running future cannot be cancelled";
  EXPECT_THROW(f.set_running_or_notify_cancel(), InvalidStateError);
  f.set_result(3);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_EQ(f.result(), 3);
  EXPECT_THROW(f.set_result(4), InvalidStateError);
  EXPECT_THROW(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               InvalidStateError);
  EXPECT_FALSE(f.cancel());
}

TEST(ConcurrentFutureTest, CancelWhileQueuedWinsAndSetRunningReportsIt) {
  ConcurrentFuture<int> f;
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancel()) << "cancelling twice still reports cancelled";
  EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(f.set_running_or_notify_cancel());
  EXPECT_THROW(f.result(), CancelledError);
  EXPECT_THROW(f.exception(), CancelledError);
  EXPECT_FALSE(f.try_set_result(1));
}

TEST(ConcurrentFutureTest, ExceptionIsRethrownWithItsType) {
  ConcurrentFuture<void> f;
  f.set_exception(std::make_exception_ptr(std::out_of_range("r")));
  EXPECT_THROW(f.result(), std::out_of_range);
  EXPECT_NE(f.exception(), nullptr);
}

TEST(ConcurrentFutureTest, ResultWithTimeoutThrowsTimeoutErrorWhenNotDone) {
  ConcurrentFuture<int> f;
  EXPECT_THROW(f.result(absl::Milliseconds(5)), TimeoutError);
  EXPECT_THROW(f.exception(absl::ZeroDuration()), TimeoutError);
  // A negative timeout is a poll, and says so (as the other waits do).
  EXPECT_EQ(thrown_what<TimeoutError>([&] { f.result(absl::Seconds(-1)); }),
            "ConcurrentFuture::result: not done within 0");
  f.set_result(1);
  EXPECT_EQ(f.result(absl::ZeroDuration()), 1);
}

TEST(ConcurrentFutureTest, BlockingResultWakesWhenAnotherThreadCompletes) {
  ConcurrentFuture<int> f;
  std::thread t([f]() mutable { f.set_result(42); });
  EXPECT_EQ(f.result(), 42);
  t.join();
}

TEST(ConcurrentFutureTest, BlockingResultWithTimeoutWakesWhenCompleted) {
  ConcurrentFuture<int> f;
  std::atomic<bool> waiting{false};
  std::thread t([&, f]() mutable {
    while (!waiting.load()) std::this_thread::yield();
    f.set_result(7);
  });
  waiting = true;
  EXPECT_EQ(f.result(absl::Seconds(60)), 7);
  t.join();
}

TEST(ConcurrentFutureTest, InfiniteTimeoutIsTheSameAsNone) {
  ConcurrentFuture<int> f;
  std::thread t([f]() mutable { f.set_result(1); });
  EXPECT_EQ(f.result(absl::InfiniteDuration()), 1);
  t.join();
}

TEST(ConcurrentFutureTest, CallbackRunsOnTheCompletingThread) {
  ConcurrentFuture<int> f;
  std::thread::id ran_on;
  f.add_done_callback([&](ConcurrentFuture<int>& d) {
    ran_on = std::this_thread::get_id();
    EXPECT_EQ(d.result(), 5);
  });
  std::thread t([f]() mutable { f.set_result(5); });
  std::thread::id completer = t.get_id();
  t.join();
  EXPECT_EQ(ran_on, completer);
}

TEST(ConcurrentFutureTest, CallbackAddedAfterDoneRunsInline) {
  ConcurrentFuture<int> f;
  f.set_result(1);
  bool ran = false;
  f.add_done_callback([&] { ran = true; });
  EXPECT_TRUE(ran);
}

// Python: test_concurrent_futures test_future.py test_done_callback_raises_already_succeeded
TEST(ConcurrentFutureTest, AThrowingCallbackAddedAfterDoneRunsInlineAndIsLogged) {
  LogCapture logs;
  ConcurrentFuture<int> f;
  f.set_result(5);
  bool ran = false;
  EXPECT_NO_THROW(f.add_done_callback([&](ConcurrentFuture<int>&) {
    ran = true;
    throw std::runtime_error("doh!");
  }));
  EXPECT_TRUE(ran) << "not run inline";
  EXPECT_EQ(logs.count("doh!"), 1u);
  EXPECT_EQ(f.result(), 5);
}

// An empty callable is refused at the call, before anything is added: on a
// done future it used to be run inline at once (an assertion failure, or a
// crash without asserts); on a pending one, by the completing thread.
TEST(ConcurrentFutureTest, AnEmptyCallbackIsRejectedAtTheCall) {
  ConcurrentFuture<int> f;
  EXPECT_EQ(thrown_what<std::invalid_argument>([&] {
              f.add_done_callback(absl::AnyInvocable<void(ConcurrentFuture<int>&)>());
            }),
            "ConcurrentFuture::add_done_callback: fn is empty");
  EXPECT_THROW(f.add_done_callback(absl::AnyInvocable<void()>()), std::invalid_argument);
  void (*null_fn)() = nullptr;
  EXPECT_THROW(f.add_done_callback(null_fn), std::invalid_argument);
  EXPECT_THROW(f.add_done_callback(std::function<void(ConcurrentFuture<int>&)>()),
               std::invalid_argument);
  int ran = 0;
  f.add_done_callback([&] { ++ran; });
  std::thread([f]() mutable { f.set_result(1); }).join();
  EXPECT_EQ(ran, 1);
  EXPECT_THROW(f.add_done_callback(absl::AnyInvocable<void(ConcurrentFuture<int>&)>()),
               std::invalid_argument);
  EXPECT_THROW(f.add_done_callback(std::function<void()>()), std::invalid_argument);
}

TEST(ConcurrentFutureTest, CancelRunsCallbacksAndThrowingCallbackIsLogged) {
  LogCapture logs;
  ConcurrentFuture<int> f;
  bool saw = false;
  f.add_done_callback([](ConcurrentFuture<int>&) { throw std::runtime_error("cb boom"); });
  f.add_done_callback([&](ConcurrentFuture<int>& d) { saw = d.cancelled(); });
  f.cancel();
  EXPECT_TRUE(saw);
  EXPECT_EQ(logs.count("cb boom"), 1u);
}

TEST(ConcurrentFutureTest, MoveOnlyResult) {
  ConcurrentFuture<std::unique_ptr<int>> f;
  std::thread t([f]() mutable { f.set_result(std::make_unique<int>(3)); });
  std::unique_ptr<int> p = std::move(f.result());
  t.join();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
}

// `for (auto& x : pool.submit(query).result())`: on a temporary handle
// result() returns the value, not a reference into the state the temporary
// takes with it (ASan saw a use after free here).
TEST(ConcurrentFutureTest, ResultOnATemporaryReturnsTheValueNotADanglingReference) {
  auto fetch = [] {
    ConcurrentFuture<std::vector<std::string>> f;
    f.set_result(std::vector<std::string>{std::string(100, 'a'), std::string(100, 'b')});
    return f;  // the only handle
  };
  std::string seen;
  for (const std::string& row : fetch().result()) seen += row.substr(0, 1);
  for (const std::string& row : fetch().result(absl::Seconds(60))) seen += row.substr(0, 1);
  EXPECT_EQ(seen, "abab");
  static_assert(std::is_same_v<decltype(fetch().result()), std::vector<std::string>>);
  ConcurrentFuture<std::vector<std::string>> kept = fetch();
  static_assert(std::is_same_v<decltype(kept.result()), std::vector<std::string>&>);
}

TEST(ConcurrentFutureTest, ResultOnTheLastHandleMovesTheValueOut) {
  ConcurrentFuture<MoveCounted> f;
  std::thread([p = f]() mutable { p.set_result(MoveCounted()); }).join();  // p is gone
  MoveCounted::reset();
  MoveCounted v = std::move(f).result();
  (void)v;
  EXPECT_EQ(MoveCounted::copies, 0);
  EXPECT_EQ(MoveCounted::moves, 1);

  ConcurrentFuture<MoveCounted> g;
  std::thread([p = g]() mutable { p.set_result(MoveCounted()); }).join();
  MoveCounted::reset();
  MoveCounted w = std::move(g).result(absl::Seconds(60));
  (void)w;
  EXPECT_EQ(MoveCounted::copies, 0);
  EXPECT_EQ(MoveCounted::moves, 1);
}

TEST(ConcurrentFutureTest, ResultOnATemporaryCopiesWhileOtherHandlesRemain) {
  ConcurrentFuture<MoveCounted> shared;
  shared.set_result(MoveCounted());
  auto get = [&] { return shared; };
  MoveCounted::reset();
  MoveCounted v = get().result();
  MoveCounted w = get().result(absl::ZeroDuration());
  (void)v;
  (void)w;
  EXPECT_EQ(MoveCounted::copies, 2);
  EXPECT_EQ(MoveCounted::moves, 0);
}

TEST(ConcurrentFutureTest, ResultOnATemporaryMovesAMoveOnlyValueEvenWhenShared) {
  ConcurrentFuture<std::unique_ptr<int>> f;
  f.set_result(std::make_unique<int>(3));
  ConcurrentFuture<std::unique_ptr<int>> other = f;
  std::unique_ptr<int> p = std::move(f).result();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
  EXPECT_EQ(other.result(), nullptr) << "moved regardless: keep no other reader of it";
}

TEST(ConcurrentFutureTest, ResultOnATemporaryBlocksAndThrowsAsOnAnyHandle) {
  ConcurrentFuture<int> late;
  std::thread t([late]() mutable { late.set_result(4); });
  EXPECT_EQ(ConcurrentFuture<int>(late).result(), 4);
  t.join();
  EXPECT_THROW(ConcurrentFuture<int>().result(absl::ZeroDuration()), TimeoutError);
  ConcurrentFuture<void> failed;
  failed.set_exception(std::make_exception_ptr(std::runtime_error("x")));
  EXPECT_THROW(std::move(failed).result(), std::runtime_error);
  ConcurrentFuture<void> ok;
  ok.set_result();
  std::move(ok).result();
  static_assert(std::is_void_v<decltype(std::move(ok).result())>);
}

TEST(ConcurrentFutureTest, UnretrievedExceptionIsLoggedOnce) {
  LogCapture logs;
  {
    ConcurrentFuture<int> f;
    std::thread t([f]() mutable { f.set_exception(std::make_exception_ptr(std::runtime_error("lost"))); });
    t.join();
  }
  EXPECT_EQ(logs.count("never retrieved"), 1u);
}

// Many threads race set_result, set_exception and cancel on one future while
// others wait: exactly one completion wins and every waiter wakes.
TEST(ConcurrentFutureRaceTest, ExactlyOneCompletionWinsAndEveryWaiterWakes) {
  constexpr int kRounds = 200;
  constexpr int kRacers = 6;
  constexpr int kWaiters = 3;
  for (int round = 0; round < kRounds; ++round) {
    ConcurrentFuture<int> f;
    std::atomic<int> wins{0};
    std::atomic<int> callbacks{0};
    std::atomic<int> woken{0};
    f.add_done_callback([&] { callbacks.fetch_add(1); });
    std::vector<std::thread> threads;
    for (int w = 0; w < kWaiters; ++w) {
      threads.emplace_back([&, f] {
        try {
          f.result();
        } catch (...) {
        }
        woken.fetch_add(1);
      });
    }
    for (int r = 0; r < kRacers; ++r) {
      threads.emplace_back([&, f, r]() mutable {
        bool won = false;
        switch (r % 3) {
          case 0:
            won = f.try_set_result(r);
            break;
          case 1:
            won = f.try_set_exception(std::make_exception_ptr(std::runtime_error("e")));
            break;
          case 2:
            won = f.cancel();
            break;
        }
        if (won) wins.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    // cancel() on an already-cancelled future also answers true, so count
    // distinct outcomes instead: one completion happened, observed once.
    EXPECT_GE(wins.load(), 1);
    if (!f.cancelled()) {
      EXPECT_EQ(wins.load(), 1) << "round " << round;
    }
    EXPECT_EQ(callbacks.load(), 1) << "round " << round;
    EXPECT_EQ(woken.load(), kWaiters);
    try {
      f.exception();
    } catch (const CancelledError&) {
    }
  }
}

// Callbacks and blocking waiters arrive while another thread completes the
// future: each callback runs exactly once (on the completer, or inline when
// it came too late), each waiter wakes, and nothing is lost in between.
TEST(ConcurrentFutureRaceTest, CallbacksAndWaitersRacingCompletionEachRunOnce) {
  constexpr int kRounds = 300;
  constexpr int kRegistrars = 3;
  constexpr int kPerRegistrar = 20;
  for (int round = 0; round < kRounds; ++round) {
    ConcurrentFuture<int> f;
    std::atomic<int> ran{0};
    std::atomic<int> wrong_value{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int r = 0; r < kRegistrars; ++r) {
      threads.emplace_back([&, f]() mutable {
        while (!go.load()) {
        }
        for (int i = 0; i < kPerRegistrar; ++i) {
          f.add_done_callback([&](ConcurrentFuture<int>& done) {
            if (done.result() != 42) wrong_value.fetch_add(1);
            ran.fetch_add(1);
          });
        }
        EXPECT_EQ(f.result(), 42);
      });
    }
    threads.emplace_back([&, f]() mutable {
      while (!go.load()) {
      }
      ASSERT_TRUE(f.set_running_or_notify_cancel());
      f.set_result(42);
    });
    go.store(true);
    for (auto& t : threads) t.join();
    ASSERT_EQ(ran.load(), kRegistrars * kPerRegistrar) << "round " << round;
    EXPECT_EQ(wrong_value.load(), 0);
  }
}

// A worker marking the task running races a cancel from another thread:
// exactly one of them wins, and the loser is told.
TEST(ConcurrentFutureRaceTest, SetRunningAndCancelHaveExactlyOneWinner) {
  for (int round = 0; round < 500; ++round) {
    ConcurrentFuture<int> f;
    std::atomic<bool> go{false};
    bool running = false;
    bool cancelled = false;
    std::thread worker([&, f]() mutable {
      while (!go.load()) {
      }
      running = f.set_running_or_notify_cancel();
    });
    std::thread canceller([&, f]() mutable {
      while (!go.load()) {
      }
      cancelled = f.cancel();
    });
    go.store(true);
    worker.join();
    canceller.join();
    ASSERT_NE(running, cancelled) << "round " << round;
    EXPECT_EQ(f.cancelled(), cancelled);
    EXPECT_EQ(f.running(), running);
    if (running) f.set_result(1);
  }
}

// A second completion while the first is still storing its outcome loses
// cleanly: try_set_* answer false, set_result throws InvalidStateError.
// A moved-from handle used to crash (a null dereference) on every call. It
// now throws InvalidStateError naming the call, as a moved-from Future does.
// std::promise style: the only handle lives in an object the waiter frees
// once result() returns. The completion wakes the waiter before it runs
// the callbacks, so it must not need the handle it was made through (nor
// that handle's reference) for them. The first callback holds the
// completion until the job is gone; under ASan the second one used to
// read the freed handle. The same for cancel().
TEST(ConcurrentFutureRaceTest, AWaiterMayFreeTheCompletingHandleWhileTheCallbacksRun) {
  struct Job {
    ConcurrentFuture<int> done;
  };
  for (bool cancel : {false, true}) {
    Job* job = new Job;
    std::atomic<bool> freed{false};
    std::atomic<int> calls{0};
    job->done.add_done_callback([&] {
      calls++;
      for (int i = 0; i < 5000 && !freed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    job->done.add_done_callback([&] { calls++; });
    std::thread worker([job, cancel] {
      if (cancel) {
        job->done.cancel();
      } else {
        job->done.set_result(1);
      }
    });
    if (cancel) {
      EXPECT_THROW(job->done.result(), CancelledError);
    } else {
      EXPECT_EQ(job->done.result(), 1);
    }
    delete job;  // while the first callback runs
    freed = true;
    worker.join();
    EXPECT_EQ(calls.load(), 2);
  }
}

TEST(MovedFromConcurrentFutureTest, EveryCallThrowsInvalidStateErrorNamingIt) {
  ConcurrentFuture<int> a;
  ConcurrentFuture<int> b = std::move(a);
  auto empty = [](const std::string& op) {
    return "ConcurrentFuture::" + op + ": the handle is empty (moved from)";
  };
  auto error = std::make_exception_ptr(std::runtime_error("x"));
  // NOLINTBEGIN(bugprone-use-after-move)
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.done(); }), empty("done"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.cancelled(); }), empty("cancelled"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.running(); }), empty("running"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.result(); }), empty("result"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.result(absl::Seconds(1)); }),
            empty("result"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.exception(); }), empty("exception"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.cancel(); }), empty("cancel"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { a.add_done_callback([] {}); }),
            empty("add_done_callback"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.set_running_or_notify_cancel(); }),
            empty("set_running_or_notify_cancel"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { a.set_result(1); }), empty("set_result"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { a.set_exception(error); }),
            empty("set_exception"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.try_set_result(1); }),
            empty("try_set_result"));
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)a.try_set_exception(error); }),
            empty("try_set_exception"));
  ConcurrentFuture<void> v;
  ConcurrentFuture<void> w = std::move(v);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { v.set_result(); }), empty("set_result"));
  // A copy of an empty handle is empty too.
  ConcurrentFuture<int> copy = a;
  EXPECT_THROW((void)copy.done(), InvalidStateError);
  // NOLINTEND(bugprone-use-after-move)
  // The handle it was moved to is untouched.
  b.set_result(2);
  EXPECT_EQ(b.result(), 2);
  w.set_result();
  EXPECT_TRUE(w.done());
}

TEST(MovedFromConcurrentFutureTest, ValidIsFalseOnlyForAnEmptyHandle) {
  ConcurrentFuture<int> a;
  EXPECT_TRUE(a.valid());
  ConcurrentFuture<int> b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.valid());
  a = b;  // assigned again: usable
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE(a.done());
}

TEST(ConcurrentFutureTest, LosingCompletionIsRefused) {
  ConcurrentFuture<std::string> f;
  EXPECT_TRUE(f.try_set_result("first"));
  EXPECT_FALSE(f.try_set_result("second"));
  EXPECT_FALSE(f.try_set_exception(std::make_exception_ptr(std::runtime_error("late"))));
  EXPECT_THROW(f.set_result("third"), InvalidStateError);
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.result(), "first");
}

// --- chain_future across threads. ---

TEST(ChainConcurrentTest, OutcomeIsDeliveredOntoTheLoopThread) {
  ManualScheduler loop;
  ConcurrentFuture<int> a;
  Future<int> b;
  chain_future(a, b);
  std::thread t([a]() mutable { a.set_result(11); });
  t.join();
  EXPECT_FALSE(b.done()) << "the copy must happen on the loop thread";
  loop.run_pending();
  ASSERT_TRUE(b.done());
  EXPECT_EQ(b.result(), 11);
}

TEST(ChainConcurrentTest, ExceptionAndCancellationCrossToo) {
  ManualScheduler loop;
  ConcurrentFuture<int> a;
  Future<int> b;
  chain_future(a, b);
  std::thread([a]() mutable { a.set_exception(std::make_exception_ptr(std::out_of_range("o"))); })
      .join();
  loop.run_pending();
  EXPECT_THROW(b.result(), std::out_of_range);

  ConcurrentFuture<int> c;
  Future<int> d;
  chain_future(c, d);
  c.cancel();
  loop.run_pending();
  EXPECT_TRUE(d.cancelled());
}

TEST(ChainConcurrentTest, TargetWithoutLoopIsRejected) {
  ConcurrentFuture<int> a;
  Future<int> b;  // no scheduler current
  EXPECT_THROW(chain_future(a, b), InvalidStateError);
}

TEST(ChainConcurrentTest, LoopDestroyedBeforeCompletionDropsTheDeliverySafely) {
  ConcurrentFuture<int> a;
  {
    ManualScheduler loop;
    Future<int> b;
    chain_future(a, b);
  }  // loop (and b) gone; the delivery payload was dropped on this thread
  std::thread([a]() mutable { a.set_result(1); }).join();  // must not touch b
  SUCCEED();
}

TEST(ChainConcurrentTest, AnAbandonedSourceFreesTheTargetAndItsCallbacks) {
  // A producer that drops its promise without completing it: once every
  // handle on `a` is gone, b and what b's callbacks hold go too, not when
  // the loop closes (the delivery must not keep `a` alive from the loop).
  ManualScheduler loop;
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> weak = sentinel;
  {
    ConcurrentFuture<int> a;
    Future<int> b;
    b.add_done_callback([s = std::move(sentinel)](Future<int>&) {});
    chain_future(a, b);
  }
  loop.run_pending();
  EXPECT_TRUE(weak.expired());
}

TEST(ChainConcurrentTest, AnAlreadyDoneSourceIsCopiedAtOnce) {
  // On b's loop thread with `a` done, there is nothing to wait for: b is
  // done when chain_future returns (its callbacks still run on a later turn).
  ManualScheduler loop;
  ConcurrentFuture<int> a;
  a.set_result(3);
  Future<int> b;
  bool called = false;
  b.add_done_callback([&](Future<int>&) { called = true; });
  chain_future(a, b);
  ASSERT_TRUE(b.done());
  EXPECT_EQ(b.result(), 3);
  EXPECT_FALSE(called);
  loop.run_pending();
  EXPECT_TRUE(called);

  ConcurrentFuture<int> c;
  c.set_exception(std::make_exception_ptr(std::out_of_range("o")));
  Future<int> d;
  chain_future(c, d);
  ASSERT_TRUE(d.done());
  EXPECT_THROW(d.result(), std::out_of_range);

  ConcurrentFuture<int> e;
  e.cancel();
  Future<int> g;
  chain_future(e, g);
  EXPECT_TRUE(g.cancelled());
}

// The chain copies a's value while other handles on a may still read it,
// and moves it once nobody else can: a big result bridged onto the loop
// (run_sync, multi) costs no copy when nothing else holds the pool's
// future. (with_timeout's timer holds one until the bridge completes: it
// copies.)
TEST(ChainConcurrentTest, TheTargetTakesTheValueOnlyWhenNothingElseHoldsTheSource) {
  ManualScheduler loop;
  CopyCounted::copies = 0;
  ConcurrentFuture<CopyCounted> kept;
  Future<CopyCounted> from_kept;
  chain_future(kept, from_kept);
  std::thread([kept]() mutable { kept.set_result(CopyCounted()); }).join();
  loop.run_pending();
  ASSERT_TRUE(from_kept.done());
  EXPECT_EQ(CopyCounted::copies, 1) << "`kept` still holds the value";

  CopyCounted::copies = 0;
  Future<CopyCounted> from_dropped;
  {
    ConcurrentFuture<CopyCounted> dropped;
    chain_future(dropped, from_dropped);
    std::thread([dropped]() mutable { dropped.set_result(CopyCounted()); }).join();
  }  // only the chain holds it now
  loop.run_pending();
  ASSERT_TRUE(from_dropped.done());
  EXPECT_EQ(CopyCounted::copies, 0);
}

TEST(ChainConcurrentTest, ConcurrentToConcurrent) {
  ConcurrentFuture<int> a, b;
  chain_future(a, b);
  std::thread([a]() mutable { a.set_result(4); }).join();
  EXPECT_EQ(b.result(absl::Seconds(60)), 4);
}

// An empty (moved-from) source or target is refused at the call, naming
// chain_future; nothing is chained (an empty source used to crash).
TEST(ChainConcurrentTest, AnEmptyHandleIsRejectedAtTheCall) {
  LogCapture logs;
  ManualScheduler loop;
  ConcurrentFuture<int> a, empty_cf;
  ConcurrentFuture<int> taken_cf = std::move(empty_cf);
  Future<int> b, empty_f;
  Future<int> taken_f = std::move(empty_f);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { chain_future(empty_cf, b); }),
            "chain_future: the source ConcurrentFuture a is empty (moved from)");
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { chain_future(a, empty_f); }),
            "chain_future: the target Future b is empty (moved from)");
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { chain_future(empty_cf, a); }),
            "chain_future: the source ConcurrentFuture a is empty (moved from)");
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { chain_future(a, empty_cf); }),
            "chain_future: the target ConcurrentFuture b is empty (moved from)");
  std::thread([a]() mutable { a.set_result(1); }).join();
  EXPECT_EQ(loop.run_pending(), 0) << "something was chained to a";
  EXPECT_FALSE(b.done());
  EXPECT_EQ(logs.size(), 0u);
}

}  // namespace
}  // namespace eddy
