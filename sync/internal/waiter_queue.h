// The FIFO of waiting futures behind every primitive in sync/ (Tornado's
// `_waiters` deque with its `_TimeoutGarbageCollector`).
//
// A waiter that timed out or was cancelled stays in the deque until it is
// skipped (pop_live() never hands it out) or swept: push() removes every
// finished waiter once the deque has doubled since the last sweep, so the
// cost is amortised O(1) per push and the deque holds at most about twice
// the live waiters (plus kMinSweep). No callback from the waiter back into
// the primitive is needed, so a primitive may die before its waiters'
// futures do.
//
// An entry is a Future<X>, or a struct whose `waiter` member is one (a
// queue's putters carry their item along).
//
// A bare Future entry (a getter, an acquirer, a condition's waiter) that
// nobody can receive any more counts as finished too: the coroutine that
// awaited it was destroyed with its loop, or its future was dropped
// without a callback. Handing it an item or a lock would lose them. A
// putter whose future was dropped still puts its item (fire and forget).
//
// Not for users. Threading: the loop's thread only, like the futures.
#ifndef EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_
#define EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "eddy/futures/future.h"

namespace eddy::internal {

template <class Entry>
class WaiterQueue {
 public:
  // Below this size the deque is never swept.
  static constexpr size_t kMinSweep = 64;

  // Appends a waiter at the back, sweeping finished ones first when due.
  void push(Entry entry) {
    if (entries_.size() >= sweep_at_) sweep();
    entries_.push_back(std::move(entry));
  }

  // Removes and returns the oldest waiter that is still pending, dropping
  // the finished ones in front of it; nullopt when there is none.
  std::optional<Entry> pop_live() {
    drop_finished_front();
    if (entries_.empty()) return std::nullopt;
    std::optional<Entry> out(std::move(entries_.front()));
    entries_.pop_front();
    return out;
  }

  // Drops finished waiters from the front (Tornado's _consume_expired).
  void drop_finished_front() {
    while (!entries_.empty() && finished(entries_.front())) entries_.pop_front();
  }

  // True when a pending waiter is at the front (after dropping finished
  // ones).
  bool has_live() {
    drop_finished_front();
    return !entries_.empty();
  }

  // The front entry; precondition: has_live().
  Entry& front() { return entries_.front(); }

  // How many waiters are still pending. Linear: for diagnostics and tests.
  size_t live_count() const {
    return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                             [](const Entry& e) { return !finished(e); }));
  }

  // Entries stored, finished ones included (tests of the sweeping).
  size_t stored() const { return entries_.size(); }

  // Moves every entry out (the primitive is going away, or wakes all).
  std::deque<Entry> take_all() {
    sweep_at_ = kMinSweep;
    return std::exchange(entries_, {});
  }

  static auto& waiter_of(Entry& e) {
    if constexpr (requires { e.waiter; }) {
      return e.waiter;
    } else {
      return e;
    }
  }
  static const auto& waiter_of(const Entry& e) {
    if constexpr (requires { e.waiter; }) {
      return e.waiter;
    } else {
      return e;
    }
  }

 private:
  static bool finished(const Entry& e) {
    if (waiter_of(e).done()) return true;
    if constexpr (requires { e.waiter; }) {
      return false;
    } else {
      return FutureAccess::state(e)->unreachable();
    }
  }

  void sweep() {
    std::erase_if(entries_, [](const Entry& e) { return finished(e); });
    sweep_at_ = std::max(kMinSweep, 2 * entries_.size());
  }

  std::deque<Entry> entries_;
  size_t sweep_at_ = kMinSweep;
};

// Cancels every still-pending waiter in `entries` (a primitive's
// destructor: nobody could ever complete them otherwise).
template <class Entry>
void cancel_waiters(std::deque<Entry> entries) {
  for (Entry& e : entries) {
    auto& w = WaiterQueue<Entry>::waiter_of(e);
    if (!w.done()) w.cancel();
  }
}

}  // namespace eddy::internal

#endif  // EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_
