// IOLoop::stop() from another thread, racing the loop's owner, which
// destroys the loop as soon as start() returns: the usual "a controller
// thread stops a worker's loop" pattern. The stopping thread cannot know
// when the loop is freed, so stop() must touch nothing of the loop once it
// has published the stop.
//
// The window between publishing the stop and stop()'s return is a few
// instructions. This binary holds it open: it is linked with
// --wrap=pthread_self (see BUILD.bazel), and the stopping thread's next
// pthread_self() call sleeps first. stop() used to call it (through
// std::this_thread::get_id(), for its own-thread test) after the store,
// and then read the loop's inbox: under ASan or TSan that read of the
// freed loop is reported. Now the call comes before the store and only
// delays the stop.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"

namespace {

thread_local bool t_pause_next_pthread_self = false;

}  // namespace

extern "C" pthread_t __real_pthread_self();
extern "C" pthread_t __wrap_pthread_self() {
  if (t_pause_next_pthread_self) {
    t_pause_next_pthread_self = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  return __real_pthread_self();
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

TEST(StopRaceTest, StopFromAnotherThreadTouchesNothingOfTheLoopOnceTheStopIsPublished) {
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
TEST(StopRaceTest, ManyLoopsStoppedFromAnotherThreadAreDestroyedByTheirOwners) {
  for (int round = 0; round < 100; ++round) {
    OwnedLoop owned(/*busy=*/round % 2 == 0);
    owned.loop()->stop();
    owned.join();
    EXPECT_TRUE(owned.destroyed());
  }
}

}  // namespace
}  // namespace eddy
