// Queue<T>, LifoQueue<T>, PriorityQueue<T>: queues between producers and
// consumers on one loop (Tornado's queues.Queue, LifoQueue, PriorityQueue).
//
// put() and get() return futures: get() waits while the queue is empty,
// put() waits while it holds `maxsize` items (0 means unbounded), which is
// how a slow consumer pushes back on a fast producer. put_nowait() and
// get_nowait() never wait: they throw QueueFull / QueueEmpty instead.
// task_done() and join() count the items consumers have finished with.
//
// Tornado's producer/consumer example, as coroutines:
//
//   eddy::Queue<std::string> q(/*maxsize=*/2);
//
//   eddy::Future<void> consumer() {
//     for (;;) {
//       std::string item = co_await q;          // the same as co_await q.get()
//       std::printf("Doing work on %s\n", item.c_str());
//       co_await eddy::sleep(absl::Milliseconds(10));
//       q.task_done();
//     }
//   }
//   eddy::Future<void> producer() {
//     for (int i = 0; i < 5; ++i) {
//       co_await q.put(std::to_string(i));      // waits while q holds 2
//       std::printf("Put %d\n", i);
//     }
//   }
//   eddy::Future<void> main_coroutine() {
//     eddy::IOLoop::current().spawn_callback([] { consumer(); });  // never ends
//     co_await producer();
//     co_await q.join();                         // every item task_done()
//   }
//
// Order: Queue is first in, first out; LifoQueue last in, first out;
// PriorityQueue hands out the *lowest* item first (as Tornado and Python's
// heapq, unlike std::priority_queue), by `Compare` (std::less<T> by
// default), equal items in the order they were put.
//
// Fairness (as Tornado): waiting getters receive items, and waiting putters
// get room, in the order they started waiting. An item put while a getter
// waits goes straight to the oldest one. A getter or putter whose wait
// timed out or was cancelled is skipped: it takes no item and no room (a
// putter's item is dropped with it).
//
// Threading: loop-affine and not thread-safe: use a queue only on the
// thread of the loop current when it is used; futures complete there, on a
// later turn, never inside put()/get(). Feed one from a pool thread through
// IOLoop::add_callback (or the futures that run_in_executor returns). In
// builds with EDDY_THREAD_CHECKS, put/get (and their _nowait forms) and
// task_done() from a thread that does not own the waiters' loop throw
// InvalidStateError and change nothing.
//
// Lifetime: destroying a queue cancels the futures still waiting on it
// (get, put and join: CancelledError) and destroys the items it holds.
// Destroyed on another thread than the waiters' loop's (the one current at
// the last wait), it logs an error and posts the cancelling (and the
// waiting putters' items) to that loop's thread, touching neither the
// waiters nor the loop there (it may be being destroyed). If that loop is
// closed by then, the waiters and those items are leaked, neither cancelled
// nor destroyed, and that is logged too. The items in the queue itself are
// destroyed where the queue is.
#ifndef EDDY_SYNC_QUEUE_H_
#define EDDY_SYNC_QUEUE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/futures/source_location.h"
#include "eddy/sync/event.h"
#include "eddy/sync/internal/wait_timeout.h"
#include "eddy/sync/internal/waiter_queue.h"

namespace eddy {

// put_nowait() on a queue that holds maxsize items.
class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("the queue is full") {}
};

// get_nowait() on an empty queue.
class QueueEmpty : public std::runtime_error {
 public:
  QueueEmpty() : std::runtime_error("the queue is empty") {}
};

namespace internal {

// A queue's bound, taken signed so that a negative one is an error rather
// than a huge unsigned "unbounded" (Tornado: "maxsize can't be negative").
inline size_t checked_queue_maxsize(std::int64_t maxsize) {
  if (maxsize < 0) {
    throw std::invalid_argument("Queue: maxsize must be >= 0, got " + std::to_string(maxsize));
  }
  return static_cast<size_t>(maxsize);
}

// The item stores behind the three queues: push(), next() and drop_next()
// (the next item to hand out: it is moved out before it is dropped, so
// that a throwing copy or move leaves it in the queue), next_with(incoming)
// (the item that would leave next if `incoming` were pushed first), and
// size(). push() moves the item exactly once, straight from its source, and
// only once room for it is made: if it throws (the move, or std::bad_alloc),
// the source and the store are as they were, for a move that throws before
// it changes its source.
template <class T>
class FifoStorage {
 public:
  // A deque's emplace_back makes its block before it moves the item in.
  void push(T&& item) { items_.emplace_back(std::move(item)); }
  T& next() { return items_.front(); }
  T& next_with(T& incoming) { return items_.empty() ? incoming : items_.front(); }
  void drop_next() { items_.pop_front(); }
  size_t size() const { return items_.size(); }

 private:
  std::deque<T> items_;
};

// A deque rather than a vector: growing never moves the items already in,
// so an item whose move may throw is never caught half-relocated.
template <class T>
class LifoStorage {
 public:
  void push(T&& item) { items_.emplace_back(std::move(item)); }
  T& next() { return items_.back(); }
  T& next_with(T& incoming) { return incoming; }
  void drop_next() { items_.pop_back(); }
  size_t size() const { return items_.size(); }

 private:
  std::deque<T> items_;
};

// A binary min-heap by Compare; the sequence number breaks ties so equal
// items leave in the order they came.
template <class T, class Compare>
class PriorityStorage {
 public:
  explicit PriorityStorage(Compare compare = Compare()) : compare_(std::move(compare)) {}

  void push(T&& item) {
    // Room first (the heap's elements move nothrow: see kInline), then the
    // slot, built from the source; after that nothing throws but Compare.
    if (heap_.size() == heap_.capacity()) heap_.reserve(std::max<size_t>(8, 2 * heap_.size()));
    if constexpr (kInline) {
      heap_.emplace_back(std::move(item), next_seq_);
    } else {
      // Allocated before the item moves in: a failure leaves it untouched.
      auto held = std::make_unique<Slot>(std::move(item), next_seq_);
      heap_.push_back(std::move(held));
    }
    ++next_seq_;
    std::push_heap(heap_.begin(), heap_.end(), later());
  }
  T& next() { return slot(heap_.front()).item; }
  // `incoming` would get the newest sequence number: it leaves first only
  // if strictly lower.
  T& next_with(T& incoming) {
    if (heap_.empty()) return incoming;
    T& top = next();
    return compare_(incoming, top) ? incoming : top;
  }
  void drop_next() {
    std::pop_heap(heap_.begin(), heap_.end(), later());
    heap_.pop_back();
  }
  size_t size() const { return heap_.size(); }

 private:
  struct Slot {
    Slot(T&& i, uint64_t s) : item(std::move(i)), seq(s) {}
    T item;
    uint64_t seq;
  };
  // The heap's sifting moves its elements: an item whose move may throw is
  // held through a pointer, so that a throwing move cannot lose an item or
  // leave a copy of it behind half-way through a sift.
  static constexpr bool kInline =
      std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>;
  using Held = std::conditional_t<kInline, Slot, std::unique_ptr<Slot>>;
  static const Slot& slot(const Held& h) {
    if constexpr (kInline) {
      return h;
    } else {
      return *h;
    }
  }
  static Slot& slot(Held& h) { return const_cast<Slot&>(slot(std::as_const(h))); }

  // std::push_heap keeps the greatest on top; "comes out later" as the
  // ordering puts the earliest-out slot there.
  auto later() const {
    return [this](const Held& ha, const Held& hb) {
      const Slot& a = slot(ha);
      const Slot& b = slot(hb);
      if (compare_(b.item, a.item)) return true;
      if (compare_(a.item, b.item)) return false;
      return a.seq > b.seq;
    };
  }

  Compare compare_;
  std::vector<Held> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace internal

// The queue machinery, parameterised by its item store. Use Queue,
// LifoQueue or PriorityQueue.
template <class T, class Storage>
class BasicQueue {
 public:
  using value_type = T;

  // A queue that holds at most `maxsize` items; 0 means no limit.
  // Throws std::invalid_argument if `maxsize` is negative.
  explicit BasicQueue(std::int64_t maxsize = 0, Storage storage = Storage())
      : maxsize_(internal::checked_queue_maxsize(maxsize)), items_(std::move(storage)) {
    finished_.set();
  }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() {
    internal::cancel_waiters(getters_, "Queue");
    internal::cancel_waiters(putters_, "Queue");
  }

  // The bound given at construction (0: none).
  size_t maxsize() const { return maxsize_; }
  // The items in the queue now (not counting those waiting in put()).
  size_t qsize() const { return items_.size(); }
  bool empty() const { return items_.size() == 0; }
  // True when a bound is set and reached.
  bool full() const { return maxsize_ != 0 && items_.size() >= maxsize_; }

  // Puts `item` in the queue. The future completes once it is in: at once
  // (already done) if there is room or a getter waiting, else when a get()
  // makes room, oldest putter first. With a `timeout` it fails with
  // TimeoutError if no room came in that time (on the loop's clock), and
  // the item is dropped; cancelling it does the same.
  // Throws InvalidStateError if it must wait with a timeout and the current
  // scheduler is not an IOLoop.
  Future<void> put(T item, std::optional<absl::Duration> timeout = std::nullopt,
                   SourceLocation where = SourceLocation::current()) {
    if (try_put(item)) return make_ready_future(where);
    Future<void> waiter =
        internal::make_waiter<void>(timeout, "Queue::put", "Queue::put timed out", where);
    putters_.push(Putter{waiter, std::move(item)});
    return waiter;
  }

  // Puts `item` in the queue without waiting: to the oldest waiting getter
  // if there is one.
  // Throws QueueFull (and drops the item) if the queue holds maxsize items.
  void put_nowait(T item) {
    if (!try_put(item)) throw QueueFull();
  }

  // Takes the next item out. The future completes with it: at once
  // (already done) if the queue has one, else when a put() brings one,
  // oldest getter first. With a `timeout` it fails with TimeoutError if no
  // item came in that time (on the loop's clock); cancelling it stops the
  // wait. Either way no item is taken.
  // Throws InvalidStateError if it must wait with a timeout and the current
  // scheduler is not an IOLoop.
  [[nodiscard("get() returns the Future of the item: co_await it")]]
  Future<T> get(std::optional<absl::Duration> timeout = std::nullopt,
                SourceLocation where = SourceLocation::current()) {
    if (T* next = prepare_hand_out()) {
      Future<T> ready(where);
      // One move, straight from the queue's item into the future's state:
      // if it throws, the item is still in the queue and nothing changed.
      internal::FutureAccess::state(ready)->try_set_value(std::move(*next));
      finish_hand_out(next);
      return ready;
    }
    Future<T> waiter =
        internal::make_waiter<T>(timeout, "Queue::get", "Queue::get timed out", where);
    getters_.push(waiter);
    return waiter;
  }

  // Takes the next item out without waiting; a waiting putter's item moves
  // in to take its place (if that move fails, the putter keeps waiting
  // with its item, and the next get takes it in).
  // Throws QueueEmpty if there is none; whatever moving the item out
  // throws, leaving it queued; std::bad_alloc, with nothing changed, if a
  // putter waits and the loop has no room for its completion.
  T get_nowait() {
    T* next = prepare_hand_out();
    if (next == nullptr) throw QueueEmpty();
    HandOut out(*this, next);
    return T(std::move(*next));  // the caller's object, built in place
  }

  // Tells the queue that a consumer has finished with one item it got:
  // once every item ever put has been marked done, join() completes.
  // Throws InvalidStateError if called more times than items were put.
  void task_done() {
    if (unfinished_ == 0) {
      throw InvalidStateError("Queue::task_done called more times than items were put");
    }
    // Before the count moves: the last task_done() sets finished_.
    if (unfinished_ == 1) finished_.waiters_.check_owner("Queue::task_done");
    if (--unfinished_ == 0) finished_.set();
  }

  // A future that completes when every item put so far has been marked
  // with task_done() (at once if none is unfinished). With a `timeout` it
  // fails with TimeoutError if that takes longer (on the loop's clock).
  // Throws InvalidStateError if a timeout is given, the queue has
  // unfinished items and the current scheduler is not an IOLoop.
  [[nodiscard("join() returns a Future that is done once every item is done: co_await it")]]
  Future<void> join(std::optional<absl::Duration> timeout = std::nullopt,
                    SourceLocation where = SourceLocation::current()) {
    return finished_.wait_as(timeout, "Queue::join", "Queue::join timed out", where);
  }

  // Items put and not yet marked with task_done().
  size_t unfinished_tasks() const { return unfinished_; }

  // `co_await queue` is `co_await queue.get()`: the consumer loop's idiom
  // (Tornado's `async for item in q`).
  friend auto operator co_await(BasicQueue& q) { return operator co_await(q.get()); }

 private:
  struct Putter {
    Future<void> waiter;
    T item;
  };

  // Tornado's __put_internal: every item entering counts as unfinished.
  void put_internal(T&& item) {
    items_.push(std::move(item));  // first: if it throws, nothing changed
    ++unfinished_;
    finished_.clear();
  }

  // On a foreign thread (see Threading), throws before anything changes.
  void check_owner(const char* op) const {
    getters_.check_owner(op);
    putters_.check_owner(op);
  }

  // Puts `item` (moving it out) unless the queue is full; false if full.
  // If moving the item throws, nothing has changed (no waiter is lost).
  bool try_put(T& item) {
    check_owner("Queue::put");
    putters_.drop_finished_front();
    if (getters_.has_live()) {
      // A live getter means the queue is empty: the item passes through.
      // Completed while still queued (through a handle of its own), so that
      // a throwing move of the item leaves it waiting; dropped once done.
      // Counted first: with no loop current the getter's callbacks run
      // inline and may use the queue (task_done()).
      Future<T> getter = getters_.front();
      const bool was_finished = unfinished_ == 0;
      ++unfinished_;
      finished_.clear();
      try {
        // One move, straight into the getter's state: if it throws, `item`
        // is as it was.
        internal::FutureAccess::state(getter)->try_set_value(std::move(item));
      } catch (...) {
        --unfinished_;
        if (was_finished) finished_.set();
        throw;
      }
      getters_.drop_finished_front();
      return true;
    }
    if (full()) return false;
    put_internal(std::move(item));
    return true;
  }

  // The first half of a get (Tornado's get_nowait: the oldest live
  // putter's item joins, then the next item leaves), done in the order
  // that lets every step fail with nothing changed: returns the item that
  // leaves, still where it is (in the queue, or in the putter's entry when
  // it would leave at once, as a LifoQueue's does), or null when there is
  // none. Before that, room for the putter's completion is made (out of
  // memory, std::bad_alloc and nothing changed). The caller moves the item
  // out once (which may throw: nothing changed), then calls
  // finish_hand_out.
  T* prepare_hand_out() {
    check_owner("Queue::get");
    getters_.drop_finished_front();
    if (!putters_.has_live()) return items_.size() > 0 ? &items_.next() : nullptr;
    putters_.reserve_completions(1);
    return &items_.next_with(putters_.front().item);
  }

  // The second half, once `out` has been moved out: drops it from the
  // queue (unless it was the putter's), moves the putter's item in and
  // completes the putter. Never throws: the get has happened. If moving the
  // putter's item in fails (its move throws, or std::bad_alloc), the putter
  // keeps waiting with its item, and the next get admits it.
  void finish_hand_out(T* out) noexcept {
    if (!putters_.has_live()) {
      items_.drop_next();
      return;
    }
    Putter& putter = putters_.front();
    if (out != &putter.item) {
      items_.drop_next();
      try {
        items_.push(std::move(putter.item));
      } catch (...) {
        return;
      }
    }
    Future<void> waiter = putters_.take_front_waiter();
    ++unfinished_;
    finished_.clear();
    // Last: with no loop current its callbacks run inline and may use the
    // queue. The room for its post was made by prepare_hand_out.
    try {
      waiter.set_result();
    } catch (...) {
      try {
        log(LogLevel::kError, "Queue::get: completing a waiting put() failed: " +
                                  describe_exception(std::current_exception()));
      } catch (...) {
      }
    }
  }

  // get_nowait's second half: finish_hand_out once the caller's object is
  // built, unless building it threw (then nothing changed).
  class HandOut {
   public:
    HandOut(BasicQueue& q, T* out) noexcept : q_(q), out_(out) {}
    HandOut(const HandOut&) = delete;
    HandOut& operator=(const HandOut&) = delete;
    ~HandOut() {
      if (std::uncaught_exceptions() == uncaught_) q_.finish_hand_out(out_);
    }

   private:
    BasicQueue& q_;
    T* out_;
    const int uncaught_ = std::uncaught_exceptions();
  };

  size_t maxsize_;
  Storage items_;
  internal::WaiterQueue<Future<T>> getters_;
  internal::WaiterQueue<Putter> putters_;
  size_t unfinished_ = 0;
  Event finished_;
};

// First in, first out.
template <class T>
class Queue : public BasicQueue<T, internal::FifoStorage<T>> {
 public:
  // At most `maxsize` items (0: no limit).
  // Throws std::invalid_argument if `maxsize` is negative.
  explicit Queue(std::int64_t maxsize = 0) : BasicQueue<T, internal::FifoStorage<T>>(maxsize) {}
};

// Last in, first out.
template <class T>
class LifoQueue : public BasicQueue<T, internal::LifoStorage<T>> {
 public:
  // At most `maxsize` items (0: no limit).
  // Throws std::invalid_argument if `maxsize` is negative.
  explicit LifoQueue(std::int64_t maxsize = 0)
      : BasicQueue<T, internal::LifoStorage<T>>(maxsize) {}
};

// Lowest first by `Compare` (a strict weak order); equal items first in,
// first out. Typical items are (priority, payload) pairs or tuples.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public BasicQueue<T, internal::PriorityStorage<T, Compare>> {
 public:
  // At most `maxsize` items (0: no limit).
  // Throws std::invalid_argument if `maxsize` is negative.
  explicit PriorityQueue(std::int64_t maxsize = 0, Compare compare = Compare())
      : BasicQueue<T, internal::PriorityStorage<T, Compare>>(
            maxsize, internal::PriorityStorage<T, Compare>(std::move(compare))) {}
};

}  // namespace eddy

#endif  // EDDY_SYNC_QUEUE_H_
