// A fixture for the sync/ tests: an IOLoop on a ManualClock, current for the
// test's lifetime, so timeouts are driven by advancing the clock instead of
// waiting, plus Tornado's record_done() history helper.
#ifndef EDDY_TESTS_SYNC_TEST_UTIL_H_
#define EDDY_TESTS_SYNC_TEST_UTIL_H_

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "gtest/gtest.h"

namespace eddy::testing {

class SyncLoopTest : public ::testing::Test {
 protected:
  SyncLoopTest()
      : clock_(std::make_shared<ManualClock>()), loop_(IOLoop::Options{.clock = clock_}) {
    loop_.make_current();
  }
  ~SyncLoopTest() override { IOLoop::clear_current(); }

  // Runs one loop iteration without waiting.
  void run_once() { loop_.run_sync([] { return 0; }); }

  // Runs the loop until nothing more is runnable without time moving
  // (Tornado's loop_briefly, without the real time).
  void drain() {
    for (int i = 0; i < 10000; ++i) {
      run_once();
      if (loop_.stats().callbacks == 0) return;
    }
    ADD_FAILURE() << "the loop never went idle";
  }

  // Moves the manual clock and runs what became due.
  void advance(absl::Duration d) {
    clock_->advance(d);
    drain();
  }

  // Appends `name` to history_ once `f` is done (Tornado's record_done), or
  // "timeout" / "cancelled" when it failed that way.
  template <class T>
  void record_done(Future<T> f, std::string name) {
    f.add_done_callback([this, name = std::move(name)](Future<T>& done) {
      if (done.cancelled()) {
        history_.push_back("cancelled");
        return;
      }
      if (std::exception_ptr e = done.exception()) {
        try {
          std::rethrow_exception(e);
        } catch (const TimeoutError&) {
          history_.push_back("timeout");
        } catch (...) {
          history_.push_back("error");
        }
        return;
      }
      history_.push_back(name);
    });
  }

  // True when `f` failed with exception type E.
  template <class E, class T>
  static bool failed_with(const Future<T>& f) {
    if (!f.done() || f.cancelled()) return false;
    return internal::holds_exception<E>(f.exception());
  }

  std::shared_ptr<ManualClock> clock_;
  IOLoop loop_;
  std::vector<std::string> history_;
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_SYNC_TEST_UTIL_H_
