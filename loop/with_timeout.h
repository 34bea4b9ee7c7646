// with_timeout(): wraps a future in a deadline (Tornado 6.2's
// gen.with_timeout).
//
//   eddy::Future<Reply> r = eddy::with_timeout(absl::Seconds(5), client.fetch(url));
//   // r fails with eddy::TimeoutError if fetch() is not done within 5 s.
//
// The returned future gets the wrapped future's outcome if it is done in
// time, and TimeoutError otherwise. The wrapped future is NOT cancelled on
// timeout (Tornado semantics: someone else may be waiting on it); pass
// TimeoutOptions{.cancel_on_timeout = true} for asyncio.wait_for's
// behaviour. If it fails after the timeout, its exception is logged unless
// its type is in `quiet` (CancelledError always is). If it is already done
// when the timer fires (its callbacks not yet run), its outcome wins.
//
// A ConcurrentFuture is accepted too: it is bridged onto the loop first
// (with cancel_on_timeout, cancelling reaches it only while it is queued,
// as ConcurrentFuture::cancel()).
//
// Threading: call on the current loop's thread; the futures must belong to
// that loop. The result belongs to it too.
#ifndef EDDY_LOOP_WITH_TIMEOUT_H_
#define EDDY_LOOP_WITH_TIMEOUT_H_

#include <exception>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/loop/internal/loop_ref.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/time.h"

namespace eddy {

struct TimeoutOptions {
  // Exception types whose late failures are not logged.
  QuietExceptions quiet;
  // Cancel the wrapped future when the timeout expires.
  bool cancel_on_timeout = false;
};

namespace internal {

void log_failure_after_timeout(const std::exception_ptr& e);
std::exception_ptr make_timeout_error(absl::Duration timeout);

template <class T>
Future<T> with_timeout_on(IOLoop& loop, MonotonicTime deadline, Future<T> f,
                          TimeoutOptions options, absl::AnyInvocable<void()> also_cancel) {
  const absl::Duration budget = deadline - loop.time();
  Future<T> result;
  chain_future(f, result);
  TimeoutHandle timer = loop.call_at(
      deadline,
      [result, f, budget, options = std::move(options),
       also_cancel = std::move(also_cancel)]() mutable {
        // Done but its callbacks not yet run: the chained outcome is on
        // its way and wins.
        if (f.done()) return;
        // The caller may have cancelled the result: that is not a timeout
        // (no TimeoutError to set, nothing to cancel), and set_exception
        // would throw InvalidStateError into the loop's log. Tornado's
        // timeout_callback checks result.done() too.
        if (!result.done()) {
          result.set_exception(make_timeout_error(budget));
          if (options.cancel_on_timeout) {
            f.cancel();
            if (also_cancel) also_cancel();
          }
        }
        // In case it goes on to fail, log it (Tornado's error_callback).
        f.add_done_callback([quiet = std::move(options.quiet)](Future<T>& late) {
          if (late.cancelled()) return;
          std::exception_ptr e = late.exception();
          if (e == nullptr || quiet.contains(e)) return;
          if (QuietExceptions::of<CancelledError>().contains(e)) return;
          log_failure_after_timeout(e);
        });
      });
  // Finished first: drop the timer (and what it holds) at once. LoopRef,
  // because the loop may be gone by the time f completes.
  f.add_done_callback([loop_ref = LoopRef(&loop), timer] {
    if (IOLoop* l = loop_ref.get()) l->remove_timeout(timer);
  });
  return result;
}

}  // namespace internal

// The wrapped future's outcome, or TimeoutError at `deadline` (loop time).
// Throws InvalidStateError if the current loop is closed.
template <class T>
Future<T> with_timeout(MonotonicTime deadline, Future<T> f, TimeoutOptions options) {
  IOLoop& loop = IOLoop::current();
  return internal::with_timeout_on(loop, deadline, std::move(f), std::move(options), nullptr);
}
template <class T>
Future<T> with_timeout(MonotonicTime deadline, Future<T> f, QuietExceptions quiet = {}) {
  return with_timeout(deadline, std::move(f), TimeoutOptions{std::move(quiet), false});
}

// The wrapped future's outcome, or TimeoutError `timeout` from now.
template <class T>
Future<T> with_timeout(absl::Duration timeout, Future<T> f, TimeoutOptions options) {
  IOLoop& loop = IOLoop::current();
  return internal::with_timeout_on(loop, loop.time() + timeout, std::move(f), std::move(options),
                                   nullptr);
}
template <class T>
Future<T> with_timeout(absl::Duration timeout, Future<T> f, QuietExceptions quiet = {}) {
  return with_timeout(timeout, std::move(f), TimeoutOptions{std::move(quiet), false});
}

// ConcurrentFuture: bridged onto the current loop, then as above.
template <class T>
Future<T> with_timeout(absl::Duration timeout, ConcurrentFuture<T> f, TimeoutOptions options) {
  IOLoop& loop = IOLoop::current();
  Future<T> bridged;
  chain_future(f, bridged);
  absl::AnyInvocable<void()> also_cancel;
  if (options.cancel_on_timeout) also_cancel = [f]() mutable { f.cancel(); };
  return internal::with_timeout_on(loop, loop.time() + timeout, std::move(bridged),
                                   std::move(options), std::move(also_cancel));
}
template <class T>
Future<T> with_timeout(absl::Duration timeout, ConcurrentFuture<T> f, QuietExceptions quiet = {}) {
  return with_timeout(timeout, std::move(f), TimeoutOptions{std::move(quiet), false});
}
template <class T>
Future<T> with_timeout(MonotonicTime deadline, ConcurrentFuture<T> f,
                       TimeoutOptions options = {}) {
  IOLoop& loop = IOLoop::current();
  return with_timeout(deadline - loop.time(), std::move(f), std::move(options));
}

}  // namespace eddy

#endif  // EDDY_LOOP_WITH_TIMEOUT_H_
