// Coroutines returning Future<T>: eager start, co_return, exceptions across
// levels, awaiting Future and ConcurrentFuture, cancellation at the
// co_await, stack depth, move-only values, destruction with the loop.
#include "eddy/futures/coroutine.h"

#include <coroutine>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

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
using testing::thrown_what;

// Sanitizers make frames several times larger and slower; the depth cases
// keep their shape with a smaller count there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kDeep = 100'000;
#else
constexpr int kDeep = 1'000'000;
#endif

Future<int> add_later(Future<int> a, int b) {
  int v = co_await a;
  co_return v + b;
}

TEST(CoroutineTest, StartsEagerlyAndRunsUntilTheFirstSuspension) {
  ManualScheduler loop;
  std::vector<std::string> steps;
  Future<int> gate;
  auto body = [&]() -> Future<int> {
    steps.push_back("started");
    int v = co_await gate;
    steps.push_back("resumed");
    co_return v;
  };
  Future<int> f = body();
  EXPECT_EQ(steps, std::vector<std::string>{"started"});
  EXPECT_FALSE(f.done());
  gate.set_result(5);
  EXPECT_EQ(steps.size(), 1u) << "resumed inside set_result";
  loop.run_pending();
  EXPECT_EQ(steps, (std::vector<std::string>{"started", "resumed"}));
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 5);
}

TEST(CoroutineTest, AwaitingADoneFutureDoesNotSuspend) {
  ManualScheduler loop;
  Future<int> f = add_later(make_ready_future(1), 2);
  EXPECT_TRUE(f.done()) << "no suspension, so done on return";
  EXPECT_EQ(f.result(), 3);
  EXPECT_EQ(loop.pending(), 0u);
}

TEST(CoroutineTest, VoidCoroutine) {
  ManualScheduler loop;
  int ran = 0;
  Future<void> gate;
  auto body = [&]() -> Future<void> {
    co_await gate;
    ++ran;
  };
  Future<void> f = body();
  gate.set_result();
  loop.run_pending();
  EXPECT_TRUE(f.done());
  EXPECT_NO_THROW(f.result());
  EXPECT_EQ(ran, 1);
}

struct CustomError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Future<int> fail_after(Future<int> gate) {
  co_await gate;
  throw CustomError("deep failure");
}
Future<int> middle(Future<int> gate) {
  int v = co_await fail_after(gate);
  co_return v + 1;
}
Future<int> top(Future<int> gate) {
  int v = co_await middle(gate);
  co_return v + 1;
}

TEST(CoroutineTest, ExceptionCrossesSeveralLevelsWithItsType) {
  ManualScheduler loop;
  Future<int> gate;
  Future<int> f = top(gate);
  gate.set_result(0);
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), CustomError);
  try {
    f.result();
  } catch (const CustomError& e) {
    EXPECT_STREQ(e.what(), "deep failure");
  }
}

TEST(CoroutineTest, ExceptionBeforeFirstSuspensionFailsTheFuture) {
  auto body = []() -> Future<int> {
    throw std::out_of_range("early");
    co_return 1;
  };
  Future<int> f = body();
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::out_of_range);
}

TEST(CoroutineTest, UnretrievedCoroutineFailureIsLoggedNamingTheCoroutine) {
  LogCapture logs;
  {
    auto body = []() -> Future<int> {
      throw std::runtime_error("nobody looked");
      co_return 0;
    };
    body();
  }
  ASSERT_EQ(logs.count("nobody looked"), 1u);
  EXPECT_NE(logs.lines()[0].find("coroutine_test.cc"), std::string::npos) << logs.lines()[0];
}

TEST(CoroutineTest, MoveOnlyValuesPassThroughAwaitAndReturn) {
  ManualScheduler loop;
  Future<std::unique_ptr<int>> gate;
  auto body = [&]() -> Future<std::unique_ptr<int>> {
    Future<std::unique_ptr<int>> mine = gate;
    std::unique_ptr<int> p = co_await std::move(mine);
    *p += 1;
    co_return p;
  };
  Future<std::unique_ptr<int>> f = body();
  gate.set_result(std::make_unique<int>(41));
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(*f.result(), 42);
}

// `co_return v` compiles exactly when T can be made from v (so that a
// wrong type fails on the co_return line, not inside the future).
template <class T, class U>
concept CanCoReturn = requires(internal::FuturePromise<T>& p, U&& u) {
  p.return_value(std::forward<U>(u));
};
static_assert(!CanCoReturn<int, std::string>);
static_assert(!CanCoReturn<std::unique_ptr<int>, std::unique_ptr<int>&>);  // copy: move it
static_assert(CanCoReturn<int64_t, int>);
static_assert(CanCoReturn<std::string, const char (&)[4]>);
static_assert(CanCoReturn<std::unique_ptr<int>, std::unique_ptr<int>>);
static_assert(CanCoReturn<std::reference_wrapper<int>, int&>);

Future<std::vector<int>> braced_co_return() { co_return {1, 2, 3}; }
Future<std::reference_wrapper<int>> lvalue_for_a_reference_wrapper(int& x) { co_return x; }
Future<int64_t> converted_co_return() { co_return 1; }

TEST(CoroutineTest, CoReturnConvertsBracesLvaluesAndNarrowerTypes) {
  int x = 7;
  EXPECT_EQ(braced_co_return().result(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(&lvalue_for_a_reference_wrapper(x).result().get(), &x);
  EXPECT_EQ(converted_co_return().result(), 1);
}

// A container of move-only values is copy constructible as far as
// std::is_copy_constructible_v can tell (the containers' copy constructors
// are not constrained); the library asks of the elements too.
using UniqueRows = std::vector<std::unique_ptr<int>>;
static_assert(!internal::is_deeply_copyable_v<UniqueRows>);
static_assert(!internal::is_deeply_copyable_v<const UniqueRows>);
static_assert(!internal::is_deeply_copyable_v<std::map<int, std::unique_ptr<int>>>);
static_assert(!internal::is_deeply_copyable_v<std::optional<std::unique_ptr<int>>>);
static_assert(!internal::is_deeply_copyable_v<std::pair<int, UniqueRows>>);
static_assert(!internal::is_deeply_copyable_v<std::tuple<int, UniqueRows>>);
static_assert(!internal::is_deeply_copyable_v<std::variant<int, UniqueRows>>);
static_assert(
    !internal::is_deeply_copyable_v<std::vector<std::map<int, std::optional<UniqueRows>>>>);
static_assert(internal::is_deeply_copyable_v<std::vector<std::string>>);
static_assert(internal::is_deeply_copyable_v<std::map<std::string, std::vector<int>>>);
static_assert(internal::is_deeply_copyable_v<std::tuple<int, std::string, std::optional<int>>>);
static_assert(internal::is_deeply_copyable_v<std::variant<int, std::string>>);
static_assert(internal::is_deeply_copyable_v<std::shared_ptr<std::unique_ptr<int>>>);
static_assert(internal::is_deeply_copyable_v<std::pair<UniqueRows&, int>>);  // a reference
static_assert(internal::is_deeply_copyable_v<std::filesystem::path>);  // its elements are paths
static_assert(internal::is_deeply_copyable_v<int>);

TEST(CoroutineTest, AnRvalueAwaitOfAVectorOfMoveOnlyValuesMovesItOut) {
  ManualScheduler loop;
  using Rows = std::vector<std::unique_ptr<int>>;
  Future<Rows> gate;
  int* first = nullptr;
  auto body = [&]() -> Future<size_t> {
    Rows rows = co_await std::exchange(gate, Future<Rows>());
    EXPECT_EQ(rows[0].get(), first) << "the rows were not moved out";
    co_return rows.size();
  };
  Future<Rows> producer = gate;
  Future<size_t> n = body();
  Rows rows;
  rows.push_back(std::make_unique<int>(1));
  rows.push_back(std::make_unique<int>(2));
  first = rows[0].get();
  producer.set_result(std::move(rows));
  producer = Future<Rows>();
  loop.run_pending();
  ASSERT_TRUE(n.done());
  EXPECT_EQ(n.result(), 2u);
}

TEST(CoroutineTest, AnRvalueAwaitOfAMapOfMoveOnlyValuesMovesItOut) {
  ManualScheduler loop;
  using Table = std::map<int, std::unique_ptr<int>>;
  auto body = [](Future<Table> f) -> Future<int> {
    Table t = co_await std::move(f);
    co_return *t.at(1) + *t.at(2);
  };
  Table t;
  t.emplace(1, std::make_unique<int>(10));
  t.emplace(2, std::make_unique<int>(20));
  Future<int> done_already = body(make_ready_future(std::move(t)));
  ASSERT_TRUE(done_already.done());
  EXPECT_EQ(done_already.result(), 30);

  Future<Table> gate;
  Future<int> pending = body(gate);
  Table u;
  u.emplace(1, std::make_unique<int>(1));
  u.emplace(2, std::make_unique<int>(2));
  gate.set_result(std::move(u));
  loop.run_pending();
  ASSERT_TRUE(pending.done());
  EXPECT_EQ(pending.result(), 3);
  // `gate` still holds a handle: a move-only value is moved out regardless.
  EXPECT_TRUE(gate.result().empty());
}

TEST(CoroutineTest, AnRvalueAwaitOfAnOptionalMoveOnlyValueMovesItOut) {
  ManualScheduler loop;
  using Maybe = std::optional<std::unique_ptr<int>>;
  auto body = [](Future<Maybe> f) -> Future<int> {
    Maybe m = co_await std::move(f);
    co_return m && *m ? **m : -1;
  };
  Future<Maybe> gate;
  Future<int> r = body(gate);
  gate.set_result(Maybe(std::make_unique<int>(5)));
  loop.run_pending();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 5);
}

TEST(CoroutineTest, AnRvalueAwaitOfAConcurrentFutureOfMoveOnlyRowsMovesThemOut) {
  ManualScheduler loop;
  using Rows = std::vector<std::unique_ptr<int>>;
  ConcurrentFuture<Rows> work;
  auto body = [](ConcurrentFuture<Rows> f) -> Future<int> {
    Rows rows = co_await std::move(f);
    co_return *rows.at(0);
  };
  Future<int> r = body(work);
  std::thread([work]() mutable {
    Rows rows;
    rows.push_back(std::make_unique<int>(8));
    work.set_result(std::move(rows));
  }).join();
  loop.run_pending();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 8);
}

// The existing rule for a copyable value: an rvalue handle that is not the
// last one copies, the last one moves.
TEST(CoroutineTest, AnRvalueAwaitCopiesACopyableValueWhileOtherHandlesRemain) {
  ManualScheduler loop;
  using Copies = std::vector<CopyCounted>;
  CopyCounted::copies = 0;
  Future<Copies> shared = make_ready_future(Copies(3));
  auto get = [&] { return shared; };
  auto body = [&]() -> Future<size_t> {
    Copies mine = co_await get();
    co_return mine.size();
  };
  Future<size_t> n = body();
  ASSERT_TRUE(n.done());
  EXPECT_EQ(n.result(), 3u);
  EXPECT_EQ(CopyCounted::copies, 3) << "each element copied once";
  EXPECT_EQ(shared.result().size(), 3u) << "the other handle's value was taken";

  CopyCounted::copies = 0;
  auto take = [](Future<Copies> f) -> Future<size_t> {
    Copies mine = co_await std::move(f);
    co_return mine.size();
  };
  Future<size_t> m = take(make_ready_future(Copies(3)));
  ASSERT_TRUE(m.done());
  EXPECT_EQ(m.result(), 3u);
  EXPECT_EQ(CopyCounted::copies, 0) << "the last handle's value was copied";
}

TEST(CoroutineTest, AnRvalueThenOnACoroutinesResultTakesItWithoutACopy) {
  ManualScheduler loop;
  Future<void> gate;
  const char* made = nullptr;
  auto fetch = [&]() -> Future<std::string> {
    co_await gate;
    std::string page(4096, 'p');
    made = page.data();
    co_return page;
  };
  const char* seen = nullptr;
  Future<size_t> size = fetch().then([&](std::string&& page) {
    std::string mine = std::move(page);
    seen = mine.data();
    return mine.size();
  });
  gate.set_result();
  loop.run_pending();
  loop.run_pending();
  ASSERT_TRUE(size.done());
  EXPECT_EQ(size.result(), 4096u);
  EXPECT_EQ(seen, made) << "the coroutine's value was copied on its way to fn";
}

TEST(CoroutineTest, InterleavingStartNowAwaitLater) {
  ManualScheduler loop;
  Future<int> slow;
  std::vector<std::string> log;
  auto fetch = [&]() -> Future<int> {
    int v = co_await slow;
    log.push_back("fetched");
    co_return v;
  };
  auto body = [&]() -> Future<int> {
    Future<int> pending = fetch();  // starts now
    log.push_back("other work");
    int v = co_await pending;
    co_return v * 2;
  };
  Future<int> f = body();
  EXPECT_EQ(log, std::vector<std::string>{"other work"});
  slow.set_result(21);
  loop.run_pending();
  EXPECT_EQ(log, (std::vector<std::string>{"other work", "fetched"}));
  EXPECT_EQ(f.result(), 42);
}

TEST(CoroutineTest, LoopOfAwaits) {
  ManualScheduler loop;
  std::vector<Future<int>> inputs(10);
  auto body = [&]() -> Future<int> {
    int sum = 0;
    for (auto& in : inputs) sum += co_await in;
    co_return sum;
  };
  Future<int> f = body();
  for (int i = 0; i < 10; ++i) {
    inputs[i].set_result(i);
    loop.run_pending();
  }
  EXPECT_EQ(f.result(), 45);
}

// A coroutine waiting on a future is resumed in registration order with the
// future's callbacks, whether they were added before or after the await,
// and on a later turn.
TEST(CoroutineTest, ResumesInRegistrationOrderWithCallbacks) {
  ManualScheduler loop;
  std::vector<std::string> steps;
  Future<int> before_and_after;
  before_and_after.add_done_callback([&] { steps.push_back("callback added before"); });
  auto body = [&](Future<int> g) -> Future<int> {
    int v = co_await g;
    steps.push_back("resumed");
    co_return v;
  };
  Future<int> f1 = body(before_and_after);
  before_and_after.add_done_callback([&] { steps.push_back("callback added after"); });
  before_and_after.set_result(1);
  EXPECT_TRUE(steps.empty()) << "something ran inside set_result";
  loop.run_pending();
  EXPECT_EQ(steps, (std::vector<std::string>{"callback added before", "resumed",
                                             "callback added after"}));

  steps.clear();
  Future<int> only_after;
  Future<int> f2 = body(only_after);
  only_after.add_done_callback([&] { steps.push_back("callback added after"); });
  only_after.add_done_callback([&] { steps.push_back("second callback"); });
  only_after.set_result(2);
  EXPECT_TRUE(steps.empty()) << "something ran inside set_result";
  loop.run_pending();
  EXPECT_EQ(steps,
            (std::vector<std::string>{"resumed", "callback added after", "second callback"}));
  EXPECT_EQ(f1.result() + f2.result(), 3);
}

// A callback added once the future is done still runs after the coroutine
// it resumed (the resume was queued first).
TEST(CoroutineTest, CallbackAddedAfterCompletionRunsAfterTheResume) {
  ManualScheduler loop;
  std::vector<std::string> steps;
  Future<int> g;
  auto body = [&]() -> Future<void> {
    co_await g;
    steps.push_back("resumed");
  };
  Future<void> f = body();
  g.set_result(1);
  g.add_done_callback([&] { steps.push_back("late callback"); });
  loop.run_pending();
  EXPECT_EQ(steps, (std::vector<std::string>{"resumed", "late callback"}));
  EXPECT_TRUE(f.done());
}

// Two coroutines awaiting one future both resume, in the order they awaited.
TEST(CoroutineTest, TwoCoroutinesAwaitingOneFuture) {
  ManualScheduler loop;
  std::vector<int> order;
  Future<int> g;
  auto body = [&](int id) -> Future<int> {
    int v = co_await g;
    order.push_back(id);
    co_return v + id;
  };
  Future<int> a = body(1);
  Future<int> b = body(2);
  g.set_result(10);
  loop.run_pending();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(a.result(), 11);
  EXPECT_EQ(b.result(), 12);
}

// --- Parallel awaits (multi semantics). ---

TEST(CoroutineParallelTest, AwaitVectorOfFuturesKeepsInputOrder) {
  ManualScheduler loop;
  std::vector<Future<int>> children(3);
  auto body = [&]() -> Future<int> {
    std::vector<int> values = co_await children;
    co_return values[0] * 100 + values[1] * 10 + values[2];
  };
  Future<int> f = body();
  children[2].set_result(3);
  children[0].set_result(1);
  loop.run_pending();
  EXPECT_FALSE(f.done()) << "resumed before every child was done";
  children[1].set_result(2);
  loop.run_pending();
  EXPECT_EQ(f.result(), 123);
}

TEST(CoroutineParallelTest, AwaitMapOfFuturesKeepsKeys) {
  ManualScheduler loop;
  std::map<std::string, Future<int>> children;
  children["a"] = Future<int>();
  children["b"] = Future<int>();
  auto body = [&]() -> Future<std::map<std::string, int>> { co_return co_await children; };
  Future<std::map<std::string, int>> f = body();
  children["b"].set_result(2);
  children["a"].set_result(1);
  loop.run_pending();
  EXPECT_EQ(f.result(), (std::map<std::string, int>{{"a", 1}, {"b", 2}}));
}

// multi over move-only children gives a container of move-only values,
// which an rvalue co_await (of multi's result, or of the container itself)
// moves out.
TEST(CoroutineParallelTest, AwaitingVectorsAndMapsOfMoveOnlyFuturesMovesTheValuesOut) {
  ManualScheduler loop;
  using UP = std::unique_ptr<int>;
  std::vector<Future<UP>> list(2);
  std::map<std::string, Future<UP>> table;
  table["a"] = Future<UP>();
  table["b"] = Future<UP>();
  std::vector<Future<UP>> more(1);
  auto body = [&]() -> Future<int> {
    std::vector<UP> a = co_await std::vector<Future<UP>>(list);
    std::map<std::string, UP> b = co_await multi(table);
    std::map<std::string, UP> c = co_await std::map<std::string, Future<UP>>{};
    std::vector<UP> d = co_await std::move(more);
    co_return *a[0] + *a[1] + *b["a"] + *b["b"] + static_cast<int>(c.size()) + *d[0];
  };
  Future<int> f = body();
  list[0].set_result(std::make_unique<int>(1));
  list[1].set_result(std::make_unique<int>(2));
  table["a"].set_result(std::make_unique<int>(10));
  table["b"].set_result(std::make_unique<int>(20));
  more[0].set_result(std::make_unique<int>(100));
  loop.run_pending();
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 133);
}

TEST(CoroutineParallelTest, AwaitTupleOfMixedTypes) {
  ManualScheduler loop;
  Future<int> a;
  Future<std::string> b;
  Future<void> c;
  auto body = [&]() -> Future<std::string> {
    std::tuple<Future<int>, Future<std::string>, Future<void>> group{a, b, c};
    auto [n, s, unit] = co_await group;
    (void)unit;
    co_return s + std::to_string(n);
  };
  Future<std::string> f = body();
  a.set_result(7);
  b.set_result("x");
  c.set_result();
  loop.run_pending();
  EXPECT_EQ(f.result(), "x7");
}

TEST(CoroutineParallelTest, FirstFailureInInputOrderIsRaised) {
  LogCapture logs;
  ManualScheduler loop;
  std::vector<Future<int>> children(2);
  auto body = [&]() -> Future<int> {
    std::vector<int> values = co_await children;
    co_return values[0];
  };
  Future<int> f = body();
  children[1].set_exception(std::make_exception_ptr(std::out_of_range("second")));
  children[0].set_exception(std::make_exception_ptr(CustomError("first")));
  loop.run_pending();
  EXPECT_THROW(f.result(), CustomError);
  EXPECT_EQ(logs.count("second"), 1u) << "the other failure is logged";
}

// --- Cancellation. ---

TEST(CoroutineCancelTest, CancellingTheResultThrowsCancelledErrorAtTheAwait) {
  ManualScheduler loop;
  Future<int> awaited;
  std::string seen;
  auto body = [&]() -> Future<int> {
    try {
      co_await awaited;
      seen = "resumed normally";
    } catch (const CancelledError&) {
      seen = "cancelled at await";
    }
    co_return 1;
  };
  Future<int> f = body();
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(awaited.cancelled()) << "the awaited future is cancelled too";
  loop.run_pending();
  EXPECT_EQ(seen, "cancelled at await");
  EXPECT_TRUE(f.cancelled()) << "a later co_return does not un-cancel";
}

TEST(CoroutineCancelTest, UncaughtCancellationEndsTheCoroutineQuietly) {
  LogCapture logs;
  ManualScheduler loop;
  Future<int> awaited;
  bool after = false;
  auto body = [&]() -> Future<int> {
    co_await awaited;
    after = true;
    co_return 1;
  };
  Future<int> f = body();
  f.cancel();
  loop.run_pending();
  EXPECT_FALSE(after);
  EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(logs.size(), 0u);
}

TEST(CoroutineCancelTest, CancellationReachesTheInnermostAwait) {
  ManualScheduler loop;
  Future<int> leaf;
  auto inner = [&]() -> Future<int> { co_return co_await leaf; };
  auto outer = [&]() -> Future<int> { co_return co_await inner(); };
  Future<int> f = outer();
  f.cancel();
  EXPECT_TRUE(leaf.cancelled());
  loop.run_pending();
  EXPECT_TRUE(f.cancelled());
}

TEST(CoroutineCancelTest, CancellingAfterCompletionReturnsFalse) {
  ManualScheduler loop;
  Future<int> f = add_later(make_ready_future(1), 1);
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.result(), 2);
}

// --- ConcurrentFuture. ---

TEST(CoroutineConcurrentTest, AwaitResumesOnTheLoopThread) {
  ManualScheduler loop;
  ConcurrentFuture<int> work;
  std::thread::id resumed_on;
  auto body = [&]() -> Future<int> {
    int v = co_await work;
    resumed_on = std::this_thread::get_id();
    co_return v;
  };
  Future<int> f = body();
  std::thread([work]() mutable { work.set_result(9); }).join();
  EXPECT_FALSE(f.done()) << "must not resume on the completing thread";
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 9);
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
}

TEST(CoroutineConcurrentTest, ExceptionFromThePoolSideArrives) {
  ManualScheduler loop;
  ConcurrentFuture<int> work;
  auto body = [&]() -> Future<int> { co_return co_await work; };
  Future<int> f = body();
  std::thread([work]() mutable {
    work.set_exception(std::make_exception_ptr(CustomError("pool side")));
  }).join();
  loop.run_pending();
  EXPECT_THROW(f.result(), CustomError);
}

// Awaiting a moved-from ConcurrentFuture fails the coroutine with
// InvalidStateError naming co_await (it used to crash the process), with
// or without a loop to resume on.
TEST(CoroutineConcurrentTest, AwaitingAMovedFromConcurrentFutureFailsTheCoroutine) {
  ConcurrentFuture<int> work;
  ConcurrentFuture<int> taken = std::move(work);
  auto by_ref = [&]() -> Future<int> { co_return co_await work; };
  auto by_value = [&]() -> Future<int> { co_return co_await std::move(work); };
  Future<int> without_loop = by_ref();
  ASSERT_TRUE(without_loop.done());
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { without_loop.result(); }),
            "co_await: the awaited ConcurrentFuture is empty (moved from)");
  ManualScheduler loop;
  Future<int> with_loop = by_value();
  loop.run_pending();
  ASSERT_TRUE(with_loop.done());
  EXPECT_THROW(with_loop.result(), InvalidStateError);
}

TEST(CoroutineConcurrentTest, CancelWhileQueuedCancelsTheWork) {
  ManualScheduler loop;
  ConcurrentFuture<int> work;  // never marked running: "queued"
  bool caught = false;
  auto body = [&]() -> Future<int> {
    try {
      co_await work;
    } catch (const CancelledError&) {
      caught = true;
    }
    co_return 0;
  };
  Future<int> f = body();
  f.cancel();
  EXPECT_TRUE(work.cancelled());
  loop.run_pending();
  EXPECT_TRUE(caught);
}

TEST(CoroutineConcurrentTest, CancelWhileRunningResumesAtOnceAndDropsTheLateResult) {
  ManualScheduler loop;
  ConcurrentFuture<int> work;
  ASSERT_TRUE(work.set_running_or_notify_cancel());
  int resumes = 0;
  auto body = [&]() -> Future<int> {
    try {
      co_await work;
    } catch (const CancelledError&) {
    }
    ++resumes;
    co_return 0;
  };
  Future<int> f = body();
  f.cancel();
  EXPECT_FALSE(work.cancelled()) << "running work cannot be cancelled";
  loop.run_pending();
  EXPECT_EQ(resumes, 1);
  std::thread([work]() mutable { work.set_result(3); }).join();
  loop.run_pending();
  EXPECT_EQ(resumes, 1) << "the late result must not resume the coroutine again";
}

// A ConcurrentFuture shared by several holders (a cache of in-flight pool
// work) is awaited through a by-value getter: an rvalue handle, but not the
// only one. Taking the value out would leave an empty value to every other
// holder, and race with any thread reading it.
TEST(CoroutineConcurrentTest, AwaitingARvalueHandleToASharedConcurrentFutureLeavesTheValueToTheOthers) {
  ManualScheduler loop;
  const std::string value(100, 'x');
  ConcurrentFuture<std::string> shared;
  auto get = [&] { return shared; };
  auto reader = [&]() -> Future<std::string> { co_return co_await get(); };
  Future<std::string> a = reader();
  Future<std::string> b = reader();
  std::thread([shared, &value]() mutable { shared.set_result(value); }).join();
  loop.run_pending();
  ASSERT_TRUE(a.done() && b.done());
  EXPECT_EQ(a.result(), value);
  EXPECT_EQ(b.result(), value);
  EXPECT_EQ(shared.result(), value);
  // Already done: the same holds without suspending.
  Future<std::string> c = reader();
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.result(), value);
  EXPECT_EQ(shared.result(), value);
}

// The only handle may still give its value away: no copy of a big result.
TEST(CoroutineConcurrentTest, AwaitingTheOnlyHandleToAConcurrentFutureMovesTheValueOut) {
  ManualScheduler loop;
  CopyCounted::copies = 0;
  ConcurrentFuture<CopyCounted> work;
  ConcurrentFuture<CopyCounted> producer = work;
  auto consume = [](ConcurrentFuture<CopyCounted> mine) -> Future<int> {
    CopyCounted v = co_await std::move(mine);
    (void)v;
    co_return CopyCounted::copies;
  };
  Future<int> copies = consume(std::move(work));
  // The producer's handle dies with its thread, before the join returns.
  std::thread([p = std::move(producer)]() mutable { p.set_result(CopyCounted()); }).join();
  loop.run_pending();
  ASSERT_TRUE(copies.done());
  EXPECT_EQ(copies.result(), 0);
}

// A move-only value has no copy to leave behind: as with a Future, an rvalue
// await moves it out even while other handles remain (keep no other reader
// of it).
TEST(CoroutineConcurrentTest, AnRvalueAwaitMovesAMoveOnlyValueOutEvenWhenShared) {
  ManualScheduler loop;
  ConcurrentFuture<std::unique_ptr<int>> work;
  auto get = [&] { return work; };
  auto body = [&]() -> Future<int> {
    std::unique_ptr<int> p = co_await get();
    co_return *p;
  };
  Future<int> r = body();
  std::thread([work]() mutable { work.set_result(std::make_unique<int>(7)); }).join();
  loop.run_pending();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.result(), 7);
  EXPECT_EQ(work.result(), nullptr);
}

// --- Lifetime. ---

struct Counted {
  explicit Counted(int* alive) : alive_(alive) { ++*alive_; }
  ~Counted() { --*alive_; }
  int* alive_;
};

TEST(CoroutineLifetimeTest, DestroyingTheLoopDestroysSuspendedFrames) {
  int alive = 0;
  Future<int> never;  // bound to no loop; completed after the loop is gone
  ConcurrentFuture<int> work;
  {
    ManualScheduler loop;
    auto waits_on_future = [&](Future<int> g) -> Future<int> {
      Counted c(&alive);
      co_return co_await g;
    };
    auto waits_on_work = [&]() -> Future<int> {
      Counted c(&alive);
      co_return co_await work;
    };
    Future<int> pending;  // bound to the loop
    waits_on_future(pending);
    waits_on_future(never);
    waits_on_work();
    EXPECT_EQ(alive, 3);
  }
  EXPECT_EQ(alive, 0) << "suspended frames were not destroyed with the loop";
  never.set_result(1);  // must not resume a destroyed frame
  std::thread([work]() mutable { work.set_result(1); }).join();
  EXPECT_EQ(alive, 0);
}

// The awaited future is bound to the loop and outlives it (another handle
// keeps it); completing it afterwards must neither resume the destroyed
// frame nor lose the future's other callbacks, which then run inline.
TEST(CoroutineLifetimeTest, CompletingAFutureAfterItsLoopDiedDoesNotResumeTheFrame) {
  int alive = 0;
  int callbacks_ran = 0;
  std::unique_ptr<Future<int>> plain;
  std::unique_ptr<Future<int>> with_callback;
  {
    ManualScheduler loop;
    plain = std::make_unique<Future<int>>();
    with_callback = std::make_unique<Future<int>>();
    auto waits = [&](Future<int> g) -> Future<int> {
      Counted c(&alive);
      co_return co_await g;
    };
    waits(*plain);
    waits(*with_callback);
    with_callback->add_done_callback([&] { ++callbacks_ran; });
    EXPECT_EQ(alive, 2);
  }
  EXPECT_EQ(alive, 0) << "suspended frames were not destroyed with the loop";
  plain->set_result(1);
  with_callback->set_result(2);
  EXPECT_EQ(callbacks_ran, 1) << "a callback of a future whose loop is gone runs inline";
  EXPECT_EQ(alive, 0);
}

// The future completes on its last turn: the resume is queued, then the
// loop goes away before running it. The queued resume is dropped with the
// frame.
TEST(CoroutineLifetimeTest, LoopDestroyedWithAResumeQueued) {
  int alive = 0;
  Future<int> result;
  {
    ManualScheduler loop;
    Future<int> g;
    auto waits = [&]() -> Future<int> {
      Counted c(&alive);
      co_return co_await g;
    };
    result = waits();
    g.set_result(1);
    EXPECT_EQ(loop.pending(), 1u);
  }
  EXPECT_EQ(alive, 0);
  EXPECT_FALSE(result.done());
}

// An awaitable eddy knows nothing about: it parks the handle for the test
// to resume by hand.
struct ForeignAwait {
  std::coroutine_handle<>* parked;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { *parked = h; }
  void await_resume() const noexcept {}
};

// The loop keeps a frame from its first await until the frame ends, but
// destroys it only while it waits on one of eddy's awaiters: a frame parked
// elsewhere after an earlier await is left alone, as one that never awaited
// on the loop is, and can still finish.
TEST(CoroutineLifetimeTest, AFrameParkedOnAForeignAwaitableOutlivesTheLoop) {
  int alive = 0;
  bool finished = false;
  std::coroutine_handle<> parked;
  Future<int> g;
  Future<int> result;
  auto body = [&]() -> Future<int> {
    Counted c(&alive);
    int v = co_await g;  // the loop owns the frame while it waits here
    co_await ForeignAwait{&parked};
    finished = true;
    co_return v + 1;
  };
  {
    ManualScheduler loop;
    g = Future<int>();
    result = body();
    g.set_result(1);
    loop.run_pending();
    ASSERT_TRUE(parked);
    EXPECT_EQ(alive, 1);
  }
  EXPECT_EQ(alive, 1) << "a frame parked on a foreign awaitable was destroyed with the loop";
  parked.resume();
  EXPECT_TRUE(finished);
  EXPECT_EQ(alive, 0);
  ASSERT_TRUE(result.done());
  EXPECT_EQ(result.result(), 2);
}

// Such a frame, resumed after its loop is gone, may await eddy futures
// again: with no loop to come back to, it resumes where each completes, as
// a coroutine called with no loop current does, and finishes.
TEST(CoroutineLifetimeTest, AFrameThatOutlivedItsLoopCanStillAwaitFutures) {
  int alive = 0;
  std::coroutine_handle<> parked;
  Future<int> unbound;  // no loop current
  std::optional<Future<int>> of_the_dead_loop;
  Future<int> g;
  Future<int> result;
  auto body = [&]() -> Future<int> {
    Counted c(&alive);
    int v = co_await g;
    co_await ForeignAwait{&parked};
    v += co_await unbound;
    v += co_await *of_the_dead_loop;
    co_return v;
  };
  {
    ManualScheduler loop;
    g = Future<int>();
    of_the_dead_loop.emplace();
    result = body();
    g.set_result(1);
    loop.run_pending();
    ASSERT_TRUE(parked);
  }
  parked.resume();
  EXPECT_FALSE(result.done());
  unbound.set_result(10);
  EXPECT_FALSE(result.done()) << "resumed past an await whose future is pending";
  of_the_dead_loop->set_result(100);
  ASSERT_TRUE(result.done()) << "the frame never resumed: hung and leaked";
  EXPECT_EQ(result.result(), 111);
  EXPECT_EQ(alive, 0);
}

// --- Depth. ---

Future<int> chain(int n) {
  if (n == 0) co_return 0;
  int below = co_await chain(n - 1);
  co_return below + 1;
}

TEST(CoroutineDepthTest, LongChainOfCoroutinesDoesNotOverflowTheStack) {
  ManualScheduler loop;
  Future<int> f = chain(kDeep);
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), kDeep);
}

// A chain of n + 1 coroutines, each awaiting the next (kept in `levels`,
// outermost first); the last awaits `gate`. Records, in order, the levels
// whose co_await threw CancelledError (caught, not rethrown: the body's
// co_return after a cancellation is ignored).
Future<int> gated_chain(int n, Future<int> gate, std::vector<Future<int>>* levels,
                        std::vector<int>* cancelled_at) {
  try {
    if (n == 0) co_return co_await gate;
    Future<int> below = gated_chain(n - 1, gate, levels, cancelled_at);
    levels->push_back(below);
    co_return co_await below;
  } catch (const CancelledError&) {
    cancelled_at->push_back(n);
  }
  co_return -1;
}

// Starting and completing such a chain is safe at any depth; cancelling it
// must be too: the cancellation passes from each level to the next without
// nesting a call per level.
TEST(CoroutineDepthTest, CancellingALongChainOfSuspendedCoroutinesDoesNotOverflowTheStack) {
  ManualScheduler loop;
  Future<int> gate;
  std::vector<Future<int>> levels;
  std::vector<int> cancelled_at;
  levels.reserve(kDeep);
  cancelled_at.reserve(kDeep + 1);
  Future<int> top = gated_chain(kDeep, gate, &levels, &cancelled_at);
  loop.run_pending();  // the deferred starts: every frame is suspended now
  ASSERT_FALSE(top.done());
  ASSERT_EQ(levels.size(), static_cast<size_t>(kDeep));
  EXPECT_TRUE(top.cancel());
  EXPECT_TRUE(gate.cancelled()) << "the cancellation reached the innermost await";
  loop.run_pending();
  EXPECT_TRUE(top.cancelled());
  size_t not_cancelled = 0;
  for (Future<int>& level : levels) not_cancelled += level.cancelled() ? 0 : 1;
  EXPECT_EQ(not_cancelled, 0u);
  EXPECT_EQ(cancelled_at.size(), static_cast<size_t>(kDeep) + 1)
      << "CancelledError is thrown at every level's co_await";
}

// Within one cancel() every level is cancelled before it returns, and the
// awaits see CancelledError on the next turn, innermost first, as the
// completions were made.
TEST(CoroutineCancelTest, CancellingAChainCancelsEveryLevelAtOnceAndThrowsInnermostFirst) {
  ManualScheduler loop;
  Future<int> gate;
  std::vector<Future<int>> levels;
  std::vector<int> cancelled_at;
  Future<int> top = gated_chain(4, gate, &levels, &cancelled_at);
  ASSERT_EQ(levels.size(), 4u);
  EXPECT_TRUE(top.cancel());
  for (Future<int>& level : levels) EXPECT_TRUE(level.cancelled());
  EXPECT_TRUE(gate.cancelled());
  EXPECT_TRUE(cancelled_at.empty()) << "not inside cancel()";
  loop.run_pending();
  EXPECT_EQ(cancelled_at, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(CoroutineDepthTest, AwaitingManyReadyFuturesInALoopDoesNotGrowTheStack) {
  ManualScheduler loop;
  auto body = []() -> Future<long> {
    long sum = 0;
    for (int i = 0; i < kDeep; ++i) sum += co_await make_ready_future(1);
    co_return sum;
  };
  Future<long> f = body();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), kDeep);
}

}  // namespace
}  // namespace eddy
