// A loop that is awake and finds its next timer due within a few
// microseconds polls for it instead of sleeping toward it: a sleep ends
// only when the kernel wakes the thread, 5-15 us after the deadline on a
// VM, so a timer due that soon would fire late by more than the wait.
// Timers further off are slept toward as before.
//
// The test watches the loop's polls: this binary defines epoll_pwait2()
// and epoll_wait(), which take precedence over the C library's for every
// caller in the process, record the longest timeout asked for, and make
// the system call. The loop runs on a clock that advances by itself by a
// fixed step each time it is read, so what the loop computes does not
// depend on how fast this machine runs the test.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/time.h"
#include "gtest/gtest.h"

namespace {

// The longest timeout (ns) a poll asked for since the last reset; -1 is
// "forever".
std::atomic<int64_t> g_longest_wait_ns{0};

void record_wait(int64_t ns) {
  if (ns < 0) {
    g_longest_wait_ns.store(-1);
    return;
  }
  int64_t seen = g_longest_wait_ns.load();
  while (seen >= 0 && ns > seen && !g_longest_wait_ns.compare_exchange_weak(seen, ns)) {
  }
}

}  // namespace

extern "C" int epoll_pwait2(int epfd, struct epoll_event* events, int maxevents,
                            const struct timespec* timeout, const sigset_t* sigmask) {
  record_wait(timeout == nullptr ? -1 : timeout->tv_sec * 1'000'000'000LL + timeout->tv_nsec);
  return static_cast<int>(
      ::syscall(SYS_epoll_pwait2, epfd, events, maxevents, timeout, sigmask, _NSIG / 8));
}

extern "C" int epoll_wait(int epfd, struct epoll_event* events, int maxevents, int timeout) {
  record_wait(timeout < 0 ? -1 : timeout * 1'000'000LL);
  return static_cast<int>(::syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, nullptr,
                                    _NSIG / 8));
}

namespace eddy {
namespace {

// Advances by `step` every time it is read, starting at 1 s.
class TickingClock final : public Clock {
 public:
  explicit TickingClock(absl::Duration step) : step_ns_(absl::ToInt64Nanoseconds(step)) {}
  MonotonicTime now() const override {
    return MonotonicTime::from_nanoseconds(1'000'000'000 +
                                           reads_.fetch_add(1, std::memory_order_relaxed) * step_ns_);
  }

 private:
  const int64_t step_ns_;
  mutable std::atomic<int64_t> reads_{0};
};

std::unique_ptr<IOLoop> make_loop(absl::Duration step) {
  IOLoop::Options options;
  options.clock = std::make_shared<TickingClock>(step);
  return std::make_unique<IOLoop>(options);
}

TEST(TimerSpin, ATimerDueWithinMicrosecondsIsPolledForNotSleptToward) {
  std::unique_ptr<IOLoop> owned = make_loop(absl::Microseconds(1));
  IOLoop& loop = *owned;
  bool fired = false;
  loop.add_callback([&] {
    loop.call_later(absl::Microseconds(15), [&] {
      fired = true;
      loop.stop();
    });
  });
  g_longest_wait_ns.store(0);
  loop.start();
  EXPECT_TRUE(fired);
  // Before: the loop slept toward the timer (a timeout of ~14 us).
  EXPECT_EQ(g_longest_wait_ns.load(), 0) << "the loop slept toward a timer 15 us away";
}

TEST(TimerSpin, ATimerFurtherOffIsSleptToward) {
  // 100 us per reading: the 2 ms timer comes within ~20 readings, each
  // after a real sleep of at most 2 ms.
  std::unique_ptr<IOLoop> owned = make_loop(absl::Microseconds(100));
  IOLoop& loop = *owned;
  bool fired = false;
  loop.add_callback([&] {
    loop.call_later(absl::Milliseconds(2), [&] {
      fired = true;
      loop.stop();
    });
  });
  g_longest_wait_ns.store(0);
  loop.start();
  EXPECT_TRUE(fired);
  EXPECT_GT(g_longest_wait_ns.load(), absl::ToInt64Nanoseconds(absl::Microseconds(100)));
}

}  // namespace
}  // namespace eddy
