// Lock: mutual exclusion between coroutines on one loop (Tornado's
// locks.Lock).
//
// The loop runs one callback at a time, so plain code needs no lock; a Lock
// is for a critical section that spans co_await points, where another
// coroutine could otherwise run in the middle.
//
//   eddy::Lock lock;
//
//   eddy::Future<void> append_record(Record r) {
//     auto guard = co_await lock.acquire();   // keep it: it holds the lock
//     co_await file.write(r.header());        // no other writer in between
//     co_await file.write(r.body());
//   }                                         // `guard` releases the lock
//
//   // Tornado's manual style: detach the guard, release by hand.
//   (co_await lock.acquire()).detach();
//   ...
//   lock.release();
//
// Beware: `co_await lock.acquire();` on its own discards the guard, which
// unlocks at once.
//
// Fairness (as Tornado): the lock goes to waiters in the order they called
// acquire(); a waiter whose wait timed out or was cancelled is skipped. The
// lock is not reentrant and not owned: a second acquire() from the same
// coroutine waits forever, and any code may release().
//
// Threading: loop-affine and not thread-safe: use a Lock (and its guards)
// only on the thread of the loop current when it is used. Waiters' callbacks
// run on that loop on a later turn, never inside release(). As for a
// Semaphore: release() on a foreign thread while waiters are queued throws
// InvalidStateError (with EDDY_THREAD_CHECKS) and changes nothing; a guard
// reset or destroyed there, waiters queued or not, logs an error and posts
// the unlock to the lock's loop (the one current at the last acquire()),
// touching neither the lock nor the loop there. If that loop is closed by
// then, the unlock is lost: the lock stays locked (logged).
//
// Lifetime: destroying a Lock cancels the futures still waiting for it
// (CancelledError); a guard that outlives its Lock releases nothing.
// Destroyed on another thread than its loop's, it logs an error and posts
// the cancelling to that loop's thread; if that loop is closed by then, the
// waiters are leaked instead (logged).
#ifndef EDDY_SYNC_LOCK_H_
#define EDDY_SYNC_LOCK_H_

#include <cstddef>
#include <optional>
#include "eddy/futures/source_location.h"

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/sync/semaphore.h"

namespace eddy {

class Lock {
 public:
  // The guard acquire() hands out: move-only, unlocks when destroyed or on
  // reset(); detach() forgets it without unlocking (see Semaphore::Releaser).
  using Releaser = Semaphore::Releaser;

  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Locks. The future completes with the guard: at once (already done) if
  // the lock is free and nobody waits, else when the lock is handed over,
  // oldest waiter first. With a `timeout` it fails with TimeoutError if the
  // lock did not come in that time (on the loop's clock); cancelling it
  // stops the wait. Either way the lock is not taken.
  // Throws InvalidStateError if it must wait with a timeout and the
  // current scheduler is not an IOLoop (with none current, IOLoop::current()
  // is used).
  [[nodiscard("acquire() returns the Future of the guard: auto guard = co_await x.acquire();")]]
  Future<Releaser> acquire(std::optional<absl::Duration> timeout = std::nullopt,
                           SourceLocation where = SourceLocation::current()) {
    return semaphore_.acquire(timeout, where);
  }

  // Unlocks: the oldest pending waiter gets the lock (its future completes
  // on a later turn), or it becomes free.
  // Throws InvalidStateError if the lock is not locked, or on a foreign
  // thread (see Threading); std::bad_alloc, the lock still held and the
  // waiter still waiting, if the loop has no room for the waiter's
  // completion (retry).
  void release() {
    try {
      semaphore_.release_as("Lock::release");
    } catch (const SemaphoreOverReleaseError&) {
      throw InvalidStateError("Lock::release: the lock is not locked");
    }
  }

  // True while somebody holds the lock.
  bool locked() const { return semaphore_.value() == 0; }

  // How many acquire() futures are waiting (not finished). Linear; for
  // diagnostics.
  size_t waiter_count() const { return semaphore_.waiter_count(); }

 private:
  BoundedSemaphore semaphore_{1};
};

}  // namespace eddy

#endif  // EDDY_SYNC_LOCK_H_
