#include "eddy/loop/with_timeout.h"

namespace eddy::internal {

void log_failure_after_timeout(const std::exception_ptr& e) {
  log(LogLevel::kError, "Exception in a future after with_timeout gave up on it: " +
                            describe_exception(e));
}

std::exception_ptr make_timeout_error(absl::Duration timeout) {
  return std::make_exception_ptr(
      TimeoutError("with_timeout: timed out after " + absl::FormatDuration(timeout)));
}

}  // namespace eddy::internal
