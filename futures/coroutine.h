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
//     next loop turn, so deep recursion cannot overflow the stack.)
//   - co_return resolves the returned Future; an exception escaping the
//     body fails it with that exception, type preserved.
//   - co_await accepts Future<T> (yields T& for an lvalue future, T moved
//     out for an rvalue), ConcurrentFuture<T> (completed on any thread,
//     resumed on the awaiting loop's thread), and std::vector, std::map,
//     absl::flat_hash_map and std::tuple of futures (awaited in parallel
//     with multi() semantics; see multi.h). Awaiting a future that is
//     already done does not suspend.
//   - Cancelling the returned Future cancels the future the coroutine is
//     suspended on and throws CancelledError at that co_await; the body may
//     catch it and clean up (its later co_return is ignored).
//
// Threading: a coroutine belongs to the loop current when it was called and
// always resumes on that loop's thread. Its returned Future is an ordinary
// loop Future.
//
// Lifetime: a coroutine suspended on a loop that is destroyed is destroyed
// with it (its frame freed, its locals' destructors run on the loop thread);
// it is never resumed after that. A coroutine called with no loop current
// resumes wherever its awaited future completes, and one that is never
// resumed then leaks its frame, as a pending callback would.
#ifndef EDDY_FUTURES_COROUTINE_H_
#define EDDY_FUTURES_COROUTINE_H_

#include <coroutine>
#include <exception>
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
  PromiseBase() {
    resume = &resume_waiter;
    if (Scheduler* s = Scheduler::current()) {
      anchor_ = s->anchor();
      anchor_->add_ref();
    }
    node_.owner = this;
    node_.drop = &drop_frame;
  }
  ~PromiseBase() {
    Scheduler::disown(&node_);
    end_eager();
    if (anchor_ != nullptr) anchor_->release();
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
  void on_suspend(std::coroutine_handle<> frame, void (*cancel)(void*), void* ctx) {
    end_eager();
    frame_ = frame;
    suspended_ = true;
    if (!node_.linked()) {
      if (Scheduler* s = scheduler()) s->own(&node_);
    }
    if (cancel_hook_ != nullptr) *cancel_hook_ = CancelHook{cancel, ctx};
  }

  // An awaiter's resume path, on the loop thread: disarms the cancel hook
  // and resumes the frame.
  void resume_frame() {
    suspended_ = false;
    if (cancel_hook_ != nullptr) *cancel_hook_ = CancelHook{};
    frame_.resume();
  }

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
  // Where on_suspend() arms the cancellation of the coroutine's future:
  // its state's cancel hook, which outlives the promise's every await.
  void set_cancel_hook_slot(CancelHook* slot) { cancel_hook_ = slot; }

 private:
  struct Node : OwnedNode {
    PromiseBase* owner;
  };
  // A future this coroutine awaits as its waiter completed (on the loop,
  // which is alive, so the frame is too).
  static void resume_waiter(void* self) {
    static_cast<PromiseBase*>(static_cast<CoroutineWaiter*>(self))->resume_frame();
  }

  // The loop is going away: a coroutine suspended on one of eddy's
  // awaiters goes with it (see on_suspend).
  static void drop_frame(OwnedNode* node) {
    PromiseBase* p = static_cast<Node*>(node)->owner;
    if (p->suspended_) p->frame_.destroy();
  }

  SchedulerAnchor* anchor_ = nullptr;
  CancelHook* cancel_hook_ = nullptr;
  Node node_;
  std::coroutine_handle<> frame_;
  bool suspended_ = false;
  bool counted_eager_ = false;
};

// Resumes a suspended eddy coroutine unless its loop has been destroyed
// (which destroyed the frame too). Holds its own reference to the anchor,
// so it can tell even after the frame is gone. Two pointers: stored inline
// in a future's callback without allocating.
class Resumer {
 public:
  explicit Resumer(PromiseBase* p) : promise_(p), anchor_(p->anchor()) {
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
    std::exchange(promise_, nullptr)->resume_frame();
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
template <class T>
class FuturePromiseBase : public PromiseBase {
 public:
  // `where` defaults to the coroutine's own location (the compiler calls
  // this constructor from the coroutine), so an exception it leaves
  // unretrieved is logged naming the coroutine.
  explicit FuturePromiseBase(SourceLocation where = SourceLocation::current())
      : result_(where) {
    this->set_cancel_hook_slot(&state()->cancel_hook());
  }

  Future<T> get_return_object() { return result_; }

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
      void await_suspend(std::coroutine_handle<> h) { DeferredStart{p}.await_suspend(h); }
      void await_resume() const noexcept {}
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
  FutureState<T>* state() { return FutureAccess::state(result_); }

 private:
  Future<T> result_;
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
  template <class U = T>
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

  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    FutureState<T>* state = FutureAccess::state(future_);
    if (PromiseBase* p = eddy_promise(h)) {
      p->on_suspend(h, &cancel_awaited, state);
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
      return T(std::move(future_.result()));
    } else {
      return future_.result();  // T&
    }
  }

 private:
  // Out of line: the common await above keeps a small frame.
  [[gnu::noinline]] static void resume_by_callback(FutureState<T>* state, PromiseBase* p) {
    state->add_callback(Resumer(p));
  }

  static void cancel_awaited(void* state) {
    // Runs inside cancel() of the coroutine's own future. The awaited
    // future's callbacks then resume us with CancelledError on a later turn.
    static_cast<FutureState<T>*>(state)->try_cancel();
  }

  Future<T> future_;
};

// --- Awaiting a ConcurrentFuture<T>. ---

// Shared, on the loop thread only, by the awaiter, the cross-thread delivery
// and a pending cancellation: whichever fires first resumes the coroutine.
struct ConcurrentAwaitSlot {
  int refs = 1;
  bool fired = false;
  bool cancelled = false;
  void (*cancel_source)(void* source) = nullptr;  // cancels the ConcurrentFuture
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
  void fire(bool cancelled) {
    if (s_->fired) return;
    s_->fired = true;
    s_->cancelled = cancelled;
    s_->resumer();
  }

 private:
  ConcurrentAwaitSlot* s_;
};

template <class T, bool kMoveOut>
class ConcurrentAwaiter {
 public:
  explicit ConcurrentAwaiter(ConcurrentFuture<T> f) : future_(std::move(f)) {}
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
    auto delivery = make_delivery(s, [ref = SlotRef(slot_)]() mutable { ref.fire(false); });
    future_.add_done_callback([d = std::move(delivery)]() mutable { d.deliver(); });
  }

  decltype(auto) await_resume() {
    if (slot_ != nullptr && slot_->cancelled) throw CancelledError();
    if constexpr (std::is_void_v<T>) {
      future_.result();
    } else if constexpr (kMoveOut) {
      return T(std::move(future_.result()));
    } else {
      return future_.result();
    }
  }

 private:
  static void cancel_concurrent(void* f) { static_cast<ConcurrentFuture<T>*>(f)->cancel(); }

  // The coroutine's future was cancelled while we wait: cancel the work if
  // it is still queued, and resume with CancelledError on the next turn
  // whether or not it could be (a running task's late result is dropped).
  static void on_cancel(void* ctx) {
    auto* slot = static_cast<ConcurrentAwaitSlot*>(ctx);
    slot->cancel_source(slot->source);
    slot->scheduler->post([ref = SlotRef(slot)]() mutable { ref.fire(true); });
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

}  // namespace eddy

template <class T, class... Args>
struct std::coroutine_traits<eddy::Future<T>, Args...> {
  using promise_type = eddy::internal::FuturePromise<T>;
};

#endif  // EDDY_FUTURES_COROUTINE_H_
