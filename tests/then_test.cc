// Future<T>::then: value chains, void on either side, exceptions from fn and
// from the source, cancellation both ways, flattening returned futures,
// move-only values, when an rvalue fn gets the value moved and when a copy,
// where fn runs.
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/future.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::LogCapture;
using testing::ManualScheduler;
using testing::thrown_what;

std::exception_ptr boom(const std::string& what = "boom") {
  return std::make_exception_ptr(std::runtime_error(what));
}

TEST(ThenTest, FnGetsTheValueAndItsResultCompletesTheNewFuture) {
  ManualScheduler loop;
  Future<int> source;
  Future<std::string> text = source.then([](int& v) { return std::to_string(v * 2); });
  source.set_result(21);
  EXPECT_FALSE(text.done());
  loop.run_pending();
  ASSERT_TRUE(text.done());
  EXPECT_EQ(text.result(), "42");
}

TEST(ThenTest, FnRunsOnTheLoopNeverInsideSetResult) {
  ManualScheduler loop;
  Future<int> source;
  bool ran = false;
  Future<void> after = source.then([&](int&) { ran = true; });
  source.set_result(1);
  EXPECT_FALSE(ran);
  loop.run_pending();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(after.done());
}

TEST(ThenTest, ChainsOfThens) {
  ManualScheduler loop;
  Future<int> source;
  Future<int> out = source.then([](int v) { return v + 1; })
                        .then([](int v) { return v * 10; })
                        .then([](const int& v) { return v - 3; });
  source.set_result(1);
  loop.run_pending();
  EXPECT_EQ(out.result(), 17);
}

TEST(ThenTest, VoidSourcesAndVoidContinuations) {
  ManualScheduler loop;
  Future<void> source;
  int calls = 0;
  Future<void> a = source.then([&] { ++calls; });
  Future<int> b = source.then([&] { return ++calls * 100; });
  source.set_result();
  loop.run_pending();
  EXPECT_TRUE(a.done());
  EXPECT_EQ(b.result(), 200);
  EXPECT_EQ(calls, 2);
}

TEST(ThenTest, AnExceptionFromFnFailsTheResult) {
  ManualScheduler loop;
  Future<int> out = make_ready_future(1).then([](int) -> int { throw std::out_of_range("fn"); });
  loop.run_pending();
  ASSERT_TRUE(out.done());
  EXPECT_THROW(out.result(), std::out_of_range);
}

TEST(ThenTest, ASourceFailureSkipsFnAndPropagatesThroughTheChain) {
  LogCapture logs;
  {
    ManualScheduler loop;
    Future<int> source;
    int calls = 0;
    Future<int> out = source.then([&](int v) { return ++calls + v; }).then([&](int v) {
      ++calls;
      return v;
    });
    source.set_exception(boom("source"));
    loop.run_pending();
    ASSERT_TRUE(out.done());
    EXPECT_THROW(out.result(), std::runtime_error);
    EXPECT_EQ(calls, 0);
  }
  EXPECT_EQ(logs.count("never retrieved"), 0u) << "each link's exception was passed on";
}

TEST(ThenTest, ACancelledSourceCancelsTheResult) {
  ManualScheduler loop;
  Future<int> source;
  bool ran = false;
  Future<int> out = source.then([&](int v) {
    ran = true;
    return v;
  });
  source.cancel();
  loop.run_pending();
  EXPECT_TRUE(out.cancelled());
  EXPECT_FALSE(ran);
}

TEST(ThenTest, CancellingTheResultDoesNotCancelTheSourceAndSkipsFn) {
  ManualScheduler loop;
  Future<int> source;
  bool ran = false;
  Future<int> out = source.then([&](int v) {
    ran = true;
    return v;
  });
  EXPECT_TRUE(out.cancel());
  EXPECT_FALSE(source.done());
  source.set_result(1);
  loop.run_pending();
  EXPECT_FALSE(ran);
  EXPECT_EQ(source.result(), 1);
}

TEST(ThenTest, ReturningAFutureFlattens) {
  ManualScheduler loop;
  Future<int> source;
  Future<std::string> inner;
  Future<std::string> out = source.then([&](int) { return inner; });
  source.set_result(1);
  loop.run_pending();
  EXPECT_FALSE(out.done()) << "waits for the returned future";
  inner.set_result("inner");
  loop.run_pending();
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.result(), "inner");
}

TEST(ThenTest, AFailedReturnedFutureFailsTheResult) {
  ManualScheduler loop;
  Future<void> out = make_ready_future(1).then([](int) {
    return make_exceptional_future<void>(boom("inner failed"));
  });
  loop.run_pending();
  ASSERT_TRUE(out.done());
  EXPECT_THROW(out.result(), std::runtime_error);
}

TEST(ThenTest, AnEmptyReturnedFutureFailsTheResultWithInvalidState) {
  ManualScheduler loop;
  Future<int> out = make_ready_future(1).then([](int) {
    Future<int> f;
    Future<int> g = std::move(f);
    g.set_result(0);
    return f;  // moved from: empty
  });
  loop.run_pending();
  ASSERT_TRUE(out.done());
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { out.result(); }),
            "Future::then: fn returned an empty Future (moved from)");
}

// An empty fn is refused at the call, before anything is added to the
// source: it used to abort (or crash) in the callback once the source was
// done.
TEST(ThenTest, AnEmptyFnIsRejectedAtTheCall) {
  ManualScheduler loop;
  Future<int> source;
  EXPECT_EQ(thrown_what<std::invalid_argument>(
                [&] { (void)source.then(absl::AnyInvocable<int(int&)>()); }),
            "Future::then: fn is empty");
  int (*null_fn)(int&) = nullptr;
  EXPECT_THROW((void)source.then(null_fn), std::invalid_argument);
  EXPECT_THROW((void)source.then(std::function<int(int&)>()), std::invalid_argument);
  Future<void> done = make_ready_future();
  EXPECT_THROW((void)done.then(absl::AnyInvocable<void()>()), std::invalid_argument);
  source.set_result(1);
  EXPECT_EQ(loop.run_pending(), 0) << "a callback was added to the source";
}

TEST(ThenTest, MoveOnlyValuesGoToAnRvalueFn) {
  ManualScheduler loop;
  Future<std::unique_ptr<int>> source;
  Future<int> out = source.then([](std::unique_ptr<int>&& p) { return *p; });
  Future<std::unique_ptr<int>> by_ref;
  Future<int> peek = by_ref.then([](std::unique_ptr<int>& p) { return *p + 1; });
  source.set_result(std::make_unique<int>(5));
  by_ref.set_result(std::make_unique<int>(5));
  loop.run_pending();
  EXPECT_EQ(out.result(), 5);
  EXPECT_EQ(peek.result(), 6);
  EXPECT_NE(by_ref.result(), nullptr) << "an lvalue fn leaves the value in place";
}

// A container of move-only values cannot be copied either, whatever
// std::is_copy_constructible_v says: fn(T&&) gets it moved out, and
// chain_future moves it into the target.
TEST(ThenTest, ContainersOfMoveOnlyValuesGoToAnRvalueFnAndThroughChainFuture) {
  ManualScheduler loop;
  using Rows = std::vector<std::unique_ptr<int>>;
  auto rows_of = [](int v) {
    Rows r;
    r.push_back(std::make_unique<int>(v));
    return r;
  };
  Future<Rows> source;
  Future<int> first = source.then([](Rows&& rows) { return *rows.at(0); });
  Future<Rows> other;
  Future<Rows> chained;
  chain_future(other, chained);
  source.set_result(rows_of(1));
  other.set_result(rows_of(3));
  loop.run_pending();
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result(), 1);
  ASSERT_TRUE(chained.done());
  EXPECT_EQ(*chained.result().at(0), 3);

  ConcurrentFuture<Rows> pooled;
  Future<Rows> bridged;
  chain_future(pooled, bridged);
  pooled.set_result(rows_of(2));
  loop.run_pending();
  ASSERT_TRUE(bridged.done());
  EXPECT_EQ(*bridged.result().at(0), 2);
}

// A long string: its buffer is on the heap, so a move leaves the source
// empty and keeps the buffer, and a copy makes a new one.
std::string long_text() { return std::string(100, 'x'); }

TEST(ThenTest, AnRvalueFnGetsACopyWhileAnotherHandleCanStillReadTheValue) {
  ManualScheduler loop;
  Future<std::string> source;
  std::string taken;
  Future<void> out = source.then([&](std::string&& v) { taken = std::move(v); });
  source.set_result(long_text());
  loop.run_pending();
  ASSERT_TRUE(out.done());
  EXPECT_EQ(taken, long_text());
  EXPECT_EQ(source.result(), long_text()) << "the caller's handle still reads the value";
}

TEST(ThenTest, AnRvalueFnGetsACopyWhenALaterCallbackReadsTheValue) {
  ManualScheduler loop;
  Future<std::string> source;
  std::string taken;
  std::string seen_later;
  Future<void> out = source.then([&](std::string&& v) { taken = std::move(v); });
  source.add_done_callback([&](Future<std::string>& f) { seen_later = f.result(); });
  source.set_result(long_text());
  source = Future<std::string>();  // only the scheduled run holds the state now
  loop.run_pending();
  EXPECT_EQ(taken, long_text());
  EXPECT_EQ(seen_later, long_text());
}

TEST(ThenTest, AnRvalueFnGetsACopyWhenAnEarlierCallbackAddsAReader) {
  ManualScheduler loop;
  Future<std::string> source;
  std::string taken;
  std::string seen_later;
  source.add_done_callback([&](Future<std::string>& f) {
    f.add_done_callback([&](Future<std::string>& g) { seen_later = g.result(); });
  });
  Future<void> out = source.then([&](std::string&& v) { taken = std::move(v); });
  source.set_result(long_text());
  source = Future<std::string>();
  loop.run_pending();
  loop.run_pending();
  EXPECT_EQ(taken, long_text());
  EXPECT_EQ(seen_later, long_text());
}

TEST(ThenTest, AnRvalueFnGetsTheValueMovedWhenNothingElseCanReadIt) {
  ManualScheduler loop;
  Future<std::string> source;
  const char* buffer = nullptr;
  const char* seen = nullptr;
  int earlier_ran = 0;
  // A callback before it does not read after it: the value still moves.
  source.add_done_callback([&] { ++earlier_ran; });
  Future<void> out = source.then([&](std::string&& v) {
    std::string mine = std::move(v);
    seen = mine.data();
  });
  std::string text = long_text();
  buffer = text.data();
  source.set_result(std::move(text));
  source = Future<std::string>();
  loop.run_pending();
  EXPECT_EQ(earlier_ran, 1);
  EXPECT_TRUE(out.done());
  EXPECT_EQ(seen, buffer) << "the value was copied, not moved";
}

TEST(ThenTest, AFutureMadeAndChainedInOneExpressionMovesItsValue) {
  ManualScheduler loop;
  Future<std::string> source;
  const char* buffer = nullptr;
  const char* seen = nullptr;
  auto make = [&] { return source; };
  Future<size_t> out = make().then([&](std::string&& v) {
    seen = v.data();
    return v.size();
  });
  std::string text = long_text();
  buffer = text.data();
  source.set_result(std::move(text));
  source = Future<std::string>();
  loop.run_pending();
  EXPECT_EQ(out.result(), 100u);
  EXPECT_EQ(seen, buffer);
}

TEST(ThenTest, WithoutALoopFnRunsInsideSetResult) {
  ASSERT_EQ(Scheduler::current(), nullptr);
  Future<int> source;
  Future<int> out = source.then([](int v) { return v + 1; });
  source.set_result(1);
  ASSERT_TRUE(out.done());
  EXPECT_EQ(out.result(), 2);
}

TEST(ThenTest, ThenOnAMovedFromFutureThrowsInvalidState) {
  Future<int> f;
  Future<int> g = std::move(f);
  EXPECT_THROW(f.then([](int v) { return v; }), InvalidStateError);  // NOLINT
}

}  // namespace
}  // namespace eddy
