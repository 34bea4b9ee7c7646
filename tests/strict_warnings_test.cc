// Every public header, and the templates a typical program instantiates,
// built with the warnings a strict consumer turns on (-Wshadow,
// -Wconversion, -Wnon-virtual-dtor, ... -Werror: see this target's copts in
// BUILD.bazel). Bazel puts eddy's headers on -I, not -isystem, so a warning
// in them is the consumer's build error: this target fails to build if one
// appears. The test itself checks the program's results.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "eddy/eddy.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/offload.h"
#include "eddy/executor/run_on_executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/callback_adapters.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/concurrent_wait.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/first_completed.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/futures/multi.h"
#include "eddy/futures/scheduler.h"
#include "eddy/futures/source_location.h"
#include "eddy/futures/wait_iterator.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/manual_clock.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/loop/sleep.h"
#include "eddy/loop/time.h"
#include "eddy/loop/with_timeout.h"
#include "eddy/sync/condition.h"
#include "eddy/sync/event.h"
#include "eddy/sync/fan_out.h"
#include "eddy/sync/lock.h"
#include "eddy/sync/queue.h"
#include "eddy/sync/semaphore.h"
#include "eddy/testing/async_test.h"
#include "gtest/gtest.h"

namespace {

class Store {
 public:
  eddy::Future<std::string> load(int id) {
    return eddy::run_on_executor(this, &Store::load_blocking, id);
  }
  std::unique_ptr<eddy::ThreadPoolExecutor> executor =
      std::make_unique<eddy::ThreadPoolExecutor>(2);

 private:
  std::string load_blocking(int id) { return std::string(static_cast<size_t>(id), 'x'); }
};

eddy::Future<size_t> program(Store& store, eddy::ThreadPoolExecutor& pool) {
  eddy::IOLoop& loop = eddy::IOLoop::current();
  std::vector<eddy::Future<std::string>> rows = {store.load(1), store.load(2)};
  std::vector<std::string> values = co_await rows;
  std::map<std::string, eddy::Future<int>> named;
  named["a"] = loop.run_in_executor(&pool, [] { return 3; });
  std::map<std::string, int> by_name = co_await named;
  std::tuple<int, std::string> pair = co_await std::make_tuple(
      loop.run_in_executor(&pool, [] { return 1; }), store.load(4));
  const int one = std::get<0>(pair);
  const std::string& two = std::get<1>(pair);
  // The README's spelling of options (designated, the rest defaulted) is
  // no -Wmissing-field-initializers warning.
  std::string extra = co_await eddy::with_timeout(absl::Seconds(30), store.load(5),
                                                  {.cancel_on_timeout = true});
  const eddy::ManualClock::Options manual{.auto_advance = true};
  const eddy::ThreadPoolExecutor::Options sized{.max_workers = 2};
  if (manual.auto_advance != (sized.max_workers == 2)) co_return 0;
  int offloaded = co_await pool.submit(
      [](eddy::CancellationToken token, int x) { return token.cancelled() ? 0 : x; }, 6);
  // (A named range: GCC 12 cannot keep a braced list's array alive across
  // a co_await in the same full-expression.)
  const std::vector<int> items = {1, 2, 3};
  std::vector<int> doubled =
      co_await eddy::fan_out(pool, items, 2, [](int x) { return 2 * x; });
  eddy::Queue<int> queue(1);
  co_await queue.put(7);
  int got = co_await queue.get();
  eddy::Lock lock;
  {
    auto guard = co_await lock.acquire();
  }
  eddy::Event event;
  event.set();
  co_await event.wait();
  co_await eddy::sleep(absl::ZeroDuration());
  eddy::Future<int> plain;
  loop.add_callback([plain]() mutable { plain.set_result(8); });
  int eight = co_await plain;
  co_return values[0].size() + values[1].size() + static_cast<size_t>(by_name["a"]) +
      static_cast<size_t>(one) + two.size() + extra.size() + static_cast<size_t>(offloaded) +
      static_cast<size_t>(doubled[0] + doubled[1] + doubled[2]) + static_cast<size_t>(got) +
      static_cast<size_t>(eight);
}

TEST(StrictWarningsTest, ATypicalProgramBuildsWithAConsumersStrictWarnings) {
  Store store;
  eddy::ThreadPoolExecutor pool(2);
  const size_t n = eddy::IOLoop::current().run_sync([&] { return program(store, pool); });
  EXPECT_EQ(n, 1u + 2u + 3u + 1u + 4u + 5u + 6u + 12u + 7u + 8u);
  std::vector<int> squares = pool.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3});
  EXPECT_EQ(squares, (std::vector<int>{1, 4, 9}));
}

}  // namespace
