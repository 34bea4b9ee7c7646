// Blocking waits on many ConcurrentFutures from a thread that is not a loop:
// eddy::wait (concurrent.futures.wait), eddy::as_completed
// (concurrent.futures.as_completed) and Executor::map (Executor.map).
#include "eddy/futures/concurrent_wait.h"

#include <atomic>
#include <chrono>
#include <ranges>
#include <span>
#include <mutex>
#include <condition_variable>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::LogCapture;
using testing::thrown_what;

std::vector<ConcurrentFuture<int>> pending(size_t n) {
  std::vector<ConcurrentFuture<int>> fs;
  for (size_t i = 0; i < n; ++i) fs.emplace_back();
  return fs;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The what() of the std::runtime_error that fn() throws, read only once the
// pool's threads have exited. A worker may drop the last reference to a
// failed call's state after map has returned; libstdc++ counts references
// to an exception object in uninstrumented code, so ThreadSanitizer would
// take the worker's delete of an exception read here for a race.
template <class F>
std::string failure_after_shutdown(ThreadPoolExecutor& pool, F&& fn) {
  std::exception_ptr e;
  try {
    std::forward<F>(fn)();
  } catch (...) {
    e = std::current_exception();
  }
  pool.shutdown();
  return thrown_what<std::runtime_error>([&] {
    if (e) std::rethrow_exception(e);
  });
}

// --- wait -------------------------------------------------------------------

TEST(WaitTest, AllCompletedReturnsOnceTheLastOneFinishesOnAnotherThread) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  fs[1].set_result(1);
  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    fs[2].set_result(2);
    absl::SleepFor(absl::Milliseconds(5));
    fs[0].set_result(0);
  });
  DoneAndNotDone<int> r = wait(fs);
  completer.join();
  ASSERT_EQ(r.done.size(), 3u);
  EXPECT_TRUE(r.not_done.empty());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(r.done[i] == fs[i]) << "done keeps the input order";
  }
}

TEST(WaitTest, FirstCompletedReturnsWithTheOneThatFinishedAndTheOthersNotDone) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    fs[1].set_result(1);
  });
  DoneAndNotDone<int> r = wait(fs, std::nullopt, ReturnWhen::kFirstCompleted);
  completer.join();
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == fs[1]);
  ASSERT_EQ(r.not_done.size(), 2u);
  EXPECT_TRUE(r.not_done[0] == fs[0]);
  EXPECT_TRUE(r.not_done[1] == fs[2]);
}

TEST(WaitTest, FirstCompletedCountsACancelledFuture) {
  std::vector<ConcurrentFuture<int>> fs = pending(2);
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(5));
    fs[0].cancel();
  });
  DoneAndNotDone<int> r = wait(fs, std::nullopt, ReturnWhen::kFirstCompleted);
  canceller.join();
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0].cancelled());
}

TEST(WaitTest, FirstExceptionReturnsAtTheFirstFailure) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  fs[0].set_result(0);
  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    fs[2].set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  });
  DoneAndNotDone<int> r = wait(fs, std::nullopt, ReturnWhen::kFirstException);
  completer.join();
  ASSERT_EQ(r.done.size(), 2u);
  EXPECT_TRUE(r.done[0] == fs[0]);
  EXPECT_TRUE(r.done[1] == fs[2]);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_TRUE(r.not_done[0] == fs[1]);
  EXPECT_THROW(fs[2].result(), std::runtime_error);
}

TEST(WaitTest, FirstExceptionIsNotReachedByACancellationAndWaitsForAllOtherwise) {
  std::vector<ConcurrentFuture<int>> fs = pending(2);
  fs[0].cancel();
  DoneAndNotDone<int> r = wait(fs, absl::Milliseconds(20), ReturnWhen::kFirstException);
  EXPECT_EQ(r.done.size(), 1u) << "a cancellation is not an exception";
  EXPECT_EQ(r.not_done.size(), 1u);

  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    fs[1].set_result(1);
  });
  r = wait(fs, std::nullopt, ReturnWhen::kFirstException);
  completer.join();
  EXPECT_EQ(r.done.size(), 2u) << "no exception: it waits for all";
  EXPECT_TRUE(r.not_done.empty());
}

TEST(WaitTest, ATimeoutIsNotAnErrorAndReportsWhatIsStillPending) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  fs[2].set_result(2);
  const absl::Time start = absl::Now();
  DoneAndNotDone<int> r = wait(fs, absl::Milliseconds(30));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == fs[2]);
  ASSERT_EQ(r.not_done.size(), 2u);
  // The callbacks it left behind find the wait gone: completing later is
  // harmless (ASan checks the board they share).
  fs[0].set_result(0);
  fs[1].set_result(1);
  EXPECT_EQ(fs[0].result() + fs[1].result(), 1);
}

TEST(WaitTest, ReturnsAtOnceWhenAlreadyThereOrEmpty) {
  std::vector<ConcurrentFuture<int>> none;
  for (ReturnWhen when : {ReturnWhen::kFirstCompleted, ReturnWhen::kFirstException,
                          ReturnWhen::kAllCompleted}) {
    DoneAndNotDone<int> r = wait(none, std::nullopt, when);
    EXPECT_TRUE(r.done.empty() && r.not_done.empty());
  }
  std::vector<ConcurrentFuture<int>> fs = pending(2);
  fs[1].set_result(1);
  DoneAndNotDone<int> r = wait(fs, std::nullopt, ReturnWhen::kFirstCompleted);
  EXPECT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.not_done.size(), 1u);
  fs[0].set_result(0);
  r = wait(fs);
  EXPECT_EQ(r.done.size(), 2u);
}

TEST(WaitTest, AFutureListedTwiceIsReportedAtBothPositions) {
  ConcurrentFuture<int> f;
  std::vector<ConcurrentFuture<int>> fs = {f, f};
  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    f.set_result(7);
  });
  DoneAndNotDone<int> r = wait(fs);
  completer.join();
  EXPECT_EQ(r.done.size(), 2u);
}

TEST(WaitTest, AnEmptyHandleIsRefusedNamingTheCall) {
  std::vector<ConcurrentFuture<int>> fs = pending(2);
  ConcurrentFuture<int> taken = std::move(fs[1]);
  EXPECT_TRUE(contains(thrown_what<InvalidStateError>([&] { wait(fs); }), "wait: "));
  EXPECT_TRUE(contains(
      thrown_what<InvalidStateError>([&] { as_completed(fs); }), "as_completed: "));
}

TEST(WaitTest, WaitingForTheCurrentLoopsOwnWorkThrowsInsteadOfDeadlocking) {
  IOLoop loop;
  loop.make_current();
  std::vector<ConcurrentFuture<int>> fs = {loop.run_in_loop([] { return 1; }),
                                           loop.run_in_loop([] { return 2; })};
  EXPECT_TRUE(contains(thrown_what<InvalidStateError>([&] { wait(fs); }), "would deadlock"));
  EXPECT_THROW(wait(fs, std::nullopt, ReturnWhen::kFirstCompleted), InvalidStateError);
  // A zero timeout only looks.
  DoneAndNotDone<int> r = wait(fs, absl::ZeroDuration());
  EXPECT_EQ(r.not_done.size(), 2u);

  // One future another thread completes: waiting for the first can end.
  ConcurrentFuture<int> other;
  std::vector<ConcurrentFuture<int>> mixed = {fs[0], other};
  std::thread completer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    other.set_result(3);
  });
  r = wait(mixed, std::nullopt, ReturnWhen::kFirstCompleted);
  completer.join();
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == other);
  // ... but waiting for all cannot.
  EXPECT_THROW(wait(mixed), InvalidStateError);
  loop.clear_current();
}

// With a timeout, the same wait would block the loop for all of it and
// then time out, whatever the loop had to do meanwhile: it throws at once
// too (an hour's timeout would otherwise hang the test). A zero timeout is
// still a poll.
TEST(WaitTest, WithATimeoutWaitingForTheCurrentLoopsOwnWorkThrowsAtOnceToo) {
  IOLoop loop;
  loop.make_current();
  const absl::Duration kHour = absl::Hours(1);
  std::vector<ConcurrentFuture<int>> fs = {loop.run_in_loop([] { return 1; }),
                                           loop.run_in_loop([] { return 2; })};
  for (ReturnWhen when :
       {ReturnWhen::kAllCompleted, ReturnWhen::kFirstCompleted, ReturnWhen::kFirstException}) {
    const std::string what = thrown_what<InvalidStateError>([&] { wait(fs, kHour, when); });
    EXPECT_TRUE(contains(what, "would deadlock")) << what;
    EXPECT_FALSE(contains(what, "give a timeout")) << what;
    EXPECT_THROW(wait(fs, absl::InfiniteDuration(), when), InvalidStateError);
    EXPECT_EQ(wait(fs, absl::ZeroDuration(), when).not_done.size(), 2u) << "a poll";
    EXPECT_EQ(wait(fs, -absl::Seconds(1), when).not_done.size(), 2u) << "a poll";
  }

  // All completed: one such future is enough, whatever else is pending.
  ConcurrentFuture<int> other;
  std::vector<ConcurrentFuture<int>> mixed = {fs[0], other};
  EXPECT_THROW(wait(mixed, kHour), InvalidStateError);
  // First completed: only when every pending one is such; `other` may end it.
  std::thread completer([&] { other.set_result(3); });
  DoneAndNotDone<int> r = wait(mixed, kHour, ReturnWhen::kFirstCompleted);
  completer.join();
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == other);
  // A done future changes nothing for all, and is the answer for first.
  EXPECT_THROW(wait(mixed, kHour), InvalidStateError);
  EXPECT_EQ(wait(mixed, kHour, ReturnWhen::kFirstCompleted).done.size(), 1u);

  // Once the loop has run them, the same waits return.
  loop.run_sync([] {});
  EXPECT_EQ(wait(fs, kHour).done.size(), 2u);
  loop.clear_current();
}

TEST(WaitTest, ManyFuturesCompletedByPoolThreadsWhileWaiting) {
  ThreadPoolExecutor pool(2);
  for (int round = 0; round < 50; ++round) {
    std::vector<ConcurrentFuture<int>> fs;
    for (int i = 0; i < 64; ++i) fs.push_back(pool.submit([i] { return i; }));
    DoneAndNotDone<int> r =
        wait(fs, std::nullopt, round % 2 ? ReturnWhen::kAllCompleted : ReturnWhen::kFirstException);
    ASSERT_EQ(r.done.size(), 64u);
    int sum = 0;
    for (auto& f : r.done) sum += f.result();
    EXPECT_EQ(sum, 63 * 64 / 2);
    DoneAndNotDone<int> first = wait(fs, std::nullopt, ReturnWhen::kFirstCompleted);
    EXPECT_EQ(first.done.size(), 64u) << "all were done";
  }
}

// --- as_completed ---------------------------------------------------------

TEST(AsCompletedTest, HandsOutTheDoneOnesFirstThenInCompletionOrder) {
  std::vector<ConcurrentFuture<int>> fs = pending(4);
  fs[3].set_result(3);
  fs[1].set_result(1);
  AsCompleted<int> each(fs);
  EXPECT_EQ(each.remaining(), 4u);
  std::optional<Completed<int>> c = each.next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, 1u) << "already done: in input order";
  c = each.next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, 3u);
  fs[2].set_exception(std::make_exception_ptr(std::runtime_error("two")));
  fs[0].set_result(0);
  c = each.next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, 2u);
  EXPECT_THROW(c->future.result(), std::runtime_error);
  c = each.next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, 0u);
  EXPECT_TRUE(c->future == fs[0]);
  EXPECT_EQ(each.remaining(), 0u);
  EXPECT_FALSE(each.next());
  EXPECT_FALSE(each.next());
}

TEST(AsCompletedTest, ARangeForGetsEveryPoolResultOnceWithItsIndex) {
  ThreadPoolExecutor pool(2);
  std::vector<ConcurrentFuture<int>> fs;
  for (int i = 0; i < 100; ++i) {
    fs.push_back(pool.submit([i] {
      if (i % 7 == 0) absl::SleepFor(absl::Microseconds(200));
      return i * 10;
    }));
  }
  std::set<size_t> seen;
  for (auto& [index, f] : as_completed(fs, absl::Seconds(60))) {
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.result(), static_cast<int>(index) * 10);
    EXPECT_TRUE(seen.insert(index).second) << "index " << index << " twice";
  }
  EXPECT_EQ(seen.size(), 100u);
  int loops = 0;
  for (auto& c : as_completed(std::vector<ConcurrentFuture<int>>{})) {
    (void)c;
    ++loops;
  }
  EXPECT_EQ(loops, 0);
}

TEST(AsCompletedTest, TheTimeoutBoundsTheWholeIterationAndNamesWhatIsLeft) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  fs[0].set_result(0);
  fs[2].set_result(2);
  AsCompleted<int> each(fs, absl::Milliseconds(30));
  EXPECT_TRUE(each.next());
  EXPECT_TRUE(each.next());
  const std::string what = thrown_what<TimeoutError>([&] { each.next(); });
  EXPECT_EQ(what, "as_completed: 1 of 3 futures not done within 30ms");
  EXPECT_EQ(each.remaining(), 1u);
  fs[1].set_result(1);
  std::optional<Completed<int>> late = each.next();
  ASSERT_TRUE(late) << "a future that finished after the timeout is still handed out";
  EXPECT_EQ(late->index, 1u);

  std::vector<ConcurrentFuture<int>> never = pending(1);
  bool threw = false;
  try {
    for (auto& c : as_completed(never, absl::Milliseconds(1))) (void)c;
  } catch (const TimeoutError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

TEST(AsCompletedTest, AbandonedWithFuturesPendingFreesEverythingWhenTheyFinish) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  {
    AsCompleted<int> each(fs);
    fs[0].set_result(0);
    EXPECT_EQ(each.next()->index, 0u);
  }
  fs[1].set_result(1);  // the callbacks outlive the iterator; ASan checks
  fs[2].set_result(2);
  EXPECT_EQ(fs[2].result(), 2);
}

// CPython's test_free_reference_yielded_future: a future handed out and
// dropped goes, with its result, while the iteration goes on.
TEST(AsCompletedTest, KeepsNothingOfWhatItHandedOut) {
  std::vector<std::weak_ptr<int>> values;
  std::vector<ConcurrentFuture<std::shared_ptr<int>>> fs;
  for (int i = 0; i < 4; ++i) {
    ConcurrentFuture<std::shared_ptr<int>> f;
    auto value = std::make_shared<int>(i);
    values.push_back(value);
    f.set_result(std::move(value));
    fs.push_back(std::move(f));
  }
  ConcurrentFuture<std::shared_ptr<int>> last;
  fs.push_back(last);
  AsCompleted<std::shared_ptr<int>> each(std::move(fs));
  for (int i = 0; i < 4; ++i) {
    std::optional<Completed<std::shared_ptr<int>>> c = each.next();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(*c->future.result(), static_cast<int>(c->index));
    c.reset();
    EXPECT_TRUE(values[static_cast<size_t>(i)].expired()) << "result " << i << " is still held";
  }
  last.set_result(std::make_shared<int>(4));
  EXPECT_EQ(*each.next()->future.result(), 4);
  EXPECT_FALSE(each.next().has_value());
}

// A next() that would wait, forever or until the deadline, for what only
// the blocked loop can complete throws; one past the deadline (a zero
// timeout) only looks, and times out.
TEST(AsCompletedTest, OnlyTheCurrentLoopsOwnWorkLeftThrowsWithOrWithoutATimeout) {
  IOLoop loop;
  loop.make_current();
  ConcurrentFuture<int> other;
  other.set_result(5);
  std::vector<ConcurrentFuture<int>> fs = {loop.run_in_loop([] { return 1; }), other};
  AsCompleted<int> each(fs);
  EXPECT_EQ(each.next()->index, 1u) << "the done one first";
  EXPECT_TRUE(contains(thrown_what<InvalidStateError>([&] { each.next(); }), "would deadlock"));
  AsCompleted<int> timed(fs, absl::Hours(1));
  EXPECT_EQ(timed.next()->index, 1u);
  EXPECT_TRUE(contains(thrown_what<InvalidStateError>([&] { timed.next(); }), "would deadlock"));
  AsCompleted<int> polled(fs, absl::ZeroDuration());
  EXPECT_EQ(polled.next()->index, 1u);
  EXPECT_THROW(polled.next(), TimeoutError);
  loop.clear_current();
}

// --- Executor::map -------------------------------------------------------

TEST(ExecutorMapTest, ReturnsTheResultsInInputOrder) {
  ThreadPoolExecutor pool(2);
  std::vector<int> in(20);
  std::iota(in.begin(), in.end(), 0);
  std::vector<std::string> out = pool.map(
      [](int i) {
        absl::SleepFor(absl::Microseconds((20 - i) * 50));  // later items finish first
        return std::to_string(i);
      },
      in);
  ASSERT_EQ(out.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out[i], std::to_string(i));
  EXPECT_EQ(in.size(), 20u) << "an lvalue range is copied from";

  EXPECT_TRUE(pool.map([](int i) { return i; }, std::vector<int>{}).empty());
  std::vector<int> squares = pool.map([](int i) { return i * i; }, std::set<int>{2, 0, 1});
  EXPECT_EQ(squares, (std::vector<int>{0, 1, 4})) << "any input range, in its order";
}

TEST(ExecutorMapTest, AVoidCallReturnsNothingOnceAllRan) {
  ThreadPoolExecutor pool(2);
  std::atomic<int> sum{0};
  std::vector<int> in = {1, 2, 3, 4};
  static_assert(std::is_void_v<decltype(pool.map([&](int i) { sum += i; }, in))>);
  pool.map([&](int i) { sum += i; }, in);
  EXPECT_EQ(sum.load(), 10);
}

TEST(ExecutorMapTest, AnRvalueRangeIsMovedFromSoMoveOnlyItemsWork) {
  ThreadPoolExecutor pool(2);
  std::vector<std::unique_ptr<int>> in;
  for (int i = 0; i < 5; ++i) in.push_back(std::make_unique<int>(i));
  std::vector<int> out = pool.map([](std::unique_ptr<int> p) { return *p + 1; }, std::move(in));
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5}));
  std::vector<std::unique_ptr<int>> back =
      pool.map([](int i) { return std::make_unique<int>(i); }, std::vector<int>{7, 8});
  EXPECT_EQ(*back[1], 8) << "move-only results too";
}

TEST(ExecutorMapTest, TheFirstFailureIsRethrownAndTheQueuedCallsNeverRun) {
  ThreadPoolExecutor pool(1);
  std::vector<std::atomic<bool>> ran(10);
  std::vector<std::atomic<bool>> returned(10);
  std::vector<int> in(10);
  std::iota(in.begin(), in.end(), 0);
  const std::string what = failure_after_shutdown(pool, [&] {
    pool.map(
        [&](CancellationToken token, int i) {
          ran[i] = true;
          if (i == 0) throw std::runtime_error("item 0 failed");
          // Holds the only worker until map gives up.
          EXPECT_TRUE(token.wait_for_cancel(absl::Seconds(60)));
          absl::SleepFor(absl::Milliseconds(5));
          returned[i] = true;
        },
        in);
  });
  EXPECT_EQ(what, "item 0 failed");
  // Call 1 may have started before map gave up; if so, map waited for it.
  EXPECT_EQ(ran[1].load(), returned[1].load());
  for (int i = 2; i < 10; ++i) EXPECT_FALSE(ran[i].load()) << "queued call " << i << " ran";
}

TEST(ExecutorMapTest, NeverReturnsWhileACallItStartedIsRunning) {
  ThreadPoolExecutor pool(2);
  std::latch started(1);
  std::atomic<bool> returned{false};
  std::vector<int> in = {0, 1};
  EXPECT_THROW(pool.map(
                   [&](CancellationToken token, int i) {
                     if (i == 1) {
                       started.wait();
                       throw std::runtime_error("fail");
                     }
                     started.count_down();
                     EXPECT_TRUE(token.wait_for_cancel(absl::Seconds(60)))
                         << "map did not cancel the running call's token";
                     absl::SleepFor(absl::Milliseconds(20));
                     returned = true;  // the caller's stack, still alive
                   },
                   in),
               std::runtime_error);
  EXPECT_TRUE(returned.load()) << "map returned while a call it started was running";
}

TEST(ExecutorMapTest, FailsFastRatherThanInInputOrder) {
  ThreadPoolExecutor pool(2);
  std::vector<int> in = {0, 1};
  const std::string what = failure_after_shutdown(pool, [&] {
    pool.map(
        [](CancellationToken token, int i) -> int {
          if (i == 1) throw std::runtime_error("second failed");
          token.wait_for_cancel(absl::Seconds(60));  // the first would take a minute
          throw std::runtime_error("first failed");
        },
        in);
  });
  EXPECT_EQ(what, "second failed");
}

TEST(ExecutorMapTest, ATimeoutCancelsTheCallsAndThrowsTimeoutErrorOnceTheyReturned) {
  ThreadPoolExecutor pool(2);
  std::atomic<int> started{0};
  std::atomic<int> returned{0};
  std::vector<int> in = {0, 1, 2, 3};
  LogCapture log;
  const std::string what = thrown_what<TimeoutError>([&] {
    pool.map(
        [&](CancellationToken token, int i) {
          if (i == 0) return;
          ++started;
          token.wait_for_cancel(absl::Seconds(60));  // until map gives up
          ++returned;
          token.throw_if_cancelled();
        },
        in, absl::Milliseconds(200));
  });
  // Call 0 is done unless the machine stalled for 200 ms.
  EXPECT_TRUE(what == "Executor::map: 3 of 4 calls not done within 200ms" ||
              what == "Executor::map: 4 of 4 calls not done within 200ms")
      << what;
  // Two workers, each held by a call until the timeout: the third call was
  // still queued then, and never ran.
  EXPECT_LE(started.load(), 2);
  EXPECT_EQ(returned.load(), started.load()) << "map returned before its calls did";
  EXPECT_EQ(log.size(), 0u) << "the dropped outcomes are not logged: " << log.lines()[0];
}

TEST(ExecutorMapTest, AnInlineExecutorStopsAtTheFirstFailure) {
  InlineExecutor inline_executor;
  std::vector<int> in = {0, 1, 2, 3};
  std::vector<int> ran;
  EXPECT_THROW(inline_executor.map(
                   [&](int i) {
                     ran.push_back(i);
                     if (i == 1) throw std::runtime_error("stop");
                   },
                   in),
               std::runtime_error);
  EXPECT_EQ(ran, (std::vector<int>{0, 1}));
}

// Drops its second task unsettled (which cancels its future), as an executor
// shutting down with cancel_futures does to queued work.
class DroppingExecutor final : public Executor {
 public:
  ShutdownReport shutdown(bool, bool) override { return {}; }

 protected:
  void execute(TaskPtr task) override {
    if (count_++ == 1) return;
    task->run();
  }

 private:
  int count_ = 0;
};

TEST(ExecutorMapTest, ACallCancelledBySomeoneElseMakesItThrowCancelledError) {
  DroppingExecutor executor;
  std::vector<int> in = {0, 1, 2};
  EXPECT_EQ(thrown_what<CancelledError>([&] { executor.map([](int i) { return i; }, in); }),
            "Executor::map: call 1 of 3 was cancelled");
}

TEST(ExecutorMapTest, BadInputIsRefusedBeforeAnythingRuns) {
  ThreadPoolExecutor pool(1);
  std::vector<int> in = {1};
  std::function<int(int)> empty;
  EXPECT_EQ(thrown_what<std::invalid_argument>([&] { pool.map(empty, in); }),
            "Executor::map: fn is empty");
  pool.shutdown();
  EXPECT_THROW(pool.map([](int i) { return i; }, in), ExecutorShutdownError);
}

// The README's snippet ("A thread that is not a loop ..."), as written there.
uint64_t file_size(const std::string& path) { return path.size(); }
std::string fetch(const std::string& url) { return "<" + url + ">"; }

TEST(ConcurrentWaitReadmeTest, TheSnippetRunsAsWritten) {
  ThreadPoolExecutor pool(2);
  std::vector<std::string> paths = {"a", "bb", "ccc"};
  std::vector<uint64_t> sizes = pool.map(file_size, paths, absl::Seconds(30));
  EXPECT_EQ(sizes, (std::vector<uint64_t>{1, 2, 3}));

  std::vector<std::string> urls = {"x", "y"};
  std::vector<eddy::ConcurrentFuture<std::string>> fetches;
  for (const std::string& u : urls) fetches.push_back(pool.submit(fetch, u));
  auto [done, not_done] = eddy::wait(fetches, absl::Seconds(5),
                                     eddy::ReturnWhen::kFirstException);
  EXPECT_EQ(done.size() + not_done.size(), 2u);
  std::vector<std::string> shown(2);
  for (auto& [index, f] : eddy::as_completed(fetches)) shown[index] = f.result();
  EXPECT_EQ(shown, (std::vector<std::string>{"<x>", "<y>"}));
}

// --- what the review of the first version found ------------------------------

TEST(WaitTest, AWaitThatEndsLeavesNothingOnTheFutures) {
  std::vector<ConcurrentFuture<int>> fs = pending(3);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(wait(fs, absl::ZeroDuration(), ReturnWhen::kFirstCompleted).not_done.size(), 3u);
    EXPECT_EQ(wait(fs, absl::Milliseconds(1)).not_done.size(), 3u);
    AsCompleted<int> abandoned(fs, absl::Microseconds(1));
    EXPECT_THROW(abandoned.next(), TimeoutError);
  }
  for (const ConcurrentFuture<int>& f : fs) {
    EXPECT_EQ(internal::ConcurrentAccess::state(f).waiters, nullptr)
        << "a poll or an abandoned iteration left a listener behind";
    EXPECT_FALSE(internal::ConcurrentAccess::state(f).first_callback);
  }
}

// A done callback that blocks until released (at most 60 s).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  bool passed = false;
  void pass() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return open; });
    passed = true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(WaitTest, ASlowCallbackOfTheFutureDoesNotDelayTheWait) {
  ConcurrentFuture<int> f;
  Gate gate;
  f.add_done_callback([&] { gate.pass(); });
  std::thread completer([&] { f.set_result(1); });  // runs the callback after waking waiters
  DoneAndNotDone<int> r = wait(std::vector<ConcurrentFuture<int>>{f}, ReturnWhen::kAllCompleted);
  EXPECT_EQ(r.done.size(), 1u);
  {
    std::lock_guard<std::mutex> lock(gate.mu);
    EXPECT_FALSE(gate.passed) << "the wait returned only after the callback";
  }
  gate.release();
  completer.join();

  ConcurrentFuture<int> g;
  Gate gate2;
  g.add_done_callback([&] { gate2.pass(); });
  std::thread completer2([&] { g.set_result(2); });
  AsCompleted<int> each(std::vector<ConcurrentFuture<int>>{g}, absl::Seconds(30));
  std::optional<Completed<int>> c = each.next();
  ASSERT_TRUE(c) << "as_completed waited for the callback";
  gate2.release();
  completer2.join();
}

// With or without a timeout (an hour: it would hang the test).
TEST(WaitTest, FirstExceptionThrowsOnceOnlyTheLoopsOwnWorkIsLeft) {
  IOLoop loop;
  loop.make_current();
  const std::optional<absl::Duration> kNone;
  for (std::optional<absl::Duration> timeout : {kNone, std::optional(absl::Hours(1))}) {
    ConcurrentFuture<int> other;
    std::vector<ConcurrentFuture<int>> fs = {loop.run_in_loop([] { return 1; }), other};
    std::thread completer([&] {
      absl::SleepFor(absl::Milliseconds(5));
      other.set_result(3);  // a value: the wait can no longer end
    });
    EXPECT_TRUE(contains(
        thrown_what<InvalidStateError>([&] { wait(fs, timeout, ReturnWhen::kFirstException); }),
        "would deadlock"));
    completer.join();
    // Had it failed, the wait would have ended with it.
    ConcurrentFuture<int> failing;
    std::vector<ConcurrentFuture<int>> gs = {loop.run_in_loop([] { return 2; }), failing};
    std::thread failer([&] {
      absl::SleepFor(absl::Milliseconds(5));
      failing.set_exception(std::make_exception_ptr(std::runtime_error("x")));
    });
    DoneAndNotDone<int> r = wait(gs, timeout, ReturnWhen::kFirstException);
    failer.join();
    ASSERT_EQ(r.done.size(), 1u);
    EXPECT_TRUE(r.done[0] == failing);
    EXPECT_THROW(r.done[0].result(), std::runtime_error);
  }
  loop.clear_current();
}

TEST(AsCompletedTest, AMovedFromOneRefusesPolitely) {
  std::vector<ConcurrentFuture<int>> fs = pending(2);
  fs[0].set_result(0);
  AsCompleted<int> a(fs);
  EXPECT_TRUE(a.next());
  AsCompleted<int> b = std::move(a);
  EXPECT_EQ(a.remaining(), 0u);  // NOLINT(bugprone-use-after-move): tested on purpose
  EXPECT_TRUE(contains(thrown_what<InvalidStateError>([&] { a.next(); }), "moved from"));
  EXPECT_EQ(b.remaining(), 1u);
  fs[1].set_result(1);
  EXPECT_EQ(b.next()->index, 1u);
}

TEST(ExecutorMapTest, AViewOrSpanIsCopiedFromNeverMovedFrom) {
  ThreadPoolExecutor pool(2);
  std::vector<std::string> names = {"alpha", "beta"};
  std::vector<size_t> sizes = pool.map([](std::string s) { return s.size(); }, std::span(names));
  EXPECT_EQ(sizes, (std::vector<size_t>{5, 4}));
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta"})) << "the caller's elements moved";
  // absl::Span is not marked a view or a borrowed range: only containers
  // known to own their elements are moved from.
  sizes = pool.map([](const std::string& s) { return s.size(); }, absl::MakeSpan(names));
  EXPECT_EQ(sizes, (std::vector<size_t>{5, 4}));
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta"})) << "absl::Span's elements moved";
}

#ifndef __clang__  // clang 14 cannot compile libstdc++ 12's range adaptors
TEST(ExecutorMapTest, TemporaryElementsAreMovedSoMoveOnlyOnesWork) {
  ThreadPoolExecutor pool(2);
  std::vector<int> ints = {1, 2};
  auto boxed = ints | std::views::transform([](int i) { return std::make_unique<int>(i); });
  std::vector<int> out = pool.map([](std::unique_ptr<int> p) { return *p * 10; }, boxed);
  EXPECT_EQ(out, (std::vector<int>{10, 20}));
  std::vector<std::string> names = {"a", "bb"};
  EXPECT_EQ(pool.map([](const std::string& s) { return s.size(); }, names | std::views::take(2)),
            (std::vector<size_t>{1, 2}));
  EXPECT_EQ(names[1], "bb") << "a view's elements are the caller's: copied";
}
#endif

TEST(ExecutorMapTest, ProxyElementsArriveAsValues) {
  ThreadPoolExecutor pool(2);
  std::vector<bool> bits = {true, false, true};
  std::vector<bool> flipped = pool.map(
      [](auto b) {
        static_assert(std::is_same_v<decltype(b), bool>, "a vector<bool> proxy reached the call");
        return !b;
      },
      bits);
  EXPECT_EQ(flipped, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(bits, (std::vector<bool>{true, false, true}));
}

TEST(ExecutorMapTest, ABracedListAndAReturnWhenWithoutTimeout) {
  ThreadPoolExecutor pool(2);
  EXPECT_EQ(pool.map([](int i) { return i + 1; }, {1, 2, 3}), (std::vector<int>{2, 3, 4}));
}

// Maps n items on `pool` (one worker) with a function that takes no token
// and fails on item 0; returns how many calls ran after that failure.
// The calls share a borrowed token: the failure cancels it as it completes,
// on the worker, before the worker takes the next call, so none should.
int calls_run_after_the_first_failure(ThreadPoolExecutor& pool, int n) {
  std::atomic<int> ran_after_failure{0};
  std::vector<int> in(static_cast<size_t>(n));
  std::iota(in.begin(), in.end(), 0);
  LogCapture log;
  const std::string what = failure_after_shutdown(pool, [&] {
    pool.map(
        [&](int i) {
          if (i == 0) throw std::runtime_error("item 0 failed");
          ++ran_after_failure;
        },
        in);
  });
  EXPECT_EQ(what, "item 0 failed");
  EXPECT_EQ(log.size(), 0u) << "the cancelled calls' outcomes are not logged: " << log.lines()[0];
  return ran_after_failure.load();
}

TEST(ExecutorMapTest, ABoundedQueueStillFailsFast) {
  ThreadPoolExecutor pool(ThreadPoolExecutor::Options{.max_workers = 1, .max_queue_size = 1});
  EXPECT_EQ(calls_run_after_the_first_failure(pool, 20), 0);
}

TEST(ExecutorMapTest, ABoundedQueueStopsSubmittingAtTheTimeout) {
  ThreadPoolExecutor pool(ThreadPoolExecutor::Options{.max_workers = 1, .max_queue_size = 1});
  std::atomic<int> ran{0};
  std::vector<int> in(50);
  std::iota(in.begin(), in.end(), 0);
  const std::string what = thrown_what<TimeoutError>([&] {
    pool.map(
        [&](int) {
          ++ran;
          absl::SleepFor(absl::Milliseconds(5));
        },
        in, absl::Milliseconds(20));
  });
  EXPECT_TRUE(what.starts_with("Executor::map: ")) << what;
  EXPECT_TRUE(what.ends_with(" of 50 calls not done within 20ms")) << what;
  EXPECT_LT(ran.load(), 50) << "it went on submitting past its timeout";
}

TEST(ExecutorMapTest, CallsLeftQueuedWhenMapGaveUpNeverRunAfterItReturned) {
  // The calls of a fn without a token share a token that map's frame owns
  // (no reference count per call): once map has returned, its calls still
  // queued must not read it. ASan reports a read of the freed source.
  ThreadPoolExecutor pool(1);
  std::latch release(1);
  ConcurrentFuture<void> blocker = pool.submit([&] { release.wait(); });
  std::atomic<int> ran{0};
  {
    std::vector<int> in = {0, 1, 2, 3};
    EXPECT_EQ(thrown_what<TimeoutError>(
                  [&] { pool.map([&](int) { ++ran; }, in, absl::Milliseconds(20)); }),
              "Executor::map: 4 of 4 calls not done within 20ms");
  }
  release.count_down();
  blocker.result();
  pool.shutdown();
  EXPECT_EQ(ran.load(), 0) << "a call map gave up on ran after it returned";
}

TEST(ExecutorMapTest, AFailureStopsTheQueuedCallsOfAFnWithoutAToken) {
  ThreadPoolExecutor pool(1);
  EXPECT_EQ(calls_run_after_the_first_failure(pool, 50), 0);
}

TEST(WaitTest, TimeoutMessagesNeverSayNegative) {
  std::vector<ConcurrentFuture<int>> fs = pending(1);
  AsCompleted<int> each(fs, absl::Milliseconds(-5));
  EXPECT_EQ(thrown_what<TimeoutError>([&] { each.next(); }),
            "as_completed: 1 of 1 futures not done within 0");
}

}  // namespace
}  // namespace eddy
