// multi(): wait for many futures at once (Tornado's gen.multi).
//
// Hand it a vector, a map, an unordered_map or a flat_hash_map of futures,
// or several futures of different types, and get back one future for all
// their results, in the same shape:
//
//   std::vector<eddy::Future<Page>> fetches;
//   for (const auto& url : urls) fetches.push_back(fetch(url));
//   eddy::Future<std::vector<Page>> pages = eddy::multi(std::move(fetches));
//
//   std::map<std::string, eddy::Future<int>> counts = ...;
//   eddy::Future<std::map<std::string, int>> all = eddy::multi(std::move(counts));
//
//   auto both = eddy::multi(load_user(id), store.save(record));  // Future<int>, Future<void>
//   both.add_done_callback([](auto& f) {
//     auto& [user, saved] = f.result();   // std::tuple<User, std::monostate>
//   });
//
// Semantics (as Tornado 6.2's multi_future):
//   - The result completes once *every* child is done, never earlier, even
//     when a child fails early.
//   - Results keep the input's shape: a vector in input order, a map with
//     the same keys, a tuple in argument order.
//   - Failure: if any child failed, the result fails with the exception of
//     the first failing child *in input order* (iteration order for maps),
//     whichever failed first in time. Every other failure is logged through
//     eddy::log ("Multiple exceptions in yield list: ...") unless its type
//     is in `quiet`; an exception_ptr identical to the one raised (the same
//     future listed twice) is not logged again. A cancelled child counts as
//     a failure with CancelledError (the result fails with CancelledError;
//     it is not itself cancelled, as asyncio.gather); extra cancellations are
//     not logged: cancelling is deliberate. Every child's exception is marked
//     retrieved: multi takes over reporting it.
//   - Cancelling the result does not cancel the children. When they finish,
//     their failures are all logged (none is raised any more), unless quiet.
//   - An empty input resolves at once (to an empty vector or map, or to a
//     done Future<void>).
//   - Children that are already done are taken as they are; if every child
//     is done, the result is done when multi() returns. Children completed
//     later, from callbacks on the loop, are fine too. The same future may
//     be listed more than once.
//   - The result of a list or map completes inside the call that completes
//     the last child (Tornado's completes one loop turn later), unless that
//     child already had callbacks or a waiter when multi() was called (its
//     callbacks keep their order, so multi's runs on their turn); the tuple
//     form's always completes on the turn the last child's callbacks run.
//     As for any future, the result's own callbacks and a coroutine
//     awaiting it run on a later turn.
//   - Children may be ConcurrentFutures: each is bridged onto the current
//     loop first (chain_future), so its result arrives on the loop thread.
//   - Void children: a vector or map of Future<void> gives a Future<void>;
//     in the tuple forms a Future<void> child contributes std::monostate, so
//     positions in the tuple always match argument positions.
//   - Values are copied out of the children when T is copyable (a child may
//     be shared with other code; the copy is taken when the child
//     completes), and moved out at the end otherwise: with a move-only T, a
//     child listed twice leaves a moved-from value in the second place. A
//     container of move-only values (std::vector<std::unique_ptr<int>>)
//     counts as move-only.
//
// Cost: linear in the number of children. One shared block (one counter)
// with one slot array (a value per child for copyable T, else a pointer;
// maps add a key array), the result's state, and the result itself; per
// pending child only the entry it stores in its own callback list: that
// callback holds a block pointer and an index, inside AnyInvocable's inline
// buffer, and runs inside the child's completion (no loop callback per
// child). A ConcurrentFuture child costs a bridging loop future and a
// delivery on top.
//
// Threading: call multi() on the loop thread that owns the children. The
// result belongs to the loop current on this thread (or none: then it
// completes inline, inside the call that completes the last child). Bridging
// a ConcurrentFuture child needs a current loop.
#ifndef EDDY_FUTURES_MULTI_H_
#define EDDY_FUTURES_MULTI_H_

#include <algorithm>
#include <cstddef>
#include <exception>
#include <map>
#include <optional>
#include "eddy/futures/source_location.h"
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/combinators.h"
#include "eddy/futures/internal/copy_or_move.h"

namespace eddy {

// What a child of type Future<T> contributes to a tuple-shaped multi:
// T, or std::monostate for void.
template <class T>
using MultiValue = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

namespace internal {

// The result type of a multi over a container of T-valued children shaped
// like `Shape` (vector or map type holding T): void when T is void.
template <class T, class Shape>
using MultiResult = std::conditional_t<std::is_void_v<T>, void, Shape>;

template <class Result>
struct MultiKeys {
  using type = NoKeys;
};
template <class Result>
  requires requires { typename Result::key_type; }
struct MultiKeys<Result> {
  using type = std::vector<typename Result::key_type>;
};

// The aggregation block of one container-shaped multi. Each pending child
// holds a Watcher (block reference + index); the block holds a child's state
// only once it is done. `remaining_` counts the children not yet arrived,
// plus one for the setup phase, so the result cannot complete while multi()
// is still attaching watchers.
template <class T, class Result>
class MultiBlock : public RefCounted<MultiBlock<T, Result>> {
 public:
  using Keys = typename MultiKeys<Result>::type;

  // Copyable values are copied out of each child when it arrives, while its
  // state is still in cache, so finishing a wide multi never walks the
  // children again (at a million children that walk is a cache miss per
  // child). Move-only values are taken at the end, once it is known that no
  // child failed: a failed multi leaves every child's value in place.
  static constexpr bool kEager = std::is_void_v<T> || is_deeply_copyable_v<T>;

  MultiBlock(size_t n, QuietExceptions quiet, SourceLocation where)
      : remaining_(n + 1), quiet_(std::move(quiet)), where_(where) {
    if constexpr (!kEager) {
      slots_.resize(n);
    } else if constexpr (!std::is_void_v<T>) {
      values_.resize(n);
    }
    if constexpr (!std::is_same_v<Keys, NoKeys>) keys_.reserve(n);
    // Last: the destructor, which releases it, does not run if the
    // constructor throws, so nothing that can throw comes after it.
    result_ = new FutureState<Result>(where);
  }
  ~MultiBlock() {
    release_children();
    result_->release();
  }

  Future<Result> result() { return FutureAccess::share(result_); }

  template <class K>
  void add_key(K&& key) {
    if constexpr (!std::is_same_v<Keys, NoKeys>) keys_.push_back(std::forward<K>(key));
  }

  void watch(size_t i, const Future<T>& child) {
    FutureState<T>* s = FutureAccess::state(child, "multi", "a child Future is empty");
    if (s->done()) {
      arrive(i, s);
    } else {
      // Counting children is bookkeeping, not user code: it runs inside the
      // child's completion instead of queueing a loop callback per child.
      s->add_inline_callback(Watcher{BlockRef<MultiBlock>(this), i});
    }
  }
  void watch(size_t i, const ConcurrentFuture<T>& child) {
    ConcurrentAccess::state(child, "multi", "a child ConcurrentFuture is empty");
    watch(i, as_loop_future(child, where_));
  }

  void end_setup() { count_down(); }

 private:
  struct Watcher {
    BlockRef<MultiBlock> block;
    size_t index;
    void operator()(Future<T>& done) { block->arrive(index, FutureAccess::state(done)); }
  };
  static_assert(kFitsInline<Watcher>, "a multi watcher must not allocate");

  void arrive(size_t i, FutureState<T>* s) {
    if constexpr (kEager) {
      try {
        if (s->status() != FutureStatus::kValue) {
          // Room first, so that nothing throws once the reference is
          // taken; doubling, so that N failures cost O(N) (reserve(size+1)
          // reallocates exactly, every time).
          if (failed_.size() == failed_.capacity()) {
            failed_.reserve(std::max<size_t>(8, 2 * failed_.capacity()));
          }
          s->add_ref();
          failed_.emplace_back(i, s);
        } else if constexpr (!std::is_void_v<T>) {
          values_[i].emplace(s->value());
        }
      } catch (...) {
        // A copy that threw (or no memory to note a failure): the result
        // fails with it, unless a child's own failure comes first.
        if (!copy_error_) copy_error_ = std::current_exception();
      }
    } else {
      slots_[i].hold(s);
    }
    count_down();
  }

  void count_down() {
    if (--remaining_ == 0) finish();
  }

  // Raises the first failure in input order; logs the others.
  void note_failure(FutureState<T>* s, std::exception_ptr& first, bool abandoned) {
    // A cancelled child that is not the one raised is not logged either:
    // no CancelledError to make for it.
    if ((first || abandoned) && s->status() == FutureStatus::kCancelled) return;
    std::exception_ptr e = failure_of(s);
    if (!e) return;
    if (!first && !abandoned) {
      first = std::move(e);
      return;
    }
    if (e == first) return;
    if (s->status() == FutureStatus::kCancelled) return;
    if (!quiet_.contains(e)) log_extra_failure(e, where_);
  }

  void finish() {
    const bool abandoned = result_->done();
    std::exception_ptr first;
    if constexpr (kEager) {
      std::sort(failed_.begin(), failed_.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [i, s] : failed_) note_failure(s, first, abandoned);
      if (!first) first = std::move(copy_error_);
    } else {
      for (HeldState<T>& slot : slots_) note_failure(slot.get(), first, abandoned);
    }
    if (abandoned) {
      release_children();
      return;
    }
    if (first) {
      release_children();
      result_->try_set_exception(std::move(first));
      return;
    }
    if constexpr (std::is_void_v<Result>) {
      release_children();
      result_->try_set_value();
    } else {
      std::optional<Result> out;
      try {
        out.emplace(build());
      } catch (...) {
        release_children();
        result_->try_set_exception(std::current_exception());
        return;
      }
      release_children();
      result_->try_set_value(std::move(*out));
    }
  }

  Result build()
    requires(!std::is_void_v<Result>)
  {
    Result out;
    size_t n;
    if constexpr (kEager) {
      n = values_.size();
    } else {
      n = slots_.size();
    }
    if constexpr (requires { out.reserve(n); }) out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      auto value = [&]() -> T {
        if constexpr (kEager) {
          return std::move(*values_[i]);
        } else {
          return take_value(slots_[i].get());
        }
      };
      if constexpr (std::is_same_v<Keys, NoKeys>) {
        out.push_back(value());
      } else {
        out.emplace_hint(out.end(), std::move(keys_[i]), value());
      }
    }
    return out;
  }

  void release_children() {
    if constexpr (kEager) {
      for (auto& [i, s] : failed_) s->release();
      failed_.clear();
      if constexpr (!std::is_void_v<T>) std::vector<std::optional<T>>().swap(values_);
    } else {
      for (HeldState<T>& slot : slots_) slot.reset();
    }
  }

  struct Unused {};
  using Values = std::conditional_t<kEager && !std::is_void_v<T>,
                                    std::vector<std::optional<MultiValue<T>>>, Unused>;
  using Slots = std::conditional_t<kEager, Unused, std::vector<HeldState<T>>>;

  FutureState<Result>* result_ = nullptr;  // one reference, released in the destructor
  [[no_unique_address]] Values values_;  // copyable T: in input order, filled on arrival
  [[no_unique_address]] Slots slots_;    // move-only T: the children, held until the end
  // Children that did not produce a value (copyable T), with their index,
  // each holding a reference: usually none.
  std::vector<std::pair<size_t, FutureState<T>*>> failed_;
  std::exception_ptr copy_error_;
  size_t remaining_;
  QuietExceptions quiet_;
  SourceLocation where_;
  [[no_unique_address]] Keys keys_;  // the input's keys, in input order (maps)
};

template <class T, class Result, class Container>
Future<Result> start_multi(Container& children, QuietExceptions quiet,
                           SourceLocation where) {
  auto* block = new MultiBlock<T, Result>(children.size(), std::move(quiet), where);
  BlockRef<MultiBlock<T, Result>> setup(block);
  // `children` is multi()'s own copy: each handle is released right after
  // its child is watched, while the child's state is in cache, instead of
  // in one more walk over every child when the container is destroyed
  // (at a million children, a cache miss per child).
  size_t i = 0;
  for (auto& child : children) {
    if constexpr (requires { typename Container::mapped_type; }) {
      block->add_key(child.first);
      auto taken = std::move(child.second);
      block->watch(i++, taken);
    } else {
      auto taken = std::move(child);
      block->watch(i++, taken);
    }
  }
  Future<Result> result = block->result();
  block->end_setup();
  return result;
}

// The aggregation block of a tuple-shaped multi: as MultiBlock, with one
// statically typed slot per argument.
template <class... T>
class TupleBlock : public RefCounted<TupleBlock<T...>> {
 public:
  using Result = std::tuple<MultiValue<T>...>;
  template <size_t I>
  using Child = std::tuple_element_t<I, std::tuple<T...>>;

  TupleBlock(QuietExceptions quiet, SourceLocation where)
      : result_(new FutureState<Result>(where)), quiet_(std::move(quiet)), where_(where) {}
  ~TupleBlock() { result_->release(); }

  Future<Result> result() { return FutureAccess::share(result_); }

  template <size_t I>
  void watch(const Future<Child<I>>& child) {
    FutureState<Child<I>>* s = FutureAccess::state(child, "multi", "a child Future is empty");
    if (s->done()) {
      arrive<I>(s);
    } else {
      s->add_callback(Watcher<I>{BlockRef<TupleBlock>(this)});
    }
  }
  template <size_t I>
  void watch(const ConcurrentFuture<Child<I>>& child) {
    ConcurrentAccess::state(child, "multi", "a child ConcurrentFuture is empty");
    watch<I>(as_loop_future(child, where_));
  }

  void end_setup() { count_down(); }

 private:
  template <size_t I>
  struct Watcher {
    BlockRef<TupleBlock> block;
    void operator()(Future<Child<I>>& done) {
      block->template arrive<I>(FutureAccess::state(done));
    }
  };

  template <size_t I>
  void arrive(FutureState<Child<I>>* s) {
    std::get<I>(slots_).hold(s);
    count_down();
  }

  void count_down() {
    if (--remaining_ == 0) finish();
  }

  template <size_t I>
  void check(std::exception_ptr& first, bool abandoned) {
    auto* s = std::get<I>(slots_).get();
    std::exception_ptr e = failure_of(s);
    if (!e) return;
    if (!first && !abandoned) {
      first = std::move(e);
      return;
    }
    if (e == first || s->status() == FutureStatus::kCancelled) return;
    if (!quiet_.contains(e)) log_extra_failure(e, where_);
  }

  template <size_t I>
  MultiValue<Child<I>> take() {
    if constexpr (std::is_void_v<Child<I>>) {
      return std::monostate{};
    } else {
      return take_value(std::get<I>(slots_).get());
    }
  }

  void finish() {
    const bool abandoned = result_->done();
    std::exception_ptr first;
    [&]<size_t... I>(std::index_sequence<I...>) {
      (check<I>(first, abandoned), ...);
    }(std::index_sequence_for<T...>{});
    if (abandoned || first) {
      release_children();
      if (first) result_->try_set_exception(std::move(first));
      return;
    }
    std::optional<Result> out;
    try {
      // Braces: the elements are taken left to right.
      out.emplace([&]<size_t... I>(std::index_sequence<I...>) {
        return Result{take<I>()...};
      }(std::index_sequence_for<T...>{}));
    } catch (...) {
      release_children();
      result_->try_set_exception(std::current_exception());
      return;
    }
    release_children();
    result_->try_set_value(std::move(*out));
  }

  void release_children() {
    std::apply([](auto&... slot) { (slot.reset(), ...); }, slots_);
  }

  FutureState<Result>* result_;
  std::tuple<HeldState<T>...> slots_;
  size_t remaining_ = sizeof...(T) + 1;
  QuietExceptions quiet_;
  SourceLocation where_;
};

template <class... F>
Future<std::tuple<MultiValue<FutureValue<F>>...>> start_tuple_multi(
    std::tuple<F...>& children, QuietExceptions quiet, SourceLocation where) {
  using Block = TupleBlock<FutureValue<F>...>;
  auto* block = new Block(std::move(quiet), where);
  BlockRef<Block> setup(block);
  [&]<size_t... I>(std::index_sequence<I...>) {
    (block->template watch<I>(std::get<I>(children)), ...);
  }(std::index_sequence_for<F...>{});
  auto result = block->result();
  block->end_setup();
  return result;
}

}  // namespace internal

// Waits for every future in `children`; the result holds their values in
// input order (Future<void> when T is void). See the file comment for
// failures, cancellation and logging. Throws InvalidStateError("multi: a
// child Future is empty (moved from)") for a moved-from child, or for one
// of another thread's loop (the children before it are watched already,
// which is harmless: nothing can reach the result); otherwise only what
// allocation throws. The other forms below throw the same.
template <class T>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::vector<T>>> multi(
    std::vector<Future<T>> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::vector<T>>>(
      children, std::move(quiet), where);
}

// As above, for ConcurrentFutures: each is bridged onto the current loop.
// Throws InvalidStateError when no loop is current (and `children` is not
// empty).
template <class T>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::vector<T>>> multi(
    std::vector<ConcurrentFuture<T>> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::vector<T>>>(
      children, std::move(quiet), where);
}

// Waits for every future in the map; the result maps the same keys to the
// values (Future<void> when T is void). "Input order", for choosing which
// failure is raised, is the map's iteration order.
template <class K, class T, class C, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::map<K, T, C>>> multi(
    std::map<K, Future<T>, C, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::map<K, T, C>>>(
      children, std::move(quiet), where);
}
template <class K, class T, class C, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::map<K, T, C>>> multi(
    std::map<K, ConcurrentFuture<T>, C, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::map<K, T, C>>>(
      children, std::move(quiet), where);
}

// As the std::map form, for std::unordered_map (same hash and equality).
template <class K, class T, class H, class E, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::unordered_map<K, T, H, E>>> multi(
    std::unordered_map<K, Future<T>, H, E, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::unordered_map<K, T, H, E>>>(
      children, std::move(quiet), where);
}
template <class K, class T, class H, class E, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, std::unordered_map<K, T, H, E>>> multi(
    std::unordered_map<K, ConcurrentFuture<T>, H, E, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, std::unordered_map<K, T, H, E>>>(
      children, std::move(quiet), where);
}

// As the std::map form, for absl::flat_hash_map (same hash and equality).
template <class K, class T, class H, class E, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, absl::flat_hash_map<K, T, H, E>>> multi(
    absl::flat_hash_map<K, Future<T>, H, E, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, absl::flat_hash_map<K, T, H, E>>>(
      children, std::move(quiet), where);
}
template <class K, class T, class H, class E, class A>
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<internal::MultiResult<T, absl::flat_hash_map<K, T, H, E>>> multi(
    absl::flat_hash_map<K, ConcurrentFuture<T>, H, E, A> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_multi<T, internal::MultiResult<T, absl::flat_hash_map<K, T, H, E>>>(
      children, std::move(quiet), where);
}

// Waits for every future in the tuple (Future<T> or ConcurrentFuture<T>,
// mixed freely); the result holds one element per child, std::monostate for
// a void child. The form to use with QuietExceptions.
template <class... F>
  requires(internal::FutureLike<F> && ...)
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<std::tuple<MultiValue<internal::FutureValue<F>>...>> multi(
    std::tuple<F...> children, QuietExceptions quiet = {},
    SourceLocation where = SourceLocation::current()) {
  return internal::start_tuple_multi(children, std::move(quiet), where);
}

// multi(f1, f2, ...): the tuple form without QuietExceptions.
template <class... F>
  requires(internal::FutureLike<F> && ...)
[[nodiscard("multi() returns the Future of all the results: co_await it")]]
Future<std::tuple<MultiValue<internal::FutureValue<F>>...>> multi(F... children) {
  std::tuple<F...> tuple(std::move(children)...);
  return internal::start_tuple_multi(tuple, QuietExceptions(), SourceLocation::current());
}

}  // namespace eddy

#endif  // EDDY_FUTURES_MULTI_H_
