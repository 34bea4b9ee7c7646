// Event: a flag that coroutines and callbacks on one loop can wait for
// (Tornado's locks.Event, asyncio.Event).
//
// An Event starts clear. wait() returns a Future<void> that completes once
// the flag is set; set() wakes every waiter; clear() makes later waits block
// again.
//
//   eddy::Event cache_warm;
//
//   eddy::Future<void> serve(Request r) {
//     co_await cache_warm.wait();               // until warm_up() is done
//     ...
//   }
//   eddy::Future<void> warm_up() {
//     co_await fill_cache();
//     cache_warm.set();
//   }
//
//   co_await cache_warm.wait(absl::Seconds(5)); // TimeoutError after 5 s
//
// Waiters that timed out or were cancelled are simply forgotten; set()
// completes the others in the order they started waiting.
//
// Threading: loop-affine and not thread-safe. Use an Event only on the
// thread of the loop current when it is used (waiter futures belong to that
// loop and complete there, on a later turn, never inside set()). To set it
// from another thread, post set() with IOLoop::add_callback. In builds with
// EDDY_THREAD_CHECKS a set() from a thread that does not own the waiters'
// loop throws InvalidStateError and changes nothing (with nobody waiting
// there is nothing to tell the owner by).
//
// Lifetime: destroying an Event cancels the futures still waiting on it
// (CancelledError). Destroyed on another thread than their loop's (the one
// current at the last wait()), it logs an error and posts the cancelling to
// that loop's thread, touching neither the waiters nor the loop there (it
// may be being destroyed). If that loop is closed by then, the waiters are
// leaked, neither cancelled nor destroyed, and that is logged too.
#ifndef EDDY_SYNC_EVENT_H_
#define EDDY_SYNC_EVENT_H_

#include <cstddef>
#include <deque>
#include <optional>
#include "eddy/futures/source_location.h"

#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/sync/internal/wait_timeout.h"
#include "eddy/sync/internal/waiter_queue.h"

namespace eddy {

template <class T, class Storage>
class BasicQueue;

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { internal::cancel_waiters(waiters_, "Event"); }

  // True once set() was called (and clear() not since).
  bool is_set() const { return set_; }

  // Sets the flag and completes every pending waiter (their callbacks run on
  // a later turn). A no-op if already set.
  // Throws InvalidStateError (before anything changes) on a thread that
  // does not own the waiters' loop (see Threading); std::bad_alloc, with
  // the flag still clear and every waiter still waiting, if the loop has no
  // room for their completions (a retry wakes them all).
  void set() {
    if (set_) return;
    waiters_.check_owner("Event::set");
    if (waiters_.stored() == 0) {
      set_ = true;
      return;
    }
    // Room first, for every waiter's post and for the deque they move to:
    // out of memory (std::bad_alloc) nothing has changed, and a retried
    // set() wakes them. Past this point no completion can fail.
    waiters_.reserve_completions(waiters_.stored());
    std::deque<Future<void>> woken;
    waiters_.take_all(woken);
    set_ = true;
    for (Future<void>& w : woken) {
      if (!w.done()) w.set_result();
    }
  }

  // Clears the flag: later wait() calls block until the next set().
  // Futures already completed by set() stay completed.
  void clear() { set_ = false; }

  // A future that completes when the flag is set: at once (already done) if
  // it is set now. With a `timeout`, the future fails with TimeoutError if
  // the flag is still clear when the timeout (measured on the loop's clock)
  // expires. Cancelling the future stops the wait.
  // Throws InvalidStateError if it must wait with a timeout and the
  // current scheduler is not an IOLoop (with none current, IOLoop::current()
  // is used).
  [[nodiscard("wait() returns a Future that is done once the wait is over: co_await it")]]
  Future<void> wait(std::optional<absl::Duration> timeout = std::nullopt,
                    SourceLocation where = SourceLocation::current()) {
    return wait_as(timeout, "Event::wait", "Event::wait timed out", where);
  }

  // How many futures are waiting (not finished). Linear; for diagnostics.
  size_t waiter_count() const { return waiters_.live_count(); }

 private:
  template <class T, class Storage>
  friend class BasicQueue;  // join() is a wait on an Event, with its own name

  Future<void> wait_as(std::optional<absl::Duration> timeout, const char* op, const char* what,
                       SourceLocation where) {
    if (set_) return make_ready_future(where);
    Future<void> waiter = internal::make_waiter<void>(timeout, op, what, where);
    waiters_.push(waiter);
    return waiter;
  }

  bool set_ = false;
  internal::WaiterQueue<Future<void>> waiters_;
};

}  // namespace eddy

#endif  // EDDY_SYNC_EVENT_H_
