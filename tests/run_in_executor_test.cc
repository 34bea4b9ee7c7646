// IOLoop::run_in_executor: the offloading story end to end. Blocking calls
// run on the pool while the loop stays responsive; results and exceptions
// come back on the loop thread; cancelling the loop Future reaches the
// task; a loop destroyed with work in flight drops the late completion.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/offload.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/with_timeout.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"
#include "tests/log_capture.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::Gate;
using testing::thrown_what;

// Runs `loop` until `f` is done and returns it.
template <class T>
Future<T> run_until_done(IOLoop& loop, Future<T> f) {
  loop.run_sync([f] {
    Future<void> done;
    Future<T> copy = f;
    copy.add_done_callback([done]() mutable { done.set_result(); });
    return done;
  });
  return f;
}

// A sequence of named events from any thread, to assert on order.
class EventLog {
 public:
  void add(std::string e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> events_;
};

// A reusable meeting point for `n` threads (Python's threading.Barrier,
// with a bound): arrive_and_wait() returns true once all `n` have arrived
// in this round. A wait that reaches the bound, which only threads that
// cannot run at the same time do, breaks the meeting: it and every later
// arrival return false, so a test that needs parallelism fails instead of
// hanging.
class Meeting {
 public:
  explicit Meeting(int n) : n_(n) {}
  bool arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (broken_) return false;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++round_;
      cv_.notify_all();
      return true;
    }
    const uint64_t round = round_;
    if (cv_.wait_for(lock, std::chrono::seconds(20), [&] { return round_ != round || broken_; })) {
      return round_ != round;  // else another arrival broke it
    }
    broken_ = true;
    cv_.notify_all();
    return false;
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;     // guarded by mu_
  uint64_t round_ = 0;  // guarded by mu_
  bool broken_ = false;  // guarded by mu_
};

// A pool callable that returns an eddy::Future is rejected at compile time
// (a static_assert in submit, map, run_in_executor, run_on_executor and
// fan_out): the Future would bind to no running loop and never complete.
Future<int> async_thing() { co_return 1; }
static_assert(!internal::submittable_v<decltype([] { return async_thing(); })>);
static_assert(!internal::submittable_v<decltype([](int) { return Future<void>(); }), int>);
static_assert(!internal::submittable_v<decltype([](CancellationToken) { return async_thing(); })>);
static_assert(!internal::submittable_v<int (*)(int, int), int>);  // wrong arguments
static_assert(internal::submittable_v<decltype([] { return 1; })>);
static_assert(internal::submittable_v<decltype([] {})>);
// A ConcurrentFuture is thread-safe: returning one is allowed.
static_assert(internal::submittable_v<decltype([] { return ConcurrentFuture<int>(); })>);

TEST(RunInExecutorTest, IOLoopCurrentInAPoolTaskThrowsSayingWhatToDo) {
  ThreadPoolExecutor pool(1);
  const std::string what =
      pool.submit([] { return thrown_what<InvalidStateError>([] { IOLoop::current(); }); })
          .result();
  EXPECT_NE(what.find("IOLoop::current() on a pool worker"), std::string::npos) << what;
  EXPECT_NE(what.find("IOLoop& loop = IOLoop::current();"), std::string::npos) << what;
  EXPECT_NE(what.find("loop.add_callback(...)"), std::string::npos) << what;
  EXPECT_EQ(pool.submit([] { return IOLoop::current_or_null(); }).result(), nullptr)
      << "the failed call made no loop";
}

TEST(RunInExecutorTest, APoolTaskPostsToTheLoopItCaptured) {
  IOLoop loop;
  ThreadPoolExecutor pool(1);
  bool delivered = false;  // loop thread only
  loop.run_sync([&] {
    IOLoop& captured = IOLoop::current();
    return loop.run_in_executor(&pool, [&captured, &delivered] {
      captured.add_callback([&delivered] { delivered = true; });
    });
  });
  loop.run_sync([] { return sleep(absl::ZeroDuration()); });
  EXPECT_TRUE(delivered);
}

TEST(RunInExecutorTest, ALoopMadeCurrentOnAPoolWorkerIsItsCurrentLoop) {
  ThreadPoolExecutor pool(1);
  EXPECT_TRUE(pool.submit([] {
                    IOLoop loop;
                    loop.make_current();
                    const bool same = &IOLoop::current() == &loop;
                    IOLoop::clear_current();
                    return same;
                  })
                  .result());
  // A loop run on the worker is current while it runs, so a sleep works.
  EXPECT_EQ(pool.submit([] {
                  IOLoop loop;
                  return loop.run_sync([] { return sleep(absl::Milliseconds(1)); }), 1;
                })
                .result(),
            1);
  // Afterwards the worker has no loop again.
  EXPECT_THROW(pool.submit([] { IOLoop::current(); }).result(), InvalidStateError);
}

TEST(RunInExecutorTest, SleepInAPoolTaskFailsAtOnceInsteadOfHanging) {
  ThreadPoolExecutor pool(1);
  EXPECT_THROW(
      pool.submit([] { (void)sleep(absl::Milliseconds(1)); }).result(absl::Seconds(20)),
      InvalidStateError);
  EXPECT_THROW(pool.submit([] { (void)with_timeout(absl::Milliseconds(1), Future<int>()); })
                   .result(absl::Seconds(20)),
               InvalidStateError);
}

TEST(RunInExecutorTest, FourBlockingSleepsRunTogetherWhileTheLoopTimerKeepsFiring) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(4);
  EventLog log;
  int ticks = 0;
  PeriodicCallback timer(
      [&] {
        ++ticks;
        log.add("tick");
      },
      absl::Milliseconds(10));
  timer.start();

  std::vector<Future<int>> sleeps;
  for (int i = 0; i < 4; ++i) {
    sleeps.push_back(loop.run_in_executor(&pool, [&log, i] {
      log.add("start");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the blocking call
      log.add("end");
      return i;
    }));
  }
  std::vector<int> results = loop.run_sync([&] { return multi(sleeps); });
  timer.stop();

  EXPECT_EQ(results, (std::vector<int>{0, 1, 2, 3}));
  // Order, not time: all four were running at once (every start precedes
  // every end), and the loop kept ticking while they blocked.
  std::vector<std::string> events = log.events();
  int starts = 0, ends = 0, ticks_while_blocked = 0;
  for (const std::string& e : events) {
    if (e == "start") {
      EXPECT_EQ(ends, 0) << "a sleep ended before all four had started";
      ++starts;
    } else if (e == "end") {
      ++ends;
    } else if (starts == 4 && ends == 0) {
      ++ticks_while_blocked;
    }
  }
  EXPECT_EQ(starts, 4);
  EXPECT_EQ(ends, 4);
  EXPECT_GE(ticks_while_blocked, 3) << "the loop stayed responsive during the blocking calls";
  EXPECT_GE(ticks, ticks_while_blocked);
}

TEST(RunInExecutorTest, ResultsAndExceptionsArriveOnTheLoopThread) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(2);
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread::id value_cb_thread, error_cb_thread;

  Future<std::thread::id> value = loop.run_in_executor(&pool, [] { return std::this_thread::get_id(); });
  Future<int> error = loop.run_in_executor(&pool, []() -> int { throw std::runtime_error("db down"); });
  EXPECT_FALSE(value.done()) << "never done inside run_in_executor";
  value.add_done_callback([&] { value_cb_thread = std::this_thread::get_id(); });
  error.add_done_callback([&] { error_cb_thread = std::this_thread::get_id(); });

  run_until_done(loop, value);
  run_until_done(loop, error);
  EXPECT_NE(value.result(), loop_thread) << "the call ran on a pool thread";
  EXPECT_THROW(error.result(), std::runtime_error);
  EXPECT_EQ(value_cb_thread, loop_thread);
  EXPECT_EQ(error_cb_thread, loop_thread);
}

TEST(RunInExecutorTest, SequentialOffloadsFromTheLoopRunOnOneWorker) {
  // W2's shape: the loop offloads a call, its result comes back, the next
  // goes out at once: the worker that completed the call takes the next,
  // instead of the pool starting another worker each time.
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(4);
  for (int i = 0; i < 10; ++i) {
    Future<int> f = loop.run_in_executor(&pool, [i] { return i; });
    run_until_done(loop, f);
    EXPECT_EQ(f.result(), i);
  }
  EXPECT_EQ(pool.thread_count(), 1);
}

TEST(RunInExecutorTest, MoveOnlyArgumentsAndResultsCrossBothWays) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  auto f = loop.run_in_executor(
      &pool, [](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); },
      std::make_unique<int>(41));
  std::unique_ptr<int> r = loop.run_sync([f] { return f; });
  EXPECT_EQ(*r, 42);
}

TEST(RunInExecutorTest, AnRvalueThenTakesTheResultWithoutACopy) {
  // `run_in_executor(...).then(fn(T&&))` is the chaining form of an
  // offload: the result crosses from the pool into fn by moves only.
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  std::atomic<const char*> made{nullptr};
  Future<bool> same_buffer =
      loop.run_in_executor(&pool,
                           [&made] {
                             std::string page(4096, 'p');
                             made = page.data();
                             return page;
                           })
          .then([&made](std::string&& page) {
            std::string mine = std::move(page);
            return mine.data() == made.load();
          });
  EXPECT_TRUE(loop.run_sync([same_buffer] { return same_buffer; }));
}

TEST(RunInExecutorTest, NullExecutorMeansTheLoopsDefaultPool) {
  IOLoop loop;
  loop.make_current();
  Future<std::thread::id> f = loop.run_in_executor(nullptr, [] { return std::this_thread::get_id(); });
  EXPECT_NE(loop.run_sync([f] { return f; }), std::this_thread::get_id());
}

// Tornado: ioloop_test.py test_run_in_executor_gen (and test_run_in_executor_native)
TEST(RunInExecutorTest, TheDefaultPoolRunsTwoCallsThatNeedEachOtherAtOnce) {
  IOLoop loop;
  loop.make_current();
  // Each call waits for the other to arrive. With a single worker the first
  // gives up after the meeting's bound and says false; nothing hangs.
  auto meeting = std::make_shared<Meeting>(2);
  auto meet = [meeting] { return meeting->arrive_and_wait(); };
  std::vector<Future<bool>> calls = {loop.run_in_executor(nullptr, meet),
                                     loop.run_in_executor(nullptr, meet)};
  std::vector<bool> met = loop.run_sync([&] { return multi(calls); }, absl::Seconds(40));
  EXPECT_EQ(met, (std::vector<bool>{true, true}));
}

TEST(RunInExecutorTest, SetDefaultExecutorReplacesTheDefaultPool) {
  IOLoop loop;
  loop.make_current();
  auto inline_executor = std::make_shared<InlineExecutor>();
  loop.set_default_executor(inline_executor);
  Future<std::thread::id> f = loop.run_in_executor(nullptr, [] { return std::this_thread::get_id(); });
  EXPECT_EQ(loop.run_sync([f] { return f; }), std::this_thread::get_id())
      << "the InlineExecutor ran it on the loop thread";
  EXPECT_EQ(inline_executor->shutdown().completed, 1u);
}

TEST(RunInExecutorTest, CallFromAnotherThreadThrowsInvalidStateError) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  std::thread other([&] {
    EXPECT_THROW(loop.run_in_executor(&pool, [] { return 1; }), InvalidStateError);
  });
  other.join();
}

// An empty fn is refused at the call and nothing is submitted: it used to
// abort (or crash) the process on the pool thread that ran it.
TEST(RunInExecutorTest, AnEmptyFnIsRejectedAtTheCallAndNothingIsSubmitted) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(thrown_what<std::invalid_argument>(
                [&] { (void)loop.run_in_executor(&pool, absl::AnyInvocable<int()>()); }),
            "IOLoop::run_in_executor: fn is empty");
  int (*null_fn)(int) = nullptr;
  EXPECT_THROW((void)loop.run_in_executor(&pool, null_fn, 1), std::invalid_argument);
  EXPECT_THROW((void)loop.run_in_executor(&pool, Deadline::after(absl::Seconds(60)),
                                          std::function<void()>()),
               std::invalid_argument);
  loop.run_sync([] {});
  EXPECT_EQ(pool.stats().submitted, 0u);
  EXPECT_EQ(loop.run_sync([&] { return loop.run_in_executor(&pool, [] { return 1; }); }), 1);
}

TEST(RunInExecutorTest, SubmitToAShutDownExecutorThrowsAtOnce) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  pool.shutdown();
  EXPECT_THROW(loop.run_in_executor(&pool, [] { return 1; }), ExecutorShutdownError);
  loop.run_sync([] {});  // the abandoned delivery is cleaned up on the loop
}

TEST(RunInExecutorTest, CancellingWhileQueuedRemovesTheTask) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  std::atomic<bool> ran{false};
  Future<void> f = loop.run_in_executor(&pool, [&] { ran = true; });
  EXPECT_TRUE(f.cancel());
  EXPECT_EQ(pool.stats().queued, 1u);
  gate.open();
  ShutdownReport r = pool.shutdown();
  EXPECT_FALSE(ran.load()) << "a task cancelled while queued never runs";
  EXPECT_EQ(r.cancelled, 1u);
  loop.run_sync([] {});
  EXPECT_TRUE(f.cancelled());
}

TEST(RunInExecutorTest, CancellingWhileRunningSignalsTheTokenAndDiscardsTheLateResult) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  const uint64_t discarded_before = offload_stats().results_discarded_after_cancel;
  Future<bool> f;
  std::atomic<bool> saw_cancel{false};
  f = loop.run_in_executor(&pool, [&](CancellationToken token) {
    // Running now: ask the loop to cancel us, then block until told.
    loop.add_callback([&] { f.cancel(); });
    saw_cancel = token.wait_for_cancel(absl::InfiniteDuration());
    return saw_cancel.load();
  });
  loop.run_sync([f] {
    Future<void> done;
    Future<bool> copy = f;
    copy.add_done_callback([done]() mutable { done.set_result(); });
    return done;
  });
  EXPECT_TRUE(f.cancelled());
  pool.shutdown();  // the task has finished and its outcome is on its way
  loop.run_sync([] {});
  EXPECT_TRUE(saw_cancel.load()) << "the running task was told through its token";
  EXPECT_EQ(offload_stats().results_discarded_after_cancel, discarded_before + 1);
}

TEST(RunInExecutorTest, MemberFunctionGetsTheTokenAfterTheObject) {
  struct Worker {
    bool wait(CancellationToken token) { return token.wait_for_cancel(absl::InfiniteDuration()); }
  };
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  Worker w;
  Future<bool> f = loop.run_in_executor(&pool, &Worker::wait, &w);
  loop.call_later(absl::Milliseconds(5), [f]() mutable { f.cancel(); });
  loop.run_sync([f] {
    Future<void> done;
    Future<bool> copy = f;
    copy.add_done_callback([done]() mutable { done.set_result(); });
    return done;
  });
  pool.shutdown();  // returns only because the token reached the method
  EXPECT_TRUE(f.cancelled());
}

TEST(RunInExecutorTest, DeadlinePassedWhileQueuedFailsWithTimeoutErrorAndSkipsTheCall) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  std::atomic<bool> ran{false};
  Future<void> f = loop.run_in_executor(&pool, Deadline::after(absl::ZeroDuration()),
                                        [&] { ran = true; });
  EXPECT_THROW(loop.run_sync([f] { return f; }), TimeoutError);
  EXPECT_FALSE(ran.load());
}

TEST(RunInExecutorTest, DeadlineReachesTheRunningCallThroughItsToken) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  Future<bool> f = loop.run_in_executor(&pool, Deadline::after(absl::Milliseconds(20)),
                                        [](CancellationToken token) {
                                          token.wait_for_cancel(absl::InfiniteDuration());
                                          return token.expired();
                                        });
  EXPECT_TRUE(loop.run_sync([f] { return f; }));
}

TEST(RunInExecutorTest, WithTimeoutCancelOnTimeoutReachesTheRunningTask) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool(1);
  std::atomic<bool> told{false};
  Future<void> f = loop.run_in_executor(&pool, [&](CancellationToken token) {
    told = token.wait_for_cancel(absl::InfiniteDuration());
  });
  TimeoutOptions options;
  options.cancel_on_timeout = true;
  Future<void> limited = with_timeout(absl::Milliseconds(20), f, std::move(options));
  EXPECT_THROW(loop.run_sync([limited] { return limited; }), TimeoutError);
  pool.shutdown();  // returns because the token was signalled
  EXPECT_TRUE(told.load());
  loop.run_sync([] {});
}

TEST(RunInExecutorTest, BoundedPoolQueueNeverBlocksTheLoop) {
  IOLoop loop;
  loop.make_current();
  ThreadPoolExecutor pool({.max_workers = 1, .max_queue_size = 1});
  Gate gate;
  std::vector<Future<int>> fs;
  // Far more than the queue holds; each call returns at once.
  for (int i = 0; i < 10; ++i) {
    fs.push_back(loop.run_in_executor(&pool, [&gate, i] {
      gate.wait();
      return i;
    }));
  }
  EXPECT_EQ(pool.stats().submitted, 10u);
  gate.open();
  std::vector<int> results = loop.run_sync([&] { return multi(fs); });
  EXPECT_EQ(results, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

// Tornado: ioloop_test.py test_init_close_race
TEST(RunInExecutorTest, TwoPoolThreadsMayCreateRunAndCloseLoopsAtTheSameTime) {
  IOLoop loop;
  loop.make_current();
  // A pool of the test's own rather than the default one: if the calls
  // hang in IOLoop's constructor or close(), it is left behind unjoined.
  auto pool = std::make_unique<ThreadPoolExecutor>(2);
  auto meeting = std::make_shared<Meeting>(2);
  auto make_and_close = [meeting] {
    for (int i = 0; i < 10; ++i) {
      IOLoop l;  // while the other thread makes its own, or closes its last
      if (!meeting->arrive_and_wait()) return false;  // both loops are alive here
      l.run_sync([] {});
      l.close();  // while the other thread closes its own, or makes its next
    }
    return IOLoop::current_or_null() == nullptr;  // nothing left current on the pool thread
  };
  std::vector<Future<bool>> calls = {loop.run_in_executor(pool.get(), make_and_close),
                                     loop.run_in_executor(pool.get(), make_and_close)};
  std::vector<bool> ok;
  try {
    ok = loop.run_sync([&] { return multi(calls); }, absl::Seconds(40));
  } catch (const TimeoutError&) {
    (void)pool.release();  // deliberately leaked: joining its stuck workers would hang
    FAIL() << "creating and closing loops on two pool threads at once hangs";
  }
  EXPECT_EQ(ok, (std::vector<bool>{true, true}));
}

TEST(RunInExecutorTest, LoopDestroyedWithWorkInFlightDropsTheCompletionSafely) {
  ThreadPoolExecutor pool(2);
  Gate gate;
  const uint64_t dropped_before = offload_stats().late_completions_dropped;
  Future<std::string> survivor;
  testing::LogCapture log;
  {
    IOLoop loop;
    loop.make_current();
    survivor = loop.run_in_executor(&pool, [&] {
      gate.wait();
      return std::string(1000, 'x');  // heap-allocated, so asan sees any misuse
    });
    loop.run_in_executor(&pool, [&] {
      gate.wait();
      throw std::runtime_error("nobody will see this");
    });
    gate.wait_arrived(2);
  }  // destroyed while both calls block
  gate.open();
  pool.shutdown();  // both completions are delivered to a loop that is gone
  EXPECT_EQ(offload_stats().late_completions_dropped, dropped_before + 2);
  EXPECT_FALSE(survivor.done()) << "its loop is gone: it stays pending";
  EXPECT_EQ(log.count("nobody will see this"), 1u)
      << "a failure nobody could receive is logged as never retrieved";
}

TEST(RunInExecutorTest, LoopDestroyedWithWorkStillQueuedDropsItToo) {
  ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  const uint64_t dropped_before = offload_stats().late_completions_dropped;
  std::atomic<int> ran{0};
  {
    IOLoop loop;
    loop.make_current();
    for (int i = 0; i < 3; ++i) loop.run_in_executor(&pool, [&] { ++ran; });
  }
  gate.open();
  pool.shutdown();
  EXPECT_EQ(ran.load(), 3) << "the calls themselves are not stopped";
  EXPECT_EQ(offload_stats().late_completions_dropped, dropped_before + 3);
}

}  // namespace
}  // namespace eddy
