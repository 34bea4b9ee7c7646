// Helpers for testing code built on eddy with GoogleTest (Tornado's
// AsyncTestCase / gen_test / ExpectLog).
//
//   class StoreTest : public eddy::testing::AsyncTest {};
//
//   TEST_F(StoreTest, LoadsInParallel) {
//     run([&]() -> eddy::Future<void> {           // a coroutine, run to completion
//       std::vector<eddy::Future<int>> loads = {store.load(1), store.load(2)};
//       std::vector<int> v = co_await loads;
//       EXPECT_EQ(v, (std::vector<int>{10, 20}));
//     });
//   }
//
//   // Timers without real waiting: the loop runs on a ManualClock.
//   class RetryTest : public eddy::testing::AsyncTest {
//    protected:
//     RetryTest() : AsyncTest({.manual_clock = true, .auto_advance = true}) {}
//   };
//   TEST_F(RetryTest, GivesUpAfterAnHour) {
//     run([&] { return retry_for(absl::Hours(1)); });  // returns at once
//     EXPECT_GE(loop().time() - start, absl::Hours(1));
//   }
//
// What the fixture does for each test:
//   - creates a fresh IOLoop (on a ManualClock if asked), current on the
//     test's thread, and closes it after the test;
//   - run(fn, timeout) runs fn on the loop until the future it returns is
//     done (IOLoop::run_sync), with a default timeout so a hung test fails
//     instead of hanging the suite: on timeout the test fails, naming it;
//   - fails the test if anything was logged at error level while it ran (an
//     exception thrown by a loop callback, an unretrieved future exception),
//     unless expected with expect_log().
//
// Threading: use the fixture from the test's own thread; the loop runs
// there. Work offloaded to pools is fine: its results come back to the
// loop, and with auto_advance the clock holds still until they have (a
// with_timeout around an offload does not time out early). What the loop
// cannot see coming (a thread of the test's own, a ConcurrentFuture polled
// instead of awaited) does not hold it: see loop/manual_clock.h.
#ifndef EDDY_TESTING_ASYNC_TEST_H_
#define EDDY_TESTING_ASYNC_TEST_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/log.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "gtest/gtest.h"

namespace eddy::testing {

class AsyncTest : public ::testing::Test {
 public:
  struct Options {
    // Run the loop on a ManualClock (see clock()).
    bool manual_clock = false;
    // With manual_clock: jump to the next timer whenever the loop is idle,
    // not while it awaits pool work (an offload, a ConcurrentFuture it
    // bridged).
    bool auto_advance = false;
    // The default timeout of run().
    absl::Duration timeout = absl::Seconds(30);
  };

 protected:
  AsyncTest() : AsyncTest(Options()) {}
  explicit AsyncTest(Options options) : options_(options) {
    previous_handler_ = set_log_handler([this](const LogRecord& r) { on_log(r); });
    if (options_.manual_clock) {
      ManualClock::Options clock_options;
      clock_options.auto_advance = options_.auto_advance;
      clock_ = std::make_shared<ManualClock>(clock_options);
      loop_ = std::make_unique<IOLoop>(IOLoop::Options{.clock = clock_});
    } else {
      loop_ = std::make_unique<IOLoop>();
    }
    loop_->make_current();
  }

  ~AsyncTest() override {
    loop_.reset();
    IOLoop::clear_current();
    set_log_handler(std::move(previous_handler_));
  }

  // Closes the loop first, so what its destruction logs (say, an
  // unretrieved exception of a future only the loop still held) is judged
  // too; then checks the log.
  void TearDown() override {
    loop_->close();
    check_logs();
  }

  // Fails the test for every unexpected error record so far and every
  // expect_log() not yet met, then forgets them. TearDown calls it.
  void check_logs() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& line : unexpected_) {
      ADD_FAILURE() << "eddy logged an error during the test: " << line;
    }
    for (const Expected& e : expected_) {
      if (e.seen < e.times) {
        ADD_FAILURE() << "expected a log record containing \"" << e.needle << "\" "
                      << e.times << " time(s), saw it " << e.seen << " time(s)";
      }
    }
    unexpected_.clear();
    expected_.clear();
  }

  // The test's loop (current on the test thread).
  IOLoop& loop() { return *loop_; }

  // The loop's ManualClock. Fails the test if the fixture was not built
  // with Options::manual_clock.
  ManualClock& clock() {
    if (!clock_) {
      ADD_FAILURE() << "clock(): construct the fixture with Options{.manual_clock = true}";
      throw InvalidStateError("AsyncTest::clock: no manual clock");
    }
    return *clock_;
  }

  // Runs fn on the loop until the future it returns (a coroutine's, say)
  // is done, and returns its value or rethrows its exception. The timeout
  // (Options::timeout unless given) is real time, whatever the loop's clock
  // (a manual clock's timers could otherwise race it): on expiry the loop
  // is stopped, the test fails and TimeoutError is thrown, ending the body.
  template <class F>
  decltype(auto) run(F&& fn, std::optional<absl::Duration> timeout = std::nullopt) {
    RealTimeLimit limit(loop_.get(), timeout.value_or(options_.timeout));
    try {
      return loop_->run_sync(std::forward<F>(fn));
    } catch (const InvalidStateError&) {
      if (!limit.expired()) throw;
      ADD_FAILURE() << "run() did not finish within " << absl::FormatDuration(limit.limit());
      throw TimeoutError("AsyncTest::run: did not finish within " +
                         absl::FormatDuration(limit.limit()));
    }
  }

  // Declares that a log record containing `needle` (of any level: a
  // warning such as the watchdog's report counts) is expected `times` times
  // (at least) during this test: such records do not fail the test, and
  // fewer than `times` of them does.
  void expect_log(std::string needle, int times = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    expected_.push_back(Expected{std::move(needle), times, 0});
  }

  // Every error-level record logged so far (expected or not).
  std::vector<std::string> logged_errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }

 private:
  // A thread that stops the loop if `limit` of real time passes first.
  class RealTimeLimit {
   public:
    RealTimeLimit(IOLoop* loop, absl::Duration limit) : limit_(limit) {
      thread_ = std::thread([this, loop] {
        std::unique_lock<std::mutex> lock(mu_);
        // An infinite (or centuries-long) limit is no limit: wait_for would
        // overflow now() + limit and expire at once.
        if (limit_ >= absl::Hours(24 * 365 * 100)) {
          cv_.wait(lock, [&] { return finished_; });
          return;
        }
        if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(limit_), [&] { return finished_; })) {
          expired_ = true;
          loop->stop();
        }
      });
    }
    ~RealTimeLimit() {
      {
        std::lock_guard<std::mutex> lock(mu_);
        finished_ = true;
      }
      cv_.notify_one();
      thread_.join();
    }
    bool expired() {
      std::lock_guard<std::mutex> lock(mu_);
      return expired_;
    }
    absl::Duration limit() const { return limit_; }

   private:
    absl::Duration limit_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool finished_ = false;  // guarded by mu_
    bool expired_ = false;   // guarded by mu_
    std::thread thread_;
  };

  struct Expected {
    std::string needle;
    int times;
    int seen;
  };

  // Expectations match records of any level (the watchdog's report is a
  // warning); only error records nobody expected fail the test.
  void on_log(const LogRecord& r) {
    std::string line(r.message);
    std::lock_guard<std::mutex> lock(mu_);
    const bool error = r.level == LogLevel::kError;
    if (error) all_.push_back(line);
    for (Expected& e : expected_) {
      if (line.find(e.needle) != std::string::npos) {
        ++e.seen;
        return;
      }
    }
    if (error) unexpected_.push_back(std::move(line));
  }

  Options options_;
  std::shared_ptr<ManualClock> clock_;
  std::unique_ptr<IOLoop> loop_;
  LogHandler previous_handler_;
  mutable std::mutex mu_;  // the log handler may run on pool threads
  std::vector<Expected> expected_;
  std::vector<std::string> unexpected_;
  std::vector<std::string> all_;
};

}  // namespace eddy::testing

#endif  // EDDY_TESTING_ASYNC_TEST_H_
