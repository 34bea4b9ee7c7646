#include "eddy/loop/with_timeout.h"

#include <algorithm>
#include <cstdint>
#include <string>

namespace eddy::internal {
namespace {

// `d` (not negative) to three significant digits: a deadline read
// against the clock a moment before the call is some microseconds short
// of a round figure (99.999389ms), and the message is for people.
absl::Duration round_for_message(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return d;
  int64_t unit_ns = 1;
  // d / unit counts whole units (integer division of durations).
  while (d / absl::Nanoseconds(unit_ns) >= 1000) unit_ns *= 10;
  const absl::Duration unit = absl::Nanoseconds(unit_ns);
  return absl::Floor(d + unit / 2, unit);
}

// absl::FormatDuration, but "0s" rather than a bare "0".
std::string format(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

}  // namespace

void log_failure_after_timeout(const std::exception_ptr& e) {
  log(LogLevel::kError, "Exception in a future after with_timeout gave up on it: " +
                            describe_exception(e));
}

std::exception_ptr make_timeout_error(const TimeoutGiven& given) {
  std::string message;
  if (!given.as_deadline) {
    // The timeout as given (a negative one expired at once: 0s).
    message = "with_timeout: timed out after " +
              format(std::max(given.after, absl::ZeroDuration()));
  } else if (given.after < absl::ZeroDuration()) {
    message = "with_timeout: timed out at its deadline, already past at the call";
  } else {
    message = "with_timeout: timed out at its deadline, " +
              format(round_for_message(given.after)) + " after the call";
  }
  return std::make_exception_ptr(TimeoutError(message));
}

}  // namespace eddy::internal
