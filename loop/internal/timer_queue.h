// The loop's timers: a binary min-heap of small entries ordered by
// (deadline, sequence number), plus a slab of callbacks the entries point
// into. Not a public API; IOLoop wraps it.
//
// Cancellation is lazy: remove() frees the callback and its slot at once
// (so captured resources go away promptly), but leaves the heap entry,
// which no longer matches its slot's sequence number and is skipped when it
// reaches the top. When cancelled entries dominate (more than 512 of them
// and at least half of the heap: Tornado's rule, with the boundary
// included so that "cancel exactly half" compacts too) the heap is rebuilt
// without them.
//
// Identity: every timer gets a fresh 64-bit sequence number, which also
// orders timers with equal deadlines (scheduling order). An Id is
// (slot, sequence); a slot's sequence changes when it is freed, so an Id of
// a fired or removed timer matches nothing and removing it is a no-op that
// never touches freed memory.
//
// Threading: the loop's thread only.
#ifndef EDDY_LOOP_INTERNAL_TIMER_QUEUE_H_
#define EDDY_LOOP_INTERNAL_TIMER_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/loop/time.h"

namespace eddy::internal {

class TimerQueue {
 public:
  struct Id {
    uint32_t slot = 0;
    uint64_t seq = 0;  // 0: no timer
  };

  TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Schedules `fn` at `deadline`. May allocate (amortised: the heap and
  // the slab grow, freed slots are reused).
  Id add(MonotonicTime deadline, absl::AnyInvocable<void()> fn);

  // Cancels the timer; returns true if it was pending. The callback is
  // destroyed before this returns.
  bool remove(Id id);

  // The earliest pending deadline, or MonotonicTime::infinite_future().
  // Pops cancelled entries off the top on the way.
  MonotonicTime next_deadline();

  // If the earliest pending timer is due at `now` and was scheduled before
  // sequence number `seq_limit`, moves its callback into `*out` and returns
  // true.
  bool pop_due(MonotonicTime now, uint64_t seq_limit, absl::AnyInvocable<void()>* out);

  // The sequence number the next add() will use: pass it to pop_due() to
  // fire only timers that existed when a phase began.
  uint64_t next_seq() const { return next_seq_; }

  // Pending timers.
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // Heap entries, cancelled ones included.
  size_t heap_entries() const { return heap_.size(); }
  // True when nothing at all is stored (no entries, no callbacks).
  bool storage_empty() const { return heap_.empty() && live_ == 0; }

  // Destroys every pending callback without running it. A callback's
  // destructor may add or remove timers: those land in the fresh, empty
  // queue (the caller repeats until storage_empty()).
  void clear();

 private:
  struct Entry {
    int64_t deadline;
    uint64_t seq;
    uint32_t slot;
  };
  struct Slot {
    absl::AnyInvocable<void()> fn;
    uint64_t seq = 0;  // of the timer stored here; 0 while free
    uint32_t next_free = 0;
  };
  // std::push_heap builds a max-heap; "later" as less gives the earliest
  // (deadline, seq) at the front.
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.deadline != b.deadline ? a.deadline > b.deadline : a.seq > b.seq;
    }
  };
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  static constexpr size_t kCompactMinimum = 512;

  bool live(const Entry& e) const { return slots_[e.slot].seq == e.seq; }
  void free_slot(uint32_t index);
  void pop_top();
  void maybe_compact();

  std::vector<Entry> heap_;
  std::vector<Slot> slots_;
  uint32_t free_head_ = kNoSlot;
  size_t live_ = 0;
  size_t cancelled_ = 0;  // heap entries whose timer was removed
  uint64_t next_seq_ = 1;
};

}  // namespace eddy::internal

#endif  // EDDY_LOOP_INTERNAL_TIMER_QUEUE_H_
