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

#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/futures/source_location.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/time.h"

namespace eddy {

namespace internal {

// The timer behind a sleep. Cancelling the future removes the timer from
// the loop at once (its cancel hook calls remove_timeout), rather than
// leaving it to fire as a no-op. Owned by the timer's closure through a
// pointer, so the hook's context stays put while the closure moves inside
// the loop's timer queue.
struct SleepTimer {
  SleepTimer(IOLoop& l, Future<void> f) : loop(&l), future(std::move(f)) {}
  SleepTimer(const SleepTimer&) = delete;
  SleepTimer& operator=(const SleepTimer&) = delete;
  ~SleepTimer() {
    // Dropped unfired (the loop closed): the hook must not outlive us.
    FutureState<void>* s = FutureAccess::state(future);
    if (!s->done()) s->set_cancel_hook({});
  }

  // Inside future.cancel(), on the loop's thread: destroys *this (the
  // canceller holds its own reference to the future).
  static void on_cancel(void* ctx) {
    auto* self = static_cast<SleepTimer*>(ctx);
    self->loop->remove_timeout(self->handle);
  }

  IOLoop* loop;
  Future<void> future;
  TimeoutHandle handle;
};

}  // namespace internal

// A Future<void> that resolves `duration` from now (at once, on a later
// iteration, for zero or negative durations). Cancelling it is allowed and
// removes its timer from the loop.
// Throws InvalidStateError if the current loop is closed.
[[nodiscard("sleep() returns a Future that is done later: co_await it")]]
inline Future<void> sleep_until(MonotonicTime deadline,
                                SourceLocation where = SourceLocation::current()) {
  IOLoop& loop = IOLoop::current();  // first: the future must bind to it
  Future<void> f(where);
  auto timer = std::make_unique<internal::SleepTimer>(loop, f);
  internal::SleepTimer* t = timer.get();
  t->handle = loop.call_at(
      deadline,
      [timer = std::move(timer)] {
        if (!timer->future.done()) timer->future.set_result();
      },
      where);
  internal::FutureAccess::state(f)->set_cancel_hook({&internal::SleepTimer::on_cancel, t});
  return f;
}

[[nodiscard("sleep() returns a Future that is done later: co_await it")]]
inline Future<void> sleep(absl::Duration duration,
                          SourceLocation where = SourceLocation::current()) {
  return sleep_until(IOLoop::current().time() + duration, where);
}

// sleep(std::chrono::milliseconds(10)), sleep(10ms): see to_duration().
template <internal::ChronoDuration D>
[[nodiscard("sleep() returns a Future that is done later: co_await it")]]
Future<void> sleep(D duration, SourceLocation where = SourceLocation::current()) {
  return sleep(to_duration(duration), where);
}

}  // namespace eddy

#endif  // EDDY_LOOP_SLEEP_H_
