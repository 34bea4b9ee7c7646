// MonotonicTime, the loop's notion of "now", and Clock, where it comes from.
//
// MonotonicTime is a point on a monotonic clock: nanoseconds since the
// clock's epoch, as a 64-bit integer, so comparing two of them (which the
// timer heap does a lot) is one instruction. Arithmetic takes and yields
// absl::Duration and saturates instead of overflowing: a deadline of
// "now + absl::InfiniteDuration()" is MonotonicTime::infinite_future().
//
//   eddy::MonotonicTime start = loop.time();
//   loop.call_at(start + absl::Milliseconds(250), [] { ... });
//   absl::Duration spent = loop.time() - start;
//
// The epoch is the clock's own (for SteadyClock, std::chrono::steady_clock's,
// typically boot time): times from different clocks are not comparable.
//
// Clock is what an IOLoop reads time from (IOLoop::Options::clock).
// SteadyClock is the default; ManualClock (manual_clock.h) is a clock that
// only moves when a test tells it to.
//
// Threading: MonotonicTime is a plain value. Clock::now() is safe from any
// thread for every clock eddy provides.
#ifndef EDDY_LOOP_TIME_H_
#define EDDY_LOOP_TIME_H_

#include <chrono>
#include <compare>
#include <cstdint>
#include <limits>
#include <memory>
#include <ratio>
#include <string>
#include <type_traits>

#include "absl/time/time.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

class MonotonicTime {
 public:
  // The clock's epoch.
  constexpr MonotonicTime() = default;

  // The point `since_epoch` after the epoch (saturating; infinite durations
  // give infinite_past() / infinite_future()).
  static MonotonicTime from_epoch(absl::Duration since_epoch) {
    return MonotonicTime(absl::ToInt64Nanoseconds(since_epoch));
  }
  static constexpr MonotonicTime from_nanoseconds(int64_t ns) { return MonotonicTime(ns); }
  // A std::chrono::steady_clock reading.
  static MonotonicTime from_steady(std::chrono::steady_clock::time_point t) {
    return MonotonicTime(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  }
  static constexpr MonotonicTime infinite_future() {
    return MonotonicTime(std::numeric_limits<int64_t>::max());
  }
  static constexpr MonotonicTime infinite_past() {
    return MonotonicTime(std::numeric_limits<int64_t>::min());
  }

  constexpr int64_t nanoseconds() const { return ns_; }
  absl::Duration since_epoch() const { return absl::Nanoseconds(ns_); }
  constexpr bool is_infinite_future() const { return ns_ == std::numeric_limits<int64_t>::max(); }

  friend MonotonicTime operator+(MonotonicTime t, absl::Duration d) {
    if (d == absl::InfiniteDuration()) return infinite_future();
    if (d == -absl::InfiniteDuration()) return infinite_past();
    return MonotonicTime(saturating_add(t.ns_, absl::ToInt64Nanoseconds(d)));
  }
  friend MonotonicTime operator+(absl::Duration d, MonotonicTime t) { return t + d; }
  friend MonotonicTime operator-(MonotonicTime t, absl::Duration d) { return t + (-d); }
  MonotonicTime& operator+=(absl::Duration d) { return *this = *this + d; }
  MonotonicTime& operator-=(absl::Duration d) { return *this = *this - d; }
  // The span from b to a (negative when a is earlier); exact.
  friend absl::Duration operator-(MonotonicTime a, MonotonicTime b) {
    return absl::Nanoseconds(a.ns_) - absl::Nanoseconds(b.ns_);
  }
  friend constexpr auto operator<=>(MonotonicTime, MonotonicTime) = default;

  // "12.345678901s after epoch", for messages.
  std::string to_string() const { return absl::FormatDuration(since_epoch()) + " after epoch"; }

 private:
  constexpr explicit MonotonicTime(int64_t ns) : ns_(ns) {}

  static constexpr int64_t saturating_add(int64_t a, int64_t b) {
    int64_t out = 0;
    if (__builtin_add_overflow(a, b, &out)) {
      return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    }
    return out;
  }

  int64_t ns_ = 0;
};

// Where an IOLoop's time comes from. Implementations must make now()
// thread-safe and never go backwards.
class Clock {
 public:
  virtual ~Clock() = default;

  // The current time on this clock.
  virtual MonotonicTime now() const = 0;

  // False for a clock whose time moves only when somebody moves it
  // (ManualClock). A loop on such a clock never sleeps toward a timer
  // deadline: with nothing else to do it blocks only on its file
  // descriptors and on posts from other threads, or, if
  // advance_when_idle() says so, jumps the clock to the next deadline.
  virtual bool advances_by_itself() const { return true; }

  // Called by a loop using this clock, at construction, with the loop's
  // thread-safe door. A clock that moves by command wakes the loops it
  // knows through it after moving; others ignore it.
  virtual void attach(std::weak_ptr<RemoteScheduler> loop) { (void)loop; }

  // Called by an idle loop (nothing to run, nothing ready, no work awaited
  // from another thread: Scheduler::awaiting_other_threads()) whose next
  // timer is due at `deadline`, on a clock that does not advance by itself.
  // Returns true if the clock moved (to `deadline`), false to let the loop
  // block. Called on the loop's thread.
  virtual bool advance_when_idle(MonotonicTime deadline) {
    (void)deadline;
    return false;
  }

  // True when now() is CLOCK_MONOTONIC's time (std::chrono::steady_clock's),
  // as SteadyClock's is: the loop then sleeps toward its timers on a
  // timerfd, to the nanosecond, rather than on epoll's millisecond timeout.
  virtual bool reads_clock_monotonic() const { return false; }
};

// A std::chrono duration as the absl::Duration eddy's calls take (exact for
// integer counts of nanoseconds or coarser units; a count beyond
// absl::Duration's range saturates to +/-absl::InfiniteDuration(), as
// absl::FromChrono does). sleep(), call_later() and with_timeout() accept
// std::chrono durations directly through it; elsewhere, wrap them:
// `f.result(eddy::to_duration(2s))`.
template <class Rep, class Period>
absl::Duration to_duration(std::chrono::duration<Rep, Period> d) {
  using Seconds = std::chrono::duration<int64_t>;
  if constexpr (std::is_floating_point_v<Rep>) {
    return absl::Seconds(std::chrono::duration<double>(d).count());  // saturates
  } else if constexpr (std::ratio_greater_equal_v<Period, std::ratio<1>>) {
    // Seconds or coarser: exact within absl::Duration's range (int64 seconds).
    using Wide = std::chrono::duration<int64_t, Period>;
    const Wide w(static_cast<int64_t>(d.count()));
    constexpr Wide kMax = std::chrono::duration_cast<Wide>(Seconds::max());
    constexpr Wide kMin = std::chrono::duration_cast<Wide>(Seconds::min());
    if (w > kMax) return absl::InfiniteDuration();
    if (w < kMin) return -absl::InfiniteDuration();
    return absl::Seconds(std::chrono::duration_cast<Seconds>(w).count());
  } else {
    // Finer than a second: whole seconds, then the rest (exact to the
    // nanosecond; a finer unit is rounded toward zero).
    using Wide = std::chrono::duration<int64_t, Period>;
    const Wide w(static_cast<int64_t>(d.count()));
    const Seconds whole = std::chrono::duration_cast<Seconds>(w);
    return absl::Seconds(whole.count()) +
           absl::Nanoseconds(std::chrono::duration_cast<std::chrono::nanoseconds>(w - whole).count());
  }
}

namespace internal {
template <class T>
inline constexpr bool kIsChronoDuration = false;
template <class Rep, class Period>
inline constexpr bool kIsChronoDuration<std::chrono::duration<Rep, Period>> = true;
template <class T>
concept ChronoDuration = kIsChronoDuration<std::remove_cvref_t<T>>;
}  // namespace internal

// std::chrono::steady_clock (CLOCK_MONOTONIC). The default clock.
class SteadyClock final : public Clock {
 public:
  MonotonicTime now() const override {
    return MonotonicTime::from_steady(std::chrono::steady_clock::now());
  }
  bool reads_clock_monotonic() const override { return true; }
  // The process-wide instance loops share.
  static std::shared_ptr<Clock> shared();
};

}  // namespace eddy

#endif  // EDDY_LOOP_TIME_H_
