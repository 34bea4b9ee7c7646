// Rejecting an empty callable at the call that receives it.
//
// An empty absl::AnyInvocable, a nullptr, a null function or member
// pointer, or an empty std::function handed to an entry point that stores a
// callable for later (a done callback, a task, a loop callback) would only
// crash, or throw std::bad_function_call, when it is finally called, on
// another stack and often another thread. Entry points check it instead:
//
//   template <class F>
//   void add_done_callback(F&& fn) {
//     internal::check_callable(fn, "Future::add_done_callback", "fn");
//     ...
//   }
//
// which throws std::invalid_argument("Future::add_done_callback: fn is
// empty"). Only types that can be null are tested (kMayBeEmpty): for a
// lambda or any other class type the check compiles to nothing.
//
// Header-only, with no dependency on the rest of eddy, so that every module
// can use it.
#ifndef EDDY_FUTURES_INTERNAL_CALLABLE_CHECK_H_
#define EDDY_FUTURES_INTERNAL_CALLABLE_CHECK_H_

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "absl/functional/any_invocable.h"

namespace eddy::internal {

// Matches absl::AnyInvocable and std::function, and classes derived from
// them (which AnyInvocable would otherwise wrap as an opaque, never empty,
// target).
template <class Sig>
std::true_type nullable_callable_class(const absl::AnyInvocable<Sig>*);
template <class Sig>
std::true_type nullable_callable_class(const std::function<Sig>*);
std::false_type nullable_callable_class(const void*);
template <class F, bool = std::is_class_v<F>>
struct IsNullableCallableClass : std::false_type {};
template <class F>
struct IsNullableCallableClass<F, true>
    : decltype(nullable_callable_class(static_cast<const F*>(nullptr))) {};

// True when a callable of type F (any cv-ref qualification) can be empty:
// a function or member pointer, std::nullptr_t, or an absl::AnyInvocable or
// std::function (or a class derived from one). A function (reference)
// cannot; neither can a lambda or any other function object.
template <class F>
inline constexpr bool kMayBeEmpty =
    std::is_pointer_v<std::remove_cvref_t<F>> ||
    std::is_member_pointer_v<std::remove_cvref_t<F>> ||
    std::is_null_pointer_v<std::remove_cvref_t<F>> ||
    IsNullableCallableClass<std::remove_cvref_t<F>>::value;

// True when `fn` is empty: a null pointer, an empty AnyInvocable or
// std::function. Always false (at compile time) for types that cannot be.
template <class F>
constexpr bool is_empty_callable(const F& fn) noexcept {
  if constexpr (std::is_null_pointer_v<F>) {
    return true;
  } else if constexpr (kMayBeEmpty<F>) {
    return !static_cast<bool>(fn);
  } else {
    (void)fn;
    return false;
  }
}

// A function object that an absl::AnyInvocable stores inline (16 bytes at
// most, not over-aligned) and that is made from `F` without throwing: an
// entry point may then build its AnyInvocable straight where it is kept
// (a loop's queue slot, a future's first callback) instead of building a
// temporary and moving it there (a call, and a 16-byte copy that reads the
// closure right after it was written in smaller pieces).
template <class F>
concept InPlaceCallable =
    std::is_class_v<std::remove_cvref_t<F>> && !kMayBeEmpty<F> &&
    sizeof(std::decay_t<F>) <= 16 && alignof(std::decay_t<F>) <= 16 &&
    std::is_nothrow_constructible_v<std::decay_t<F>, F> &&
    std::is_nothrow_move_constructible_v<std::decay_t<F>>;

// Throws std::invalid_argument("<who>: <param> is empty").
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_empty_callable(const char* who,
                                                                        const char* param) {
  throw std::invalid_argument(std::string(who) + ": " + param + " is empty");
}

// Throws std::invalid_argument("<who>: <param> is empty") when `fn` is
// empty (see is_empty_callable); `who` names the entry point
// ("Future::then"), `param` its parameter ("fn").
template <class F>
void check_callable(const F& fn, const char* who, const char* param) {
  if constexpr (kMayBeEmpty<F>) {
    if (is_empty_callable(fn)) [[unlikely]] throw_empty_callable(who, param);
  } else {
    (void)fn;
    (void)who;
    (void)param;
  }
}

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_CALLABLE_CHECK_H_
