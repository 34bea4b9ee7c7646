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
// Not for users. Threading: the loop's thread only, like the futures. The
// primitives have no owner of their own: the loop their waiters' futures
// belong to is theirs, so that is what foreign_loop() and check_owner()
// look at, before anything changes (a primitive used from a pool thread
// must not lose waiters on the way to the error).
#ifndef EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_
#define EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/futures/scheduler.h"

namespace eddy::internal {

// The scheduler `waiter` belongs to if it still exists and runs on another
// thread than the caller's; nullptr if it is this thread's, gone, or none.
// Safe from any thread (it reads what the future fixed at its creation,
// and the scheduler's own thread-safe owner test).
template <class W>
Scheduler* foreign_scheduler_of(const W& waiter) noexcept {
  const auto* state = FutureAccess::state_or_null(waiter);
  if (state == nullptr) return nullptr;
  Scheduler* s = state->scheduler();
  return s != nullptr && !s->in_scheduler_thread() ? s : nullptr;
}

[[noreturn, gnu::cold]] inline void throw_foreign_primitive(const char* op) {
  throw InvalidStateError(std::string(op) +
                          ": called from a thread that does not own the loop its waiters belong "
                          "to (a sync primitive is used on one loop's thread; post the call "
                          "there with IOLoop::add_callback)");
}

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

  // The loop of a waiter that runs on another thread than the caller's
  // (see foreign_scheduler_of), looking at the front entry only, or at
  // every entry if `all`; nullptr when there is none. Changes nothing, and
  // never touches the waiters' futures beyond reading where they belong.
  Scheduler* foreign_loop(bool all) const noexcept {
    for (const Entry& e : entries_) {
      if (Scheduler* s = foreign_scheduler_of(waiter_of(e))) return s;
      if (!all) break;
    }
    return nullptr;
  }

  // In builds with EDDY_THREAD_CHECKS (as Future's own checks): throws
  // InvalidStateError naming `op` if foreign_loop(all) finds one, so that
  // a primitive used from a foreign thread is refused before it changes.
  // Front only for operations that take one waiter (O(1)); all for those
  // that take every waiter anyway.
  void check_owner(const char* op, bool all) const {
#if EDDY_THREAD_CHECKS
    if (!entries_.empty() && foreign_loop(all) != nullptr) [[unlikely]] {
      throw_foreign_primitive(op);
    }
#else
    (void)op;
    (void)all;
#endif
  }

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

// Cancels every still-pending waiter in `entries`, on their loop's thread.
// A cancel that throws is logged, and the others are still cancelled.
template <class Entry>
void cancel_pending(std::deque<Entry>& entries) noexcept {
  for (Entry& e : entries) {
    try {
      auto& w = WaiterQueue<Entry>::waiter_of(e);
      if (!w.done()) w.cancel();
    } catch (...) {
      log(LogLevel::kError, "cancelling a waiter failed: " +
                                describe_exception(std::current_exception()));
    }
  }
}

// A primitive's destructor (`owner` names its type): cancels every
// still-pending waiter in `entries`, since nobody could ever complete them
// otherwise. Never throws. On a thread that does not own the waiters' loop
// (the last reference to an object holding a Lock dropped on a pool
// thread), touching them here would race with that loop (and used to call
// std::terminate from the check): the misuse is logged, and the waiters
// are handed to their loop, whose thread cancels them on a later turn (if
// the loop is closed by then, it has dropped what awaited them already).
template <class Entry>
void cancel_waiters(std::deque<Entry> entries, const char* owner) noexcept {
  Scheduler* home = nullptr;
  for (const Entry& e : entries) {
    home = foreign_scheduler_of(WaiterQueue<Entry>::waiter_of(e));
    if (home != nullptr) break;
  }
  if (home == nullptr) {
    cancel_pending(entries);
    return;
  }
  try {
    log(LogLevel::kError,
        std::string(owner) + " destroyed on a thread that does not own its waiters' loop, with " +
            std::to_string(entries.size()) +
            " waiter(s); they are cancelled on that loop's thread instead");
    std::shared_ptr<RemoteScheduler> remote = home->remote();
    remote->post([entries = std::move(entries)]() mutable { cancel_pending(entries); });
  } catch (...) {
    // Out of memory on the way: the waiters stay as they are, for their
    // loop's teardown.
  }
}

}  // namespace eddy::internal

#endif  // EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_
