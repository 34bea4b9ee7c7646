#include "eddy/loop/internal/watchdog.h"

#include <algorithm>
#include <utility>

#include "eddy/futures/log.h"

namespace eddy::internal {
namespace {

std::string format(std::chrono::nanoseconds d) {
  return absl::FormatDuration(absl::FromChrono(d));
}

// Kept within [1 ms, 1 year]: the watchdog thread wakes every half
// threshold, and std::chrono's timed waits overflow on huge durations.
std::chrono::nanoseconds clamp_threshold(absl::Duration d) {
  return absl::ToChronoNanoseconds(
      std::clamp(d, absl::Milliseconds(1), absl::Hours(24 * 365)));
}

}  // namespace

std::string describe_activity(const Activity& a) {
  std::string out;
  switch (a.kind) {
    case Activity::Kind::kCallback:
      out = "callback";
      break;
    case Activity::Kind::kRemoteCallback:
      out = "callback from another thread";
      break;
    case Activity::Kind::kFutureCallback:
      out = "future callback";
      break;
    case Activity::Kind::kTimer:
      out = "timer";
      break;
    case Activity::Kind::kFdHandler:
      out = "fd handler for fd " + std::to_string(a.fd);
      break;
    case Activity::Kind::kCoroutine:
      out = "coroutine";
      break;
  }
  if (a.where.line() != 0) {
    out += a.kind == Activity::Kind::kTimer       ? " scheduled at "
           : a.kind == Activity::Kind::kFdHandler ? " added at "
           : a.kind == Activity::Kind::kCoroutine ? " at "
                                                  : " posted at ";
    out += describe_location(a.where);
  }
  return out;
}

Watchdog::Watchdog(absl::Duration threshold)
    : threshold_(clamp_threshold(threshold)), thread_([this] { run(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::set_threshold(absl::Duration threshold) {
  std::lock_guard<std::mutex> lock(mu_);
  threshold_ = clamp_threshold(threshold);
}

void Watchdog::begin(const Activity& a) {
  SteadyTime now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  ++seq_;
  active_ = true;
  current_ = a;
  started_ = now;
}

void Watchdog::update(ActivityKind kind, const SourceLocation& where) {
  std::lock_guard<std::mutex> lock(mu_);
  current_.kind = kind;
  current_.where = where;
}

Activity Watchdog::enter(ActivityKind kind, const SourceLocation& where) {
  SteadyTime now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  Activity was = current_;
  current_.kind = kind;
  current_.where = where;
  entered_ = now;
  return was;
}

void Watchdog::leave(const Activity& was) {
  SteadyTime now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (!active_) return;
  const SteadyTime passed = started_ + threshold_;
  if (passed >= entered_ && passed <= now) return;  // the part blocked: it keeps the name
  current_.kind = was.kind;
  current_.where = was.where;
}

void Watchdog::end() {
  SteadyTime now = std::chrono::steady_clock::now();
  std::chrono::nanoseconds took;
  std::chrono::nanoseconds threshold;
  Activity what;
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = false;
    took = now - started_;
    threshold = threshold_;
    if (took < threshold) return;
    what = current_;
  }
  // Logged unlocked: a log handler may be slow.
  log(LogLevel::kWarning,
      "Blocking: " + describe_activity(what) + " ran for " + format(took) +
          " in total (blocking log threshold " + format(threshold) + ")",
      what.where);
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (!active_ || reported_seq_ == seq_) {
      // Nothing running, or already reported: look again in half a
      // threshold. No wake-up from the loop is needed to notice the next
      // activity, and reports still come within 1.5x the threshold.
      cv_.wait_for(lock, threshold_ / 2);
      continue;
    }
    const uint64_t seq = seq_;
    const SteadyTime deadline = started_ + threshold_;
    if (std::chrono::steady_clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
      continue;  // re-examine: it may have finished, or a new one begun
    }
    reported_seq_ = seq;
    Activity what = current_;
    std::chrono::nanoseconds age = std::chrono::steady_clock::now() - started_;
    std::chrono::nanoseconds threshold = threshold_;
    lock.unlock();
    log(LogLevel::kWarning,
        "Blocking: " + describe_activity(what) + " has been running for " + format(age) +
            " and is still running (blocking log threshold " + format(threshold) + ")",
        what.where);
    lock.lock();
  }
}

}  // namespace eddy::internal
