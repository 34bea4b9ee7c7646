// Rejecting an empty callable where it is handed over, rather than when it
// is called later, on another stack or thread (an empty AnyInvocable asserts
// or jumps to address 0 there). Not a public API: the entry points of loop/
// and sync/ use it.
//
// "Empty" is what can be tested against nullptr: an empty
// absl::AnyInvocable or std::function, a null function or member pointer,
// nullptr itself. A lambda or other function object is never empty, and
// for one (or an AnyInvocable built from it in the caller's expression)
// the compiler folds the test away where it is inlined.
//
// Threading: any thread (the checks read only the argument).
#ifndef EDDY_LOOP_INTERNAL_EMPTY_CALLABLE_H_
#define EDDY_LOOP_INTERNAL_EMPTY_CALLABLE_H_

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "absl/functional/any_invocable.h"

namespace eddy::internal {

template <class F>
struct NullableCallable
    : std::bool_constant<std::is_pointer_v<F> || std::is_member_pointer_v<F> ||
                         std::is_null_pointer_v<F>> {};
template <class Sig>
struct NullableCallable<absl::AnyInvocable<Sig>> : std::true_type {};
template <class Sig>
struct NullableCallable<std::function<Sig>> : std::true_type {};

// True if `fn` is empty (see above); false for any other callable.
template <class F>
constexpr bool callable_is_empty(const F& fn) noexcept {
  using D = std::remove_cvref_t<F>;
  if constexpr (NullableCallable<D>::value) {
    return fn == nullptr;
  } else {
    return false;
  }
}

// Throws std::invalid_argument("<op>: <param> is empty").
[[noreturn, gnu::noinline, gnu::cold]] inline void throw_empty_callable(const char* op,
                                                                      const char* param) {
  throw std::invalid_argument(std::string(op) + ": " + param + " is empty");
}

// Throws std::invalid_argument naming `op` and `param` if `fn` is empty.
template <class F>
inline void check_callable(const F& fn, const char* op, const char* param) {
  if (callable_is_empty(fn)) [[unlikely]] throw_empty_callable(op, param);
}

}  // namespace eddy::internal

#endif  // EDDY_LOOP_INTERNAL_EMPTY_CALLABLE_H_
