// Choosing between copying a future's value and moving it out.
//
// A future's value may be read by several handles, so the library copies
// it out (into a combinator's result, an rvalue co_await, result() on a
// temporary handle) unless nobody else can read it afterwards; a value
// that cannot be copied is moved regardless. "Cannot be copied" has to be
// asked of the elements too: std::is_copy_constructible_v is true for
// std::vector<std::unique_ptr<int>> (the containers' copy constructors are
// not constrained), and choosing the copy then fails to compile deep in
// the standard library. is_deeply_copyable_v<T> looks inside:
//
//   static_assert(!is_deeply_copyable_v<std::vector<std::unique_ptr<int>>>);
//   static_assert(!is_deeply_copyable_v<std::map<int, std::unique_ptr<int>>>);
//   static_assert(is_deeply_copyable_v<std::vector<std::string>>);
//
// It recurses through the element type of a range (std::ranges::range:
// containers, a map's std::pair<const K, V>), std::pair, std::tuple,
// std::optional and std::variant. Any other class is taken at its word
// (std::is_copy_constructible_v): a struct holding a vector of unique_ptrs
// should delete its copy constructor to be moved. A range whose element
// type is the range itself (std::filesystem::path) stops there.
//
// take_or_copy() is the rule for a consumer holding an rvalue handle:
// moved out when it is the last reader, else copied, else (move-only)
// moved all the same.
//
// Header-only, with no dependency on the rest of eddy.
#ifndef EDDY_FUTURES_INTERNAL_COPY_OR_MOVE_H_
#define EDDY_FUTURES_INTERNAL_COPY_OR_MOVE_H_

#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace eddy::internal {

template <class T>
struct DeeplyCopyable;

// True when a T can be copied, its elements included (see above).
template <class T>
inline constexpr bool is_deeply_copyable_v = DeeplyCopyable<std::remove_cv_t<T>>::value;

// Whether the elements of T (if T is a range) can be copied. Asked only
// once T itself can be.
template <class T>
constexpr bool elements_deeply_copyable() {
  if constexpr (std::ranges::range<T>) {
    using E = std::remove_cv_t<std::ranges::range_value_t<T>>;
    if constexpr (std::is_same_v<E, T>) {
      return true;
    } else {
      return is_deeply_copyable_v<E>;
    }
  } else {
    return true;
  }
}

template <class T>
struct DeeplyCopyable {
  static constexpr bool value = [] {
    if constexpr (std::is_reference_v<T>) {
      return std::is_copy_constructible_v<T>;  // a member reference: copied as one
    } else if constexpr (std::is_copy_constructible_v<T>) {
      return elements_deeply_copyable<T>();
    } else {
      return false;
    }
  }();
};

// The wrappers' copy constructors are defaulted (pair, tuple) or
// constrained only on their members' copy constructors (optional,
// variant), so they answer true for a member that is an unconstrained
// container of move-only values: ask the members.
template <class A, class B>
struct DeeplyCopyable<std::pair<A, B>>
    : std::bool_constant<is_deeply_copyable_v<A> && is_deeply_copyable_v<B>> {};
template <class... A>
struct DeeplyCopyable<std::tuple<A...>> : std::bool_constant<(is_deeply_copyable_v<A> && ...)> {};
template <class A>
struct DeeplyCopyable<std::optional<A>> : std::bool_constant<is_deeply_copyable_v<A>> {};
template <class... A>
struct DeeplyCopyable<std::variant<A...>>
    : std::bool_constant<(is_deeply_copyable_v<A> && ...)> {};

// The value for a consumer that holds an rvalue handle on a done future
// (an rvalue co_await, result() on a temporary): `value` is moved out when
// `sole()` says nobody else can read it afterwards, copied otherwise, and
// moved regardless when it cannot be copied (is_deeply_copyable_v is
// false: keep no other reader of it). `sole` is asked only when the answer
// matters.
template <class T, class Sole>
T take_or_copy(T& value, Sole&& sole) {
  if constexpr (is_deeply_copyable_v<T>) {
    if (!sole()) return T(value);
  }
  return T(std::move(value));
}

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_COPY_OR_MOVE_H_
