// The one place eddy reports problems it cannot raise to a caller: an
// exception nobody retrieved from a future, a callback that threw, a slow
// loop callback. By default a line goes to stderr; tests and applications
// replace the handler to route it into their own logging.
//
//   auto previous = eddy::set_log_handler([](const eddy::LogRecord& r) {
//     my_logger.warn("{}", r.message);
//   });
//
// Threading: log() and set_log_handler() are safe from any thread. The
// handler runs on the thread that logs, possibly several at once, and must
// not call set_log_handler() itself.
//
// Errors: log() never throws. It is called from destructors, noexcept
// paths and the loop's error handling, so a handler that throws would
// otherwise end the process or unwind the loop; instead the record goes to
// stderr as the default handler writes it, followed by a line saying what
// the handler threw.
#ifndef EDDY_FUTURES_LOG_H_
#define EDDY_FUTURES_LOG_H_

#include <exception>
#include <functional>
#include "eddy/futures/source_location.h"
#include <string>
#include <string_view>

namespace eddy {

enum class LogLevel { kWarning, kError };

struct LogRecord {
  LogLevel level;
  std::string_view message;
  // Where the logged object came from (for an unretrieved exception: where
  // the future was created); may be empty (line 0) when unknown.
  SourceLocation where;
};

using LogHandler = std::function<void(const LogRecord&)>;

// Installs `handler` and returns the previous one. An empty handler restores
// the default (one line on stderr).
LogHandler set_log_handler(LogHandler handler);

// Sends a record to the current handler. If the handler throws, the
// exception is swallowed and the record is written to stderr instead (see
// Errors above).
void log(LogLevel level, std::string_view message,
         SourceLocation where = SourceLocation()) noexcept;

// "TypeName: what()" for a stored exception (the dynamic type, demangled),
// for log lines and test failure messages. "no exception" for nullptr.
std::string describe_exception(const std::exception_ptr& e);

// "file:line (function)", or "unknown location" when `where` is empty.
std::string describe_location(const SourceLocation& where);

}  // namespace eddy

#endif  // EDDY_FUTURES_LOG_H_
