// Captures eddy::log records for a test's lifetime, so tests can assert on
// what was (or was not) logged. Restores the previous handler on exit.
#ifndef EDDY_TESTS_LOG_CAPTURE_H_
#define EDDY_TESTS_LOG_CAPTURE_H_

#include <mutex>
#include <string>
#include <vector>

#include "eddy/futures/log.h"

namespace eddy::testing {

class LogCapture {
 public:
  LogCapture() {
    previous_ = set_log_handler([this](const LogRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(r.message);
    });
  }
  ~LogCapture() { set_log_handler(previous_); }

  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_.size();
  }
  // Number of records whose message contains `needle`.
  size_t count(const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  LogHandler previous_;
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_LOG_CAPTURE_H_
