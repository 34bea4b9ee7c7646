// Keeping a coroutine lambda's closure alive while its coroutine runs.
//
// A coroutine lambda refers to its captures through its closure object
// (`this`), which its frame does not own. An entry point that calls the
// closure and then destroys it (a loop callback, a timer, a then()
// continuation) would leave a suspended coroutine reading freed captures:
//
//   loop.spawn_callback([name]() -> eddy::Future<> {
//     co_await eddy::sleep(absl::Milliseconds(1));
//     use(name);  // the closure is gone by now, unless it is kept
//   });
//
// So every entry point that stores a callable for later wraps it, when it
// returns a Future (known at compile time: ReturnsFuture), in a
// KeptCallable: the callable moves into a heap box, and each call is made
// through invoke_keeping(), which lets the coroutine started by the call
// own a reference to the box until its frame is destroyed (completed,
// failed, or dropped with its loop). A callable that is not a coroutine
// (any function returning a Future) keeps the box until the Future it
// returned is done, or destroyed pending. A callable that does not return
// a Future, or is a plain function, is not wrapped: its path is unchanged.
//
// The hand-over: invoke_keeping() publishes the box in the thread-local
// keep_slot for the duration of the call; the first eddy coroutine promise
// constructed meanwhile (the callable's own, when it is a coroutine: its
// promise is built before any of its body runs) takes a reference and
// clears the slot, so that coroutines its body starts take nothing.
//
// Threading: a box is created wherever the entry point is called (any
// thread, for IOLoop::add_callback) but referenced by frames and callbacks
// only on the thread that calls it (the loop's): its count is a plain
// integer.
#ifndef EDDY_FUTURES_INTERNAL_KEEP_ALIVE_H_
#define EDDY_FUTURES_INTERNAL_KEEP_ALIVE_H_

#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

namespace eddy {

template <class T>
class Future;

namespace internal {

template <class R>
struct IsFuture : std::false_type {};
template <class T>
struct IsFuture<Future<T>> : std::true_type {};

// True when calling an F (as an lvalue, as entry points call what they
// store) with A... returns a Future (by value, reference or const).
template <class F, class... A>
concept ReturnsFuture =
    std::is_invocable_v<std::decay_t<F>&, A...> &&
    IsFuture<std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&, A...>>>::value;

// True when an entry point keeps F alive while a call's coroutine runs: a
// function object (a lambda, an AnyInvocable, a std::function) whose call
// returns a Future. A function pointer has nothing to keep.
template <class F, class... A>
concept NeedsKeeping = std::is_class_v<std::decay_t<F>> && ReturnsFuture<F, A...>;

// The reference-counted part of a box.
struct KeepAliveBase {
  uint32_t refs = 1;
  void (*destroy)(KeepAliveBase*) = nullptr;
  void add_ref() { ++refs; }
  void release() {
    if (--refs == 0) destroy(this);
  }
};

// Published by invoke_keeping() around a call (see the file comment).
struct KeepSlot {
  KeepAliveBase* box;
  const void* taken_by = nullptr;  // the taking promise's future state
};
constinit inline thread_local KeepSlot* keep_slot = nullptr;

// For a coroutine promise being constructed, whose future state is
// `state`: the box to keep (a reference taken), or nullptr. One
// thread-local load when there is none.
inline KeepAliveBase* take_keep_slot(const void* state) {
  KeepSlot* k = keep_slot;
  if (k == nullptr) [[likely]] return nullptr;
  keep_slot = nullptr;
  k->taken_by = state;
  k->box->add_ref();
  return k->box;
}

// A reference to a box, released when destroyed. Move-only, one pointer.
class KeepRef {
 public:
  explicit KeepRef(KeepAliveBase* b) : b_(b) { b_->add_ref(); }
  KeepRef(KeepRef&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
  KeepRef(const KeepRef&) = delete;
  KeepRef& operator=(const KeepRef&) = delete;
  KeepRef& operator=(KeepRef&&) = delete;
  ~KeepRef() {
    if (b_ != nullptr) b_->release();
  }
  template <class... A>
  void operator()(A&&...) const {}

 private:
  KeepAliveBase* b_;
};

// Defined in future.h (it needs Future's internals): when the call's
// result `f` is pending and no coroutine of its own took the box, keeps a
// reference to `box` until `f` is done or destroyed.
template <class T>
void keep_until_done(Future<T>& f, KeepAliveBase* box, const void* taken_by);

template <class Fn>
struct KeepBox : KeepAliveBase {
  template <class G>
  explicit KeepBox(G&& g) : fn(std::forward<G>(g)) {
    destroy = [](KeepAliveBase* b) { delete static_cast<KeepBox*>(b); };
  }
  Fn fn;
};

// Calls box->fn(args...) with the box published in keep_slot, and keeps
// the box for as long as the call's coroutine (or its Future) needs it.
template <class Fn, class... A>
auto invoke_keeping(KeepBox<Fn>* box, A&&... args)
    -> std::remove_cvref_t<std::invoke_result_t<Fn&, A...>> {
  KeepSlot slot{box};
  struct Restore {
    KeepSlot* previous;
    ~Restore() { keep_slot = previous; }
  } restore{std::exchange(keep_slot, &slot)};
  std::remove_cvref_t<std::invoke_result_t<Fn&, A...>> f =
      std::invoke(box->fn, std::forward<A>(args)...);
  keep_slot = restore.previous;
  keep_until_done(f, box, slot.taken_by);
  return f;
}

// A callable returning a Future, moved into a box that outlives this
// wrapper while a call's coroutine runs (see the file comment). Called
// with whatever the callable accepts; returns its Future by value.
template <class Fn>
class KeptCallable {
 public:
  template <class G>
    requires(!std::is_same_v<std::remove_cvref_t<G>, KeptCallable>)
  explicit KeptCallable(G&& g) : box_(new KeepBox<Fn>(std::forward<G>(g))) {}
  KeptCallable(KeptCallable&& o) noexcept : box_(std::exchange(o.box_, nullptr)) {}
  KeptCallable(const KeptCallable&) = delete;
  KeptCallable& operator=(const KeptCallable&) = delete;
  KeptCallable& operator=(KeptCallable&&) = delete;
  ~KeptCallable() {
    if (box_ != nullptr) box_->release();
  }

  template <class... A>
    requires std::is_invocable_v<Fn&, A...>
  auto operator()(A&&... args) {
    return invoke_keeping(box_, std::forward<A>(args)...);
  }

 private:
  KeepBox<Fn>* box_;
};

// What an entry point stores for `fn`: a KeptCallable when kKeep (fn
// returns a Future), else fn's decayed copy, exactly as before.
template <bool kKeep, class F>
auto keep_if(F&& fn) {
  if constexpr (kKeep) {
    return KeptCallable<std::decay_t<F>>(std::forward<F>(fn));
  } else {
    return std::decay_t<F>(std::forward<F>(fn));
  }
}

}  // namespace internal
}  // namespace eddy

#endif  // EDDY_FUTURES_INTERNAL_KEEP_ALIVE_H_
