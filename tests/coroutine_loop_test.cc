// Coroutines on a real IOLoop, the patterns of Tornado's coroutine docs:
// offload a blocking call and await it, run_sync over a coroutine,
// spawn_callback of a failing coroutine, and a loop destroyed while
// coroutines are suspended on it (timers, pool work, plain futures).
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/with_timeout.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

using testing::LogCapture;

int blocking_square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // stands for a blocking call
  return x * x;
}

TEST(CoroutineLoopTest, OffloadedBlockingCallIsAwaitedAndResumesOnTheLoopThread) {
  IOLoop loop;
  ThreadPoolExecutor pool(2);
  std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id resumed_on;
  int v = loop.run_sync([&]() -> Future<int> {
    int r = co_await pool.submit(blocking_square, 7);
    resumed_on = std::this_thread::get_id();
    co_return r;
  });
  EXPECT_EQ(v, 49);
  EXPECT_EQ(resumed_on, loop_thread);
}

TEST(CoroutineLoopTest, ParallelOffloadsAwaitedAsAVector) {
  IOLoop loop;
  ThreadPoolExecutor pool(4);
  std::vector<int> squares = loop.run_sync([&]() -> Future<std::vector<int>> {
    std::vector<Future<int>> parts;
    for (int i = 0; i < 8; ++i) {
      Future<int> part;
      chain_future(pool.submit(blocking_square, i), part);
      parts.push_back(part);
    }
    co_return co_await parts;
  });
  EXPECT_EQ(squares, (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49}));
}

TEST(CoroutineLoopTest, SleepAndWithTimeoutAreAwaitable) {
  IOLoop loop;
  std::string outcome = loop.run_sync([&]() -> Future<std::string> {
    co_await sleep(absl::Milliseconds(1));
    Future<int> never;
    try {
      co_await with_timeout(absl::Milliseconds(5), never);
      co_return "no timeout";
    } catch (const TimeoutError&) {
      co_return "timed out";
    }
  });
  EXPECT_EQ(outcome, "timed out");
}

TEST(CoroutineLoopTest, RunSyncRethrowsTheCoroutinesExceptionType) {
  IOLoop loop;
  EXPECT_THROW(loop.run_sync([]() -> Future<void> {
    co_await sleep(absl::Milliseconds(1));
    throw std::out_of_range("from the coroutine");
  }),
               std::out_of_range);
}

TEST(CoroutineLoopTest, SpawnedCoroutineFailureIsLogged) {
  LogCapture logs;
  IOLoop loop;
  loop.run_sync([&]() -> Future<void> {
    loop.spawn_callback([]() -> Future<void> {
      co_await sleep(absl::Milliseconds(1));
      throw std::runtime_error("spawned coroutine failed");
    });
    co_await sleep(absl::Milliseconds(20));
  });
  EXPECT_EQ(logs.count("spawned coroutine failed"), 1u);
}

TEST(CoroutineLoopTest, CancellingAwaitedSleepThrowsCancelledErrorInTheCoroutine) {
  IOLoop loop;
  bool caught = false;
  loop.run_sync([&]() -> Future<void> {
    auto sleeper = [&]() -> Future<void> {
      try {
        co_await sleep(absl::Hours(1));
      } catch (const CancelledError&) {
        caught = true;
      }
    };
    Future<void> f = sleeper();
    co_await sleep(absl::Milliseconds(1));
    f.cancel();
    co_await sleep(absl::Milliseconds(1));
  });
  EXPECT_TRUE(caught);
}

// Tornado: gen_test.py test_moment (and test_asyncio_sleep_zero)
TEST(CoroutineLoopTest, AZeroSleepLetsCoroutinesTakeTurnsWhereADoneFutureDoesNot) {
  IOLoop loop;
  std::string calls;
  // Appends `name` five times, awaiting sleep(0) (gen.moment) or a done
  // future after each.
  auto f = [&](char name, bool moment) -> Future<void> {
    for (int i = 0; i < 5; ++i) {
      calls.push_back(name);
      if (moment) {
        co_await sleep(absl::ZeroDuration());
      } else {
        co_await make_ready_future();
      }
    }
  };
  auto run = [&](bool a_moment, bool b_moment) {
    calls.clear();
    loop.run_sync([&]() -> Future<void> {
      std::vector<Future<void>> both = {f('a', a_moment), f('b', b_moment)};
      co_await both;
    });
    return calls;
  };
  EXPECT_EQ(run(false, false), "aaaaabbbbb") << "a done future does not suspend";
  EXPECT_EQ(run(true, true), "ababababab");
  EXPECT_EQ(run(true, false), "abbbbbaaaa");
}

// Tornado: gen_test.py test_coroutine_refcounting
TEST(CoroutineLoopTest, ACoroutineEndedByACaughtExceptionFreesItsArgumentsAndLocalsAtOnce) {
  IOLoop loop;
  std::weak_ptr<int> argument_seen;
  std::weak_ptr<int> local_seen;
  bool checked = false;
  loop.run_sync([&]() -> Future<void> {
    auto inner = [&](std::shared_ptr<int> argument) -> Future<void> {
      auto local = std::make_shared<int>(2);
      argument_seen = argument;
      local_seen = local;
      co_await sleep(absl::ZeroDuration());  // the frame is parked on the loop
      throw std::invalid_argument("Some error");
    };
    try {
      co_await inner(std::make_shared<int>(1));
    } catch (const std::invalid_argument&) {
    }
    // Still inside the run, with the loop alive: the frame is gone already.
    EXPECT_TRUE(argument_seen.expired()) << "the ended coroutine's frame is still alive";
    EXPECT_TRUE(local_seen.expired());
    checked = true;
  });
  EXPECT_TRUE(checked);
}

// --- Cancelling a coroutine that awaits a ConcurrentFuture. ---

// The pool's result is already in the loop's inbox when, earlier in the
// same turn, the coroutine is cancelled (a timer, a shutdown cancelling
// every task): the work is done and its value on its way. As with a loop
// Future whose resume is queued, that await gets the value and the
// cancellation ends the next await. It must not be lost: the coroutine's
// future says cancelled, and a consumer that loops on pool work would
// otherwise never stop.
TEST(CoroutineLoopTest, ACancelArrivingWithThePoolResultInTheInboxEndsTheNextAwait) {
  IOLoop loop;
  loop.make_current();
  ConcurrentFuture<int> work;
  Future<int> next;
  int got = 0;
  bool saw_cancel = false;
  bool ended = false;
  auto body = [&]() -> Future<void> {
    try {
      got = co_await work;
      co_await next;
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
    ended = true;
  };
  Future<void> c = body();
  std::thread([work]() mutable { work.set_result(1); }).join();  // the delivery waits in the inbox
  loop.add_callback([&] { EXPECT_TRUE(c.cancel()); });  // the loop's own queue runs before its inbox
  for (int turn = 0; turn < 10 && !ended; ++turn) loop.run_sync([] {});
  EXPECT_TRUE(c.cancelled());
  EXPECT_EQ(got, 1) << "the value that had arrived is not lost either";
  EXPECT_TRUE(saw_cancel) << "the cancellation was lost: the body ran on";
  EXPECT_TRUE(next.cancelled()) << "the next await did not take the cancellation";
  IOLoop::clear_current();
}

// The work is running when the coroutine is cancelled: that await takes the
// cancellation (CancelledError at once, the late result dropped), even when
// the result reaches the loop, in the same turn, before the cancellation's
// own resume does.
TEST(CoroutineLoopTest, CancellingWhileThePoolRunsTheWorkThrowsAtThatAwaitEvenIfTheResultArrivesFirst) {
  IOLoop loop;
  loop.make_current();
  ConcurrentFuture<int> work;
  ASSERT_TRUE(work.set_running_or_notify_cancel());
  bool resumed_with_value = false;
  bool saw_cancel = false;
  bool ended = false;
  auto body = [&]() -> Future<void> {
    try {
      co_await work;
      resumed_with_value = true;
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
    ended = true;
  };
  Future<void> c = body();
  loop.add_callback([&] {
    EXPECT_TRUE(c.cancel());
    EXPECT_FALSE(work.cancelled()) << "running work cannot be cancelled";
    // Completed now, its delivery is in the inbox, which this turn runs.
    std::thread([work]() mutable { work.set_result(1); }).join();
  });
  for (int turn = 0; turn < 10 && !ended; ++turn) loop.run_sync([] {});
  EXPECT_TRUE(c.cancelled());
  EXPECT_TRUE(saw_cancel) << "the cancellation was lost to the result";
  EXPECT_FALSE(resumed_with_value);
  IOLoop::clear_current();
}

// --- Awaiting a shared ConcurrentFuture. ---

// One thread blocks in result() while a coroutine awaits the same future
// through an rvalue handle (a by-value getter): both read the value, and
// neither takes it from the other. Under --config=tsan a move on the loop
// thread shows as a race with the reader.
TEST(CoroutineLoopTest, AnRvalueAwaitLeavesTheValueToAThreadBlockedInResult) {
  IOLoop loop;
  const std::string value(100, 'x');
  ConcurrentFuture<std::string> shared;
  std::string in_thread;
  std::thread reader([shared, &in_thread] { in_thread = shared.result(); });
  auto get = [&] { return shared; };
  std::thread completer;
  std::string in_coroutine = loop.run_sync([&]() -> Future<std::string> {
    completer = std::thread([shared, &value]() mutable { shared.set_result(value); });
    co_return co_await get();
  });
  completer.join();
  reader.join();
  EXPECT_EQ(in_coroutine, value);
  EXPECT_EQ(in_thread, value);
  EXPECT_EQ(shared.result(), value);
}

struct Counted {
  explicit Counted(std::atomic<int>* alive) : alive_(alive) { alive_->fetch_add(1); }
  ~Counted() { alive_->fetch_sub(1); }
  std::atomic<int>* alive_;
};

// Under --config=asan this also proves nothing leaks: every frame, timer,
// delivery and future state is freed with the loop.
TEST(CoroutineLoopTest, DestroyingALoopWithSuspendedCoroutinesFreesThem) {
  std::atomic<int> alive{0};
  ThreadPoolExecutor pool(1);
  std::atomic<bool> release{false};
  ConcurrentFuture<int> work = pool.submit([&] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return 1;
  });
  {
    IOLoop loop;
    loop.make_current();
    auto on_timer = [&]() -> Future<void> {
      Counted c(&alive);
      co_await sleep(absl::Hours(1));
    };
    auto on_pool = [&]() -> Future<int> {
      Counted c(&alive);
      co_return co_await work;
    };
    auto on_future = [&](Future<int> f) -> Future<int> {
      Counted c(&alive);
      co_return co_await f;
    };
    on_timer();
    on_pool();
    Future<int> pending;
    on_future(pending);
    auto nested = [&]() -> Future<int> {
      Counted c(&alive);
      co_return co_await on_future(Future<int>());
    };
    nested();
    loop.run_sync([] { return sleep(absl::Milliseconds(1)); });
    EXPECT_EQ(alive.load(), 5);
    IOLoop::clear_current();
  }
  EXPECT_EQ(alive.load(), 0) << "suspended coroutine frames outlived their loop";
  release = true;
  EXPECT_EQ(work.result(absl::Seconds(60)), 1);  // the late completion touches nothing freed
  pool.shutdown();
  EXPECT_EQ(alive.load(), 0);
}

}  // namespace
}  // namespace eddy
