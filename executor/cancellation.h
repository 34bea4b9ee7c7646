// Cooperative cancellation for work offloaded to a pool: a CancellationSource
// signals, the CancellationTokens it hands out observe. A token may also carry
// a deadline, after which it reports expired().
//
// A running task cannot be stopped from outside (a thread is not
// interruptible); it is told. A blocking function that wants to be told
// takes a token as its first parameter (for a member function: the first
// after the object), and executors pass one in:
//
//   int crunch(eddy::CancellationToken token, const Input& in) {
//     for (const Chunk& c : in.chunks()) {
//       token.throw_if_cancelled();          // CancelledError / TimeoutError
//       work(c);
//     }
//     return total;
//   }
//   eddy::Future<int> f = loop.run_in_executor(
//       pool, eddy::Deadline::after(absl::Seconds(2)), crunch, std::cref(input));
//   ...
//   f.cancel();   // queued: the task never runs; running: the token says so
//
// What an executor does with a token (Executor::submit(token, fn, args...)):
// a task whose token is cancelled when a worker takes it does not run (its
// future is cancelled); one whose deadline has passed by then does not run
// either (its future fails with TimeoutError). Once the task runs, honouring
// the token is up to the function.
//
// Threading: every method of both types is safe from any thread. Tokens and
// sources are cheap handles (one shared allocation per source, none for a
// default-constructed token, which is never cancelled).
#ifndef EDDY_EXECUTOR_CANCELLATION_H_
#define EDDY_EXECUTOR_CANCELLATION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/errors.h"

namespace eddy {

// A point on the monotonic clock (std::chrono::steady_clock), so wall-clock
// jumps do not move it. Deadline::none() never passes.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  // No deadline.
  constexpr Deadline() = default;
  static constexpr Deadline none() { return Deadline(); }
  // `timeout` from now. A negative or zero timeout has already passed;
  // absl::InfiniteDuration(), or a timeout past the clock's range, means
  // none.
  static Deadline after(absl::Duration timeout) {
    const Clock::time_point now = Clock::now();
    // Saturate: now + a timeout past ~292 years (absl::Seconds(INT64_MAX),
    // 1000 years) overflows the clock's int64 nanoseconds and wrapped into
    // the past, so the deadline had passed at once. (Negative timeouts
    // cannot overflow: now is positive.)
    if (timeout >= absl::FromChrono(Clock::time_point::max() - now)) return Deadline();
    return Deadline(now + absl::ToChronoNanoseconds(timeout));
  }
  // At `when` on the steady clock.
  static constexpr Deadline at(Clock::time_point when) { return Deadline(when); }

  bool is_none() const { return when_ == Clock::time_point::max(); }
  Clock::time_point when() const { return when_; }
  // True once the deadline has passed (never for none()).
  bool passed() const { return !is_none() && Clock::now() >= when_; }
  // Time left: absl::InfiniteDuration() for none(), <= zero once passed.
  absl::Duration remaining() const {
    if (is_none()) return absl::InfiniteDuration();
    // In absl::Duration, whose range is far wider: when_ - now in int64
    // nanoseconds overflows for a deadline long past (time_point::min()).
    return absl::FromChrono(when_.time_since_epoch()) -
           absl::FromChrono(Clock::now().time_since_epoch());
  }

 private:
  constexpr explicit Deadline(Clock::time_point when) : when_(when) {}
  Clock::time_point when_ = Clock::time_point::max();
};

namespace internal {

// InvalidStateError("CancellationSource::<op>: the handle is empty (moved
// from)").
[[noreturn]] void throw_source_empty(const char* op);

struct CancellationAccess;
struct CancellationCallbackNode;

// Shared by a source and its tokens.
struct CancellationState {
  explicit CancellationState(Deadline d) : deadline(d) {}
  // Sets `requested`, wakes wait_for_cancel() and runs the registered
  // callbacks, on this thread. Returns true for the first call.
  bool request();

  std::atomic<bool> requested{false};
  const Deadline deadline;
  // For wait_for_cancel(): request() sets the flag under mu so a waiter
  // cannot miss the signal between its check and its wait; and for the
  // callbacks: their list, and the one running.
  std::mutex mu;
  std::condition_variable cv;
  CancellationCallbackNode* callbacks = nullptr;  // registration order (a ring)
  CancellationCallbackNode* running = nullptr;
};

}  // namespace internal

// The observing side. Copy it freely; all copies see the same signal.
class CancellationToken {
 public:
  // A token that is never cancelled and has no deadline (no allocation).
  CancellationToken() = default;

  // True once the source's cancel() was called.
  bool cancel_requested() const {
    return state_ != nullptr && state_->requested.load(std::memory_order_acquire);
  }
  // True once the deadline has passed.
  bool expired() const { return state_ != nullptr && state_->deadline.passed(); }
  // cancel_requested() || expired(): the function should stop.
  bool cancelled() const { return cancel_requested() || expired(); }

  Deadline deadline() const { return state_ != nullptr ? state_->deadline : Deadline(); }
  // False for a default-constructed token: nothing can ever signal it.
  bool can_be_cancelled() const { return state_ != nullptr; }

  // Throws CancelledError if cancellation was requested, TimeoutError if the
  // deadline has passed; returns otherwise.
  void throw_if_cancelled() const {
    if (cancel_requested()) throw CancelledError("the offloaded call was cancelled");
    if (expired()) throw TimeoutError("the offloaded call's deadline has passed");
  }

  // Blocks until cancellation is requested, the deadline passes or `timeout`
  // elapses, whichever is first; returns cancelled(). A cancellable sleep
  // for blocking code ("wait up to 5 s unless told to stop").
  bool wait_for_cancel(absl::Duration timeout) const {
    Deadline until = Deadline::after(timeout);
    if (state_ != nullptr && state_->deadline.when() < until.when()) until = state_->deadline;
    if (state_ == nullptr) {
      // Nothing can wake us: this is a plain sleep (or forever).
      std::mutex mu;
      std::condition_variable cv;
      std::unique_lock<std::mutex> lock(mu);
      if (until.is_none()) {
        cv.wait(lock, [] { return false; });
      } else {
        cv.wait_until(lock, until.when(), [] { return false; });
      }
      return false;
    }
    std::unique_lock<std::mutex> lock(state_->mu);
    auto requested = [this] { return state_->requested.load(std::memory_order_acquire); };
    if (until.is_none()) {
      state_->cv.wait(lock, requested);
    } else {
      state_->cv.wait_until(lock, until.when(), requested);
    }
    return cancelled();
  }

 private:
  friend class CancellationSource;
  friend class CancellationCallback;
  friend struct internal::CancellationAccess;
  explicit CancellationToken(std::shared_ptr<internal::CancellationState> s)
      : state_(std::move(s)) {}
  std::shared_ptr<internal::CancellationState> state_;
};

// The signalling side: owns the shared state its tokens observe. Copies
// share it; a moved-from source is empty: valid() is false and every other
// method throws InvalidStateError.
class CancellationSource {
 public:
  // A source without a deadline (one allocation).
  CancellationSource() : CancellationSource(Deadline::none()) {}
  // Tokens from this source also report expired() once `deadline` passes.
  explicit CancellationSource(Deadline deadline)
      : state_(std::make_shared<internal::CancellationState>(deadline)) {}

  // False only for a moved-from source.
  bool valid() const noexcept { return state_ != nullptr; }

  // A token observing this source.
  // Throws InvalidStateError on a moved-from source (whose token could
  // never be cancelled).
  CancellationToken token() const { return CancellationToken(state("token")); }

  // Requests cancellation: every token reports cancel_requested() from now
  // on and wait_for_cancel() returns. Returns true for the first call.
  // Throws InvalidStateError on a moved-from source.
  // Runs the tokens' CancellationCallbacks on this thread, in registration
  // order, before it returns.
  bool cancel() { return state("cancel")->request(); }

  // Throws InvalidStateError on a moved-from source, as does deadline().
  bool cancel_requested() const {
    return state("cancel_requested")->requested.load(std::memory_order_acquire);
  }
  Deadline deadline() const { return state("deadline")->deadline; }

 private:
  const std::shared_ptr<internal::CancellationState>& state(const char* op) const {
    if (state_ == nullptr) [[unlikely]] internal::throw_source_empty(op);
    return state_;
  }

  std::shared_ptr<internal::CancellationState> state_;
  friend struct internal::CancellationAccess;
};

namespace internal {
struct CancellationCallbackNode {
  CancellationCallbackNode* prev = nullptr;  // guarded by the state's mu
  CancellationCallbackNode* next = nullptr;
  std::thread::id runner;                    // while running
  bool* destroyed_while_running = nullptr;   // set by the runner, for its own thread
  absl::AnyInvocable<void()> fn;
};
}  // namespace internal

// Runs a function when a token's source is cancelled, for blocking code
// that cancellation must wake: close the socket a worker is blocked on,
// interrupt a driver call, forward to a std::stop_source. (As
// std::stop_callback, for an eddy::CancellationToken.)
//
//   int fetch(eddy::CancellationToken token, Socket& s) {
//     eddy::CancellationCallback on_cancel(token, [&s] { s.shutdown(); });
//     return s.read_all();   // returns early once the source is cancelled
//   }
//
// `fn` runs once, on the thread that calls CancellationSource::cancel()
// (inside that call), or at once, in this constructor, if cancellation was
// requested already. It does not run when only the token's deadline passes
// (nothing runs at a deadline: poll expired()), nor for a token that can
// never be cancelled. Destroying the CancellationCallback unregisters it;
// if `fn` is running on another thread just then, the destructor waits for
// it to return (destroying it from inside `fn` does not wait). `fn` must
// not throw: an exception out of it is logged and dropped.
//
// Threading: construct and destroy on any thread; not copyable or movable.
class CancellationCallback {
 public:
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  CancellationCallback(const CancellationToken& token, F&& fn)
      : CancellationCallback(token, absl::AnyInvocable<void()>(std::forward<F>(fn))) {}
  CancellationCallback(const CancellationToken& token, absl::AnyInvocable<void()> fn);
  ~CancellationCallback();
  CancellationCallback(const CancellationCallback&) = delete;
  CancellationCallback& operator=(const CancellationCallback&) = delete;

 private:
  std::shared_ptr<internal::CancellationState> state_;  // null: nothing registered
  internal::CancellationCallbackNode node_;
};

namespace internal {

struct CancellationAccess {
  // A token that observes `source` without sharing its ownership: copying
  // and destroying it touch no reference count (a shared count that every
  // copy and drop on another core would move between cores). For the
  // library's own calls only, which read it while `source` is known to be
  // alive (Executor::map: once a call's future is running; never handed to
  // user code, which could keep it).
  static CancellationToken borrowed(const CancellationSource& source) {
    const std::shared_ptr<CancellationState>& owner = source.state("token");
    return CancellationToken(std::shared_ptr<CancellationState>(
        std::shared_ptr<CancellationState>(), owner.get()));
  }
};

}  // namespace internal

}  // namespace eddy

#endif  // EDDY_EXECUTOR_CANCELLATION_H_
