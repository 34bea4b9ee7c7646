// Where coroutine frames live: an eddy coroutine's frame comes from the
// per-thread recycler (futures/internal/recycler.h), so a coroutine that
// calls another one in a loop reuses the frame the previous call freed
// instead of allocating one per call. Large frames, and frames that finish
// after their loop or on another thread, still work.
#include <array>
#include <cstdint>
#include <thread>

#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "gtest/gtest.h"
#include "tests/count_news.h"
#include "tests/manual_scheduler.h"


namespace eddy {
namespace {

using testing::ManualScheduler;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycling = false;  // ASan builds give every frame to operator new
#else
constexpr bool kRecycling = true;
#endif

Future<int64_t> leaf(int64_t v) { co_return v; }

Future<int64_t> caller(int64_t n) {
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += co_await leaf(i);
  co_return sum;
}

TEST(CoroutineFrameTest, CallingASubCoroutineInALoopAllocatesNothingPerCall) {
  if (!kRecycling) GTEST_SKIP() << "ASan build: frames go to operator new";
  ManualScheduler loop;
  // Warm-up: the recycler's lists for the frame and state sizes exist.
  ASSERT_EQ(caller(100).result(), 4950);
  constexpr int64_t kCalls = 10'000;
  const int64_t before = testing::thread_news();
  Future<int64_t> f = caller(kCalls);
  const int64_t news = testing::thread_news() - before;
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), kCalls * (kCalls - 1) / 2);
  // The outer frame and its state may be fresh; the 10,000 inner frames
  // and states must not be.
  EXPECT_LE(news, 4) << "operator new calls for " << kCalls << " sub-coroutine calls";
}

// A frame larger than the recycler's biggest class takes the plain heap.
Future<int64_t> big_frame(int64_t seed) {
  std::array<int64_t, 512> scratch{};  // 4 KB of locals
  for (size_t i = 0; i < scratch.size(); ++i) scratch[i] = seed + int64_t(i);
  co_await make_ready_future<int>(0);
  int64_t sum = 0;
  for (int64_t v : scratch) sum += v;
  co_return sum;
}

TEST(CoroutineFrameTest, LargeFramesKeepTheirLocals) {
  ManualScheduler loop;
  for (int64_t seed = 0; seed < 50; ++seed) {
    EXPECT_EQ(big_frame(seed).result(), 512 * seed + 511 * 512 / 2);
  }
}

// A frame made on one thread and finished (so freed) on another: the
// coroutine runs with no loop current, and awaits a concurrent future that
// a second thread completes, which resumes and ends it there.
Future<int64_t> across(ConcurrentFuture<int64_t> f) {
  int64_t v = co_await f;
  co_return v + 1;
}

TEST(CoroutineFrameTest, FramesFinishedOnAnotherThreadAreFreedThere) {
  constexpr int kRounds = 2'000;
  for (int r = 0; r < kRounds; ++r) {
    ConcurrentFuture<int64_t> source;
    Future<int64_t> result = across(source);
    std::thread completer([&source, r] { source.set_result(r); });
    completer.join();
    ASSERT_TRUE(result.done());
    ASSERT_EQ(result.result(), r + 1);
  }
}

}  // namespace
}  // namespace eddy
