// The machine's floor for the two hops an offload round trip (W2) needs:
// the loop wakes a sleeping pool thread (a futex wake; what a condition
// variable does underneath), and the pool thread wakes the loop blocked in
// epoll_wait (an eventfd write). No library is involved: two threads
// ping-pong through raw syscalls, each one blocking every time.
//
//   BM_Floor_RoundTrip        futex there, eventfd+epoll back: W2's shape,
//                             the figure W2's p50 is read against
//   BM_Floor_EventfdEpoll     eventfd+epoll both ways (2 hops)
//   BM_Floor_Futex            futex both ways (2 hops)
//   BM_Floor_CacheLine        no syscall: one cache line there and back
//                             (two threads spin on one atomic), the floor
//                             for W2's streamed rows, where eddy's worker
//                             and loop poll for each other and neither
//                             thread sleeps (W1's LineRoundTrip, here in
//                             W2's process)
//
// Linked into the W2 binary so that the floor is measured in the same
// process and run as the round trips it bounds.
//
// Look for: p50 of RoundTrip close to the sum of one EventfdEpoll hop and
// one Futex hop (half of each round trip); a large gap between p50 and p99
// means the kernel moved a thread to the other core mid-run.
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "benchmark/benchmark.h"
#include "eddy/bench/alloc_counter.h"
#include "eddy/bench/harness.h"

namespace eddy::bench {
namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::abort();
}

// One direction of a futex hop: the waiter sleeps until the word is set.
class FutexHop {
 public:
  void signal() {
    word_.store(1, std::memory_order_release);
    syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  void wait() {
    while (word_.load(std::memory_order_acquire) == 0) {
      syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    }
    word_.store(0, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint32_t> word_{0};
};

// One direction of an eventfd hop: the waiter sleeps in epoll_wait, as a
// loop does, then reads the eventfd.
class EventfdHop {
 public:
  EventfdHop() {
    fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (fd_ < 0 || ep_ < 0) die("eventfd/epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd_;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd_, &ev) != 0) die("epoll_ctl");
  }
  ~EventfdHop() {
    close(fd_);
    close(ep_);
  }
  void signal() {
    uint64_t one = 1;
    if (write(fd_, &one, sizeof one) != sizeof one) die("eventfd write");
  }
  void wait() {
    epoll_event ev;
    while (epoll_wait(ep_, &ev, 1, -1) != 1) {
    }
    uint64_t value;
    if (read(fd_, &value, sizeof value) != sizeof value) die("eventfd read");
  }

 private:
  int fd_ = -1;
  int ep_ = -1;
};

// The benchmark thread sends through `There` and waits on `Back`; a second
// thread answers. Records each round trip in the histogram.
template <class There, class Back>
void ping_pong(benchmark::State& state) {
  const int64_t n = scaled(kFloorRoundTrips);
  There there;
  Back back;
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    for (;;) {
      there.wait();
      if (stop.load(std::memory_order_acquire)) return;
      back.signal();
    }
  });
  // Warm both threads up (first wakes fault in stacks and kernel state).
  for (int i = 0; i < 100; ++i) {
    there.signal();
    back.wait();
  }
  LatencyHistogram hist;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t t0 = now_ns();
      there.signal();
      back.wait();
      hist.record(now_ns() - t0);
    }
  }
  finish(state, n, allocs);
  report_latency(state, hist);
  stop.store(true, std::memory_order_release);
  there.signal();
  peer.join();
}

// Look for: p50 here is W2's floor; W2's eddy p50 should be within 2x.
void BM_Floor_RoundTrip(benchmark::State& state) { ping_pong<FutexHop, EventfdHop>(state); }
EDDY_WORKLOAD(BM_Floor_RoundTrip);

// Look for: half the p50 is one loop wake-up from another thread.
void BM_Floor_EventfdEpoll(benchmark::State& state) { ping_pong<EventfdHop, EventfdHop>(state); }
EDDY_WORKLOAD(BM_Floor_EventfdEpoll);

// Look for: half the p50 is one pool-thread wake-up.
void BM_Floor_Futex(benchmark::State& state) { ping_pong<FutexHop, FutexHop>(state); }
EDDY_WORKLOAD(BM_Floor_Futex);

// The floor of a round trip between two threads that never sleep: one
// cache line written by each side in turn. Timed in blocks of kLineBlock
// round trips (one clock read costs ~20 ns, a round trip ~90 ns on this
// VM), each block's mean recorded, so p50 is the median block's time per
// round trip.
//
// Look for: ~0.09 us (or ~0.39 us when the VM's vCPUs sit far apart): the
// least a streamed W2 round trip can cost with both threads polling.
constexpr int64_t kLineBlock = 64;

void BM_Floor_CacheLine(benchmark::State& state) {
  const int64_t n = (scaled(kFloorRoundTrips) + kLineBlock - 1) / kLineBlock * kLineBlock;
  alignas(64) std::atomic<int64_t> line{0};
  LatencyHistogram hist;
  uint64_t allocs = allocations();
  for (auto _ : state) {
    line.store(0, std::memory_order_relaxed);
    std::thread other([&line, n] {
      for (int64_t i = 0; i < n; ++i) {
        while (line.load(std::memory_order_acquire) != 2 * i + 1) {
        }
        line.store(2 * i + 2, std::memory_order_release);
      }
    });
    for (int64_t b = 0; b < n; b += kLineBlock) {
      int64_t t0 = now_ns();
      for (int64_t i = b; i < b + kLineBlock; ++i) {
        line.store(2 * i + 1, std::memory_order_release);
        while (line.load(std::memory_order_acquire) != 2 * i + 2) {
        }
      }
      hist.record((now_ns() - t0) / kLineBlock);
    }
    other.join();
  }
  finish(state, n, allocs);
  report_latency(state, hist);
}
EDDY_WORKLOAD(BM_Floor_CacheLine);

}  // namespace
}  // namespace eddy::bench
