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

// Both never destroyed: a pool with static storage duration logs (a
// failure never retrieved) from its destructor, after main() returned and
// possibly after statics made later than it were destroyed.
std::mutex& handler_mu() {
  static std::mutex* const mu = new std::mutex;
  return *mu;
}

// Guarded by handler_mu(). Held by shared_ptr so log() can call it unlocked:
// a handler may be slow, and several threads may log at once.
std::shared_ptr<LogHandler>& handler_slot() {
  static auto* const slot = new std::shared_ptr<LogHandler>;
  return *slot;
}

const char* prefix(LogLevel level) {
  return level == LogLevel::kError ? "[eddy ERROR] " : "[eddy WARNING] ";
}

// One line on stderr, in one write where memory allows (lines from
// several threads then do not interleave), in pieces where it does not.
void default_handler(const LogRecord& r) noexcept {
  try {
    std::string line = prefix(r.level);
    line.append(r.message);
    line += "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (...) {
    std::fputs(prefix(r.level), stderr);
    std::fwrite(r.message.data(), 1, r.message.size(), stderr);
    std::fputc('\n', stderr);
  }
}

// The handler threw `e` while handling `r`: `r` goes to stderr after all,
// with a note, so that neither is lost.
[[gnu::noinline, gnu::cold]] void handler_failed(const LogRecord& r,
                                                 const std::exception_ptr& e) noexcept {
  default_handler(r);
  std::string note;
  try {
    note = "the log handler threw (" + describe_exception(e) +
           "); the record above was written to stderr instead";
  } catch (...) {
    note.clear();
  }
  if (note.empty()) {
    default_handler(LogRecord{LogLevel::kError, "the log handler threw", SourceLocation()});
  } else {
    default_handler(LogRecord{LogLevel::kError, note, SourceLocation()});
  }
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

void log(LogLevel level, std::string_view message, SourceLocation where) noexcept {
  std::shared_ptr<LogHandler> handler;
  {
    std::lock_guard<std::mutex> lock(handler_mu());
    handler = handler_slot();
  }
  LogRecord record{level, message, where};
  if (!handler) {
    default_handler(record);
    return;
  }
  try {
    (*handler)(record);
  } catch (...) {
    handler_failed(record, std::current_exception());
  }
}

std::string describe_exception(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    // The thrown object's type, from the C++ runtime rather than typeid,
    // so that this also builds with -fno-rtti.
    const std::type_info* type = abi::__cxa_current_exception_type();
    return (type ? demangle(type->name()) : std::string("std::exception")) + ": " + ex.what();
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
