#include "eddy/loop/periodic_callback.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "eddy/futures/errors.h"
#include "eddy/futures/internal/loop_home.h"
#include "eddy/futures/log.h"
#include "eddy/loop/internal/loop_ref.h"
#include "eddy/loop/io_loop.h"

namespace eddy {

struct PeriodicCallback::State {
  absl::AnyInvocable<void()> plain;
  absl::AnyInvocable<Future<void>()> async;
  absl::Duration interval;
  double jitter;
  bool running = false;
  // Bumped by start() and stop(): a timer or a pending call from an earlier
  // run sees a different epoch and does nothing, so stop(); start() never
  // leaves two schedules going.
  uint64_t epoch = 0;
  internal::LoopRef loop;
  // The same loop as seen from other threads (bound by start()): all a
  // destructor running elsewhere may look at, besides `abandoned`.
  internal::LoopHome home;
  // Set by a destructor running on another thread than the loop's: from
  // then on nothing calls fn or schedules (the loop's thread stops it for
  // good on its next look). Atomic: it is the one field written off the
  // loop's thread.
  std::atomic<bool> abandoned{false};
  MonotonicTime next;
  TimeoutHandle timer;
  std::minstd_rand rng{std::random_device{}()};

  // Tornado's _update_next: advance `next` past `now` on the grid.
  void update_next(MonotonicTime now) {
    absl::Duration period = interval;
    if (jitter > 0) {
      period *= 1 + jitter * (std::uniform_real_distribution<double>(0, 1)(rng) - 0.5);
    }
    if (next <= now) {
      // Measured from the start of one call to the start of the next; if
      // calls fell behind, skip the missed points instead of bunching.
      absl::Duration remainder;
      int64_t missed = absl::IDivDuration(now - next, period, &remainder);
      next += (missed + 1) * period;
    } else {
      next += period;
    }
  }
};

namespace {

// A CancelledError is not logged, as Tornado's loop does not log one.
void log_failure(const std::exception_ptr& e) {
  if (internal::is_cancelled_error(e)) return;
  log(LogLevel::kError, "Exception in PeriodicCallback: " + describe_exception(e));
}

}  // namespace

void PeriodicCallback::run(const std::shared_ptr<State>& s, uint64_t epoch) {
  if (!s->running || s->epoch != epoch) return;
  if (s->abandoned.load(std::memory_order_acquire)) [[unlikely]] {
    stop_state(*s);
    return;
  }
  s->timer = TimeoutHandle();
  if (s->async) {
    try {
      Future<void> f = s->async();
      // An empty (moved-from) Future is a failure of this call like any
      // other: logged, and the schedule goes on.
      if (!f.valid()) {
        throw InvalidStateError(
            "PeriodicCallback: fn returned an empty Future (moved from), which never completes");
      }
      f.add_done_callback([s, epoch](Future<void>& done) {
        if (!done.cancelled()) {
          if (std::exception_ptr e = done.exception()) log_failure(e);
        }
        if (s->running && s->epoch == epoch) schedule_next(s);
      });
    } catch (...) {
      log_failure(std::current_exception());
      if (s->running && s->epoch == epoch) schedule_next(s);
    }
    return;
  }
  try {
    s->plain();
  } catch (...) {
    log_failure(std::current_exception());
  }
  // fn may have stopped (or stopped and restarted) us.
  if (s->running && s->epoch == epoch) schedule_next(s);
}

void PeriodicCallback::schedule_next(const std::shared_ptr<State>& s) {
  IOLoop* loop = s->loop.get();
  if (loop == nullptr) {  // the loop was closed
    s->running = false;
    return;
  }
  if (s->abandoned.load(std::memory_order_acquire)) [[unlikely]] {
    stop_state(*s);
    return;
  }
  s->update_next(loop->time());
  s->timer = loop->call_at(s->next, [s, epoch = s->epoch] { run(s, epoch); });
}

PeriodicCallback::PeriodicCallback(absl::Duration interval, double jitter)
    : state_(std::make_shared<State>()) {
  if (interval <= absl::ZeroDuration() || interval == absl::InfiniteDuration()) {
    throw std::invalid_argument("PeriodicCallback: interval must be positive and finite, got " +
                                absl::FormatDuration(interval));
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw std::invalid_argument("PeriodicCallback: jitter must be in [0, 1], got " +
                                std::to_string(jitter));
  }
  state_->interval = interval;
  state_->jitter = jitter;
}

PeriodicCallback::~PeriodicCallback() {
  State& s = *state_;
  if (s.home.here()) [[likely]] {  // never started, or on its loop's thread
    stop_state(s);
    return;
  }
  // Destroyed off the loop's thread (the object's last owner let go on a
  // pool thread, say): the timer, the schedule and the state itself (its
  // loop reference counts without atomics) are the loop's to touch, and so
  // is the loop, which may be being destroyed right now: nothing of it is
  // asked here. Whatever happens, no new call may start once we return (fn
  // may refer to what is being destroyed with us), and no exception may
  // leave a destructor.
  s.abandoned.store(true, std::memory_order_release);
  std::unique_ptr<std::shared_ptr<State>> handoff;
  try {
    log(LogLevel::kError,
        "PeriodicCallback destroyed on a thread that does not own its loop; it is stopped on "
        "the loop's thread instead");
    handoff = std::make_unique<std::shared_ptr<State>>(std::move(state_));
  } catch (...) {
    // Out of memory: if state_ is still here it dies with this object;
    // the loop's timer holds the state too, and run() sees the flag.
    return;
  }
  // The payload owns `s`: post_owned does not touch the home once it is
  // queued, and nor does this.
  if (!s.home.post_owned(std::move(handoff),
                         +[](std::shared_ptr<State>& st) { stop_state(*st); })) {
    // Closed: its thread may still hold the state (a timer being dropped)
    // and count down the same loop reference, so this thread leaves it be.
    try {
      log(LogLevel::kError,
          "PeriodicCallback: its loop is closed: its state is leaked (fn included), since no "
          "thread may destroy it safely");
    } catch (...) {
    }
  }
}

void PeriodicCallback::set_plain(absl::AnyInvocable<void()> fn) { state_->plain = std::move(fn); }

void PeriodicCallback::set_async(absl::AnyInvocable<Future<void>()> fn) {
  state_->async = std::move(fn);
}

void PeriodicCallback::start() {
  State& s = *state_;
  if (s.running && s.loop.get() != nullptr) return;
  IOLoop& loop = IOLoop::current();
  s.loop = internal::LoopRef(&loop);
  s.home.bind(&loop);
  s.running = true;
  ++s.epoch;
  s.next = loop.time();
  schedule_next(state_);
}

void PeriodicCallback::stop() {
  State& s = *state_;
  if (!s.running) return;
#if EDDY_THREAD_CHECKS
  if (IOLoop* loop = s.loop.get(); loop != nullptr && !loop->in_scheduler_thread()) {
    throw InvalidStateError(
        "PeriodicCallback::stop: called from a thread that does not own the loop it runs on "
        "(post the stop there with IOLoop::add_callback)");
  }
#endif
  stop_state(s);
}

void PeriodicCallback::stop_state(State& s) {
  if (!s.running) return;
  s.running = false;
  ++s.epoch;
  if (IOLoop* loop = s.loop.get()) loop->remove_timeout(s.timer);
  s.timer = TimeoutHandle();
}

bool PeriodicCallback::is_running() const {
  return state_->running && state_->loop.get() != nullptr;
}

absl::Duration PeriodicCallback::interval() const { return state_->interval; }

}  // namespace eddy
