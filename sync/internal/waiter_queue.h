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
// belong to is theirs. Each push() records it (home(): the scheduler
// current at the push, which the waiter's future binds to), so that
// check_owner() and cancel_waiters() can tell a foreign thread without
// looking at a waiter's future or its loop, which such a thread must not
// touch (the loop may be being destroyed), and before anything changes (a
// primitive used from a pool thread must not lose waiters on the way to
// the error).
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
#include "eddy/futures/internal/loop_home.h"
#include "eddy/futures/log.h"
#include "eddy/futures/scheduler.h"

namespace eddy::internal {

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
  // Binds home() to the current scheduler (the waiter's).
  void push(Entry entry) {
    home_.bind(Scheduler::current());
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

  // Takes the front entry's waiter out and drops the entry (with whatever
  // else it carries, e.g. a putter's item, moved from by then). Cannot
  // throw: an entry is never moved as a whole, so a T whose copy or move
  // throws cannot leave a half-moved entry behind. Precondition:
  // has_live().
  auto take_front_waiter() noexcept {
    auto waiter = std::move(waiter_of(entries_.front()));
    entries_.pop_front();
    return waiter;
  }

  // How many waiters are still pending. Linear: for diagnostics and tests.
  size_t live_count() const {
    return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                             [](const Entry& e) { return !finished(e); }));
  }

  // Entries stored, finished ones included (tests of the sweeping).
  size_t stored() const { return entries_.size(); }

  // The loop the waiters belong to (see Threading above). A primitive that
  // hands out something loop-affine without a waiter (a free permit) binds
  // it itself.
  LoopHome& home() { return home_; }
  const LoopHome& home() const { return home_; }

  // In builds with EDDY_THREAD_CHECKS (as Future's own checks): throws
  // InvalidStateError naming `op` when waiters are queued and the caller
  // is not on their loop's thread (LoopHome::here()), so that a primitive
  // used from a foreign thread is refused before it changes. O(1).
  void check_owner(const char* op) const {
#if EDDY_THREAD_CHECKS
    if (!entries_.empty() && !home_.here()) [[unlikely]] {
      throw_foreign_primitive(op);
    }
#else
    (void)op;
#endif
  }

  // Moves every entry into `out`, which must be empty (the primitive is
  // going away, or wakes all). Never throws: the deques swap their blocks.
  // The caller makes `out` first: in libstdc++ even an empty std::deque
  // allocates, so building it here could fail with the waiters half taken.
  void take_all(std::deque<Entry>& out) noexcept {
    sweep_at_ = kMinSweep;
    out.swap(entries_);
  }

  // Makes sure that completing (or cancelling) the first `n` pending
  // waiters cannot fail for lack of room on their loop (see
  // Scheduler::reserve_posts): a primitive calls it before it takes any
  // waiter out, so that out of memory it throws std::bad_alloc having
  // changed nothing. Reserves on each waiter's scheduler (one, unless the
  // thread changed loops between waits).
  void reserve_completions(size_t n) const {
    Scheduler* first = nullptr;
    bool mixed = false;
    size_t count = 0;
    for (const Entry& e : entries_) {
      if (count == n) break;
      const auto& w = waiter_of(e);
      if (w.done()) continue;
      ++count;
      Scheduler* s = FutureAccess::state(w)->scheduler();
      if (first == nullptr) first = s;
      if (s != nullptr && s != first) mixed = true;
    }
    if (count == 0) return;
    if (first != nullptr) first->reserve_posts(count);
    if (!mixed) [[likely]] return;
    // Rare: room for all `count` on every other scheduler met (more than
    // needed, never less).
    Scheduler* last = first;
    size_t seen = 0;
    for (const Entry& e : entries_) {
      if (seen == count) break;
      const auto& w = waiter_of(e);
      if (w.done()) continue;
      ++seen;
      Scheduler* s = FutureAccess::state(w)->scheduler();
      if (s != nullptr && s != last) {
        s->reserve_posts(count);
        last = s;
      }
    }
  }

  // Cancels every still-pending waiter where it is and empties the queue
  // (a primitive's destructor). Room for every cancel's post is made first
  // (reserve_completions), so that none fails; out of memory even for that,
  // each cancel is still tried (the loop's last slots may do), and a
  // waiter whose cancel cannot be posted stays pending (its coroutine is
  // destroyed with its loop): logged once, with the count. Cancelling
  // posts the waiters' callbacks; one that runs inline and queues a new
  // waiter (appending, which keeps the entries before it in place) gets it
  // cancelled too.
  void cancel_all_in_place() noexcept {
    try {
      reserve_completions(entries_.size());
    } catch (...) {
      // Tried one by one below.
    }
    size_t failed = 0;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (!cancel_entry(entries_[i], /*log_failure=*/false)) ++failed;
    }
    entries_.clear();
    sweep_at_ = kMinSweep;
    if (failed > 0) {
      try {
        log(LogLevel::kError, "cancelling waiters of a destroyed primitive failed (out of "
                              "memory): " + std::to_string(failed) +
                                  " waiter(s) left pending");
      } catch (...) {
      }
    }
  }

  // Cancels `e`'s waiter unless it is done; false if the cancel threw
  // (logged if `log_failure`).
  static bool cancel_entry(Entry& e, bool log_failure = true) noexcept {
    try {
      auto& w = waiter_of(e);
      if (!w.done()) w.cancel();
      return true;
    } catch (...) {
      if (log_failure) {
        try {
          log(LogLevel::kError, "cancelling a waiter failed: " +
                                    describe_exception(std::current_exception()));
        } catch (...) {
        }
      }
      return false;
    }
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
  LoopHome home_;
};

// Cancels every still-pending waiter in `entries`, on their loop's thread.
// A cancel that throws is logged, and the others are still cancelled.
template <class Entry>
void cancel_pending(std::deque<Entry>& entries) noexcept {
  for (Entry& e : entries) WaiterQueue<Entry>::cancel_entry(e);
}

// A primitive's destructor (`owner` names its type): cancels every
// still-pending waiter in `queue`, since nobody could ever complete them
// otherwise. Never throws. On a thread that is not the waiters' loop's (the
// last reference to an object holding a Lock dropped on a pool thread), the
// waiters must not be touched: that loop's thread may be using them, or
// destroying the loop and them with it. The misuse is logged and the
// waiters are handed to the loop (LoopHome::post_owned) without asking it
// anything: its thread cancels them on a later turn, or destroys them if it
// closes first. If it is closed already, nobody may destroy them: they are
// leaked on purpose (with the items of waiting putters), and that is
// logged too.
template <class Entry>
void cancel_waiters(WaiterQueue<Entry>& queue, const char* owner) noexcept {
  const LoopHome& home = queue.home();
  if (home.here()) {
    // In place: taking the entries out would need a new deque (an
    // allocation, which may fail here, where nothing may throw).
    queue.cancel_all_in_place();
    return;
  }
  if (queue.stored() == 0) return;
  std::unique_ptr<std::deque<Entry>> entries;
  try {
    // Made empty, then the queue's deque moved in: its blocks change hands,
    // the futures in them are not touched.
    entries = std::make_unique<std::deque<Entry>>();
  } catch (...) {
    // Out of memory on the way: the waiters stay in the queue and die with
    // it on this thread, the race this avoids when it can.
    return;
  }
  queue.take_all(*entries);
  const size_t count = entries->size();
  try {
    log(LogLevel::kError,
        std::string(owner) + " destroyed on a thread that does not own its waiters' loop, with " +
            std::to_string(count) + " waiter(s); they are cancelled on that loop's thread instead");
  } catch (...) {
  }
  if (!home.post_owned(std::move(entries), &cancel_pending<Entry>)) {
    try {
      log(LogLevel::kError, std::string(owner) + ": the waiters' loop is closed: they are leaked (" +
                                std::to_string(count) +
                                " waiter(s)), since no thread may destroy them safely: destroy it on "
                                "its loop's thread, before that loop closes");
    } catch (...) {
    }
  }
}

}  // namespace eddy::internal

#endif  // EDDY_SYNC_INTERNAL_WAITER_QUEUE_H_
