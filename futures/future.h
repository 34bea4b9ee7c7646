// Future<T>: the result of an asynchronous operation, owned by one loop.
//
// A Future is a cheap, copyable handle to shared state (one heap allocation
// per future). It is loop-affine and deliberately not thread-safe: no atomics
// and no mutex on its paths. Results computed on other threads come back to
// the loop through IOLoop::add_future or chain_future from a
// ConcurrentFuture.
//
//   eddy::Future<int> f;                       // pending, bound to the current loop
//   f.add_done_callback([](eddy::Future<int>& done) {
//     std::printf("%d\n", done.result());      // runs on the loop, later
//   });
//   f.set_result(42);                          // never runs callbacks inline
//
// States: pending -> one of {value, exception, cancelled}; done() is true in
// all three. Every transition happens once; a second one throws
// InvalidStateError (cancel() returns false instead).
//
// Threading: a Future belongs to the Scheduler (IOLoop) current on the
// creating thread, and may be touched only on that loop's thread; in builds
// without NDEBUG (or with EDDY_THREAD_CHECKS=1) a touch from another thread
// throws InvalidStateError. Callbacks are posted to that loop and run on a
// later turn, never inside set_result()/set_exception()/cancel() (an
// awaiting coroutine's resume, when first in line, at the end of the
// completing turn: see phase 6 in loop/io_loop.h). With no
// loop current at creation, or after the loop was destroyed, callbacks run
// inline at completion. Callbacks whose turn was queued when the loop was
// destroyed are destroyed with it, unrun, like the loop's other queued
// callbacks; callbacks added after that run inline.
//
// Errors: an exception stored in a future that nobody retrieved (through
// result() or exception()) is logged through eddy::log when the last handle
// goes away, naming where the future was created.
#ifndef EDDY_FUTURES_FUTURE_H_
#define EDDY_FUTURES_FUTURE_H_

#include <cstdint>
#include <exception>
#include <memory>
#include "eddy/futures/source_location.h"
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/futures/internal/copy_or_move.h"
#include "eddy/futures/internal/keep_alive.h"
#include "eddy/futures/internal/recycler.h"
#include "eddy/futures/log.h"
#include "eddy/futures/scheduler.h"

#ifndef EDDY_THREAD_CHECKS
#ifdef NDEBUG
#define EDDY_THREAD_CHECKS 0
#else
#define EDDY_THREAD_CHECKS 1
#endif
#endif

namespace eddy {

template <class T = void>
class Future;
template <class T>
class ConcurrentFuture;

namespace internal {

// IsFuture<R> (whether R is an eddy::Future; decay it first) is in
// futures/internal/keep_alive.h.

// What a Future<void> stores as its "value".
struct Unit {};
template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

enum class FutureStatus : uint8_t { kPending, kValue, kException, kCancelled };

// Called by cancel() on a pending future, after it is marked cancelled, to
// pass the cancellation on to whatever produces it (a coroutine's current
// await, an offloaded task).
struct CancelHook {
  void (*fn)(void* ctx) = nullptr;
  void* ctx = nullptr;
};

// A coroutine suspended on a future (FutureState::try_set_waiter): when the
// future completes it posts resume(this) to its loop. The coroutine's
// promise is one, so the future stores a single pointer.
struct CoroutineWaiter {
  void (*resume)(void* self) = nullptr;
  // The coroutine's location (its future's), named by a loop's blocking
  // watchdog when a resume runs long; null if unknown.
  const SourceLocation* location = nullptr;
};

// Passing a cancellation down a chain of futures (a coroutine's future
// cancels the future it awaits, which is another coroutine's, and so on)
// one call inside the other would take a few stack frames per level, and a
// chain of a million suspended coroutines (which deferred starts and posted
// resumes allow) would overflow the stack. So a hook that passes it on
// (try_cancel_from_hook) only marks the next future cancelled and leaves
// its hook and its completion to the cancel() running the hook:
// run_cancel_hook() then runs the hooks one after the other, top-down, and
// completes the futures deepest first: for a chain (each hook passes the
// cancellation to one future), the order the nested calls had.
struct DeferredCancel {
  void* state;
  CancelHook hook;
  // Completes the future (unless `complete` is false: something threw
  // first) and drops the reference the entry holds.
  void (*finish)(void* state, bool complete);
};
// Runs `hook`, the hook of a future just marked cancelled, then the hooks
// and completions it deferred (see above), before returning.
void run_cancel_hook(CancelHook hook);
// Queues `d` for the run_cancel_hook() running on this thread; false when
// none is.
bool defer_cancel(const DeferredCancel& d);

[[noreturn]] void throw_wrong_thread(const char* op);
[[noreturn]] void throw_no_state(const char* op);
// For a handle given to library entry point `who` ("multi"):
// InvalidStateError("<who>: <problem> (moved from)"), e.g. "multi: a child
// Future is empty (moved from)"; and InvalidStateError naming `who` for a
// Future of another thread's loop.
[[noreturn]] void throw_empty_handle(const char* who, const char* problem);
[[noreturn]] void throw_wrong_thread_for(const char* who);
[[noreturn]] void throw_invalid(const char* op, const char* why);
// Logs "Future exception was never retrieved: ..." for `e`, unless it is a
// CancelledError (a cancellation, not a failure: never reported).
void log_unretrieved(const std::exception_ptr& e, const SourceLocation& created);
void log_callback_failure(const std::exception_ptr& e, const SourceLocation& created);

// The value types a Future or ConcurrentFuture can hold: the first
// assertion a Future<T&> meets, instead of the union member deep below.
template <class T>
struct ValueTypeCheck {
  static_assert(!std::is_reference_v<T>,
                "eddy::Future<T&> / ConcurrentFuture<T&> is not supported: a future owns its "
                "value; return std::reference_wrapper<T> (std::ref(x)) or a pointer instead");
  static_assert(!std::is_array_v<T>,
                "eddy::Future<T[N]> / ConcurrentFuture<T[N]> is not supported: return "
                "std::array<T, N> or std::vector<T> instead");
  static_assert(!std::is_function_v<T>,
                "eddy::Future / ConcurrentFuture of a function type is not supported: return a "
                "function pointer or a callable object instead");
  static constexpr bool kOk = true;
};

// The shared state behind Future<T>. Lives on its loop's thread.
template <class T>
class FutureState : public Recycled {
  static_assert(ValueTypeCheck<T>::kOk);

 public:
  using Callback = absl::AnyInvocable<void(Future<T>&)>;

  explicit FutureState(SourceLocation created) : created_(created) {
    ::new (static_cast<void*>(&first_callback_)) Callback();
    if (Scheduler* s = Scheduler::current()) {
      anchor_ = s->anchor();
      anchor_->add_ref();
    }
  }
  ~FutureState() {
    if (status_ == FutureStatus::kValue) {
      value_.~Stored<T>();
    } else if (status_ == FutureStatus::kException) [[unlikely]] {
      if (!retrieved_) log_unretrieved(error_, created_);
      error_.~exception_ptr();
    }
    if (anchor_ != nullptr) anchor_->release();
    // An empty callback owns nothing: its destructor would be a call that
    // does nothing (most states die with their callbacks already run).
    if (first_callback_) [[unlikely]] first_callback_.~Callback();
  }

  // The loop this future was made on (nullptr: none); fixed for its life.
  SchedulerAnchor* anchor() const { return anchor_; }

  void add_ref() { ++refs_; }
  // True when a single handle (or internal reference) holds the state.
  bool unique() const { return refs_ == 1; }
  [[gnu::always_inline]] void release() {
    if (--refs_ == 0) [[unlikely]] destroy();
  }

  // Throws InvalidStateError naming "Future::<op>" when called off the
  // future's loop thread (only with EDDY_THREAD_CHECKS).
  void check_owner(const char* op) const {
    if (!on_owner_thread()) [[unlikely]] throw_wrong_thread(op);
  }
  // The same, for a future given to library entry point `who` ("multi").
  void check_owner_for(const char* who) const {
    if (!on_owner_thread()) [[unlikely]] throw_wrong_thread_for(who);
  }
  bool on_owner_thread() const {
#if EDDY_THREAD_CHECKS
    if (anchor_ != nullptr) {
      Scheduler* s = anchor_->get();
      if (s != nullptr && !s->in_scheduler_thread()) return false;
    }
#endif
    return true;
  }

  bool done() const { return status_ != FutureStatus::kPending; }

  // The transitions. Each returns false (and changes nothing) when the
  // future is already done.
  //
  // A completion first makes sure that its post cannot fail (see
  // ensure_post_room), before it changes anything. set_result, the hot one,
  // reads the flag from the anchor it posts through (with a coroutine
  // waiter, known not to be null), only when there is something to post,
  // and a raised flag moves the whole transition out of line, so that the
  // common path makes no call it has to come back from (the check costs
  // W7 and W9 about two instructions per future: bench/FINDINGS.md).
  template <class... A>
  bool try_set_value(A&&... args) {
    if (done()) return false;
    if (waiter_ != nullptr) [[likely]] {
      SchedulerAnchor* const a = anchor_;  // not null: see try_set_waiter
      if (a->post_room_low()) [[unlikely]] {
        return set_value_after_reserve<ColdArg<A>...>(std::forward<A>(args)...);
      }
      CoroutineWaiter* const w = waiter_;
      std::construct_at(&value_, std::forward<A>(args)...);
      status_ = FutureStatus::kValue;
      cancel_hook_ = {};
      waiter_ = nullptr;
      // With its loop gone, the waiting frame is gone too (see
      // try_set_waiter): nothing to resume.
      if (Scheduler* s = a->get()) s->post_resume(w->resume, w);
      return true;
    }
    SchedulerAnchor* const a = anchor_;
    if (first_callback_ && a != nullptr && a->post_room_low()) [[unlikely]] {
      return set_value_after_reserve<ColdArg<A>...>(std::forward<A>(args)...);
    }
    std::construct_at(&value_, std::forward<A>(args)...);
    status_ = FutureStatus::kValue;
    cancel_hook_ = {};
    // complete(a), less the waiter: there is none.
    if (inline_first_) [[unlikely]] {
      run_inline_first();
    } else if (first_callback_) {
      schedule_callbacks(a);
    }
    return true;
  }
  bool try_set_exception(std::exception_ptr e) {
    if (done()) return false;
    SchedulerAnchor* const a = anchor_;
    if (a != nullptr && a->post_room_low()) [[unlikely]] return set_exception_after_reserve(e);
    commit_exception(a, e);
    return true;
  }
  bool try_cancel() {
    if (done()) return false;
    // Room only when something will post (as try_set_value): a waiter, a
    // callback, or a hook that may complete other futures.
    if (waiter_ != nullptr || first_callback_ || cancel_hook_.fn != nullptr) ensure_post_room();
    status_ = FutureStatus::kCancelled;
    CancelHook hook = std::exchange(cancel_hook_, {});
    // The hook may complete other futures (the one a coroutine awaits); this
    // one is already marked, so nothing it does can change our outcome.
    if (hook.fn != nullptr) run_cancel_hook(hook);
    complete();
    return true;
  }
  // try_cancel() for a cancel hook passing its cancellation on (a
  // coroutine's, to the future it awaits): decides the outcome now, and
  // leaves this future's own hook and completion to the cancel() whose hook
  // is running (see DeferredCancel).
  bool try_cancel_from_hook() {
    if (done()) return false;
    ensure_post_room();
    CancelHook hook = cancel_hook_;
    if (!defer_cancel(DeferredCancel{this, hook, &finish_deferred_cancel})) return try_cancel();
    status_ = FutureStatus::kCancelled;
    cancel_hook_ = {};
    add_ref();
    return true;
  }

  void add_callback(Callback cb) {
    // A coroutine waiter registered earlier keeps its place in the order.
    if (waiter_ != nullptr) waiter_to_callback();
    // The first callback lives in the state itself: the common single
    // callback costs no allocation beyond the state.
    if (!first_callback_) {
      first_callback_ = std::move(cb);
    } else {
      if (more_callbacks_ == nullptr) more_callbacks_.reset(new std::vector<Callback>());
      more_callbacks_->push_back(std::move(cb));
    }
    if (done()) schedule_added_callback();
  }
  // The same for a small callable (InPlaceCallable): built where it is
  // kept when it is the first, with no temporary Callback to move.
  template <class F>
    requires(InPlaceCallable<F> && !std::is_same_v<std::remove_cvref_t<F>, Callback>)
  void add_callback(F&& fn) {
    if (waiter_ == nullptr && !first_callback_) [[likely]] {
      // Over the empty one, which owns nothing.
      ::new (static_cast<void*>(&first_callback_)) Callback(std::forward<F>(fn));
      if (done()) schedule_added_callback();
      return;
    }
    add_callback(Callback(std::forward<F>(fn)));
  }

  // A suspended coroutine waiting for this future, registered in place of a
  // callback: on completion `w->resume(w)` is posted to the loop as it is,
  // without the callback machinery (the per-turn run of every callback, a
  // closure owning the state). It is the common await, so it is worth a
  // path of its own.
  //
  // Only for a pending future with no callbacks yet, bound to a live loop,
  // and awaited by a coroutine of that same loop (`anchor`): that loop
  // destroys the coroutine's frame when it goes away, and drops queued
  // resumes unrun, so a posted resume never outlives its frame. Returns
  // false (and changes nothing) otherwise; the caller then adds a callback.
  bool try_set_waiter(CoroutineWaiter* w, SchedulerAnchor* anchor) {
    if (done() || first_callback_ || waiter_ != nullptr || anchor_ == nullptr ||
        anchor != anchor_ || anchor_->get() == nullptr) {
      return false;
    }
    waiter_ = w;
    return true;
  }

  // Library-internal bookkeeping that reacts to the completion itself (a
  // multi() counting its children): `cb` runs inside the completing
  // set_result()/set_exception()/cancel(), not on a later turn, so a wide
  // multi does not queue one loop callback per child. It must not run user
  // code (whatever it completes posts its own callbacks as usual) and must
  // not throw. Only as the first callback; after others it is an ordinary
  // callback, which keeps the order of registration.
  void add_inline_callback(Callback cb) {
    if (done() || first_callback_ || waiter_ != nullptr) {
      add_callback(std::move(cb));
      return;
    }
    first_callback_ = std::move(cb);
    inline_first_ = true;
  }

  FutureStatus status() const { return status_; }
  // For a loop that polls one future after every turn (run_sync).
  const FutureStatus& status_ref() const { return status_; }
  Stored<T>& value() { return value_; }
  // Only while status() is kException.
  const std::exception_ptr& error() const { return error_; }
  void mark_retrieved() { retrieved_ = true; }
  void set_cancel_hook(CancelHook hook) { cancel_hook_ = hook; }
  // Reset whenever the future completes; a coroutine arms it in place.
  CancelHook& cancel_hook() { return cancel_hook_; }
  const SourceLocation& created() const { return created_; }
  Scheduler* scheduler() const { return anchor_ != nullptr ? anchor_->get() : nullptr; }

  // Nobody can ever receive this future's outcome: its loop is gone (and
  // with it any coroutine frame awaiting it), or no handle but the
  // caller's, no callback and no awaiting coroutine are left. The sync
  // primitives skip such waiters instead of handing them an item, a lock
  // or a wake-up that would be lost.
  bool unreachable() const {
    if (anchor_ != nullptr && anchor_->get() == nullptr) return true;
    return sole_reader();
  }

  // No handle but the caller's, no callback still to run and no awaiting
  // coroutine: nobody else can read the value after the caller. Inside a
  // callback, the caller's handle is the one it was given, and the
  // callbacks after it in the same turn count as readers (run_callbacks
  // holds a reference for them).
  bool sole_reader() const { return refs_ == 1 && !first_callback_ && waiter_ == nullptr; }

 private:
  // Before a completion changes anything: makes sure that posting its
  // callbacks' turn (or its coroutine's resume) cannot fail for lack of
  // memory, or throws std::bad_alloc with the future still pending. The
  // scheduler raises post_room_low() only when it has no room ready (see
  // Scheduler::reserve_post); otherwise this is one byte compared. (What
  // runs between here and the post does not post, but for what a
  // completion completes inline and a cancel hook's nested cancellations,
  // which the reserved room covers up to some depth.)
  void ensure_post_room() {
    if (anchor_ != nullptr && anchor_->post_room_low()) [[unlikely]] reserve_post_slow();
  }
  [[gnu::noinline, gnu::cold]] void reserve_post_slow() {
    if (Scheduler* s = anchor_->get()) s->reserve_post();
  }

  // add_callback() on a done future, once the callback is registered: if
  // there is no room for the post, the callback is taken back (destroyed)
  // and add_callback throws std::bad_alloc, having changed nothing.
  [[gnu::noinline]] void schedule_added_callback() {
    if (!run_scheduled_) {  // else it joins the turn posted already
      try {
        ensure_post_room();
      } catch (...) {
        if (more_callbacks_ != nullptr && !more_callbacks_->empty()) {
          more_callbacks_->pop_back();
        } else {
          first_callback_ = nullptr;
        }
        throw;
      }
    }
    schedule_callbacks();
  }

  template <class... A>
  void commit_value(SchedulerAnchor* a, A&&... args) {
    std::construct_at(&value_, std::forward<A>(args)...);
    status_ = FutureStatus::kValue;
    cancel_hook_ = {};
    complete(a);
  }
  void commit_exception(SchedulerAnchor* a, std::exception_ptr& e) {
    std::construct_at(&error_, std::move(e));
    status_ = FutureStatus::kException;
    cancel_hook_ = {};
    complete(a);
  }
  // How the out-of-line path takes an argument: a scalar (a number, a
  // pointer, an enum) by value, so that the inline path need not spill it to
  // memory for a reference; anything else by reference.
  // (Not when only the reference constructs the value: a
  // std::reference_wrapper<int> from an int lvalue.)
  template <class A>
  using ColdArg =
      std::conditional_t<std::is_scalar_v<std::remove_cvref_t<A>> &&
                             std::is_constructible_v<Stored<T>, std::remove_cvref_t<A>>,
                         std::remove_cvref_t<A>, A&&>;
  // try_set_value() when the flag is up and there is something to post:
  // makes room first (throwing with nothing changed if it cannot), then
  // completes.
  template <class... P>
  [[gnu::noinline, gnu::cold]] bool set_value_after_reserve(P... args) {
    ensure_post_room();
    commit_value(anchor_, static_cast<P&&>(args)...);
    return true;
  }
  [[gnu::noinline, gnu::cold]] bool set_exception_after_reserve(std::exception_ptr& e) {
    reserve_post_slow();
    commit_exception(anchor_, e);
    return true;
  }

  void complete() { complete(anchor_); }
  // `a` is anchor_, as the caller read it.
  void complete(SchedulerAnchor* a) {
    if (waiter_ != nullptr) [[likely]] {
      CoroutineWaiter* w = std::exchange(waiter_, nullptr);
      // With its loop gone, the waiting frame is gone too (see
      // try_set_waiter): nothing to resume.
      if (Scheduler* s = a != nullptr ? a->get() : nullptr) s->post_resume(w->resume, w);
      return;
    }
    if (inline_first_) [[unlikely]] {
      run_inline_first();
      return;
    }
    if (first_callback_) schedule_callbacks(a);
  }

  void run_inline_first();

  static void finish_deferred_cancel(void* self, bool complete) {
    struct Release {
      FutureState* s;
      ~Release() { s->release(); }  // even if complete() throws
    } ref{static_cast<FutureState*>(self)};
    if (complete) ref.s->complete();
  }

  // Another callback arrives after a coroutine waiter: the waiter becomes
  // an ordinary first callback, so that the order of registration holds.
  void waiter_to_callback() {
    CoroutineWaiter* w = std::exchange(waiter_, nullptr);
    first_callback_ = [this, w](Future<T>&) {
      // Callbacks run inline only once the loop is gone, and the frame
      // with it: then there is nothing to resume.
      if (scheduler() != nullptr) w->resume(w);
    };
  }

  // Posts one turn that runs every callback registered so far (and any
  // added while it waits), or runs them inline with no scheduler.
  void schedule_callbacks() { schedule_callbacks(anchor_); }
  // `a` is anchor_, as the caller read it.
  void schedule_callbacks(SchedulerAnchor* a) {
    Scheduler* s = a != nullptr ? a->get() : nullptr;
    if (s == nullptr) {
      run_callbacks_here();
      return;
    }
    if (run_scheduled_) return;
    run_scheduled_ = true;
    // The closure holds a reference (one pointer: it stays inside
    // AnyInvocable's inline buffer, so posting does not allocate), released
    // even if the loop is destroyed before the turn runs; the callbacks
    // then go with it (see drop_scheduled_callbacks).
    s->post(ScheduledRun{this});
  }

  struct ScheduledRun;
  // The posted turn was destroyed unrun: its loop went away with it queued
  // (or refused it). The callbacks it would have run are destroyed unrun,
  // as the loop's own queued callbacks are; those added later run inline.
  [[gnu::noinline, gnu::cold]] void drop_scheduled_callbacks();
  // Runs the callbacks with `self`, the runner's one handle.
  void run_callbacks(Future<T>& self);
  void run_callbacks_here();  // with a handle of its own
  // Out of line, so that the handle copies around every await stay small
  // enough to inline.
  [[gnu::noinline]] void destroy() { delete this; }

  // Compact, and what every step of a future's life touches first (a
  // multi() over a million futures walks them all several times): 96 bytes
  // for a Future<int64_t> (where SourceLocation is one pointer).
  uint32_t refs_ = 1;
  FutureStatus status_ = FutureStatus::kPending;
  bool retrieved_ = false;
  bool run_scheduled_ = false;
  bool inline_first_ = false;  // first_callback_ is an inline callback
  SchedulerAnchor* anchor_ = nullptr;
  // Callbacks in registration order: the first inline, the others after it.
  // Invariant: more_callbacks_ is empty (or null) whenever first_callback_ is.
  // (AnyInvocable is 16-byte aligned: here it needs no padding.)
  union {
    Callback first_callback_;  // alive for the state's life (a union: see ~FutureState)
  };
  CoroutineWaiter* waiter_ = nullptr;  // at most one; never together with callbacks
  union {
    Stored<T> value_;          // alive exactly when status_ == kValue
    std::exception_ptr error_;  // alive exactly when status_ == kException
  };
  // Freed out of line: rare, and a state's destroy() stays frameless.
  struct DeleteCallbacks {
    [[gnu::noinline]] void operator()(std::vector<Callback>* v) const { delete v; }
  };
  std::unique_ptr<std::vector<Callback>, DeleteCallbacks> more_callbacks_;
  CancelHook cancel_hook_;
  SourceLocation created_;
};

struct FutureAccess;

// Future<T>::then(fn): how fn is called and what the result future holds.
// fn gets the value as T& when it accepts one, else as T&& (moved out of the
// future), or nothing for Future<void>. A Future<V> returned by fn is
// flattened into Future<V>.
template <class R>
struct ThenUnwrap {
  using type = R;
  static constexpr bool kFlatten = false;
};
template <class V>
struct ThenUnwrap<Future<V>> {
  using type = V;
  static constexpr bool kFlatten = true;
};

template <class T, class F>
struct ThenTraits {
  static constexpr bool kByRef = [] {
    if constexpr (std::is_void_v<T>) {
      return false;
    } else {
      return std::is_invocable_v<F&, T&>;
    }
  }();
  static auto call_type() {
    if constexpr (std::is_void_v<T>) {
      static_assert(std::is_invocable_v<F&>, "then: fn must be callable as fn()");
      return std::type_identity<std::invoke_result_t<F&>>{};
    } else if constexpr (kByRef) {
      return std::type_identity<std::invoke_result_t<F&, T&>>{};
    } else {
      static_assert(std::is_invocable_v<F&, T&&>,
                    "then: fn must be callable as fn(T&) or fn(T&&)");
      return std::type_identity<std::invoke_result_t<F&, T&&>>{};
    }
  }
  using Returned = std::remove_cvref_t<typename decltype(call_type())::type>;
  using value_type = typename ThenUnwrap<Returned>::type;
  static constexpr bool kFlatten = ThenUnwrap<Returned>::kFlatten;
};

}  // namespace internal

template <class T>
class Future {
  static_assert(internal::ValueTypeCheck<T>::kOk);

 public:
  using value_type = T;

  // A pending future bound to the loop current on this thread (if any).
  // `where` is recorded for the "exception was never retrieved" log line.
  Future(SourceLocation where = SourceLocation::current())
      : state_(new internal::FutureState<T>(where)) {}

  Future(const Future& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->add_ref();
  }
  Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Future& operator=(Future other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  // Always inline, as release(): a null check, a decrement and a branch.
  // GCC stops inlining small functions once a translation unit has grown
  // enough (a benchmark's, a service's), and a call per handle's death
  // then costs more than the work (W9's ready await: 21 -> 24 instructions).
  [[gnu::always_inline]] ~Future() {
    if (state_ != nullptr) state_->release();
  }

  // False only for a moved-from handle; every other call on such a handle
  // throws InvalidStateError.
  bool valid() const noexcept { return state_ != nullptr; }

  // True once the future has a value, an exception or was cancelled.
  bool done() const { return state("done")->done(); }

  // True when cancel() succeeded.
  bool cancelled() const {
    return state("cancelled")->status() == internal::FutureStatus::kCancelled;
  }

  // True while the operation is in progress (the future is pending). Loop
  // futures have no "queued" phase, so this is !done().
  bool running() const { return !state("running")->done(); }

  // The value (a reference into the shared state, valid while any handle
  // lives), or rethrows the stored exception.
  // Throws CancelledError if cancelled, InvalidStateError if still pending.
  std::add_lvalue_reference_t<T> result() const& {
    internal::FutureState<T>* s = state("result");
    // The value path stays a load and a compare wherever result() is
    // inlined (every co_await resumes through it); the raising cases are
    // out of line, so that the compiler's inlining choice does not depend
    // on how many callers the program has.
    if (s->status() != internal::FutureStatus::kValue) [[unlikely]] raise_result(s);
    if constexpr (!std::is_void_v<T>) return s->value();
  }
  // On a temporary (or std::move(f)): the value itself, since a reference
  // would die with the handle (`for (auto& row : fetch().result())`). It
  // is moved out when this is the last handle, and copied while others
  // remain; a move-only value (a container of them included) is moved
  // regardless: keep no other reader of it (the rule of an rvalue co_await).
  // Throws as above.
  T result() && {
    if constexpr (std::is_void_v<T>) {
      std::as_const(*this).result();
    } else {
      T& value = std::as_const(*this).result();
      return internal::take_or_copy(value, [this] { return state_->unique(); });
    }
  }

  // The stored exception, or nullptr if the future has a value.
  // Throws CancelledError if cancelled, InvalidStateError if still pending.
  std::exception_ptr exception() const {
    internal::FutureState<T>* s = state("exception");
    switch (s->status()) {
      case internal::FutureStatus::kValue:
        return nullptr;
      case internal::FutureStatus::kException:
        s->mark_retrieved();
        return s->error();
      case internal::FutureStatus::kCancelled:
        throw CancelledError();
      case internal::FutureStatus::kPending:
        break;
    }
    internal::throw_invalid("exception",
                            "the future is still pending (co_await it, or use "
                            "add_done_callback/then to run code once it is done)");
  }

  // Completes the future with `value`; callbacks are scheduled.
  // Throws InvalidStateError if the future is already done (or cancelled).
  template <class U = T>
    requires(!std::is_void_v<U>)
  void set_result(U value) {
    if (!state("set_result")->try_set_value(std::move(value))) {
      internal::throw_invalid("set_result", "the future is already done");
    }
  }
  template <class U = T>
    requires std::is_void_v<U>
  void set_result() {
    if (!state("set_result")->try_set_value()) {
      internal::throw_invalid("set_result", "the future is already done");
    }
  }

  // Completes the future with an exception; callbacks are scheduled.
  // Throws std::invalid_argument for a null `e`, InvalidStateError if the
  // future is already done.
  void set_exception(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("set_exception: the exception_ptr is null");
    if (!state("set_exception")->try_set_exception(std::move(e))) {
      internal::throw_invalid("set_exception", "the future is already done");
    }
  }

  // Cancels a pending future: it becomes done, result() throws
  // CancelledError, callbacks are scheduled, and whatever produces it (a
  // coroutine, offloaded work) is told. Returns true if it was pending,
  // false if it was already done.
  bool cancel() { return state("cancel")->try_cancel(); }

  // Adds `fn`, called as fn(Future<T>&) (or fn()) once the future is done,
  // on the future's loop during a later turn; if the future is already done,
  // it is scheduled now. Callbacks run in the order they were added. A
  // callback that throws is logged; the others still run. A callback that
  // returns a Future (a coroutine lambda) is kept alive, captures and all,
  // until the coroutine it started is finished (see co_invoke in
  // coroutine.h); the Future it returns is otherwise dropped.
  // Throws std::invalid_argument if `fn` is empty (an empty AnyInvocable or
  // std::function, a null function pointer), InvalidStateError on a
  // moved-from handle; either way nothing is added.
  template <class F>
  void add_done_callback(F&& fn) {
    internal::check_callable(fn, "Future::add_done_callback", "fn");
    internal::FutureState<T>* s = state("add_done_callback");
    if constexpr (std::is_invocable_v<F&, Future<T>&>) {
      // A coroutine callback is kept alive while its coroutine runs
      // (internal/keep_alive.h); any other goes in as it is.
      if constexpr (internal::NeedsKeeping<F, Future<T>&>) {
        s->add_callback(internal::KeptCallable<std::decay_t<F>>(std::forward<F>(fn)));
      } else {
        s->add_callback(std::forward<F>(fn));
      }
    } else {
      static_assert(std::is_invocable_v<F&>,
                    "add_done_callback: fn must be callable as fn(Future<T>&) or fn()");
      s->add_callback([fn = internal::keep_if<internal::NeedsKeeping<F>>(std::forward<F>(fn))](
                          Future<T>&) mutable { fn(); });
    }
  }

  // Returns a future for `fn` applied to this future's value, for those who
  // prefer chaining to coroutines:
  //
  //   eddy::Future<size_t> n = fetch(url).then([](Page& p) { return p.body.size(); });
  //
  // fn is called as fn(T&) (or fn(T&&) when it only takes an rvalue; fn()
  // for Future<void>) on this future's loop, in the turn its callbacks run.
  // fn(T&&) gets the value moved out when nothing else can read it later
  // (no other handle, no callback after this one: the usual
  // `make().then(...)`), and a copy otherwise (a move-only T, or a
  // container of move-only values, is moved regardless: keep no other
  // reader of it). fn may return U (the result
  // is Future<U>), void (Future<void>) or a Future<V>, which is flattened:
  // the result is a Future<V> that completes when that one does.
  //   - If fn throws, the result fails with that exception.
  //   - If this future fails, fn is not called and the result fails with the
  //     same exception (this future's exception counts as retrieved).
  //   - If this future is cancelled, the result is cancelled.
  //   - Cancelling the result does not cancel this future (nor a flattened
  //     inner one); fn is then not called.
  // The result belongs to the loop current on this thread. Copies `fn` into
  // the callback (which allocates unless it is small). A fn returning a
  // Future (a coroutine lambda) is moved into a box of its own instead,
  // which its coroutine keeps until it is finished, so that its captures
  // stay valid across its co_awaits (see co_invoke in coroutine.h).
  // Throws std::invalid_argument if `fn` is empty (as add_done_callback),
  // InvalidStateError on a moved-from handle.
  template <class F>
  Future<typename internal::ThenTraits<T, std::decay_t<F>>::value_type> then(
      F&& fn, SourceLocation where = SourceLocation::current());

  friend bool operator==(const Future& a, const Future& b) { return a.state_ == b.state_; }

 private:
  friend struct internal::FutureAccess;
  struct Adopt {};
  Future(internal::FutureState<T>* s, Adopt) noexcept : state_(s) {}

  // result() of a future without a value: rethrows its exception, or
  // throws CancelledError, or InvalidStateError while it is pending.
  [[noreturn, gnu::noinline, gnu::cold]] static void raise_result(internal::FutureState<T>* s) {
    switch (s->status()) {
      case internal::FutureStatus::kException:
        s->mark_retrieved();
        std::rethrow_exception(s->error());
      case internal::FutureStatus::kCancelled:
        throw CancelledError();
      case internal::FutureStatus::kValue:
      case internal::FutureStatus::kPending:
        break;
    }
    internal::throw_invalid("result",
                            "the future is still pending (co_await it, or use "
                            "add_done_callback/then to run code once it is done)");
  }

  internal::FutureState<T>* state(const char* op) const {
    if (state_ == nullptr) internal::throw_no_state(op);
    state_->check_owner(op);
    return state_;
  }

  internal::FutureState<T>* state_;
};

namespace internal {

// Library-internal access to a future's state (combinators, coroutines,
// the loop). Not for users.
struct FutureAccess {
  // The state of a future the user handed to library entry point `who`
  // ("multi"), checked as a public method checks its own: an empty handle
  // throws InvalidStateError("<who>: <problem> (moved from)"), with
  // `problem` saying which argument ("a child Future is empty"); a future
  // of another thread's loop throws InvalidStateError naming `who`.
  template <class T>
  static FutureState<T>* state(const Future<T>& f, const char* who, const char* problem) {
    if (f.state_ == nullptr) [[unlikely]] throw_empty_handle(who, problem);
    f.state_->check_owner_for(who);
    return f.state_;
  }
  // The same for a future the library made or has checked already (a
  // callback's own handle, a combinator's result, a waiter): never empty
  // unless the library itself is wrong. A touch from a foreign thread reads
  // "Future: called from a thread that does not own the Future (...)".
  template <class T>
  static FutureState<T>* state(const Future<T>& f) {
    return state(f, "Future", "a handle the library holds is empty");
  }
  // Without the checks (nullptr for a moved-from handle): for destructors.
  template <class T>
  static FutureState<T>* state_or_null(const Future<T>& f) noexcept {
    return f.state_;
  }
  template <class T>
  static Future<T> adopt(FutureState<T>* s) {
    return Future<T>(s, typename Future<T>::Adopt{});
  }
  template <class T>
  static Future<T> share(FutureState<T>* s) {
    s->add_ref();
    return Future<T>(s, typename Future<T>::Adopt{});
  }
};

// Holds a reference to the state until it is destroyed, run or not.
template <class T>
struct FutureState<T>::ScheduledRun {
  explicit ScheduledRun(FutureState* s) : self(FutureAccess::share(s)) {}
  ScheduledRun(ScheduledRun&&) noexcept = default;
  ScheduledRun& operator=(ScheduledRun&&) = delete;
  // Destroyed unrun: the loop it was queued on refused it or dropped it,
  // closing (whether or not the loop has detached its futures yet). (After
  // a run, the mark may be set again by a callback that queued the next
  // turn: that one is another ScheduledRun's.)
  ~ScheduledRun() {
    if (ran) return;
    FutureState* s = FutureAccess::state_or_null(self);  // null: moved from
    if (s != nullptr && s->run_scheduled_) [[unlikely]] s->drop_scheduled_callbacks();
  }
  void operator()() {
    ran = true;
    FutureState* s = FutureAccess::state(self);
    s->run_scheduled_ = false;
    s->run_callbacks(self);
  }
  Future<T> self;
  bool ran = false;  // beside the handle: still inline in the loop's queue
};

template <class T>
void FutureState<T>::drop_scheduled_callbacks() {
  run_scheduled_ = false;
  Callback first = std::move(first_callback_);
  first_callback_ = nullptr;
  auto more = std::move(more_callbacks_);
  // Destroyed here, once the state is consistent again (nothing stored,
  // nothing scheduled): a destructor may use this future, and whatever it
  // adds runs inline, as for any future whose loop is gone.
}

template <class T>
void invoke_callback(absl::AnyInvocable<void(Future<T>&)>& cb, Future<T>& self) {
  try {
    cb(self);
  } catch (...) {
    log_callback_failure(std::current_exception(), FutureAccess::state(self)->created());
  }
}

template <class T>
void FutureState<T>::run_callbacks(Future<T>& self) {
  // A callback may add callbacks; they join the next round of this loop
  // rather than recursing.
  while (first_callback_) {
    Callback first = std::move(first_callback_);
    first_callback_ = nullptr;
    auto more = std::move(more_callbacks_);
    if (more == nullptr || more->empty()) {
      invoke_callback(first, self);
      continue;
    }
    // The callbacks taken out of the state still have to read the value:
    // a reference held for them until the last one runs keeps a then(T&&)
    // before them from moving it out (see sole_reader()).
    add_ref();
    invoke_callback(first, self);
    for (size_t i = 0; i + 1 < more->size(); ++i) invoke_callback((*more)[i], self);
    release();  // never the last reference: `self` holds one
    invoke_callback(more->back(), self);
  }
}

template <class T>
void FutureState<T>::run_callbacks_here() {
  Future<T> self = FutureAccess::share(this);
  run_callbacks(self);
}

template <class T>
void FutureState<T>::run_inline_first() {
  inline_first_ = false;
  Callback cb = std::move(first_callback_);
  first_callback_ = nullptr;
  if (more_callbacks_ != nullptr && !more_callbacks_->empty()) {
    first_callback_ = std::move(more_callbacks_->front());
    more_callbacks_->erase(more_callbacks_->begin());
  }
  // The other callbacks are queued first: whatever the inline one completes
  // queues its own callbacks behind them, as it would if it ran in their
  // turn.
  if (first_callback_) schedule_callbacks();
  Future<T> self = FutureAccess::share(this);
  invoke_callback(cb, self);
}

// Whether a consumer holding `from` (done) may move its value out instead of
// copying it: only when nobody else can read it afterwards. copy_outcome
// never takes a loop future's (callbacks after its own may still read it);
// a ConcurrentFuture's when that is its last handle (concurrent_future.h).
template <class From>
bool may_take_value(const From&) {
  return false;
}
template <class T>
bool may_take_value(const ConcurrentFuture<T>& from);

// Copies the outcome of `from` (done) into `to` unless `to` is done.
// Moves the value when nobody else can read it (may_take_value), or when it
// cannot be copied (is_deeply_copyable_v: a vector of unique_ptrs cannot
// either): a move-only value goes to `to` whoever else holds `from`, and
// they must not read it.
template <class T, class From>
bool copy_outcome(From& from, FutureState<T>* to) {
  if (to->done()) return false;
  std::exception_ptr e;
  if (from.cancelled()) {
    return to->try_cancel();
  }
  e = from.exception();
  if (e) return to->try_set_exception(std::move(e));
  if constexpr (std::is_void_v<T>) {
    return to->try_set_value();
  } else {
    // A value whose copy throws fails `to` with that instead of leaving it
    // pending forever (the throw would only reach a callback's log line).
    try {
      if constexpr (is_deeply_copyable_v<T>) {
        if (!may_take_value(from)) return to->try_set_value(from.result());
      }
      return to->try_set_value(std::move(from.result()));
    } catch (...) {
      return to->try_set_exception(std::current_exception());
    }
  }
}

// See keep_alive.h.
template <class T>
void keep_until_done(Future<T>& f, KeepAliveBase* box, const void* taken_by) {
  FutureState<T>* s = FutureAccess::state_or_null(f);
  // Kept by the call's own coroutine, done already, or nothing to watch
  // (an empty handle, another thread's future: the caller reports those).
  if (s == nullptr || s == taken_by || s->done() || !s->on_owner_thread()) return;
  // Added to a pending future, the callback posts nothing: no post room
  // is needed.
  s->add_callback(KeepRef(box));
}

}  // namespace internal

// A future that already holds `value`.
template <class T>
[[nodiscard]] Future<std::decay_t<T>> make_ready_future(
    T&& value, SourceLocation where = SourceLocation::current()) {
  Future<std::decay_t<T>> f(where);
  f.set_result(std::forward<T>(value));
  return f;
}
[[nodiscard]] inline Future<void> make_ready_future(
    SourceLocation where = SourceLocation::current()) {
  Future<void> f(where);
  f.set_result();
  return f;
}

// A future that already holds exception `e` (which must not be null).
template <class T = void>
Future<T> make_exceptional_future(std::exception_ptr e,
                                  SourceLocation where = SourceLocation::current()) {
  Future<T> f(where);
  f.set_exception(std::move(e));
  return f;
}

// Copies a's outcome (value, exception or cancellation) into b once a is
// done, unless b is done by then: at once if a is done already (as
// Tornado's chain_future), else from a's callback on a later turn. Both
// futures must belong to this thread's loop. The ConcurrentFuture overload
// is in concurrent_future.h.
// Throws InvalidStateError, and chains nothing, if either handle is empty
// (moved from) or belongs to another thread's loop.
template <class T>
void chain_future(Future<T> a, Future<T> b) {
  internal::FutureAccess::state(a, "chain_future", "the source Future a is empty");
  internal::FutureState<T>* to =
      internal::FutureAccess::state(b, "chain_future", "the target Future b is empty");
  if (a.done()) {
    internal::copy_outcome(a, to);
    return;
  }
  a.add_done_callback([b](Future<T>& done) mutable {
    internal::copy_outcome(done, internal::FutureAccess::state(b));
  });
}

template <class T>
template <class F>
Future<typename internal::ThenTraits<T, std::decay_t<F>>::value_type> Future<T>::then(
    F&& fn, SourceLocation where) {
  using Traits = internal::ThenTraits<T, std::decay_t<F>>;
  using U = typename Traits::value_type;
  internal::check_callable(fn, "Future::then", "fn");
  internal::FutureState<T>* s = state("then");
  Future<U> out(where);
  s->add_callback([out, fn = internal::keep_if<Traits::kFlatten && std::is_class_v<std::decay_t<F>>>(
                                 std::forward<F>(fn))](
                      Future<T>& done) mutable {
    internal::FutureState<T>* from = internal::FutureAccess::state(done);
    internal::FutureState<U>* to = internal::FutureAccess::state(out);
    if (to->done()) return;  // the result was cancelled: nobody wants fn's value
    if (from->status() == internal::FutureStatus::kCancelled) {
      to->try_cancel();
      return;
    }
    if (from->status() == internal::FutureStatus::kException) {
      from->mark_retrieved();
      to->try_set_exception(from->error());
      return;
    }
    try {
      // By value: a reference fn returns into a copy made below must not
      // outlive the copy.
      auto call = [&]() -> typename Traits::Returned {
        if constexpr (std::is_void_v<T>) {
          return fn();
        } else if constexpr (Traits::kByRef) {
          return fn(from->value());
        } else {
          // Moved out only when nobody else can read it afterwards (another
          // handle, a later callback); a copy otherwise, unless T cannot be
          // copied (is_deeply_copyable_v).
          if constexpr (internal::is_deeply_copyable_v<T>) {
            if (!from->sole_reader()) {
              T copy(from->value());
              return fn(std::move(copy));
            }
          }
          return fn(std::move(from->value()));
        }
      };
      if constexpr (Traits::kFlatten) {
        Future<U> inner = call();
        // An empty (moved-from) handle fails the result with
        // InvalidStateError, like any other exception from fn.
        if (!inner.valid()) {
          internal::throw_empty_handle("Future::then", "fn returned an empty Future");
        }
        chain_future(std::move(inner), out);
      } else if constexpr (std::is_void_v<U>) {
        call();
        to->try_set_value();
      } else {
        to->try_set_value(call());
      }
    } catch (...) {
      to->try_set_exception(std::current_exception());
    }
  });
  return out;
}

}  // namespace eddy

#endif  // EDDY_FUTURES_FUTURE_H_
