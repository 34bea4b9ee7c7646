// When a coroutine waiting on a future resumes, relative to the loop's
// other callbacks and turns. A future completed by a loop callback posts
// its waiter's resume behind what is already queued, as Tornado does; when
// nothing was queued since that turn's callbacks began, the resume is first
// in line for the next turn, and the loop runs it at the end of this one
// instead: the same order of callbacks, one loop turn (and, with fds
// registered, one epoll_wait) less per await.
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

constexpr int kAwaits = 200;

// Awaits kAwaits futures in a row, each completed by a loop callback.
Future<int> await_loop_resolved(IOLoop& loop) {
  int sum = 0;
  for (int i = 0; i < kAwaits; ++i) {
    Future<int> f;
    loop.add_callback([f, i]() mutable { f.set_result(i); });
    sum += co_await f;
  }
  co_return sum;
}

TEST(ResumeTurnTest, ALoopResolvedAwaitTakesOneLoopTurn) {
  IOLoop loop;
  const uint64_t before = loop.stats().iterations;
  EXPECT_EQ(loop.run_sync([&] { return await_loop_resolved(loop); }),
            kAwaits * (kAwaits - 1) / 2);
  const uint64_t turns = loop.stats().iterations - before;
  // Each await: the turn that runs the completing callback, whose end
  // resumes the coroutine. (Two turns per await before.)
  EXPECT_GE(turns, static_cast<uint64_t>(kAwaits));
  EXPECT_LE(turns, static_cast<uint64_t>(kAwaits) + 2);
}

TEST(ResumeTurnTest, CallbacksQueuedBeforeTheCompletionRunBeforeTheResume) {
  IOLoop loop;
  std::string order;
  loop.run_sync([&]() -> Future<void> {
    Future<int> f;  // the loop's: made while it runs
    loop.add_callback([&] {
      order += 'a';
      loop.add_callback([&] { order += 'b'; });  // queued first: runs first
      f.set_result(1);
      loop.add_callback([&] { order += 'd'; });
    });
    co_await f;
    order += 'R';
    co_await sleep(absl::ZeroDuration());  // let 'd' run
  });
  EXPECT_EQ(order, "abRd");
}

TEST(ResumeTurnTest, CallbacksQueuedAfterTheCompletionRunAfterTheResume) {
  IOLoop loop;
  std::string order;
  uint64_t completed_in = 0;
  uint64_t resumed_in = 0;
  loop.run_sync([&]() -> Future<void> {
    Future<int> f;
    loop.add_callback([&] {
      order += 'a';
      const size_t queued = loop.stats().callbacks;
      f.set_result(1);
      completed_in = loop.stats().iterations;
      EXPECT_EQ(loop.stats().callbacks, queued + 1) << "the resume counts as queued";
      loop.add_callback([&] { order += 'd'; });
      loop.add_callback([&] { order += 'e'; });
    });
    co_await f;
    resumed_in = loop.stats().iterations;
    order += 'R';
    loop.add_callback([&] { order += 'f'; });  // behind d and e
    co_await sleep(absl::ZeroDuration());
    co_await sleep(absl::ZeroDuration());
  });
  EXPECT_EQ(order, "aRdef");
  EXPECT_EQ(resumed_in, completed_in) << "first in line: resumed at the end of the completing turn";
}

TEST(ResumeTurnTest, TwoCoroutinesCompletingEachOthersFuturesStillLetTheLoopTurn) {
  // A resumed at the end of a turn completes B's future, whose resume then
  // waits for the next turn: at most one resume per turn runs past the
  // turn's callbacks, so a ping-pong cannot keep the loop from its fds and
  // timers.
  IOLoop loop;
  loop.make_current();  // the futures below are the loop's
  constexpr int kRounds = 100;
  std::vector<Future<void>> to_a(kRounds), to_b(kRounds);
  int rounds_done = 0;
  int timer_fired_after_round = -1;
  auto a = [&]() -> Future<void> {
    for (int i = 0; i < kRounds; ++i) {
      co_await to_a[i];
      rounds_done = i + 1;
      if (i == 1) {
        loop.call_later(absl::ZeroDuration(), [&] { timer_fired_after_round = rounds_done; });
      }
      to_b[i].set_result();
    }
  };
  auto b = [&]() -> Future<void> {
    for (int i = 0; i < kRounds; ++i) {
      co_await to_b[i];
      if (i + 1 < kRounds) to_a[i + 1].set_result();
    }
  };
  const uint64_t before = loop.stats().iterations;
  loop.run_sync([&]() -> Future<void> {
    std::vector<Future<void>> both = {a(), b()};
    loop.add_callback([&] { to_a[0].set_result(); });
    co_await both;
  });
  EXPECT_EQ(rounds_done, kRounds);
  EXPECT_GE(loop.stats().iterations - before, static_cast<uint64_t>(kRounds));
  EXPECT_GE(timer_fired_after_round, 2);
  EXPECT_LE(timer_fired_after_round, 4) << "a due timer waited for the ping-pong to end";
}

TEST(ResumeTurnTest, AStopInTheCompletingTurnLeavesTheResumeForTheNextRun) {
  IOLoop loop;
  loop.make_current();
  Future<int> f;
  bool resumed = false;
  auto wait = [&]() -> Future<void> {  // outlives its coroutine
    co_await f;
    resumed = true;
  };
  Future<void> waiter = wait();
  loop.add_callback([&] {
    f.set_result(1);
    loop.stop();
  });
  loop.start();
  EXPECT_FALSE(resumed) << "stop() ends the loop after the turn that called it";
  loop.run_sync([&] { return std::move(waiter); });
  EXPECT_TRUE(resumed);
}

// A coroutine awaiting f_, a future of loop_ (made while it is current):
// resumed, it appends 'R' to order_ and notes the loop's iteration.
class AwaitingCoroutineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.make_current();
    f_ = Future<int>();
    waiter_ = wait();
  }
  Future<void> wait() {
    co_await f_;
    order_ += 'R';
    resumed_in_ = loop_.stats().iterations;
  }
  void run_until_resumed() {
    loop_.run_sync([this] { return std::move(waiter_); });
  }
  IOLoop loop_;
  Future<int> f_;
  Future<void> waiter_;
  std::string order_;
  uint64_t resumed_in_ = 0;
};

using ResumeKeptByAStopTest = AwaitingCoroutineTest;

TEST_F(ResumeKeptByAStopTest, RunsBeforeWhatWasQueuedAfterIt) {
  // The completing callback queues more behind the resume, then stops the
  // loop: the next run starts with the resume, then the rest, in order.
  loop_.add_callback([this] { order_ += 'a'; });
  loop_.add_callback([this] {
    order_ += 'b';
    f_.set_result(1);
    loop_.add_callback([this] { order_ += 'c'; });
    loop_.add_callback([this] { order_ += 'd'; });
    loop_.stop();
  });
  loop_.start();
  EXPECT_EQ(order_, "ab");
  EXPECT_EQ(loop_.stats().callbacks, 3u) << "the resume, c and d, queued";
  run_until_resumed();
  EXPECT_EQ(order_, "abRcd");
}

TEST_F(ResumeKeptByAStopTest, GoesAheadOfAFullBlockOfCallbacks) {
  // The turn's callbacks fill the loop's first block of tasks exactly
  // (256), so what the last one queues starts a block of its own: the
  // resume kept by the stop still runs first.
  constexpr int kBlock = 256;
  int ran = 0;
  for (int i = 0; i < kBlock - 1; ++i) loop_.add_callback([&] { ++ran; });
  loop_.add_callback([&] {
    ++ran;
    f_.set_result(1);
    loop_.add_callback([this] { order_ += 'c'; });
    loop_.stop();
  });
  loop_.start();
  EXPECT_EQ(ran, kBlock);
  EXPECT_EQ(order_, "");
  EXPECT_EQ(loop_.stats().callbacks, 2u);
  run_until_resumed();
  EXPECT_EQ(order_, "Rc");
}

using ResumeFromAnotherThreadsPostTest = AwaitingCoroutineTest;

TEST_F(ResumeFromAnotherThreadsPostTest, WaitsBehindWhatTheTurnQueued) {
  // A closure another thread posted completes the future in the same turn
  // as a callback of ours that queued 'x' before it: the resume runs after
  // 'x', on the next turn.
  loop_.add_callback([this] {
    order_ += 'a';
    loop_.add_callback([this] { order_ += 'x'; });
  });
  std::thread([this] {
    loop_.add_callback([this] {
      order_ += 'r';
      f_.set_result(1);
    });
  }).join();
  run_until_resumed();
  EXPECT_EQ(order_, "arxR");
}

TEST_F(ResumeFromAnotherThreadsPostTest, RunsInTheTurnThatTookThePost) {
  uint64_t completed_in = 0;
  std::thread([&] {
    loop_.add_callback([&] {
      f_.set_result(1);
      completed_in = loop_.stats().iterations;
    });
  }).join();
  run_until_resumed();
  EXPECT_NE(completed_in, 0u);
  EXPECT_EQ(resumed_in_, completed_in);
}

// Each test below completes a future outside the loop's callback phase
// (a timer, an fd handler, between runs, a resume at the end of a turn),
// between posting 'X' and 'Y', right after a turn whose one callback left
// the queue where 'X' now sits plus one: the resume still goes in line
// between them, not to the end of the next turn.
class ResumeOutsideTheCallbackPhaseTest : public AwaitingCoroutineTest {
 protected:
  void post_complete_post() {
    loop_.add_callback([this] { order_ += 'X'; });
    f_.set_result(1);
    loop_.add_callback([this] {
      order_ += 'Y';
      loop_.stop();
    });
  }
};

TEST_F(ResumeOutsideTheCallbackPhaseTest, InATimer) {
  loop_.add_callback([this] {
    order_ += 'a';
    loop_.call_later(absl::ZeroDuration(), [this] { post_complete_post(); });
  });
  loop_.start();
  EXPECT_EQ(order_, "aXRY");
}

TEST_F(ResumeOutsideTheCallbackPhaseTest, InAnFdHandler) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  loop_.add_callback([&] {
    order_ += 'a';
    ASSERT_EQ(::write(fds[1], "!", 1), 1);
    loop_.add_handler(fds[0], [&](int, uint32_t) {
      loop_.remove_handler(fds[0]);
      post_complete_post();
    }, IOLoop::READ);
  });
  loop_.start();
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(order_, "aXRY");
}

TEST_F(ResumeOutsideTheCallbackPhaseTest, BetweenRuns) {
  loop_.add_callback([this] {
    order_ += 'a';
    loop_.stop();
  });
  loop_.start();
  post_complete_post();
  loop_.start();
  EXPECT_EQ(order_, "aXRY");
}

TEST_F(ResumeOutsideTheCallbackPhaseTest, InAResumeRunAtTheEndOfATurn) {
  Future<int> first;
  auto resumed_first = [&]() -> Future<void> {
    co_await first;
    order_ += 'a';
    post_complete_post();
  };
  Future<void> other = resumed_first();
  loop_.add_callback([&] { first.set_result(1); });  // alone in its turn
  loop_.start();
  EXPECT_EQ(order_, "aXRY");
}

TEST(ResumeTurnTest, AnOffloadedResultResumesItsAwaiterInTheTurnThatDeliversIt) {
  IOLoop loop;
  ThreadPoolExecutor pool(1);
  int total = 0;
  loop.run_sync([&]() -> Future<void> {
    for (int i = 0; i < 20; ++i) total += co_await pool.submit([i] { return i; });
  });
  EXPECT_EQ(total, 190);
}

}  // namespace
}  // namespace eddy
