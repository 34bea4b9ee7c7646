// A completion never loses its callbacks (or its coroutine's resume) when
// posting them to the loop runs out of memory, and never terminates the
// process: set_result/set_exception/cancel either complete and post, or
// throw std::bad_alloc with the future still pending (a retry works); an
// offload's outcome and a ConcurrentFuture's delivery from a worker reach
// the loop even when the loop's cross-thread queue cannot get a new block
// at first.
//
// This binary links tests/fail_big (a replaced global operator new): while
// armed, allocations of 8 KiB or more fail on any thread not exempt (the
// loop's queue blocks are that big; nothing else here is).
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <thread>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/fail_big.h"

namespace eddy {
namespace {

using testing::drain;
using testing::fail_big_allocations;
using testing::FailBig;
using testing::fill_callback_queue;

class PostNoFailTest : public ::testing::Test {
 protected:
  PostNoFailTest() { loop_.make_current(); }
  ~PostNoFailTest() override {
    IOLoop::clear_current();
    testing::exempt_this_thread_from_big_failures(false);
  }
  IOLoop loop_;
};

TEST_F(PostNoFailTest, SetResultEitherPostsOrThrowsWithTheFutureStillPending) {
  int ran = 0;
  Future<int> f;
  f.add_done_callback([&](Future<int>& done) { ran += done.result(); });
  Future<int> g;
  g.add_done_callback([&](Future<int>& done) { ran += done.result(); });
  for (int i = 0; i < 256; ++i) loop_.add_callback([] {});  // fills the first block
  {
    FailBig fail;
    // The queue's next block is the spare kept ready: this completes.
    f.set_result(1);
    EXPECT_TRUE(f.done());
    // Fill what is left; no spare block can be had now.
    EXPECT_GT(fill_callback_queue(loop_), 0);
    EXPECT_THROW(g.set_result(10), std::bad_alloc);
    EXPECT_FALSE(g.done());
    EXPECT_THROW(g.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                 std::bad_alloc);
    EXPECT_THROW(g.cancel(), std::bad_alloc);
    EXPECT_FALSE(g.done());
  }
  g.set_result(10);  // the retry works, with memory back
  EXPECT_EQ(ran, 0);
  drain(loop_);
  EXPECT_EQ(ran, 11);
}

TEST_F(PostNoFailTest, AddDoneCallbackOnADoneFutureThrowsWithoutRegisteringIt) {
  Future<int> f;
  f.set_result(1);
  drain(loop_);
  int ran = 0;
  {
    FailBig fail;
    fill_callback_queue(loop_);
    fill_callback_queue(loop_);
    EXPECT_THROW(f.add_done_callback([&](Future<int>&) { ran += 1; }), std::bad_alloc);
  }
  f.add_done_callback([&](Future<int>&) { ran += 10; });
  drain(loop_);
  EXPECT_EQ(ran, 10);
}

Future<int> await_once(Future<int> f, bool& resumed) {
  int v = co_await f;
  resumed = true;
  co_return v;
}

TEST_F(PostNoFailTest, AnAwaitingCoroutineIsResumedAfterAFailedSetResultIsRetried) {
  Future<int> f;
  bool resumed = false;
  Future<int> co = await_once(f, resumed);
  for (int i = 0; i < 256; ++i) loop_.add_callback([] {});
  {
    FailBig fail;
    fill_callback_queue(loop_);
    fill_callback_queue(loop_);
    EXPECT_THROW(f.set_result(7), std::bad_alloc);
    EXPECT_FALSE(f.done());
  }
  f.set_result(7);
  EXPECT_EQ(loop_.run_sync([&] { return co; }), 7);
  EXPECT_TRUE(resumed);
}

// Fills the loop's cross-thread queue (its first block holds 256) from
// another thread, so that the next cross-thread post needs a new block.
void fill_inbox(IOLoop& loop) {
  // (The caller, the loop's thread, is exempt from the failures from now on.)
  testing::exempt_this_thread_from_big_failures(true);
  std::thread([&] {
    for (int i = 0; i < 256; ++i) loop.add_callback([] {});
  }).join();
}

TEST_F(PostNoFailTest, AnOffloadsOutcomeArrivesWhenTheInboxCannotGrowAtFirst) {
  ThreadPoolExecutor pool(1);
  fill_inbox(loop_);
  // The worker's completion is the post that needs the block; its first
  // tries fail.
  Future<int> f = loop_.run_in_executor(&pool, [] {
    fail_big_allocations(3);
    return 42;
  });
  // (The timeout only bounds a hang; it is not what the test measures.)
  EXPECT_EQ(loop_.run_sync([&] { return f; }, absl::Seconds(30)), 42);
  fail_big_allocations(0);
  pool.shutdown(true);
}

TEST_F(PostNoFailTest, AddFutureOnAConcurrentFutureRunsWhenTheInboxCannotGrowAtFirst) {
  ThreadPoolExecutor pool(1);
  fill_inbox(loop_);
  // The task arms the failures only once add_future has attached (on this
  // thread, which must not be the one to meet them).
  std::atomic<bool> attached{false};
  ConcurrentFuture<int> cf = pool.submit([&] {
    while (!attached.load()) std::this_thread::yield();
    fail_big_allocations(3);
    return 5;
  });
  Future<int> seen;
  loop_.add_future(cf, [&](ConcurrentFuture<int>& done) { seen.set_result(done.result()); });
  attached.store(true);
  EXPECT_EQ(loop_.run_sync([&] { return seen; }, absl::Seconds(30)), 5);
  fail_big_allocations(0);
  pool.shutdown(true);
}

}  // namespace
}  // namespace eddy
