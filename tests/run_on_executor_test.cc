// run_on_executor and on_executor: the decorator equivalents. The method
// runs on the pool named by the object's `executor` member (every kind of
// member), or on an explicit one; the Future resolves on the caller's loop.
#include "eddy/executor/run_on_executor.h"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/thrown.h"

namespace eddy {
namespace {

using testing::thrown_what;

// What each store's blocking method reports: where it ran.
struct Where {
  std::thread::id thread;
  int value;
};

template <class Store>
void expect_runs_on_pool_and_resolves_on_loop(Store& store) {
  IOLoop& loop = IOLoop::current();
  Future<Where> f = run_on_executor(&store, &Store::load_blocking, 7);
  EXPECT_FALSE(f.done());
  std::thread::id callback_thread;
  Future<void> called;
  f.add_done_callback([&callback_thread, called]() mutable {
    callback_thread = std::this_thread::get_id();
    called.set_result();
  });
  loop.run_sync([called] { return called; });
  Where w = f.result();
  EXPECT_EQ(w.value, 14);
  EXPECT_NE(w.thread, std::this_thread::get_id()) << "the method ran on a pool thread";
  EXPECT_EQ(callback_thread, std::this_thread::get_id()) << "the Future resolved on the loop";
}

class RunOnExecutorTest : public ::testing::Test {
 protected:
  RunOnExecutorTest() { loop_.make_current(); }
  IOLoop loop_;
};

TEST_F(RunOnExecutorTest, RawPointerMember) {
  struct Store {
    Where load_blocking(int x) { return {std::this_thread::get_id(), x * 2}; }
    ThreadPoolExecutor pool{2};
    Executor* executor = &pool;
  } store;
  expect_runs_on_pool_and_resolves_on_loop(store);
}

TEST_F(RunOnExecutorTest, ReferenceMember) {
  ThreadPoolExecutor pool(2);
  struct Store {
    Where load_blocking(int x) { return {std::this_thread::get_id(), x * 2}; }
    ThreadPoolExecutor& executor;
  } store{pool};
  expect_runs_on_pool_and_resolves_on_loop(store);
}

TEST_F(RunOnExecutorTest, ValueMember) {
  struct Store {
    Where load_blocking(int x) { return {std::this_thread::get_id(), x * 2}; }
    ThreadPoolExecutor executor{1};
  } store;
  expect_runs_on_pool_and_resolves_on_loop(store);
}

TEST_F(RunOnExecutorTest, UniquePtrMember) {
  struct Store {
    Where load_blocking(int x) { return {std::this_thread::get_id(), x * 2}; }
    std::unique_ptr<ThreadPoolExecutor> executor = std::make_unique<ThreadPoolExecutor>(2);
  } store;
  expect_runs_on_pool_and_resolves_on_loop(store);
}

TEST_F(RunOnExecutorTest, SharedPtrMember) {
  struct Store {
    Where load_blocking(int x) { return {std::this_thread::get_id(), x * 2}; }
    std::shared_ptr<Executor> executor = std::make_shared<ThreadPoolExecutor>(2);
  } store;
  expect_runs_on_pool_and_resolves_on_loop(store);
}

TEST_F(RunOnExecutorTest, NullExecutorMemberThrowsInvalidArgument) {
  struct Store {
    int load_blocking() { return 1; }
    std::unique_ptr<ThreadPoolExecutor> executor;
  } store;
  EXPECT_THROW(run_on_executor(&store, &Store::load_blocking), std::invalid_argument);
}

// A null method is refused at the call and nothing is submitted: it used to
// crash the process on the pool thread that called it.
TEST_F(RunOnExecutorTest, ANullMethodIsRejectedAtTheCall) {
  struct Store {
    int load_blocking() { return 1; }
    ThreadPoolExecutor executor{1};
  } store;
  int (Store::*null_method)() = nullptr;
  EXPECT_EQ(thrown_what<std::invalid_argument>(
                [&] { (void)run_on_executor(&store, null_method); }),
            "run_on_executor: method is empty");
  EXPECT_THROW((void)run_on_executor(&store.executor, &store, null_method), std::invalid_argument);
  EXPECT_EQ(store.executor.stats().submitted, 0u);
}

TEST_F(RunOnExecutorTest, ExplicitExecutorNeedsNoMember) {
  struct Store {
    std::string greet(std::string name) const { return "hello " + name; }
  } store;
  ThreadPoolExecutor pool(1);
  Future<std::string> f = run_on_executor(&pool, &store, &Store::greet, std::string("loop"));
  EXPECT_EQ(loop_.run_sync([f] { return f; }), "hello loop");
}

TEST_F(RunOnExecutorTest, ExplicitNullExecutorMeansTheLoopsDefault) {
  struct Store {
    std::thread::id where() { return std::this_thread::get_id(); }
  } store;
  Future<std::thread::id> f = run_on_executor(nullptr, &store, &Store::where);
  EXPECT_NE(loop_.run_sync([f] { return f; }), std::this_thread::get_id());
}

TEST_F(RunOnExecutorTest, SharedPtrSelfIsKeptAliveUntilTheCallIsDone) {
  struct Store {
    int load_blocking() { return 5; }
    std::unique_ptr<ThreadPoolExecutor> executor = std::make_unique<ThreadPoolExecutor>(1);
  };
  auto store = std::make_shared<Store>();
  std::weak_ptr<Store> weak = store;
  ThreadPoolExecutor pool(1);
  Future<int> f = run_on_executor(&pool, store, &Store::load_blocking);
  store.reset();
  EXPECT_EQ(loop_.run_sync([f] { return f; }), 5);
  pool.shutdown();
  EXPECT_TRUE(weak.expired()) << "released once the call is done";
}

TEST_F(RunOnExecutorTest, ExceptionFromTheMethodFailsTheFuture) {
  struct Store {
    int load_blocking() { throw std::runtime_error("corrupt"); }
    ThreadPoolExecutor executor{1};
  } store;
  Future<int> f = run_on_executor(&store, &Store::load_blocking);
  EXPECT_THROW(loop_.run_sync([f] { return f; }), std::runtime_error);
}

TEST_F(RunOnExecutorTest, CancellingTheFutureReachesAMethodTakingAToken) {
  struct Store {
    bool wait(CancellationToken token) { return token.wait_for_cancel(absl::InfiniteDuration()); }
    ThreadPoolExecutor executor{1};
  } store;
  Future<bool> f = run_on_executor(&store, &Store::wait);
  loop_.call_later(absl::Milliseconds(5), [f]() mutable { f.cancel(); });
  EXPECT_THROW(loop_.run_sync([f] { return f; }), CancelledError);
  store.executor.shutdown();  // returns because the token reached the method
}

int twice(int x) { return 2 * x; }

TEST_F(RunOnExecutorTest, OnExecutorWrapsAFreeFunctionOnce) {
  ThreadPoolExecutor pool(2);
  auto offloaded_twice = on_executor(&pool, &twice);
  Future<int> a = offloaded_twice(3);
  Future<int> b = offloaded_twice(4);
  EXPECT_EQ(loop_.run_sync([a] { return a; }), 6);
  EXPECT_EQ(loop_.run_sync([b] { return b; }), 8);
}

// An empty fn is refused when it is wrapped, not at each call (where it
// used to crash the process on the pool thread).
TEST_F(RunOnExecutorTest, OnExecutorRejectsAnEmptyFnWhenWrapping) {
  int (*null_fn)(int) = nullptr;
  EXPECT_EQ(thrown_what<std::invalid_argument>([&] { (void)on_executor(nullptr, null_fn); }),
            "on_executor: fn is empty");
  EXPECT_THROW((void)on_executor(nullptr, std::function<int(int)>()), std::invalid_argument);
  EXPECT_THROW((void)on_executor(nullptr, absl::AnyInvocable<int(int)>()), std::invalid_argument);
}

TEST_F(RunOnExecutorTest, OnExecutorWithNullUsesTheDefaultPool) {
  auto where = on_executor(nullptr, [] { return std::this_thread::get_id(); });
  Future<std::thread::id> f = where();
  EXPECT_NE(loop_.run_sync([f] { return f; }), std::this_thread::get_id());
}

}  // namespace
}  // namespace eddy
