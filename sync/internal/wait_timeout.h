// Making the waiting futures of sync/, with their optional timeout: a timer
// on the current IOLoop that fails the future with TimeoutError unless it
// finished first, removed as soon as the future finishes (Tornado's
// Semaphore/Queue `_set_timeout`).
//
// Not for users. Threading: the loop's thread only.
#ifndef EDDY_SYNC_INTERNAL_WAIT_TIMEOUT_H_
#define EDDY_SYNC_INTERNAL_WAIT_TIMEOUT_H_

#include <exception>
#include <optional>
#include "eddy/futures/source_location.h"
#include <string>

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/scheduler.h"
#include "eddy/loop/internal/loop_ref.h"
#include "eddy/loop/io_loop.h"

namespace eddy::internal {

// The loop whose timers time out a wait: the IOLoop current on this thread,
// created (as IOLoop::current() does) when no scheduler is current at all.
// Called before the waiter is made, so that it binds to the same loop.
// Throws InvalidStateError when another kind of scheduler is current.
inline IOLoop& timer_loop(const char* op) {
  Scheduler* current = Scheduler::current();
  if (current == nullptr) return IOLoop::current();
  IOLoop* loop = IOLoop::current_or_null();
  if (loop == nullptr || static_cast<Scheduler*>(loop) != current) {
    throw InvalidStateError(std::string(op) +
                            ": a timeout needs an IOLoop to be the current scheduler");
  }
  return *loop;
}

// A pending future for one wait. With a `timeout` it fails with
// TimeoutError(`what`) once that much time has passed on the loop's clock,
// unless it is done by then; its timer goes away as soon as it is done.
// `op` names the wait in errors.
// Throws InvalidStateError as timer_loop() when a timeout is given.
template <class T>
Future<T> make_waiter(std::optional<absl::Duration> timeout, const char* op, const char* what,
                      SourceLocation where) {
  if (!timeout.has_value()) return Future<T>(where);
  IOLoop& loop = timer_loop(op);
  Future<T> waiter(where);
  TimeoutHandle handle = loop.call_later(
      *timeout,
      [w = waiter, what]() mutable {
        if (!w.done()) w.set_exception(std::make_exception_ptr(TimeoutError(what)));
      },
      where);
  // The timer holds the waiter until it fires: remove it as soon as the
  // waiter is done some other way. LoopRef: the waiter may complete after
  // the loop is gone (its callbacks then run inline).
  waiter.add_done_callback([loop_ref = LoopRef(&loop), handle] {
    if (IOLoop* l = loop_ref.get()) l->remove_timeout(handle);
  });
  return waiter;
}

}  // namespace eddy::internal

#endif  // EDDY_SYNC_INTERNAL_WAIT_TIMEOUT_H_
