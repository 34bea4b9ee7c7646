#include "eddy/futures/internal/combinators.h"

#include <string>

#include "eddy/futures/log.h"

namespace eddy::internal {

void log_extra_failure(const std::exception_ptr& e, const SourceLocation& where) {
  log(LogLevel::kError,
      "Multiple exceptions in yield list: " + describe_exception(e) + " (multi at " +
          describe_location(where) + ")",
      where);
}

}  // namespace eddy::internal
