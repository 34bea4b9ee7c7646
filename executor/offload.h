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
//     stopped.
//
// Threading: offloads are started on the loop's thread; the call runs
// wherever the executor runs it; the Future completes on the loop thread.
#ifndef EDDY_EXECUTOR_OFFLOAD_H_
#define EDDY_EXECUTOR_OFFLOAD_H_

#include <cstdint>
#include <optional>
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

// The loop-side end of one offload: the delivery payload that copies the
// pool-side outcome into the loop Future. It lives on the loop thread (the
// delivery guarantees that) and is the target of the Future's cancel hook,
// so it re-points the hook whenever it moves and clears it when it dies.
template <class R>
class OffloadLink {
 public:
  OffloadLink(Future<R> target, ConcurrentFuture<R> source,
              std::optional<CancellationSource> canceller)
      : target_(std::move(target)), source_(std::move(source)), canceller_(std::move(canceller)) {
    attach_hook();
  }
  OffloadLink(OffloadLink&& o) noexcept
      : target_(std::move(o.target_)),
        source_(std::move(o.source_)),
        canceller_(std::move(o.canceller_)),
        ran_(o.ran_) {
    attach_hook();
  }
  OffloadLink(const OffloadLink&) = delete;
  OffloadLink& operator=(const OffloadLink&) = delete;
  OffloadLink& operator=(OffloadLink&&) = delete;

  ~OffloadLink() {
    if (!target_.valid()) return;  // moved from
    FutureState<R>* state = FutureAccess::state(target_);
    if (!state->done()) state->set_cancel_hook({});
    // Never ran: the loop went away (or dropped the delivery) before the
    // outcome arrived.
    if (!ran_) count_late_completion_dropped();
  }

  // Loop thread, once the pool-side future is done.
  void operator()() {
    ran_ = true;
    FutureState<R>* state = FutureAccess::state(target_);
    if (state->done()) {
      // Cancelled from the loop while running (a cancel that won while the
      // task was queued leaves the pool-side future cancelled too).
      if (!source_.cancelled()) {
        (void)source_.exception();  // retrieved: discarding is deliberate
        count_result_discarded_after_cancel();
      }
      return;
    }
    state->set_cancel_hook({});
    copy_outcome(source_, state);
  }

 private:
  void attach_hook() {
    if (!target_.valid()) return;
    FutureState<R>* state = FutureAccess::state(target_);
    if (!state->done()) state->set_cancel_hook({&OffloadLink::on_cancel, this});
  }

  // Loop thread, inside target.cancel(): the task is removed if still
  // queued (ConcurrentFuture::cancel wins only then), else told through
  // its token.
  static void on_cancel(void* ctx) {
    auto* self = static_cast<OffloadLink*>(ctx);
    if (!self->source_.cancel() && self->canceller_.has_value()) self->canceller_->cancel();
  }

  Future<R> target_;
  ConcurrentFuture<R> source_;
  std::optional<CancellationSource> canceller_;
  bool ran_ = false;
};

// Submits fn(args...) to `executor` without blocking and returns the loop
// Future for it (see the file comment). `loop` must run on this thread and
// be the current scheduler. Throws InvalidStateError on another thread;
// ExecutorShutdownError / BrokenExecutorError as Executor::submit.
template <class F, class... A>
auto offload(Scheduler& loop, Executor& executor, Deadline deadline, F&& fn, A&&... args) {
  using R = call_result_t<F, A...>;
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
  auto task = make_call_task(std::move(token), std::forward<F>(fn), std::forward<A>(args)...);
  ConcurrentFuture<R> source = task->future();
  Future<R> target;
  auto delivery = make_delivery(&loop, OffloadLink<R>(target, source, std::move(canceller)));
  source.add_done_callback([delivery = std::move(delivery)]() mutable { delivery.deliver(); });
  // If this throws, the task dies unsettled, which cancels `source`; the
  // delivery then cancels `target` on a later turn, and the caller gets the
  // exception now, as from Executor::submit.
  ExecutorAccess::execute_without_blocking(executor, std::move(task), {});
  return target;
}

}  // namespace internal
}  // namespace eddy

#endif  // EDDY_EXECUTOR_OFFLOAD_H_
