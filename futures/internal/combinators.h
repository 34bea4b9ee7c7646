// Plumbing shared by the combinators (multi.h, wait_iterator.h,
// first_completed.h): recognising future types, bridging ConcurrentFutures
// onto the loop, taking values out of finished children, and the small
// reference-counted blocks their per-child callbacks point at.
//
// Not for users; the public headers document the behaviour.
//
// Threading: everything here lives on one loop thread, like Future itself;
// no atomics.
#ifndef EDDY_FUTURES_INTERNAL_COMBINATORS_H_
#define EDDY_FUTURES_INTERNAL_COMBINATORS_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include "eddy/futures/source_location.h"
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/copy_or_move.h"

namespace eddy::internal {

// FutureTraits<F>::value_type is T for Future<T> and ConcurrentFuture<T>;
// undefined otherwise (which is what the FutureLike concept tests).
template <class F>
struct FutureTraits {};
template <class T>
struct FutureTraits<Future<T>> {
  using value_type = T;
};
template <class T>
struct FutureTraits<ConcurrentFuture<T>> {
  using value_type = T;
};

template <class F>
concept FutureLike = requires { typename FutureTraits<std::remove_cvref_t<F>>::value_type; };

template <class F>
using FutureValue = typename FutureTraits<std::remove_cvref_t<F>>::value_type;

// A loop future for `f`: f itself, or (ConcurrentFuture) a new loop future
// chained to it, completed on this thread's loop.
// Throws InvalidStateError for a ConcurrentFuture when no loop is current.
template <class T>
Future<T> as_loop_future(Future<T> f, SourceLocation = SourceLocation::current()) {
  return f;
}
template <class T>
Future<T> as_loop_future(ConcurrentFuture<T> f,
                         SourceLocation where = SourceLocation::current()) {
  Future<T> out(where);
  chain_future(std::move(f), out);
  return out;
}

// The value a finished child contributes to an aggregate result: a copy
// when T is copyable, elements included (the child may be shared with other
// code; is_deeply_copyable_v), otherwise moved out of the child.
// Precondition: the child holds a value.
template <class T>
  requires(!std::is_void_v<T>)
T take_value(FutureState<T>* s) {
  if constexpr (is_deeply_copyable_v<T>) {
    return s->value();
  } else {
    return std::move(s->value());
  }
}

// A finished child's failure as an exception_ptr (CancelledError for a
// cancelled child), or nullptr when it holds a value. Marks an exception
// retrieved: the combinator takes responsibility for reporting it.
template <class T>
std::exception_ptr failure_of(FutureState<T>* s) {
  switch (s->status()) {
    case FutureStatus::kException:
      s->mark_retrieved();
      return s->error();
    case FutureStatus::kCancelled:
      return std::make_exception_ptr(CancelledError());
    default:
      return nullptr;
  }
}

// A strong reference to a finished child's state (the combinators take one
// only once a child is done, so a block never keeps a pending child alive:
// no cycle through the child's callback list).
template <class T>
class HeldState {
 public:
  HeldState() = default;
  HeldState(HeldState&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  HeldState& operator=(HeldState&&) = delete;
  ~HeldState() { reset(); }

  void hold(FutureState<T>* s) {
    s->add_ref();
    reset();
    s_ = s;
  }
  void reset() {
    if (s_ != nullptr) std::exchange(s_, nullptr)->release();
  }
  FutureState<T>* get() const { return s_; }

 private:
  FutureState<T>* s_ = nullptr;
};

// An owning pointer to a combinator block with an intrusive, non-atomic
// count (the block lives on one loop thread). Blocks derive from
// RefCounted<Block>. Pointer-sized and nothrow-movable, so a per-child
// callback capturing one (plus an index) stays inside AnyInvocable's inline
// buffer and attaching it allocates nothing beyond the child's callback list.
template <class Block>
class BlockRef {
 public:
  explicit BlockRef(Block* b) noexcept : b_(b) { b_->add_ref(); }
  BlockRef(BlockRef&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
  BlockRef(const BlockRef&) = delete;
  BlockRef& operator=(const BlockRef&) = delete;
  BlockRef& operator=(BlockRef&&) = delete;
  ~BlockRef() {
    if (b_ != nullptr) b_->release();
  }
  Block* operator->() const noexcept { return b_; }
  Block* get() const noexcept { return b_; }

 private:
  Block* b_;
};

template <class Block>
class RefCounted {
 public:
  void add_ref() noexcept { ++refs_; }
  void release() {
    if (--refs_ == 0) delete static_cast<Block*>(this);
  }

 protected:
  RefCounted() = default;
  ~RefCounted() = default;

 private:
  uint32_t refs_ = 0;
};

// Stands in for the key list of a combinator over a vector.
struct NoKeys {};

// True when a callable of type F is stored inline by absl::AnyInvocable
// (no allocation): at most two pointers, pointer-aligned, nothrow-movable.
template <class F>
inline constexpr bool kFitsInline = sizeof(F) <= 2 * sizeof(void*) &&
                                    alignof(F) <= alignof(void*) &&
                                    std::is_nothrow_move_constructible_v<F>;

// "Multiple exceptions in yield list" (Tornado's wording) for a failure
// that multi() does not raise.
void log_extra_failure(const std::exception_ptr& e, const SourceLocation& where);

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_COMBINATORS_H_
