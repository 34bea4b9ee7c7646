// sleep(): a Future that resolves after a while on the current loop, the
// non-blocking counterpart of std::this_thread::sleep_for (Tornado's
// gen.sleep).
//
//   co_await eddy::sleep(absl::Milliseconds(500));     // in a coroutine
//
//   eddy::IOLoop::current().run_sync([] { return eddy::sleep(absl::Seconds(1)); });
//
// Time is the loop's clock (IOLoop::time()), so on a ManualClock a sleep
// ends when the test moves the clock.
//
// Threading: call on the thread of the loop it should run on
// (IOLoop::current(), created if there is none); the future belongs to that
// loop.
#ifndef EDDY_LOOP_SLEEP_H_
#define EDDY_LOOP_SLEEP_H_

#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/futures/source_location.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/time.h"

namespace eddy {

// A Future<void> that resolves `duration` from now (at once, on a later
// iteration, for zero or negative durations). Cancelling it is allowed; the
// timer then just finds it done.
// Throws InvalidStateError if the current loop is closed.
inline Future<void> sleep_until(MonotonicTime deadline,
                                SourceLocation where = SourceLocation::current()) {
  IOLoop& loop = IOLoop::current();  // first: the future must bind to it
  Future<void> f(where);
  loop.call_at(
      deadline,
      [f]() mutable {
        if (!f.done()) f.set_result();
      },
      where);
  return f;
}

inline Future<void> sleep(absl::Duration duration,
                          SourceLocation where = SourceLocation::current()) {
  return sleep_until(IOLoop::current().time() + duration, where);
}

}  // namespace eddy

#endif  // EDDY_LOOP_SLEEP_H_
