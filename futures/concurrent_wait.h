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
// Deadlocks: a wait without a timeout that can never end because the
// futures it needs are completed by the loop current on this thread (which
// is blocked in the wait: futures from IOLoop::run_in_loop) throws
// InvalidStateError instead, as ConcurrentFuture::result() does.
//
// Threading: call them on any thread; the futures may complete on any
// thread. Each waits with a done callback on every future it has to wait
// for (one small block shared by them, freed when the last future is done
// or the wait, whichever is later, ends), so a wait that times out leaves
// nothing behind but those callbacks, which do nothing once the wait is
// gone.
#ifndef EDDY_FUTURES_CONCURRENT_WAIT_H_
#define EDDY_FUTURES_CONCURRENT_WAIT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <iterator>
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

// The end of a wait `timeout` from now: none for no timeout, or for one
// past the clock's range (absl::InfiniteDuration(), absl::Seconds(INT64_MAX)
// would wrap into the past).
class WaitDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit WaitDeadline(std::optional<absl::Duration> timeout) : timeout_(timeout) {
    const Clock::time_point now = Clock::now();
    if (timeout && *timeout < absl::FromChrono(Clock::time_point::max() - now)) {
      at_ = now + absl::ToChronoNanoseconds(*timeout);
    }
  }
  bool forever() const { return !at_; }
  Clock::time_point at() const { return *at_; }
  absl::Duration timeout() const { return *timeout_; }

 private:
  std::optional<absl::Duration> timeout_;
  std::optional<Clock::time_point> at_;
};

// What the done callbacks have reported to a CompletionBoard.
struct WaitProgress {
  std::vector<size_t> finished;  // positions, in the order they finished
  size_t failures = 0;           // how many of them with an exception
  size_t first_failure = 0;      // the first of those (if failures > 0)
};

// Shared by a waiting thread and the done callbacks it put on the futures:
// the callbacks report the positions of the futures as they finish, and the
// waiter sleeps until what it waits for has been reported. Counted by the
// waiter and by every callback not yet run (or destroyed).
class CompletionBoard {
 public:
  explicit CompletionBoard(size_t n) { progress_.finished.reserve(n); }
  CompletionBoard(const CompletionBoard&) = delete;
  CompletionBoard& operator=(const CompletionBoard&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // From a done callback: future `index` is done; `failed` if with an
  // exception.
  void report(size_t index, bool failed) {
    std::lock_guard<std::mutex> lock(mu_);
    progress_.finished.push_back(index);
    if (failed && progress_.failures++ == 0) progress_.first_failure = index;
    changed_.notify_all();
  }

  // Sleeps until `ready(progress)` holds or `deadline` passes; returns
  // whether it holds. `ready` runs under the board's lock.
  template <class Ready>
  bool wait_until(const WaitDeadline& deadline, Ready&& ready) {
    std::unique_lock<std::mutex> lock(mu_);
    auto holds = [&] { return ready(std::as_const(progress_)); };
    if (deadline.forever()) {
      changed_.wait(lock, holds);
      return true;
    }
    return changed_.wait_until(lock, deadline.at(), holds);
  }

  // Runs `look(progress)` under the lock, without waiting.
  template <class Look>
  decltype(auto) inspect(Look&& look) {
    std::lock_guard<std::mutex> lock(mu_);
    return look(std::as_const(progress_));
  }

 private:
  ~CompletionBoard() = default;

  std::atomic<uint32_t> refs_{1};  // the waiter's
  std::mutex mu_;
  std::condition_variable changed_;
  WaitProgress progress_;  // guarded by mu_
};

// A done callback's reference on the board: small enough (with the
// position) for a callback stored inline, without an allocation.
class BoardRef {
 public:
  explicit BoardRef(CompletionBoard* b) noexcept : board_(b) { board_->add_ref(); }
  BoardRef(BoardRef&& other) noexcept : board_(std::exchange(other.board_, nullptr)) {}
  BoardRef& operator=(BoardRef&&) = delete;
  ~BoardRef() {
    if (board_ != nullptr) board_->release();
  }
  CompletionBoard* operator->() const noexcept { return board_; }

 private:
  CompletionBoard* board_;
};

template <class T>
ConcurrentStatus status_of(const ConcurrentFuture<T>& f) {
  return ConcurrentState<T>::status(ConcurrentAccess::state(f).word.load(std::memory_order_acquire));
}

// True when `f` is completed by the loop current on this thread, so that a
// wait on this thread keeps it pending forever.
template <class T>
bool completed_by_this_loop(const ConcurrentFuture<T>& f) {
  const Scheduler* on = ConcurrentAccess::state(f).completed_on;
  return on != nullptr && on == Scheduler::current();
}

// Puts the board's done callback on future `index`; runs it here if the
// future is already done.
template <class T>
void watch_on_board(CompletionBoard* board, size_t index, const ConcurrentFuture<T>& f) {
  ConcurrentFuture<T> handle = f;
  handle.add_done_callback([ref = BoardRef(board), index](ConcurrentFuture<T>& done) {
    ref->report(index, status_of(done) == ConcurrentStatus::kException);
  });
}

// The waiter's own reference on a new board for n futures.
class OwnedBoard {
 public:
  explicit OwnedBoard(size_t n) : board_(new CompletionBoard(n)) {}
  OwnedBoard(OwnedBoard&& other) noexcept : board_(std::exchange(other.board_, nullptr)) {}
  OwnedBoard& operator=(OwnedBoard&& other) noexcept {
    if (this != &other) {
      if (board_ != nullptr) board_->release();
      board_ = std::exchange(other.board_, nullptr);
    }
    return *this;
  }
  ~OwnedBoard() {
    if (board_ != nullptr) board_->release();
  }
  CompletionBoard* get() const noexcept { return board_; }
  CompletionBoard* operator->() const noexcept { return board_; }

 private:
  CompletionBoard* board_;
};

}  // namespace internal

// Waits until the futures reach `return_when`, or `timeout` passes, and
// returns which of them are done then (Python's concurrent.futures.wait).
// A timeout is not an error: the answer then has futures in not_done.
// Returns at once for an empty vector.
// Throws InvalidStateError if a future is empty (moved from), or, without
// a timeout, if the wait could never end (see the file comment).
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
  if (!reached(done, failed)) {
    if (deadline.forever() && pending_by_this_loop > 0) {
      // All: one such future is enough to never finish. First: only when
      // every pending future is one.
      const bool all = return_when == ReturnWhen::kAllCompleted;
      if (all || pending_by_this_loop == n - done) internal::throw_wait_deadlock("wait");
    }
    internal::OwnedBoard board(n);
    size_t already_done = 0;
    size_t already_failed = 0;
    for (size_t i = 0; i < n; ++i) {
      const internal::ConcurrentStatus s = internal::status_of(futures[i]);
      if (internal::is_done(s)) {
        ++already_done;
        if (s == internal::ConcurrentStatus::kException) ++already_failed;
      } else {
        internal::watch_on_board(board.get(), i, futures[i]);
      }
    }
    // The callbacks report only the futures still pending when they were
    // put on (those done by then were counted above, whether or not one
    // finished between the two passes).
    board->wait_until(deadline, [&](const internal::WaitProgress& p) {
      return reached(already_done + p.finished.size(), already_failed + p.failures);
    });
  }
  DoneAndNotDone<T> answer;
  for (const ConcurrentFuture<T>& f : futures) {
    (internal::is_done(internal::status_of(f)) ? answer.done : answer.not_done).push_back(f);
  }
  return answer;
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
// handed out are left as they are. Move-only; handed-out futures stay
// valid after it is gone.
// Throws InvalidStateError if a future is empty (moved from), or from a
// next() without a timeout that could never end (see the file comment).
template <class T>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<ConcurrentFuture<T>> futures,
                       std::optional<absl::Duration> timeout = std::nullopt)
      : futures_(std::move(futures)), deadline_(timeout), board_(futures_.size()) {
    for (const ConcurrentFuture<T>& f : futures_) {
      internal::ConcurrentAccess::state(f, "as_completed", "a future is empty");
      if (internal::ConcurrentAccess::state(f).completed_on != nullptr) any_loop_bound_ = true;
    }
    for (size_t i = 0; i < futures_.size(); ++i) {
      internal::watch_on_board(board_.get(), i, futures_[i]);
    }
  }
  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) noexcept = default;

  // The next future to finish, waiting for it if none is waiting; nullopt
  // once every future has been handed out.
  std::optional<Completed<T>> next() {
    if (handed_out_ == futures_.size()) return std::nullopt;
    size_t index = 0;
    auto take = [&](const internal::WaitProgress& p) {
      if (p.finished.size() == handed_out_) return false;
      index = p.finished[handed_out_];
      return true;
    };
    if (deadline_.forever() && any_loop_bound_ && !board_->inspect(take)) check_deadlock();
    if (!board_->wait_until(deadline_, take)) {
      internal::throw_wait_timeout("as_completed", futures_.size() - handed_out_, futures_.size(),
                                   "futures", deadline_.timeout());
    }
    ++handed_out_;
    return Completed<T>{index, futures_[index]};
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
  // About to wait with no timeout: throws if every future not yet reported
  // is completed by this thread's loop.
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

  std::vector<ConcurrentFuture<T>> futures_;
  internal::WaitDeadline deadline_;
  internal::OwnedBoard board_;
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
