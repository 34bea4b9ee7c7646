// Tracked: a value that counts its live instances, so that a test can see
// when a future's state (which holds one) is destroyed. Tests that use it
// start by asserting that no instance is live.
// CopyCounted: a value that counts its copies (moves are free), so that a
// test can see whether a result was copied or moved on its way. Tests that
// use it set `copies` to 0 first.
// MoveCounted: a value that counts its copies and its moves, on any thread;
// reset() before use.
#ifndef EDDY_TESTS_LIVE_COUNT_H_
#define EDDY_TESTS_LIVE_COUNT_H_

#include <atomic>

namespace eddy::testing {

struct Tracked {
  static inline std::atomic<int> live{0};
  int v;
  explicit Tracked(int v) : v(v) { ++live; }
  Tracked(const Tracked& o) : v(o.v) { ++live; }
  Tracked(Tracked&& o) noexcept : v(o.v) { ++live; }
  ~Tracked() { --live; }
};

struct CopyCounted {
  CopyCounted() = default;
  CopyCounted(const CopyCounted&) { ++copies; }
  CopyCounted(CopyCounted&&) noexcept = default;
  CopyCounted& operator=(const CopyCounted&) = default;
  CopyCounted& operator=(CopyCounted&&) noexcept = default;
  static inline int copies = 0;
};

struct MoveCounted {
  MoveCounted() = default;
  MoveCounted(const MoveCounted&) { ++copies; }
  MoveCounted(MoveCounted&&) noexcept { ++moves; }
  MoveCounted& operator=(const MoveCounted&) = default;
  MoveCounted& operator=(MoveCounted&&) noexcept = default;
  static void reset() {
    copies = 0;
    moves = 0;
  }
  static inline std::atomic<int> copies{0};
  static inline std::atomic<int> moves{0};
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_LIVE_COUNT_H_
