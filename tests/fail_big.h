// Allocation failure for the loop's queue blocks: a replaced global
// operator new that, while armed, fails every allocation of
// kBigAllocation bytes or more (the loop's callback and cross-thread queue
// blocks are 8 KiB and more; the tests that link this allocate nothing else
// that big), on any thread that is not exempt. For tests of what a full
// post queue does when no new block can be had.
//
//   eddy::testing::FailBig fail;            // every big allocation fails
//   int queued = fill_callback_queue(loop);  // the queue is full now
//
// Link fail_big.cc (the :fail_big target) only into a cc_test of its own:
// it replaces operator new for the whole binary.
#ifndef EDDY_TESTS_FAIL_BIG_H_
#define EDDY_TESTS_FAIL_BIG_H_

#include <cstddef>

#include "eddy/futures/future.h"
#include "eddy/loop/io_loop.h"

namespace eddy::testing {

inline constexpr size_t kBigAllocation = 8192;

// n > 0: the next n big allocations fail; -1: every one fails; 0: none.
void fail_big_allocations(int n);
// The calling thread never meets the armed failures while `exempt` (the
// loop's, in a test where only a worker's post is meant to fail).
void exempt_this_thread_from_big_failures(bool exempt);

// Fails big allocations while it lives (every one, or the next `n`).
struct FailBig {
  explicit FailBig(int n = -1) { fail_big_allocations(n); }
  ~FailBig() { fail_big_allocations(0); }
  FailBig(const FailBig&) = delete;
  FailBig& operator=(const FailBig&) = delete;
};

// Queues no-op callbacks until the loop's callback queue needs a block it
// cannot get (add_callback then throws, queuing nothing). Returns how many
// were queued.
inline int fill_callback_queue(IOLoop& loop) {
  int n = 0;
  for (; n < 10'000; ++n) {
    try {
      loop.add_callback([] {});
    } catch (const std::bad_alloc&) {
      return n;
    }
  }
  return n;
}

// Runs the loop until everything queued so far has run.
inline void drain(IOLoop& loop) {
  loop.run_sync([] { return make_ready_future(0); });
  loop.run_sync([] { return make_ready_future(0); });
}

}  // namespace eddy::testing

#endif  // EDDY_TESTS_FAIL_BIG_H_
