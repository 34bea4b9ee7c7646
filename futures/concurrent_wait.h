// Blocking waits for many ConcurrentFutures at once, for threads that are
// not loops (Python's concurrent.futures.wait and as_completed).
//
//   std::vector<eddy::ConcurrentFuture<Page>> fetches;
//   for (const Url& u : urls) fetches.push_back(pool.submit(fetch, u));
//
//   // Until all are done, one fails, or 5 s pass:
//   auto [done, not_done] =
//       eddy::wait(fetches, absl::Seconds(5), eddy::ReturnWhen::kFirstException);
//
//   // Each as it finishes, with its position in `fetches`:
//   for (auto& [index, f] : eddy::as_completed(fetches, absl::Seconds(30))) {
//     show(urls[index], f.result());        // done: result() does not block
//   }
//
// On a loop thread do not block: use multi, WaitIterator or first_completed
// (futures/multi.h, wait_iterator.h, first_completed.h), which accept
// ConcurrentFutures too. To run one function over many inputs and collect
// the results, Executor::map (executor/executor.h) does the submitting and
// the waiting.
//
// Positions, not sets: Python's functions take a set of futures; these take
// a vector and keep its order. A future listed twice is reported at both
// positions.
//
// Deadlocks: a wait that could only end by running the loop current on
// this thread, which the wait blocks (the futures it needs are completed by
// that loop: futures from IOLoop::run_in_loop), throws InvalidStateError
// instead, as ConcurrentFuture::result() does. With a timeout too: such a
// wait could only run out. A zero timeout only looks, and never throws it.
//
// How they wait: like a thread blocked in result(), on the futures' own
// waiter lists, so a completion wakes them before it runs the future's
// callbacks (a slow callback does not delay them), and a wait that ends
// takes itself off every future: polling (a zero timeout, which only
// looks) or abandoning an AsCompleted leaves nothing behind.
//
// Threading: call them on any thread; the futures may complete on any
// thread.
#ifndef EDDY_FUTURES_CONCURRENT_WAIT_H_
#define EDDY_FUTURES_CONCURRENT_WAIT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

// When wait() returns (Python's FIRST_COMPLETED, FIRST_EXCEPTION,
// ALL_COMPLETED).
enum class ReturnWhen {
  kFirstCompleted,  // any future is done (a value, an exception, or cancelled)
  kFirstException,  // any future failed with an exception (cancelled does not
                    // count), or all are done
  kAllCompleted,    // all are done
};

// wait()'s answer: every future given, in one of the two, each in the order
// given.
template <class T>
struct DoneAndNotDone {
  std::vector<ConcurrentFuture<T>> done;
  std::vector<ConcurrentFuture<T>> not_done;
};

// One future handed out by as_completed(): its position in the input, and
// the future, which is done.
template <class T>
struct Completed {
  size_t index;
  ConcurrentFuture<T> future;
};

namespace internal {

[[noreturn]] void throw_wait_deadlock(const char* who);
// TimeoutError("<who>: <pending> of <total> <things> not done within <timeout>").
[[noreturn]] void throw_wait_timeout(const char* who, size_t pending, size_t total,
                                     const char* things, absl::Duration timeout);

// What a CompletionBoard has heard.
struct WaitProgress {
  std::vector<size_t> finished;  // positions, in the order they finished
  size_t failures = 0;           // how many of them with an exception
  size_t first_failure = 0;      // the first of those (if failures > 0)
};

// Which reports can make a waiter's condition hold, so that the others do
// not wake it: a thread waiting for 1,000 calls is woken once, not 1,000
// times (each a futex wake, and on a small machine a core taken from the
// workers). The default wakes it on every report.
struct WakeWhen {
  size_t finished = 0;     // once at least this many have finished
  bool on_failure = true;  // and at the first failure (any failure if set)
};

// The reports that can end a wait(return_when) for n futures.
inline WakeWhen wake_when(ReturnWhen return_when, size_t n) {
  switch (return_when) {
    case ReturnWhen::kFirstCompleted:
      return WakeWhen{};
    case ReturnWhen::kFirstException:
      return WakeWhen{.finished = n, .on_failure = true};
    case ReturnWhen::kAllCompleted:
      break;
  }
  return WakeWhen{.finished = n, .on_failure = false};
}

template <class T>
ConcurrentStatus status_of(const ConcurrentFuture<T>& f) {
  return ConcurrentState<T>::status(ConcurrentAccess::state(f).word.load(std::memory_order_acquire));
}

// True when `f` is pending and completed by the loop current on this
// thread, so that a wait on this thread keeps it pending forever.
template <class T>
bool completed_by_this_loop(const ConcurrentFuture<T>& f) {
  const Scheduler* on = ConcurrentAccess::state(f).completed_on;
  return on != nullptr && on == Scheduler::current() && !is_done(status_of(f));
}

// Where a waiter for many futures learns of their completions: one Node per
// future, linked into the future's waiters (woken by its completion before
// its callbacks run, as a thread blocked in result() is), reports the
// future's position; the waiter sleeps until what it waits for has been
// reported. The board and its nodes belong to the waiter (no reference
// counting, no allocation per future): it unwatches every node before they
// go, which unlinks the node, or waits out a completion that has taken it,
// so that nothing is left on the futures.
class CompletionBoard {
 public:
  struct Node final : ConcurrentWaiter {
    CompletionBoard* board = nullptr;
    const std::atomic<uint8_t>* word = nullptr;  // the future's state word
    size_t index = 0;
    bool linked = false;    // the owner's: linked, not unwatched yet
    bool reported = false;  // guarded by board->mu_

    void wake() override {
      board->report(*this, static_cast<ConcurrentStatus>(word->load(std::memory_order_acquire) &
                                                         kStatusMask) ==
                               ConcurrentStatus::kException);
    }
  };

  // `on_first_failure(context)`, if given, runs under the board's lock when
  // the first failure is reported (on the completing thread).
  explicit CompletionBoard(size_t n, void (*on_first_failure)(void*) = nullptr,
                           void* context = nullptr)
      : on_first_failure_(on_first_failure), context_(context) {
    progress_.finished.reserve(n);
  }
  CompletionBoard(const CompletionBoard&) = delete;
  CompletionBoard& operator=(const CompletionBoard&) = delete;

  // Watches future `f` at position `index` through `node`. A future done
  // already is reported here instead.
  template <class T>
  void watch(Node& node, size_t index, const ConcurrentFuture<T>& f) {
    node.board = this;
    node.word = &ConcurrentAccess::state(f).word;
    node.index = index;
    node.linked = ConcurrentAccess::link_waiter(f, node);
    if (!node.linked) report(node, status_of(f) == ConcurrentStatus::kException);
  }

  // Makes room for reports of n futures (report() never allocates: it runs
  // in completions, under the lock). Grows geometrically.
  // Returns the room made, so that a caller adding one future at a time
  // comes back only when that is used up.
  size_t reserve(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<size_t>& v = progress_.finished;
    if (n > v.capacity()) v.reserve(std::max(n, 2 * v.capacity()));
    return v.capacity();
  }

  // Takes `node` off `f` (the future it watches), or waits until the
  // completion that took it has reported. Then the node may go.
  template <class T>
  void unwatch(Node& node, const ConcurrentFuture<T>& f) noexcept {
    if (!node.linked) return;
    node.linked = false;
    if (ConcurrentAccess::unlink_waiter(f, node)) return;
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return node.reported; });
  }

  // Sleeps until `ready(progress)` holds or `deadline` passes; returns
  // whether it holds. `ready` runs under the board's lock, on every report
  // that `when` admits (`ready` may not hold before one of those does).
  template <class Ready>
  bool wait_until(const WaitDeadline& deadline, Ready&& ready, WakeWhen when = {}) {
    std::unique_lock<std::mutex> lock(mu_);
    auto holds = [&] { return ready(std::as_const(progress_)); };
    wake_ = when;
    bool held = true;
    if (deadline.forever()) {
      changed_.wait(lock, holds);
    } else {
      held = changed_.wait_until(lock, deadline.at(), holds);
    }
    wake_ = WakeWhen{};  // unwatch() waits for any report
    return held;
  }

  // True once a failure was reported (no lock: for polling between steps).
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

  // Runs `look(progress)` under the lock, without waiting.
  template <class Look>
  decltype(auto) inspect(Look&& look) {
    std::lock_guard<std::mutex> lock(mu_);
    return look(std::as_const(progress_));
  }

 private:
  // The node's wake() (on the completing thread), or watch(). Under the
  // lock to the end: once `reported` is seen, the owner may destroy the
  // node and the board.
  void report(Node& node, bool failed) {
    std::lock_guard<std::mutex> lock(mu_);
    progress_.finished.push_back(node.index);  // reserved: does not allocate
    if (failed && progress_.failures++ == 0) {
      progress_.first_failure = node.index;
      failed_.store(true, std::memory_order_release);
      if (on_first_failure_ != nullptr) on_first_failure_(context_);
    }
    node.reported = true;
    if (progress_.finished.size() >= wake_.finished || (failed && wake_.on_failure)) {
      changed_.notify_all();
    }
  }

  void (*const on_first_failure_)(void*);
  void* const context_;
  std::mutex mu_;
  std::condition_variable changed_;
  WaitProgress progress_;  // guarded by mu_
  WakeWhen wake_;          // guarded by mu_: the waiting thread's
  std::atomic<bool> failed_{false};  // progress_.failures > 0
};

// Unwatches nodes[0..n) (those of futures[0..n)) when it goes.
template <class T, class Nodes>
class Unwatcher {
 public:
  Unwatcher(CompletionBoard& board, Nodes& nodes, const std::vector<ConcurrentFuture<T>>& futures)
      : board_(board), nodes_(nodes), futures_(futures) {}
  Unwatcher(const Unwatcher&) = delete;
  Unwatcher& operator=(const Unwatcher&) = delete;
  // Each watched node reports exactly once: when all have, none is linked
  // and nothing is left to do (the common end of a wait). Otherwise, newest
  // first: a future listed many times has its nodes at the head of its list.
  ~Unwatcher() {
    const size_t n = std::min<size_t>(nodes_.size(), futures_.size());
    if (board_.inspect([n](const WaitProgress& p) { return p.finished.size() == n; })) return;
    for (size_t i = n; i-- > 0;) board_.unwatch(nodes_[i], futures_[i]);
  }

 private:
  CompletionBoard& board_;
  Nodes& nodes_;
  const std::vector<ConcurrentFuture<T>>& futures_;
};

}  // namespace internal

// Waits until the futures reach `return_when`, or `timeout` passes, and
// returns which of them are done then (Python's concurrent.futures.wait).
// A timeout is not an error: the answer then has futures in not_done.
// Returns at once for an empty vector.
// Throws InvalidStateError if a future is empty (moved from), or, unless
// `timeout` is zero (or negative), if the wait could only end by running
// this thread's loop (see the file comment): for kAllCompleted, when any
// pending future is completed by that loop; for kFirstCompleted, when every
// pending one is; for kFirstException, when every pending one is, or once
// all the others are done without an exception.
template <class T>
DoneAndNotDone<T> wait(const std::vector<ConcurrentFuture<T>>& futures,
                       std::optional<absl::Duration> timeout = std::nullopt,
                       ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  const internal::WaitDeadline deadline(timeout);
  const size_t n = futures.size();
  size_t done = 0;
  size_t failed = 0;
  size_t pending_by_this_loop = 0;
  for (const ConcurrentFuture<T>& f : futures) {
    internal::ConcurrentAccess::state(f, "wait", "a future is empty");
    const internal::ConcurrentStatus s = internal::status_of(f);
    if (internal::is_done(s)) {
      ++done;
      if (s == internal::ConcurrentStatus::kException) ++failed;
    } else if (internal::completed_by_this_loop(f)) {
      ++pending_by_this_loop;
    }
  }
  auto reached = [n, return_when](size_t d, size_t e) {
    switch (return_when) {
      case ReturnWhen::kFirstCompleted:
        return d > 0 || n == 0;
      case ReturnWhen::kFirstException:
        return e > 0 || d == n;
      case ReturnWhen::kAllCompleted:
        break;
    }
    return d == n;
  };
  // A timeout of zero (or less) only looks: a poll. Any other wait blocks
  // this thread, and with it this thread's loop: one that only that loop
  // could end would last forever, or run out, so it throws instead.
  const bool blocks = !timeout || *timeout > absl::ZeroDuration();
  if (!reached(done, failed) && blocks) {
    // All needs every future, first needs one that this loop does not
    // complete.
    if (pending_by_this_loop > 0 &&
        (return_when == ReturnWhen::kAllCompleted || pending_by_this_loop == n - done)) {
      internal::throw_wait_deadlock("wait");
    }
    // For the first exception, that holds only while a future this loop
    // does not complete is pending: once they all succeeded, it cannot end.
    const bool may_deadlock =
        pending_by_this_loop > 0 && return_when == ReturnWhen::kFirstException;
    std::vector<bool> by_this_loop;
    size_t others = 0;
    if (may_deadlock) {
      by_this_loop.resize(n);
      for (size_t i = 0; i < n; ++i) {
        by_this_loop[i] = internal::completed_by_this_loop(futures[i]);
        if (!by_this_loop[i]) ++others;
      }
    }
    bool deadlocked = false;
    internal::CompletionBoard board(n);
    std::vector<internal::CompletionBoard::Node> nodes(n);
    {
      internal::Unwatcher<T, decltype(nodes)> unwatch_all(board, nodes, futures);
      // Every position is reported to the board from here on, the futures
      // done already by watch() itself.
      for (size_t i = 0; i < n; ++i) board.watch(nodes[i], i, futures[i]);
      size_t seen = 0;
      size_t others_finished = 0;
      board.wait_until(deadline, [&](const internal::WaitProgress& p) {
        if (reached(p.finished.size(), p.failures)) return true;
        if (may_deadlock) {
          for (; seen < p.finished.size(); ++seen) others_finished += !by_this_loop[p.finished[seen]];
          deadlocked = others_finished == others;
        }
        return deadlocked;
      }, may_deadlock ? internal::WakeWhen{} : internal::wake_when(return_when, n));
    }
    if (deadlocked) internal::throw_wait_deadlock("wait");
  }
  DoneAndNotDone<T> answer;
  for (const ConcurrentFuture<T>& f : futures) {
    (internal::is_done(internal::status_of(f)) ? answer.done : answer.not_done).push_back(f);
  }
  return answer;
}

// As above, waiting as long as it takes.
template <class T>
DoneAndNotDone<T> wait(const std::vector<ConcurrentFuture<T>>& futures, ReturnWhen return_when) {
  return wait(futures, std::nullopt, return_when);
}

// Hands out the futures as they finish (Python's
// concurrent.futures.as_completed), each with its position in the input.
// Futures already done when it is made come first, in input order. Iterate
// it with next(), or with a range for:
//
//   eddy::AsCompleted<int> each(std::move(futures), absl::Seconds(10));
//   while (std::optional<eddy::Completed<int>> c = each.next()) use(c->index, c->future.result());
//
// `timeout` bounds the whole iteration, counted from construction: a next()
// (or the range for's increment) that would wait past it throws
// TimeoutError ("3 of 10 futures not done within 10s"); the futures not yet
// handed out are left as they are, and a later next() may still hand them
// out. Move-only; moving it invalidates its iterators. It keeps no handle
// to a future it has handed out (drop one, and its result goes at once),
// and it leaves nothing on the futures.
// Throws InvalidStateError if a future is empty (moved from), or from a
// next() that would wait (no timeout, or one that has not passed) when only
// this thread's loop could complete the futures left (see the file
// comment), or on a moved-from AsCompleted.
// Threading: use one AsCompleted on one thread at a time.
template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<ConcurrentFuture<T>> futures,
                       std::optional<absl::Duration> timeout = std::nullopt)
      : futures_(std::move(futures)), deadline_(timeout) {
    for (const ConcurrentFuture<T>& f : futures_) {
      internal::ConcurrentAccess::state(f, "as_completed", "a future is empty");
      if (internal::ConcurrentAccess::state(f).completed_on != nullptr) any_loop_bound_ = true;
    }
    board_ = std::make_unique<internal::CompletionBoard>(futures_.size());
    nodes_ = std::make_unique<internal::CompletionBoard::Node[]>(futures_.size());
    for (size_t i = 0; i < futures_.size(); ++i) board_->watch(nodes_[i], i, futures_[i]);
  }
  AsCompleted(AsCompleted&& other) noexcept
      : futures_(std::move(other.futures_)),
        deadline_(other.deadline_),
        board_(std::move(other.board_)),
        nodes_(std::move(other.nodes_)),
        handed_out_(std::exchange(other.handed_out_, 0)),
        any_loop_bound_(other.any_loop_bound_) {
    other.futures_.clear();
  }
  AsCompleted& operator=(AsCompleted&& other) noexcept {
    if (this != &other) {
      unwatch_all();
      futures_ = std::move(other.futures_);
      other.futures_.clear();
      deadline_ = other.deadline_;
      board_ = std::move(other.board_);
      nodes_ = std::move(other.nodes_);
      handed_out_ = std::exchange(other.handed_out_, 0);
      any_loop_bound_ = other.any_loop_bound_;
    }
    return *this;
  }
  ~AsCompleted() { unwatch_all(); }

  // The next future to finish, waiting for it if none is waiting; nullopt
  // once every future has been handed out.
  std::optional<Completed<T>> next() {
    if (board_ == nullptr) {
      throw InvalidStateError("as_completed: this AsCompleted was moved from");
    }
    if (handed_out_ == futures_.size()) return std::nullopt;
    size_t index = 0;
    auto take = [&](const internal::WaitProgress& p) {
      if (p.finished.size() == handed_out_) return false;
      index = p.finished[handed_out_];
      return true;
    };
    if (any_loop_bound_ && !deadline_.passed() && !board_->inspect(take)) check_deadlock();
    if (!board_->wait_until(deadline_, take)) {
      internal::throw_wait_timeout("as_completed", futures_.size() - handed_out_, futures_.size(),
                                   "futures", deadline_.timeout());
    }
    ++handed_out_;
    // Handed out, not kept: a caller that drops it frees its result while
    // the iteration goes on (Python's as_completed keeps no reference
    // either). Its node is off the future already: reported means the
    // completion took it, or watch() never linked it.
    nodes_[index].linked = false;
    return Completed<T>{index, std::move(futures_[index])};
  }

  // How many futures are still to be handed out.
  size_t remaining() const { return futures_.size() - handed_out_; }

  class iterator {
   public:
    using value_type = Completed<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    Completed<T>& operator*() const { return *current_; }
    Completed<T>* operator->() const { return &*current_; }
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.current_; }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* owner) : owner_(owner), current_(owner->next()) {}
    AsCompleted* owner_ = nullptr;
    mutable std::optional<Completed<T>> current_;
  };
  // Starts handing out (begin() takes the first future).
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  // About to wait (forever, or until the deadline): throws if every future
  // not yet reported is pending and completed by this thread's loop.
  void check_deadlock() {
    std::vector<bool> reported(futures_.size(), false);
    board_->inspect([&](const internal::WaitProgress& p) {
      for (size_t i : p.finished) reported[i] = true;
    });
    for (size_t i = 0; i < futures_.size(); ++i) {
      if (!reported[i] && !internal::completed_by_this_loop(futures_[i])) return;
    }
    internal::throw_wait_deadlock("as_completed");
  }

  void unwatch_all() noexcept {
    if (board_ == nullptr) return;
    for (size_t i = futures_.size(); i-- > 0;) board_->unwatch(nodes_[i], futures_[i]);
  }

  std::vector<ConcurrentFuture<T>> futures_;
  internal::WaitDeadline deadline_;
  std::unique_ptr<internal::CompletionBoard> board_;
  std::unique_ptr<internal::CompletionBoard::Node[]> nodes_;
  size_t handed_out_ = 0;
  bool any_loop_bound_ = false;
};

// As AsCompleted's constructor: `for (auto& [i, f] : eddy::as_completed(fs))`.
template <class T>
AsCompleted<T> as_completed(std::vector<ConcurrentFuture<T>> futures,
                            std::optional<absl::Duration> timeout = std::nullopt) {
  return AsCompleted<T>(std::move(futures), timeout);
}

}  // namespace eddy

#endif  // EDDY_FUTURES_CONCURRENT_WAIT_H_
