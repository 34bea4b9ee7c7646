// fd handlers: pipes and socketpairs, hang-ups, removal during dispatch,
// misuse.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"
#include "gtest/gtest.h"
#include "tests/loop_test_util.h"

namespace eddy {
namespace {

using testing::Event;
using testing::Probe;
using testing::ProbeLog;
using testing::WaitableLog;

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0); }
  ~Pipe() {
    close_read();
    close_write();
  }
  int r() const { return fds[0]; }
  int w() const { return fds[1]; }
  void close_read() {
    if (fds[0] >= 0) ::close(std::exchange(fds[0], -1));
  }
  void close_write() {
    if (fds[1] >= 0) ::close(std::exchange(fds[1], -1));
  }
  void put(char c = 'x') const { ASSERT_EQ(::write(w(), &c, 1), 1); }
  int fds[2] = {-1, -1};
};

struct SocketPair {
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0); }
  ~SocketPair() {
    for (int& fd : fds) {
      if (fd >= 0) ::close(std::exchange(fd, -1));
    }
  }
  int fds[2] = {-1, -1};
};

// Runs `loop` until `done` is set.
void run_until_set(IOLoop& loop, Future<void>& done) {
  loop.run_sync([&] { return done; });
}

class FdHandlerTest : public ::testing::Test {
 protected:
  FdHandlerTest() { loop.make_current(); }
  ~FdHandlerTest() override { IOLoop::clear_current(); }
  IOLoop loop;
};

TEST_F(FdHandlerTest, ReadHandlerRunsWhenAPipeBecomesReadableFromAnotherThread) {
  Pipe p;
  Future<void> done;
  std::string got;
  std::thread::id ran_on;
  loop.add_handler(
      p.r(),
      [&](int fd, uint32_t events) {
        EXPECT_EQ(fd, p.r());
        EXPECT_TRUE(events & IOLoop::READ);
        char buf[16];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        ran_on = std::this_thread::get_id();
        loop.remove_handler(fd);
        done.set_result();
      },
      IOLoop::READ);
  Event sleeping;
  loop.add_callback([&] { sleeping.set(); });
  std::thread writer([&] {
    ASSERT_TRUE(sleeping.wait());
    p.put('a');
  });
  run_until_set(loop, done);
  writer.join();
  EXPECT_EQ(got, "a");
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_F(FdHandlerTest, WriteHandlerOnASocketpair) {
  SocketPair s;
  Future<void> done;
  loop.add_handler(
      s.fds[0],
      [&](int fd, uint32_t events) {
        EXPECT_TRUE(events & IOLoop::WRITE);
        EXPECT_FALSE(events & IOLoop::READ);
        ASSERT_EQ(::write(fd, "hi", 2), 2);
        loop.remove_handler(fd);
        done.set_result();
      },
      IOLoop::WRITE);
  run_until_set(loop, done);
  char buf[4];
  EXPECT_EQ(::read(s.fds[1], buf, sizeof buf), 2);
}

// Tornado: ioloop_test.py test_read_while_writeable
TEST_F(FdHandlerTest, AReadHandlerOnAWritableSocketSeesOnlyRead) {
  SocketPair s;  // s.fds[0] is writable from the start
  Future<void> done;
  std::vector<uint32_t> seen;
  loop.add_handler(
      s.fds[0],
      [&](int fd, uint32_t events) {
        seen.push_back(events);
        loop.remove_handler(fd);
        done.set_result();
      },
      IOLoop::READ);
  loop.run_sync([] {});  // an iteration that polls while it is writable only
  EXPECT_TRUE(seen.empty()) << "called for a writable socket with nothing to read: " << seen[0];
  ASSERT_EQ(::write(s.fds[1], "asdf", 4), 4);
  if (seen.empty()) run_until_set(loop, done);
  EXPECT_EQ(seen, std::vector<uint32_t>{IOLoop::READ});
}

TEST_F(FdHandlerTest, ClosingThePipesWriteEndReportsAHangUp) {
  Pipe p;
  Future<void> done;
  uint32_t seen = 0;
  loop.add_handler(
      p.r(),
      [&](int fd, uint32_t events) {
        seen = events;
        loop.remove_handler(fd);
        done.set_result();
      },
      IOLoop::READ);
  p.close_write();
  run_until_set(loop, done);
  EXPECT_TRUE(seen & IOLoop::ERROR) << seen;
}

TEST_F(FdHandlerTest, PeerClosingASocketpairMakesItReadableWithEndOfFile) {
  SocketPair s;
  Future<void> done;
  ssize_t read_result = -2;
  loop.add_handler(
      s.fds[0],
      [&](int fd, uint32_t events) {
        EXPECT_TRUE(events & (IOLoop::READ | IOLoop::ERROR));
        char c;
        read_result = ::read(fd, &c, 1);
        loop.remove_handler(fd);
        done.set_result();
      },
      IOLoop::READ);
  ::close(std::exchange(s.fds[1], -1));
  run_until_set(loop, done);
  EXPECT_EQ(read_result, 0);  // end of file
}

TEST_F(FdHandlerTest, ErrorIsReportedEvenWhenNotAskedFor) {
  Pipe p;
  Future<void> done;
  uint32_t seen = 0;
  // Watch the write end for nothing; closing the read end is an error.
  loop.add_handler(
      p.w(),
      [&](int fd, uint32_t events) {
        seen = events;
        loop.remove_handler(fd);
        done.set_result();
      },
      0);
  p.close_read();
  run_until_set(loop, done);
  EXPECT_TRUE(seen & IOLoop::ERROR) << seen;
}

TEST_F(FdHandlerTest, AHandlerMayRemoveItselfDuringDispatchAndDiesAfterReturning) {
  Pipe p;
  p.put();
  auto probes = std::make_shared<ProbeLog>();
  int calls = 0;
  int alive_during_call = -1;
  loop.add_handler(
      p.r(),
      [&, probe = Probe(probes)](int fd, uint32_t) {
        ++calls;
        loop.remove_handler(fd);
        // Its own closure must survive until it returns.
        alive_during_call = probes->alive.load();
      },
      IOLoop::READ);
  loop.run_sync([] {});  // the pipe stays readable: only removal stops calls
  loop.run_sync([] {});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(alive_during_call, 1);
  EXPECT_EQ(probes->alive.load(), 0);
  EXPECT_EQ(loop.stats().handlers, 0u);
}

TEST_F(FdHandlerTest, AHandlerRemovingAnotherReadyOneStopsItsEventsInTheSameBatch) {
  Pipe a;
  Pipe b;
  a.put();
  b.put();
  int calls = 0;
  loop.add_handler(
      a.r(),
      [&](int, uint32_t) {
        ++calls;
        loop.remove_handler(b.r());
        loop.remove_handler(a.r());
      },
      IOLoop::READ);
  loop.add_handler(
      b.r(),
      [&](int, uint32_t) {
        ++calls;
        loop.remove_handler(a.r());
        loop.remove_handler(b.r());
      },
      IOLoop::READ);
  loop.run_sync([] {});
  loop.run_sync([] {});
  EXPECT_EQ(calls, 1);  // whichever ran first removed the other
}

TEST_F(FdHandlerTest, EventsCollectedForARemovedHandlerDoNotReachItsReplacement) {
  Pipe a;
  Pipe b;
  a.put();
  b.put();
  // Whichever runs first replaces the other's handler; the replacement must
  // not get the events collected for its predecessor in the same batch.
  uint64_t replaced_in = 0;
  uint64_t replacement_ran_in = 0;
  bool replaced = false;
  auto make = [&](int self, int other) {
    return [&, self, other](int, uint32_t) {
      if (replaced) return;
      replaced = true;
      replaced_in = loop.stats().iterations;
      loop.remove_handler(other);
      loop.add_handler(
          other,
          [&](int fd, uint32_t) {
            if (replacement_ran_in == 0) replacement_ran_in = loop.stats().iterations;
            loop.remove_handler(fd);
          },
          IOLoop::READ);
      loop.remove_handler(self);
    };
  };
  loop.add_handler(a.r(), make(a.r(), b.r()), IOLoop::READ);
  loop.add_handler(b.r(), make(b.r(), a.r()), IOLoop::READ);
  loop.run_sync([] {});
  loop.run_sync([] {});
  ASSERT_TRUE(replaced);
  EXPECT_EQ(replacement_ran_in, replaced_in + 1);
}

TEST_F(FdHandlerTest, UpdateHandlerChangesTheEventsWatched) {
  SocketPair s;
  std::vector<uint32_t> seen;
  loop.add_handler(
      s.fds[0],
      [&](int fd, uint32_t events) {
        seen.push_back(events);
        // Writable at once; from now on only wait for input.
        if (events & IOLoop::WRITE) loop.update_handler(fd, IOLoop::READ);
      },
      IOLoop::WRITE);
  loop.run_sync([] {});
  loop.run_sync([] {});
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(::write(s.fds[1], "z", 1), 1);
  loop.stop();
  loop.start();  // one iteration (the byte stays unread: READ every iteration)
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[1] & IOLoop::READ);
  EXPECT_FALSE(seen[1] & IOLoop::WRITE);
  loop.remove_handler(s.fds[0]);
}

TEST_F(FdHandlerTest, AddingAnFdTwiceIsAClearError) {
  Pipe p;
  loop.add_handler(p.r(), [](int, uint32_t) {}, IOLoop::READ);
  try {
    loop.add_handler(p.r(), [](int, uint32_t) {}, IOLoop::READ);
    FAIL() << "no error";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("already has a handler"), std::string::npos) << e.what();
  }
  loop.remove_handler(p.r());
}

TEST_F(FdHandlerTest, RemovingOrUpdatingAnAbsentFdIsAClearError) {
  Pipe p;
  EXPECT_THROW(loop.remove_handler(p.r()), InvalidStateError);
  EXPECT_THROW(loop.update_handler(p.r(), IOLoop::READ), InvalidStateError);
  loop.add_handler(p.r(), [](int, uint32_t) {}, IOLoop::READ);
  loop.remove_handler(p.r());
  EXPECT_THROW(loop.remove_handler(p.r()), InvalidStateError);
}

TEST_F(FdHandlerTest, BadArgumentsAreRejected) {
  Pipe p;
  EXPECT_THROW(loop.add_handler(-1, [](int, uint32_t) {}, IOLoop::READ), std::invalid_argument);
  EXPECT_THROW(loop.add_handler(p.r(), [](int, uint32_t) {}, 0x100), std::invalid_argument);
  // epoll refuses regular files.
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_THROW(loop.add_handler(::fileno(f), [](int, uint32_t) {}, IOLoop::READ),
               std::system_error);
  std::fclose(f);
  EXPECT_EQ(loop.stats().handlers, 0u);
}

TEST_F(FdHandlerTest, ThrowingHandlerIsLoggedWithItsFdAndTheLoopGoesOn) {
  WaitableLog log;
  Pipe p;
  p.put();
  bool after = false;
  loop.add_handler(
      p.r(),
      [&](int fd, uint32_t) {
        loop.remove_handler(fd);
        throw std::runtime_error("handler boom");
      },
      IOLoop::READ);
  loop.add_callback([&] { after = true; });
  loop.run_sync([] {});
  EXPECT_TRUE(after);
  EXPECT_EQ(log.count("handler boom"), 1u) << log.joined();
  EXPECT_EQ(log.count("fd handler for fd " + std::to_string(p.r())), 1u) << log.joined();
}

TEST(FdHandlerLifetimeTest, ClosingTheLoopDestroysHandlersWithoutCallingThem) {
  Pipe p;
  p.put();
  auto probes = std::make_shared<ProbeLog>();
  bool called = false;
  {
    IOLoop loop;
    loop.add_handler(p.r(), [&, probe = Probe(probes)](int, uint32_t) { called = true; },
                     IOLoop::READ);
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(probes->alive.load(), 0);
}

}  // namespace
}  // namespace eddy
