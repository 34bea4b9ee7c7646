// ConcurrentFuture's shared state: handles count references to it (copies,
// moves, assignments), blocked waiters are linked into it and unlinked when
// they time out, and further callbacks are kept behind the first.
#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "gtest/gtest.h"
#include "tests/live_count.h"

namespace eddy {
namespace {

using testing::Tracked;

// Every submitted task builds one: what a producer writes per task. (Where
// SourceLocation is one pointer, as under g++.)
static_assert(sizeof(SourceLocation) != sizeof(void*) ||
                  sizeof(internal::ConcurrentState<int64_t>) <= 96,
              "ConcurrentState<int64_t> grew past 96 bytes");

TEST(ConcurrentStateTest, StateLivesUntilTheLastHandleGoes) {
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    auto a = std::make_unique<ConcurrentFuture<Tracked>>();
    a->set_result(Tracked(5));
    ASSERT_EQ(Tracked::live.load(), 1);

    ConcurrentFuture<Tracked> b = *a;              // copy
    ConcurrentFuture<Tracked> c;                   // a second state...
    c = b;                                         // ...dropped by copy-assignment
    ConcurrentFuture<Tracked>& alias = c;
    c = alias;                                     // self-assignment keeps it
    ConcurrentFuture<Tracked> d = std::move(b);    // move
    ConcurrentFuture<Tracked> e;
    e = std::move(d);                              // move-assignment drops e's own state
    EXPECT_TRUE(*a == c);
    EXPECT_TRUE(c == e);

    a.reset();
    EXPECT_EQ(Tracked::live.load(), 1) << "c and e still hold the state";
    EXPECT_EQ(c.result().v, 5);
    EXPECT_EQ(e.result().v, 5);
    c = ConcurrentFuture<Tracked>();               // c now holds a fresh state
    EXPECT_EQ(Tracked::live.load(), 1) << "e still holds it";
    EXPECT_FALSE(c.done());
  }
  EXPECT_EQ(Tracked::live.load(), 0) << "freed exactly once, with the last handle";
}

// Handles copied and dropped on several threads at once while the future
// completes: the state is freed once, after everybody saw the value.
TEST(ConcurrentStateTest, HandlesCopiedAndDroppedAcrossThreads) {
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> seen{0};
    {
      ConcurrentFuture<Tracked> f;
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([copy = f, &seen]() mutable {
          ConcurrentFuture<Tracked> mine = copy;
          copy = ConcurrentFuture<Tracked>();
          if (mine.result().v == 9) ++seen;
        });
      }
      std::thread completer([f]() mutable { f.set_result(Tracked(9)); });
      f = ConcurrentFuture<Tracked>();
      for (auto& t : threads) t.join();
      completer.join();
    }
    EXPECT_EQ(seen.load(), 4);
    ASSERT_EQ(Tracked::live.load(), 0);
  }
}

// Waiters that time out unlink themselves wherever they are in the list;
// the ones still linked wake when the future completes.
TEST(ConcurrentStateTest, TimedOutWaitersLeaveTheOthersLinked) {
  ConcurrentFuture<int> f;
  std::atomic<int> woke{0};
  std::vector<std::thread> blocked;
  for (int i = 0; i < 2; ++i) {
    blocked.emplace_back([&] {
      if (f.result() == 7) ++woke;
    });
  }
  std::atomic<int> timeouts{0};
  std::vector<std::thread> impatient;
  for (int i = 0; i < 2; ++i) {
    impatient.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        try {
          f.result(absl::Microseconds(200));
        } catch (const TimeoutError&) {
          ++timeouts;
        }
      }
    });
  }
  for (auto& t : impatient) t.join();
  EXPECT_EQ(timeouts.load(), 40) << "nobody completed the future meanwhile";
  EXPECT_EQ(woke.load(), 0);
  f.set_result(7);
  for (auto& t : blocked) t.join();
  EXPECT_EQ(woke.load(), 2);
  EXPECT_THROW(ConcurrentFuture<int>().result(absl::ZeroDuration()), TimeoutError);
}

// A timed wait racing the completion: it either times out (the future may
// be done by the time it reports that) or returns the value, and never
// hangs or touches a waiter that is gone, including when the completion
// takes the waiter list just as the wait times out.
TEST(ConcurrentStateTest, TimeoutRacingCompletion) {
  for (int i = 0; i < 2000; ++i) {
    ConcurrentFuture<int> f;
    std::thread completer([f]() mutable { f.set_result(1); });
    try {
      EXPECT_EQ(f.result(absl::Microseconds(i % 40)), 1);
    } catch (const TimeoutError&) {
    }
    completer.join();
    EXPECT_EQ(f.result(), 1);
  }
}

// Callbacks beyond the first run too, in registration order, once each;
// one added after completion runs inline, after the earlier ones.
TEST(ConcurrentStateTest, FurtherCallbacksRunInOrderOnce) {
  ConcurrentFuture<int> f;
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) f.add_done_callback([&order, i] { order.push_back(i); });
  std::thread completer([f]() mutable { f.set_result(3); });
  completer.join();
  f.add_done_callback([&order] { order.push_back(4); });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

// A state embedded in a larger object: handles count it as any state, and
// the last release, on whichever thread, asks the owner to free the whole
// object, once. The owner's own reference keeps it alive past the handles.
class Owner final : public internal::EmbeddedConcurrentState<Tracked> {
 public:
  static inline std::atomic<int> freed{0};
  Owner() : internal::EmbeddedConcurrentState<Tracked>(SourceLocation::current()) {}
  ConcurrentFuture<Tracked> own() { return internal::ConcurrentAccess::adopt<Tracked>(*this); }

 private:
  void free_block() noexcept override {
    ++freed;
    delete this;
  }
};

TEST(ConcurrentStateTest, EmbeddedStateFreesItsOwnerWithTheLastHandle) {
  for (int round = 0; round < 200; ++round) {
    Owner::freed = 0;
    ConcurrentFuture<Tracked> own = (new Owner)->own();
    ConcurrentFuture<Tracked> shared = internal::ConcurrentAccess::share_unpublished(own);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([copy = shared]() mutable {
        EXPECT_EQ(copy.result().v, 4);
        copy = ConcurrentFuture<Tracked>();
      });
    }
    shared = ConcurrentFuture<Tracked>();
    own.set_result(Tracked(4));
    own = ConcurrentFuture<Tracked>();
    for (auto& t : threads) t.join();
    EXPECT_EQ(Owner::freed.load(), 1);
    ASSERT_EQ(Tracked::live.load(), 0);
  }
  // A plain state still frees itself.
  { ConcurrentFuture<Tracked> plain; }
  EXPECT_EQ(Owner::freed.load(), 1);
}

}  // namespace
}  // namespace eddy
