// eddy::log: the handler, and what happens when the handler itself fails.
#include "eddy/futures/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/future.h"
#include "gtest/gtest.h"

namespace eddy {
namespace {

// Installs a handler that throws, for the test's duration.
class ThrowingLogHandler {
 public:
  ThrowingLogHandler()
      : previous_(set_log_handler([this](const LogRecord&) {
          ++calls;
          throw std::runtime_error("the handler failed");
        })) {}
  ~ThrowingLogHandler() { set_log_handler(std::move(previous_)); }
  int calls = 0;

 private:
  LogHandler previous_;
};

TEST(LogTest, AHandlerThatThrowsIsSwallowedAndTheRecordGoesToStderrWithANote) {
  ThrowingLogHandler handler;
  ::testing::internal::CaptureStderr();
  EXPECT_NO_THROW(log(LogLevel::kWarning, "something worth saying"));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(handler.calls, 1);
  EXPECT_NE(err.find("[eddy WARNING] something worth saying\n"), std::string::npos) << err;
  EXPECT_NE(err.find("the log handler threw (std::runtime_error: the handler failed)"),
            std::string::npos)
      << err;
}

// log() runs in destructors and noexcept paths: a throwing handler there
// used to call std::terminate. Here the last handle of a failed future
// nobody read goes away (~FutureState logs "never retrieved").
TEST(LogTest, AThrowingHandlerCalledFromADestructorDoesNotEndTheProcess) {
  ThrowingLogHandler handler;
  ::testing::internal::CaptureStderr();
  {
    Future<int> f;
    f.set_exception(std::make_exception_ptr(std::runtime_error("never read")));
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(handler.calls, 1);
  EXPECT_NE(err.find("Future exception was never retrieved"), std::string::npos) << err;
}

TEST(LogTest, WithoutAHandlerTheDefaultWritesOneLineToStderr) {
  LogHandler previous = set_log_handler(nullptr);
  ::testing::internal::CaptureStderr();
  log(LogLevel::kError, "plain");
  const std::string err = ::testing::internal::GetCapturedStderr();
  set_log_handler(std::move(previous));
  EXPECT_EQ(err, "[eddy ERROR] plain\n");
}

std::atomic<bool>* g_exiting = nullptr;

// CPython's test_interpreter_shutdown: a pool of static storage duration
// still has work at exit; a failure in it is logged while the statics are
// being destroyed, through a handler installed after the pool was made
// (the log's own state, made after the pool, went before it: a
// use-after-free, ASan's report or a crash).
TEST(LogDeathTest, APoolOfStaticStorageDurationLogsAtExitThroughTheHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        static ThreadPoolExecutor pool(1);
        set_log_handler([](const LogRecord& r) {
          std::fprintf(stderr, "handled: %s\n", std::string(r.message).c_str());
        });
        g_exiting = new std::atomic<bool>(false);
        pool.submit([] {
          while (!g_exiting->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          // Until the statics made after the pool are gone.
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        });
        pool.submit([] { throw std::runtime_error("late failure"); });  // dropped
        std::atexit([] { g_exiting->store(true); });
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "handled: Future exception was never retrieved: .*late failure");
}

}  // namespace
}  // namespace eddy
