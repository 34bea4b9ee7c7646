#include <thread>

#include "eddy/futures/coroutine.h"
#include "eddy/loop/io_loop.h"
#include "eddy/testing/async_test.h"
#include "gtest/gtest.h"

class HelloTest : public eddy::testing::AsyncTest {};

TEST_F(HelloTest, OffloadedResultComesBackOnTheLoopThread) {
  std::thread::id loop_thread = std::this_thread::get_id();
  int v = run([&]() -> eddy::Future<int> {
    int r = co_await loop().run_in_executor(nullptr, [] { return 6 * 7; });
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
    co_return r;
  });
  EXPECT_EQ(v, 42);
}
