// Callback adapters: turn an API that reports through a callback into a
// Future (Tornado's gen.Task and return_future, for code that predates
// futures).
//
//   // void legacy_fetch(std::string key, std::function<void(int)> done);
//   eddy::Future<int> f = eddy::from_callback<int>(legacy_fetch, "answer");
//
//   // void legacy_load(int id, std::function<void(std::exception_ptr, Row)> done);
//   eddy::Future<Row> row = eddy::from_error_callback<Row>(legacy_load, 7);
//
//   // return_future: wrap it once, call it like a future-returning function.
//   auto fetch = [](std::string key) { return eddy::from_callback<int>(legacy_fetch, key); };
//
// from_callback<T>(fn, args...) calls fn(args..., done) right away, where
// `done` is a ResultCallback<T> (std::function<void(T)>, or void() for
// T = void) that completes the returned future. from_error_callback<T> passes
// an ErrorCallback<T> instead (std::function<void(std::exception_ptr, T)>, or
// void(std::exception_ptr)): a non-null error fails the future, else the
// value completes it.
//
// Edge cases, each one tested:
//   - fn throws: the future fails with that exception (nothing propagates
//     out of from_callback).
//   - done called twice (or fn throws after calling it): the first outcome
//     wins; the later call is ignored and logged through eddy::log.
//   - done never called: the future stays pending, for as long as anyone
//     holds it. When the last copy of `done` is destroyed nothing else
//     happens; as for any future, only an exception nobody retrieved is
//     logged, and a pending future is not.
//   - the future was cancelled before done is called: the call is ignored,
//     silently (the outcome arrived, nobody wanted it).
//
// Threading: call from_callback on a loop thread; the future belongs to that
// loop. `done` (and its copies) may then be called, copied and destroyed on
// any thread, any number of times: the outcome is delivered to the loop and
// the future completes there on a later turn, even when done is called
// synchronously inside fn. If the loop is destroyed first, the outcome is
// dropped. With no loop current, there is no thread to deliver to: done must
// then be called (and dropped) on the calling thread, and it completes the
// future inline. A `done` not yet called does not hold back an
// auto-advancing ManualClock (it may well be this loop's own timer that
// calls it; see loop/manual_clock.h).
#ifndef EDDY_FUTURES_CALLBACK_ADAPTERS_H_
#define EDDY_FUTURES_CALLBACK_ADAPTERS_H_

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "eddy/futures/future.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/log.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

namespace internal {
template <class T>
struct CallbackTypes {
  using Result = std::function<void(T)>;
  using Error = std::function<void(std::exception_ptr, T)>;
};
template <>
struct CallbackTypes<void> {
  using Result = std::function<void()>;
  using Error = std::function<void(std::exception_ptr)>;
};
}  // namespace internal

// The callback from_callback<T> passes to the wrapped function:
// std::function<void(T)>, or std::function<void()> for T = void.
template <class T>
using ResultCallback = typename internal::CallbackTypes<T>::Result;

// The callback from_error_callback<T> passes: std::function<void(
// std::exception_ptr, T)>, or void(std::exception_ptr) for T = void. A
// non-null exception_ptr reports a failure (the value is then ignored).
template <class T>
using ErrorCallback = typename internal::CallbackTypes<T>::Error;

namespace internal {

// The outcome a callback reports. Written once by the winning caller (any
// thread) before the delivery is posted; read on the loop thread after it
// runs (the post orders the two).
template <class T>
struct CallbackOutcome {
  std::optional<Stored<T>> value;
  std::exception_ptr error;

  void deliver_to(FutureState<T>* to) {
    if (to->done()) return;  // cancelled meanwhile: nobody wants it
    if (error) {
      to->try_set_exception(std::move(error));
    } else {
      if constexpr (std::is_void_v<T>) {
        to->try_set_value();
      } else {
        to->try_set_value(std::move(*value));
      }
    }
  }
};

// Shared by every copy of one callback (through std::shared_ptr: copies may
// live on other threads). The future itself stays on its loop: with a loop,
// it sits in the delivery's payload, which the loop owns; only the outcome
// box travels.
template <class T>
class CallbackCore {
 public:
  explicit CallbackCore(Future<T> future) : outcome_(std::make_shared<CallbackOutcome<T>>()) {
    Scheduler* s = FutureAccess::state(future)->scheduler();
    if (s != nullptr) {
      // Any thread: legacy code often calls back from this loop's own
      // timers, so an auto-advancing clock must not wait for it.
      delivery_.emplace(
          make_delivery(s, DeliveryFrom::kAnyThread, Payload{std::move(future), outcome_}));
    } else {
      inline_.emplace(std::move(future));
    }
  }

  // Any thread. The first report wins; a later one is logged and ignored.
  template <class... V>
  void report_value(V&&... value) {
    if (!claim("the callback was called again")) return;
    outcome_->value.emplace(std::forward<V>(value)...);
    finish();
  }
  void report_error(std::exception_ptr e, const char* what_happened) {
    if (!claim(what_happened, e)) return;
    outcome_->error = std::move(e);
    finish();
  }

 private:
  struct Payload {
    Future<T> future;
    std::shared_ptr<CallbackOutcome<T>> outcome;
    void operator()() { outcome->deliver_to(FutureAccess::state(future)); }
  };

  bool claim(const char* what_happened, const std::exception_ptr& e = nullptr) {
    if (!called_.exchange(true, std::memory_order_acq_rel)) return true;
    std::string message = std::string("from_callback: ") + what_happened +
                          " after the future's outcome was already reported; ignored";
    if (e) message += " (" + describe_exception(e) + ")";
    log(LogLevel::kError, message);
    return false;
  }

  void finish() {
    if (delivery_) {
      delivery_->deliver();
    } else {
      outcome_->deliver_to(FutureAccess::state(*inline_));
    }
  }

  std::atomic<bool> called_{false};
  std::shared_ptr<CallbackOutcome<T>> outcome_;
  std::optional<DeliveryHandle<Payload>> delivery_;  // with a loop
  std::optional<Future<T>> inline_;                  // without one
};

// Calls fn(args..., done); an exception from fn is reported like an error.
template <class T, class Callback, class F, class... A>
void call_with_callback(Callback done, CallbackCore<T>& core, F&& fn, A&&... args) {
  try {
    std::invoke(std::forward<F>(fn), std::forward<A>(args)..., std::move(done));
  } catch (...) {
    core.report_error(std::current_exception(), "the wrapped function threw");
  }
}

}  // namespace internal

// Calls fn(args..., done) with done a ResultCallback<T>; returns a future
// that done completes. See the file comment for the twice/never/throw cases.
// Throws nothing of its own (an exception from fn fails the future).
template <class T, class F, class... A>
Future<T> from_callback(F&& fn, A&&... args) {
  static_assert(std::is_invocable_v<F, A..., ResultCallback<T>>,
                "from_callback<T>: fn must be callable as fn(args..., std::function<void(T)>)");
  Future<T> future;
  auto core = std::make_shared<internal::CallbackCore<T>>(future);
  ResultCallback<T> done;
  if constexpr (std::is_void_v<T>) {
    done = [core] { core->report_value(); };
  } else {
    done = [core](T value) { core->report_value(std::move(value)); };
  }
  internal::call_with_callback<T>(std::move(done), *core, std::forward<F>(fn),
                                  std::forward<A>(args)...);
  return future;
}

// Calls fn(args..., done) with done an ErrorCallback<T>; returns a future
// that done completes: failed when done gets a non-null exception_ptr.
template <class T, class F, class... A>
Future<T> from_error_callback(F&& fn, A&&... args) {
  static_assert(std::is_invocable_v<F, A..., ErrorCallback<T>>,
                "from_error_callback<T>: fn must be callable as "
                "fn(args..., std::function<void(std::exception_ptr, T)>)");
  Future<T> future;
  auto core = std::make_shared<internal::CallbackCore<T>>(future);
  ErrorCallback<T> done;
  if constexpr (std::is_void_v<T>) {
    done = [core](std::exception_ptr e) {
      if (e) {
        core->report_error(std::move(e), "the callback was called again");
      } else {
        core->report_value();
      }
    };
  } else {
    done = [core](std::exception_ptr e, T value) {
      if (e) {
        core->report_error(std::move(e), "the callback was called again");
      } else {
        core->report_value(std::move(value));
      }
    };
  }
  internal::call_with_callback<T>(std::move(done), *core, std::forward<F>(fn),
                                  std::forward<A>(args)...);
  return future;
}

}  // namespace eddy

#endif  // EDDY_FUTURES_CALLBACK_ADAPTERS_H_
