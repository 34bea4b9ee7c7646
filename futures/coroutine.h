// Coroutines: a function that returns Future<T> may be a C++20 coroutine.
//
//   #include "eddy/futures/coroutine.h"
//
//   eddy::Future<int> fetch_total(Store& store) {
//     std::vector<eddy::Future<int>> parts = {store.load(1), store.load(2)};
//     std::vector<int> values = co_await parts;           // in parallel (multi)
//     int bonus = co_await store.load(3);                 // one at a time
//     co_return values[0] + values[1] + bonus;
//   }
//
// Semantics (Tornado's gen.coroutine):
//   - The coroutine starts eagerly: calling it runs the body synchronously
//     up to its first suspension. (Only when eager starts nest more than
//     kMaxEagerDepth deep on one thread does the next start wait for the
//     next loop turn, so deep recursion cannot overflow the stack; nor can
//     completing or cancelling a deep chain of awaits.)
//   - co_return resolves the returned Future; an exception escaping the
//     body fails it with that exception, type preserved.
//   - co_await accepts Future<T> and ConcurrentFuture<T>, yielding T& for
//     an lvalue future and T for an rvalue one: moved out when that handle
//     was the last one, else copied (a move-only T is moved regardless:
//     keep no other reader of it; a container of move-only values, such as
//     std::vector<std::unique_ptr<Row>>, counts as move-only). A
//     ConcurrentFuture completes on any thread and resumes the coroutine on
//     the awaiting loop's thread.
//     co_await also accepts std::vector, std::map, absl::flat_hash_map
//     and std::tuple of futures (awaited in parallel with multi()
//     semantics; see multi.h). Awaiting a future that is already done does
//     not suspend. Awaiting a moved-from (empty) future throws
//     InvalidStateError at the co_await.
//   - Cancelling the returned Future cancels the future the coroutine is
//     suspended on and throws CancelledError at that co_await; the body may
//     catch it and clean up (its later co_return is ignored). An awaited
//     ConcurrentFuture that is already running cannot be cancelled: the
//     co_await throws CancelledError all the same, and the late result is
//     dropped. A cancellation that finds no await to take it (the
//     coroutine is running, or the future it awaited is done and its
//     resume queued, a ConcurrentFuture's outcome on its way to the loop
//     included) is kept for the next co_await that suspends, as asyncio's
//     Task does.
//
// Threading: a coroutine belongs to the loop current when it was called and
// always resumes on that loop's thread. Its returned Future is an ordinary
// loop Future.
//
// Lifetime: a coroutine suspended on a loop that is destroyed is destroyed
// with it (its frame freed, its locals' destructors run on the loop thread);
// it is never resumed after that. One that was running, or suspended on an
// awaitable that is not eddy's, when its loop went is left alone, and from
// then on behaves as one called with no loop current. A coroutine called
// with no loop current resumes wherever its awaited future completes, and
// one that is never resumed then leaks its frame, as a pending callback
// would.
//
// A coroutine lambda's captures live in its closure object, not in its
// frame: the closure must outlive the coroutine. The library's entry points
// that take a callable (IOLoop::spawn_callback, add_callback, call_later,
// call_at, add_timeout, add_future, run_in_loop, run_sync with a temporary,
// Future::then, Future::add_done_callback) keep a callable that returns a
// Future alive until the coroutine it starts is finished; to call a
// coroutine lambda yourself, use co_invoke (below), not `[x]() -> ... {}()`.
// A parameter taken by reference is still the caller's to keep alive.
#ifndef EDDY_FUTURES_COROUTINE_H_
#define EDDY_FUTURES_COROUTINE_H_

#include <coroutine>
#include <exception>
#include <functional>
#include <map>
#include "eddy/futures/source_location.h"
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/internal/keep_alive.h"
#include "eddy/futures/multi.h"
#include "eddy/futures/scheduler.h"

namespace eddy {
namespace internal {

// How many eager coroutine starts may nest on one thread before the next
// start is deferred to the next loop turn.
inline constexpr int kMaxEagerDepth = 64;
inline thread_local int eager_depth = 0;

// The part of every eddy coroutine promise that awaiters talk to. It is
// the coroutine's CoroutineWaiter: a future it awaits posts resume(this).
class PromiseBase : public CoroutineWaiter {
 public:
  // Coroutine frames come from the same per-thread recycler as future
  // states (internal/recycler.h): a coroutine that calls a coroutine then
  // reuses the frame the last call freed instead of going to malloc, as
  // Asio's awaitable frames do (W9, "await a sub-coroutine"). Frames above
  // the recycler's largest class, and every frame under AddressSanitizer,
  // still go to operator new/delete.
  static void* operator new(size_t size) { return recycled_allocate(size); }
  static void operator delete(void* p, size_t size) noexcept { recycled_deallocate(p, size); }

  // `anchor`: the loop current when the coroutine was called, or nullptr.
  // Borrowed: the derived promise owns the coroutine's future state, which
  // holds a reference to the same anchor for the frame's whole life (a
  // reference of the frame's own would cost every call a thread-local
  // lookup and two counter updates for nothing).
  explicit PromiseBase(SchedulerAnchor* anchor) : anchor_(anchor) {
    resume = &resume_waiter;
    node_.owner = this;
    node_.drop = &drop_frame;
  }
  ~PromiseBase() {
    Scheduler::disown(&node_);
    end_eager();
    // Last: the frame's locals are gone, and the closure they may have
    // referred to can go too (see keep_alive.h).
    if (keep_ != nullptr) [[unlikely]] keep_->release();
  }
  PromiseBase(const PromiseBase&) = delete;
  PromiseBase& operator=(const PromiseBase&) = delete;

  // The loop the coroutine belongs to, or nullptr (none, or destroyed).
  Scheduler* scheduler() const { return anchor_ != nullptr ? anchor_->get() : nullptr; }
  SchedulerAnchor* anchor() const { return anchor_; }

  // Called by an awaiter just before the coroutine suspends on something
  // that will resume it: the loop owns the frame until resume, and
  // cancelling the coroutine's future calls `cancel(ctx)`.
  //
  // The frame joins the loop's owned list at its first such suspension and
  // stays there until it is destroyed (every await on one list walk would
  // cost more than the await's own work); `suspended_` tells the loop, if it
  // goes away, whether the frame is waiting on one of eddy's awaiters (then
  // it is destroyed) or running or suspended elsewhere (then it is left
  // alone, as a frame the loop never owned).
  //
  // `cancel(ctx)` returns false when it could not reach the awaited work
  // (the awaited future is done already, its resume queued): the
  // cancellation is then kept (see take_cancel_pending) instead of lost.
  void on_suspend(std::coroutine_handle<> frame, bool (*cancel)(void*), void* ctx) {
    end_eager();
    frame_ = frame;
    suspended_ = true;
    if (!node_.linked()) {
      if (Scheduler* s = scheduler()) s->own(&node_);
    }
    cancel_fn_ = cancel;
    cancel_ctx_ = ctx;
  }

  // An awaiter's resume path, on the loop thread: resumes the frame. From
  // now until its next suspension a cancellation cannot reach any await,
  // so it is kept for that one (asyncio's Task._must_cancel).
  void resume_frame() {
    suspended_ = false;
    cancel_fn_ = nullptr;
    frame_.resume();
  }

  // True (once) if the coroutine's future was cancelled while no await
  // could take the cancellation: the awaiter about to suspend then cancels
  // what it awaits, so CancelledError is thrown at that co_await. The
  // awaiters test cancel_pending() first: the common path only loads.
  bool cancel_pending() const { return cancel_pending_; }
  bool take_cancel_pending() { return std::exchange(cancel_pending_, false); }

  std::coroutine_handle<> frame() const { return frame_; }

  // The eager-start bookkeeping (see kMaxEagerDepth).
  void begin_eager() {
    counted_eager_ = true;
    ++eager_depth;
  }
  void end_eager() {
    if (counted_eager_) {
      counted_eager_ = false;
      --eager_depth;
    }
  }

 protected:
  // The closure of the coroutine lambda this frame runs, when an entry
  // point (spawn_callback, then, co_invoke, ...) handed it over: released
  // with the frame. See keep_alive.h.
  void keep(KeepAliveBase* box) { keep_ = box; }

  // Arms the cancellation of the coroutine's future (its state's cancel
  // hook) once, for the coroutine's whole life: cancel() then reaches
  // on_cancel, which passes it to the current await, if any (on_suspend
  // names it), or keeps it for the next one. The promise's owner disarms
  // it when the frame dies before the future.
  void arm_cancel_hook(CancelHook* slot) { *slot = CancelHook{&on_cancel, this}; }

 private:
  struct Node : OwnedNode {
    PromiseBase* owner;
  };
  // A future this coroutine awaits as its waiter completed (on the loop,
  // which is alive, so the frame is too).
  static void resume_waiter(void* self) {
    static_cast<PromiseBase*>(static_cast<CoroutineWaiter*>(self))->resume_frame();
  }

  static void on_cancel(void* self) {
    auto* p = static_cast<PromiseBase*>(self);
    if (p->cancel_fn_ == nullptr || !p->cancel_fn_(p->cancel_ctx_)) p->cancel_pending_ = true;
  }

  // The loop is going away: a coroutine suspended on one of eddy's
  // awaiters goes with it (see on_suspend).
  static void drop_frame(OwnedNode* node) {
    PromiseBase* p = static_cast<Node*>(node)->owner;
    if (p->suspended_) p->frame_.destroy();
  }

  SchedulerAnchor* anchor_ = nullptr;
  KeepAliveBase* keep_ = nullptr;
  Node node_;
  std::coroutine_handle<> frame_;
  bool (*cancel_fn_)(void*) = nullptr;  // the current suspension's canceller
  void* cancel_ctx_ = nullptr;
  bool suspended_ = false;
  bool counted_eager_ = false;
  bool cancel_pending_ = false;
};

// Resumes a suspended eddy coroutine unless its loop has been destroyed
// (which destroyed the frame too). Holds its own reference to the anchor,
// so it can tell even after the frame is gone. Two pointers: stored inline
// in a future's callback without allocating.
//
// A frame whose loop is gone already (the loop left it alone: it was
// running, or parked on a foreign awaitable) belongs to no loop any more,
// and no loop can destroy it: like a coroutine called with no loop current
// it is resumed unconditionally, wherever the awaited future completes.
// (The check costs the common await nothing: that one registers the
// promise as the future's waiter, not a Resumer.)
class Resumer {
 public:
  explicit Resumer(PromiseBase* p)
      : promise_(p), anchor_(p->scheduler() != nullptr ? p->anchor() : nullptr) {
    if (anchor_ != nullptr) anchor_->add_ref();
  }
  Resumer(Resumer&& o) noexcept
      : promise_(std::exchange(o.promise_, nullptr)), anchor_(std::exchange(o.anchor_, nullptr)) {}
  Resumer(const Resumer&) = delete;
  Resumer& operator=(const Resumer&) = delete;
  Resumer& operator=(Resumer&&) = delete;
  ~Resumer() {
    if (anchor_ != nullptr) anchor_->release();
  }

  // True when the frame is still there to resume.
  bool alive() const { return promise_ != nullptr && (anchor_ == nullptr || anchor_->get() != nullptr); }

  void operator()() {
    if (!alive()) return;
    PromiseBase* p = std::exchange(promise_, nullptr);
    if (anchor_ != nullptr) {
      // Through the loop, so that its watchdog can name the coroutine.
      anchor_->get()->resume_now(p->resume, static_cast<CoroutineWaiter*>(p));
    } else {
      p->resume_frame();
    }
  }
  template <class F>
  void operator()(F&) {
    (*this)();
  }

 private:
  PromiseBase* promise_;
  SchedulerAnchor* anchor_;
};

template <class P>
PromiseBase* eddy_promise(std::coroutine_handle<P> h) {
  if constexpr (std::is_base_of_v<PromiseBase, P>) {
    return &h.promise();
  } else {
    return nullptr;
  }
}

// Defers a coroutine's start to the next loop turn (deep eager nesting).
struct DeferredStart {
  PromiseBase* promise;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    promise->on_suspend(h, nullptr, nullptr);
    promise->scheduler()->post([r = Resumer(promise)]() mutable { r(); });
  }
  void await_resume() const noexcept {}
};

// The promise of a coroutine returning Future<T>: owns the result future.
//
// The future comes first among the bases (ResultSlot), so that it is made
// before PromiseBase, which borrows the future state's loop anchor, and
// destroyed after it.
template <class T>
struct ResultSlot {
  explicit ResultSlot(SourceLocation where) : result_(where) {}
  Future<T> result_;
};

template <class T>
class FuturePromiseBase : private ResultSlot<T>, public PromiseBase {
 public:
  // `where` defaults to the coroutine's own location (the compiler calls
  // this constructor from the coroutine), so an exception it leaves
  // unretrieved is logged naming the coroutine.
  explicit FuturePromiseBase(SourceLocation where = SourceLocation::current())
      : ResultSlot<T>(where), PromiseBase(FutureAccess::state(this->result_)->anchor()) {
    this->arm_cancel_hook(&state()->cancel_hook());
    this->location = &state()->created();
    // Called by an entry point that keeps its callable alive: this frame
    // owns a reference to it from now on (one thread-local load otherwise).
    if (KeepAliveBase* box = take_keep_slot(state())) [[unlikely]] this->keep(box);
  }

  // The frame may die before its future: a loop destroyed it while it was
  // suspended, and the caller still holds the future. The cancel hook armed
  // in the future's state points into this frame; a later cancel() must
  // find nothing to call.
  ~FuturePromiseBase() { state()->cancel_hook() = CancelHook{}; }

  Future<T> get_return_object() { return this->result_; }

  auto initial_suspend() noexcept {
    struct Start {
      FuturePromiseBase* p;
      bool await_ready() const noexcept {
        if (eager_depth < kMaxEagerDepth || p->scheduler() == nullptr) {
          p->begin_eager();
          return true;
        }
        return false;
      }
      void await_suspend(std::coroutine_handle<> h) {
        deferred = true;
        DeferredStart{p}.await_suspend(h);
      }
      // A deferred start is a suspension like any other: if the future was
      // cancelled while it waited for its turn, CancelledError is thrown
      // here (and ends the coroutine quietly, see unhandled_exception)
      // instead of running the body of a coroutine nobody wants any more.
      void await_resume() const {
        if (deferred && p->take_cancel_pending()) throw CancelledError();
      }
      bool deferred = false;
    };
    return Start{this};
  }

  std::suspend_never final_suspend() noexcept {
    end_eager();
    return {};
  }

  void unhandled_exception() {
    std::exception_ptr e = std::current_exception();
    if (state()->try_set_exception(e)) return;
    // The future is done already, so it was cancelled: a CancelledError
    // escaping is the expected end; anything else would vanish silently.
    try {
      std::rethrow_exception(e);
    } catch (const CancelledError&) {
    } catch (...) {
      log(LogLevel::kError, "Exception in a cancelled coroutine: " + describe_exception(e),
          state()->created());
    }
  }

 protected:
  FutureState<T>* state() { return FutureAccess::state(this->result_); }
};

// The constructors restate the defaulted `where` (an inherited constructor
// would record this header instead of the coroutine).
template <class T>
class FuturePromise : public FuturePromiseBase<T> {
 public:
  explicit FuturePromise(SourceLocation where = SourceLocation::current())
      : FuturePromiseBase<T>(where) {}
  // A cancelled coroutine that catches CancelledError may still co_return:
  // its result future stays cancelled.
  // Constrained, so that a `co_return` of a value T cannot be made from
  // fails on the co_return line, not inside the future's storage.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  void return_value(U&& value) {
    this->state()->try_set_value(std::forward<U>(value));
  }
};

template <>
class FuturePromise<void> : public FuturePromiseBase<void> {
 public:
  explicit FuturePromise(SourceLocation where = SourceLocation::current())
      : FuturePromiseBase<void>(where) {}
  void return_void() { this->state()->try_set_value(); }
};

// --- Awaiting a Future<T>. ---

template <class T, bool kMoveOut>
class FutureAwaiter {
 public:
  explicit FutureAwaiter(Future<T> f) : future_(std::move(f)) {}

  bool await_ready() const { return future_.done(); }

  // Inlined into the coroutine (GCC 12 outlined it once the state access
  // grew a second, cold, error path: 12 instructions more per await).
  template <class P>
  [[gnu::always_inline]] void await_suspend(std::coroutine_handle<P> h) {
    FutureState<T>* state = FutureAccess::state(future_);
    if (PromiseBase* p = eddy_promise(h)) {
      p->on_suspend(h, &cancel_awaited, state);
      // Cancelled while it ran: this await takes the cancellation (the
      // future's callbacks then resume us with CancelledError).
      if (p->cancel_pending()) [[unlikely]] take_cancellation(p, state);
      if (!state->try_set_waiter(p, p->anchor())) [[unlikely]] {
        resume_by_callback(state, p);
      }
    } else {
      state->add_callback([h](Future<T>&) { h.resume(); });
    }
  }

  decltype(auto) await_resume() {
    if constexpr (std::is_void_v<T>) {
      future_.result();
    } else if constexpr (kMoveOut) {
      // An rvalue handle does not make the state ours: other handles (a
      // cache of in-flight work, other awaiters) may still read the value,
      // so it is moved out only when this is the last handle, and copied
      // otherwise (a move-only T, a container of them included, has no
      // choice): Future::result() &&.
      return std::move(future_).result();
    } else {
      return future_.result();  // T&
    }
  }

 private:
  // Out of line: the common await above keeps a small frame.
  [[gnu::noinline]] static void resume_by_callback(FutureState<T>* state, PromiseBase* p) {
    state->add_callback(Resumer(p));
  }

  [[gnu::noinline]] static void take_cancellation(PromiseBase* p, FutureState<T>* state) {
    p->take_cancel_pending();
    state->try_cancel();
  }

  static bool cancel_awaited(void* state) {
    // Runs inside cancel() of the coroutine's own future. The awaited
    // future's callbacks then resume us with CancelledError on a later turn.
    // False when it is done already (our resume is queued with its outcome).
    // Its own hook (another coroutine's, in a chain) runs after this one
    // returns, not inside it: see DeferredCancel.
    return static_cast<FutureState<T>*>(state)->try_cancel_from_hook();
  }

  Future<T> future_;
};

// --- Awaiting a ConcurrentFuture<T>. ---

// Shared, on the loop thread only, by the awaiter, the cross-thread delivery
// and a pending cancellation: whichever fires first resumes the coroutine.
struct ConcurrentAwaitSlot {
  int refs = 1;
  bool fired = false;
  // The await took a cancellation (on_cancel): it throws CancelledError
  // whichever path resumes it, the cancellation's own or a result that
  // reaches the loop first.
  bool cancelled = false;
  // Cancels the ConcurrentFuture if it is still queued. False when it is
  // done already (its outcome is then on its way to the loop), true when
  // queued or running (then it cannot be cancelled, but is not done).
  bool (*cancel_source)(void* source) = nullptr;
  void* source = nullptr;
  Scheduler* scheduler = nullptr;  // the awaiting coroutine's loop
  Resumer resumer;
  explicit ConcurrentAwaitSlot(PromiseBase* p) : resumer(p) {}
};

class SlotRef {
 public:
  explicit SlotRef(ConcurrentAwaitSlot* s) : s_(s) { ++s_->refs; }
  SlotRef(SlotRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  SlotRef(const SlotRef&) = delete;
  SlotRef& operator=(const SlotRef&) = delete;
  ~SlotRef() {
    if (s_ != nullptr && --s_->refs == 0) delete s_;
  }
  ConcurrentAwaitSlot* get() const { return s_; }

  // Resumes the coroutine, once, from whichever path gets here first.
  void fire() {
    if (s_->fired) return;
    s_->fired = true;
    s_->resumer();
  }

 private:
  ConcurrentAwaitSlot* s_;
};

template <class T, bool kMoveOut>
class ConcurrentAwaiter {
 public:
  // A moved-from future throws here, inside the awaiting coroutine, which
  // fails its Future with InvalidStateError.
  explicit ConcurrentAwaiter(ConcurrentFuture<T> f) : future_(std::move(f)) {
    ConcurrentAccess::state(future_, "co_await", "the awaited ConcurrentFuture is empty");
  }
  ~ConcurrentAwaiter() {
    if (slot_ != nullptr && --slot_->refs == 0) delete slot_;
  }
  ConcurrentAwaiter(ConcurrentAwaiter&& o) noexcept
      : future_(std::move(o.future_)), slot_(std::exchange(o.slot_, nullptr)) {}

  bool await_ready() const { return future_.done(); }

  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    PromiseBase* p = eddy_promise(h);
    Scheduler* s = p != nullptr ? p->scheduler() : Scheduler::current();
    if (p == nullptr || s == nullptr) {
      // No loop to come back to: resume on the completing thread, as a
      // ConcurrentFuture callback would run.
      if (p != nullptr) p->on_suspend(h, nullptr, nullptr);
      future_.add_done_callback([h] { h.resume(); });
      return;
    }
    slot_ = new ConcurrentAwaitSlot(p);
    slot_->cancel_source = &cancel_concurrent;
    slot_->source = &future_;
    slot_->scheduler = s;
    p->on_suspend(h, &on_cancel, slot_);
    auto delivery = make_delivery(s, delivery_from(future_, s),
                                  [ref = SlotRef(slot_)]() mutable { ref.fire(); });
    future_.add_done_callback([d = std::move(delivery)]() mutable { d.deliver(); });
    // Cancelled while it ran: this await takes the cancellation, unless the
    // work finished meanwhile (then it stays pending for the next await, as
    // it would had the await found the future done).
    if (p->cancel_pending()) [[unlikely]] {
      if (on_cancel(slot_)) p->take_cancel_pending();
    }
  }

  decltype(auto) await_resume() {
    if (slot_ != nullptr && slot_->cancelled) throw CancelledError();
    if constexpr (std::is_void_v<T>) {
      future_.result();
    } else if constexpr (kMoveOut) {
      // As for a Future: an rvalue handle does not make the state ours.
      // Other handles (a cache of in-flight work, a thread blocked in
      // result()) may still read the value, so it is moved out only when
      // this is the last handle, and copied otherwise (a move-only T has no
      // choice): ConcurrentFuture::result() &&.
      return std::move(future_).result();
    } else {
      return future_.result();
    }
  }

 private:
  static bool cancel_concurrent(void* f) {
    auto* future = static_cast<ConcurrentFuture<T>*>(f);
    // cancel() is false for running work too, which is not done.
    return future->cancel() || !future->done();
  }

  // The coroutine's future was cancelled while we wait. Work that is done
  // already has its outcome on its way to the loop, its delivery perhaps
  // queued ahead of anything we could post: as with a Future whose resume
  // is queued, this await gets that outcome, and the cancellation is kept
  // for the next await (false). Otherwise this await takes it: the work is
  // cancelled if still queued, and the coroutine resumes with
  // CancelledError on the next turn whether or not it could be (a running
  // task's late result is dropped, even if it reaches the loop first).
  static bool on_cancel(void* ctx) {
    auto* slot = static_cast<ConcurrentAwaitSlot*>(ctx);
    if (!slot->cancel_source(slot->source)) return false;
    slot->cancelled = true;
    slot->scheduler->post([ref = SlotRef(slot)]() mutable { ref.fire(); });
    return true;
  }

  ConcurrentFuture<T> future_;
  ConcurrentAwaitSlot* slot_ = nullptr;
};

}  // namespace internal

// co_await on a Future: see the file comment.
template <class T>
internal::FutureAwaiter<T, false> operator co_await(const Future<T>& f) {
  return internal::FutureAwaiter<T, false>(f);
}
template <class T>
internal::FutureAwaiter<T, true> operator co_await(Future<T>&& f) {
  return internal::FutureAwaiter<T, true>(std::move(f));
}

template <class T>
internal::ConcurrentAwaiter<T, false> operator co_await(const ConcurrentFuture<T>& f) {
  return internal::ConcurrentAwaiter<T, false>(f);
}
template <class T>
internal::ConcurrentAwaiter<T, true> operator co_await(ConcurrentFuture<T>&& f) {
  return internal::ConcurrentAwaiter<T, true>(std::move(f));
}

// Parallel awaits: the container is handed to multi() (copied; children
// keep running if the coroutine is cancelled).
template <class T>
auto operator co_await(std::vector<Future<T>> children) {
  return operator co_await(multi(std::move(children)));
}
template <class K, class T>
auto operator co_await(std::map<K, Future<T>> children) {
  return operator co_await(multi(std::move(children)));
}
template <class K, class T>
auto operator co_await(absl::flat_hash_map<K, Future<T>> children) {
  return operator co_await(multi(std::move(children)));
}
template <class... T>
auto operator co_await(std::tuple<Future<T>...> children) {
  return operator co_await(multi(std::move(children)));
}

// Calls fn(args...), where fn is a coroutine callable (a lambda returning
// Future<R>), with fn (its captures) and args moved into a box that the
// coroutine keeps until it is finished (completed, failed, or destroyed
// with its loop), and returns the coroutine's Future<R>:
//
//   eddy::Future<size_t> f = eddy::co_invoke([name]() -> eddy::Future<size_t> {
//     co_await eddy::sleep(absl::Milliseconds(1));
//     co_return name.size();  // `name` is still there
//   });
//
// A coroutine lambda invoked by hand, `[name]() -> Future<> {...}()`, reads
// its captures through the closure, a temporary that dies at the end of the
// full expression while the coroutine is suspended (plain C++, not eddy).
// co_invoke is the fix (as Asio's co_spawn and folly's co_invoke). The
// library's entry points (IOLoop::spawn_callback, add_callback, the timers,
// add_future, run_in_loop, Future::then, add_done_callback) do the same on
// their own. The args are decay-copied into the box and passed to fn as
// rvalues (as lvalues if fn takes a non-const lvalue reference), so a
// parameter taken by reference refers into the box; a reference the caller
// passes in through std::ref, a pointer or a capture by reference is still
// the caller's to keep alive. A callable that is not a coroutine (any
// function returning a Future) is kept until its Future is done.
// Costs one allocation (the box) besides the coroutine's own.
// Throws std::invalid_argument if fn is empty (a null function pointer, an
// empty AnyInvocable or std::function); whatever fn throws before its first
// suspension (a plain function; a coroutine stores it in its Future).
template <class F, class... A>
auto co_invoke(F&& fn, A&&... args) {
  using Fn = std::decay_t<F>;
  internal::check_callable(fn, "eddy::co_invoke", "fn");
  auto bound = [fn = Fn(std::forward<F>(fn)),
                ... args = std::decay_t<A>(std::forward<A>(args))]() mutable -> decltype(auto) {
    if constexpr (std::is_invocable_v<Fn&, std::decay_t<A>&&...>) {
      return std::invoke(fn, std::move(args)...);
    } else {
      return std::invoke(fn, args...);
    }
  };
  static_assert(internal::ReturnsFuture<decltype(bound)>,
                "co_invoke: fn(args...) must return an eddy::Future (be a coroutine)");
  internal::KeptCallable<decltype(bound)> kept(std::move(bound));
  return kept();
}

}  // namespace eddy

template <class T, class... Args>
struct std::coroutine_traits<eddy::Future<T>, Args...> {
  using promise_type = eddy::internal::FuturePromise<T>;
};

#endif  // EDDY_FUTURES_COROUTINE_H_
