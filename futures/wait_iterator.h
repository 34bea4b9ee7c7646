// WaitIterator: hand out the results of many futures as they finish
// (Tornado's gen.WaitIterator), for when waiting for all of them (multi) is
// too late, or one failure must not hide the others.
//
//   eddy::WaitIterator it(std::move(fetches));      // std::vector<Future<Page>>
//   while (!it.done()) {
//     eddy::Future<Page> next = it.next();
//     ...                                            // co_await next, or add a callback
//     // once `next` is done: it.current_index() is the position of the
//     // child that produced it, it.current_future() is that child.
//   }
//
// With a map, `current_key()` names the child as well:
//
//   eddy::WaitIterator it(std::map<std::string, eddy::Future<int>>{...});
//   // WaitIterator<int, std::string>; it.current_key() after each result
//
// Without coroutines, drive it from callbacks (keep it somewhere stable; it
// is move-only):
//
//   void pump(std::shared_ptr<eddy::WaitIterator<int>> it) {
//     if (it->done()) return;
//     it->next().add_done_callback([it](eddy::Future<int>& f) {
//       handle(it->current_index(), f);
//       pump(it);
//     });
//   }
//
// Order: results come in completion order. Children already done when the
// iterator is made come first, in input order (iteration order for maps).
// Each child is handed out exactly once, even one listed twice.
//
// What next() returns: a new future (never one of the children) that takes
// on the outcome of the next child to finish: its value (copied if T is
// copyable, else moved out of the child), its exception (the child's counts
// as retrieved; the new future's, if nobody retrieves it, is logged as
// usual) or its cancellation. If a child is already waiting, the future is
// done when next() returns; otherwise it completes when the next child
// finishes. Cancelling that future does not cancel any child: the child that
// finishes next is kept for the following next() call.
//
// Threading: loop-affine, like Future: make it, and call it, on the loop
// thread that owns the children. ConcurrentFuture children are bridged onto
// the current loop first. Futures from next() belong to the current loop.
// The iterator may be destroyed at any time; futures already returned by
// next() still complete.
#ifndef EDDY_FUTURES_WAIT_ITERATOR_H_
#define EDDY_FUTURES_WAIT_ITERATOR_H_

#include <cstddef>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/combinators.h"

namespace eddy {

namespace internal {

inline constexpr size_t kNoIndex = std::numeric_limits<size_t>::max();

// Shared by a WaitIterator and one Watcher per pending child. Children are
// held only once done, so abandoning the iterator and the children frees
// everything.
template <class T, class K>
class WaitBlock : public RefCounted<WaitBlock<T, K>> {
 public:
  explicit WaitBlock(size_t n) : slots_(n) {
    ready_.reserve(n);
    if constexpr (!std::is_void_v<K>) keys_.reserve(n);
  }
  ~WaitBlock() {
    if (waiting_ != nullptr) waiting_->release();
  }

  template <class Key>
  void add_key(Key&& key) {
    keys_.push_back(std::forward<Key>(key));
  }

  void watch(size_t i, const Future<T>& child) {
    FutureState<T>* s = FutureAccess::state(child, "WaitIterator", "a child Future is empty");
    if (s->done()) {
      arrive(i, s);
    } else {
      s->add_callback(Watcher{BlockRef<WaitBlock>(this), i});
    }
  }
  void watch(size_t i, const ConcurrentFuture<T>& child) {
    ConcurrentAccess::state(child, "WaitIterator", "a child ConcurrentFuture is empty");
    watch(i, as_loop_future(child));
  }

  size_t size() const { return slots_.size(); }
  bool done() const { return handed_ == slots_.size(); }

  Future<T> next() {
    if (done()) {
      throw InvalidStateError(
          "WaitIterator::next: every result has been handed out (check done() first)");
    }
    if (waiting_ != nullptr && !waiting_->done()) {
      throw InvalidStateError(
          "WaitIterator::next: the future returned by the previous next() is still pending");
    }
    drop_waiting();
    Future<T> out;
    if (head_ < ready_.size()) {
      hand(ready_[head_++], FutureAccess::state(out));
    } else {
      waiting_ = FutureAccess::state(out);
      waiting_->add_ref();
    }
    return out;
  }

  size_t current_index() const {
    if (current_ == kNoIndex) {
      throw InvalidStateError("WaitIterator: no result has been handed out yet");
    }
    return current_;
  }

  const auto& current_key() const
    requires(!std::is_void_v<K>)
  {
    return keys_[current_index()];
  }

  Future<T> current_future() const {
    return FutureAccess::share(slots_[current_index()].get());
  }

 private:
  struct Watcher {
    BlockRef<WaitBlock> block;
    size_t index;
    void operator()(Future<T>& done) { block->arrive(index, FutureAccess::state(done)); }
  };
  static_assert(kFitsInline<Watcher>, "a WaitIterator watcher must not allocate");

  void arrive(size_t i, FutureState<T>* s) {
    slots_[i].hold(s);
    if (waiting_ != nullptr && !waiting_->done()) {
      FutureState<T>* out = waiting_;
      waiting_ = nullptr;
      hand(i, out);
      out->release();
    } else {
      // Nobody is waiting, or the waiter was cancelled: keep it for later.
      drop_waiting();
      ready_.push_back(i);
    }
  }

  // Gives child i's outcome to `out` (pending) and makes i current.
  void hand(size_t i, FutureState<T>* out) {
    // The previous current child is no longer reachable through the
    // iterator: let it go now, so a long iteration holds only pending work.
    if (current_ != kNoIndex) slots_[current_].reset();
    current_ = i;
    ++handed_;
    Future<T> child = FutureAccess::share(slots_[i].get());
    copy_outcome(child, out);
  }

  void drop_waiting() {
    if (waiting_ != nullptr) std::exchange(waiting_, nullptr)->release();
  }

  using Keys = std::conditional_t<std::is_void_v<K>, NoKeys, std::vector<K>>;

  std::vector<HeldState<T>> slots_;  // input order; held once done, until passed
  std::vector<size_t> ready_;        // done, not yet handed out, from head_ on
  size_t head_ = 0;
  size_t handed_ = 0;
  size_t current_ = kNoIndex;
  FutureState<T>* waiting_ = nullptr;  // the future of a pending next(), one reference
  [[no_unique_address]] Keys keys_;
};

}  // namespace internal

// T is the children's value type; K the key type for maps, void for vectors.
template <class T, class K = void>
class WaitIterator {
  // The map constructors name K only when it is not void.
  using Key = std::conditional_t<std::is_void_v<K>, size_t, K>;

 public:
  // Iterates over a vector of futures; current_index() is a position in it.
  // Every constructor throws InvalidStateError("WaitIterator: a child
  // Future is empty (moved from)") for a moved-from child.
  explicit WaitIterator(std::vector<Future<T>> children)
    requires std::is_void_v<K>
      : block_(make(children)) {}
  // Same, bridging each ConcurrentFuture onto the current loop.
  // Throws InvalidStateError if no loop is current (and children is not empty).
  explicit WaitIterator(std::vector<ConcurrentFuture<T>> children)
    requires std::is_void_v<K>
      : block_(make(children)) {}

  // Iterates over a map's values; current_key() names the child (and
  // current_index() is its position in the map's iteration order).
  template <class C, class A>
  explicit WaitIterator(std::map<Key, Future<T>, C, A> children)
    requires(!std::is_void_v<K>)
      : block_(make(children)) {}
  template <class C, class A>
  explicit WaitIterator(std::map<Key, ConcurrentFuture<T>, C, A> children)
    requires(!std::is_void_v<K>)
      : block_(make(children)) {}
  template <class H, class E, class A>
  explicit WaitIterator(absl::flat_hash_map<Key, Future<T>, H, E, A> children)
    requires(!std::is_void_v<K>)
      : block_(make(children)) {}
  template <class H, class E, class A>
  explicit WaitIterator(absl::flat_hash_map<Key, ConcurrentFuture<T>, H, E, A> children)
    requires(!std::is_void_v<K>)
      : block_(make(children)) {}

  // Move-only: one iteration, one owner. A moved-from iterator throws
  // InvalidStateError from every method.
  WaitIterator(WaitIterator&&) noexcept = default;
  WaitIterator& operator=(WaitIterator&&) noexcept = default;

  // True when every child's result has been handed out by next(). While the
  // future of the last next() is pending, done() is still false.
  bool done() const { return block("done")->done(); }

  // The number of children.
  size_t size() const { return block("size")->size(); }

  // A future for the next result in completion order (see the file comment).
  // Throws InvalidStateError if done(), or if the future returned by the
  // previous next() is still pending (one wait at a time; cancel it to
  // give up on it).
  Future<T> next() { return block("next")->next(); }

  // The input position of the child whose result was handed out last.
  // Throws InvalidStateError before the first result is handed out.
  size_t current_index() const { return block("current_index")->current_index(); }

  // The key of the child whose result was handed out last (maps only).
  // Throws InvalidStateError before the first result is handed out.
  const Key& current_key() const
    requires(!std::is_void_v<K>)
  {
    return block("current_key")->current_key();
  }

  // The child whose result was handed out last.
  // Throws InvalidStateError before the first result is handed out.
  Future<T> current_future() const { return block("current_future")->current_future(); }

 private:
  using Block = internal::WaitBlock<T, K>;

  template <class Container>
  static std::unique_ptr<Block, void (*)(Block*)> make(Container& children) {
    std::unique_ptr<Block, void (*)(Block*)> b(new Block(children.size()), &unref);
    b->add_ref();
    size_t i = 0;
    for (auto& child : children) {
      if constexpr (requires { typename Container::mapped_type; }) {
        b->add_key(child.first);
        b->watch(i++, child.second);
      } else {
        b->watch(i++, child);
      }
    }
    return b;
  }
  static void unref(Block* b) { b->release(); }

  Block* block(const char* op) const {
    if (block_ == nullptr) {
      throw InvalidStateError(std::string("WaitIterator::") + op +
                              ": the iterator is empty (moved from)");
    }
    return block_.get();
  }

  std::unique_ptr<Block, void (*)(Block*)> block_;
};

template <class T>
WaitIterator(std::vector<Future<T>>) -> WaitIterator<T>;
template <class T>
WaitIterator(std::vector<ConcurrentFuture<T>>) -> WaitIterator<T>;
template <class K, class T, class C, class A>
WaitIterator(std::map<K, Future<T>, C, A>) -> WaitIterator<T, K>;
template <class K, class T, class C, class A>
WaitIterator(std::map<K, ConcurrentFuture<T>, C, A>) -> WaitIterator<T, K>;
template <class K, class T, class H, class E, class A>
WaitIterator(absl::flat_hash_map<K, Future<T>, H, E, A>) -> WaitIterator<T, K>;
template <class K, class T, class H, class E, class A>
WaitIterator(absl::flat_hash_map<K, ConcurrentFuture<T>, H, E, A>) -> WaitIterator<T, K>;

}  // namespace eddy

#endif  // EDDY_FUTURES_WAIT_ITERATOR_H_
