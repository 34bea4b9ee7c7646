// The loop's timers: an 8-ary min-heap of 16-byte entries ordered by
// (deadline, sequence number), plus a slab of callbacks the entries point
// into. Not a public API; IOLoop wraps it.
//
// Cancellation is eager, as in Boost.Asio: every slot knows where its entry
// sits in the heap (kept up to date on every sift), so remove() takes the
// entry out at once in O(log n) and frees the callback. The heap holds
// exactly the pending timers: firing never meets a dead entry, and memory
// does not stay pinned by cancelled ones.
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
  // the slab grow, freed slots are reused). If an allocation throws, the
  // queue is unchanged and `fn` is destroyed unrun.
  Id add(MonotonicTime deadline, absl::AnyInvocable<void()> fn);

  // Cancels the timer; returns true if it was pending. The callback is
  // destroyed before this returns.
  bool remove(Id id);

  // The earliest pending deadline, or MonotonicTime::infinite_future().
  MonotonicTime next_deadline() const;

  // If the earliest pending timer is due at `now` and was scheduled before
  // sequence number `seq_limit`, moves its callback into `*out` and returns
  // true.
  bool pop_due(MonotonicTime now, uint64_t seq_limit, absl::AnyInvocable<void()>* out);

  // The sequence number the next add() will use: pass it to pop_due() to
  // fire only timers that existed when a phase began.
  uint64_t next_seq() const { return next_seq_; }

  // Pending timers.
  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  // Heap entries: with eager cancellation, always size().
  size_t heap_entries() const { return heap_.size(); }
  // True when nothing at all is stored (no entries, no callbacks).
  bool storage_empty() const { return heap_.empty(); }

  // Destroys every pending callback without running it. A callback's
  // destructor may add or remove timers: those land in the fresh, empty
  // queue (the caller repeats until storage_empty()).
  void clear();

 private:
  // Eight children per node: a third of a binary heap's depth, so a pop or
  // a removal in a large heap touches fewer cache lines (a node's children
  // are adjacent: two lines of 16-byte entries). Measured on W6's shape
  // (1M timers, half cancelled, medians on a noisy 2-core VM): cancel
  // 22 ns and pop 264 ns, against 29 / 283 for 4-ary and 51 / 280 for
  // binary with these entries, and 36 / 292 for 4-ary with 24-byte
  // (deadline, seq, slot) entries; a branch-free child scan then brought
  // the pop to ~250 ns.
  static constexpr size_t kArity = 8;
  // The sequence number is not stored: it only breaks ties between equal
  // deadlines (rare on a real clock), and is then read from the slot.
  struct Entry {
    int64_t deadline;
    uint64_t slot;
  };
  struct Slot {
    absl::AnyInvocable<void()> fn;
    uint64_t seq = 0;  // of the timer stored here; 0 while free
    uint32_t next_free = 0;
  };
  // (deadline, seq) order. Both slots must be occupied.
  bool before(const Entry& a, const Entry& b) const {
    return a.deadline != b.deadline ? a.deadline < b.deadline
                                    : slots_[a.slot].seq < slots_[b.slot].seq;
  }
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // Stores `e` at heap index i and records i for its slot.
  void place(size_t i, const Entry& e) {
    heap_[i] = e;
    position_[e.slot] = static_cast<uint32_t>(i);
  }
  // Move `e` from the hole at i towards the root / the leaves.
  void sift_up(size_t i, Entry e);
  void sift_down(size_t i, Entry e);
  // Takes the entry at heap index i out of the heap.
  void erase_at(size_t i);
  void free_slot(uint32_t index);

  std::vector<Entry> heap_;
  std::vector<Slot> slots_;
  // Heap index of each occupied slot's entry (by slot). Apart from slots_
  // so that the writes every sift makes stay in a dense array.
  std::vector<uint32_t> position_;
  uint32_t free_head_ = kNoSlot;
  uint64_t next_seq_ = 1;
};

}  // namespace eddy::internal

#endif  // EDDY_LOOP_INTERNAL_TIMER_QUEUE_H_
