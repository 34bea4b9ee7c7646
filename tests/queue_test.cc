// Queue, LifoQueue, PriorityQueue: Tornado's queues_test.py scenarios
// (order, maxsize back-pressure, blocking and non-blocking get/put,
// timeouts, clearing timed-out getters and putters, task_done/join,
// priority and LIFO order, the producer/consumer example), with timeouts on
// a manual clock.
#include "eddy/sync/queue.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"
#include "tests/sync_test_util.h"

namespace eddy {
namespace {

using QueueTest = testing::SyncLoopTest;

// --- QueueBasicTest ----------------------------------------------------------

TEST_F(QueueTest, ItemsComeOutInTheOrderTheyWentIn) {
  Queue<int> q;
  for (int i : {1, 3, 2}) q.put_nowait(i);
  std::vector<int> items;
  while (!q.empty()) items.push_back(q.get_nowait());
  EXPECT_EQ(items, (std::vector<int>{1, 3, 2}));
}

TEST_F(QueueTest, MaxsizeMakesTheQueueFull) {
  EXPECT_FALSE(Queue<int>().full());
  EXPECT_EQ(Queue<int>().maxsize(), 0u);
  Queue<int> q(2);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.put(0).done());
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(q.put(1).done());
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2u);
  Future<void> blocked = q.put(2);
  EXPECT_FALSE(blocked.done());
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(blocked.done());  // its item took the free place
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_TRUE(q.full());
}

// --- QueueGetTest ------------------------------------------------------------

TEST_F(QueueTest, GetOnANonEmptyQueueIsDoneAtOnce) {
  Queue<int> q;
  q.put_nowait(0);
  Future<int> f = q.get();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 0);
}

TEST_F(QueueTest, GetNowaitOnAnEmptyQueueThrowsQueueEmpty) {
  Queue<int> q;
  EXPECT_THROW(q.get_nowait(), QueueEmpty);
}

// test_get_with_putters.
TEST_F(QueueTest, GetNowaitLetsTheOldestPutterIn) {
  Queue<int> q(1);
  q.put_nowait(0);
  Future<void> put = q.put(1);
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(put.done());
  EXPECT_EQ(q.get_nowait(), 1);
}

// test_blocking_get_wait.
TEST_F(QueueTest, BlockedGetReceivesTheNextPutOnALaterTurn) {
  Queue<int> q;
  q.put(0);
  loop_.call_later(absl::Milliseconds(10), [&] { q.put_nowait(1); });
  loop_.call_later(absl::Milliseconds(10), [&] { q.put_nowait(2); });
  EXPECT_EQ(q.get(absl::Seconds(1)).result(), 0);
  Future<int> f = q.get(absl::Seconds(1));
  EXPECT_FALSE(f.done());
  advance(absl::Milliseconds(10));
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 1);
  EXPECT_EQ(q.get_nowait(), 2);
}

// test_get_timeout.
TEST_F(QueueTest, GetTimesOutAndALaterPutStaysInTheQueue) {
  Queue<int> q;
  Future<int> timed = q.get(absl::Milliseconds(10));
  Future<int> patient = q.get();
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(failed_with<TimeoutError>(timed));
  q.put_nowait(0);
  ASSERT_TRUE(patient.done());
  EXPECT_EQ(patient.result(), 0);
}

// test_get_timeout_preempted.
TEST_F(QueueTest, PutBeforeTheGetTimeoutWins) {
  Queue<int> q;
  Future<int> f = q.get(absl::Milliseconds(10));
  q.put(0);
  advance(absl::Milliseconds(10));
  EXPECT_EQ(f.result(), 0);
  EXPECT_EQ(loop_.stats().timers, 0u);
}

// test_get_clears_timed_out_putters.
TEST_F(QueueTest, GetSkipsTimedOutPutters) {
  Queue<int> q(1);
  std::vector<Future<void>> putters;
  for (int i = 0; i < 10; ++i) putters.push_back(q.put(i, absl::Milliseconds(10)));
  EXPECT_TRUE(putters[0].done());  // room for the first
  for (int i = 1; i < 10; ++i) EXPECT_FALSE(putters[i].done());
  advance(absl::Milliseconds(10));
  for (int i = 1; i < 10; ++i) EXPECT_TRUE(failed_with<TimeoutError>(putters[i]));
  Future<void> patient = q.put(10);
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(patient.done());
  EXPECT_EQ(q.get_nowait(), 10);  // the timed-out items are gone
  EXPECT_TRUE(q.empty());
}

// test_get_clears_timed_out_getters.
TEST_F(QueueTest, PutSkipsTimedOutGetters) {
  Queue<int> q;
  std::vector<Future<int>> getters;
  for (int i = 0; i < 10; ++i) getters.push_back(q.get(absl::Milliseconds(10)));
  advance(absl::Milliseconds(10));
  for (auto& g : getters) EXPECT_TRUE(failed_with<TimeoutError>(g));
  Future<int> patient = q.get();
  q.put_nowait(0);
  ASSERT_TRUE(patient.done());
  EXPECT_EQ(patient.result(), 0);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, CancelledGetterTakesNoItem) {
  Queue<int> q;
  Future<int> cancelled = q.get();
  Future<int> kept = q.get();
  cancelled.cancel();
  q.put_nowait(7);
  EXPECT_TRUE(cancelled.cancelled());
  ASSERT_TRUE(kept.done());
  EXPECT_EQ(kept.result(), 7);
}

TEST_F(QueueTest, CancelledPutterDropsItsItem) {
  Queue<int> q(1);
  q.put_nowait(0);
  Future<void> cancelled = q.put(1);
  Future<void> kept = q.put(2);
  cancelled.cancel();
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(kept.done());
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_TRUE(q.empty());
}

// test_async_for: `co_await q` in a consumer loop.
TEST_F(QueueTest, CoAwaitOnTheQueueGetsTheNextItem) {
  Queue<int> q;
  for (int i = 0; i < 5; ++i) q.put(i);
  auto consume = [&]() -> Future<std::vector<int>> {
    std::vector<int> results;
    for (;;) {
      int i = co_await q;
      results.push_back(i);
      if (i == 4) co_return results;
    }
  };
  Future<std::vector<int>> f = consume();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), (std::vector<int>{0, 1, 2, 3, 4}));
}

// --- QueuePutTest ------------------------------------------------------------

TEST_F(QueueTest, PutNowaitOnAFullQueueThrowsQueueFull) {
  Queue<int> q(1);
  q.put_nowait(0);
  EXPECT_THROW(q.put_nowait(1), QueueFull);
  EXPECT_EQ(q.qsize(), 1u);
}

// test_put_with_getters / test_nonblocking_put_with_getters.
TEST_F(QueueTest, PutHandsTheItemToTheOldestGetter) {
  Queue<int> q;
  Future<int> get0 = q.get();
  Future<int> get1 = q.get();
  EXPECT_TRUE(q.put(0).done());
  q.put_nowait(1);
  ASSERT_TRUE(get0.done());
  ASSERT_TRUE(get1.done());
  EXPECT_EQ(get0.result(), 0);
  EXPECT_EQ(get1.result(), 1);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.unfinished_tasks(), 2u);  // handed over, still to be task_done()
}

// test_blocking_put_wait.
TEST_F(QueueTest, BlockedPutCompletesWhenAGetMakesRoom) {
  Queue<int> q(1);
  q.put_nowait(0);
  loop_.call_later(absl::Milliseconds(10), [&] { EXPECT_EQ(q.get_nowait(), 0); });
  loop_.call_later(absl::Milliseconds(10), [&] { EXPECT_EQ(q.get_nowait(), 1); });
  Future<void> put1 = q.put(1);
  Future<void> put2 = q.put(2);
  record_done(put1, "put1");
  record_done(put2, "put2");
  advance(absl::Milliseconds(10));
  EXPECT_EQ(history_, (std::vector<std::string>{"put1", "put2"}));
  EXPECT_EQ(q.get_nowait(), 2);
}

// test_put_timeout.
TEST_F(QueueTest, PutTimesOutAndItsItemNeverArrives) {
  Queue<int> q(1);
  q.put_nowait(0);
  Future<void> timed = q.put(1, absl::Milliseconds(10));
  Future<void> patient = q.put(2);
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(failed_with<TimeoutError>(timed));
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(patient.done());
  EXPECT_EQ(q.get_nowait(), 2);
}

// test_put_timeout_preempted.
TEST_F(QueueTest, GetBeforeThePutTimeoutWins) {
  Queue<int> q(1);
  q.put_nowait(0);
  Future<void> put = q.put(1, absl::Milliseconds(10));
  EXPECT_EQ(q.get_nowait(), 0);
  advance(absl::Milliseconds(10));
  EXPECT_TRUE(put.done());
  EXPECT_EQ(put.exception(), nullptr);
}

// test_put_clears_timed_out_putters.
TEST_F(QueueTest, PutSkipsTimedOutPutters) {
  Queue<int> q(1);
  std::vector<Future<void>> putters;
  for (int i = 0; i < 10; ++i) putters.push_back(q.put(i, absl::Milliseconds(10)));
  advance(absl::Milliseconds(10));
  Future<void> patient = q.put(10);
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(patient.done());
  EXPECT_EQ(q.get_nowait(), 10);
}

// test_put_clears_timed_out_getters.
TEST_F(QueueTest, GetSkipsTimedOutGettersWhenItemsArrive) {
  Queue<int> q;
  std::vector<Future<int>> getters;
  for (int i = 0; i < 10; ++i) getters.push_back(q.get(absl::Milliseconds(10)));
  Future<int> patient = q.get();
  advance(absl::Milliseconds(10));
  q.put_nowait(0);
  ASSERT_TRUE(patient.done());
  EXPECT_EQ(patient.result(), 0);
}

TEST_F(QueueTest, MoveOnlyItemsPassThrough) {
  Queue<std::unique_ptr<int>> q(1);
  Future<std::unique_ptr<int>> getter = q.get();
  q.put_nowait(std::make_unique<int>(1));
  ASSERT_TRUE(getter.done());
  EXPECT_EQ(*getter.result(), 1);
  q.put_nowait(std::make_unique<int>(2));
  Future<void> putter = q.put(std::make_unique<int>(3));
  EXPECT_EQ(*q.get_nowait(), 2);
  EXPECT_TRUE(putter.done());
  auto consume = [&]() -> Future<int> {
    std::unique_ptr<int> p = co_await q;
    co_return *p;
  };
  EXPECT_EQ(consume().result(), 3);
}

// --- QueueJoinTest, for all three kinds ---------------------------------------

template <class Q>
class QueueJoinTest : public testing::SyncLoopTest {};
using QueueKinds = ::testing::Types<Queue<int>, LifoQueue<int>, PriorityQueue<int>>;
TYPED_TEST_SUITE(QueueJoinTest, QueueKinds);

// test_task_done_underflow.
TYPED_TEST(QueueJoinTest, TaskDoneMoreTimesThanItemsThrowsInvalidStateError) {
  TypeParam q;
  EXPECT_THROW(q.task_done(), InvalidStateError);
  q.put_nowait(1);
  q.get_nowait();
  q.task_done();
  EXPECT_THROW(q.task_done(), InvalidStateError);
}

// test_task_done.
TYPED_TEST(QueueJoinTest, JoinCompletesOnceEveryItemIsTaskDone) {
  TypeParam q;
  for (int i = 0; i < 100; ++i) q.put_nowait(i);
  long sum = 0;
  auto worker = [&]() -> Future<void> {
    for (;;) {
      int item = co_await q.get();
      sum += item;
      q.task_done();
    }
  };
  // Two consumers, as Tornado's test; they wait forever once it is empty.
  Future<void> w1 = worker();
  Future<void> w2 = worker();
  Future<void> joined = q.join();
  this->drain();
  EXPECT_TRUE(joined.done());
  EXPECT_EQ(sum, 4950);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  // Stop the consumers (CancelledError at their co_await) before the loop
  // goes away.
  w1.cancel();
  w2.cancel();
  this->drain();
}

// test_task_done_delay.
TYPED_TEST(QueueJoinTest, JoinWaitsForTheLastTaskDone) {
  TypeParam q;
  q.put_nowait(0);
  Future<void> join = q.join();
  EXPECT_FALSE(join.done());
  q.get_nowait();
  this->drain();
  EXPECT_FALSE(join.done());
  q.task_done();
  EXPECT_TRUE(join.done());
}

// test_join_empty_queue.
TYPED_TEST(QueueJoinTest, JoinOnAQueueWithNothingUnfinishedIsDoneAtOnce) {
  TypeParam q;
  EXPECT_TRUE(q.join().done());
  EXPECT_TRUE(q.join(absl::Seconds(1)).done());
}

// test_join_timeout.
TYPED_TEST(QueueJoinTest, JoinTimesOutWithTimeoutError) {
  TypeParam q;
  q.put_nowait(0);
  Future<void> join = q.join(absl::Milliseconds(10));
  this->advance(absl::Milliseconds(10));
  EXPECT_TRUE(this->template failed_with<TimeoutError>(join));
  try {
    join.result();
  } catch (const TimeoutError& e) {
    EXPECT_STREQ(e.what(), "Queue::join timed out");
  }
}

// --- PriorityQueueJoinTest / LifoQueueJoinTest -------------------------------

// Tornado: ValueError("maxsize can't be negative"). A size_t parameter
// used to turn -1 into 18446744073709551615: a queue that is never full.
TEST_F(QueueTest, ANegativeMaxsizeIsRejected) {
  EXPECT_THROW(Queue<int>(-1), std::invalid_argument);
  EXPECT_THROW(LifoQueue<int>(-1), std::invalid_argument);
  EXPECT_THROW(PriorityQueue<int>(-5), std::invalid_argument);
  try {
    Queue<int> q(-1);
    ADD_FAILURE() << "no exception, maxsize " << q.maxsize();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Queue: maxsize must be >= 0, got -1");
  }
  // Unsigned and signed bounds of any width still compile and work.
  size_t two = 2;
  Queue<int> q(two);
  EXPECT_EQ(q.maxsize(), 2u);
  Queue<int> unbounded(0);
  EXPECT_EQ(unbounded.maxsize(), 0u);
  EXPECT_FALSE(unbounded.full());
}

TEST_F(QueueTest, PriorityQueueHandsOutTheLowestFirst) {
  PriorityQueue<std::pair<int, std::string>> q;
  q.put_nowait({1, "a"});
  q.put_nowait({0, "b"});
  q.put_nowait({2, "c"});
  q.put_nowait({1, "d"});
  std::vector<std::string> order;
  while (!q.empty()) order.push_back(q.get_nowait().second);
  EXPECT_EQ(order, (std::vector<std::string>{"b", "a", "d", "c"}));
}

TEST_F(QueueTest, PriorityQueueKeepsEqualItemsInArrivalOrder) {
  using Job = std::pair<int, int>;  // (priority, arrival)
  auto by_priority = [](const Job& a, const Job& b) { return a.first < b.first; };
  PriorityQueue<Job, decltype(by_priority)> q(0, by_priority);
  for (int i = 0; i < 50; ++i) q.put_nowait({i % 3, i});
  std::vector<Job> out;
  while (!q.empty()) out.push_back(q.get_nowait());
  for (size_t i = 1; i < out.size(); ++i) {
    ASSERT_LE(out[i - 1].first, out[i].first);
    if (out[i - 1].first == out[i].first) {
      ASSERT_LT(out[i - 1].second, out[i].second);
    }
  }
}

TEST_F(QueueTest, PriorityQueueWithACustomCompare) {
  PriorityQueue<int, std::greater<int>> q;  // "lowest" by greater: the largest
  for (int i : {3, 1, 4, 1, 5}) q.put_nowait(i);
  std::vector<int> out;
  while (!q.empty()) out.push_back(q.get_nowait());
  EXPECT_EQ(out, (std::vector<int>{5, 4, 3, 1, 1}));
}

TEST_F(QueueTest, PriorityQueueRespectsMaxsize) {
  PriorityQueue<int> q(2);
  q.put_nowait(5);
  q.put_nowait(1);
  EXPECT_TRUE(q.full());
  Future<void> put = q.put(0);
  EXPECT_FALSE(put.done());
  EXPECT_EQ(q.get_nowait(), 0);  // the putter's item joins, then the lowest leaves
  EXPECT_TRUE(put.done());
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_EQ(q.get_nowait(), 5);
}

TEST_F(QueueTest, LifoQueueHandsOutTheNewestFirst) {
  LifoQueue<int> q;
  for (int i : {1, 3, 2}) q.put_nowait(i);
  std::vector<int> out;
  while (!q.empty()) out.push_back(q.get_nowait());
  EXPECT_EQ(out, (std::vector<int>{2, 3, 1}));
}

TEST_F(QueueTest, LifoQueueRespectsMaxsize) {
  LifoQueue<int> q(2);
  q.put_nowait(1);
  q.put_nowait(2);
  Future<void> put = q.put(3);
  EXPECT_FALSE(put.done());
  EXPECT_EQ(q.get_nowait(), 3);  // Tornado: the putter's item goes in, then pops
  EXPECT_TRUE(put.done());
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_EQ(q.get_nowait(), 1);
}

// --- ProducerConsumerTest and the documentation example ----------------------

// Tornado's test_producer_consumer.
TEST_F(QueueTest, ProducerAndConsumerWithBackPressure) {
  Queue<int> q(3);
  std::vector<int> history;
  auto consumer = [&]() -> Future<void> {
    for (;;) {
      history.push_back(co_await q.get());
      q.task_done();
    }
  };
  auto producer = [&]() -> Future<void> {
    for (int item = 0; item < 10; ++item) co_await q.put(item);
  };
  Future<void> consuming;
  auto main_coroutine = [&]() -> Future<void> {
    consuming = consumer();
    co_await producer();
    co_await q.join();
  };
  loop_.run_sync(main_coroutine);
  EXPECT_EQ(history, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  consuming.cancel();
  drain();
}

// The example from Tornado's queue documentation (queues.rst): a consumer
// that takes 10 ms per item, a producer that puts 5 items into a queue of
// maxsize 2, and main() joining. With a manual clock that jumps to the next
// timer, the sleeps take no real time.
TEST_F(QueueTest, TornadoDocumentationProducerConsumerExample) {
  clock_->set_auto_advance(true);
  Queue<int> q(2);
  std::vector<std::string> out;
  auto consumer = [&]() -> Future<void> {
    for (;;) {
      int item = co_await q;
      out.push_back("Doing work on " + std::to_string(item));
      co_await sleep(absl::Milliseconds(10));
      q.task_done();
    }
  };
  auto producer = [&]() -> Future<void> {
    for (int item = 0; item < 5; ++item) {
      co_await q.put(item);
      out.push_back("Put " + std::to_string(item));
    }
  };
  MonotonicTime start = loop_.time();
  Future<void> consuming;
  auto main_coroutine = [&]() -> Future<void> {
    loop_.spawn_callback([&] { consuming = consumer(); });  // never finishes
    co_await producer();
    co_await q.join();
    out.push_back("Done");
  };
  loop_.run_sync(main_coroutine);
  EXPECT_EQ(out, (std::vector<std::string>{
                     "Put 0", "Put 1", "Doing work on 0", "Put 2", "Doing work on 1", "Put 3",
                     "Doing work on 2", "Put 4", "Doing work on 3", "Doing work on 4", "Done"}));
  // Five items, 10 ms each, one at a time: 50 ms of loop time.
  EXPECT_EQ(loop_.time() - start, absl::Milliseconds(50));
  consuming.cancel();
  drain();
}

// --- Threading and lifetime ----------------------------------------------------

TEST_F(QueueTest, DestroyingTheQueueCancelsGettersPuttersAndJoins) {
  Future<int> getter;
  Future<void> putter;
  Future<void> join;
  {
    Queue<int> empty;
    getter = empty.get(absl::Seconds(1));
  }
  {
    Queue<int> full(1);
    full.put_nowait(0);
    putter = full.put(1);
    join = full.join();
  }
  EXPECT_TRUE(getter.cancelled());
  EXPECT_TRUE(putter.cancelled());
  EXPECT_TRUE(join.cancelled());
  drain();
  EXPECT_EQ(loop_.stats().timers, 0u);
}

TEST(QueueWithoutLoopTest, WaitsWorkOnAnySchedulerButTimeoutsNeedAnIOLoop) {
  testing::ManualScheduler scheduler;
  Queue<int> q;
  EXPECT_THROW((void)q.get(absl::Seconds(1)), InvalidStateError);
  Future<int> f = q.get();
  q.put_nowait(5);
  EXPECT_TRUE(f.done());
  int seen = 0;
  f.add_done_callback([&](Future<int>& done) { seen = done.result(); });
  EXPECT_EQ(seen, 0);  // posted, not inline
  scheduler.run_pending();
  EXPECT_EQ(seen, 5);
}

TEST(QueueWithoutLoopTest, GetterCallbackRunningInlineMayUseTheQueue) {
  // No scheduler current: a completion runs callbacks inline, inside put().
  Queue<int> q(1);
  std::vector<int> got;
  Future<int> getter = q.get();
  getter.add_done_callback([&](Future<int>& done) {
    got.push_back(done.result());
    q.put_nowait(100);  // re-entrant put from inside put_nowait()
  });
  q.put_nowait(1);
  EXPECT_EQ(got, (std::vector<int>{1}));
  EXPECT_EQ(q.get_nowait(), 100);
}

// --- used from a foreign thread -------------------------------------------

TEST_F(QueueTest, DestroyedOnAForeignThreadItLogsAndItsLoopCancelsTheWaiters) {
  testing::LogCapture log;
  auto q = std::make_unique<Queue<int>>(1);
  Future<int> getter = q->get();
  Future<void> join = [&] {
    q->put_nowait(0);  // to the getter: one unfinished item
    return q->join();
  }();
  Future<int> second = q->get();
  std::thread other([&] { q.reset(); });  // used to call std::terminate
  other.join();
  EXPECT_EQ(log.count("destroyed on a thread that does not own"), 2u) << "the getters, the join";
  drain();
  EXPECT_EQ(getter.result(), 0);
  EXPECT_TRUE(second.cancelled());
  EXPECT_TRUE(join.cancelled());
}

// The last task_done() sets the join event: from a pool thread it used to
// count the item done and then fail in the event's set(), so the count was
// 0 and join() never completed.
TEST_F(QueueTest, TaskDoneOnAForeignThreadIsRefusedBeforeItCounts) {
  Queue<int> q;
  q.put_nowait(1);
  EXPECT_EQ(q.get_nowait(), 1);
  Future<void> join = q.join();
  std::thread other([&] { EXPECT_THROW(q.task_done(), InvalidStateError); });
  other.join();
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  q.task_done();
  drain();
  EXPECT_TRUE(join.done());
  EXPECT_FALSE(join.cancelled());
}

TEST_F(QueueTest, PutOnAForeignThreadIsRefusedNamingQueuePut) {
  Queue<int> q;
  Future<int> getter = q.get();
  std::thread other([&] {
    try {
      q.put_nowait(5);
      ADD_FAILURE() << "no exception";
    } catch (const InvalidStateError& ex) {
      EXPECT_NE(std::string(ex.what()).find("Queue::put: called from a thread"),
                std::string::npos)
          << ex.what();
    }
  });
  other.join();
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  q.put_nowait(6);
  drain();
  EXPECT_EQ(getter.result(), 6);
}

// --- Items whose copy throws --------------------------------------------

// A copy-only item (no move constructor: every move is a copy) whose copy
// throws while `fail` is set, as a legacy type's copy that allocates or
// validates may.
struct Brittle {
  static inline bool fail = false;
  static inline int copies_left = -1;  // >= 0: the copy after that many throws
  int v = 0;
  explicit Brittle(int x) : v(x) {}
  Brittle(const Brittle& o) : v(o.v) {
    if (fail || copies_left == 0) throw std::runtime_error("copy failed");
    if (copies_left > 0) --copies_left;
  }
  Brittle& operator=(const Brittle&) = default;
  bool operator<(const Brittle& o) const { return v < o.v; }
};

// Runs fn with Brittle's copies failing.
template <class F>
std::string copy_failure(F&& fn) {
  Brittle::fail = true;
  std::string what = "nothing thrown";
  try {
    fn();
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  Brittle::fail = false;
  return what;
}

template <class Q>
class QueueOfBrittleTest : public QueueTest {};
using BrittleQueues = ::testing::Types<Queue<Brittle>, LifoQueue<Brittle>, PriorityQueue<Brittle>>;
TYPED_TEST_SUITE(QueueOfBrittleTest, BrittleQueues);

TYPED_TEST(QueueOfBrittleTest, AFailedPutToAWaitingGetterKeepsTheGetterWaiting) {
  TypeParam q;
  Future<Brittle> getter = q.get();
  // (A temporary: the copy that fails is the queue's own, not the call's.)
  EXPECT_EQ(copy_failure([&] { q.put_nowait(Brittle(1)); }), "copy failed");
  EXPECT_FALSE(getter.done());
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.join().done()) << "the failed put left an unfinished task";
  q.put_nowait(Brittle(2));
  ASSERT_TRUE(getter.done()) << "the getter was lost with the failed put";
  EXPECT_EQ(getter.result().v, 2);
  EXPECT_EQ(q.qsize(), 0u);
}

TYPED_TEST(QueueOfBrittleTest, AFailedGetWithAWaitingPutterKeepsTheQueueWhole) {
  TypeParam q(1);
  q.put_nowait(Brittle(1));
  Future<void> putter = q.put(Brittle(2));
  ASSERT_FALSE(putter.done());
  EXPECT_EQ(copy_failure([&] { q.get_nowait(); }), "copy failed");
  // Nothing changed: the putter still waits with its item.
  EXPECT_FALSE(putter.done());
  EXPECT_EQ(q.qsize(), 1u);
  std::vector<int> out;
  out.push_back(q.get_nowait().v);
  EXPECT_TRUE(putter.done());
  out.push_back(q.get_nowait().v);
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (std::vector<int>{1, 2}));
  EXPECT_TRUE(q.empty());
  q.put_nowait(Brittle(3));
  EXPECT_EQ(q.get_nowait().v, 3) << "the queue is still usable";
}

TYPED_TEST(QueueOfBrittleTest, AFailedGetLeavesTheItemInTheQueue) {
  TypeParam q;
  q.put_nowait(Brittle(1));
  EXPECT_EQ(copy_failure([&] { q.get_nowait(); }), "copy failed");
  EXPECT_EQ(copy_failure([&] { (void)q.get(); }), "copy failed");
  EXPECT_EQ(q.qsize(), 1u);
  Future<Brittle> got = q.get();
  ASSERT_TRUE(got.done());
  EXPECT_EQ(got.result().v, 1);
}

// Whichever copy fails, every item is in exactly one place afterwards (the
// queue, a waiting putter, a completed getter, or handed out) and every
// waiter that is not done still waits.
TYPED_TEST(QueueOfBrittleTest, NoItemOrWaiterIsLostWhicheverCopyFails) {
  for (int k = 0; k < 8; ++k) {
    SCOPED_TRACE("the copy after " + std::to_string(k) + " fails");
    {
      TypeParam q(1);
      q.put_nowait(Brittle(1));
      Future<void> putter = q.put(Brittle(2));
      std::vector<int> out;
      Brittle::copies_left = k;
      try {
        out.push_back(q.get_nowait().v);
      } catch (const std::runtime_error&) {
      }
      Brittle::copies_left = -1;
      EXPECT_LE(q.qsize(), 1u);
      // A get that succeeded but could not take the putter's item in (its
      // copy failed) leaves the putter waiting: the next get admits it.
      while (!q.empty() || !putter.done()) out.push_back(q.get_nowait().v);
      std::sort(out.begin(), out.end());
      EXPECT_EQ(out, (std::vector<int>{1, 2}));
      EXPECT_TRUE(putter.done());
      EXPECT_EQ(q.unfinished_tasks(), 2u);
    }
    {
      TypeParam q;
      Future<Brittle> getter = q.get();
      Brittle::copies_left = k;
      bool put = true;
      try {
        q.put_nowait(Brittle(1));
      } catch (const std::runtime_error&) {
        put = false;
      }
      Brittle::copies_left = -1;
      EXPECT_EQ(getter.done(), put);
      if (!put) q.put_nowait(Brittle(2));
      ASSERT_TRUE(getter.done());
      EXPECT_EQ(getter.result().v, put ? 1 : 2);
      EXPECT_TRUE(q.empty());
      EXPECT_EQ(q.unfinished_tasks(), 1u);
    }
  }
}

TYPED_TEST(QueueOfBrittleTest, AFailedPutChangesNothing) {
  TypeParam q(1);
  EXPECT_EQ(copy_failure([&] { q.put_nowait(Brittle(1)); }), "copy failed");
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.join().done());
}

// --- Items whose move empties its source and may throw --------------------

// A move-only item whose move leaves -1 behind (as a real move empties its
// source), and throws, before touching the source, once `moves_left`
// reaches 0. Copy-only types (Brittle) hide a second move from a
// moved-from source; this one shows it as a -1 coming out.
struct Slippery {
  static inline int moves_left = -1;  // >= 0: the move after that many throws
  int v = 0;
  explicit Slippery(int x) : v(x) {}
  Slippery(Slippery&& o) : v(o.v) {
    count_move();
    o.v = -1;
  }
  Slippery& operator=(Slippery&& o) {
    count_move();
    v = std::exchange(o.v, -1);
    return *this;
  }
  bool operator<(const Slippery& o) const { return v < o.v; }

 private:
  static void count_move() {
    if (moves_left == 0) throw std::runtime_error("move failed");
    if (moves_left > 0) --moves_left;
  }
};

template <class Q>
class QueueOfSlipperyTest : public QueueTest {};
using SlipperyQueues =
    ::testing::Types<Queue<Slippery>, LifoQueue<Slippery>, PriorityQueue<Slippery>>;
TYPED_TEST_SUITE(QueueOfSlipperyTest, SlipperyQueues);

// Runs `fn` with the k-th move failing; true if it threw that failure.
template <class F>
bool with_move_failing(int k, F&& fn) {
  Slippery::moves_left = k;
  bool threw = false;
  try {
    fn();
  } catch (const std::runtime_error&) {
    threw = true;
  }
  Slippery::moves_left = -1;
  return threw;
}

// Takes everything out of `q`, waiting putters' items included.
template <class Q>
void drain_into(Q& q, const std::vector<Future<void>>& putters, std::vector<int>& out) {
  auto waiting = [&] {
    return std::any_of(putters.begin(), putters.end(), [](const Future<void>& p) {
      return !p.done();
    });
  };
  while (!q.empty() || waiting()) out.push_back(q.get_nowait().v);
}

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TYPED_TEST(QueueOfSlipperyTest, AGetWithAWaitingPutterLosesNoItemWhicheverMoveThrows) {
  for (bool nowait : {true, false}) {
    for (int k = 0; k < 10; ++k) {
      SCOPED_TRACE(std::string(nowait ? "get_nowait" : "get") + ", the move after " +
                   std::to_string(k) + " throws");
      TypeParam q(2);
      q.put_nowait(Slippery(1));
      q.put_nowait(Slippery(2));
      std::vector<Future<void>> putters{q.put(Slippery(3))};
      ASSERT_FALSE(putters[0].done());
      std::vector<int> out;
      const bool threw = with_move_failing(k, [&] {
        if (nowait) {
          out.push_back(q.get_nowait().v);
        } else {
          Future<Slippery> got = q.get();
          ASSERT_TRUE(got.done());
          out.push_back(got.result().v);
        }
      });
      EXPECT_LE(q.qsize(), q.maxsize());
      if (threw) {
        // Nothing changed: the putter still waits, the queue is full.
        EXPECT_FALSE(putters[0].done());
        EXPECT_EQ(q.qsize(), 2u);
      }
      drain_into(q, putters, out);
      EXPECT_EQ(sorted(out), (std::vector<int>{1, 2, 3}));
      EXPECT_TRUE(putters[0].done());
      EXPECT_EQ(q.unfinished_tasks(), 3u);
    }
  }
}

TYPED_TEST(QueueOfSlipperyTest, AGetWithAnItemQueuedLeavesItWholeWhenTheMoveThrows) {
  for (bool nowait : {true, false}) {
    for (int k = 0; k < 4; ++k) {
      SCOPED_TRACE(std::string(nowait ? "get_nowait" : "get") + ", the move after " +
                   std::to_string(k) + " throws");
      TypeParam q;
      q.put_nowait(Slippery(7));
      int got = 0;
      Future<Slippery> future;
      const bool threw = with_move_failing(k, [&] {
        if (nowait) {
          got = q.get_nowait().v;
        } else {
          future = q.get();
        }
      });
      if (!nowait && !threw) got = future.result().v;
      if (!threw) {
        EXPECT_EQ(got, 7);
        EXPECT_TRUE(q.empty());
        continue;
      }
      ASSERT_EQ(q.qsize(), 1u);
      EXPECT_EQ(q.get_nowait().v, 7) << "the item left in the queue is a moved-from shell";
    }
  }
}

TYPED_TEST(QueueOfSlipperyTest, APutToAWaitingGetterLosesNoItemWhicheverMoveThrows) {
  for (bool nowait : {true, false}) {
    for (int k = 0; k < 6; ++k) {
      SCOPED_TRACE(std::string(nowait ? "put_nowait" : "put") + ", the move after " +
                   std::to_string(k) + " throws");
      TypeParam q(1);
      Future<Slippery> getter = q.get();
      const bool threw = with_move_failing(k, [&] {
        if (nowait) {
          q.put_nowait(Slippery(1));
        } else {
          EXPECT_TRUE(q.put(Slippery(1)).done());
        }
      });
      EXPECT_EQ(getter.done(), !threw);
      if (threw) {
        EXPECT_EQ(q.unfinished_tasks(), 0u);
        q.put_nowait(Slippery(2));
      }
      ASSERT_TRUE(getter.done());
      EXPECT_EQ(getter.result().v, threw ? 2 : 1);
      EXPECT_TRUE(q.empty());
      EXPECT_EQ(q.unfinished_tasks(), 1u);
    }
  }
}

TYPED_TEST(QueueOfSlipperyTest, APutWhenFullLosesNoItemWhicheverMoveThrows) {
  for (int k = 0; k < 8; ++k) {
    SCOPED_TRACE("the move after " + std::to_string(k) + " throws");
    TypeParam q(1);
    q.put_nowait(Slippery(1));
    std::vector<Future<void>> putters;
    const bool threw = with_move_failing(k, [&] { putters.push_back(q.put(Slippery(2))); });
    EXPECT_EQ(q.qsize(), 1u);
    std::vector<int> out;
    drain_into(q, putters, out);
    EXPECT_EQ(sorted(out), threw ? std::vector<int>{1} : (std::vector<int>{1, 2}));
  }
}

TYPED_TEST(QueueOfSlipperyTest, TheOrderHoldsWithAPutterAdmittedOnGet) {
  TypeParam q(2);
  q.put_nowait(Slippery(5));
  q.put_nowait(Slippery(3));
  Future<void> putter = q.put(Slippery(4));
  std::vector<int> out;
  while (!q.empty()) out.push_back(q.get_nowait().v);
  EXPECT_TRUE(putter.done());
  if constexpr (std::is_same_v<TypeParam, Queue<Slippery>>) {
    EXPECT_EQ(out, (std::vector<int>{5, 3, 4}));
  } else if constexpr (std::is_same_v<TypeParam, LifoQueue<Slippery>>) {
    // Tornado: the putter's item goes in, then the newest comes out.
    EXPECT_EQ(out, (std::vector<int>{4, 3, 5}));
  } else {
    EXPECT_EQ(out, (std::vector<int>{3, 4, 5}));
  }
}

}  // namespace
}  // namespace eddy
