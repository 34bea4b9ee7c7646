// Helpers shared by the loop/ tests: a log capture one can wait on, a
// one-shot event, and a probe that records where and how often it dies.
#ifndef EDDY_TESTS_LOOP_TEST_UTIL_H_
#define EDDY_TESTS_LOOP_TEST_UTIL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "eddy/futures/log.h"

namespace eddy::testing {

// A generous bound for waits on events that should come quickly: reaching
// it means the code under test hangs, not that the machine is slow.
inline constexpr std::chrono::seconds kHangTimeout{60};

// Captures eddy::log records; wait_for() blocks until one contains a
// needle (or kHangTimeout passes).
class WaitableLog {
 public:
  WaitableLog() {
    previous_ = set_log_handler([this](const LogRecord& r) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        lines_.emplace_back(r.message);
      }
      cv_.notify_all();
    });
  }
  ~WaitableLog() { set_log_handler(previous_); }

  // True once a record containing `needle` was logged.
  bool wait_for(const std::string& needle) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangTimeout, [&] { return count_locked(needle) > 0; });
  }
  size_t count(const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_locked(needle);
  }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  std::string joined() const {
    std::string out;
    for (const auto& l : lines()) out += l + "\n";
    return out;
  }

 private:
  size_t count_locked(const std::string& needle) const {
    size_t n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos;
    return n;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  LogHandler previous_;
};

// A one-shot event between threads.
class Event {
 public:
  void set() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      set_ = true;
    }
    cv_.notify_all();
  }
  // True if set (within kHangTimeout).
  bool wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangTimeout, [&] { return set_; });
  }
  bool is_set() const {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Records how many copies of a probe are alive and on which thread the last
// one died. Capture a Probe in a closure to see whether (and where) the
// closure was destroyed.
struct ProbeLog {
  std::atomic<int> alive{0};
  std::atomic<int> destroyed{0};
  std::mutex mu;
  std::thread::id last_destroyed_on;  // guarded by mu
  std::thread::id destroyed_on() {
    std::lock_guard<std::mutex> lock(mu);
    return last_destroyed_on;
  }
};

class Probe {
 public:
  explicit Probe(std::shared_ptr<ProbeLog> log) : log_(std::move(log)) { ++log_->alive; }
  Probe(const Probe& o) : log_(o.log_) { ++log_->alive; }
  Probe(Probe&& o) noexcept : log_(o.log_) { ++log_->alive; }
  Probe& operator=(const Probe&) = delete;
  ~Probe() {
    --log_->alive;
    ++log_->destroyed;
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->last_destroyed_on = std::this_thread::get_id();
  }

 private:
  std::shared_ptr<ProbeLog> log_;
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_LOOP_TEST_UTIL_H_
