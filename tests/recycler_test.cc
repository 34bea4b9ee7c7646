// The recycled memory behind task records and future states
// (futures/internal/recycler.h): blocks come back to the thread that needs
// them, across threads and thread exits, within the stated bounds.
#include "eddy/futures/internal/recycler.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace eddy::internal {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kBypassed = true;  // ASan builds hand every block to operator new
#else
constexpr bool kBypassed = false;
#endif

TEST(RecyclerTest, BlocksHoldTheirSizeAndAreReusedOnTheSameThread) {
  std::vector<void*> blocks;
  for (size_t size : {1u, 8u, 31u, 32u, 33u, 200u, 511u, 512u}) {
    void* p = recycled_allocate(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t), 0u) << size;
    std::memset(p, 0xab, size);  // the whole size is usable
    recycled_deallocate(p, size);
    void* q = recycled_allocate(size);
    if (!kBypassed) {
      EXPECT_EQ(q, p) << "a freed block is the next one handed out, size " << size;
    }
    blocks.push_back(q);
    std::memset(q, 0xcd, size);
    recycled_deallocate(q, size);
  }
}

TEST(RecyclerTest, LargeBlocksGoToOperatorNew) {
  void* p = recycled_allocate(kMaxRecycled + 1);
  std::memset(p, 0, kMaxRecycled + 1);
  recycled_deallocate(p, kMaxRecycled + 1);
  recycled_deallocate(nullptr, 64);  // a no-op, as delete of nullptr
}

// The producer/worker pattern of an executor: one thread allocates, another
// frees. Blocks flow back through the central list, so the steady state
// takes (almost) nothing fresh from operator new.
TEST(RecyclerTest, BlocksFreedOnAnotherThreadComeBack) {
  if (kBypassed) GTEST_SKIP() << "ASan build: recycling is off";
  constexpr size_t kSize = 96;
  constexpr int kBatch = 2000;
  auto round = [] {
    std::vector<void*> made;
    for (int i = 0; i < kBatch; ++i) made.push_back(recycled_allocate(kSize));
    std::thread freer([&] {
      for (void* p : made) recycled_deallocate(p, kSize);
    });
    freer.join();  // the freeing thread exits: its cache goes central
  };
  round();  // warms the lists
  const uint64_t fresh_before = recycler_stats().fresh;
  for (int i = 0; i < 10; ++i) round();
  const uint64_t fresh = recycler_stats().fresh - fresh_before;
  EXPECT_LT(fresh, uint64_t{kBatch}) << "ten rounds of " << kBatch
                                      << " blocks should mostly reuse memory";
}

// Many threads allocate and free concurrently, some handing blocks to
// others: every block is distinct while live and keeps what was written.
TEST(RecyclerTest, ConcurrentUseNeverHandsOutALiveBlockTwice) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<void*>> handed(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &handed] {
      std::vector<uint64_t*> live;
      for (int i = 0; i < kPerThread; ++i) {
        const size_t size = 32 + 32 * (i % 4);
        auto* p = static_cast<uint64_t*>(recycled_allocate(size));
        p[0] = (uint64_t{static_cast<uint32_t>(t)} << 32) | static_cast<uint32_t>(i);
        p[1] = size;
        live.push_back(p);
        if (live.size() > 64) {
          uint64_t* old = live.front();
          live.erase(live.begin());
          ASSERT_EQ(old[0] >> 32, static_cast<uint64_t>(t)) << "a live block was reused";
          recycled_deallocate(old, old[1]);
        }
      }
      // Leave some for the main thread to free (a cross-thread free).
      for (uint64_t* p : live) handed[t].push_back(p);
    });
  }
  for (auto& th : threads) th.join();
  std::set<void*> distinct;
  for (auto& v : handed) {
    for (void* p : v) {
      EXPECT_TRUE(distinct.insert(p).second);
      recycled_deallocate(p, static_cast<uint64_t*>(p)[1]);
    }
  }
}

TEST(RecyclerTest, CentralListStaysBounded) {
  if (kBypassed) GTEST_SKIP() << "ASan build: recycling is off";
  constexpr size_t kSize = 480;
  constexpr int kBlocks = 20000;  // ~9.6 MB, more than the central bound
  std::vector<void*> made;
  for (int i = 0; i < kBlocks; ++i) made.push_back(recycled_allocate(kSize));
  const uint64_t released_before = recycler_stats().released;
  std::thread freer([&] {
    for (void* p : made) recycled_deallocate(p, kSize);
  });
  freer.join();
  EXPECT_LE(recycler_stats().central_bytes, uint64_t{16} << 20);
  EXPECT_GT(recycler_stats().released, released_before)
      << "blocks beyond the bound go back to operator delete";
}

// A burst beyond the bound frees straight to operator delete while the
// central list is full; once a thread takes a batch from it, there is room
// again and freed blocks are kept for reuse, not released.
TEST(RecyclerTest, AfterABurstBeyondTheBoundFreedBlocksAreKeptAgain) {
  if (kBypassed) GTEST_SKIP() << "ASan build: recycling is off";
  constexpr size_t kSize = 384;
  constexpr int kBurst = 20000;  // ~7.7 MB, more than the central bound
  constexpr int kLater = 1000;
  std::vector<void*> burst;
  for (int i = 0; i < kBurst; ++i) burst.push_back(recycled_allocate(kSize));
  const uint64_t released_before_burst = recycler_stats().released;
  std::thread([&] {
    for (void* p : burst) recycled_deallocate(p, kSize);
  }).join();
  ASSERT_GT(recycler_stats().released, released_before_burst);
  const uint64_t central_full = recycler_stats().central_bytes;

  // This thread's list for the class is empty: these come from the central list.
  std::vector<void*> later;
  for (int i = 0; i < kLater; ++i) later.push_back(recycled_allocate(kSize));
  ASSERT_LT(recycler_stats().central_bytes, central_full);

  const uint64_t released_before_later = recycler_stats().released;
  std::thread([&] {
    for (void* p : later) recycled_deallocate(p, kSize);
  }).join();
  EXPECT_EQ(recycler_stats().released, released_before_later)
      << "with room on the central list, freed blocks are kept, not released";
}

struct Widget : Recycled {
  explicit Widget(int v) : value(v) {}
  virtual ~Widget() = default;
  int value;
};
struct BigWidget : Widget {
  explicit BigWidget(int v) : Widget(v) { std::memset(payload, v, sizeof payload); }
  char payload[300];
};
struct alignas(64) AlignedWidget : Recycled {
  int value = 7;
};

TEST(RecyclerTest, RecycledBaseServesDerivedAndOverAlignedTypes) {
  std::unique_ptr<Widget> a = std::make_unique<BigWidget>(3);
  std::unique_ptr<Widget> b = std::make_unique<Widget>(4);
  EXPECT_EQ(a->value, 3);
  EXPECT_EQ(static_cast<BigWidget*>(a.get())->payload[299], 3);
  a.reset();  // sized delete through the virtual destructor
  b.reset();
  auto c = std::make_unique<AlignedWidget>();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.get()) % 64, 0u);
  EXPECT_EQ(c->value, 7);
}

TEST(RecyclerTest, AllocateSharedWorks) {
  auto p = std::allocate_shared<std::vector<int>>(RecyclingAllocator<std::vector<int>>(), 3, 9);
  EXPECT_EQ(p->size(), 3u);
  std::shared_ptr<std::vector<int>> q = p;
  std::thread([q] { EXPECT_EQ((*q)[2], 9); }).join();
  p.reset();
  q.reset();
}

}  // namespace
}  // namespace eddy::internal
