#include "eddy/futures/log.h"

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace eddy {
namespace {

std::mutex& handler_mu() {
  static std::mutex mu;
  return mu;
}

// Guarded by handler_mu(). Held by shared_ptr so log() can call it unlocked:
// a handler may be slow, and several threads may log at once.
std::shared_ptr<LogHandler>& handler_slot() {
  static std::shared_ptr<LogHandler> slot;
  return slot;
}

void default_handler(const LogRecord& r) {
  std::string line = r.level == LogLevel::kError ? "[eddy ERROR] " : "[eddy WARNING] ";
  line.append(r.message);
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

}  // namespace

LogHandler set_log_handler(LogHandler handler) {
  std::shared_ptr<LogHandler> next;
  if (handler) next = std::make_shared<LogHandler>(std::move(handler));
  std::lock_guard<std::mutex> lock(handler_mu());
  std::shared_ptr<LogHandler> previous = std::exchange(handler_slot(), std::move(next));
  return previous ? *previous : LogHandler();
}

void log(LogLevel level, std::string_view message, SourceLocation where) {
  std::shared_ptr<LogHandler> handler;
  {
    std::lock_guard<std::mutex> lock(handler_mu());
    handler = handler_slot();
  }
  LogRecord record{level, message, where};
  if (handler) {
    (*handler)(record);
  } else {
    default_handler(record);
  }
}

std::string describe_exception(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return demangle(typeid(ex).name()) + ": " + ex.what();
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return type ? demangle(type->name()) + " (not a std::exception)"
                : std::string("unknown exception");
  }
}

std::string describe_location(const SourceLocation& where) {
  if (where.line() == 0) return "unknown location";
  std::string out = where.file_name();
  out += ":" + std::to_string(where.line());
  if (where.function_name() && *where.function_name()) {
    out += " (";
    out += where.function_name();
    out += ")";
  }
  return out;
}

}  // namespace eddy
