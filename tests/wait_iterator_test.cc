// WaitIterator: completion order against a scripted schedule, indices and
// keys, already-done children, failures, misuse, callback-driven iteration,
// ConcurrentFuture children.
#include "eddy/futures/wait_iterator.h"

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

// Tornado's WaitIteratorTest.test_iterator: children finish on later loop
// turns as 2, then 0 (failing), then 1 and 3 together.
TEST(WaitIteratorTest, HandsOutResultsInTheScriptedCompletionOrder) {
  ManualScheduler loop;
  std::vector<Future<int>> children(4);
  loop.post([&] {
    children[2].set_result(24);
    loop.post([&] {
      children[0].set_exception(std::make_exception_ptr(std::domain_error("zero")));
      loop.post([&] {
        children[1].set_result(42);
        children[3].set_result(84);
      });
    });
  });
  WaitIterator it(children);
  struct Seen {
    size_t index;
    int value;  // -1 for the failure
  };
  std::vector<Seen> seen;
  while (!it.done()) {
    Future<int> next = it.next();
    while (!next.done()) ASSERT_GT(loop.run_pending(), 0) << "nothing left to run";
    try {
      seen.push_back({it.current_index(), next.result()});
    } catch (const std::domain_error&) {
      seen.push_back({it.current_index(), -1});
      EXPECT_EQ(it.current_future(), children[0]);
    }
  }
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].index, 2u);
  EXPECT_EQ(seen[0].value, 24);
  EXPECT_EQ(seen[1].index, 0u);
  EXPECT_EQ(seen[1].value, -1);
  EXPECT_EQ(seen[2].index, 1u);
  EXPECT_EQ(seen[2].value, 42);
  EXPECT_EQ(seen[3].index, 3u);
  EXPECT_EQ(seen[3].value, 84);
}

TEST(WaitIteratorTest, AlreadyDoneChildrenComeFirstInInputOrder) {
  ManualScheduler loop;
  Future<int> late;
  std::vector<Future<int>> children{make_ready_future(1), late, make_ready_future(3)};
  WaitIterator it(children);
  Future<int> a = it.next();
  ASSERT_TRUE(a.done()) << "a waiting result is handed out at once";
  EXPECT_EQ(a.result(), 1);
  EXPECT_EQ(it.current_index(), 0u);
  Future<int> b = it.next();
  EXPECT_EQ(b.result(), 3);
  EXPECT_EQ(it.current_index(), 2u);
  Future<int> c = it.next();
  EXPECT_FALSE(c.done());
  EXPECT_FALSE(it.done()) << "the last result is not handed out yet";
  late.set_result(2);
  loop.run_pending();
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.result(), 2);
  EXPECT_EQ(it.current_index(), 1u);
  EXPECT_TRUE(it.done());
}

TEST(WaitIteratorTest, MapChildrenAreNamedByCurrentKey) {
  ManualScheduler loop;
  std::map<std::string, Future<int>> children{{"f1", Future<int>()}, {"f2", Future<int>()}};
  WaitIterator it(children);
  static_assert(std::is_same_v<decltype(it), WaitIterator<int, std::string>>);
  children["f2"].set_result(42);
  loop.run_pending();
  Future<int> first = it.next();
  EXPECT_EQ(first.result(), 42);
  EXPECT_EQ(it.current_key(), "f2");
  EXPECT_EQ(it.current_index(), 1u) << "position in the map's iteration order";
  EXPECT_EQ(it.current_future(), children["f2"]);
  Future<int> second = it.next();
  children["f1"].set_result(24);
  loop.run_pending();
  EXPECT_EQ(second.result(), 24);
  EXPECT_EQ(it.current_key(), "f1");
  EXPECT_TRUE(it.done());
}

TEST(WaitIteratorTest, FlatHashMapChildren) {
  ManualScheduler loop;
  absl::flat_hash_map<int, Future<std::string>> children;
  for (int i = 0; i < 100; ++i) children[i] = Future<std::string>();
  WaitIterator it(children);
  for (int i = 99; i >= 0; --i) children[i].set_result(std::to_string(i));
  loop.run_pending();
  int expect = 99;
  while (!it.done()) {
    Future<std::string> next = it.next();
    ASSERT_TRUE(next.done());
    EXPECT_EQ(it.current_key(), expect);
    EXPECT_EQ(next.result(), std::to_string(expect));
    --expect;
  }
  EXPECT_EQ(expect, -1);
}

TEST(WaitIteratorTest, EmptyInputIsDoneAtOnce) {
  WaitIterator it(std::vector<Future<int>>{});
  EXPECT_TRUE(it.done());
  EXPECT_EQ(it.size(), 0u);
  EXPECT_THROW(it.next(), InvalidStateError);
  EXPECT_THROW(it.current_index(), InvalidStateError);
}

TEST(WaitIteratorTest, NextWhileThePreviousNextIsPendingThrows) {
  ManualScheduler loop;
  std::vector<Future<int>> children(2);
  WaitIterator it(children);
  Future<int> first = it.next();
  EXPECT_THROW(it.next(), InvalidStateError);
  children[0].set_result(0);
  loop.run_pending();
  EXPECT_TRUE(first.done());
  EXPECT_NO_THROW(it.next());
}

TEST(WaitIteratorTest, NextAfterEverythingWasHandedOutThrows) {
  WaitIterator it(std::vector<Future<int>>{make_ready_future(1)});
  it.next();
  EXPECT_TRUE(it.done());
  EXPECT_THROW(it.next(), InvalidStateError);
}

TEST(WaitIteratorTest, CurrentIndexBeforeTheFirstResultThrows) {
  ManualScheduler loop;
  std::vector<Future<int>> children(1);
  WaitIterator it(children);
  EXPECT_THROW(it.current_index(), InvalidStateError);
  EXPECT_THROW(it.current_future(), InvalidStateError);
  Future<int> next = it.next();
  EXPECT_THROW(it.current_index(), InvalidStateError) << "set when the result arrives";
  children[0].set_result(1);
  loop.run_pending();
  EXPECT_EQ(it.current_index(), 0u);
}

TEST(WaitIteratorTest, NextReturnsANewFutureNotAChild) {
  Future<int> child = make_ready_future(5);
  WaitIterator it(std::vector<Future<int>>{child});
  Future<int> next = it.next();
  EXPECT_FALSE(next == child);
  EXPECT_EQ(next.result(), 5);
  EXPECT_EQ(child.result(), 5) << "copyable values are copied";
}

TEST(WaitIteratorTest, CancellingANextFutureKeepsTheChildForTheFollowingNext) {
  ManualScheduler loop;
  std::vector<Future<int>> children(1);
  WaitIterator it(children);
  Future<int> given_up = it.next();
  EXPECT_TRUE(given_up.cancel());
  EXPECT_FALSE(children[0].done()) << "the child is not cancelled";
  children[0].set_result(7);
  loop.run_pending();
  EXPECT_FALSE(it.done());
  Future<int> again = it.next();
  ASSERT_TRUE(again.done());
  EXPECT_EQ(again.result(), 7);
  EXPECT_TRUE(it.done());
}

TEST(WaitIteratorTest, FailuresAndCancellationsAreHandedOutLikeValues) {
  ManualScheduler loop;
  std::vector<Future<int>> children(3);
  WaitIterator it(children);
  children[1].set_exception(boom("one"));
  children[2].cancel();
  children[0].set_result(0);
  loop.run_pending();
  Future<int> a = it.next();
  EXPECT_THROW(a.result(), std::runtime_error);
  Future<int> b = it.next();
  EXPECT_TRUE(b.cancelled());
  Future<int> c = it.next();
  EXPECT_EQ(c.result(), 0);
}

TEST(WaitIteratorTest, AChildExceptionHandedOutAndRetrievedIsNotLogged) {
  LogCapture logs;
  {
    Future<int> bad = make_exceptional_future<int>(boom("seen"));
    WaitIterator it(std::vector<Future<int>>{bad});
    EXPECT_THROW(it.next().result(), std::runtime_error);
  }
  EXPECT_EQ(logs.count("never retrieved"), 0u);
}

TEST(WaitIteratorTest, SameFutureListedTwiceIsHandedOutTwice) {
  ManualScheduler loop;
  Future<int> f;
  WaitIterator it(std::vector<Future<int>>{f, f});
  f.set_result(3);
  loop.run_pending();
  EXPECT_EQ(it.next().result(), 3);
  EXPECT_EQ(it.current_index(), 0u);
  EXPECT_EQ(it.next().result(), 3);
  EXPECT_EQ(it.current_index(), 1u);
  EXPECT_TRUE(it.done());
}

TEST(WaitIteratorTest, MoveOnlyValuesAreMovedOut) {
  WaitIterator it(std::vector<Future<std::unique_ptr<int>>>{
      make_ready_future(std::make_unique<int>(9))});
  Future<std::unique_ptr<int>> next = it.next();
  EXPECT_EQ(*next.result(), 9);
}

// The callback style: the iterator lives in a shared_ptr, each result's
// callback asks for the next one.
void pump(std::shared_ptr<WaitIterator<int>> it, std::vector<size_t>* order) {
  if (it->done()) return;
  it->next().add_done_callback([it, order](Future<int>& f) {
    EXPECT_EQ(f.result(), static_cast<int>(it->current_index()) * 10);
    order->push_back(it->current_index());
    pump(it, order);
  });
}

TEST(WaitIteratorTest, DrivenFromCallbacksOnTheLoop) {
  ManualScheduler loop;
  std::vector<Future<int>> children(3);
  std::vector<size_t> order;
  pump(std::make_shared<WaitIterator<int>>(children), &order);
  children[1].set_result(10);
  loop.run_pending();
  children[2].set_result(20);
  children[0].set_result(0);
  loop.run_pending();
  EXPECT_EQ(order, (std::vector<size_t>{1, 2, 0}));
}

TEST(WaitIteratorTest, ANextFutureStillCompletesAfterTheIteratorIsGone) {
  ManualScheduler loop;
  Future<int> child;
  Future<int> next;
  {
    WaitIterator it(std::vector<Future<int>>{child});
    next = it.next();
  }
  child.set_result(1);
  loop.run_pending();
  ASSERT_TRUE(next.done());
  EXPECT_EQ(next.result(), 1);
}

TEST(WaitIteratorTest, AMovedFromIteratorThrowsInvalidState) {
  WaitIterator it(std::vector<Future<int>>{make_ready_future(1)});
  WaitIterator<int> other = std::move(it);
  EXPECT_THROW(it.done(), InvalidStateError);  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(other.done());
}

// A moved-from child is an InvalidStateError naming WaitIterator (it used
// to read "Future:: : the handle is empty (moved from)", and a moved-from
// ConcurrentFuture child crashed the process).
TEST(WaitIteratorTest, AnEmptyChildIsAnErrorNamingWaitIterator) {
  ManualScheduler loop;
  Future<int> a, empty;
  Future<int> taken = std::move(empty);
  std::vector<Future<int>> list{a, empty};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { WaitIterator<int> it(list); }),
            "WaitIterator: a child Future is empty (moved from)");
  ConcurrentFuture<int> c, empty_cf;
  ConcurrentFuture<int> taken_cf = std::move(empty_cf);
  std::map<std::string, ConcurrentFuture<int>> remote{{"c", c}, {"empty", empty_cf}};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { WaitIterator<int, std::string> it(remote); }),
            "WaitIterator: a child ConcurrentFuture is empty (moved from)");
  a.set_result(1);
  std::thread([c]() mutable { c.set_result(2); }).join();
  loop.run_pending();
}

TEST(WaitIteratorTest, ConcurrentFutureChildrenCompletedByThreads) {
  ManualScheduler loop;
  std::vector<ConcurrentFuture<int>> children(4);
  WaitIterator it(children);
  // Complete them one at a time so the order is known: 3, 1, 0, 2.
  for (int i : {3, 1, 0, 2}) {
    std::thread([child = children[i], i]() mutable { child.set_result(i + 100); }).join();
    Future<int> next = it.next();
    while (!next.done()) ASSERT_GT(loop.run_pending(), 0);
    EXPECT_EQ(it.current_index(), static_cast<size_t>(i));
    EXPECT_EQ(next.result(), i + 100);
  }
  EXPECT_TRUE(it.done());
}

}  // namespace
}  // namespace eddy
