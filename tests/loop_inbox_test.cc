// IOLoop's callback queues: the cross-thread inbox and the loop's own queue
// are chains of fixed-size blocks. Order across block boundaries, closing
// while other threads post, and the memory kept after a burst.
#include <atomic>
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

}  // namespace
}  // namespace eddy
