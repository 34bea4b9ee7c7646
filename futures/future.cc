#include "eddy/futures/future.h"

#include <string>

namespace eddy::internal {

void throw_wrong_thread(const char* op) {
  throw InvalidStateError(std::string("Future::") + op +
                          ": called from a thread that does not own the future "
                          "(a Future belongs to its loop's thread; hand results across "
                          "threads with ConcurrentFuture and IOLoop::add_future)");
}

void throw_no_state(const char* op) {
  throw InvalidStateError(std::string("Future::") + op +
                          ": the handle is empty (moved from)");
}

void throw_invalid(const char* op, const char* why) {
  throw InvalidStateError(std::string("Future::") + op + ": " + why);
}

void log_unretrieved(const std::exception_ptr& e, const SourceLocation& created) {
  log(LogLevel::kError,
      "Future exception was never retrieved: " + describe_exception(e) +
          " (future created at " + describe_location(created) + ")",
      created);
}

void log_callback_failure(const std::exception_ptr& e, const SourceLocation& created) {
  log(LogLevel::kError,
      "Exception in a future's done callback: " + describe_exception(e) +
          " (future created at " + describe_location(created) + ")",
      created);
}

}  // namespace eddy::internal

#include "eddy/futures/concurrent_future.h"

namespace eddy::internal {

void throw_concurrent_invalid(const char* op, const char* why) {
  throw InvalidStateError(std::string("ConcurrentFuture::") + op + ": " + why);
}

void throw_concurrent_deadlock(const char* op) {
  throw InvalidStateError(std::string("ConcurrentFuture::") + op +
                          ": would deadlock: this future is completed by the loop current on "
                          "this thread, which is blocked waiting for it (use "
                          "IOLoop::add_future, co_await, or a timeout)");
}

void throw_concurrent_timeout(const char* op, absl::Duration timeout) {
  throw TimeoutError(std::string("ConcurrentFuture::") + op + ": not done within " +
                     absl::FormatDuration(timeout));
}

}  // namespace eddy::internal
