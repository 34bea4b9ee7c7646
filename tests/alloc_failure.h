// Allocation-failure injection for tests: a replaced global operator new
// that throws std::bad_alloc at a chosen allocation of the calling thread.
//
//   eddy::testing::FailAllocation fail(2);  // the third allocation from now
//   ... code under test ...                 // (on this thread) throws, once
//   if (!fail.fired()) break;               // the code made fewer than 3
//
// Sweeping n = 0, 1, 2, ... until fired() stays false fails every
// allocation of a call in turn, deterministically.
//
// Link alloc_failure.cc (the :alloc_failure target) only into a cc_test of
// its own: it replaces operator new for the whole binary. Other threads
// are never failed; the counts below include them.
#ifndef EDDY_TESTS_ALLOC_FAILURE_H_
#define EDDY_TESTS_ALLOC_FAILURE_H_

#include <cstdint>

namespace eddy::testing {

// Arms the n-th allocation (0-based) from now on the calling thread to
// throw std::bad_alloc, once. Replaces an earlier arming of this thread.
void fail_allocation(long n);
// Disarms this thread (an armed failure that has not fired is dropped).
void disarm_allocation_failure();
// True once this thread's armed failure has thrown.
bool allocation_failure_fired();

// Allocations minus deallocations through operator new/delete, all threads
// (for leak checks around a call; operator delete of nullptr not counted).
int64_t outstanding_allocations();

// fail_allocation(n) for a scope; disarms when it ends.
class FailAllocation {
 public:
  explicit FailAllocation(long n) { fail_allocation(n); }
  ~FailAllocation() { disarm_allocation_failure(); }
  FailAllocation(const FailAllocation&) = delete;
  FailAllocation& operator=(const FailAllocation&) = delete;
  bool fired() const { return allocation_failure_fired(); }
  void disarm() { disarm_allocation_failure(); }
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_ALLOC_FAILURE_H_
