// What is logged when a pool task's outcome arrives after the loop stopped
// (the usual command-line shape: main ends right after run_sync, then the
// pool is shut down and the loop destroyed) and is dropped with the loop.
//
// A cancellation is never reported as "never retrieved": not an outcome
// that arrives for a loop Future the caller already cancelled (it was not
// wanted; the same outcome is discarded silently while the loop runs), and
// not a CancelledError of its own. A genuine failure that nobody could
// receive is still logged, once.
//
// Each task waits on a Gate that opens only after run_sync returned (or
// after the loop is gone), so the late path is taken every time.
#include <stdexcept>
#include <string>

#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/offload.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/with_timeout.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

using testing::Gate;

constexpr int kIterations = 20;

TimeoutOptions cancel_on_timeout() {
  TimeoutOptions options;
  options.cancel_on_timeout = true;
  return options;
}

// One offloaded call: `started` (open from the start) records that it
// runs, `release` holds it until the test lets it end.
struct Call {
  Call() { started.open(); }
  Gate started;
  Gate release;
};

// README's cooperative pattern: poll the token, here only once it was
// cancelled and the test let the call go on.
int cooperative(CancellationToken token, Call* call) {
  call->started.wait();
  token.wait_for_cancel(absl::Seconds(60));
  call->release.wait();
  token.throw_if_cancelled();  // CancelledError("the offloaded call was cancelled")
  return 1;
}

TEST(LateOutcomeLogTest, WithTimeoutCancelOnTimeoutOfARunningOffloadLogsNothingAfterRunSync) {
  testing::LogCapture log;
  for (int i = 0; i < kIterations; ++i) {
    Call call;
    {
      ThreadPoolExecutor pool(1);
      IOLoop loop;
      loop.make_current();
      int r = loop.run_sync([&]() -> Future<int> {
        try {
          Future<int> f = loop.run_in_executor(&pool, cooperative, &call);
          call.started.wait_arrived(1);  // running when the timeout cancels it
          co_return co_await with_timeout(absl::Milliseconds(1), f, cancel_on_timeout());
        } catch (const TimeoutError&) {
          co_return -1;
        }
      });
      EXPECT_EQ(r, -1);
      call.release.open();
      pool.shutdown(true);  // the CancelledError is posted to a stopped loop
    }                       // and dropped with it here
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
  EXPECT_EQ(log.size(), 0u);
}

TEST(LateOutcomeLogTest, CancelledOffloadWhoseCancelledErrorArrivesAfterRunSyncLogsNothing) {
  testing::LogCapture log;
  for (int i = 0; i < kIterations; ++i) {
    Call call;
    {
      ThreadPoolExecutor pool(1);
      IOLoop loop;
      loop.make_current();
      Future<int> f = loop.run_in_executor(&pool, cooperative, &call);
      call.started.wait_arrived(1);  // running: cancelling reaches its token
      loop.run_sync([&]() -> Future<void> {
        f.cancel();
        co_return;
      });
      EXPECT_TRUE(f.cancelled());
      call.release.open();
      pool.shutdown(true);
    }
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

TEST(LateOutcomeLogTest, CancelledOffloadWhoseCancelledErrorArrivesAfterTheLoopIsGoneLogsNothing) {
  testing::LogCapture log;
  for (int i = 0; i < kIterations; ++i) {
    Call call;
    ThreadPoolExecutor pool(1);
    {
      IOLoop loop;
      loop.make_current();
      Future<int> f = loop.run_in_executor(&pool, cooperative, &call);
      call.started.wait_arrived(1);  // running: cancelling reaches its token
      loop.run_sync([&]() -> Future<void> {
        f.cancel();
        co_return;
      });
    }  // the loop goes first: its completion is refused
    call.release.open();
    pool.shutdown(true);
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

Future<int> await_it(Future<int> f) { co_return co_await f; }

TEST(LateOutcomeLogTest, CancellingACoroutineThatAwaitsAnOffloadLogsNothingAtExit) {
  testing::LogCapture log;
  for (int i = 0; i < kIterations; ++i) {
    Call call;
    {
      ThreadPoolExecutor pool(1);
      IOLoop loop;
      loop.make_current();
      loop.run_sync([&]() -> Future<void> {
        Future<int> f = loop.run_in_executor(&pool, cooperative, &call);
        call.started.wait_arrived(1);  // blocks the loop a moment: a test only
        Future<int> g = await_it(f);
        g.cancel();  // cancels f, which cancels the running call's token
        EXPECT_TRUE(f.cancelled());
        co_return;
      });
      call.release.open();
      pool.shutdown(true);
    }
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

// The caller cancelled the Future: whatever the call ends with is not
// wanted, as when it arrives while the loop runs (discarded and counted).
TEST(LateOutcomeLogTest, AFailureArrivingForACancelledOffloadAfterRunSyncIsNotLogged) {
  testing::LogCapture log;
  Call call;
  {
    ThreadPoolExecutor pool(1);
    IOLoop loop;
    loop.make_current();
    Future<int> f = loop.run_in_executor(&pool, [&call](CancellationToken token) -> int {
      call.started.wait();
      token.wait_for_cancel(absl::Seconds(60));
      call.release.wait();
      throw std::runtime_error("cleanup failed after the cancel");
    });
    call.started.wait_arrived(1);
    loop.run_sync([&]() -> Future<void> {
      f.cancel();
      co_return;
    });
    call.release.open();
    pool.shutdown(true);
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

// Nobody cancelled the Future, but the call ended with a CancelledError of
// its own (a token of the application's): a cancellation, not a failure.
TEST(LateOutcomeLogTest, AnOffloadEndingInItsOwnCancelledErrorIsNotLoggedWhenDropped) {
  testing::LogCapture log;
  Gate gate;
  CancellationSource mine;
  {
    ThreadPoolExecutor pool(1);
    IOLoop loop;
    loop.make_current();
    Future<int> f = loop.run_in_executor(&pool, [&gate, token = mine.token()]() -> int {
      gate.wait();
      token.throw_if_cancelled();
      return 1;
    });
    loop.run_sync([] {});
    mine.cancel();
    gate.open();
    pool.shutdown(true);
    EXPECT_FALSE(f.done()) << "its outcome is still in the stopped loop's inbox";
  }
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

// The counterpart: a genuine failure that reaches a stopped loop and is
// dropped with it is logged as never retrieved, once.
TEST(LateOutcomeLogTest, AGenuineFailureDroppedWithAStoppedLoopIsStillLogged) {
  testing::LogCapture log;
  Gate gate;
  {
    ThreadPoolExecutor pool(1);
    IOLoop loop;
    loop.make_current();
    Future<int> f = loop.run_in_executor(&pool, [&gate]() -> int {
      gate.wait();
      throw std::runtime_error("nobody is left to see this");
    });
    loop.run_sync([] {});
    gate.open();
    pool.shutdown(true);
    EXPECT_FALSE(f.done());
  }
  EXPECT_EQ(log.count("never retrieved"), 1u);
  EXPECT_EQ(log.count("nobody is left to see this"), 1u);
}

// add_future on a ConcurrentFuture whose loop stopped: the delivery is
// dropped with the loop, and the ConcurrentFuture's own state is the last
// one holding the outcome.
TEST(LateOutcomeLogTest, AConcurrentFutureEndingInCancelledErrorAfterItsLoopStoppedIsNotLogged) {
  testing::LogCapture log;
  Gate gate;
  CancellationSource mine;
  bool called = false;
  {
    ThreadPoolExecutor pool(1);
    IOLoop loop;
    loop.make_current();
    loop.add_future(pool.submit([&gate, token = mine.token()] {
                      gate.wait();
                      token.throw_if_cancelled();
                    }),
                    [&called] { called = true; });
    loop.run_sync([] {});
    mine.cancel();
    gate.open();
    pool.shutdown(true);
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(log.count("never retrieved"), 0u) << log.lines().front();
}

TEST(LateOutcomeLogTest, AConcurrentFutureFailingAfterItsLoopStoppedIsStillLogged) {
  testing::LogCapture log;
  Gate gate;
  {
    ThreadPoolExecutor pool(1);
    IOLoop loop;
    loop.make_current();
    loop.add_future(pool.submit([&gate] {
                      gate.wait();
                      throw std::runtime_error("a pool failure after the loop stopped");
                    }),
                    [] {});
    loop.run_sync([] {});
    gate.open();
    pool.shutdown(true);
  }
  EXPECT_EQ(log.count("never retrieved"), 1u);
  EXPECT_EQ(log.count("a pool failure after the loop stopped"), 1u);
}

// with_timeout(cancel_on_timeout) around a ConcurrentFuture: a running
// task cannot be cancelled, so it goes on; ending in a CancelledError (the
// application's token) after the loop stopped, it is not logged; a genuine
// late failure is, once.
TEST(LateOutcomeLogTest, WithTimeoutAroundARunningConcurrentFutureLogsOnlyAGenuineLateFailure) {
  for (bool genuine : {false, true}) {
    testing::LogCapture log;
    Gate gate;
    CancellationSource mine;
    {
      ThreadPoolExecutor pool(1);
      IOLoop loop;
      loop.make_current();
      ConcurrentFuture<int> cf = pool.submit([&gate, genuine, token = mine.token()]() -> int {
        gate.wait();
        if (genuine) throw std::runtime_error("late pool failure");
        token.throw_if_cancelled();
        return 1;
      });
      gate.wait_arrived(1);  // running: cancel() cannot stop it
      int r = loop.run_sync([&]() -> Future<int> {
        try {
          co_return co_await with_timeout(absl::Milliseconds(1), cf, cancel_on_timeout());
        } catch (const TimeoutError&) {
          co_return -1;
        }
      });
      EXPECT_EQ(r, -1);
      EXPECT_FALSE(cf.cancelled());
      mine.cancel();
      gate.open();
      pool.shutdown(true);
    }
    EXPECT_EQ(log.count("never retrieved"), genuine ? 1u : 0u) << "genuine=" << genuine;
    EXPECT_EQ(log.count("late pool failure"), genuine ? 1u : 0u);
  }
}

}  // namespace
}  // namespace eddy
