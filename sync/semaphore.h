// Semaphore and BoundedSemaphore: a counter of permits that coroutines and
// callbacks on one loop acquire and release (Tornado's locks.Semaphore and
// locks.BoundedSemaphore).
//
// acquire() takes a permit, waiting while there is none; its future holds a
// Releaser, a move-only guard that gives the permit back when it goes away
// (or on reset()). release() gives one back by hand.
//
//   eddy::Semaphore slots(8);                   // at most 8 downloads at once
//
//   eddy::Future<Page> download(Url url) {
//     auto permit = co_await slots.acquire();   // keep it: it is the permit
//     co_return co_await fetch(url);            // released when `permit` dies
//   }
//
//   // Tornado's manual style: detach the guard, release by hand later.
//   (co_await slots.acquire()).detach();
//   ...
//   slots.release();
//
// Beware: `co_await slots.acquire();` on its own discards the guard, which
// releases the permit at once.
//
// Fairness (as Tornado): waiters get permits in the order they called
// acquire(). A waiter whose wait timed out or was cancelled is skipped and
// takes no permit. A permit released while someone waits goes straight to
// the oldest waiter, so a later acquire() cannot overtake it.
//
// Threading: loop-affine and not thread-safe: use a Semaphore (and its
// Releasers) only on the thread of the loop current when it is used. That
// loop is the semaphore's: each acquire() records it (its thread, and a
// door into it that any thread may use, RemoteScheduler, taken the first
// time), waiters or not. Waiters' callbacks run on that loop on a later
// turn, never inside release(). In builds with EDDY_THREAD_CHECKS,
// release() on another thread while waiters are queued throws
// InvalidStateError and changes nothing. A Releaser reset or destroyed on
// another thread (a guard dropped in a pool task) logs an error and posts
// its release to that loop, touching neither the semaphore nor the loop
// there: the permit reaches the next waiter (or the count) on the loop's
// thread instead of racing it. If that loop is closed by then, the release
// cannot run anywhere: the permit is not given back (logged too).
//
// Lifetime: destroying a Semaphore cancels the futures still waiting on it
// (CancelledError); a Releaser that outlives its Semaphore releases nothing.
// Destroyed on another thread than its loop's, it logs an error and posts
// the waiters to that loop, whose thread cancels them. If that loop is
// closed by then, they are leaked, neither cancelled nor destroyed (they
// belong to that loop's thread, which may still be tearing them down), and
// that is logged too.
#ifndef EDDY_SYNC_SEMAPHORE_H_
#define EDDY_SYNC_SEMAPHORE_H_

#include <cstddef>
#include <memory>
#include <optional>
#include "eddy/futures/source_location.h"
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"

namespace eddy {

// BoundedSemaphore::release() past the initial value: the permit count
// would exceed what the semaphore started with, which means some release()
// has no matching acquire(). An InvalidStateError, hence a std::logic_error.
class SemaphoreOverReleaseError : public InvalidStateError {
 public:
  SemaphoreOverReleaseError() : InvalidStateError("Semaphore released too many times") {}
  explicit SemaphoreOverReleaseError(const std::string& what) : InvalidStateError(what) {}
};

namespace internal {
struct SemaphoreState;
}  // namespace internal

class Semaphore {
 public:
  // Holds one permit and gives it back when destroyed. Move-only; an empty
  // Releaser (default-constructed, moved-from, reset or detached) holds
  // nothing. [[nodiscard]]: `co_await lock.acquire();` on its own releases
  // at once (clang warns about it; GCC only about a direct call's result).
  class [[nodiscard("the lock or permit is released when this guard goes: keep it (auto guard = "
                    "co_await x.acquire();), or detach() it and call release() later")]] Releaser {
   public:
    Releaser() = default;
    Releaser(Releaser&& other) noexcept = default;
    // Releases the permit held now (if any), then takes `other`'s.
    Releaser& operator=(Releaser&& other) noexcept {
      if (this != &other) {
        reset();
        state_ = std::move(other.state_);
      }
      return *this;
    }
    Releaser(const Releaser&) = delete;
    Releaser& operator=(const Releaser&) = delete;
    ~Releaser() { reset(); }

    // Gives the permit back now (a no-op if empty, or if the semaphore is
    // gone). Never throws: an error from the release (a BoundedSemaphore
    // or Lock already released by hand) is logged through eddy::log. On
    // another thread than the semaphore's loop's, the release is logged as
    // an error and posted to that loop, or lost if it is closed (see
    // Threading).
    void reset() noexcept;

    // Forgets the permit without releasing it: whoever detaches promises a
    // release() by hand (Tornado's acquire()/release() style).
    void detach() noexcept { state_.reset(); }

    // True while it holds a permit of a semaphore that still exists.
    bool holds() const noexcept { return !state_.expired(); }
    explicit operator bool() const noexcept { return holds(); }

   private:
    friend struct internal::SemaphoreState;
    explicit Releaser(std::weak_ptr<internal::SemaphoreState> state)
        : state_(std::move(state)) {}
    // reset() on a thread that is not the semaphore's loop's.
    static void release_elsewhere(std::shared_ptr<internal::SemaphoreState> state) noexcept;

    std::weak_ptr<internal::SemaphoreState> state_;
  };

  // A semaphore with `value` permits.
  // Throws std::invalid_argument if `value` is negative.
  explicit Semaphore(int value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore();

  // Takes a permit. The future completes with a Releaser holding it: at
  // once (already done) if a permit is free and nobody waits, else when a
  // release() hands one over, oldest waiter first. With a `timeout` it
  // fails with TimeoutError if no permit arrived in that time (on the
  // loop's clock); cancelling it stops the wait. Either way no permit is
  // consumed.
  // Throws InvalidStateError if it must wait with a timeout and the
  // current scheduler is not an IOLoop (with none current, IOLoop::current()
  // is used).
  [[nodiscard("acquire() returns the Future of the guard: auto guard = co_await x.acquire();")]]
  Future<Releaser> acquire(std::optional<absl::Duration> timeout = std::nullopt,
                           SourceLocation where = SourceLocation::current());

  // Gives a permit back: to the oldest pending waiter if there is one (its
  // future completes on a later turn), else to the counter.
  // Throws SemaphoreOverReleaseError on a BoundedSemaphore already at its
  // initial value; InvalidStateError, changing nothing, on a foreign thread
  // while waiters are queued (see Threading); std::bad_alloc, with the
  // permit still held and the waiter still waiting, if the loop has no room
  // for the waiter's completion (retry).
  void release();

  // The free permits now.
  int value() const;

  // How many acquire() futures are waiting (not finished). Linear; for
  // diagnostics.
  size_t waiter_count() const;

 protected:
  Semaphore(int value, bool bounded);

 private:
  friend class Lock;
  // release(), naming `op` in a foreign-thread error.
  void release_as(const char* op);

  std::shared_ptr<internal::SemaphoreState> state_;
};

// A Semaphore that refuses to be released past its initial value, which
// catches a release() without a matching acquire().
//
//   eddy::BoundedSemaphore sem(2);
//   sem.release();          // throws SemaphoreOverReleaseError
class BoundedSemaphore : public Semaphore {
 public:
  // Throws std::invalid_argument if `value` is negative.
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, /*bounded=*/true) {}
};

}  // namespace eddy

#endif  // EDDY_SYNC_SEMAPHORE_H_
