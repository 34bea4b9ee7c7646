// A thread that posts to a sleeping loop writes the loop's eventfd after it
// has let go of the inbox's lock. When the poster holds no reference to the
// inbox of its own (a cross-thread delivery, an offload's completion), the
// loop may wake for another reason, run the posted closure (freeing the
// delivery, and the reference it held) and be destroyed, all before that
// write. The write must still reach the loop's eventfd, not a closed (or
// reused) descriptor, and the inbox must not be freed under the poster.
//
// The test holds the poster inside write(2): this binary defines write(),
// which takes precedence over the C library's for every caller in the
// process (its own thread only is held; everything else goes straight to
// the system call).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/sleep.h"
#include "gtest/gtest.h"

namespace {

// Armed for one write, by the poster thread on itself.
thread_local bool t_hold_next_write = false;
std::atomic<bool> g_held{false};     // the poster is inside write()
std::atomic<bool> g_released{false};
std::string g_target_at_write;       // what the descriptor was when written

std::string describe_fd(int fd) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  char target[256];
  const ssize_t n = ::readlink(path, target, sizeof target - 1);
  return n < 0 ? std::string("(closed)") : std::string(target, static_cast<size_t>(n));
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buf, size_t count) {
  if (t_hold_next_write) {
    t_hold_next_write = false;
    g_held.store(true);
    // Held until the test lets go, or for half a second: a loop that
    // waits for this write to finish before it closes its eventfd never
    // lets the test get that far.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (!g_released.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    g_target_at_write = describe_fd(fd);
  }
  return ::syscall(SYS_write, fd, buf, count);
}

namespace eddy {
namespace {

// 'S' (sleeping) or 'R' (running) for a thread of this process.
char thread_state(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return '?';
  char buf[512];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close_paren = std::strrchr(buf, ')');
  return close_paren != nullptr && close_paren[1] == ' ' ? close_paren[2] : '?';
}

// One try. False when the poster's post did not have to wake the loop (it
// was not asleep yet, on a busy machine), so no write was held.
bool try_once(std::string* target_at_write) {
  g_held.store(false);
  g_released.store(false);
  g_target_at_write.clear();
  const pid_t loop_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  ConcurrentFuture<int> work;
  std::thread poster;
  bool delivered = false;
  {
    IOLoop loop;
    loop.make_current();
    loop.add_future(work, [&delivered] { delivered = true; });
    // The poster completes `work` once the loop sleeps in epoll, so its
    // delivery must wake the loop; its eventfd write is then held. The
    // loop wakes anyway, on a timer, runs the delivery and is destroyed.
    poster = std::thread([work, loop_tid]() mutable {
      while (thread_state(loop_tid) != 'S') std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      t_hold_next_write = true;
      work.set_result(1);
      t_hold_next_write = false;  // not held: the loop was awake
    });
    // Looks every 20 ms: the delivery's own wake-up may be held.
    loop.run_sync([&delivered]() -> Future<void> {
      while (!delivered) co_await sleep(absl::Milliseconds(20));
    });
    IOLoop::clear_current();
  }  // the loop, its inbox and its eventfd go here (or wait for the poster)
  g_released.store(true);
  poster.join();
  EXPECT_TRUE(delivered);
  *target_at_write = g_target_at_write;
  return g_held.load();
}

TEST(InboxWakeRaceTest, APosterStillWritingItsWakeWhenTheLoopGoesWritesToTheLoopsEventfd) {
  std::string target;
  bool held = false;
  for (int attempt = 0; attempt < 5 && !held; ++attempt) held = try_once(&target);
  ASSERT_TRUE(held) << "in 5 tries the poster never had to wake the loop: it was never asleep";
  EXPECT_EQ(target, "anon_inode:[eventfd]");
}

}  // namespace
}  // namespace eddy
