// fan_out: a bounded window of calls over a range, on the loop or on a
// pool; results in input order; multi()'s failure semantics.
#include "eddy/sync/fan_out.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using FanOutTest = testing::SyncLoopTest;

// Raises `peak` to at least `value`.
void raise_peak(std::atomic<int>& peak, int value) {
  int seen = peak.load();
  while (seen < value && !peak.compare_exchange_weak(seen, value)) {
  }
}

// The scenario: 10,000 pool jobs, never more than 8 in flight.
TEST_F(FanOutTest, TenThousandPoolJobsNeverHaveMoreThanEightInFlight) {
  ThreadPoolExecutor pool(4);
  std::vector<int> ids(10000);
  for (int i = 0; i < 10000; ++i) ids[i] = i;
  std::atomic<int> in_flight{0};
  std::atomic<int> peak{0};
  std::atomic<int> calls{0};
  std::thread::id loop_thread = std::this_thread::get_id();
  std::atomic<bool> ran_on_loop_thread{false};

  std::vector<long> results = loop_.run_sync([&] {
    return fan_out(pool, std::move(ids), 8, [&](int id) -> long {
      raise_peak(peak, ++in_flight);
      if (std::this_thread::get_id() == loop_thread) ran_on_loop_thread = true;
      ++calls;
      --in_flight;
      return static_cast<long>(id) * id;
    });
  });

  ASSERT_EQ(results.size(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(results[i], static_cast<long>(i) * i);
  EXPECT_EQ(calls.load(), 10000);
  EXPECT_LE(peak.load(), 8);
  EXPECT_GE(peak.load(), 1);
  EXPECT_FALSE(ran_on_loop_thread.load());
}

// The window is full: eight jobs run at once, and none more, when each
// waits for the others (a deadlock if they could not run in parallel, a
// failure if a ninth started).
TEST_F(FanOutTest, PoolWindowFillsUpToItsLimitInParallel) {
  ThreadPoolExecutor pool(16);
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int peak = 0;
  int running = 0;
  std::vector<int> items(16);
  auto job = [&](int) {
    std::unique_lock<std::mutex> lock(mu);
    peak = std::max(peak, ++running);
    ++arrived;
    cv.notify_all();
    // Each wave of 8 leaves only once all 8 of it have arrived.
    int wave_end = ((arrived - 1) / 8 + 1) * 8;
    cv.wait(lock, [&] { return arrived >= wave_end; });
    --running;
  };
  loop_.run_sync([&] { return fan_out(pool, items, 8, job); });
  EXPECT_EQ(peak, 8);
  EXPECT_EQ(arrived, 16);
}

TEST_F(FanOutTest, LoopCallsStayWithinTheWindowAndResultsKeepInputOrder) {
  std::vector<int> items = {0, 1, 2, 3, 4, 5, 6};
  std::vector<Future<std::string>> started;  // started[i] is item i's call
  size_t finished = 0;
  size_t peak = 0;
  Future<std::vector<std::string>> result = fan_out(items, 3, [&](int) {
    Future<std::string> f;
    started.push_back(f);
    peak = std::max(peak, started.size() - finished);
    return f;
  });
  EXPECT_EQ(started.size(), 3u);  // the window, and no more
  // Finish the newest call first each time: completion order is the
  // reverse of input order within each window.
  while (!result.done()) {
    for (size_t i = started.size(); i-- > 0;) {
      if (started[i].done()) continue;
      started[i].set_result(std::string(1, static_cast<char>('a' + i)));
      ++finished;
      break;
    }
    drain();
  }
  EXPECT_EQ(started.size(), items.size());
  EXPECT_EQ(peak, 3u);
  EXPECT_EQ(result.result(), (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
}

TEST_F(FanOutTest, SynchronousFunctionsAndCoroutinesBothWork) {
  std::vector<int> items = {1, 2, 3};
  Future<std::vector<int>> doubled = fan_out(items, 2, [](int i) { return 2 * i; });
  ASSERT_TRUE(doubled.done());
  EXPECT_EQ(doubled.result(), (std::vector<int>{2, 4, 6}));

  auto coroutine = [](int i) -> Future<int> { co_return i + 10; };
  Future<std::vector<int>> added = fan_out(items, 1, coroutine);
  drain();
  ASSERT_TRUE(added.done());
  EXPECT_EQ(added.result(), (std::vector<int>{11, 12, 13}));
}

TEST_F(FanOutTest, FunctionsReturningConcurrentFuturesAreBroughtBackToTheLoop) {
  ThreadPoolExecutor pool(2);
  std::vector<int> items = {1, 2, 3, 4};
  std::vector<int> out = loop_.run_sync([&] {
    return fan_out(items, 2, [&](int i) { return pool.submit([i] { return i * i; }); });
  });
  EXPECT_EQ(out, (std::vector<int>{1, 4, 9, 16}));
}

TEST_F(FanOutTest, AFailureIsTheFirstInInputOrderAndEveryItemStillRuns) {
  testing::LogCapture logs;
  std::vector<int> items = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<Future<int>> pending;
  int calls = 0;
  Future<std::vector<int>> result = fan_out(items, 4, [&](int i) -> Future<int> {
    ++calls;
    if (i == 7) throw std::runtime_error("seven");  // fails first in time
    Future<int> f;
    pending.push_back(f);
    return f;
  });
  // Item 3 (in the first window) fails last, after every other call,
  // item 7's among them, is done.
  while (!result.done()) {
    for (size_t i = 0; i < pending.size(); ++i) {
      if (pending[i].done()) continue;
      if (i != 3) {
        pending[i].set_result(1);
      } else if (calls == 10) {
        pending[i].set_exception(std::make_exception_ptr(std::logic_error("three")));
      }
    }
    drain();
  }
  EXPECT_EQ(calls, 10);
  EXPECT_THROW(
      {
        try {
          result.result();
        } catch (const std::logic_error& e) {
          EXPECT_STREQ(e.what(), "three");
          throw;
        }
      },
      std::logic_error);
  EXPECT_EQ(logs.count("seven"), 1u);  // the other failure, logged
}

TEST_F(FanOutTest, QuietExceptionsAreNotLogged) {
  testing::LogCapture logs;
  std::vector<int> items = {0, 1, 2};
  Future<std::vector<int>> result = fan_out(
      items, 2, [](int i) -> int { throw std::runtime_error("item " + std::to_string(i)); },
      QuietExceptions::of<std::runtime_error>());
  drain();
  ASSERT_TRUE(result.done());
  EXPECT_THROW(result.result(), std::runtime_error);
  EXPECT_EQ(logs.size(), 0u);
}

TEST_F(FanOutTest, CancellingTheResultStartsNoMoreCalls) {
  testing::LogCapture logs;
  std::vector<int> items(10);
  std::vector<Future<int>> started;
  Future<std::vector<int>> result = fan_out(items, 2, [&](int) {
    Future<int> f;
    started.push_back(f);
    return f;
  });
  EXPECT_EQ(started.size(), 2u);
  EXPECT_TRUE(result.cancel());
  for (auto& f : started) f.set_result(0);  // the calls in flight finish
  drain();
  EXPECT_EQ(started.size(), 2u);  // ...and nothing else starts
  EXPECT_EQ(logs.size(), 0u);     // the unstarted items' cancellations are quiet
}

TEST_F(FanOutTest, VoidCallsGiveAFutureVoid) {
  std::vector<int> items = {1, 2, 3};
  int sum = 0;
  Future<void> f = fan_out(items, 2, [&](int i) { sum += i; });
  ASSERT_TRUE(f.done());
  EXPECT_EQ(sum, 6);

  ThreadPoolExecutor pool(2);
  std::atomic<int> pool_sum{0};
  loop_.run_sync([&] { return fan_out(pool, items, 2, [&](int i) { pool_sum += i; }); });
  EXPECT_EQ(pool_sum.load(), 6);
}

TEST_F(FanOutTest, AnEmptyRangeIsDoneAtOnce) {
  std::vector<int> none;
  Future<std::vector<int>> f = fan_out(none, 4, [](int i) { return i; });
  ASSERT_TRUE(f.done());
  EXPECT_TRUE(f.result().empty());
}

TEST_F(FanOutTest, ZeroMaxInFlightThrowsInvalidArgument) {
  std::vector<int> items = {1};
  EXPECT_THROW(fan_out(items, 0, [](int i) { return i; }), std::invalid_argument);
}

// A size_t parameter used to take -1 as "unbounded": every call at once.
TEST_F(FanOutTest, ANegativeMaxInFlightIsRejected) {
  std::vector<int> items = {1, 2, 3};
  int calls = 0;
  try {
    (void)fan_out(items, -1, [&](int i) {
      ++calls;
      return i;
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "fan_out: max_in_flight must be > 0, got -1");
  }
  ThreadPoolExecutor pool(1);
  EXPECT_THROW(fan_out(pool, items, -2, [](int i) { return i; }), std::invalid_argument);
  EXPECT_EQ(calls, 0);
  size_t width = 2;  // an unsigned width still compiles
  Future<std::vector<int>> f = fan_out(items, width, [](int i) { return i; });
  EXPECT_TRUE(f.done());
}

TEST_F(FanOutTest, AnEmptyFnIsRejectedBeforeAnyCall) {
  std::vector<int> items = {1, 2, 3};
  EXPECT_THROW(fan_out(items, 2, absl::AnyInvocable<int(int)>()), std::invalid_argument);
  int (*null_fn)(int) = nullptr;
  EXPECT_THROW(fan_out(items, 2, null_fn), std::invalid_argument);
  ThreadPoolExecutor pool(1);
  EXPECT_THROW(fan_out(pool, items, 2, null_fn), std::invalid_argument);
  EXPECT_THROW(fan_out(pool, items, 2, std::function<int(int)>()), std::invalid_argument);
  drain();
}

TEST_F(FanOutTest, ViewsAndNonVectorRangesWork) {
  // clang 14 cannot instantiate libstdc++ 12's iota_view (its concepts
  // fail inside the library); clang 15 and g++ can.
#if !defined(__clang__) || __clang_major__ >= 15
  Future<std::vector<int>> squares =
      fan_out(std::views::iota(0, 5), 2, [](int i) { return i * i; });
  ASSERT_TRUE(squares.done());
  EXPECT_EQ(squares.result(), (std::vector<int>{0, 1, 4, 9, 16}));
#endif

  std::list<std::string> words = {"a", "bb", "ccc"};
  Future<std::vector<size_t>> sizes =
      fan_out(words, 1, [](const std::string& w) { return w.size(); });
  ASSERT_TRUE(sizes.done());
  EXPECT_EQ(sizes.result(), (std::vector<size_t>{1, 2, 3}));
}

// A range that makes its items on the fly: *it is a new string each time,
// not a reference into storage (as a transform view's).
struct MadeOnTheFly {
  struct iterator {
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    int i = 0;
    std::string operator*() const { return "item number " + std::to_string(i) + " of the range"; }
    iterator& operator++() {
      ++i;
      return *this;
    }
    iterator operator++(int) {
      iterator before = *this;
      ++i;
      return before;
    }
    bool operator==(const iterator&) const = default;
  };
  int n = 0;
  iterator begin() const { return iterator{0}; }
  iterator end() const { return iterator{n}; }
};
static_assert(std::ranges::forward_range<MadeOnTheFly>);

TEST_F(FanOutTest, ACoroutineKeepsItsItemAcrossItsAwaitsWhenTheRangeMakesItems) {
  // fn's reference is to the item made for this call; it stays valid until
  // the call is done, so a coroutine may read it after a co_await.
  auto fn = [this](const std::string& item) -> Future<std::string> {
    Future<void> gate;
    loop_.add_callback([gate]() mutable { gate.set_result(); });
    co_await gate;
    co_return item + "!";
  };
  std::vector<std::string> out =
      loop_.run_sync([&] { return fan_out(MadeOnTheFly{4}, 2, fn); });
  ASSERT_EQ(out.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(out[i], "item number " + std::to_string(i) + " of the range!");
  }
}

TEST_F(FanOutTest, ItemsOfAShutDownPoolFailWithExecutorShutdownError) {
  testing::LogCapture logs;
  ThreadPoolExecutor pool(1);
  pool.shutdown();
  std::vector<int> items = {1, 2};
  Future<std::vector<int>> f = fan_out(pool, items, 1, [](int i) { return i; });
  drain();
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), ExecutorShutdownError);
}

TEST(FanOutWithoutLoopTest, PoolFanOutNeedsACurrentLoop) {
  ThreadPoolExecutor pool(1);
  std::vector<int> items = {1};
  EXPECT_THROW(fan_out(pool, items, 1, [](int i) { return i; }), InvalidStateError);
}

}  // namespace
}  // namespace eddy
