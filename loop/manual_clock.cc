#include "eddy/loop/manual_clock.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace eddy {

ManualClock::ManualClock(Options options)
    : now_ns_(options.start.nanoseconds()), auto_advance_(options.auto_advance) {}

void ManualClock::advance(absl::Duration d) {
  if (d < absl::ZeroDuration()) {
    throw std::invalid_argument("ManualClock::advance: negative duration " +
                                absl::FormatDuration(d) + " (time only moves forward)");
  }
  int64_t current = now_ns_.load(std::memory_order_acquire);
  // A CAS loop, so two threads advancing at once both count.
  while (!now_ns_.compare_exchange_weak(current, (MonotonicTime::from_nanoseconds(current) + d)
                                                     .nanoseconds(),
                                        std::memory_order_acq_rel)) {
  }
  wake_loops();
}

void ManualClock::advance_to(MonotonicTime t) {
  if (move_to(t.nanoseconds())) wake_loops();
}

bool ManualClock::move_to(int64_t ns) {
  int64_t current = now_ns_.load(std::memory_order_acquire);
  while (current < ns) {
    if (now_ns_.compare_exchange_weak(current, ns, std::memory_order_acq_rel)) return true;
  }
  return false;
}

void ManualClock::attach(std::weak_ptr<RemoteScheduler> loop) {
  std::lock_guard<std::mutex> lock(mu_);
  // Forget loops that are gone, so a clock shared by many short-lived
  // loops does not grow.
  loops_.erase(std::remove_if(loops_.begin(), loops_.end(),
                              [](const std::weak_ptr<RemoteScheduler>& w) { return w.expired(); }),
               loops_.end());
  loops_.push_back(std::move(loop));
}

bool ManualClock::advance_when_idle(MonotonicTime deadline) {
  // A deadline at infinity never comes (Trio's autojump clock jumps only to
  // finite ones): jumping there would leave every later timer due at once.
  if (!auto_advance() || deadline == MonotonicTime::infinite_future()) return false;
  // Other loops on this clock see the jump as if a test had advanced it.
  if (move_to(deadline.nanoseconds())) wake_loops();
  return true;
}

void ManualClock::wake_loops() {
  std::vector<std::shared_ptr<RemoteScheduler>> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& w : loops_) {
      if (auto s = w.lock()) targets.push_back(std::move(s));
    }
  }
  // Posted outside mu_: posting may run a closed loop's destructor chain.
  // An empty callback is enough: a woken loop looks at its timers again.
  for (auto& s : targets) s->post([] {});
}

}  // namespace eddy
