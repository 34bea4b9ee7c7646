// IOLoop's callback queues: the cross-thread inbox and the loop's own queue
// are chains of fixed-size blocks. Order across block boundaries, closing
// while other threads post, and the memory kept after a burst. The inbox is
// read by the loop without the posters' lock: the stress tests below are
// meant for tsan too.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

// Runs the loop until `done` holds (checked after each iteration).
template <class Pred>
void run_until(IOLoop& loop, Pred done) {
  Future<void> f;
  std::function<void()> check;
  check = [&] {
    if (done()) {
      f.set_result();
    } else {
      loop.add_callback([&] { check(); });
    }
  };
  loop.run_sync([&] {
    check();
    return f;
  });
}

// Counts its own destruction (moved-from instances do not count).
class Tracker {
 public:
  explicit Tracker(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  Tracker(Tracker&& o) noexcept : destroyed_(std::exchange(o.destroyed_, nullptr)) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;
  ~Tracker() {
    if (destroyed_ != nullptr) destroyed_->fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int>* destroyed_;
};

TEST(LoopInboxTest, PostsFromSeveralThreadsKeepPerThreadOrderAcrossManyBlocks) {
  // Enough posts per thread to fill many blocks, with the loop taking them
  // while they are being written.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  IOLoop loop;
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(loop.add_callback([&seen, &total, t, i] {
          seen[t].push_back(i);
          ++total;
        }));
      }
    });
  }
  run_until(loop, [&] { return total == kThreads * kPerThread; });
  for (auto& p : posters) p.join();
  loop.run_sync([] {});
  EXPECT_EQ(total, kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST(LoopInboxTest, SameThreadCallbacksRunInFifoOrderAcrossManyBlocks) {
  constexpr int kCount = 5000;
  IOLoop loop;
  std::vector<int> seen;
  for (int i = 0; i < kCount; ++i) loop.add_callback([&seen, i] { seen.push_back(i); });
  loop.run_sync([] {});
  ASSERT_EQ(seen.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(seen[i], i);
}

TEST(LoopInboxTest, EachCallbackIsDestroyedBeforeTheNextOneRuns) {
  IOLoop loop;
  std::atomic<int> destroyed{0};
  std::vector<int> destroyed_when_run;
  for (int i = 0; i < 600; ++i) {
    loop.add_callback([&destroyed_when_run, &destroyed, t = Tracker(&destroyed)] {
      destroyed_when_run.push_back(destroyed.load());
    });
  }
  loop.run_sync([] {});
  ASSERT_EQ(destroyed_when_run.size(), 600u);
  for (int i = 0; i < 600; ++i) ASSERT_EQ(destroyed_when_run[i], i);
  EXPECT_EQ(destroyed.load(), 600);
}

TEST(LoopInboxTest, CloseWhileOtherThreadsPostDestroysEveryClosureExactlyOnce) {
  constexpr int kThreads = 3;
  constexpr int kPerThread = 20000;
  std::atomic<int> destroyed{0};
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::atomic<int> ran{0};
  std::atomic<bool> go{false};
  auto loop = std::make_unique<IOLoop>();
  std::shared_ptr<RemoteScheduler> remote = loop->remote();
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        if (remote->post([&ran, t = Tracker(&destroyed)] { ran.fetch_add(1); })) {
          accepted.fetch_add(1);
        } else {
          refused.fetch_add(1);
        }
      }
    });
  }
  go.store(true);
  // Run some of what arrives, then close with posts still coming in.
  run_until(*loop, [&] { return ran.load() >= 1000; });
  loop->close();
  EXPECT_FALSE(remote->post([] {}));
  for (auto& p : posters) p.join();
  loop.reset();
  EXPECT_EQ(accepted.load() + refused.load(), kThreads * kPerThread);
  EXPECT_GE(ran.load(), 1000);
  EXPECT_LE(ran.load(), accepted.load());
  // Run, dropped at close, or refused: every closure destroyed once.
  EXPECT_EQ(destroyed.load(), kThreads * kPerThread);
}

TEST(LoopInboxTest, ClosureRefusedByAClosedLoopIsDestroyedWithoutTheInboxLock) {
  IOLoop loop;
  std::shared_ptr<RemoteScheduler> remote = loop.remote();
  loop.close();
  bool nested = true;
  struct PostsOnDestruction {
    std::shared_ptr<RemoteScheduler> remote;
    bool* nested;
    ~PostsOnDestruction() {
      if (remote) *nested = remote->post([] {});  // would deadlock if still locked
    }
  };
  std::thread other([&] {
    EXPECT_FALSE(remote->post([p = std::make_shared<PostsOnDestruction>(
                                   PostsOnDestruction{remote, &nested})] {}));
  });
  other.join();
  EXPECT_FALSE(nested);
}

TEST(LoopInboxTest, ABurstOfCrossThreadPostsDoesNotPinItsMemory) {
  constexpr int kBurst = 300000;  // ~10 MB of queued closures
  IOLoop loop;
  int ran = 0;
  std::thread poster([&] {
    for (int i = 0; i < kBurst; ++i) loop.add_callback([&ran] { ++ran; });
  });
  poster.join();  // all queued before the loop runs: one huge batch
  run_until(loop, [&] { return ran == kBurst; });
  // A few more turns hand the emptied blocks back and let them go.
  for (int i = 0; i < 3; ++i) loop.run_sync([] {});
  const IOLoop::Stats stats = loop.stats();
  EXPECT_GT(stats.retained_queue_bytes, 0u);  // some are kept for reuse...
  EXPECT_LT(stats.retained_queue_bytes, size_t{2} << 20);  // ...but not the burst's
}

TEST(LoopInboxTest, ABurstOfSameThreadCallbacksDoesNotPinItsMemory) {
  constexpr int kBurst = 300000;
  IOLoop loop;
  int ran = 0;
  for (int i = 0; i < kBurst; ++i) loop.add_callback([&ran] { ++ran; });
  loop.run_sync([] {});
  EXPECT_EQ(ran, kBurst);
  EXPECT_LT(loop.stats().retained_queue_bytes, size_t{2} << 20);
}

TEST(LoopInboxTest, StatsCountCallbacksAcrossBlocks) {
  IOLoop loop;
  for (int i = 0; i < 1000; ++i) loop.add_callback([] {});
  EXPECT_EQ(loop.stats().callbacks, 1000u);
  loop.run_sync([] {});
  EXPECT_EQ(loop.stats().callbacks, 0u);
}

// Counts its own destruction (moved-from instances do not count), and
// destructions on another thread than `expected`.
class ThreadTracker {
 public:
  ThreadTracker(std::atomic<int>* destroyed, std::atomic<int>* elsewhere, std::thread::id expected)
      : destroyed_(destroyed), elsewhere_(elsewhere), expected_(expected) {}
  ThreadTracker(ThreadTracker&& o) noexcept
      : destroyed_(std::exchange(o.destroyed_, nullptr)),
        elsewhere_(o.elsewhere_),
        expected_(o.expected_) {}
  ThreadTracker(const ThreadTracker&) = delete;
  ThreadTracker& operator=(const ThreadTracker&) = delete;
  ~ThreadTracker() {
    if (destroyed_ == nullptr) return;
    destroyed_->fetch_add(1, std::memory_order_relaxed);
    if (std::this_thread::get_id() != expected_) elsewhere_->fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int>* destroyed_;
  std::atomic<int>* elsewhere_;
  std::thread::id expected_;
};

TEST(LoopInboxTest, ManyProducersInBurstsRunEachCallbackOnceInOrderOnALoopThatSleeps) {
  // The loop runs on its own thread and goes to sleep whenever the posters
  // pause, so posts land on a busy loop, a spinning one and a sleeping one.
  // A lost wake-up hangs the test; a callback run twice, skipped or out of
  // order breaks the per-producer sequence.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  constexpr int kTotal = kThreads * kPerThread;
  IOLoop loop;
  std::vector<int> next(kThreads, 0);  // loop thread only
  int ran = 0;                         // loop thread only
  bool in_order = true;                // loop thread only
  std::atomic<int> destroyed{0};
  std::atomic<int> elsewhere{0};
  std::thread::id loop_thread;
  std::atomic<bool> loop_started{false};
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop_started.store(true, std::memory_order_release);
    loop.start();
  });
  while (!loop_started.load(std::memory_order_acquire)) std::this_thread::yield();
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(loop.add_callback(
            [&, t, i, tracker = ThreadTracker(&destroyed, &elsewhere, loop_thread)] {
              if (next[t] != i) in_order = false;
              next[t] = i + 1;
              if (++ran == kTotal) loop.stop();
            }));
        // Bursts of varying length, then a pause long enough for the loop
        // to drain the inbox and (at times) fall asleep.
        if (i % (97 + 31 * t) == 0) std::this_thread::sleep_for(std::chrono::microseconds(i % 200));
      }
    });
  }
  for (auto& p : posters) p.join();
  runner.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(ran, kTotal);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], kPerThread) << "thread " << t;
  EXPECT_EQ(destroyed.load(), kTotal);
  EXPECT_EQ(elsewhere.load(), 0);  // every closure died on the loop's thread
}

TEST(LoopInboxTest, APostToASleepingLoopIsNeverLost) {
  // Ping-pong: each round posts one callback and waits for it to run; the
  // pauses between rounds let the loop stop spinning and sleep in epoll.
  // A lost wake-up hangs the test.
  IOLoop loop;
  std::thread runner([&] { loop.start(); });
  for (int round = 0; round < 2000; ++round) {
    std::atomic<bool> done{false};
    ASSERT_TRUE(loop.add_callback([&done] { done.store(true, std::memory_order_release); }));
    while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
    if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::microseconds(round % 300));
  }
  loop.stop();
  runner.join();
}

TEST(LoopInboxTest, TheCreatorsPostsDuringAHandOffAllRunInOrder) {
  // Tornado's way to run a loop in the background: create it here, start it
  // on another thread, and go on posting from here. Our first posts take the
  // owner's unlocked path while the runner takes the loop over; the runner
  // must wait for such a post, and the later ones must go through the
  // inbox. A post lost, run twice or out of order fails; a race on the
  // loop's own queue is reported by tsan.
  for (int round = 0; round < 200; ++round) {
    IOLoop loop;
    std::vector<int> seen;  // loop thread only
    constexpr int kPosts = 300;
    std::thread runner([&] { loop.start(); });
    for (int i = 0; i < kPosts; ++i) {
      ASSERT_TRUE(loop.add_callback([&seen, i] { seen.push_back(i); }));
    }
    loop.add_callback([&loop] { loop.stop(); });
    runner.join();
    ASSERT_EQ(seen.size(), static_cast<size_t>(kPosts)) << "round " << round;
    for (int i = 0; i < kPosts; ++i) ASSERT_EQ(seen[i], i) << "round " << round;
  }
}

TEST(LoopInboxTest, AStopFromTheCreatorDuringAHandOffIsNeverLost) {
  // stop() wakes a sleeping loop only when called from another thread: a
  // creator that still took itself for the owner would not wake a runner
  // that had just gone to sleep. A lost stop hangs the test.
  for (int round = 0; round < 200; ++round) {
    IOLoop loop;
    std::thread runner([&] { loop.start(); });
    if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::microseconds(round));
    loop.stop();
    runner.join();
  }
}

TEST(LoopInboxTest, PostsResumeAfterTheLoopRanExactlyUpToABlockBoundary) {
  // The inbox's blocks hold 256 closures: runs that end exactly at a block's
  // end leave the loop on a full block with no successor yet.
  IOLoop loop;
  std::shared_ptr<RemoteScheduler> remote = loop.remote();
  std::vector<int> seen;
  int expected = 0;
  for (int batch : {256, 1, 255, 512, 256, 3, 253, 257}) {
    for (int i = 0; i < batch; ++i) {
      const int value = expected + i;
      ASSERT_TRUE(remote->post([&seen, value] { seen.push_back(value); }));
    }
    expected += batch;
    run_until(loop, [&] { return static_cast<int>(seen.size()) == expected; });
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(expected));
  for (int i = 0; i < expected; ++i) ASSERT_EQ(seen[i], i);
}

TEST(LoopInboxTest, CloseDestroysQueuedCrossThreadClosuresOnTheClosingThread) {
  // Some closures ran (the loop is part-way into a block), more are queued
  // across block boundaries when the loop is closed.
  std::atomic<int> destroyed{0};
  std::atomic<int> elsewhere{0};
  int ran = 0;
  IOLoop loop;
  const std::thread::id me = std::this_thread::get_id();
  auto post_from_another_thread = [&](int n) {
    std::thread poster([&] {
      for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(loop.add_callback(
            [&ran, tracker = ThreadTracker(&destroyed, &elsewhere, me)] { ++ran; }));
      }
    });
    poster.join();
  };
  post_from_another_thread(100);
  run_until(loop, [&] { return ran == 100; });
  post_from_another_thread(600);
  EXPECT_EQ(destroyed.load(), 100);
  loop.close();
  EXPECT_EQ(ran, 100);
  EXPECT_EQ(destroyed.load(), 700);
  EXPECT_EQ(elsewhere.load(), 0);
  EXPECT_FALSE(loop.add_callback([] {}));
}

TEST(LoopInboxTest, AThreadThatNeverStopsPostingDoesNotStarveTimers) {
  // Each callback is slower than a post, so a loop that ran the inbox until
  // it found it empty would never get back to its timers.
  IOLoop loop;
  std::atomic<bool> stop_posting{false};
  std::thread poster([&] {
    while (!stop_posting.load(std::memory_order_relaxed)) {
      loop.add_callback([] {
        volatile int sink = 0;
        for (int i = 0; i < 2000; ++i) sink = sink + i;
      });
    }
  });
  bool fired = loop.run_sync([&] {
    Future<bool> f;
    loop.call_later(absl::Milliseconds(1), [f]() mutable { f.set_result(true); });
    return f;
  });
  stop_posting.store(true, std::memory_order_relaxed);
  poster.join();
  EXPECT_TRUE(fired);
}

TEST(LoopInboxTest, MemoryIsReleasedAfterABurstTheLoopRunsWhileItArrives) {
  constexpr int kBurst = 300000;
  IOLoop loop;
  std::atomic<bool> posted{false};
  int ran = 0;
  std::thread poster([&] {
    for (int i = 0; i < kBurst; ++i) loop.add_callback([&ran] { ++ran; });
    posted.store(true);
  });
  run_until(loop, [&] { return posted.load() && ran == kBurst; });
  poster.join();
  for (int i = 0; i < 3; ++i) loop.run_sync([] {});
  EXPECT_LT(loop.stats().retained_queue_bytes, size_t{2} << 20);
}

}  // namespace
}  // namespace eddy
