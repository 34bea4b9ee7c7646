#include "eddy/loop/internal/timer_queue.h"

#include <algorithm>
#include <utility>

namespace eddy::internal {

TimerQueue::Id TimerQueue::add(MonotonicTime deadline, absl::AnyInvocable<void()> fn) {
  uint32_t index;
  if (free_head_ != kNoSlot) {
    index = free_head_;
    free_head_ = slots_[index].next_free;
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  const uint64_t seq = next_seq_++;
  Slot& slot = slots_[index];
  slot.fn = std::move(fn);
  slot.seq = seq;
  heap_.push_back(Entry{deadline.nanoseconds(), seq, index});
  std::push_heap(heap_.begin(), heap_.end(), Later());
  ++live_;
  return Id{index, seq};
}

bool TimerQueue::remove(Id id) {
  if (id.seq == 0 || id.slot >= slots_.size() || slots_[id.slot].seq != id.seq) return false;
  // Take the callback out before destroying it: its destructor may call
  // back into this queue.
  absl::AnyInvocable<void()> fn = std::move(slots_[id.slot].fn);
  free_slot(id.slot);
  --live_;
  ++cancelled_;
  maybe_compact();
  return true;
}

void TimerQueue::free_slot(uint32_t index) {
  Slot& slot = slots_[index];
  slot.fn = nullptr;
  slot.seq = 0;
  slot.next_free = free_head_;
  free_head_ = index;
}

void TimerQueue::pop_top() {
  std::pop_heap(heap_.begin(), heap_.end(), Later());
  heap_.pop_back();
}

void TimerQueue::maybe_compact() {
  // ">= half", not "> half": with exactly half of the heap cancelled (a
  // common shape: schedule N, cancel every other one) a strict test never
  // fires, and the loop then pops every dead entry one O(log n) pop at a
  // time while firing. A rebuild costs O(n) once and, because it at least
  // halves the heap, is amortised over as many removals as it drops.
  if (cancelled_ <= kCompactMinimum || cancelled_ < (heap_.size() + 1) / 2) return;
  heap_.erase(std::remove_if(heap_.begin(), heap_.end(), [this](const Entry& e) { return !live(e); }),
              heap_.end());
  std::make_heap(heap_.begin(), heap_.end(), Later());
  cancelled_ = 0;
}

MonotonicTime TimerQueue::next_deadline() {
  while (!heap_.empty()) {
    const Entry& top = heap_.front();
    if (live(top)) return MonotonicTime::from_nanoseconds(top.deadline);
    pop_top();
    --cancelled_;
  }
  return MonotonicTime::infinite_future();
}

bool TimerQueue::pop_due(MonotonicTime now, uint64_t seq_limit,
                         absl::AnyInvocable<void()>* out) {
  while (!heap_.empty()) {
    const Entry top = heap_.front();
    if (!live(top)) {
      pop_top();
      --cancelled_;
      continue;
    }
    if (top.deadline > now.nanoseconds() || top.seq >= seq_limit) return false;
    pop_top();
    Slot& slot = slots_[top.slot];
    *out = std::move(slot.fn);
    // Freed before it runs: removing a firing or fired timer is a no-op.
    free_slot(top.slot);
    --live_;
    return true;
  }
  return false;
}

void TimerQueue::clear() {
  std::vector<Slot> slots = std::move(slots_);
  slots_.clear();
  heap_.clear();
  free_head_ = kNoSlot;
  live_ = 0;
  cancelled_ = 0;
  // next_seq_ keeps counting: Ids of destroyed timers must never match
  // timers added from here on.
  slots.clear();
}

}  // namespace eddy::internal
