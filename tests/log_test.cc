// eddy::log: the handler, and what happens when the handler itself fails.
#include "eddy/futures/log.h"

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

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

}  // namespace
}  // namespace eddy
