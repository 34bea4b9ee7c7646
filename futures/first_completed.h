// first_completed(): which of several futures finishes first (asyncio's
// wait(..., return_when=FIRST_COMPLETED), reduced to the winner's name).
//
//   std::vector<eddy::Future<Reply>> replicas = ask_all(query);
//   eddy::first_completed(replicas).add_done_callback([replicas](eddy::Future<size_t>& f) {
//     eddy::Future<Reply> winner = replicas[f.result()];
//     ...                                  // the others keep running
//   });
//
//   std::map<std::string, eddy::Future<int>> racers = ...;
//   eddy::Future<eddy::FirstCompleted<std::string>> first = eddy::first_completed(racers);
//   // first.result().key, first.result().index
//
// Semantics:
//   - "Finishes" means done in any way: a value, an exception or a
//     cancellation. The winner keeps its outcome; first_completed neither
//     copies nor retrieves it (look it up by the index or key).
//   - Children already done win at once, the first such in input order
//     (iteration order for maps): the result is done when the call returns.
//   - The other children are left running, untouched. Cancelling the result
//     cancels no child.
//   - An empty input has no winner: std::invalid_argument.
//
// Cost: one small block plus the result's state; each pending child stores
// one callback (a block pointer and an index) in its own list. The key list
// of a map is copied once.
//
// Threading: call it on the loop thread that owns the children; the result
// belongs to the loop current on this thread (with none, it completes
// inline, inside the call that completes the winner). ConcurrentFuture
// children are bridged onto the current loop first.
#ifndef EDDY_FUTURES_FIRST_COMPLETED_H_
#define EDDY_FUTURES_FIRST_COMPLETED_H_

#include <cstddef>
#include <map>
#include "eddy/futures/source_location.h"
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/combinators.h"

namespace eddy {

// The winner of a first_completed over a map: its key and its position in
// the map's iteration order.
template <class K>
struct FirstCompleted {
  size_t index;
  K key;
};

namespace internal {

// Result is size_t (vectors, argument lists) or FirstCompleted<K> (maps).
template <class Result>
class FirstBlock : public RefCounted<FirstBlock<Result>> {
 public:
  FirstBlock(size_t n, SourceLocation where) : result_(new FutureState<Result>(where)) {
    if constexpr (kKeyed) keys_.reserve(n);
  }
  ~FirstBlock() { result_->release(); }

  Future<Result> result() { return FutureAccess::share(result_); }
  bool decided() const { return result_->done(); }

  template <class Key>
  void add_key(Key&& key) {
    keys_.push_back(std::forward<Key>(key));
  }

  // Watches child i; if it is already done it wins now.
  template <class T>
  void watch(size_t i, const Future<T>& child) {
    FutureState<T>* s = FutureAccess::state(child, "first_completed", "a child Future is empty");
    if (s->done()) {
      win(i);
    } else {
      s->add_callback(Watcher<T>{BlockRef<FirstBlock>(this), i});
    }
  }
  template <class T>
  void watch(size_t i, const ConcurrentFuture<T>& child) {
    ConcurrentAccess::state(child, "first_completed", "a child ConcurrentFuture is empty");
    watch(i, as_loop_future(child));
  }

 private:
  static constexpr bool kKeyed = !std::is_same_v<Result, size_t>;

  template <class T>
  struct Watcher {
    BlockRef<FirstBlock> block;
    size_t index;
    void operator()(Future<T>&) { block->win(index); }
  };
  static_assert(kFitsInline<Watcher<int>>, "a first_completed watcher must not allocate");

  void win(size_t i) {
    // Later finishers (and a result the caller cancelled) change nothing.
    if (result_->done()) return;
    if constexpr (kKeyed) {
      result_->try_set_value(Result{i, std::move(keys_[i])});
    } else {
      result_->try_set_value(i);
    }
  }

  template <class R>
  struct KeysOf {
    using type = NoKeys;
  };
  template <class K>
  struct KeysOf<FirstCompleted<K>> {
    using type = std::vector<K>;
  };
  using Keys = typename KeysOf<Result>::type;

  FutureState<Result>* result_;  // one reference, released in the destructor
  [[no_unique_address]] Keys keys_;
};

template <class Result, class Container>
Future<Result> start_first_completed(Container& children, SourceLocation where) {
  if (children.empty()) {
    throw std::invalid_argument("first_completed: no children, so nothing can finish first");
  }
  auto* block = new FirstBlock<Result>(children.size(), where);
  BlockRef<FirstBlock<Result>> setup(block);
  size_t i = 0;
  for (auto& child : children) {
    if constexpr (requires { typename Container::mapped_type; }) {
      block->add_key(child.first);
      block->watch(i++, child.second);
    } else {
      block->watch(i++, child);
    }
    // A child that was already done has won; the rest need no watcher.
    if (block->decided()) break;
  }
  return block->result();
}

}  // namespace internal

// The index of the first child of `children` to finish (see the file
// comment). Throws std::invalid_argument if `children` is empty;
// InvalidStateError for ConcurrentFuture children when no loop is current,
// and for a moved-from child met before one that is already done
// ("first_completed: a child Future is empty (moved from)").
template <class T>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<size_t> first_completed(std::vector<Future<T>> children,
                               SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<size_t>(children, where);
}
template <class T>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<size_t> first_completed(std::vector<ConcurrentFuture<T>> children,
                               SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<size_t>(children, where);
}

// The key (and iteration position) of the first child of a map to finish.
template <class K, class T, class C, class A>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<FirstCompleted<K>> first_completed(
    std::map<K, Future<T>, C, A> children,
    SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<FirstCompleted<K>>(children, where);
}
template <class K, class T, class C, class A>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<FirstCompleted<K>> first_completed(
    std::map<K, ConcurrentFuture<T>, C, A> children,
    SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<FirstCompleted<K>>(children, where);
}
template <class K, class T, class H, class E, class A>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<FirstCompleted<K>> first_completed(
    absl::flat_hash_map<K, Future<T>, H, E, A> children,
    SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<FirstCompleted<K>>(children, where);
}
template <class K, class T, class H, class E, class A>
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<FirstCompleted<K>> first_completed(
    absl::flat_hash_map<K, ConcurrentFuture<T>, H, E, A> children,
    SourceLocation where = SourceLocation::current()) {
  return internal::start_first_completed<FirstCompleted<K>>(children, where);
}

// first_completed(f1, f2, ...): futures of any (mixed) types; the result is
// the argument position of the first to finish.
template <class... F>
  requires(sizeof...(F) > 0 && (internal::FutureLike<F> && ...))
[[nodiscard("first_completed() returns the Future of the winner: co_await it")]]
Future<size_t> first_completed(F... children) {
  auto* block = new internal::FirstBlock<size_t>(sizeof...(F), SourceLocation::current());
  internal::BlockRef<internal::FirstBlock<size_t>> setup(block);
  size_t i = 0;
  // The fold stops at the first child that is already done.
  (void)((block->watch(i++, children), !block->decided()) && ...);
  return block->result();
}

}  // namespace eddy

#endif  // EDDY_FUTURES_FIRST_COMPLETED_H_
