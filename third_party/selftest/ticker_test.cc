#include "eddy/selftest/ticker.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace eddy::selftest {
namespace {

using ::testing::ElementsAre;

TEST(TickerTest, RunsDueCallbacksInDeadlineOrder) {
  Ticker ticker;
  std::vector<std::string> log;
  // A move-only capture proves AnyInvocable (std::function would not compile).
  auto owned = std::make_unique<std::string>("late");
  ticker.CallLater(absl::Milliseconds(30),
                   [&log, s = std::move(owned)] { log.push_back(*s); });
  ticker.CallLater(absl::Milliseconds(10), [&log] { log.push_back("early"); });
  ticker.CallLater(absl::Seconds(5), [&log] { log.push_back("never"); });

  EXPECT_EQ(ticker.RunDue(absl::Milliseconds(50)), 2);
  EXPECT_THAT(log, ElementsAre("early", "late"));
}

TEST(TickerTest, CancelRemovesCallback) {
  Ticker ticker;
  bool ran = false;
  const auto handle = ticker.CallLater(absl::ZeroDuration(), [&ran] { ran = true; });
  EXPECT_TRUE(ticker.Cancel(handle));
  EXPECT_FALSE(ticker.Cancel(handle));
  EXPECT_EQ(ticker.RunDue(absl::Seconds(1)), 0);
  EXPECT_FALSE(ran);
}

// Exercises the lock under TSan with concurrent producers.
TEST(TickerTest, ConcurrentScheduling) {
  Ticker ticker;
  int count = 0;  // Only touched by RunDue on this thread.
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ticker, &count] {
      for (int i = 0; i < 100; ++i) {
        ticker.CallLater(absl::Milliseconds(i), [&count] { ++count; });
      }
    });
  }
  threads.clear();  // joins
  EXPECT_EQ(ticker.RunDue(absl::Seconds(1)), 400);
  EXPECT_EQ(count, 400);
}

}  // namespace
}  // namespace eddy::selftest
