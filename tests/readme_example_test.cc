// The README's thirty-line example, compiled and run, so the first code a
// newcomer reads keeps working.
#include <memory>
#include <string>
#include <vector>

#include "eddy/executor/run_on_executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/with_timeout.h"
#include "gtest/gtest.h"

namespace {

class Store {
 public:
  eddy::Future<std::string> load(int id) {
    return eddy::run_on_executor(this, &Store::load_blocking, id);
  }
  std::unique_ptr<eddy::ThreadPoolExecutor> executor =
      std::make_unique<eddy::ThreadPoolExecutor>(4);

 private:
  std::string load_blocking(int id) { return std::string(static_cast<size_t>(id), 'x'); }
};

eddy::Future<size_t> total_size(Store& store) {
  std::vector<eddy::Future<std::string>> rows = {store.load(1), store.load(2), store.load(3)};
  std::vector<std::string> values = co_await rows;
  std::string extra = co_await eddy::with_timeout(absl::Seconds(2), store.load(4));
  co_return values[0].size() + values[1].size() + values[2].size() + extra.size();
}

TEST(ReadmeExampleTest, ThirtyLinesRun) {
  Store store;
  size_t n = eddy::IOLoop::current().run_sync([&] { return total_size(store); });
  EXPECT_EQ(n, 1u + 2u + 3u + 4u);
}

}  // namespace
