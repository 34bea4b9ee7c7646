// Condition: lets coroutines and callbacks on one loop wait until another
// one notifies them (Tornado's locks.Condition).
//
// Unlike a threading condition variable there is no associated lock: the
// loop runs one thing at a time, so the state a waiter checks cannot change
// between its check and its wait().
//
//   eddy::Condition changed;
//   std::deque<Job> jobs;
//
//   eddy::Future<Job> next_job() {
//     while (jobs.empty()) co_await changed.wait();
//     Job j = std::move(jobs.front());
//     jobs.pop_front();
//     co_return j;
//   }
//   void add_job(Job j) {
//     jobs.push_back(std::move(j));
//     changed.notify();                        // wakes the oldest waiter
//   }
//
// Waiters are woken in the order they started waiting. A waiter that timed
// out or was cancelled is skipped and does not count against notify(n).
//
// Timeouts: eddy differs from Tornado here on purpose. Tornado's wait
// resolves to False after a timeout; eddy's wait, like every other wait in
// sync/, fails with TimeoutError, so it composes with the rest (a coroutine
// that does not catch it stops, as with with_timeout).
//
// Threading: loop-affine and not thread-safe: use a Condition only on the
// thread of the loop current when it is used. Woken waiters' callbacks run
// on that loop on a later turn, never inside notify(). In builds with
// EDDY_THREAD_CHECKS, notify() and notify_all() from a thread that does not
// own the waiters' loop throw InvalidStateError and wake nobody.
//
// Lifetime: destroying a Condition cancels the futures still waiting on it
// (CancelledError). Destroyed on another thread than their loop's (the one
// current at the last wait()), it logs an error and posts the cancelling to
// that loop's thread, touching neither the waiters nor the loop there (it
// may be being destroyed). If that loop is closed by then, the waiters are
// leaked, neither cancelled nor destroyed, and that is logged too.
#ifndef EDDY_SYNC_CONDITION_H_
#define EDDY_SYNC_CONDITION_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include "eddy/futures/source_location.h"
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/sync/internal/wait_timeout.h"
#include "eddy/sync/internal/waiter_queue.h"

namespace eddy {

class Condition {
 public:
  Condition() = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;
  ~Condition() { internal::cancel_waiters(waiters_, "Condition"); }

  // A future that completes when a notify() picks this waiter. With a
  // `timeout` it fails with TimeoutError if not notified within that time
  // (on the loop's clock). Cancelling the future stops the wait; it is then
  // skipped by notify().
  // Throws InvalidStateError if a timeout is given and the current
  // scheduler is not an IOLoop (with none current, IOLoop::current() is
  // used).
  [[nodiscard("wait() returns a Future that is done once the wait is over: co_await it")]]
  Future<void> wait(std::optional<absl::Duration> timeout = std::nullopt,
                    SourceLocation where = SourceLocation::current()) {
    Future<void> waiter = internal::make_waiter<void>(timeout, "Condition::wait",
                                                      "Condition::wait timed out", where);
    waiters_.push(waiter);
    return waiter;
  }

  // Wakes up to `n` waiters, oldest first, skipping those that timed out
  // or were cancelled. Returns how many were woken. A notify with nobody
  // waiting is lost (as with any condition variable).
  // Throws InvalidStateError (waking nobody) on a foreign thread (see
  // Threading); std::bad_alloc, waking nobody, if the loop has no room for
  // the completions.
  size_t notify(size_t n = 1) {
    waiters_.check_owner("Condition::notify");
    // Take the waiters first, then complete them: with no loop current a
    // completion runs callbacks inline, which may call notify() or wait()
    // again (Tornado's test_nested_notify).
    // Room first: once a waiter is popped nothing may throw, or it would be
    // lost. stored() bounds the number of live waiters.
    // And room for their completions' posts (see reserve_completions).
    std::vector<Future<void>> woken;
    woken.reserve(std::min(n, waiters_.stored()));
    waiters_.reserve_completions(n);
    while (woken.size() < n) {
      std::optional<Future<void>> w = waiters_.pop_live();
      if (!w.has_value()) break;
      woken.push_back(std::move(*w));
    }
    // An inline callback (no loop current) may have cancelled a later one.
    size_t count = 0;
    for (Future<void>& w : woken) {
      if (w.done()) continue;
      w.set_result();
      ++count;
    }
    return count;
  }

  // Wakes every waiter that is waiting now. Returns how many were woken.
  // Throws InvalidStateError (waking nobody) on a foreign thread;
  // std::bad_alloc, waking nobody, if the loop has no room for the
  // completions.
  size_t notify_all() {
    waiters_.check_owner("Condition::notify_all");
    // Both may throw (std::bad_alloc): nothing is taken yet.
    waiters_.reserve_completions(waiters_.stored());
    std::deque<Future<void>> taken;
    waiters_.take_all(taken);
    size_t woken = 0;
    for (Future<void>& w : taken) {
      if (w.done()) continue;
      w.set_result();
      ++woken;
    }
    return woken;
  }

  // How many futures are waiting (not finished). Linear; for diagnostics.
  size_t waiter_count() const { return waiters_.live_count(); }

 private:
  internal::WaiterQueue<Future<void>> waiters_;
};

}  // namespace eddy

#endif  // EDDY_SYNC_CONDITION_H_
