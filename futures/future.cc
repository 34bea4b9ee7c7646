#include "eddy/futures/future.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace eddy::internal {

namespace {
// The deferred cancellations of the innermost run_cancel_hook() on this
// thread.
thread_local std::vector<DeferredCancel>* t_deferred_cancels = nullptr;
}  // namespace

bool defer_cancel(const DeferredCancel& d) {
  if (t_deferred_cancels == nullptr) return false;
  t_deferred_cancels->push_back(d);
  return true;
}

void run_cancel_hook(CancelHook hook) {
  std::vector<DeferredCancel> deferred;
  std::vector<DeferredCancel>* const outer = std::exchange(t_deferred_cancels, &deferred);
  // If a hook or a completion throws, the futures not completed yet stay as
  // the nested calls would have left them (cancelled, callbacks not
  // scheduled); their references are given back all the same.
  struct Unwind {
    std::vector<DeferredCancel>& deferred;
    std::vector<DeferredCancel>* outer;
    ~Unwind() {
      t_deferred_cancels = outer;
      for (const DeferredCancel& d : deferred) d.finish(d.state, false);
    }
  } unwind{deferred, outer};
  hook.fn(hook.ctx);
  // Each hook may defer the next level: the list grows as it is walked.
  for (size_t i = 0; i < deferred.size(); ++i) {
    CancelHook next = deferred[i].hook;
    if (next.fn != nullptr) next.fn(next.ctx);
  }
  // With no loop a completion runs callbacks inline (user code): a cancel()
  // there is one of its own, not one more level of this one.
  t_deferred_cancels = outer;
  while (!deferred.empty()) {
    DeferredCancel d = deferred.back();
    deferred.pop_back();
    d.finish(d.state, true);
  }
}

void throw_wrong_thread(const char* op) {
  throw InvalidStateError(std::string("Future::") + op +
                          ": called from a thread that does not own the future "
                          "(a Future belongs to its loop's thread; hand results across "
                          "threads with ConcurrentFuture and IOLoop::add_future)");
}

void throw_no_state(const char* op) {
  throw InvalidStateError(std::string("Future::") + op +
                          ": the handle is empty (moved from)");
}

void throw_empty_handle(const char* who, const char* problem) {
  throw InvalidStateError(std::string(who) + ": " + problem + " (moved from)");
}

void throw_wrong_thread_for(const char* who) {
  throw InvalidStateError(std::string(who) +
                          ": called from a thread that does not own the Future "
                          "(a Future belongs to its loop's thread; hand results across "
                          "threads with ConcurrentFuture and IOLoop::add_future)");
}

void throw_invalid(const char* op, const char* why) {
  throw InvalidStateError(std::string("Future::") + op + ": " + why);
}

void log_unretrieved(const std::exception_ptr& e, const SourceLocation& created) {
  // A CancelledError is how a cancellation travels (a cancelled offload's
  // token, a coroutine unwinding from a cancelled co_await), not a failure
  // someone missed: as in Tornado, where a task that raises CancelledError
  // ends cancelled and a cancelled future is never reported. Every
  // "never retrieved" report (FutureState, ConcurrentState, an offload
  // dropped with its loop) comes through here.
  if (is_cancelled_error(e)) return;
  log(LogLevel::kError,
      "Future exception was never retrieved: " + describe_exception(e) +
          " (future created at " + describe_location(created) + ")",
      created);
}

void log_callback_failure(const std::exception_ptr& e, const SourceLocation& created) {
  log(LogLevel::kError,
      "Exception in a future's done callback: " + describe_exception(e) +
          " (future created at " + describe_location(created) + ")",
      created);
}

}  // namespace eddy::internal

#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/concurrent_wait.h"

namespace eddy::internal {

void throw_concurrent_invalid(const char* op, const char* why) {
  throw InvalidStateError(std::string("ConcurrentFuture::") + op + ": " + why);
}

void throw_concurrent_no_state(const char* op) {
  throw InvalidStateError(std::string("ConcurrentFuture::") + op +
                          ": the handle is empty (moved from)");
}

void throw_concurrent_deadlock(const char* op) {
  throw InvalidStateError(std::string("ConcurrentFuture::") + op +
                          ": would deadlock: this future is completed by the loop current on "
                          "this thread, which this wait blocks: it would never end, or only "
                          "time out (use IOLoop::add_future or co_await; a zero timeout only "
                          "polls)");
}

void throw_concurrent_timeout(const char* op, absl::Duration timeout) {
  throw TimeoutError(std::string("ConcurrentFuture::") + op + ": not done within " +
                     absl::FormatDuration(std::max(timeout, absl::ZeroDuration())));
}

void throw_wait_deadlock(const char* who) {
  throw InvalidStateError(std::string(who) +
                          ": would deadlock: the futures it waits for are completed by the "
                          "loop current on this thread, which this wait blocks: it would "
                          "never end, or only time out (on a loop, use multi, WaitIterator or "
                          "first_completed; a zero timeout only polls)");
}

void throw_wait_timeout(const char* who, size_t pending, size_t total, const char* things,
                        absl::Duration timeout) {
  throw TimeoutError(std::string(who) + ": " + std::to_string(pending) + " of " +
                     std::to_string(total) + " " + things + " not done within " +
                     absl::FormatDuration(std::max(timeout, absl::ZeroDuration())));
}

}  // namespace eddy::internal
