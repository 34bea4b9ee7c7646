#include "eddy/loop/internal/timer_queue.h"

#include <utility>

namespace eddy::internal {

namespace {

// Makes room for one more element, doubling: afterwards push_back and
// emplace_back cannot throw. Allocates only when the vector is full.
template <class V>
void room_for_one(V& v) {
  if (v.size() == v.capacity()) [[unlikely]] {
    v.reserve(v.capacity() < 8 ? 8 : 2 * v.capacity());
  }
}

}  // namespace

TimerQueue::Id TimerQueue::add(MonotonicTime deadline, absl::AnyInvocable<void()> fn) {
  // Every allocation first, before anything changes: a bad_alloc leaves the
  // queue as it was (slots_ and position_ the same length, no slot holding
  // a callback that no heap entry points to), and `fn` dies with the
  // parameter. From here on nothing throws.
  room_for_one(heap_);
  const bool grow = free_head_ == kNoSlot;
  if (grow) {
    room_for_one(slots_);
    room_for_one(position_);
  }
  uint32_t index;
  if (!grow) {
    index = free_head_;
    free_head_ = slots_[index].next_free;
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    position_.push_back(0);
  }
  const uint64_t seq = next_seq_++;
  Slot& slot = slots_[index];
  slot.fn = std::move(fn);
  slot.seq = seq;  // before sifting: before() reads it
  heap_.emplace_back();  // the hole sift_up starts from
  sift_up(heap_.size() - 1, Entry{deadline.nanoseconds(), index});
  return Id{index, seq};
}

bool TimerQueue::remove(Id id) {
  if (id.seq == 0 || id.slot >= slots_.size() || slots_[id.slot].seq != id.seq) return false;
  // Take the callback out and leave the queue consistent before destroying
  // it: its destructor may call back into this queue.
  absl::AnyInvocable<void()> fn = std::move(slots_[id.slot].fn);
  erase_at(position_[id.slot]);  // while the slot is occupied (see before())
  free_slot(id.slot);
  return true;
}

void TimerQueue::free_slot(uint32_t index) {
  Slot& slot = slots_[index];
  slot.fn = nullptr;
  slot.seq = 0;
  slot.next_free = free_head_;
  free_head_ = index;
}

void TimerQueue::sift_up(size_t i, Entry e) {
  while (i > 0) {
    const size_t parent = (i - 1) / kArity;
    if (!before(e, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void TimerQueue::sift_down(size_t i, Entry e) {
  const size_t n = heap_.size();
  for (;;) {
    const size_t first = kArity * i + 1;
    if (first >= n) break;
    const size_t end = first + kArity < n ? first + kArity : n;
    // The earliest child. Deadlines decide without a branch (random
    // deadlines would mispredict); only a tie reads the slots' seq.
    size_t best = first;
    int64_t best_deadline = heap_[first].deadline;
    for (size_t c = first + 1; c < end; ++c) {
      const int64_t d = heap_[c].deadline;
      if (d == best_deadline) [[unlikely]] {
        if (slots_[heap_[c].slot].seq < slots_[heap_[best].slot].seq) best = c;
        continue;
      }
      const bool less = d < best_deadline;
      best = less ? c : best;
      best_deadline = less ? d : best_deadline;
    }
    if (!before(heap_[best], e)) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, e);
}

void TimerQueue::erase_at(size_t i) {
  const Entry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;  // it was the last entry
  // The last entry fills the hole: it may belong above it (the hole was in
  // another subtree) or below it.
  if (i > 0 && before(last, heap_[(i - 1) / kArity])) {
    sift_up(i, last);
  } else {
    sift_down(i, last);
  }
}

MonotonicTime TimerQueue::next_deadline() const {
  if (heap_.empty()) return MonotonicTime::infinite_future();
  return MonotonicTime::from_nanoseconds(heap_.front().deadline);
}

bool TimerQueue::pop_due(MonotonicTime now, uint64_t seq_limit,
                         absl::AnyInvocable<void()>* out) {
  if (heap_.empty()) return false;
  const Entry top = heap_.front();
  const uint32_t index = static_cast<uint32_t>(top.slot);
  if (top.deadline > now.nanoseconds() || slots_[index].seq >= seq_limit) return false;
  erase_at(0);  // while the slot is occupied: sifting may compare its seq
  *out = std::move(slots_[index].fn);
  // Freed before it runs: removing a firing or fired timer is a no-op.
  free_slot(index);
  return true;
}

void TimerQueue::clear() {
  std::vector<Slot> slots = std::move(slots_);
  slots_.clear();
  heap_.clear();
  position_.clear();
  free_head_ = kNoSlot;
  // next_seq_ keeps counting: Ids of destroyed timers must never match
  // timers added from here on.
  slots.clear();
}

}  // namespace eddy::internal
