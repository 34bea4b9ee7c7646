// Helpers for the executor tests: a Gate that blocked tasks wait on, and
// wait_until() to run until a condition holds instead of sleeping.
#ifndef EDDY_TESTS_EXECUTOR_TEST_UTIL_H_
#define EDDY_TESTS_EXECUTOR_TEST_UTIL_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

// Defined in sanitizer builds (TSan, ASan), where stress tests run fewer
// rounds: the instrumented code is several times slower.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define EDDY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define EDDY_SANITIZED 1
#endif
#endif

namespace eddy::testing {

// Closed until open(); wait() blocks until then. Also counts the threads
// that have reached wait(), so a test can know a task is running.
class Gate {
 public:
  void open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  // Blocks until `n` threads have reached wait().
  void wait_arrived(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return arrived_ >= n; });
  }
  int arrived() {
    std::lock_guard<std::mutex> lock(mu_);
    return arrived_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int arrived_ = 0;
};

// Polls `condition` (yielding between polls) until it holds; returns false
// if it still does not after a generous bound, so a broken test fails
// instead of hanging. Not a timing assertion: the bound is only a backstop.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::seconds backstop = std::chrono::seconds(60)) {
  auto give_up = std::chrono::steady_clock::now() + backstop;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace eddy::testing

#endif  // EDDY_TESTS_EXECUTOR_TEST_UTIL_H_
