// first_completed(): the winner's index or key, already-done children,
// failures count as finishing, the others are left alone, misuse.
#include "eddy/futures/first_completed.h"

#include <map>
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

TEST(FirstCompletedTest, GivesTheIndexOfTheFirstChildToFinish) {
  ManualScheduler loop;
  std::vector<Future<int>> children(3);
  Future<size_t> first = first_completed(children);
  loop.run_pending();
  EXPECT_FALSE(first.done());
  children[2].set_result(2);
  children[0].set_result(0);  // same turn, but later
  loop.run_pending();
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result(), 2u);
}

TEST(FirstCompletedTest, TheOthersAreLeftRunning) {
  ManualScheduler loop;
  std::vector<Future<int>> children(3);
  Future<size_t> first = first_completed(children);
  children[1].set_result(1);
  loop.run_pending();
  EXPECT_EQ(first.result(), 1u);
  EXPECT_FALSE(children[0].done());
  EXPECT_FALSE(children[2].done());
  children[0].set_result(0);
  children[2].set_result(2);
  loop.run_pending();
  EXPECT_EQ(first.result(), 1u) << "later finishers change nothing";
}

TEST(FirstCompletedTest, AnAlreadyDoneChildWinsAtOnceFirstInInputOrder) {
  ManualScheduler loop;
  std::vector<Future<int>> children{Future<int>(), make_ready_future(1), make_ready_future(2)};
  Future<size_t> first = first_completed(children);
  ASSERT_TRUE(first.done()) << "done when first_completed returns";
  EXPECT_EQ(first.result(), 1u);
}

TEST(FirstCompletedTest, AFailureOrCancellationCountsAsFinishing) {
  ManualScheduler loop;
  LogCapture logs;
  std::vector<Future<int>> children(2);
  Future<size_t> first = first_completed(children);
  children[1].set_exception(std::make_exception_ptr(std::runtime_error("fast failure")));
  loop.run_pending();
  EXPECT_EQ(first.result(), 1u);
  // The winner keeps its exception, unretrieved: that stays the caller's job.
  EXPECT_THROW(children[1].result(), std::runtime_error);

  std::vector<Future<int>> more(2);
  Future<size_t> again = first_completed(more);
  more[0].cancel();
  loop.run_pending();
  EXPECT_EQ(again.result(), 0u);
  EXPECT_EQ(logs.size(), 0u);
}

TEST(FirstCompletedTest, MapGivesTheKeyAndTheIterationIndex) {
  ManualScheduler loop;
  std::map<std::string, Future<int>> racers{
      {"ant", Future<int>()}, {"bee", Future<int>()}, {"cat", Future<int>()}};
  Future<FirstCompleted<std::string>> first = first_completed(racers);
  racers["bee"].set_result(2);
  loop.run_pending();
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result().key, "bee");
  EXPECT_EQ(first.result().index, 1u);
}

TEST(FirstCompletedTest, FlatHashMapGivesTheKey) {
  ManualScheduler loop;
  absl::flat_hash_map<int, Future<void>> racers;
  for (int i = 0; i < 50; ++i) racers[i] = Future<void>();
  auto first = first_completed(racers);
  racers[37].set_result();
  loop.run_pending();
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result().key, 37);
}

TEST(FirstCompletedTest, EmptyInputThrowsInvalidArgument) {
  EXPECT_THROW((void)first_completed(std::vector<Future<int>>()), std::invalid_argument);
  EXPECT_THROW((void)first_completed(std::map<int, Future<int>>()), std::invalid_argument);
}

// A moved-from child is an InvalidStateError naming first_completed (it
// used to read "Future:: : the handle is empty (moved from)", and a
// moved-from ConcurrentFuture child crashed the process).
TEST(FirstCompletedTest, AnEmptyChildIsAnErrorNamingFirstCompleted) {
  ManualScheduler loop;
  Future<int> a, empty;
  Future<int> taken = std::move(empty);
  std::vector<Future<int>> list{a, empty};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)first_completed(list); }),
            "first_completed: a child Future is empty (moved from)");
  EXPECT_THROW((void)first_completed(a, empty), InvalidStateError);
  ConcurrentFuture<int> c, empty_cf;
  ConcurrentFuture<int> taken_cf = std::move(empty_cf);
  std::vector<ConcurrentFuture<int>> remote{c, empty_cf};
  EXPECT_EQ(thrown_what<InvalidStateError>([&] { (void)first_completed(remote); }),
            "first_completed: a child ConcurrentFuture is empty (moved from)");
  a.set_result(1);
  std::thread([c]() mutable { c.set_result(2); }).join();
  loop.run_pending();
}

TEST(FirstCompletedTest, ArgumentsOfMixedTypes) {
  ManualScheduler loop;
  Future<int> number;
  Future<void> signal;
  Future<std::string> text;
  Future<size_t> first = first_completed(number, signal, text);
  signal.set_result();
  loop.run_pending();
  EXPECT_EQ(first.result(), 1u);
}

TEST(FirstCompletedTest, CancellingTheResultCancelsNoChild) {
  ManualScheduler loop;
  std::vector<Future<int>> children(2);
  Future<size_t> first = first_completed(children);
  EXPECT_TRUE(first.cancel());
  EXPECT_FALSE(children[0].done());
  children[0].set_result(0);
  loop.run_pending();
  EXPECT_TRUE(first.cancelled());
}

TEST(FirstCompletedTest, WithoutALoopTheResultCompletesInsideTheWinningCompletion) {
  ASSERT_EQ(Scheduler::current(), nullptr);
  std::vector<Future<int>> children(2);
  Future<size_t> first = first_completed(children);
  children[1].set_result(1);
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result(), 1u);
}

TEST(FirstCompletedTest, ConcurrentFutureChildrenCompletedByAThread) {
  ManualScheduler loop;
  std::vector<ConcurrentFuture<int>> children(3);
  Future<size_t> first = first_completed(children);
  std::thread([child = children[2]]() mutable { child.set_result(2); }).join();
  while (!first.done()) ASSERT_GT(loop.run_pending(), 0);
  EXPECT_EQ(first.result(), 2u);
  children[0].set_result(0);
  children[1].set_result(1);
  loop.run_pending();
}

TEST(FirstCompletedTest, AnAlreadyDoneConcurrentFutureWinsAtOnce) {
  // A ConcurrentFuture that is done is as done as a Future that is: it
  // wins at once, ahead of a loop future completed afterwards.
  ManualScheduler loop;
  ConcurrentFuture<int> done;
  done.set_result(1);
  Future<int> local;
  Future<size_t> first = first_completed(done, local);
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result(), 0u);
  local.set_result(2);
  loop.run_pending();
  EXPECT_EQ(first.result(), 0u);
}

TEST(FirstCompletedTest, AnAlreadyDoneConcurrentFutureInAListWinsInInputOrder) {
  ManualScheduler loop;
  std::vector<ConcurrentFuture<int>> children(3);
  children[2].set_result(2);
  children[1].set_result(1);
  Future<size_t> first = first_completed(children);
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.result(), 1u);
  children[0].set_result(0);
  loop.run_pending();
}

}  // namespace
}  // namespace eddy
