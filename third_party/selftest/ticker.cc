#include "eddy/selftest/ticker.h"

#include <algorithm>
#include <utility>

namespace eddy::selftest {

std::uint64_t Ticker::CallLater(absl::Duration delay,
                                absl::AnyInvocable<void() &&> fn) {
  std::lock_guard lock(mu_);
  const std::uint64_t handle = next_handle_++;
  entries_.emplace(handle, Entry{delay, std::move(fn)});
  return handle;
}

bool Ticker::Cancel(std::uint64_t handle) {
  std::lock_guard lock(mu_);
  return entries_.erase(handle) == 1;
}

int Ticker::RunDue(absl::Duration now) {
  std::vector<std::pair<absl::Duration, absl::AnyInvocable<void() &&>>> due;
  {
    std::lock_guard lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.deadline <= now) {
        due.emplace_back(it->second.deadline, std::move(it->second.fn));
        entries_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  std::ranges::stable_sort(due, {}, [](const auto& d) { return d.first; });
  // Callbacks run outside the lock so they may schedule more work.
  for (auto& [deadline, fn] : due) std::move(fn)();
  return static_cast<int>(due.size());
}

}  // namespace eddy::selftest
