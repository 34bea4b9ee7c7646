// A thread still inside a call on an object whose owner destroys it the
// moment that call's effect is visible: the call must touch nothing of
// the object after that point.
//   - IOLoop::stop() from another thread, while the loop's owner destroys
//     the loop as soon as start() returns (a controller thread stopping a
//     worker's loop cannot know when the loop is freed);
//   - a thread blocked in ThreadPoolExecutor::submit() for room in a full
//     bounded queue while the pool is destroyed.
//
// The windows are a few instructions wide. This binary holds them open: it
// is linked with --wrap for pthread_self and pthread_mutex_lock (see
// BUILD.bazel; only the statically linked code, eddy's and the tests', is
// wrapped), and a test makes the next such call on a chosen thread sleep
// first. Under ASan or TSan, a read of the freed object is then reported.
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/errors.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/executor_test_util.h"

namespace {

// The stopping thread's next pthread_self() sleeps (stop() calls it, via
// std::this_thread::get_id(), for its own-thread test).
thread_local bool t_pause_next_pthread_self = false;

// The next pthread_mutex_lock() of `g_slow_thread` sleeps, once armed.
std::atomic<bool> g_lock_armed{false};
std::atomic<pthread_t> g_slow_thread{};

void pause_a_while() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

}  // namespace

extern "C" pthread_t __real_pthread_self();
extern "C" pthread_t __wrap_pthread_self() {
  if (t_pause_next_pthread_self) {
    t_pause_next_pthread_self = false;
    pause_a_while();
  }
  return __real_pthread_self();
}

extern "C" int __real_pthread_mutex_lock(pthread_mutex_t* mu);
extern "C" int __wrap_pthread_mutex_lock(pthread_mutex_t* mu) {
  if (g_lock_armed.load(std::memory_order_relaxed) &&
      pthread_equal(__real_pthread_self(), g_slow_thread.load()) &&
      g_lock_armed.exchange(false)) {
    pause_a_while();
  }
  return __real_pthread_mutex_lock(mu);
}

namespace eddy {
namespace {

// Starts a loop on a thread of its own that destroys it right after
// start() returns; `busy` keeps it from ever sleeping (a callback that
// re-posts itself), otherwise it sleeps in epoll until woken.
class OwnedLoop {
 public:
  explicit OwnedLoop(bool busy) {
    thread_ = std::thread([this, busy] {
      auto loop = std::make_unique<IOLoop>();
      std::function<void()> spin = [&] { loop->add_callback([&] { spin(); }); };
      loop->add_callback([&] {
        if (busy) spin();
        published_.store(loop.get());
      });
      loop->start();
      loop.reset();
      destroyed_.store(true);
    });
    while (published_.load() == nullptr) std::this_thread::yield();
  }
  ~OwnedLoop() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  IOLoop* loop() const { return published_.load(); }
  bool destroyed() const { return destroyed_.load(); }

 private:
  std::atomic<IOLoop*> published_{nullptr};
  std::atomic<bool> destroyed_{false};
  std::thread thread_;
};

// stop() used to publish the stop and then test the thread and read the
// inbox; now both come first, and the pause only delays the stop.
TEST(TeardownRaceTest, StopFromAnotherThreadTouchesNothingOfTheLoopOnceTheStopIsPublished) {
  for (int round = 0; round < 3; ++round) {
    OwnedLoop owned(/*busy=*/true);
    t_pause_next_pthread_self = true;
    owned.loop()->stop();
    t_pause_next_pthread_self = false;
    owned.join();
    EXPECT_TRUE(owned.destroyed());
  }
}

// The same race left to chance, for loops that are busy and loops that
// sleep (stop() then wakes them through the inbox it took before the
// store).
TEST(TeardownRaceTest, ManyLoopsStoppedFromAnotherThreadAreDestroyedByTheirOwners) {
  for (int round = 0; round < 100; ++round) {
    OwnedLoop owned(/*busy=*/round % 2 == 0);
    owned.loop()->stop();
    owned.join();
    EXPECT_TRUE(owned.destroyed());
  }
}

// The state letter of thread `tid` of this process ('S': asleep).
char thread_state(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

// The submitter, woken by the destructor's shutdown (or by the room the
// worker makes just before it), is held just before it relocks the pool's
// mutex, the first lock it takes after the wait. The destructor used to
// free the pool meanwhile: the submitter then locked the freed mutex and
// read the freed pool. Now the destructor waits for it to leave: its
// submit() fails with ExecutorShutdownError, or, if the room came first,
// its task is queued and run by the shutdown.
TEST(TeardownRaceTest, DestroyingAPoolWaitsForASubmitBlockedForRoomToLeave) {
  auto pool = std::make_unique<ThreadPoolExecutor>(
      ThreadPoolExecutor::Options{.max_workers = 1, .max_queue_size = 1});
  testing::Gate gate;
  ConcurrentFuture<void> running = pool->submit([&] { gate.wait(); });
  gate.wait_arrived(1);
  ConcurrentFuture<void> queued = pool->submit([] {});  // the queue is full now
  std::atomic<pid_t> tid{0};
  std::optional<ConcurrentFuture<void>> accepted;
  bool refused = false;
  std::thread submitter([&, p = pool.get()] {
    g_slow_thread = pthread_self();
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    try {
      accepted = p->submit([] {});  // blocks for room
    } catch (const ExecutorShutdownError&) {
      refused = true;
    }
  });
  // Blocked for room: asleep, and still asleep 20 ms later. (Armed
  // earlier, the pause could fall on its way in, before the destructor
  // would know to wait for it.)
  ASSERT_TRUE(testing::wait_until([&] {
    if (tid == 0 || thread_state(tid) != 'S') return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return thread_state(tid) == 'S';
  }));
  g_lock_armed = true;
  gate.open();
  pool.reset();  // shutdown(true), then the pool is freed
  submitter.join();
  g_lock_armed = false;
  EXPECT_TRUE(queued.done());
  if (!refused) {
    ASSERT_TRUE(accepted.has_value());
    EXPECT_TRUE(accepted->done());
  }
}

}  // namespace
}  // namespace eddy
