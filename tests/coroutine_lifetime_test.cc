// A coroutine lambda's captures live in its closure, not in its frame. Every
// entry point that takes a callable keeps a coroutine lambda's closure
// alive until the coroutine it starts is finished (completed, failed, or
// destroyed with its loop), and co_invoke does it for a lambda called by
// hand. Each test reads the captures after a suspension: without the
// keeping, the closure is gone by then (a heap-use-after-free under ASan, an
// expired weak_ptr in any build).
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"
#include "tests/log_capture.h"

namespace eddy {
namespace {

using testing::LogCapture;

const std::string kText = "a string long enough to live on the heap, not inline";

// Thrown (or stored) by a coroutine that finds, after a suspension, that
// its closure died meanwhile: it then touches no capture, so the failure
// is a clean one in every build, not only a report under ASan.
std::exception_ptr closure_died() {
  return std::make_exception_ptr(
      std::logic_error("the closure died while its coroutine was suspended"));
}

// A coroutine lambda that reads its capture after a suspension and reports
// what it read through `finished`. Callable with any arguments (the
// then / add_done_callback / add_future shapes included).
auto reader(std::shared_ptr<std::string> text, Future<size_t> finished) {
  return [text = std::move(text), finished](auto&&...) mutable -> Future<> {
    // Locals, not captures: still there after the suspension either way.
    std::weak_ptr<std::string> watch = text;
    Future<size_t> out = finished;
    co_await sleep(absl::Milliseconds(1));
    if (watch.expired()) {
      out.set_exception(closure_died());
      co_return;
    }
    out.set_result(text->size());
  };
}

// The same check in a coroutine lambda whose own Future reports.
#define EXPECT_CAPTURE_ALIVE(watch) \
  if ((watch).expired()) std::rethrow_exception(closure_died())

// Hands reader(...) to `entry(loop, fn)` inside a run of a fresh loop, and
// checks that the coroutine read its capture after its suspension and that
// the capture went as soon as the coroutine finished.
template <class Entry>
void expect_captures_kept(Entry entry) {
  IOLoop loop;
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  size_t n = loop.run_sync([&] {
    Future<size_t> finished;
    entry(loop, reader(std::move(text), finished));
    return finished;
  });
  EXPECT_EQ(n, kText.size());
  EXPECT_TRUE(watch.expired()) << "the closure outlived its coroutine";
}

TEST(CoroutineLifetimeTest, SpawnCallbackKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) { loop.spawn_callback(std::move(fn)); });
}

TEST(CoroutineLifetimeTest, AddCallbackKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) { loop.add_callback(std::move(fn)); });
}

TEST(CoroutineLifetimeTest, AddCallbackFromAnLvalueKeepsACopy) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.add_callback(fn);  // fn (and its capture) dies here; the copy is kept
  });
}

TEST(CoroutineLifetimeTest, RemotePostFromAnotherThreadKeepsTheCaptures) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    std::thread poster([remote = loop.remote(), fn = std::move(fn)]() mutable {
      remote->post(std::move(fn));
    });
    poster.join();
  });
}

TEST(CoroutineLifetimeTest, CallLaterKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.call_later(absl::Milliseconds(1), std::move(fn));
  });
}

TEST(CoroutineLifetimeTest, CallAtKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.call_at(loop.time() + absl::Milliseconds(1), std::move(fn));
  });
}

TEST(CoroutineLifetimeTest, AddTimeoutKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.add_timeout(absl::Milliseconds(1), std::move(fn));
  });
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.add_timeout(loop.time() + absl::Milliseconds(1), std::move(fn));
  });
}

TEST(CoroutineLifetimeTest, ThenKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop&, auto fn) {
    Future<int> source;
    Future<> out = source.then(std::move(fn));  // flattened: a Future<void>
    source.set_result(1);
  });
}

TEST(CoroutineLifetimeTest, ThenOnAVoidFutureKeepsTheCaptures) {
  expect_captures_kept([](IOLoop&, auto fn) { make_ready_future().then(std::move(fn)); });
}

TEST(CoroutineLifetimeTest, AddDoneCallbackKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop&, auto fn) {
    Future<int> source;
    source.add_done_callback(std::move(fn));
    source.set_result(1);
  });
}

TEST(CoroutineLifetimeTest, AddDoneCallbackWithoutArgumentsKeepsTheCaptures) {
  IOLoop loop;
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  size_t n = loop.run_sync([&] {
    Future<size_t> finished;
    make_ready_future(1).add_done_callback([text = std::move(text), finished]() mutable -> Future<> {
      std::weak_ptr<std::string> watch = text;
      Future<size_t> out = finished;
      co_await sleep(absl::Milliseconds(1));
      if (watch.expired()) {
        out.set_exception(closure_died());
        co_return;
      }
      out.set_result(text->size());
    });
    return finished;
  });
  EXPECT_EQ(n, kText.size());
  EXPECT_TRUE(watch.expired());
}

TEST(CoroutineLifetimeTest, AddFutureKeepsTheCapturesUntilTheCoroutineFinishes) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    loop.add_future(make_ready_future(1), std::move(fn));
  });
}

TEST(CoroutineLifetimeTest, AddFutureOfAConcurrentFutureKeepsTheCaptures) {
  expect_captures_kept([](IOLoop& loop, auto fn) {
    ConcurrentFuture<int> source;
    loop.add_future(source, std::move(fn));
    source.set_result(1);
  });
}

TEST(CoroutineLifetimeTest, RunInLoopKeepsTheCapturesUntilTheCoroutineFinishes) {
  IOLoop loop;
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  size_t n = loop.run_sync([&] {
    return loop.run_in_loop([text = std::move(text)]() -> Future<size_t> {
      std::weak_ptr<std::string> watch = text;
      co_await sleep(absl::Milliseconds(1));
      EXPECT_CAPTURE_ALIVE(watch);
      co_return text->size();
    });
  });
  EXPECT_EQ(n, kText.size());
  EXPECT_TRUE(watch.expired());
}

TEST(CoroutineLifetimeTest, PeriodicCallbackKeepsFnWhileARunIsSuspendedAfterItIsDestroyed) {
  IOLoop loop;
  loop.make_current();
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  Future<> started;
  Future<size_t> finished;
  auto periodic = std::make_unique<PeriodicCallback>(
      [text = std::move(text), started, finished]() mutable -> Future<> {
        if (started.done()) co_return;
        started.set_result();
        std::weak_ptr<std::string> watch = text;
        co_await sleep(absl::Milliseconds(1));
        EXPECT_CAPTURE_ALIVE(watch);
        finished.set_result(text->size());
      },
      absl::Milliseconds(1));
  periodic->start();
  loop.run_sync([&] { return started; });
  periodic.reset();  // stops it; the suspended run still needs fn
  EXPECT_EQ(loop.run_sync([&] { return finished; }), kText.size());
  // The run's done callback, which holds the state (fn included), runs on
  // the next turn.
  loop.run_sync([] { return make_ready_future(); });
  EXPECT_TRUE(watch.expired());
}

// A run_sync that times out leaves the coroutine suspended in its cleanup;
// the temporary lambda given to run_sync is gone by the time the loop runs
// again and the cleanup reads the captures.
TEST(CoroutineLifetimeTest, RunSyncKeepsATemporaryLambdaPastATimeout) {
  IOLoop loop;
  loop.make_current();
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  Future<size_t> cleaned_up;
  EXPECT_THROW(loop.run_sync(
                   [text = std::move(text), cleaned_up]() mutable -> Future<> {
                     std::weak_ptr<std::string> watch = text;
                     Future<size_t> out = cleaned_up;
                     try {
                       co_await Future<>();  // never completes
                     } catch (const CancelledError&) {
                     }
                     co_await sleep(absl::Milliseconds(1));
                     if (watch.expired()) {
                       out.set_exception(closure_died());
                       co_return;
                     }
                     out.set_result(text->size());
                   },
                   absl::Milliseconds(5)),
               TimeoutError);
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(loop.run_sync([&] { return cleaned_up; }), kText.size());
  EXPECT_TRUE(watch.expired());
}

// A callable that returns a Future without being a coroutine is kept until
// that Future is done.
TEST(CoroutineLifetimeTest, APlainCallableReturningAFutureIsKeptUntilTheFutureIsDone) {
  IOLoop loop;
  loop.make_current();
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  Future<> pending;
  bool called = false;
  loop.spawn_callback([text = std::move(text), pending, &called] {
    called = true;
    return pending;
  });
  text = nullptr;
  loop.run_sync([] { return sleep(absl::Milliseconds(1)); });
  EXPECT_TRUE(called);
  EXPECT_FALSE(watch.expired());
  pending.set_result();
  loop.run_sync([] { return sleep(absl::Milliseconds(1)); });
  EXPECT_TRUE(watch.expired());
}

TEST(CoroutineLifetimeTest, TheClosureGoesWhenTheCoroutineThrows) {
  LogCapture log;  // the dropped Future's exception is logged
  IOLoop loop;
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  size_t n = loop.run_sync([&] {
    Future<size_t> about_to_throw;
    loop.spawn_callback([text = std::move(text), about_to_throw]() mutable -> Future<> {
      std::weak_ptr<std::string> watch = text;
      Future<size_t> out = about_to_throw;
      co_await sleep(absl::Milliseconds(1));
      if (watch.expired()) {
        out.set_exception(closure_died());
        co_return;
      }
      about_to_throw.set_result(text->size());
      throw std::runtime_error("worker failed");
    });
    return about_to_throw;
  });
  EXPECT_EQ(n, kText.size());
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(log.count("worker failed"), 1u);
}

// Destroying the loop destroys the suspended coroutine, and its closure
// with it: nothing leaks (LSan in the asan build).
TEST(CoroutineLifetimeTest, TheClosureGoesWithTheLoopWhileTheCoroutineIsSuspended) {
  std::weak_ptr<std::string> watch;
  {
    IOLoop loop;
    auto text = std::make_shared<std::string>(kText);
    watch = text;
    loop.run_sync([&] {
      Future<> suspended;
      loop.spawn_callback([text = std::move(text), suspended]() mutable -> Future<> {
        suspended.set_result();
        co_await Future<>();  // never completes
        ADD_FAILURE() << "resumed: " << *text;
      });
      return suspended;
    });
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

TEST(CoroutineLifetimeTest, TheClosureGoesWithTheLoopWhenTheCallbackNeverRan) {
  std::weak_ptr<std::string> watch;
  {
    IOLoop loop;
    auto text = std::make_shared<std::string>(kText);
    watch = text;
    loop.call_later(absl::Hours(1), [text = std::move(text)]() -> Future<> { co_return; });
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

// --- co_invoke ---

// The r03 shape, `[name]() -> Future<size_t> {...}()`, with co_invoke.
Future<size_t> start(std::string name) {
  auto text = std::make_shared<std::string>(std::move(name));
  return co_invoke([text]() -> Future<size_t> {
    std::weak_ptr<std::string> watch = text;
    co_await sleep(absl::Milliseconds(1));
    EXPECT_CAPTURE_ALIVE(watch);
    co_return text->size();
  });
}

TEST(CoInvokeTest, KeepsTheCapturesOfALambdaCalledByHand) {
  IOLoop loop;
  EXPECT_EQ(loop.run_sync([] { return start(kText); }), kText.size());
}

TEST(CoInvokeTest, MovesMoveOnlyCapturesAndArgumentsIntoTheFrame) {
  IOLoop loop;
  int v = loop.run_sync([] {
    return co_invoke(
        [p = std::make_unique<int>(7)](std::unique_ptr<int> q,
                                       const std::string& s) -> Future<int> {
          co_await sleep(absl::Milliseconds(1));
          co_return *p + *q + static_cast<int>(s.size());  // s refers into the box
        },
        std::make_unique<int>(5), std::string("abc"));
  });
  EXPECT_EQ(v, 15);
}

TEST(CoInvokeTest, PassesAnArgumentByLvalueReferenceWhenFnTakesOne) {
  IOLoop loop;
  std::string out = loop.run_sync([] {
    return co_invoke(
        [](std::string& s) -> Future<std::string> {
          co_await sleep(absl::Milliseconds(1));
          s += "!";
          co_return s;
        },
        std::string("hi"));
  });
  EXPECT_EQ(out, "hi!");
}

// The box lives as long as the frame, not the Future: a cancelled coroutine
// may still clean up with its captures after its Future is done.
TEST(CoInvokeTest, KeepsTheCapturesWhileACancelledCoroutineCleansUp) {
  IOLoop loop;
  loop.make_current();
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  Future<size_t> cleaned_up;
  Future<> f = co_invoke([text = std::move(text), cleaned_up]() mutable -> Future<> {
    std::weak_ptr<std::string> watch = text;
    Future<size_t> out = cleaned_up;
    try {
      co_await Future<>();  // never completes
    } catch (const CancelledError&) {
    }
    co_await sleep(absl::Milliseconds(1));
    if (watch.expired()) {
      out.set_exception(closure_died());
      co_return;
    }
    out.set_result(text->size());
  });
  EXPECT_TRUE(f.cancel());
  EXPECT_EQ(loop.run_sync([&] { return cleaned_up; }), kText.size());
  EXPECT_TRUE(watch.expired());
}

TEST(CoInvokeTest, APlainCallableReturningAFutureIsKeptUntilTheFutureIsDone) {
  IOLoop loop;
  loop.make_current();
  auto text = std::make_shared<std::string>(kText);
  std::weak_ptr<std::string> watch = text;
  Future<> pending;
  Future<> f = co_invoke([text = std::move(text), pending] { return pending; });
  EXPECT_FALSE(watch.expired());
  pending.set_result();
  loop.run_sync([&] { return f; });
  loop.run_sync([] { return sleep(absl::Milliseconds(1)); });
  EXPECT_TRUE(watch.expired());
}

TEST(CoInvokeTest, AnEmptyCallableThrowsInvalidArgument) {
  absl::AnyInvocable<Future<>()> empty;
  EXPECT_THROW(co_invoke(std::move(empty)), std::invalid_argument);
}

// Flattening a coroutine continuation takes no extra turn: a continuation
// that finishes at once completes then()'s result in the turn it runs, as
// one returning a ready Future does.
TEST(CoroutineLifetimeTest, ThenWithACoroutineContinuationTakesNoExtraTurn) {
  IOLoop loop;
  loop.make_current();
  auto turns_until_done = [&](auto fn) {
    Future<int> out = make_ready_future(1).then(std::move(fn));
    uint64_t begin = loop.stats().iterations;
    loop.run_sync([&] { return out; });
    return loop.stats().iterations - begin;
  };
  auto text = std::make_shared<std::string>(kText);
  uint64_t plain = turns_until_done([](int v) { return make_ready_future(v + 1); });
  uint64_t coroutine = turns_until_done([text](int v) -> Future<int> {
    co_return v + static_cast<int>(text->size());
  });
  EXPECT_EQ(coroutine, plain);
}

}  // namespace
}  // namespace eddy
