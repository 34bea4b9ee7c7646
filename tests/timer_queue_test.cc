// The loop's timer queue (loop/internal/timer_queue.h) on its own: heap
// order against a reference model, eager removal, stale ids, reentrant
// destructors; and sleep(), whose cancellation removes its timer.
#include "eddy/loop/internal/timer_queue.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/time.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

using internal::TimerQueue;

MonotonicTime at(int64_t ns) { return MonotonicTime::from_nanoseconds(ns); }

// Runs `fn` when destroyed.
class OnDestroy {
 public:
  explicit OnDestroy(absl::AnyInvocable<void()> fn) : fn_(std::move(fn)) {}
  OnDestroy(OnDestroy&& o) noexcept : fn_(std::move(o.fn_)), armed_(std::exchange(o.armed_, false)) {}
  OnDestroy(const OnDestroy&) = delete;
  OnDestroy& operator=(const OnDestroy&) = delete;
  ~OnDestroy() {
    if (armed_) fn_();
  }

 private:
  absl::AnyInvocable<void()> fn_;
  bool armed_ = true;
};

// Pops every timer due at `now` (phase limit: what exists now) and runs it.
int fire_due(TimerQueue& q, int64_t now) {
  const uint64_t limit = q.next_seq();
  absl::AnyInvocable<void()> fn;
  int n = 0;
  while (q.pop_due(at(now), limit, &fn)) {
    fn();
    fn = nullptr;
    ++n;
  }
  return n;
}

TEST(TimerQueueTest, EmptyQueue) {
  TimerQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.storage_empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.next_deadline(), MonotonicTime::infinite_future());
  absl::AnyInvocable<void()> fn;
  EXPECT_FALSE(q.pop_due(at(INT64_MAX / 2), q.next_seq(), &fn));
  EXPECT_FALSE(q.remove(TimerQueue::Id{}));
  EXPECT_FALSE(q.remove(TimerQueue::Id{7, 3}));
}

// Random adds, removals (of pending, fired, removed and never-issued ids)
// and pops, checked step by step against an ordered map of
// (deadline, seq). Deadlines come from a small range, so ties (ordered by
// scheduling) are frequent.
TEST(TimerQueueTest, MatchesAReferenceModelUnderRandomOperations) {
  for (uint32_t seed : {1u, 2u, 3u, 42u, 20221122u}) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    TimerQueue q;
    std::map<std::pair<int64_t, uint64_t>, TimerQueue::Id> model;
    std::vector<TimerQueue::Id> issued;  // every id ever returned
    uint64_t last_fired = 0;             // the seq of the timer that ran last
    int64_t now = 0;
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {
        const int64_t deadline = now + static_cast<int64_t>(rng() % 64);
        auto seq_cell = std::make_shared<uint64_t>(0);
        TimerQueue::Id id =
            q.add(at(deadline), [seq_cell, &last_fired] { last_fired = *seq_cell; });
        *seq_cell = id.seq;
        ASSERT_NE(id.seq, 0u);
        model.emplace(std::make_pair(deadline, id.seq), id);
        issued.push_back(id);
      } else if (op < 8) {
        if (issued.empty()) continue;
        TimerQueue::Id id = issued[rng() % issued.size()];
        if (rng() % 8 == 0) id.seq += 1000000;  // never issued
        bool pending = false;
        for (auto it = model.begin(); it != model.end(); ++it) {
          if (it->second.seq == id.seq && it->second.slot == id.slot) {
            model.erase(it);
            pending = true;
            break;
          }
        }
        ASSERT_EQ(q.remove(id), pending);
      } else {
        now += static_cast<int64_t>(rng() % 16);
        // Sometimes a limit below next_seq(): only older timers may fire.
        uint64_t limit = q.next_seq();
        if (rng() % 4 == 0 && limit > 8) limit -= rng() % 8;
        absl::AnyInvocable<void()> fn;
        for (;;) {
          const bool expect = !model.empty() && model.begin()->first.first <= now &&
                              model.begin()->first.second < limit;
          const bool popped = q.pop_due(at(now), limit, &fn);
          ASSERT_EQ(popped, expect);
          if (!popped) break;
          fn();
          fn = nullptr;
          ASSERT_EQ(last_fired, model.begin()->first.second);
          model.erase(model.begin());
        }
      }
      ASSERT_EQ(q.size(), model.size());
      ASSERT_EQ(q.heap_entries(), model.size());
      ASSERT_EQ(q.empty(), model.empty());
      ASSERT_EQ(q.next_deadline(), model.empty() ? MonotonicTime::infinite_future()
                                                 : at(model.begin()->first.first));
    }
    // Drain: everything left fires in (deadline, seq) order.
    absl::AnyInvocable<void()> fn;
    while (q.pop_due(at(INT64_MAX / 2), q.next_seq(), &fn)) {
      fn();
      fn = nullptr;
      ASSERT_FALSE(model.empty());
      ASSERT_EQ(last_fired, model.begin()->first.second);
      model.erase(model.begin());
    }
    EXPECT_TRUE(model.empty());
    EXPECT_TRUE(q.storage_empty());
  }
}

// Removing the earliest, the most recently added (the heap's last entry)
// and one in the middle leaves exactly the others, in order.
TEST(TimerQueueTest, RemovingTheTopTheLastOrAMiddleEntry) {
  constexpr int kTimers = 200;
  for (int victim : {0, kTimers - 1, kTimers / 2, 5, 17}) {
    SCOPED_TRACE(victim);
    TimerQueue q;
    std::vector<int> order;
    std::vector<TimerQueue::Id> ids;
    // Deadlines in a scrambled order so the heap is not trivially sorted.
    for (int i = 0; i < kTimers; ++i) {
      const int64_t deadline = (i * 37) % kTimers;
      ids.push_back(q.add(at(deadline), [&order, deadline] { order.push_back(int(deadline)); }));
    }
    int victim_index = 0;
    for (int i = 0; i < kTimers; ++i) {
      if ((i * 37) % kTimers == victim) victim_index = i;
    }
    EXPECT_TRUE(q.remove(ids[victim_index]));
    EXPECT_FALSE(q.remove(ids[victim_index]));
    EXPECT_EQ(q.size(), size_t{kTimers - 1});
    EXPECT_EQ(q.next_deadline(), at(victim == 0 ? 1 : 0));
    EXPECT_EQ(fire_due(q, kTimers), kTimers - 1);
    std::vector<int> expected;
    for (int d = 0; d < kTimers; ++d) {
      if (d != victim) expected.push_back(d);
    }
    EXPECT_EQ(order, expected);
    EXPECT_TRUE(q.storage_empty());
  }
}

TEST(TimerQueueTest, RemovingEveryOtherTimerKeepsOnlyTheRest) {
  TimerQueue q;
  constexpr int kTimers = 10000;
  std::vector<TimerQueue::Id> ids;
  std::vector<int> order;
  std::mt19937 rng(7);
  std::vector<int64_t> deadlines(kTimers);
  for (int i = 0; i < kTimers; ++i) deadlines[i] = i;
  std::shuffle(deadlines.begin(), deadlines.end(), rng);
  for (int i = 0; i < kTimers; ++i) {
    const int64_t d = deadlines[i];
    ids.push_back(q.add(at(d), [&order, d] { order.push_back(int(d)); }));
  }
  for (int i = 1; i < kTimers; i += 2) EXPECT_TRUE(q.remove(ids[i]));
  // Eager: the heap holds the pending timers only.
  EXPECT_EQ(q.size(), size_t{kTimers / 2});
  EXPECT_EQ(q.heap_entries(), size_t{kTimers / 2});
  EXPECT_EQ(fire_due(q, kTimers), kTimers / 2);
  std::vector<int> expected;
  for (int i = 0; i < kTimers; i += 2) expected.push_back(int(deadlines[i]));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(order, expected);
}

TEST(TimerQueueTest, StaleIdsAreNoOps) {
  TimerQueue q;
  int fired = 0;
  TimerQueue::Id a = q.add(at(1), [&] { ++fired; });
  EXPECT_EQ(fire_due(q, 1), 1);
  EXPECT_FALSE(q.remove(a));  // fired
  TimerQueue::Id b = q.add(at(5), [&] { ++fired; });
  EXPECT_EQ(b.slot, a.slot);  // the freed slot is reused...
  EXPECT_FALSE(q.remove(a));  // ...and the old id must not cancel its new timer
  EXPECT_TRUE(q.remove(b));
  EXPECT_FALSE(q.remove(b));  // removed
  TimerQueue::Id c = q.add(at(5), [&] { ++fired; });
  EXPECT_FALSE(q.remove(b));
  EXPECT_FALSE(q.remove(TimerQueue::Id{c.slot + 100, c.seq}));  // no such slot
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(fire_due(q, 5), 1);
  EXPECT_EQ(fired, 2);
}

TEST(TimerQueueTest, RemoveDestroysTheCallbackBeforeReturning) {
  TimerQueue q;
  bool destroyed = false;
  TimerQueue::Id id = q.add(at(1), [d = OnDestroy([&] { destroyed = true; })] {});
  EXPECT_FALSE(destroyed);
  EXPECT_TRUE(q.remove(id));
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(q.storage_empty());
}

// A callback's destructor, run by remove(), may add and remove timers.
TEST(TimerQueueTest, ACallbackDestroyedByRemoveMayUseTheQueue) {
  TimerQueue q;
  std::vector<int> order;
  TimerQueue::Id other = q.add(at(3), [&] { order.push_back(3); });
  TimerQueue::Id id = q.add(at(1), [&, d = OnDestroy([&] {
                                       q.remove(other);
                                       q.add(at(2), [&] { order.push_back(2); });
                                     })] { order.push_back(1); });
  q.add(at(4), [&] { order.push_back(4); });
  EXPECT_TRUE(q.remove(id));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(fire_due(q, 10), 2);
  EXPECT_EQ(order, (std::vector<int>{2, 4}));
}

// While the due timers fire one by one, a running timer removes another
// that is due in the same phase (and itself): the removed one never runs.
TEST(TimerQueueTest, RemoveDuringTheFiringSequence) {
  TimerQueue q;
  std::vector<int> order;
  TimerQueue::Id ids[6];
  for (int i = 0; i < 6; ++i) {
    ids[i] = q.add(at(i), [&, i] {
      order.push_back(i);
      if (i == 1) {
        EXPECT_FALSE(q.remove(ids[1]));  // firing: no longer pending
        EXPECT_TRUE(q.remove(ids[3]));
        EXPECT_TRUE(q.remove(ids[5]));  // the last entry
        EXPECT_FALSE(q.remove(ids[0]));  // fired
      }
    });
  }
  EXPECT_EQ(fire_due(q, 10), 4);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 4}));
  EXPECT_TRUE(q.storage_empty());
}

// pop_due fires only timers older than the limit; one added during the
// phase with an earlier deadline waits for the next phase.
TEST(TimerQueueTest, PopDueHonoursTheSequenceLimit) {
  TimerQueue q;
  std::vector<int> order;
  q.add(at(5), [&] {
    order.push_back(5);
    q.add(at(0), [&] { order.push_back(0); });
  });
  q.add(at(6), [&] { order.push_back(6); });
  EXPECT_EQ(fire_due(q, 10), 1);  // the new timer is now on top and blocks the phase
  EXPECT_EQ(order, (std::vector<int>{5}));
  EXPECT_EQ(fire_due(q, 10), 2);
  EXPECT_EQ(order, (std::vector<int>{5, 0, 6}));
}

// clear() destroys every callback unrun; destructors that add timers put
// them into the fresh queue, and ids from before the clear stay dead.
TEST(TimerQueueTest, ClearWithReentrantDestructors) {
  TimerQueue q;
  int ran = 0;
  int destroyed = 0;
  std::vector<TimerQueue::Id> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(q.add(at(i), [&, d = OnDestroy([&, i] {
                                     ++destroyed;
                                     // Ids from before the clear match nothing.
                                     EXPECT_FALSE(q.remove(ids[(i + 1) % 50]));
                                     if (i % 10 == 0) {
                                       q.add(at(i), [&, d2 = OnDestroy([&] { ++destroyed; })] {
                                         ++ran;
                                       });
                                     }
                                   })] { ++ran; }));
  }
  q.clear();
  EXPECT_EQ(destroyed, 50);
  EXPECT_EQ(ran, 0);
  EXPECT_FALSE(q.storage_empty());
  EXPECT_EQ(q.size(), 5u);
  for (TimerQueue::Id id : ids) EXPECT_FALSE(q.remove(id));
  q.clear();
  EXPECT_EQ(destroyed, 55);
  EXPECT_TRUE(q.storage_empty());
  // Still usable.
  q.add(at(1), [&] { ++ran; });
  EXPECT_EQ(fire_due(q, 1), 1);
  EXPECT_EQ(ran, 1);
}

// --- sleep() -------------------------------------------------------------------

struct ManualLoop {
  ManualLoop()
      : clock(std::make_shared<ManualClock>(ManualClock::Options{})), loop(IOLoop::Options{clock}) {
    loop.make_current();
  }
  ~ManualLoop() { IOLoop::clear_current(); }
  // One iteration: a stop() made before start() lets it run exactly one,
  // without waiting (run_sync runs fn in one and what fn queued in another).
  void turn() {
    loop.stop();
    loop.start();
  }

  std::shared_ptr<ManualClock> clock;
  IOLoop loop;
};

TEST(SleepTest, CancellingASleepRemovesItsTimer) {
  ManualLoop m;
  Future<void> a = sleep(absl::Seconds(10));
  Future<void> b = sleep(absl::Seconds(20));
  EXPECT_EQ(m.loop.stats().timers, 2u);
  EXPECT_TRUE(a.cancel());
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(m.loop.stats().timers, 1u);
  EXPECT_FALSE(a.cancel());
  m.clock->advance(absl::Seconds(30));
  m.turn();
  EXPECT_TRUE(a.cancelled());
  EXPECT_TRUE(b.done());
  EXPECT_FALSE(b.cancelled());
  EXPECT_EQ(m.loop.stats().timers, 0u);
}

TEST(SleepTest, CancellingAFinishedSleepIsRefused) {
  ManualLoop m;
  Future<void> a = sleep(absl::Seconds(1));
  m.clock->advance(absl::Seconds(1));
  m.turn();
  ASSERT_TRUE(a.done());
  EXPECT_FALSE(a.cancel());
  EXPECT_FALSE(a.cancelled());
  EXPECT_EQ(m.loop.stats().timers, 0u);
}

// The timer went with its loop; a later cancel must not reach it.
TEST(SleepTest, CancellingAfterTheLoopIsGone) {
  Future<void> a;
  {
    ManualLoop m;
    a = sleep(absl::Seconds(10));
  }
  EXPECT_FALSE(a.done());
  EXPECT_TRUE(a.cancel());
  EXPECT_TRUE(a.cancelled());
}

// A cancelled sleep's callbacks still run, and a sleep started from them
// reuses the queue normally.
TEST(SleepTest, CallbacksOfACancelledSleepRun) {
  ManualLoop m;
  bool saw_cancel = false;
  Future<void> a = sleep(absl::Seconds(10));
  a.add_done_callback([&](Future<void>& f) { saw_cancel = f.cancelled(); });
  a.cancel();
  m.turn();
  EXPECT_TRUE(saw_cancel);
  Future<void> b = sleep(absl::Seconds(1));
  EXPECT_EQ(m.loop.stats().timers, 1u);
  m.clock->advance(absl::Seconds(1));
  m.turn();
  EXPECT_TRUE(b.done());
}

}  // namespace
}  // namespace eddy
