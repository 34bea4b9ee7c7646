// eddy/eddy.h, the one include, depending on //:eddy only: a coroutine
// that offloads blocking calls, waits for them together under a deadline,
// and hands the results through a Queue under a Lock compiles and runs with
// nothing else included.
#include "eddy/eddy.h"

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace eddy {
namespace {

int square_blocking(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stands for a blocking call
  return x * x;
}

TEST(UmbrellaTest, OneIncludeCoversFuturesCoroutinesExecutorsLoopAndSync) {
  IOLoop loop;
  ThreadPoolExecutor pool(2);
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::thread::id> resumed_on;
  const int total = loop.run_sync([&]() -> Future<int> {
    std::vector<Future<int>> squares;
    for (int i = 1; i <= 4; ++i) squares.push_back(loop.run_in_executor(&pool, square_blocking, i));
    std::vector<int> got = co_await with_timeout(absl::Seconds(30), multi(std::move(squares)));
    resumed_on.push_back(std::this_thread::get_id());

    std::map<std::string, Future<int>> named;
    named.emplace("five", loop.run_in_executor(&pool, square_blocking, 5));
    std::map<std::string, int> by_name = co_await multi(std::move(named));

    Queue<int> queue;
    Lock lock;
    for (int v : got) co_await queue.put(v);
    co_await queue.put(by_name.at("five"));
    co_await sleep(absl::ZeroDuration());
    int sum = 0;
    {
      auto guard = co_await lock.acquire();
      while (!queue.empty()) sum += co_await queue.get();
    }
    resumed_on.push_back(std::this_thread::get_id());
    co_return sum;
  });
  EXPECT_EQ(total, 1 + 4 + 9 + 16 + 25);
  ASSERT_EQ(resumed_on.size(), 2u);
  EXPECT_EQ(resumed_on[0], loop_thread);
  EXPECT_EQ(resumed_on[1], loop_thread);
}

}  // namespace
}  // namespace eddy
