// PeriodicCallback: calls a function every `interval` on the current loop
// (Tornado's tornado.ioloop.PeriodicCallback).
//
//   eddy::PeriodicCallback heartbeat([&] { send_ping(); }, absl::Seconds(1));
//   heartbeat.start();     // first call one interval from now
//   ...
//   heartbeat.stop();      // or let it go out of scope
//
// Calls are scheduled on a fixed grid from start(): the period runs from
// the start of one call to the start of the next. A call that overruns
// skips the grid points it missed instead of bunching calls to catch up.
// With jitter j, each period is drawn from interval * [1 - j/2, 1 + j/2],
// so the average rate is unchanged.
//
// `fn` may return void or Future<void> (a coroutine): in the second case
// the next call is scheduled only once the future is done (Tornado 6.2), so
// slow asynchronous calls skip grid points too. Exceptions (thrown, or in
// the returned future) are logged and the schedule goes on (a
// CancelledError is not logged, as in Tornado); so is an empty
// (moved-from) returned Future, which could never complete.
//
// Threading: construct anywhere; start(), stop(), is_running() and the
// destructor on the thread of the loop it runs on (the loop current at
// start()). fn runs on that loop. If the loop is closed, the callback
// simply stops. In builds with EDDY_THREAD_CHECKS, stop() on another thread
// throws InvalidStateError and changes nothing. The destructor never
// throws: run on another thread than the loop's once started (running or
// not), it logs an error, makes sure fn is not called again (a call in
// progress on the loop finishes) and posts the rest (removing the timer,
// dropping the state) to the loop's thread, touching neither the state nor
// the loop there (it may be being destroyed). If that loop is closed by
// then, the state, fn included, is leaked rather than destroyed on the
// wrong thread, and that is logged too.
#ifndef EDDY_LOOP_PERIODIC_CALLBACK_H_
#define EDDY_LOOP_PERIODIC_CALLBACK_H_

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"

namespace eddy {

class PeriodicCallback {
 public:
  // Throws std::invalid_argument if `fn` is empty (a null function pointer,
  // an empty AnyInvocable or std::function), `interval` is not positive and
  // finite, or `jitter` is outside [0, 1].
  template <class F>
    requires std::is_invocable_v<F&>
  PeriodicCallback(F fn, absl::Duration interval, double jitter = 0)
      : PeriodicCallback(interval, jitter) {
    internal::check_callable(fn, "PeriodicCallback", "fn");
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      set_plain(absl::AnyInvocable<void()>(std::move(fn)));
    } else {
      static_assert(std::is_same_v<R, Future<void>>,
                    "PeriodicCallback: fn must return void or Future<void>");
      set_async(absl::AnyInvocable<Future<void>()>(std::move(fn)));
    }
  }
  // stop() (see Threading for another thread).
  ~PeriodicCallback();
  PeriodicCallback(const PeriodicCallback&) = delete;
  PeriodicCallback& operator=(const PeriodicCallback&) = delete;

  // Starts calling fn on the current loop (IOLoop::current()), the first
  // time one interval from now. A no-op if it is running already.
  // Throws InvalidStateError if the current loop is closed.
  void start();

  // Stops: no further calls (a call in progress finishes). May be called
  // from fn itself. A no-op if not running.
  // Throws InvalidStateError on a thread that does not own the loop it runs
  // on (see Threading).
  void stop();

  // True between start() and stop() (or the loop's closing).
  bool is_running() const;

  absl::Duration interval() const;

 private:
  struct State;
  PeriodicCallback(absl::Duration interval, double jitter);
  void set_plain(absl::AnyInvocable<void()> fn);
  void set_async(absl::AnyInvocable<Future<void>()> fn);
  static void run(const std::shared_ptr<State>& s, uint64_t epoch);
  static void schedule_next(const std::shared_ptr<State>& s);
  // stop() without the thread check, on the loop's thread.
  static void stop_state(State& s);

  // Shared with the scheduled timer and with a pending call's future, which
  // may outlive this object.
  std::shared_ptr<State> state_;
};

}  // namespace eddy

#endif  // EDDY_LOOP_PERIODIC_CALLBACK_H_
