// A tiny timer queue, just enough to exercise Abseil, the sanitizers and
// C++20 in the toolchain self-test.
#ifndef EDDY_SELFTEST_TICKER_H_
#define EDDY_SELFTEST_TICKER_H_

#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace eddy::selftest {

class Ticker {
 public:
  // Returns a handle for Cancel().
  std::uint64_t CallLater(absl::Duration delay, absl::AnyInvocable<void() &&> fn);
  bool Cancel(std::uint64_t handle);
  // Runs, in deadline order, every callback due at `now`; returns how many.
  int RunDue(absl::Duration now);

 private:
  struct Entry {
    absl::Duration deadline;
    absl::AnyInvocable<void() &&> fn;
  };
  // std::mutex, not absl::Mutex: see third_party/system/absl.BUILD (TSan).
  std::mutex mu_;
  std::uint64_t next_handle_ = 1;
  absl::flat_hash_map<std::uint64_t, Entry> entries_;
};

}  // namespace eddy::selftest

#endif  // EDDY_SELFTEST_TICKER_H_
