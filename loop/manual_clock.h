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
//
// It does not jump while it awaits work running on another thread that
// will report back to it (as tokio's paused time does not while a
// spawn_blocking task runs): an offload (run_in_executor, run_on_executor,
// submit_from_loop's admission) or a ConcurrentFuture bridged onto the loop
// (add_future, co_await, chain_future, with_timeout, run_sync) that is not
// done yet. The loop then blocks until that work posts its outcome, as a
// loop on a real clock would, and the clock stands still meanwhile:
// with_timeout(2s) around a pool call of 50 ms succeeds, with time()
// unchanged. Timers already due still fire; the jump to a later one waits
// until nothing is pending. A ConcurrentFuture the loop completes itself
// (IOLoop::run_in_loop on the same loop) is not waited for.
//
// What the loop cannot know about, it does not wait for: the clock may
// jump while such work runs.
//   - A thread the test started, or a ConcurrentFuture it polls (done(),
//     result with a timeout) instead of bridging, that will post
//     (add_callback) or complete something later.
//   - A callback adapter's `done` (from_callback): legacy code calls it
//     from this loop's own timers as often as from a thread.
//   - I/O: the clock also skips time while the loop waits on its fds.
//   - Other loops on a shared clock: each loop holds back only its own
//     jumps; another loop, idle, still moves the clock.
// And what it waits for must come: a bridged ConcurrentFuture that nobody
// completes, one that only a timer of this loop would complete (made by
// hand rather than by run_in_loop; a Future fits that better), or pool
// work that itself waits for one of this loop's timers holds the clock
// (and the loop) still for good. To time such work out, move the clock
// yourself (advance() from another thread, or auto-advance off).
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
    MonotonicTime start = MonotonicTime();
    // Jump to the next timer when a loop on this clock is idle and awaits
    // no work from other threads (see the file comment).
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
