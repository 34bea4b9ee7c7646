// The inbox lets a stream of cross-thread posts build a batch before the
// loop takes it (loop/io_loop.cc, Inbox::take_limit): a loop that took two
// or more posts on its last turn, with no gap since, may wait a moment for
// more. These tests drive the loop from stream to lone posts and back, and
// mix in the loop's own callbacks and stop(): nothing may be lost, run
// twice or reordered per posting thread, and a lone post after a stream
// must still run (a post left waiting for company hangs the test). They are
// meant for tsan too.
#include <atomic>
#include <thread>
#include <vector>

#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

// Spins (yielding) until `flag` is set.
void await_flag(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::yield();
}

TEST(InboxBatchingTest, StreamsAndLonePostsAlternateWithoutLossOrReordering) {
  // Each round: a stream of posts (the loop takes them in batches), a wait
  // until the loop ran them all, then lone posts, each waited for before
  // the next: the first of them comes right after a stream.
  constexpr int kRounds = 40;
  constexpr int kStream = 2000;
  constexpr int kLone = 20;
  IOLoop loop;
  int next = 0;  // loop thread only (the loop runs on this thread)
  bool in_order = true;
  int sent = 0;  // poster only; read after the join
  std::thread poster([&] {
    for (int round = 0; round < kRounds; ++round) {
      std::atomic<bool> stream_done{false};
      for (int i = 0; i < kStream; ++i) {
        const bool last = i == kStream - 1;
        ASSERT_TRUE(loop.add_callback([&, value = sent++, last] {
          if (next != value) in_order = false;
          next = value + 1;
          if (last) stream_done.store(true, std::memory_order_release);
        }));
      }
      await_flag(stream_done);
      for (int i = 0; i < kLone; ++i) {
        std::atomic<bool> ran{false};
        ASSERT_TRUE(loop.add_callback([&, value = sent++] {
          if (next != value) in_order = false;
          next = value + 1;
          ran.store(true, std::memory_order_release);
        }));
        await_flag(ran);
      }
    }
    loop.stop();
  });
  loop.start();
  poster.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(next, sent);
}

TEST(InboxBatchingTest, SeveralStreamingThreadsKeepTheirOrderWhileTheLoopQueuesItsOwnCallbacks) {
  // Some remote callbacks queue a callback of the loop's own (which turns
  // the batch wait off for the next turn); all of them must run, and each
  // poster's callbacks in its order.
  constexpr int kThreads = 3;
  constexpr int kPerThread = 30000;
  constexpr int kTotal = kThreads * kPerThread;
  IOLoop loop;
  std::vector<int> next(kThreads, 0);  // loop thread only
  int ran = 0;                         // loop thread only (this one)
  int own_queued = 0;                  // loop thread only
  int own_ran = 0;                     // loop thread only
  bool in_order = true;                // loop thread only
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(loop.add_callback([&, t, i] {
          if (next[t] != i) in_order = false;
          next[t] = i + 1;
          ++ran;
          if (i % 50 == 0) {
            ++own_queued;
            loop.add_callback([&] {
              ++own_ran;
              if (ran == kTotal && own_ran == own_queued) loop.stop();
            });
          } else if (ran == kTotal && own_ran == own_queued) {
            loop.stop();
          }
        }));
      }
    });
  }
  loop.start();  // on this thread, until the last callback stops it
  for (auto& p : posters) p.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(ran, kTotal);
  EXPECT_EQ(own_ran, own_queued);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread) << "thread " << t;
}

TEST(InboxBatchingTest, AStopInTheMiddleOfAStreamLeavesTheRestForTheNextRunInOrder) {
  // The loop stops while a stream is arriving; what it did not take runs
  // when it starts again, in order, each closure once.
  constexpr int kPosts = 50000;
  IOLoop loop;
  int next = 0;  // loop thread only (the loop runs on this thread)
  bool in_order = true;
  std::thread poster([&] {
    for (int i = 0; i < kPosts; ++i) {
      ASSERT_TRUE(loop.add_callback([&, i] {
        if (next != i) in_order = false;
        next = i + 1;
        if (i == kPosts / 2 || i == kPosts - 1) loop.stop();
      }));
    }
  });
  loop.start();  // returns after the turn that ran kPosts / 2
  EXPECT_GT(next, kPosts / 2);
  if (next != kPosts) loop.start();  // the rest, up to the last post
  poster.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(next, kPosts);
}

}  // namespace
}  // namespace eddy
