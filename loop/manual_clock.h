// ManualClock: a clock whose time moves only when a test moves it, so timer,
// sleep, with_timeout and PeriodicCallback logic is tested without real
// waiting and without timing flakiness.
//
//   auto clock = std::make_shared<eddy::ManualClock>();
//   eddy::IOLoop loop(eddy::IOLoop::Options{.clock = clock});
//   loop.make_current();
//   bool fired = false;
//   loop.call_later(absl::Seconds(10), [&] { fired = true; });
//   clock->advance(absl::Seconds(10));         // due now; fires on the next iteration
//   loop.run_sync([] { return eddy::make_ready_future(); });
//   assert(fired);
//
// A loop on a ManualClock never sleeps toward a timer deadline: with
// nothing runnable it blocks only on its fds and on posts from other
// threads. advance() wakes every loop attached to the clock, so a test may
// also move time from another thread while the loop blocks.
//
// With auto-advance on (ManualClock::Options::auto_advance, or
// set_auto_advance()), a loop that has nothing to run and nothing ready
// jumps the clock straight to its next timer instead of blocking, as
// Trio's autojump clock and tokio's paused time do: `run_sync` over a
// coroutine that sleeps an hour returns at once, with time() an hour later.
// Beware that it also skips time while the loop waits for real I/O.
//
// Threading: every method is safe from any thread.
#ifndef EDDY_LOOP_MANUAL_CLOCK_H_
#define EDDY_LOOP_MANUAL_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/scheduler.h"
#include "eddy/loop/time.h"

namespace eddy {

class ManualClock final : public Clock {
 public:
  struct Options {
    // The initial reading.
    MonotonicTime start;
    // Jump to the next timer when a loop on this clock is idle.
    bool auto_advance = false;
  };

  // A clock reading the epoch (MonotonicTime()), without auto-advance.
  ManualClock() : ManualClock(Options()) {}
  explicit ManualClock(Options options);

  MonotonicTime now() const override {
    return MonotonicTime::from_nanoseconds(now_ns_.load(std::memory_order_acquire));
  }

  // Moves time forward by `d` and wakes the attached loops; timers that are
  // now due fire on their loop's next iteration.
  // Throws std::invalid_argument if `d` is negative (time is monotonic).
  void advance(absl::Duration d);

  // Moves time forward to `t` (a no-op if `t` is not later than now()) and
  // wakes the attached loops.
  void advance_to(MonotonicTime t);

  void set_auto_advance(bool on) { auto_advance_.store(on, std::memory_order_relaxed); }
  bool auto_advance() const { return auto_advance_.load(std::memory_order_relaxed); }

  // Clock.
  bool advances_by_itself() const override { return false; }
  void attach(std::weak_ptr<RemoteScheduler> loop) override;
  bool advance_when_idle(MonotonicTime deadline) override;

 private:
  // Moves now_ns_ up to `ns` if it is later; returns true if it moved.
  bool move_to(int64_t ns);
  void wake_loops();

  std::atomic<int64_t> now_ns_;
  std::atomic<bool> auto_advance_;
  std::mutex mu_;
  std::vector<std::weak_ptr<RemoteScheduler>> loops_;  // guarded by mu_
};

}  // namespace eddy

#endif  // EDDY_LOOP_MANUAL_CLOCK_H_
