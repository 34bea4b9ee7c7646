// eddy's public error types.
//
// Failures travel between futures as std::exception_ptr, as in Tornado,
// asyncio and folly: result() rethrows the stored exception. These are the
// errors eddy itself raises; all derive from std::exception (most through a
// standard category so existing catch clauses keep working).
//
//   try {
//     int v = future.result();
//   } catch (const eddy::CancelledError&) {
//     ...  // somebody called cancel()
//   } catch (const eddy::TimeoutError&) {
//     ...  // with_timeout or run_sync gave up
//   }
//
// Threading: plain value types, safe anywhere.
#ifndef EDDY_FUTURES_ERRORS_H_
#define EDDY_FUTURES_ERRORS_H_

#if __cplusplus < 202002L
#error "eddy needs C++20: with Bazel, add build --cxxopt=-std=c++20 --host_cxxopt=-std=c++20 to your .bazelrc"
#endif

#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

namespace eddy {

// The future was cancelled; thrown by result() and at the co_await a
// cancelled coroutine was suspended on.
class CancelledError : public std::runtime_error {
 public:
  CancelledError() : std::runtime_error("the future was cancelled") {}
  explicit CancelledError(const std::string& what) : std::runtime_error(what) {}
};

// An operation did not finish in the time it was given (with_timeout,
// run_sync, ConcurrentFuture::result(timeout), waits on locks and queues).
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("timed out") {}
  explicit TimeoutError(const std::string& what) : std::runtime_error(what) {}
};

// Misuse of an object in its current state: result() on a pending future,
// a second set_result(), a Future touched from a thread that does not own it.
// The message names the problem.
class InvalidStateError : public std::logic_error {
 public:
  explicit InvalidStateError(const std::string& what) : std::logic_error(what) {}
};

// submit() on an executor after shutdown().
class ExecutorShutdownError : public std::runtime_error {
 public:
  ExecutorShutdownError()
      : std::runtime_error("cannot submit: the executor has been shut down") {}
  explicit ExecutorShutdownError(const std::string& what) : std::runtime_error(what) {}
};

// A pool that can no longer run work: its initializer threw. Pending and
// later submissions fail with this (Python's BrokenThreadPool).
class BrokenExecutorError : public std::runtime_error {
 public:
  explicit BrokenExecutorError(const std::string& what) : std::runtime_error(what) {}
};

namespace internal {

// True when `e` holds an E (or a type derived from it); false for null.
template <class E>
bool holds_exception(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

inline bool is_cancelled_error(const std::exception_ptr& e) {
  return holds_exception<CancelledError>(e);
}

}  // namespace internal

// Names the exception types whose *extra* failures multi() and with_timeout()
// do not log (Tornado's quiet_exceptions):
//
//   eddy::multi(children, eddy::QuietExceptions::of<std::ios_base::failure>());
//
// A type matches when the stored exception is of that type or derives from it.
class QuietExceptions {
 public:
  QuietExceptions() = default;

  template <class... E>
  static QuietExceptions of() {
    QuietExceptions q;
    (q.matchers_.push_back(&internal::holds_exception<E>), ...);
    return q;
  }

  // True when `e` is one of the quiet types (or derives from one).
  bool contains(const std::exception_ptr& e) const {
    for (auto* m : matchers_) {
      if (m(e)) return true;
    }
    return false;
  }

  bool empty() const { return matchers_.empty(); }

 private:
  std::vector<bool (*)(const std::exception_ptr&)> matchers_;
};

}  // namespace eddy

#endif  // EDDY_FUTURES_ERRORS_H_
