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
// Cancelling the result does not cancel the wrapped future (as Tornado);
// the timer goes at once, and a later failure of the wrapped future is
// logged as after a timeout.
//
// A ConcurrentFuture is accepted too: it is bridged onto the loop first.
// One that is done when the timer fires wins, even if its outcome has not
// reached the loop yet. With cancel_on_timeout, cancelling reaches it only
// while it is queued (ConcurrentFuture::cancel()); a task already running
// goes on, and its late failure is logged as above.
//
// The TimeoutError says what the caller gave: "with_timeout: timed out
// after 100ms" for a timeout (0s for a negative one); for a deadline, how
// far ahead of the call it was, to three significant digits ("with_timeout:
// timed out at its deadline, 2.5s after the call"), or that it had passed
// already ("... at its deadline, already past at the call").
//
// Threading: call on the current loop's thread; the futures must belong to
// that loop. The result belongs to it too.
#ifndef EDDY_LOOP_WITH_TIMEOUT_H_
#define EDDY_LOOP_WITH_TIMEOUT_H_

#include <exception>
#include <string>
#include <utility>

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
  QuietExceptions quiet = {};
  // Cancel the wrapped future when the timeout expires.
  bool cancel_on_timeout = false;
};

namespace internal {

void log_failure_after_timeout(const std::exception_ptr& e);

// What the caller gave, for the TimeoutError's message: a timeout, or a
// deadline as its distance from the loop's time at the call. Kept as a
// duration (the message is made only if the timer fires).
struct TimeoutGiven {
  absl::Duration after;
  bool as_deadline = false;
};
std::exception_ptr make_timeout_error(const TimeoutGiven& given);

// Tornado's error_callback: a wrapped future that fails when nobody waits
// for it any more (the result timed out or was cancelled) is logged,
// unless its exception is quiet.
template <class T>
void log_if_failed_unobserved(Future<T>& late, const QuietExceptions& quiet) {
  if (late.cancelled()) return;
  std::exception_ptr e = late.exception();
  if (e == nullptr || quiet.contains(e)) return;
  if (QuietExceptions::of<CancelledError>().contains(e)) return;
  log_failure_after_timeout(e);
}

// `f` is the loop future whose outcome `result` gets; `source` is what the
// caller wrapped: f itself, or the ConcurrentFuture f is bridged from;
// `given` is what the caller said, for the message (not recomputed from
// the deadline: a second clock reading made 100ms read 99.999389ms). The
// timer asks the source whether it is done (a ConcurrentFuture may be done
// with its outcome still on the way to f) and cancels the source (a running
// ConcurrentFuture cannot be cancelled: f then stays pending, and a late
// failure still reaches f, where it is logged as below).
template <class T, class Source>
Future<T> with_timeout_on(IOLoop& loop, MonotonicTime deadline, TimeoutGiven given, Future<T> f,
                          Source source, TimeoutOptions options) {
  Future<T> result;
  chain_future(f, result);
  QuietExceptions quiet = options.quiet;
  TimeoutHandle timer = loop.call_at(
      deadline, [result, f, source = std::move(source), given,
                 options = std::move(options)]() mutable {
        // Done but its outcome not yet in f (f's callbacks not yet run, or
        // a ConcurrentFuture's delivery still in the loop's inbox): the
        // chained outcome is on its way and wins.
        if (source.done()) return;
        // The caller cancelled the result (its callback, which drops this
        // timer, had not run yet): not a timeout, nothing to set or
        // cancel (set_exception would throw InvalidStateError into the
        // loop's log; Tornado's timeout_callback checks result.done()
        // too), and f's own callback logs a late failure.
        if (result.cancelled()) return;
        if (!result.done()) {
          result.set_exception(make_timeout_error(given));
          if (options.cancel_on_timeout) source.cancel();
        }
        // In case it goes on to fail, log it (Tornado's error_callback).
        f.add_done_callback([quiet = std::move(options.quiet)](Future<T>& late) {
          log_if_failed_unobserved(late, quiet);
        });
      });
  // Finished first: drop the timer (and what it holds: f, result, the
  // options) at once. LoopRef, because the loop may be gone by the time f
  // completes. If the caller cancelled the result, nobody sees f's outcome:
  // a failure is logged, as the timer would have arranged at the deadline.
  f.add_done_callback([loop_ref = LoopRef(&loop), timer, result,
                       quiet = std::move(quiet)](Future<T>& done) mutable {
    if (IOLoop* l = loop_ref.get()) l->remove_timeout(timer);
    if (result.cancelled()) log_if_failed_unobserved(done, quiet);
  });
  // The caller cancelled the result: the timer has nothing left to do, so
  // it (and the futures it holds) goes now, not at the deadline. This
  // callback holds no future: no cycle with f's callbacks above.
  result.add_done_callback([loop_ref = LoopRef(&loop), timer](Future<T>& r) {
    if (!r.cancelled()) return;
    if (IOLoop* l = loop_ref.get()) l->remove_timeout(timer);
  });
  return result;
}

}  // namespace internal

// The wrapped future's outcome, or TimeoutError at `deadline` (loop time).
// Throws InvalidStateError if the current loop is closed, or if `f` is
// empty (moved from): "with_timeout: the Future f is empty (moved from)".
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(MonotonicTime deadline, Future<T> f, TimeoutOptions options) {
  internal::FutureAccess::state(f, "with_timeout", "the Future f is empty");
  IOLoop& loop = IOLoop::current();
  Future<T> source = f;
  const internal::TimeoutGiven given{deadline - loop.time(), /*as_deadline=*/true};
  return internal::with_timeout_on(loop, deadline, given, std::move(f), std::move(source),
                                   std::move(options));
}
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(MonotonicTime deadline, Future<T> f, QuietExceptions quiet = {}) {
  return with_timeout(deadline, std::move(f), TimeoutOptions{std::move(quiet), false});
}

// The wrapped future's outcome, or TimeoutError `timeout` from now.
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(absl::Duration timeout, Future<T> f, TimeoutOptions options) {
  internal::FutureAccess::state(f, "with_timeout", "the Future f is empty");
  IOLoop& loop = IOLoop::current();
  Future<T> source = f;
  return internal::with_timeout_on(loop, loop.time() + timeout, internal::TimeoutGiven{timeout},
                                   std::move(f), std::move(source), std::move(options));
}
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(absl::Duration timeout, Future<T> f, QuietExceptions quiet = {}) {
  return with_timeout(timeout, std::move(f), TimeoutOptions{std::move(quiet), false});
}

// ConcurrentFuture: bridged onto the current loop, then as above.
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(absl::Duration timeout, ConcurrentFuture<T> f, TimeoutOptions options) {
  internal::ConcurrentAccess::state(f, "with_timeout", "the ConcurrentFuture f is empty");
  IOLoop& loop = IOLoop::current();
  Future<T> bridged;
  chain_future(f, bridged);
  return internal::with_timeout_on(loop, loop.time() + timeout, internal::TimeoutGiven{timeout},
                                   std::move(bridged), std::move(f), std::move(options));
}
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(absl::Duration timeout, ConcurrentFuture<T> f, QuietExceptions quiet = {}) {
  return with_timeout(timeout, std::move(f), TimeoutOptions{std::move(quiet), false});
}
// The same with a std::chrono duration (with_timeout(2s, f)): see
// to_duration().
template <internal::ChronoDuration D, class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(D timeout, Future<T> f, TimeoutOptions options) {
  return with_timeout(to_duration(timeout), std::move(f), std::move(options));
}
template <internal::ChronoDuration D, class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(D timeout, Future<T> f, QuietExceptions quiet = {}) {
  return with_timeout(to_duration(timeout), std::move(f), std::move(quiet));
}
template <internal::ChronoDuration D, class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(D timeout, ConcurrentFuture<T> f, TimeoutOptions options) {
  return with_timeout(to_duration(timeout), std::move(f), std::move(options));
}
template <internal::ChronoDuration D, class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(D timeout, ConcurrentFuture<T> f, QuietExceptions quiet = {}) {
  return with_timeout(to_duration(timeout), std::move(f), std::move(quiet));
}
template <class T>
[[nodiscard("with_timeout() returns the Future that fails on timeout: co_await it")]]
Future<T> with_timeout(MonotonicTime deadline, ConcurrentFuture<T> f,
                       TimeoutOptions options = {}) {
  internal::ConcurrentAccess::state(f, "with_timeout", "the ConcurrentFuture f is empty");
  IOLoop& loop = IOLoop::current();
  const internal::TimeoutGiven given{deadline - loop.time(), /*as_deadline=*/true};
  Future<T> bridged;
  chain_future(f, bridged);
  return internal::with_timeout_on(loop, deadline, given, std::move(bridged), std::move(f),
                                   std::move(options));
}

}  // namespace eddy

#endif  // EDDY_LOOP_WITH_TIMEOUT_H_
