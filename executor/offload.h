// The bridge from a loop to an executor and back: the engine behind
// IOLoop::run_in_executor and run_on_executor (run_on_executor.h), which are
// what applications call. Kept here, below loop/, so the loop can use it.
//
// An offload submits fn(args...) to an executor and returns a loop
// Future<R> that resolves, on the loop thread, with the call's outcome:
//
//   eddy::Future<Row> f = loop.run_in_executor(&pool, fetch_row, id);
//
//   - cancelling the Future cancels the task if it is still queued (it
//     never runs) or, if it is running, cancels the CancellationToken it was
//     handed (see cancellation.h); an outcome that arrives after that is
//     discarded (counted in offload_stats().results_discarded_after_cancel);
//   - a Deadline makes the token expire; a task still queued at its
//     deadline does not run and the Future fails with TimeoutError;
//   - if the loop is destroyed while the call is in flight, its completion
//     is dropped safely: nothing runs on a dead loop and nothing loop-side
//     is touched off the loop thread (counted in
//     offload_stats().late_completions_dropped). The call itself is not
//     stopped. A failure it ends with is logged as never retrieved, unless
//     the Future had been cancelled by then (the outcome was not wanted,
//     as above) or the failure is a CancelledError (a cancellation);
//   - the callable and its arguments (what the task holds) are destroyed
//     on the loop thread, when the outcome is delivered, not on the worker:
//     a `self` passed as a std::shared_ptr may be the last reference to an
//     object that owns the very pool (run_on_executor's `executor` member),
//     and the loop thread is where its caller expects it to go. So pass a
//     resource whose release blocks (a connection to close) by reference,
//     or move it into the call and let it go there.
//
// Threading: offloads are started on the loop's thread; the call runs
// wherever the executor runs it; the Future completes on the loop thread.
#ifndef EDDY_EXECUTOR_OFFLOAD_H_
#define EDDY_EXECUTOR_OFFLOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

// Process-wide totals since start (atomic counters; safe from any thread).
struct OffloadStats {
  // Offloads whose loop was destroyed before their outcome was delivered.
  uint64_t late_completions_dropped = 0;
  // Outcomes that arrived after the loop-side Future had been cancelled
  // (the task was already running) and were thrown away.
  uint64_t results_discarded_after_cancel = 0;
};
OffloadStats offload_stats();

namespace internal {

void count_late_completion_dropped();
void count_result_discarded_after_cancel();

// One offload, as one object (Asio's "operation" shape): the executor's
// task (callable, arguments, token), the outcome the worker leaves, and the
// loop-side end (the Future, the canceller), in one recycled allocation.
//
// Life: made on the loop thread with three references: the executor's
// (released by dispose()), the loop side's, and the completion post's.
// Whatever settles the task (run, cancel, fail, or dispose unsettled) posts
// the completion to the loop's RemoteScheduler exactly once. On the loop
// thread the completion copies the outcome into the Future and releases
// the loop side with its own reference. If the loop dies first, its
// detach_scheduler() drops the loop side (on the loop thread) and a
// completion posted later is destroyed unrun, releasing only itself. The
// loop-side members are touched only on the loop thread; the outcome is
// written by the settling thread before the post (the inbox orders them).
//
// Cancelling the Future (the loop thread): a task still queued is marked
// skipped (phase_ queued -> cancelled) and never runs; a running one gets
// its token cancelled, and its late outcome is discarded.
template <class R, class Fn, class... Args>
class OffloadTask final : public Executor::Task {
 public:
  template <class F, class... A>
  OffloadTask(Scheduler& loop, Future<R> target, std::optional<CancellationSource> canceller,
              CancellationToken token, F&& fn, A&&... args)
      : remote_(loop.remote()),
        token_(std::move(token)),
        call_(std::in_place, std::forward<F>(fn), std::forward<A>(args)...),
        created_(FutureAccess::state(target)->created()) {
    loop_side_.emplace(LoopSide{std::move(target), std::move(canceller)});
    node_.owner = this;
    node_.drop = &drop;
    // Awaited: an auto-advancing ManualClock holds still until the
    // completion has come back (see Scheduler::own_awaited).
    loop.own_awaited(&node_);
    FutureAccess::state(loop_side_->target)->set_cancel_hook({&on_cancel, this});
  }

  bool run() noexcept override {
    bool ran = false;
    uint8_t expected = kQueued;
    if (token_.cancel_requested() ||
        !phase_.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) {
      outcome_ = Outcome::kCancelled;
    } else if (token_.expired()) {
      outcome_ = Outcome::kException;
      error_ = std::make_exception_ptr(
          TimeoutError("the offloaded call's deadline passed before it started"));
    } else {
      ran = true;
      try {
        if constexpr (std::is_void_v<R>) {
          invoke();
          value_.emplace();
        } else {
          value_.emplace(invoke());
        }
        outcome_ = Outcome::kValue;
      } catch (...) {
        outcome_ = Outcome::kException;
        error_ = std::current_exception();
      }
    }
    // A loop woken by this completion reuses this worker.
    note_worker_finishing(static_cast<const Executor::Task*>(this));
    complete();
    return ran;
  }

  void cancel() noexcept override {
    outcome_ = Outcome::kCancelled;
    complete();
  }

  void fail(std::exception_ptr error) noexcept override {
    outcome_ = Outcome::kException;
    error_ = std::move(error);
    complete();
  }

  void dispose() noexcept override {
    if (outcome_ == Outcome::kNone) {
      // Dropped by its executor (or the hand-over threw): the Future is
      // cancelled on a later turn, as a dropped CallTask cancels its future.
      outcome_ = Outcome::kCancelled;
      complete();
    }
    release(1);
  }

 private:
  enum : uint8_t { kQueued, kRunning, kCancelled };
  enum class Outcome : uint8_t { kNone, kValue, kException, kCancelled };

  struct LoopSide {
    Future<R> target;
    std::optional<CancellationSource> canceller;
  };
  struct Node : OwnedNode {
    OffloadTask* owner;
  };

  // The posted completion: one pointer, so it stays in AnyInvocable's
  // inline buffer.
  struct Completion {
    explicit Completion(OffloadTask* t) : task(t) {}
    Completion(Completion&& o) noexcept : task(std::exchange(o.task, nullptr)) {}
    Completion(const Completion&) = delete;
    Completion& operator=(const Completion&) = delete;
    ~Completion() {
      if (task != nullptr) task->release(1);  // destroyed unrun: the loop is gone
    }
    void operator()() { std::exchange(task, nullptr)->deliver(); }
    OffloadTask* task;
  };

  ~OffloadTask() override {
    // A failure that never reached its Future (the loop went away first)
    // is logged, as any never-retrieved exception, unless the Future was
    // done (cancelled) when the loop dropped it: deliver() would have
    // discarded it, and so does the dying loop. (log_unretrieved skips a
    // CancelledError itself.) The last release orders the loop thread's
    // write of target_done_ and the settling thread's of error_ before
    // this read, whichever thread runs it.
    if (outcome_ == Outcome::kException && error_ && !target_done_) {
      log_unretrieved(error_, created_);
    }
  }

  // The settling thread: the loop hears. The call (callable, arguments)
  // is destroyed on the loop thread, in deliver(), not here: it may hold
  // the last reference to an object that owns this very pool (a
  // run_on_executor `self` as a std::shared_ptr, with its `executor`
  // member, when the caller dropped its own reference meanwhile). A pool
  // destroyed on one of its own workers copes (see ~ThreadPoolExecutor),
  // but the object's other members expect their owner's thread.
  // (If the loop is gone first, the call goes with the last reference,
  // wherever that is dropped.)
  //
  // post_completion, not post: this is noexcept and there is nobody to tell
  // on a worker, so queuing must not fail for lack of memory (the inbox
  // waits for memory instead; see RemoteScheduler::post_completion).
  void complete() noexcept {
    // A post refused by a closed loop destroys the Completion here, which
    // releases its reference; the loop side is then dropped by the dying
    // loop.
    remote_->post_completion(Completion(this));
  }

  // Loop thread, the completion's turn.
  void deliver() {
    if (!node_.linked()) {  // the loop dropped its side already
      release(1);
      return;
    }
    Scheduler::disown(&node_);
    call_.reset();  // here, on the loop thread: see complete()
    FutureState<R>* state = FutureAccess::state(loop_side_->target);
    if (state->done()) {
      // Cancelled from the loop while it ran: the outcome is not wanted.
      if (outcome_ != Outcome::kCancelled) count_result_discarded_after_cancel();
      error_ = nullptr;  // discarded deliberately, not "never retrieved"
    } else {
      state->set_cancel_hook({});
      switch (outcome_) {
        case Outcome::kValue:
          if constexpr (std::is_void_v<R>) {
            state->try_set_value();
          } else {
            // A value whose move (or copy) throws: fail the Future with
            // that, as run() does when the first move throws. Escaping
            // from here would leave the Future pending forever and this
            // task unreleased.
            try {
              state->try_set_value(std::move(*value_));
            } catch (...) {
              state->try_set_exception(std::current_exception());
            }
          }
          break;
        case Outcome::kException:
          state->try_set_exception(std::move(error_));
          break;
        default:
          state->try_cancel();
          break;
      }
    }
    loop_side_.reset();
    // Drop our hold on the inbox here, on the loop thread that took it:
    // its reference count then never bounces between the loop and the
    // workers.
    remote_.reset();
    release(2);  // the loop side's and the completion's
  }

  // Loop thread, from detach_scheduler(): the loop is going away first.
  static void drop(OwnedNode* node) {
    OffloadTask* self = static_cast<Node*>(node)->owner;
    FutureState<R>* state = FutureAccess::state(self->loop_side_->target);
    if (state->done()) {
      // Cancelled from the loop (the call was running): the outcome that
      // arrives later is not wanted, as in deliver().
      self->target_done_ = true;
    } else {
      state->set_cancel_hook({});
    }
    self->loop_side_.reset();
    count_late_completion_dropped();
    self->release(1);
  }

  // Loop thread, inside the Future's cancel().
  static void on_cancel(void* ctx) {
    auto* self = static_cast<OffloadTask*>(ctx);
    uint8_t expected = kQueued;
    if (!self->phase_.compare_exchange_strong(expected, kCancelled, std::memory_order_acq_rel) &&
        self->loop_side_->canceller.has_value()) {
      self->loop_side_->canceller->cancel();
    }
  }

  void release(int n) noexcept {
    if (refs_.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }

  decltype(auto) invoke() {
    return std::apply(
        [this](Fn& fn, Args&... args) -> decltype(auto) { return invoke_call(fn, token_, args...); },
        *call_);
  }

  std::atomic<int> refs_{3};
  std::atomic<uint8_t> phase_{kQueued};
  Outcome outcome_ = Outcome::kNone;  // kNone until settled (the executor's side)
  std::shared_ptr<RemoteScheduler> remote_;
  CancellationToken token_;
  std::optional<std::tuple<Fn, Args...>> call_;  // reset on delivery (see complete())
  std::optional<Stored<R>> value_;
  std::exception_ptr error_;        // moved into the Future on delivery
  SourceLocation created_;           // the Future's, for the log line
  Node node_;                         // loop thread only
  // Set by drop() (loop thread) when the Future was done already; read by
  // the destructor after the last release.
  bool target_done_ = false;
  std::optional<LoopSide> loop_side_;  // loop thread only
};

// Submits fn(args...) to `executor` without blocking and returns the loop
// Future for it (see the file comment). `loop` must run on this thread and
// be the current scheduler. Throws InvalidStateError on another thread;
// ExecutorShutdownError / BrokenExecutorError as Executor::submit.
template <class F, class... A>
auto offload(Scheduler& loop, Executor& executor, Deadline deadline, F&& fn, A&&... args) {
  using R = call_result_t<F, A...>;
  if constexpr (!submittable_v<F, A...>) {
    assert_submittable<F, A...>();
    return Future<rejected_call_value_t<F, A...>>();
  } else {
    if (!loop.in_scheduler_thread() || Scheduler::current() != &loop) {
      throw InvalidStateError(
          "run_in_executor: must be called on the loop's own thread, with that loop current");
    }
    // A token costs an allocation; only make one when someone can observe it.
    std::optional<CancellationSource> canceller;
    CancellationToken token;
    if (takes_token_v<F, A...> || !deadline.is_none()) {
      canceller.emplace(deadline);
      token = canceller->token();
    }
    Future<R> target;
    using Op = OffloadTask<R, std::decay_t<F>, std::decay_t<A>...>;
    Executor::TaskPtr task(new Op(loop, target, std::move(canceller), std::move(token),
                                  std::forward<F>(fn), std::forward<A>(args)...));
    // If this throws, the task is disposed of unsettled: `target` is
    // cancelled on a later turn, and the caller gets the exception now, as
    // from Executor::submit.
    ExecutorAccess::execute_without_blocking(executor, std::move(task), {});
    return target;
  }
}

}  // namespace internal
}  // namespace eddy

#endif  // EDDY_EXECUTOR_OFFLOAD_H_
