// ConcurrentFuture<T>: a thread-safe future, as Python's
// concurrent.futures.Future. Executors return one from submit(); any thread
// may wait on it, poll it or add callbacks.
//
//   eddy::ConcurrentFuture<int> f = pool.submit([] { return slow_sum(); });
//   int v = f.result(absl::Seconds(5));      // blocks; TimeoutError after 5 s
//
// On a loop thread do not block: hand it to the loop instead,
//   loop.add_future(f, [](eddy::ConcurrentFuture<int>& f) { use(f.result()); });
// or co_await it in a coroutine.
//
// States: pending -> running (set_running_or_notify_cancel) -> one of
// {value, exception}; pending -> cancelled. Exactly one completion wins
// under races; the losers of set_result/set_exception get
// InvalidStateError, a losing cancel() returns false.
//
// A ConcurrentFuture is a handle to shared state, like Future: copies share
// it, and a moved-from handle is empty: valid() is false and every other
// call throws InvalidStateError (as do the library calls it is given to).
//
// Threading: every method is safe from any thread. Callbacks run on the
// thread that completes the future, or inline in add_done_callback() when it
// is already done. Blocking waits never hold the lock while a callback runs.
#ifndef EDDY_FUTURES_CONCURRENT_FUTURE_H_
#define EDDY_FUTURES_CONCURRENT_FUTURE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include "eddy/futures/source_location.h"
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/futures/internal/copy_or_move.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/internal/recycler.h"
#include "eddy/futures/log.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

template <class T = void>
class ConcurrentFuture;

namespace internal {

// kCompleting: a completion has claimed the future and is storing its
// outcome; to everybody else it still looks running.
enum class ConcurrentStatus : uint8_t { kPending, kRunning, kValue, kException, kCancelled, kCompleting };

[[noreturn]] void throw_concurrent_invalid(const char* op, const char* why);
// InvalidStateError("ConcurrentFuture::<op>: the handle is empty (moved from)").
[[noreturn]] void throw_concurrent_no_state(const char* op);
[[noreturn]] void throw_concurrent_timeout(const char* op, absl::Duration timeout);

// The state word: the status in the low bits, plus kListeners once a
// callback or a blocked waiter has registered (under the state's lock).
// Transitions are compare-and-swap on the word, so marking a task running,
// reading a done future and completing a future nobody listens to take no
// lock; a completion that finds kListeners takes the lock to hand out the
// callbacks and the waiters. A registrar sets kListeners under the lock
// *after* adding itself and re-checks the status it replaced: a completion
// that got in first left the registrar to run (or stop waiting) on its own.
inline constexpr uint8_t kStatusMask = 0x7;
inline constexpr uint8_t kListeners = 0x8;

// The end of a wait `timeout` from now: none for no timeout, or for one
// past the clock's range (absl::InfiniteDuration(), absl::Seconds(INT64_MAX)
// would wrap into the past).
class WaitDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit WaitDeadline(std::optional<absl::Duration> timeout)
      : timeout_(timeout.value_or(absl::InfiniteDuration())) {
    const Clock::time_point now = Clock::now();
    if (timeout && *timeout < absl::FromChrono(Clock::time_point::max() - now)) {
      at_ = now + absl::ToChronoNanoseconds(*timeout);
      forever_ = false;
    }
  }
  bool forever() const { return forever_; }
  // True once the deadline (if any) has passed.
  bool passed() const { return !forever_ && Clock::now() >= at_; }
  Clock::time_point at() const { return at_; }
  // The timeout given (absl::InfiniteDuration() for none).
  absl::Duration timeout() const { return timeout_; }

 private:
  // Plain values, not std::optionals: GCC's -Wmaybe-uninitialized, which a
  // consumer may build with at -O1 and above, cannot follow an optional's
  // engaged flag through an inlined wait.
  absl::Duration timeout_;
  Clock::time_point at_ = Clock::time_point::max();
  bool forever_ = true;
};

// A listener woken when its future completes, before the callbacks run:
// linked into the state's list under the state's lock, taken off it (all
// at once) by the completion, which then calls wake() on each, unlocked.
// A waiter that stops waiting first unlinks itself under the lock; if it
// finds itself gone, a completion has it and will call wake(), and the
// waiter must outlive that call. Waiters are not allocated by the library:
// they live in whoever waits (a blocked thread's stack, a multi-future
// wait's board), so a state holds only the list head.
struct ConcurrentWaiter {
  ConcurrentWaiter* next = nullptr;  // guarded by the state's lock
  // Called once, by the completion that took this waiter off the list, on
  // the completing thread; the state is alive and done. The waiter may be
  // destroyed by its owner as soon as wake() has finished with it.
  virtual void wake() = 0;

 protected:
  ~ConcurrentWaiter() = default;
};

// A thread blocked in result()/exception(). Each brings its own mutex and
// condition variable (on its stack), so that a state, built and destroyed
// for every submitted task, holds neither: they took 88 of its bytes, and
// std::condition_variable's destructor is an atomic read-modify-write even
// when nobody ever waited.
struct BlockingWaiter final : ConcurrentWaiter {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;  // guarded by mu

  // Under mu, so the waiter cannot see `woken` and destroy itself before
  // the notify.
  void wake() override {
    std::lock_guard<std::mutex> lock(mu);
    woken = true;
    cv.notify_one();
  }
};

template <class T>
class EmbeddedConcurrentState;

// Reference counted by its ConcurrentFuture handles (intrusive: one count,
// and no control block beside the state). 96 bytes for small T: the
// producer of a task writes all of it into a recycled block, which is
// often still in a worker's cache, so every line counts.
// A state is either a block of its own (ConcurrentFuture's constructor),
// freed by its last release(), or part of a larger object
// (EmbeddedConcurrentState), which its last release() asks to free itself.
template <class T>
class ConcurrentState : public Recycled {
  static_assert(ValueTypeCheck<T>::kOk);

 public:
  using Callback = absl::AnyInvocable<void(ConcurrentFuture<T>&)>;

  explicit ConcurrentState(SourceLocation created) : created_(created) {}
  ~ConcurrentState() {
    if (status(word.load(std::memory_order_acquire)) == ConcurrentStatus::kException &&
        !retrieved_.load(std::memory_order_relaxed)) {
      log_unretrieved(error_, created_);
    }
  }

  static ConcurrentStatus status(uint8_t w) { return static_cast<ConcurrentStatus>(w & kStatusMask); }

  // Drops one handle's reference; the last one frees the state. A sole
  // owner (the common last release, e.g. a worker dropping a finished task
  // whose submitter dropped its handle) skips the read-modify-write: nobody
  // else can add a reference without a handle.
  void release() noexcept {
    if (refs.load(std::memory_order_acquire) == 1 ||
        refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (embedded_) {
        static_cast<EmbeddedConcurrentState<T>*>(this)->free_block();
      } else {
        delete this;
      }
    }
  }

  // The lock guarding the listeners (waiters, callbacks): held for a few
  // pointer moves by registrars and by the completion that hands them out,
  // never while a callback runs or a waiter sleeps.
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  std::atomic<uint8_t> word{static_cast<uint8_t>(ConcurrentStatus::kPending)};
  std::atomic<bool> retrieved_{false};
  std::atomic<bool> locked_{false};
  // Set before the state is shared, read-only after. In the byte that
  // padding left free beside the flags, so the state does not grow.
  const bool embedded_ = false;
  std::atomic<uint32_t> refs{1};
  std::exception_ptr error_;         // written once by the completion that won, then read-only
  SourceLocation created_;
  // The loop whose thread must run to complete this future (set by
  // IOLoop::run_in_loop before the future is shared; read-only after). A
  // blocking wait while that loop is current could only run out (without a
  // timeout: deadlock), so result()/exception() throw instead. Compared,
  // never dereferenced.
  const Scheduler* completed_on = nullptr;
  ConcurrentWaiter* waiters = nullptr;  // guarded by the lock; woken by the completion
  // Guarded by the lock. The first callback is stored inline (the common
  // single callback, e.g. the loop's delivery, costs no allocation), the
  // rest behind a pointer; invariant: there are none of those whenever
  // first_callback is empty.
  std::unique_ptr<std::vector<Callback>> more_callbacks;
  std::optional<Stored<T>> value_;   // like error_
  Callback first_callback;

 protected:
  struct Embedded {};
  ConcurrentState(SourceLocation created, Embedded) : embedded_(true), created_(created) {}
};

// A ConcurrentState inside a larger object, so that the two take one
// allocation: an executor's task embeds its future's state (one block per
// submit instead of two). Handles count references to it as to any state;
// the last release() calls free_block() instead of deleting the state. The
// owner counts its own reference too if it must outlive the handles (a
// task until it has run), and frees the object, state included, in
// free_block().
// (Never deleted through a pointer to its base: release() calls
// free_block() for an embedded state. GCC's -Wnon-virtual-dtor, which a
// consumer may build with, cannot tell.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
template <class T>
class EmbeddedConcurrentState : public ConcurrentState<T> {
 protected:
  explicit EmbeddedConcurrentState(SourceLocation created)
      : ConcurrentState<T>(created, typename ConcurrentState<T>::Embedded{}) {}
  ~EmbeddedConcurrentState() = default;

 private:
  friend class ConcurrentState<T>;
  // Destroys the object and frees its memory. Called once, by the last
  // release(), on whichever thread that happens.
  virtual void free_block() noexcept = 0;
};
#pragma GCC diagnostic pop

[[noreturn]] void throw_concurrent_deadlock(const char* op);

// Library-internal access to a ConcurrentFuture's state (the loop). Not for
// users.
struct ConcurrentAccess {
  // The state of a future the user handed to library entry point `who`
  // ("multi"): an empty (moved-from) handle throws
  // InvalidStateError("<who>: <problem> (moved from)"), with `problem`
  // saying which argument ("a child ConcurrentFuture is empty").
  template <class T>
  static ConcurrentState<T>& state(const ConcurrentFuture<T>& f, const char* who,
                                   const char* problem) {
    if (f.state_ == nullptr) [[unlikely]] throw_empty_handle(who, problem);
    return *f.state_;
  }
  // The same for a future the library made or has checked already: never
  // empty unless the library itself is wrong.
  template <class T>
  static ConcurrentState<T>& state(const ConcurrentFuture<T>& f) {
    return state(f, "ConcurrentFuture", "a handle the library holds is empty");
  }
  // Links `w` into the future's waiters, to be woken when it completes
  // (before its callbacks run). Returns false, linking nothing, if the
  // future is done already.
  template <class T>
  static bool link_waiter(const ConcurrentFuture<T>& f, ConcurrentWaiter& w) {
    ConcurrentState<T>& s = *f.state_;
    std::lock_guard<ConcurrentState<T>> lock(s);
    w.next = s.waiters;
    s.waiters = &w;
    const uint8_t was = s.word.fetch_or(kListeners, std::memory_order_acq_rel);
    if (is_done(ConcurrentState<T>::status(was))) {
      s.waiters = w.next;  // the completion took the list before we got in
      return false;
    }
    return true;
  }
  // Takes a linked `w` off the list. Returns false if a completion took it
  // first: that completion calls (or is calling) w.wake(), and `w` must
  // outlive the call.
  template <class T>
  static bool unlink_waiter(const ConcurrentFuture<T>& f, ConcurrentWaiter& w) {
    ConcurrentState<T>& s = *f.state_;
    std::lock_guard<ConcurrentState<T>> lock(s);
    for (ConcurrentWaiter** p = &s.waiters; *p != nullptr; p = &(*p)->next) {
      if (*p == &w) {
        *p = w.next;
        return true;
      }
    }
    return false;
  }
  // True when done callbacks are registered (the completion runs them on
  // the completing thread).
  template <class T>
  static bool has_callbacks(const ConcurrentFuture<T>& f) {
    ConcurrentState<T>& s = *f.state_;
    std::lock_guard<ConcurrentState<T>> lock(s);
    return static_cast<bool>(s.first_callback);
  }
  // share_unpublished, unobserved and complete_unobserved below are for an
  // executor's own task future, which is never empty: unchecked.
  // A handle that takes over the reference the state was created with (an
  // EmbeddedConcurrentState's owner's own).
  template <class T>
  static ConcurrentFuture<T> adopt(ConcurrentState<T>& s) {
    return ConcurrentFuture<T>(&s, typename ConcurrentFuture<T>::Adopt{});
  }
  // A second handle on a state that no other thread can see yet (an
  // executor's task, before it is queued): the count goes up with a plain
  // store, not a locked instruction, which on the submitting thread would
  // wait for every store before it (the task's and the state's, often
  // misses) to drain.
  template <class T>
  static ConcurrentFuture<T> share_unpublished(const ConcurrentFuture<T>& f) {
    ConcurrentState<T>* s = f.state_;
    s->refs.store(s->refs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return ConcurrentFuture<T>(s, typename ConcurrentFuture<T>::Adopt{});
  }
  // True when `f` is the only handle on a pending state and nothing
  // listens to it (no callback, no waiter): nobody can then read, cancel
  // or complete the future but the caller, until it makes another handle.
  // The acquire load pairs with the release of the last other handle, so
  // a listener registered before that release shows in the word.
  template <class T>
  static bool unobserved(const ConcurrentFuture<T>& f) {
    const ConcurrentState<T>* s = f.state_;
    return s->refs.load(std::memory_order_acquire) == 1 &&
           s->word.load(std::memory_order_relaxed) ==
               static_cast<uint8_t>(ConcurrentStatus::kPending);
  }
  // Completes an unobserved() future with a value, without the atomic
  // claim and publish a completion otherwise makes (no other thread can
  // look). Throws what the value's construction throws, leaving it pending.
  template <class T, class... A>
  static void complete_unobserved(const ConcurrentFuture<T>& f, A&&... args) {
    ConcurrentState<T>* s = f.state_;
    s->value_.emplace(std::forward<A>(args)...);
    s->word.store(static_cast<uint8_t>(ConcurrentStatus::kValue), std::memory_order_relaxed);
  }
};

inline bool is_done(ConcurrentStatus s) {
  return s == ConcurrentStatus::kValue || s == ConcurrentStatus::kException ||
         s == ConcurrentStatus::kCancelled;
}

// (Declared in future.h.) True when `from` is the only handle on its state:
// nobody else can then read the value, nor get a handle to read it (handles
// are only made from handles), until the caller makes one, so the caller
// may move the value out. A count above one may be a handle that is about
// to go (a worker finishing the task): the value is then copied, which is
// only slower. The acquire load pairs with the release of the last other
// handle (release()'s fetch_sub), so whatever that holder read of the value
// happened before the move.
template <class T>
bool may_take_value(const ConcurrentFuture<T>& from) {
  return ConcurrentAccess::state(from).refs.load(std::memory_order_acquire) == 1;
}

}  // namespace internal

template <class T>
class ConcurrentFuture {
  static_assert(internal::ValueTypeCheck<T>::kOk);

 public:
  using value_type = T;

  // A pending future. `where` names it in the "never retrieved" log line.
  ConcurrentFuture(SourceLocation where = SourceLocation::current())
      : state_(new internal::ConcurrentState<T>(where)) {}

  ConcurrentFuture(const ConcurrentFuture& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  ConcurrentFuture(ConcurrentFuture&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  ConcurrentFuture& operator=(const ConcurrentFuture& other) noexcept {
    if (other.state_ != nullptr) other.state_->refs.fetch_add(1, std::memory_order_relaxed);
    if (state_ != nullptr) state_->release();
    state_ = other.state_;
    return *this;
  }
  ConcurrentFuture& operator=(ConcurrentFuture&& other) noexcept {
    if (this != &other) {
      if (state_ != nullptr) state_->release();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~ConcurrentFuture() {
    if (state_ != nullptr) state_->release();
  }

  // False only for a moved-from handle; every other call on such a handle
  // throws InvalidStateError("ConcurrentFuture::<op>: the handle is empty
  // (moved from)").
  bool valid() const noexcept { return state_ != nullptr; }

  bool done() const { return internal::is_done(status("done")); }
  bool cancelled() const { return status("cancelled") == internal::ConcurrentStatus::kCancelled; }
  // True between set_running_or_notify_cancel() and completion.
  bool running() const {
    internal::ConcurrentStatus s = status("running");
    return s == internal::ConcurrentStatus::kRunning || s == internal::ConcurrentStatus::kCompleting;
  }

  // Blocks until done (at most `timeout`), then returns a reference to the
  // value (shared by all handles; valid while any handle lives) or rethrows
  // the stored exception. The library's consumers (an rvalue co_await,
  // chain_future) take the value out only from the last handle, except a
  // move-only one, which they move out regardless.
  // Throws CancelledError if cancelled, TimeoutError if not done in time.
  // Never block on a loop thread for work that needs that loop to finish:
  // the wait would last forever, or for the whole timeout, and the work
  // could not finish meanwhile (use add_future or co_await). Where that is
  // detectable (a pending future from IOLoop::run_in_loop, waited on while
  // its loop is current) it throws InvalidStateError instead, with or
  // without a timeout; a zero (or negative) timeout only looks, and throws
  // TimeoutError as usual.
  std::add_lvalue_reference_t<T> result(
      std::optional<absl::Duration> timeout = std::nullopt) const& {
    internal::ConcurrentStatus s = wait("result", timeout);
    if (s == internal::ConcurrentStatus::kCancelled) throw CancelledError();
    if (s == internal::ConcurrentStatus::kException) {
      state_->retrieved_.store(true, std::memory_order_relaxed);
      std::rethrow_exception(state_->error_);
    }
    if constexpr (!std::is_void_v<T>) return *state_->value_;
  }
  // On a temporary (`pool.submit(query).result()`, or std::move(f)): the
  // value itself, since a reference would die with the handle (`for (auto&
  // row : pool.submit(query).result())`). It is moved out when this is the
  // last handle, and copied while others remain (a worker that has not yet
  // let go of its handle counts: the copy is only slower); a move-only
  // value (a container of them included) is moved regardless: keep no
  // other reader of it (the rule of an rvalue co_await).
  // Blocks and throws as above.
  T result(std::optional<absl::Duration> timeout = std::nullopt) && {
    if constexpr (std::is_void_v<T>) {
      std::as_const(*this).result(timeout);
    } else {
      T& value = std::as_const(*this).result(timeout);
      return internal::take_or_copy(value, [this] { return internal::may_take_value(*this); });
    }
  }

  // Blocks like result(); returns the stored exception or nullptr.
  // Throws CancelledError if cancelled, TimeoutError if not done in time,
  // InvalidStateError where result() does.
  std::exception_ptr exception(std::optional<absl::Duration> timeout = std::nullopt) const {
    internal::ConcurrentStatus s = wait("exception", timeout);
    if (s == internal::ConcurrentStatus::kCancelled) throw CancelledError();
    if (s == internal::ConcurrentStatus::kException) {
      state_->retrieved_.store(true, std::memory_order_relaxed);
      return state_->error_;
    }
    return nullptr;
  }

  // Cancels the future if it is still pending (queued, not yet running).
  // Returns true if it is cancelled now (or already was), false if it is
  // running or done. Callbacks run on this thread.
  bool cancel() {
    uint8_t w = state("cancel")->word.load(std::memory_order_acquire);
    std::optional<ConcurrentFuture> self;
    for (;;) {
      internal::ConcurrentStatus s = internal::ConcurrentState<T>::status(w);
      if (s == internal::ConcurrentStatus::kCancelled) return true;
      if (s == internal::ConcurrentStatus::kCompleting) [[unlikely]] {
        w = wait_out_completing();  // its store may throw: pending again
        continue;
      }
      if (s != internal::ConcurrentStatus::kPending) return false;
      const uint8_t to =
          static_cast<uint8_t>(internal::ConcurrentStatus::kCancelled) | (w & internal::kListeners);
      if ((w & internal::kListeners) && !self) self.emplace(*this);  // see notify_listeners
      if (state_->word.compare_exchange_weak(w, to, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
        break;
      }
    }
    if (w & internal::kListeners) self->notify_listeners();
    return true;
  }

  // Adds fn, called as fn(ConcurrentFuture<T>&) (or fn()) when the future is
  // done: on the completing thread, or right here if it is already done.
  // A callback that throws is logged.
  // Throws std::invalid_argument if `fn` is empty (an empty AnyInvocable or
  // std::function, a null function pointer); nothing is added.
  template <class F>
  void add_done_callback(F&& fn) {
    internal::check_callable(fn, "ConcurrentFuture::add_done_callback", "fn");
    state("add_done_callback");
    typename internal::ConcurrentState<T>::Callback cb;
    if constexpr (std::is_invocable_v<F&, ConcurrentFuture<T>&>) {
      cb = std::forward<F>(fn);
    } else {
      static_assert(std::is_invocable_v<F&>,
                    "add_done_callback: fn must be callable as fn(ConcurrentFuture<T>&) or fn()");
      cb = [fn = std::forward<F>(fn)](ConcurrentFuture<T>&) mutable { fn(); };
    }
    if (!done()) {
      std::lock_guard<internal::ConcurrentState<T>> lock(*state_);
      const bool first = !state_->first_callback;
      if (first) {
        state_->first_callback = std::move(cb);
      } else {
        if (!state_->more_callbacks) {
          state_->more_callbacks = std::make_unique<std::vector<decltype(cb)>>();
        }
        state_->more_callbacks->push_back(std::move(cb));
      }
      const uint8_t was = state_->word.fetch_or(internal::kListeners, std::memory_order_acq_rel);
      if (!internal::is_done(internal::ConcurrentState<T>::status(was))) return;
      // Completed meanwhile, before it could see us: take ours back and run
      // it here (callbacks registered earlier are the completer's).
      if (first) {
        cb = std::move(state_->first_callback);
        state_->first_callback = nullptr;
      } else {
        cb = std::move(state_->more_callbacks->back());
        state_->more_callbacks->pop_back();
      }
    }
    invoke(cb);
  }

  // For executors: marks a pending future running and returns true, or
  // returns false if it was cancelled (the task must then be skipped).
  // Throws InvalidStateError if it is already running or done.
  bool set_running_or_notify_cancel() {
    state("set_running_or_notify_cancel");
    // The first attempt guesses "pending, no listeners" instead of loading
    // the word: a worker's first touch of a state another thread just built
    // is then one exclusive fetch of its line, not a shared fetch followed
    // by an upgrade (two trips between cores).
    uint8_t w = static_cast<uint8_t>(internal::ConcurrentStatus::kPending);
    for (;;) {
      const uint8_t to =
          static_cast<uint8_t>(internal::ConcurrentStatus::kRunning) | (w & internal::kListeners);
      if (state_->word.compare_exchange_strong(w, to, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        return true;
      }
      switch (internal::ConcurrentState<T>::status(w)) {
        case internal::ConcurrentStatus::kPending:
          continue;  // a listener arrived: try again with its bit
        case internal::ConcurrentStatus::kCancelled:
          return false;
        case internal::ConcurrentStatus::kCompleting: {
          // Somebody is completing the pending future (a user's set_result
          // racing this start). Wait for the outcome: if storing it throws,
          // the future is pending again and the task must still run, not be
          // skipped as done (its future would then stay pending forever).
          internal::ConcurrentStatus now;
          do {
            std::this_thread::yield();
            w = state_->word.load(std::memory_order_acquire);
            now = internal::ConcurrentState<T>::status(w);
          } while (now == internal::ConcurrentStatus::kCompleting);
          if (now == internal::ConcurrentStatus::kPending) {
            continue;  // the claim was handed back: start it after all
          }
          if (now == internal::ConcurrentStatus::kCancelled) return false;
          internal::throw_concurrent_invalid("set_running_or_notify_cancel",
                                             "the future is already done");
        }
        default:
          internal::throw_concurrent_invalid("set_running_or_notify_cancel",
                                             "the future is already running or done");
      }
    }
  }

  // Completes the future; callbacks run on this thread.
  // Throws InvalidStateError if it is already done or cancelled.
  template <class U = T>
    requires(!std::is_void_v<U>)
  void set_result(U value) {
    state("set_result");
    if (!try_complete([&] { state_->value_.emplace(std::move(value)); },
                      internal::ConcurrentStatus::kValue)) {
      internal::throw_concurrent_invalid("set_result", "the future is already done");
    }
  }
  template <class U = T>
    requires std::is_void_v<U>
  void set_result() {
    state("set_result");
    if (!try_complete([&] { state_->value_.emplace(); }, internal::ConcurrentStatus::kValue)) {
      internal::throw_concurrent_invalid("set_result", "the future is already done");
    }
  }

  // Completes the future with an exception; callbacks run on this thread.
  // Throws std::invalid_argument for a null `e`, InvalidStateError if the
  // future is already done or cancelled.
  void set_exception(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("set_exception: the exception_ptr is null");
    state("set_exception");
    if (!try_complete([&] { state_->error_ = std::move(e); },
                      internal::ConcurrentStatus::kException)) {
      internal::throw_concurrent_invalid("set_exception", "the future is already done");
    }
  }

  // As set_result / set_exception, but return false instead of throwing
  // when the future is already done (an executor racing a cancel). They
  // still throw what set_result / set_exception throw otherwise (a value
  // whose copy fails, a null exception).
  template <class... A>
  bool try_set_result(A&&... args) {
    state("try_set_result");
    return try_complete([&] { state_->value_.emplace(std::forward<A>(args)...); },
                        internal::ConcurrentStatus::kValue);
  }
  bool try_set_exception(std::exception_ptr e) {
    // A null exception would make result() call rethrow_exception(nullptr),
    // which terminates: refuse it as set_exception does.
    if (!e) throw std::invalid_argument("try_set_exception: the exception_ptr is null");
    state("try_set_exception");
    return try_complete([&] { state_->error_ = std::move(e); },
                        internal::ConcurrentStatus::kException);
  }

  friend struct internal::ConcurrentAccess;

  friend bool operator==(const ConcurrentFuture& a, const ConcurrentFuture& b) {
    return a.state_ == b.state_;
  }

 private:
  struct Adopt {};
  // Takes over one reference the caller already counted.
  ConcurrentFuture(internal::ConcurrentState<T>* state, Adopt) noexcept : state_(state) {}

  // The state, or InvalidStateError naming `op` for a moved-from handle.
  // Every public method goes through it (or status(op)) before it touches
  // anything.
  internal::ConcurrentState<T>* state(const char* op) const {
    if (state_ == nullptr) [[unlikely]] internal::throw_concurrent_no_state(op);
    return state_;
  }
  internal::ConcurrentStatus status(const char* op) const {
    return internal::ConcurrentState<T>::status(state(op)->word.load(std::memory_order_acquire));
  }
  // Unchecked: for the paths above, once they checked.
  internal::ConcurrentStatus status() const {
    return internal::ConcurrentState<T>::status(state_->word.load(std::memory_order_acquire));
  }

  // Another completion has claimed the future and is storing its outcome
  // (a move or copy): waits until it is done, or until its store threw and
  // handed the claim back. Returns the state word then.
  [[gnu::noinline]] uint8_t wait_out_completing() {
    uint8_t w;
    do {
      std::this_thread::yield();
      w = state_->word.load(std::memory_order_acquire);
    } while (internal::ConcurrentState<T>::status(w) == internal::ConcurrentStatus::kCompleting);
    return w;
  }

  // Claims the future (pending or running -> completing), stores the
  // outcome, then publishes it; the listeners, if any registered, are told
  // under the lock. A future another completion has claimed is waited for:
  // done, it counts as done here; its store thrown, this one may complete it.
  template <class Store>
  bool try_complete(Store&& store, internal::ConcurrentStatus to) {
    uint8_t w = state_->word.load(std::memory_order_acquire);
    internal::ConcurrentStatus s;
    for (;;) {
      s = internal::ConcurrentState<T>::status(w);
      if (s == internal::ConcurrentStatus::kCompleting) [[unlikely]] {
        w = wait_out_completing();
        continue;
      }
      if (s != internal::ConcurrentStatus::kPending && s != internal::ConcurrentStatus::kRunning) {
        return false;
      }
      const uint8_t claim = static_cast<uint8_t>(internal::ConcurrentStatus::kCompleting) |
                            (w & internal::kListeners);
      if (state_->word.compare_exchange_weak(w, claim, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
        break;
      }
    }
    try {
      store();
    } catch (...) {
      // The value's copy or move threw (emplace leaves value_ empty). Give
      // the claim back, keeping any listener that registered meanwhile:
      // left kCompleting, the future would look running forever and refuse
      // every later completion (an executor's try_set_exception of this
      // very exception included), so its waiters would never wake.
      uint8_t cur = state_->word.load(std::memory_order_relaxed);
      while (!state_->word.compare_exchange_weak(
          cur, static_cast<uint8_t>(s) | (cur & internal::kListeners), std::memory_order_release,
          std::memory_order_relaxed)) {
      }
      throw;
    }
    // Publish. A compare-exchange, not an exchange: a listener that
    // registers meanwhile makes it fail, so a handle of our own is always
    // taken before the outcome is out when anything listens (see
    // notify_listeners).
    std::optional<ConcurrentFuture> self;
    uint8_t cur = state_->word.load(std::memory_order_relaxed);
    for (;;) {
      if ((cur & internal::kListeners) && !self) self.emplace(*this);
      if (state_->word.compare_exchange_weak(cur, static_cast<uint8_t>(to),
                                             std::memory_order_acq_rel,
                                             std::memory_order_relaxed)) {
        break;
      }
    }
    if (cur & internal::kListeners) self->notify_listeners();
    return true;
  }

  // After a completion that found listeners: takes the blocked waiters and
  // the callbacks under the lock, then wakes the waiters and runs the
  // callbacks unlocked (a callback may call back into this future).
  // Called on a handle the completion took before it published the
  // outcome, never on the handle it was made through: once the outcome is
  // out, a waiter may return and free that handle, the object holding it
  // and its reference, perhaps the last (std::promise style:
  // `job->done.set_result(1)` on a worker, `job->done.result(); delete
  // job;` on the waiter), while the callbacks still need the state. That
  // costs a reference count, on this path only.
  void notify_listeners() {
    internal::ConcurrentWaiter* waiters;
    Callbacks callbacks;
    {
      std::lock_guard<internal::ConcurrentState<T>> lock(*state_);
      waiters = std::exchange(state_->waiters, nullptr);
      callbacks.first = std::move(state_->first_callback);
      state_->first_callback = nullptr;
      callbacks.more = std::move(state_->more_callbacks);
    }
    while (waiters != nullptr) {
      // Read before the wake: the waiter may be gone right after it.
      internal::ConcurrentWaiter* next = waiters->next;
      waiters->wake();
      waiters = next;
    }
    run(callbacks);
  }

  struct Callbacks {
    typename internal::ConcurrentState<T>::Callback first;
    std::unique_ptr<std::vector<typename internal::ConcurrentState<T>::Callback>> more;
  };

  void run(Callbacks& callbacks) {
    if (callbacks.first) invoke(callbacks.first);
    if (callbacks.more) {
      for (auto& cb : *callbacks.more) invoke(cb);
    }
  }

  // Each callback gets a handle of its own, which it may keep by moving
  // from it (IOLoop::add_future's delivery does).
  void invoke(typename internal::ConcurrentState<T>::Callback& cb) {
    ConcurrentFuture self = *this;
    try {
      cb(self);
    } catch (...) {
      internal::log_callback_failure(std::current_exception(), state_->created_);
    }
  }

  internal::ConcurrentStatus wait(const char* op, std::optional<absl::Duration> timeout) const {
    internal::ConcurrentStatus now = status(op);
    if (internal::is_done(now)) return now;
    // Only this thread's loop can complete it, and the wait blocks that
    // loop: it could only run out. A zero timeout only looks.
    if (state_->completed_on != nullptr && state_->completed_on == Scheduler::current() &&
        (!timeout || *timeout > absl::ZeroDuration())) {
      internal::throw_concurrent_deadlock(op);
    }
    internal::BlockingWaiter self;
    if (!internal::ConcurrentAccess::link_waiter(*this, self)) return status();
    std::unique_lock<std::mutex> lock(self.mu);
    auto woken = [&] { return self.woken; };
    auto is_done = [&] { return internal::is_done(status()); };
    // An absolute deadline, saturated (see WaitDeadline): wait_for(d) adds
    // d to now() and wrapped into the past for absl::Seconds(INT64_MAX).
    const internal::WaitDeadline deadline(timeout);
    if (deadline.forever()) {
      self.cv.wait(lock, woken);
    } else if (!self.cv.wait_until(lock, deadline.at(), woken)) {
      lock.unlock();
      if (!internal::ConcurrentAccess::unlink_waiter(*this, self)) {
        // A completion took the list as we timed out: it is done, and about
        // to wake us (`self` must outlive that).
        lock.lock();
        self.cv.wait(lock, woken);
      } else if (!is_done()) {
        internal::throw_concurrent_timeout(op, *timeout);
      }
    }
    return status();
  }

  internal::ConcurrentState<T>* state_;  // owns one reference; null once moved from
};

namespace internal {

// Who delivers `f`'s outcome to the loop `s` (see DeliveryFrom): the loop
// itself if IOLoop::run_in_loop made `f` there, otherwise another thread
// (a pool, another loop, whoever completes a ConcurrentFuture), which `s`
// is then awaiting.
template <class T>
DeliveryFrom delivery_from(const ConcurrentFuture<T>& f, const Scheduler* s) {
  return ConcurrentAccess::state(f).completed_on == s ? DeliveryFrom::kAnyThread
                                                      : DeliveryFrom::kOtherThread;
}

}  // namespace internal

// Copies a's outcome into b (a loop future) once a is done, unless b is done
// by then. The copy happens on b's loop thread, whichever thread completes a;
// if a is done already, at once (b's callbacks still wait for a later turn),
// so that a done ConcurrentFuture counts as done in multi() and
// first_completed() as a done Future does. The value is moved instead of
// copied when no other handle on a is left by then. A move-only value,
// which cannot be copied, is moved into b regardless: keep no other reader
// of it.
// Must be called on b's loop thread; throws InvalidStateError if b belongs to
// no loop (there would be no thread to deliver onto), or if a or b is empty
// (moved from); nothing is chained then.
template <class T>
void chain_future(ConcurrentFuture<T> a, Future<T> b) {
  internal::ConcurrentAccess::state(a, "chain_future", "the source ConcurrentFuture a is empty");
  internal::FutureState<T>* target =
      internal::FutureAccess::state(b, "chain_future", "the target Future b is empty");
  Scheduler* s = target->scheduler();
  if (s == nullptr) {
    throw InvalidStateError(
        "chain_future: the target Future belongs to no loop, so a ConcurrentFuture's "
        "outcome has no thread to be delivered on (create it while a loop is current)");
  }
  if (a.done()) {
    internal::copy_outcome(a, target);  // a copy that throws fails b
    return;
  }
  // The payload holds b but not a: a's state holds the delivery handle, and
  // the cycle would keep both (and whatever b's callbacks hold) alive until
  // the loop closes if a were abandoned. The completing thread hands the
  // done future over instead (as IOLoop::add_future does).
  auto handle = internal::make_delivery_with<ConcurrentFuture<T>>(
      s, internal::delivery_from(a, s), [b](ConcurrentFuture<T>& done) mutable {
        internal::copy_outcome(done, internal::FutureAccess::state(b));  // a copy that throws fails b
      });
  a.add_done_callback([handle = std::move(handle)](ConcurrentFuture<T>& done) mutable {
    handle.deliver(std::move(done));  // a handle of this callback's own
  });
}

// Copies a's outcome into b once a is done, unless b is done by then
// (b's waiters wake and its callbacks run on the thread that completes a).
// A move-only value, which cannot be copied, is moved into b: keep no other
// reader of it.
// Throws InvalidStateError if a or b is empty (moved from); nothing is
// chained then.
template <class T>
void chain_future(ConcurrentFuture<T> a, ConcurrentFuture<T> b) {
  internal::ConcurrentAccess::state(a, "chain_future", "the source ConcurrentFuture a is empty");
  internal::ConcurrentAccess::state(b, "chain_future", "the target ConcurrentFuture b is empty");
  a.add_done_callback([b](ConcurrentFuture<T>& done) mutable {
    if (done.cancelled()) {
      b.cancel();
    } else if (std::exception_ptr e = done.exception()) {
      b.try_set_exception(std::move(e));
    } else if constexpr (std::is_void_v<T>) {
      b.try_set_result();
    } else {
      // A value whose copy throws fails b with that instead of leaving it
      // pending forever (the throw would only be logged as a callback's).
      // Always a copy when it can be: the handle that completes `a` lives
      // while its callbacks run, so `done` is never the last one
      // (may_take_value), and that handle's owner may still read the value.
      try {
        if constexpr (internal::is_deeply_copyable_v<T>) {
          b.try_set_result(done.result());
        } else {
          b.try_set_result(std::move(done.result()));
        }
      } catch (...) {
        b.try_set_exception(std::current_exception());
      }
    }
  });
}

}  // namespace eddy

#endif  // EDDY_FUTURES_CONCURRENT_FUTURE_H_
