// fan_out(): run a function over every item of a range with at most N
// calls in flight at once, and collect the results in input order (folly's
// window(), Seastar's max_concurrent_for_each, a Semaphore-bounded multi).
//
//   // 10,000 blocking jobs on a pool, never more than 8 queued or running:
//   eddy::ThreadPoolExecutor pool(4);
//   std::vector<Row> rows = co_await eddy::fan_out(pool, ids, 8,
//       [](int id) { return db_load_blocking(id); });        // on pool threads
//
//   // Asynchronous work on the loop, at most 16 fetches open:
//   std::vector<Page> pages = co_await eddy::fan_out(urls, 16,
//       [&](const Url& u) { return client.fetch(u); });      // returns Future<Page>
//
// On the loop, fn(item) is called on the loop thread with each item (as an
// lvalue reference into the stored range; for a range that makes its items
// on the fly, such as a transform view, a reference to the item made for
// this call, which lives until the call is done) and may return Future<R>,
// ConcurrentFuture<R> (its result is brought back to the loop) or a plain R
// (or void: a synchronous call, in flight for no time). On a pool, fn(item)
// runs on the executor's threads with a copy of the item, and returns R.
// The next call starts as soon as one in flight has finished *on the loop*
// (its completion has arrived), so at most `max_in_flight` calls are ever
// between their start and that arrival. A call whose future is already done
// (a synchronous one) frees its place at once: a fan_out whose calls are
// all synchronous is done when it returns.
//
// Result: a Future<std::vector<R>> in input order (Future<void> when R is
// void), with multi()'s failure semantics: every item is processed even
// after a failure; the result completes only when all calls are done, and
// then fails with the exception of the first failing item *in input
// order*; the other failures are logged unless their type is in `quiet`.
// A call that throws, or whose future is cancelled, counts as that item
// failing (CancelledError). Cancelling the result starts no further calls
// (those not started fail as cancelled, silently); the calls in flight are
// left to finish, as multi() leaves its children.
//
// The range is taken by value: an rvalue is moved in, an lvalue copied. To
// borrow a big container instead pass a view (std::views::all(v),
// std::span(v)); it must then outlive the result.
//
// Cost: one loop future per item, created up front (the result vector is
// O(n) anyway), plus the multi() block; per call, one callback, and on a
// pool the offload's task and delivery (and, for a range that makes its
// items on the fly and an fn that returns a future, the item's own block).
//
// Threading: call fan_out() on a loop thread with that loop current; the
// result and every callback belong to that loop. With an executor, fn must
// be safe to call concurrently from the pool's threads (it is shared, and
// called through a const reference).
#ifndef EDDY_SYNC_FAN_OUT_H_
#define EDDY_SYNC_FAN_OUT_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include "eddy/futures/source_location.h"
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/offload.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/futures/internal/combinators.h"
#include "eddy/futures/multi.h"
#include "eddy/futures/scheduler.h"

namespace eddy {
namespace internal {

// What a loop-side fn's return type R0 contributes: Future<R> and
// ConcurrentFuture<R> give R, anything else is the value itself.
template <class R0>
struct FanOutValue {
  using type = R0;
  static constexpr bool kFuture = false;
};
template <class R>
struct FanOutValue<Future<R>> {
  using type = R;
  static constexpr bool kFuture = true;
};
template <class R>
struct FanOutValue<ConcurrentFuture<R>> {
  using type = R;
  static constexpr bool kFuture = true;
};

// One fan_out in progress. Lives on the loop thread; referenced by the
// call in progress (fan_out itself) and by each call in flight, so it dies
// once nothing can start or finish any more. `Launch` turns an item into a
// Future<R>; `kMoveValues` says the futures it returns are ours alone, so
// values may be moved out of them instead of copied.
template <class Range, class Launch, class R, bool kMoveValues>
class FanOutBlock : public RefCounted<FanOutBlock<Range, Launch, R, kMoveValues>> {
 public:
  using Result = MultiResult<R, std::vector<R>>;

  FanOutBlock(Range range, size_t max_in_flight, Launch launch, SourceLocation where)
      : range_(std::move(range)),
        next_(std::ranges::begin(range_)),
        total_(static_cast<size_t>(std::ranges::distance(range_))),
        max_in_flight_(max_in_flight),
        launch_(std::move(launch)) {
    slots_.reserve(total_);
    for (size_t i = 0; i < total_; ++i) slots_.emplace_back(where);
  }

  // Aggregates the slots; called after the first pump(), so that slots
  // filled synchronously are taken as they are (an all-synchronous fan_out
  // is done when it returns, as multi() over done futures).
  Future<Result> start_result(QuietExceptions quiet, SourceLocation where) {
    // multi() takes the slots by value (handles): the block keeps its own.
    result_.emplace(multi(std::vector<Future<R>>(slots_), std::move(quiet), where));
    return *result_;
  }

  // Starts calls until max_in_flight are in flight or none is left.
  // Re-entrant calls (a completion running inline, with no loop current)
  // only ask the outer one to go round again.
  void pump() {
    if (pumping_) {
      repump_ = true;
      return;
    }
    pumping_ = true;
    do {
      repump_ = false;
      while (in_flight_ < max_in_flight_ && started_ < total_) {
        // The result finishes early only by being cancelled: start nothing
        // more, and settle the slots never started so multi() completes
        // (their CancelledErrors are not logged).
        if (result_.has_value() && result_->done()) {
          for (size_t i = started_; i < total_; ++i) slots_[i].cancel();
          started_ = total_;
          break;
        }
        start(started_++);
      }
    } while (repump_);
    pumping_ = false;
  }

 private:
  void start(size_t index) {
    auto it = next_;
    ++next_;
    std::optional<Future<R>> child;
    try {
      child.emplace(launch_(*it));
    } catch (...) {
      slots_[index].set_exception(std::current_exception());
      return;
    }
    if (child->done()) {
      // A synchronous call (or an already-done future): no turn to wait for.
      transfer(index, *child);
      return;
    }
    ++in_flight_;
    child->add_done_callback([block = BlockRef<FanOutBlock>(this), index](Future<R>& done) {
      --block->in_flight_;
      block->transfer(index, done);
      block->pump();
    });
  }

  // Copies (or moves) a finished call's outcome into its slot.
  void transfer(size_t index, Future<R>& done) {
    FutureState<R>* from = FutureAccess::state(done);
    FutureState<R>* to = FutureAccess::state(slots_[index]);
    if constexpr (kMoveValues && !std::is_void_v<R>) {
      if (from->status() == FutureStatus::kValue) {
        to->try_set_value(std::move(from->value()));
      } else {
        copy_outcome(done, to);
      }
    } else {
      copy_outcome(done, to);
    }
  }

  Range range_;
  std::ranges::iterator_t<Range> next_;
  size_t total_;
  size_t max_in_flight_;
  Launch launch_;
  std::vector<Future<R>> slots_;
  std::optional<Future<Result>> result_;  // set once the first pump is over
  size_t started_ = 0;
  size_t in_flight_ = 0;
  bool pumping_ = false;
  bool repump_ = false;
};

// fan_out's window, taken signed so that a negative one is an error
// rather than a huge unsigned "unbounded".
inline size_t checked_max_in_flight(std::int64_t max_in_flight) {
  if (max_in_flight <= 0) {
    throw std::invalid_argument("fan_out: max_in_flight must be > 0, got " +
                                std::to_string(max_in_flight));
  }
  return static_cast<size_t>(max_in_flight);
}

template <class R, bool kMoveValues, class Range, class Launch>
Future<MultiResult<R, std::vector<R>>> start_fan_out(Range range, size_t max_in_flight,
                                                     Launch launch, QuietExceptions quiet,
                                                     SourceLocation where) {
  using Block = FanOutBlock<Range, Launch, R, kMoveValues>;
  BlockRef<Block> block(new Block(std::move(range), max_in_flight, std::move(launch), where));
  block->pump();
  return block->start_result(std::move(quiet), where);
}

template <class Range>
using FanOutRange = std::remove_cvref_t<Range>;

}  // namespace internal

// Calls fn(item) on the loop for every item, at most `max_in_flight` at a
// time (see the file comment). Returns Future<std::vector<R>> in input
// order, or Future<void> when R is void.
// Throws std::invalid_argument if max_in_flight is not positive or `fn` is
// empty (a null function pointer, an empty AnyInvocable or std::function).
template <std::ranges::forward_range Range, class F>
  requires std::is_invocable_v<F&, std::ranges::range_reference_t<internal::FanOutRange<Range>>>
auto fan_out(Range&& items, std::int64_t max_in_flight, F fn, QuietExceptions quiet = {},
             SourceLocation where = SourceLocation::current()) {
  const size_t width = internal::checked_max_in_flight(max_in_flight);
  using Stored = internal::FanOutRange<Range>;
  using Item = std::ranges::range_reference_t<Stored>;
  using R0 = std::remove_cvref_t<std::invoke_result_t<F&, Item>>;
  using R = typename internal::FanOutValue<R0>::type;
  internal::check_callable(fn, "fan_out", "fn");
  auto launch = [fn = std::move(fn), where](Item item) mutable -> Future<R> {
    if constexpr (internal::FanOutValue<R0>::kFuture && !std::is_reference_v<Item> &&
                  std::is_move_constructible_v<Item>) {
      // The range makes its items on the fly (a transform view): fn's
      // reference is to this one, which a coroutine fn may read after a
      // co_await. It lives until the call is done.
      auto kept = std::make_unique<Item>(std::move(item));
      Future<R> call = internal::as_loop_future(std::invoke(fn, *kept), where);
      if (!call.done()) call.add_done_callback([kept = std::move(kept)](Future<R>&) {});
      return call;
    } else if constexpr (internal::FanOutValue<R0>::kFuture) {
      return internal::as_loop_future(std::invoke(fn, item), where);
    } else if constexpr (std::is_void_v<R>) {
      std::invoke(fn, item);
      return make_ready_future(where);
    } else {
      return make_ready_future(std::invoke(fn, item), where);
    }
  };
  return internal::start_fan_out<R, false>(Stored(std::forward<Range>(items)), width,
                                           std::move(launch), std::move(quiet), where);
}

// Runs fn(item) on `executor`'s threads for every item (a copy of it), at
// most `max_in_flight` submitted and not yet back on the loop at a time
// (see the file comment). Returns Future<std::vector<R>> in input order, or
// Future<void> when R is void. An item whose submission fails (the executor
// is shut down or broken) fails with that error.
// Throws std::invalid_argument if max_in_flight is not positive or `fn` is
// empty; InvalidStateError if no loop is current on this thread.
// `executor` must outlive the result.
template <std::ranges::forward_range Range, class F>
  requires std::is_invocable_v<const F&, std::ranges::range_value_t<internal::FanOutRange<Range>>>
auto fan_out(Executor& executor, Range&& items, std::int64_t max_in_flight, F fn,
             QuietExceptions quiet = {},
             SourceLocation where = SourceLocation::current()) {
  const size_t width = internal::checked_max_in_flight(max_in_flight);
  using Stored = internal::FanOutRange<Range>;
  using Value = std::ranges::range_value_t<Stored>;
  using R = std::decay_t<std::invoke_result_t<const F&, Value>>;
  static_assert(!internal::IsFuture<R>::value,
                "fan_out(executor, ...): fn returns an eddy::Future: a Future belongs to the loop "
                "that made it and a pool thread runs none, so it would never complete; drop the "
                "executor (fan_out(items, max_in_flight, fn) calls fn on the loop), or have fn "
                "return the value itself");
  if constexpr (internal::IsFuture<R>::value) {
    // The assertion above failed: what the caller most likely meant.
    using T = typename R::value_type;
    return Future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>();
  } else {
    internal::check_callable(fn, "fan_out", "fn");
    Scheduler* loop = Scheduler::current();
    if (loop == nullptr) throw InvalidStateError("fan_out: no loop is current on this thread");
    auto launch = [loop, &executor, fn = std::make_shared<const F>(std::move(fn))](
                      const Value& item) -> Future<R> {
      // The task owns its copies of the item and (shared) of fn: it may still
      // run after the loop, the block or the result are gone.
      return internal::offload(*loop, executor, Deadline(),
                               [fn, item]() mutable -> R {
                                 return std::invoke(*fn, std::move(item));
                               });
    };
    return internal::start_fan_out<R, true>(Stored(std::forward<Range>(items)), width,
                                            std::move(launch), std::move(quiet), where);
  }
}

}  // namespace eddy

#endif  // EDDY_SYNC_FAN_OUT_H_
