// from_callback / from_error_callback: values, errors, a throwing wrapped
// function, callbacks called twice, never, from other threads, after the loop
// is gone, and without a loop.
#include "eddy/futures/callback_adapters.h"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/log_capture.h"
#include "tests/manual_scheduler.h"

namespace eddy {
namespace {

using testing::LogCapture;
using testing::ManualScheduler;

// A "legacy" API that answers synchronously, inside the call.
void add_one_now(int x, std::function<void(int)> done) { done(x + 1); }

TEST(CallbackAdaptersTest, AValueReportedInsideTheCallArrivesOnALaterTurn) {
  ManualScheduler loop;
  Future<int> f = from_callback<int>(add_one_now, 41);
  EXPECT_FALSE(f.done()) << "delivered through the loop, never inline";
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 42);
}

TEST(CallbackAdaptersTest, ACallbackKeptAndCalledLaterCompletesTheFuture) {
  ManualScheduler loop;
  std::function<void(std::string)> saved;
  Future<std::string> f = from_callback<std::string>(
      [&](const char* prefix, std::function<void(std::string)> done) {
        EXPECT_STREQ(prefix, "pre");
        saved = std::move(done);
      },
      "pre");
  loop.run_pending();
  EXPECT_FALSE(f.done());
  saved("fix");
  loop.run_pending();
  EXPECT_EQ(f.result(), "fix");
}

TEST(CallbackAdaptersTest, VoidCallback) {
  ManualScheduler loop;
  Future<void> f = from_callback<void>([](std::function<void()> done) { done(); });
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_NO_THROW(f.result());
}

TEST(CallbackAdaptersTest, TheCallbackMayBeCalledFromAnotherThread) {
  ManualScheduler loop;
  std::thread worker;
  Future<int> f = from_callback<int>([&](std::function<void(int)> done) {
    worker = std::thread([done = std::move(done)] { done(7); });
  });
  worker.join();
  EXPECT_FALSE(f.done());
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 7);
}

TEST(CallbackAdaptersTest, ErrorCallbackWithAnErrorFailsTheFuture) {
  ManualScheduler loop;
  Future<int> f = from_error_callback<int>(
      [](std::function<void(std::exception_ptr, int)> done) {
        done(std::make_exception_ptr(std::out_of_range("no row")), 0);
      });
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::out_of_range);
}

TEST(CallbackAdaptersTest, ErrorCallbackWithoutAnErrorGivesTheValue) {
  ManualScheduler loop;
  Future<int> f = from_error_callback<int>(
      [](int id, std::function<void(std::exception_ptr, int)> done) { done(nullptr, id * 2); }, 21);
  Future<void> v = from_error_callback<void>(
      [](std::function<void(std::exception_ptr)> done) { done(nullptr); });
  loop.run_pending();
  EXPECT_EQ(f.result(), 42);
  EXPECT_NO_THROW(v.result());
}

TEST(CallbackAdaptersTest, AThrowingFunctionFailsTheFuture) {
  ManualScheduler loop;
  Future<int> f;
  EXPECT_NO_THROW(f = from_callback<int>([](std::function<void(int)>) {
                    throw std::runtime_error("refused");
                  }));
  loop.run_pending();
  ASSERT_TRUE(f.done());
  EXPECT_THROW(f.result(), std::runtime_error);
}

TEST(CallbackAdaptersTest, ASecondCallIsIgnoredAndLogged) {
  ManualScheduler loop;
  LogCapture logs;
  Future<int> f = from_callback<int>([](std::function<void(int)> done) {
    done(1);
    done(2);
  });
  EXPECT_EQ(logs.count("called again"), 1u);
  loop.run_pending();
  EXPECT_EQ(f.result(), 1) << "the first outcome wins";
}

TEST(CallbackAdaptersTest, AThrowAfterTheCallbackReportedIsIgnoredAndLogged) {
  ManualScheduler loop;
  LogCapture logs;
  Future<int> f = from_callback<int>([](std::function<void(int)> done) {
    done(5);
    throw std::runtime_error("too late");
  });
  loop.run_pending();
  EXPECT_EQ(f.result(), 5);
  EXPECT_EQ(logs.count("threw"), 1u);
  EXPECT_EQ(logs.count("too late"), 1u);
}

TEST(CallbackAdaptersTest, ConcurrentCallsFromTwoThreadsCompleteItExactlyOnce) {
  ManualScheduler loop;
  for (int round = 0; round < 50; ++round) {
    LogCapture logs;
    std::vector<std::thread> threads;
    Future<int> f = from_callback<int>([&](std::function<void(int)> done) {
      for (int i = 0; i < 2; ++i) threads.emplace_back([done, i] { done(i); });
    });
    for (auto& t : threads) t.join();
    loop.run_pending();
    ASSERT_TRUE(f.done());
    EXPECT_TRUE(f.result() == 0 || f.result() == 1);
    EXPECT_EQ(logs.count("called again"), 1u);
  }
}

TEST(CallbackAdaptersTest, ANeverCalledCallbackLeavesThePendingFutureAndLogsNothing) {
  ManualScheduler loop;
  LogCapture logs;
  Future<int> f = from_callback<int>([](std::function<void(int)>) {});
  loop.run_pending();
  EXPECT_FALSE(f.done());
  EXPECT_EQ(logs.size(), 0u);
}

TEST(CallbackAdaptersTest, ANeverCalledCallbackDroppedOnAnotherThreadIsSafe) {
  ManualScheduler loop;
  std::function<void(int)> saved;
  Future<int> f = from_callback<int>([&](std::function<void(int)> done) { saved = std::move(done); });
  std::thread([dropped = std::move(saved)] {}).join();
  loop.run_pending();
  EXPECT_FALSE(f.done());
}

TEST(CallbackAdaptersTest, ACancelledFutureIgnoresTheLateCallbackSilently) {
  ManualScheduler loop;
  LogCapture logs;
  std::function<void(int)> saved;
  Future<int> f = from_callback<int>([&](std::function<void(int)> done) { saved = std::move(done); });
  EXPECT_TRUE(f.cancel());
  saved(3);
  loop.run_pending();
  EXPECT_TRUE(f.cancelled());
  EXPECT_EQ(logs.size(), 0u);
}

TEST(CallbackAdaptersTest, MoveOnlyValues) {
  ManualScheduler loop;
  Future<std::unique_ptr<int>> f = from_callback<std::unique_ptr<int>>(
      [](std::function<void(std::unique_ptr<int>)> done) { done(std::make_unique<int>(4)); });
  loop.run_pending();
  EXPECT_EQ(*f.result(), 4);
}

TEST(CallbackAdaptersTest, ACallAfterTheLoopIsGoneIsDropped) {
  std::function<void(int)> saved;
  {
    ManualScheduler loop;
    Future<int> f =
        from_callback<int>([&](std::function<void(int)> done) { saved = std::move(done); });
  }
  // The future and its payload died with the loop; this only frees memory.
  std::thread([done = std::move(saved)] { done(1); }).join();
}

TEST(CallbackAdaptersTest, WithoutALoopTheCallbackCompletesTheFutureInline) {
  ASSERT_EQ(Scheduler::current(), nullptr);
  Future<int> f = from_callback<int>(add_one_now, 1);
  ASSERT_TRUE(f.done());
  EXPECT_EQ(f.result(), 2);
}

}  // namespace
}  // namespace eddy
