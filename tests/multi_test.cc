// multi(): order and shape of results, failure ordering and logging,
// cancellation, empty and duplicate inputs, already-done children, move-only
// values, ConcurrentFuture children completed by other threads.
#include "eddy/futures/multi.h"

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "tests/count_news.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/thrown.h"


namespace eddy {
namespace {

using testing::LogCapture;
using testing::ManualScheduler;
using testing::thrown_what;

constexpr char kMultiLog[] = "Multiple exceptions in yield list";

std::exception_ptr boom(const std::string& what = "boom") {
  return std::make_exception_ptr(std::runtime_error(what));
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  }
}

class QuietError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class LoudError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --- shape and order --------------------------------------------------------

TEST(MultiTest, VectorResultKeepsInputOrderWhenChildrenFinishInReverse) {
  ManualScheduler loop;
  std::vector<Future<int>> children(5);
  Future<std::vector<int>> all = multi(children);
  for (int i = 4; i >= 0; --i) {
    children[i].set_result(i * 10);
    loop.run_pending();
    if (i > 0) {
      EXPECT_FALSE(all.done()) << "done before child 0 finished";
    }
  }
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{0, 10, 20, 30, 40}));
}

TEST(MultiTest, ChildrenCompletedFromLoopCallbacksAreCollected) {
  ManualScheduler loop;
  std::vector<Future<std::string>> children(3);
  Future<std::vector<std::string>> all = multi(children);
  // Completions arrive on later turns, in a scrambled order, as they would
  // from timers or I/O.
  loop.post([&] { children[1].set_result("b"); });
  loop.post([&] {
    loop.post([&] { children[0].set_result("a"); });
    children[2].set_result("c");
  });
  EXPECT_FALSE(all.done());
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(MultiTest, VoidChildrenGiveAFutureVoid) {
  ManualScheduler loop;
  std::vector<Future<void>> children(3);
  Future<void> all = multi(children);
  children[2].set_result();
  children[0].set_result();
  loop.run_pending();
  EXPECT_FALSE(all.done());
  children[1].set_result();
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_NO_THROW(all.result());
}

TEST(MultiTest, MapResultHasTheSameTenThousandKeys) {
  ManualScheduler loop;
  constexpr int kKeys = 10000;
  std::map<std::string, Future<int>> children;
  for (int i = 0; i < kKeys; ++i) children.emplace("key" + std::to_string(i), Future<int>());
  Future<std::map<std::string, int>> all = multi(children);
  // Complete in an order unrelated to the key order.
  for (int i = kKeys - 1; i >= 0; i -= 2) children.at("key" + std::to_string(i)).set_result(i);
  for (int i = 0; i < kKeys; i += 2) children.at("key" + std::to_string(i)).set_result(i);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  const std::map<std::string, int>& out = all.result();
  ASSERT_EQ(out.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) EXPECT_EQ(out.at("key" + std::to_string(i)), i);
}

TEST(MultiTest, FlatHashMapResultHasTheSameTenThousandKeys) {
  ManualScheduler loop;
  constexpr int kKeys = 10000;
  absl::flat_hash_map<int, Future<std::string>> children;
  for (int i = 0; i < kKeys; ++i) children[i] = Future<std::string>();
  Future<absl::flat_hash_map<int, std::string>> all = multi(children);
  for (int i = 0; i < kKeys; ++i) children[(i * 7919) % kKeys].set_result(std::to_string(i));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  const auto& out = all.result();
  ASSERT_EQ(out.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) EXPECT_EQ(out.at((i * 7919) % kKeys), std::to_string(i));
}

TEST(MultiTest, UnorderedMapResultHasTheSameKeysAndAFailureIsRaised) {
  ManualScheduler loop;
  std::unordered_map<std::string, Future<int>> children;
  for (int i = 0; i < 100; ++i) children["k" + std::to_string(i)] = Future<int>();
  Future<std::unordered_map<std::string, int>> all = multi(children);
  for (int i = 99; i >= 0; --i) children["k" + std::to_string(i)].set_result(i);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  const std::unordered_map<std::string, int>& out = all.result();
  ASSERT_EQ(out.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out.at("k" + std::to_string(i)), i);

  std::unordered_map<int, ConcurrentFuture<int>> remote{{1, ConcurrentFuture<int>()},
                                                        {2, ConcurrentFuture<int>()}};
  Future<std::unordered_map<int, int>> bridged = multi(remote);
  remote[1].set_result(10);
  remote[2].set_exception(std::make_exception_ptr(std::runtime_error("down")));
  loop.run_pending();
  ASSERT_TRUE(bridged.done());
  EXPECT_THROW(bridged.result(), std::runtime_error);
  Future<void> voids = multi(std::unordered_map<int, Future<void>>());
  EXPECT_TRUE(voids.done());
}

TEST(MultiTest, MapOfVoidChildrenGivesAFutureVoid) {
  ManualScheduler loop;
  std::map<int, Future<void>> children{{1, Future<void>()}, {2, Future<void>()}};
  Future<void> all = multi(children);
  children[1].set_result();
  children[2].set_result();
  loop.run_pending();
  EXPECT_TRUE(all.done());
}

TEST(MultiTest, TupleOfMixedTypesIncludingVoidKeepsArgumentPositions) {
  ManualScheduler loop;
  Future<int> number;
  Future<void> side_effect;
  Future<std::string> text;
  Future<std::tuple<int, std::monostate, std::string>> all = multi(number, side_effect, text);
  text.set_result("hi");
  side_effect.set_result();
  loop.run_pending();
  EXPECT_FALSE(all.done());
  number.set_result(7);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  auto& [n, nothing, s] = all.result();
  EXPECT_EQ(n, 7);
  EXPECT_EQ(nothing, std::monostate{});
  EXPECT_EQ(s, "hi");
}

TEST(MultiTest, TupleFailsWithTheFirstFailingArgumentAndHonoursQuiet) {
  ManualScheduler loop;
  LogCapture logs;
  Future<int> a;
  Future<void> b;
  Future<double> c;
  auto all = multi(std::make_tuple(a, b, c), QuietExceptions::of<QuietError>());
  c.set_exception(std::make_exception_ptr(QuietError("third")));
  b.set_exception(std::make_exception_ptr(LoudError("second")));
  a.set_result(1);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_THROW(all.result(), LoudError);
  EXPECT_EQ(logs.count(kMultiLog), 0u) << "the extra failure is quiet";
}

TEST(MultiTest, EmptyTupleResolvesAtOnce) {
  auto all = multi(std::tuple<>());
  EXPECT_TRUE(all.done());
}

// --- empty, duplicate and already-done inputs -------------------------------

TEST(MultiTest, EmptyInputsResolveAtOnce) {
  ManualScheduler loop;
  Future<std::vector<int>> list = multi(std::vector<Future<int>>());
  Future<void> voids = multi(std::vector<Future<void>>());
  Future<std::map<std::string, int>> map = multi(std::map<std::string, Future<int>>());
  Future<absl::flat_hash_map<int, int>> hash = multi(absl::flat_hash_map<int, Future<int>>());
  ASSERT_TRUE(list.done());
  ASSERT_TRUE(voids.done());
  ASSERT_TRUE(map.done());
  ASSERT_TRUE(hash.done());
  EXPECT_TRUE(list.result().empty());
  EXPECT_TRUE(map.result().empty());
  EXPECT_TRUE(hash.result().empty());
}

TEST(MultiTest, SameFutureListedTwiceAppearsTwice) {
  ManualScheduler loop;
  Future<int> one;
  Future<int> two;
  Future<std::vector<int>> all = multi(std::vector<Future<int>>{one, two, one, two});
  two.set_result(2);
  loop.run_pending();
  EXPECT_FALSE(all.done());
  one.set_result(1);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{1, 2, 1, 2}));
}

TEST(MultiTest, AlreadyDoneChildrenResolveTheResultBeforeMultiReturns) {
  ManualScheduler loop;
  std::vector<Future<int>> children{make_ready_future(1), make_ready_future(2)};
  Future<std::vector<int>> all = multi(children);
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{1, 2}));
}

TEST(MultiTest, MixOfDoneAndPendingChildrenWaitsForThePendingOnes) {
  ManualScheduler loop;
  Future<int> pending;
  Future<std::vector<int>> all =
      multi(std::vector<Future<int>>{make_ready_future(1), pending, make_ready_future(3)});
  loop.run_pending();
  EXPECT_FALSE(all.done());
  pending.set_result(2);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{1, 2, 3}));
}

// --- failures ----------------------------------------------------------------

TEST(MultiTest, WaitsForEveryChildEvenAfterAFailure) {
  ManualScheduler loop;
  std::vector<Future<int>> children(2);
  Future<std::vector<int>> all = multi(children);
  children[0].set_exception(boom());
  loop.run_pending();
  EXPECT_FALSE(all.done()) << "multi must wait for every child, as Tornado's";
  children[1].set_result(1);
  loop.run_pending();
  EXPECT_TRUE(all.done());
  EXPECT_THROW(all.result(), std::runtime_error);
}

TEST(MultiTest, FailsWithTheFirstFailingChildInInputOrderNotInTime) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(3);
  Future<std::vector<int>> all = multi(children);
  children[2].set_exception(boom("third, failed first"));
  loop.run_pending();
  children[0].set_exception(boom("first, failed last"));
  children[1].set_result(1);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "first, failed last");
  ASSERT_EQ(logs.count(kMultiLog), 1u);
  EXPECT_EQ(logs.count("third, failed first"), 1u) << "the other failure is logged";
}

TEST(MultiTest, MapFailureOrderIsTheMapsIterationOrder) {
  ManualScheduler loop;
  LogCapture logs;
  std::map<std::string, Future<int>> children{{"a", Future<int>()}, {"b", Future<int>()}};
  auto all = multi(children);
  children["b"].set_exception(boom("b"));
  children["a"].set_exception(boom("a"));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "a");
  EXPECT_EQ(logs.count(kMultiLog), 1u);
}

TEST(MultiTest, SingleFailureIsRaisedAndNotLogged) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children{make_ready_future(1),
                                    make_exceptional_future<int>(boom("only"))};
  auto all = multi(children);
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "only");
  EXPECT_EQ(logs.size(), 0u);
}

TEST(MultiTest, QuietExceptionsSuppressTheLogForMatchingAndDerivedTypes) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children{
      make_exceptional_future<int>(boom("raised")),
      make_exceptional_future<int>(std::make_exception_ptr(QuietError("quiet"))),
      make_exceptional_future<int>(std::make_exception_ptr(LoudError("loud")))};
  // QuietError and LoudError both derive from std::runtime_error; only
  // QuietError is named.
  auto all = multi(children, QuietExceptions::of<QuietError>());
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "raised");
  EXPECT_EQ(logs.count(kMultiLog), 1u);
  EXPECT_EQ(logs.count("loud"), 1u);
  EXPECT_EQ(logs.count("quiet"), 0u);

  LogCapture more;
  auto again = multi(children, QuietExceptions::of<std::runtime_error>());
  EXPECT_EQ(message_of(again.exception()), "raised") << "quiet does not change what is raised";
  EXPECT_EQ(more.count(kMultiLog), 0u);
}

TEST(MultiTest, AFailingChildListedTwiceIsNotLoggedAgainstItself) {
  ManualScheduler loop;
  LogCapture logs;
  Future<int> bad = make_exceptional_future<int>(boom("twice"));
  auto all = multi(std::vector<Future<int>>{bad, make_ready_future(1), bad});
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "twice");
  EXPECT_EQ(logs.count(kMultiLog), 0u);
}

TEST(MultiTest, ChildExceptionsCountAsRetrieved) {
  LogCapture logs;  // outlives every future below
  {
    ManualScheduler loop;
    std::vector<Future<int>> children(2);
    auto all = multi(children, QuietExceptions::of<std::runtime_error>());
    children[0].set_exception(boom("one"));
    children[1].set_exception(boom("two"));
    loop.run_pending();
    EXPECT_THROW(all.result(), std::runtime_error);
  }
  EXPECT_EQ(logs.count("never retrieved"), 0u);
}

TEST(MultiTest, AnUnretrievedResultExceptionIsStillLogged) {
  LogCapture logs;
  {
    ManualScheduler loop;
    Future<int> child;
    auto all = multi(std::vector<Future<int>>{child});
    child.set_exception(boom("lost"));
    loop.run_pending();
    EXPECT_TRUE(all.done());
  }
  EXPECT_EQ(logs.count("never retrieved"), 1u);
  EXPECT_EQ(logs.count("lost"), 1u);
}

TEST(MultiTest, ACancelledChildFailsTheResultWithCancelledError) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(3);
  auto all = multi(children);
  children[1].cancel();
  children[2].cancel();
  children[0].set_result(0);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_FALSE(all.cancelled()) << "the result fails; it is not itself cancelled";
  EXPECT_THROW(all.result(), CancelledError);
  EXPECT_EQ(logs.count(kMultiLog), 0u) << "extra cancellations are not logged";
}

TEST(MultiTest, CancellingTheResultDoesNotCancelTheChildren) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(2);
  auto all = multi(children);
  EXPECT_TRUE(all.cancel());
  EXPECT_FALSE(children[0].done());
  EXPECT_FALSE(children[1].done());
  children[0].set_result(1);
  children[1].set_result(2);
  loop.run_pending();
  EXPECT_TRUE(all.cancelled());
  EXPECT_EQ(children[1].result(), 2);
  EXPECT_EQ(logs.size(), 0u);
}

TEST(MultiTest, FailuresAfterTheResultWasCancelledAreAllLoggedUnlessQuiet) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(3);
  auto all = multi(children, QuietExceptions::of<QuietError>());
  all.cancel();
  children[0].set_exception(boom("first"));
  children[1].set_exception(std::make_exception_ptr(QuietError("hushed")));
  children[2].set_exception(boom("third"));
  loop.run_pending();
  EXPECT_EQ(logs.count(kMultiLog), 2u) << "nobody can see the first one any more";
  EXPECT_EQ(logs.count("hushed"), 0u);
}

// --- values -------------------------------------------------------------------

TEST(MultiTest, CopyableValuesAreCopiedAndTheChildrenKeepThem) {
  ManualScheduler loop;
  Future<std::string> child = make_ready_future(std::string("shared"));
  auto all = multi(std::vector<Future<std::string>>{child});
  EXPECT_EQ(all.result(), std::vector<std::string>{"shared"});
  EXPECT_EQ(child.result(), "shared");
}

TEST(MultiTest, MoveOnlyValuesAreMovedOutOfTheChildren) {
  ManualScheduler loop;
  std::vector<Future<std::unique_ptr<int>>> children(2);
  auto all = multi(children);
  children[0].set_result(std::make_unique<int>(1));
  children[1].set_result(std::make_unique<int>(2));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  std::vector<std::unique_ptr<int>>& values = all.result();
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(*values[0], 1);
  EXPECT_EQ(*values[1], 2);
  EXPECT_EQ(children[0].result(), nullptr) << "moved out";
}

// A child's value that is a container of move-only values cannot be copied
// either (std::is_copy_constructible_v says it can): it is moved out, as a
// move-only value is, in both the list and the map form.
TEST(MultiTest, ContainersOfMoveOnlyValuesAreMovedOutOfTheChildren) {
  ManualScheduler loop;
  using Rows = std::vector<std::unique_ptr<int>>;
  auto rows_of = [](int v) {
    Rows r;
    r.push_back(std::make_unique<int>(v));
    return r;
  };
  std::vector<Future<Rows>> list(2);
  std::map<std::string, Future<Rows>> table;
  table["a"] = Future<Rows>();
  table["b"] = make_ready_future(rows_of(20));
  Future<std::vector<Rows>> all = multi(list);
  Future<std::map<std::string, Rows>> keyed = multi(table);
  list[1].set_result(rows_of(2));
  list[0].set_result(rows_of(1));
  table["a"].set_result(rows_of(10));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  ASSERT_TRUE(keyed.done());
  std::vector<Rows>& values = all.result();
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(*values[0].at(0), 1);
  EXPECT_EQ(*values[1].at(0), 2);
  EXPECT_TRUE(list[0].result().empty()) << "moved out";
  std::map<std::string, Rows>& by_key = keyed.result();
  EXPECT_EQ(*by_key.at("a").at(0), 10);
  EXPECT_EQ(*by_key.at("b").at(0), 20);
}

// A value type that counts its live copies, to show multi leaks none.
struct Counted {
  static inline int live = 0;
  int v;
  explicit Counted(int x) : v(x) { ++live; }
  Counted(const Counted& o) : v(o.v) { ++live; }
  Counted(Counted&& o) noexcept : v(o.v) { ++live; }
  ~Counted() { --live; }
};

TEST(MultiTest, ValuesDieWithTheirLastHolder) {
  Counted::live = 0;
  {
    ManualScheduler loop;
    std::vector<Future<Counted>> children(3);
    auto all = multi(children);
    for (int i = 0; i < 3; ++i) children[i].set_result(Counted(i));
    loop.run_pending();
    EXPECT_EQ(all.result().size(), 3u);
    EXPECT_EQ(Counted::live, 6) << "three in the children, three copies in the result";
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST(MultiTest, AbandonedPendingChildrenFreeEverything) {
  // Nothing to assert here beyond "no leak": --config=asan checks it. The
  // block must not keep pending children (and itself) alive.
  Counted::live = 0;
  ManualScheduler loop;
  {
    std::vector<Future<Counted>> children(4);
    children[0].set_result(Counted(0));
    auto all = multi(children);
    auto tuple = multi(children[1], children[2]);
  }
  loop.run_pending();
  EXPECT_EQ(Counted::live, 0);
}

// --- loops and threads -------------------------------------------------------

TEST(MultiTest, WithALoopTheResultsCallbacksRunOnALaterTurn) {
  ManualScheduler loop;
  Future<int> child;
  auto all = multi(std::vector<Future<int>>{child});
  bool ran = false;
  all.add_done_callback([&] { ran = true; });
  child.set_result(1);
  EXPECT_FALSE(ran) << "never inside set_result";
  loop.run_pending();
  EXPECT_TRUE(ran);
}

// multi counts its children inside their completions (no loop callback
// per child), so its result is done as soon as the last child is; user
// callbacks, on the children and on the result, still wait for a turn and
// keep their order.
TEST(MultiTest, TheResultCompletesWithTheLastChildButCallbacksWaitForATurn) {
  ManualScheduler loop;
  std::vector<std::string> steps;
  std::vector<Future<int>> children(2);
  children[0].add_done_callback([&] { steps.push_back("child 0, added before multi"); });
  auto all = multi(children);
  children[1].add_done_callback([&] { steps.push_back("child 1, added after multi"); });
  all.add_done_callback([&] { steps.push_back("result"); });
  children[0].set_result(1);
  EXPECT_TRUE(steps.empty()) << "user code ran inside set_result";
  loop.run_pending();
  EXPECT_EQ(steps, std::vector<std::string>{"child 0, added before multi"});
  EXPECT_FALSE(all.done());
  children[1].set_result(2);
  EXPECT_TRUE(all.done()) << "multi counts the last child inside its completion";
  EXPECT_EQ(steps.size(), 1u) << "user code ran inside set_result";
  EXPECT_EQ(loop.run_pending(), 2) << "a turn for child 1's callbacks, one for the result's";
  EXPECT_EQ(steps, (std::vector<std::string>{"child 0, added before multi",
                                             "child 1, added after multi", "result"}));
  EXPECT_EQ(all.result(), (std::vector<int>{1, 2}));
}

// A value whose copy throws: multi fails with that exception (it neither
// hangs nor loses it), unless a child's own failure comes first in input
// order.
struct CopyThrows {
  int v = 0;
  bool throw_on_copy = false;
  CopyThrows() = default;
  CopyThrows(int x, bool t) : v(x), throw_on_copy(t) {}
  CopyThrows(const CopyThrows& o) : v(o.v), throw_on_copy(o.throw_on_copy) {
    if (throw_on_copy) throw std::runtime_error("copy failed");
  }
  CopyThrows(CopyThrows&& o) noexcept : v(o.v), throw_on_copy(o.throw_on_copy) {}
  CopyThrows& operator=(const CopyThrows&) = default;
};

TEST(MultiTest, AValueWhoseCopyThrowsFailsTheResult) {
  ManualScheduler loop;
  std::vector<Future<CopyThrows>> children(3);
  auto all = multi(children);
  children[0].set_result(CopyThrows(0, false));
  children[1].set_result(CopyThrows(1, true));
  children[2].set_result(CopyThrows(2, false));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "copy failed");

  std::vector<Future<CopyThrows>> more(2);
  auto second = multi(more);
  more[0].set_result(CopyThrows(0, true));
  more[1].set_exception(boom("child failed"));
  loop.run_pending();
  ASSERT_TRUE(second.done());
  EXPECT_EQ(message_of(second.exception()), "child failed") << "a child's failure comes first";
}

// With a move-only T, a failed multi leaves the values in the children.
TEST(MultiTest, AFailedMultiLeavesMoveOnlyValuesInTheChildren) {
  ManualScheduler loop;
  std::vector<Future<std::unique_ptr<int>>> children(3);
  auto all = multi(children);
  children[0].set_result(std::make_unique<int>(1));
  children[1].set_exception(boom());
  children[2].set_result(std::make_unique<int>(3));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "boom");
  ASSERT_NE(children[0].result(), nullptr);
  EXPECT_EQ(*children[0].result(), 1);
  ASSERT_NE(children[2].result(), nullptr);
  EXPECT_EQ(*children[2].result(), 3);
}

// Failures reported in input order whatever order they came in, with the
// values of the others copied before: the first in input order is raised,
// the rest logged.
TEST(MultiTest, FailuresArrivingInReverseAreReportedInInputOrder) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(4);
  auto all = multi(children);
  children[3].set_exception(boom("third"));
  children[2].set_result(2);
  children[1].set_exception(boom("second"));
  children[0].set_exception(boom("first"));
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(message_of(all.exception()), "first");
  std::string text;
  for (const std::string& line : logs.lines()) text += line + "\n";
  size_t second = text.find("second");
  size_t third = text.find("third");
  ASSERT_NE(second, std::string::npos);
  ASSERT_NE(third, std::string::npos);
  EXPECT_LT(second, third);
  EXPECT_EQ(text.find("first"), std::string::npos) << "the raised failure is not logged";
}

TEST(MultiTest, WithoutALoopTheResultCompletesInsideTheLastCompletion) {
  ASSERT_EQ(Scheduler::current(), nullptr);
  std::vector<Future<int>> children(2);
  auto all = multi(children);
  children[0].set_result(1);
  EXPECT_FALSE(all.done());
  children[1].set_result(2);
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{1, 2}));
}

TEST(MultiTest, ConcurrentFutureChildrenCompletedByThreadsArriveOnTheLoop) {
  ManualScheduler loop;
  constexpr int kChildren = 16;
  std::vector<ConcurrentFuture<int>> children(kChildren);
  Future<std::vector<int>> all = multi(children);
  std::vector<std::thread> threads;
  for (int i = 0; i < kChildren; ++i) {
    threads.emplace_back([child = children[i], i]() mutable { child.set_result(i * i); });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(all.done()) << "results reach the loop only when it runs";
  loop.run_pending();
  ASSERT_TRUE(all.done());
  for (int i = 0; i < kChildren; ++i) EXPECT_EQ(all.result()[i], i * i);
}

TEST(MultiTest, ConcurrentFutureMapAndMixedTupleChildren) {
  ManualScheduler loop;
  std::map<std::string, ConcurrentFuture<int>> map{{"x", {}}, {"y", {}}};
  ConcurrentFuture<std::string> remote;
  Future<int> local;
  auto from_map = multi(map);
  auto mixed = multi(remote, local);
  std::thread worker([&map, remote]() mutable {
    map.at("x").set_result(1);
    map.at("y").set_exception(boom("y failed"));
    remote.set_result("far");
  });
  worker.join();
  local.set_result(2);
  loop.run_pending();
  ASSERT_TRUE(from_map.done());
  EXPECT_EQ(message_of(from_map.exception()), "y failed");
  ASSERT_TRUE(mixed.done());
  EXPECT_EQ(std::get<0>(mixed.result()), "far");
  EXPECT_EQ(std::get<1>(mixed.result()), 2);
}

TEST(MultiTest, AlreadyDoneConcurrentFutureChildrenResolveTheResultBeforeMultiReturns) {
  ManualScheduler loop;
  std::vector<ConcurrentFuture<int>> children(2);
  children[0].set_result(10);
  children[1].set_result(11);
  auto all = multi(children);
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.result(), (std::vector<int>{10, 11}));
}

TEST(MultiTest, ConcurrentFutureChildrenNeedACurrentLoop) {
  ASSERT_EQ(Scheduler::current(), nullptr);
  std::vector<ConcurrentFuture<int>> children(1);
  EXPECT_THROW((void)multi(children), InvalidStateError);
  children[0].set_result(1);
}

// A moved-from child is an InvalidStateError naming multi, in every form:
// the message used to read "Future:: : the handle is empty (moved from)",
// and a moved-from ConcurrentFuture child crashed the process.
TEST(MultiTest, AnEmptyChildIsAnErrorNamingMulti) {
  ManualScheduler loop;
  Future<int> a, empty;
  Future<int> taken = std::move(empty);
  const std::string kEmptyFuture = "multi: a child Future is empty (moved from)";
  std::vector<Future<int>> list{a, empty};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)multi(list); }), kEmptyFuture);
  std::map<std::string, Future<int>> map{{"a", a}, {"b", empty}};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)multi(map); }), kEmptyFuture);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)multi(a, empty); }), kEmptyFuture);

  ConcurrentFuture<int> c, empty_cf;
  ConcurrentFuture<int> taken_cf = std::move(empty_cf);
  const std::string kEmptyConcurrent = "multi: a child ConcurrentFuture is empty (moved from)";
  std::vector<ConcurrentFuture<int>> remote{c, empty_cf};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)multi(remote); }), kEmptyConcurrent);
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)multi(a, empty_cf); }), kEmptyConcurrent);
  // The children watched before the empty one complete harmlessly.
  a.set_result(1);
  std::thread([c]() mutable { c.set_result(2); }).join();
  loop.run_pending();
}

// A child of another thread's loop is reported naming multi too (it read
// "Future:: : called from a thread that does not own the future").
TEST(MultiTest, AChildOfAnotherThreadsLoopIsAnErrorNamingMulti) {
  if (!EDDY_THREAD_CHECKS) GTEST_SKIP() << "thread checks are off in this build";
  ManualScheduler loop;
  Future<int> child;
  std::string what;
  std::thread([&] {
    std::vector<Future<int>> children{child};
    what = thrown_what<InvalidStateError>([&] { (void)multi(children); });
  }).join();
  EXPECT_EQ(what.rfind("multi: called from a thread that does not own the Future", 0), 0u) << what;
  child.set_result(1);
}

TEST(MultiTest, ConcurrentStressManyThreadsManyChildren) {
  // Bounded: 4 threads x 250 children, racing each other and the loop.
  ManualScheduler loop;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::vector<ConcurrentFuture<int>> children(kThreads * kPerThread);
  auto all = multi(children);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&children, t] {
      for (int i = t; i < kThreads * kPerThread; i += kThreads) children[i].set_result(i);
    });
  }
  // Drain while the threads are still completing, then once more after.
  while (!all.done()) {
    loop.run_pending();
    std::this_thread::yield();
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads * kPerThread; ++i) EXPECT_EQ(all.result()[i], i);
}

TEST(MultiTest, WideFanOutOfPendingFutures) {
  // Correctness at a size where a quadratic step would show; timing is the
  // W8 benchmark's job.
  ManualScheduler loop;
  constexpr int kChildren = 100000;
  std::vector<Future<int>> children(kChildren);
  auto all = multi(children);
  for (int i = 0; i < kChildren; ++i) children[i].set_result(i);
  loop.run_pending();
  ASSERT_TRUE(all.done());
  ASSERT_EQ(all.result().size(), static_cast<size_t>(kChildren));
  EXPECT_EQ(all.result().back(), kChildren - 1);
}

TEST(MultiTest, ManyFailingChildrenCostAFewAllocationsNotOnePerFailure) {
  // Every child cancelled (a wide fan-out whose backend is down, or a
  // cancelled fan_out()): noting the failures must stay linear. Counted in
  // allocations, which a list grown one slot at a time makes one per
  // failure (and quadratic copying with them).
  ManualScheduler loop;
  constexpr int kChildren = 20000;
  std::vector<Future<int>> children(kChildren);
  auto all = multi(children);
  const int64_t before = testing::thread_news();
  for (auto& c : children) c.cancel();
  const int64_t news = testing::thread_news() - before;
  EXPECT_LT(news, 200) << "allocations while " << kChildren << " children failed";
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_THROW(all.result(), CancelledError);
}

TEST(MultiTest, ManyFailingVoidChildrenCostAFewAllocationsToo) {
  // The same with failures: one exception shared by every child, quiet, so
  // that neither the test nor the log allocates per child.
  ManualScheduler loop;
  LogCapture log;
  constexpr int kChildren = 20000;
  std::vector<Future<void>> children(kChildren);
  auto all = multi(children, QuietExceptions::of<std::runtime_error>());
  const std::exception_ptr e = boom("down");
  const int64_t before = testing::thread_news();
  for (auto& c : children) c.set_exception(e);
  const int64_t news = testing::thread_news() - before;
  EXPECT_LT(news, 200) << "allocations while " << kChildren << " children failed";
  loop.run_pending();
  ASSERT_TRUE(all.done());
  EXPECT_EQ(all.exception(), e);
  EXPECT_EQ(log.count(kMultiLog), 0u);
}

}  // namespace
}  // namespace eddy
