// The blocking watchdog behind IOLoop::set_blocking_log_threshold(): a
// thread that notices a loop callback (or timer, or fd handler) that has been
// running longer than the threshold *while it still runs*, and logs what it
// is and how long it has run; the loop logs it again with its total time
// when it returns. Not a public API.
//
// The loop brackets every callback with begin()/end() (two uncontended lock
// round trips; only while a threshold is set). The watchdog thread never
// needs a wake-up from the loop: while nothing runs it looks again every
// half threshold, and when something runs it sleeps until that activity's
// deadline, so a report comes between 1x and 1.5x the threshold.
//
// Threading: begin(), update(), end() and set_threshold() on the loop's thread; the
// report is logged from the watchdog thread.
#ifndef EDDY_LOOP_INTERNAL_WATCHDOG_H_
#define EDDY_LOOP_INTERNAL_WATCHDOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "eddy/futures/source_location.h"

namespace eddy::internal {

// What the loop is running.
enum class ActivityKind : uint8_t {
  kCallback,        // this thread's add_callback / spawn_callback
  kRemoteCallback,  // posted from another thread
  kFutureCallback,  // a future's done callbacks (Scheduler::post)
  kTimer,
  kFdHandler,
  kCoroutine,  // a coroutine resumed by what it awaited, or its deferred start
};
struct Activity {
  using Kind = ActivityKind;
  Kind kind = Kind::kCallback;
  int fd = -1;           // kFdHandler only
  SourceLocation where;  // where it was posted / scheduled / added; may be empty
};

// "callback posted at file:line (fn)", "fd handler for fd 7 added at ...",
// "future callback", ...
std::string describe_activity(const Activity& a);

class Watchdog {
 public:
  explicit Watchdog(absl::Duration threshold);
  ~Watchdog();  // stops and joins the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_threshold(absl::Duration threshold);

  void begin(const Activity& a);
  // Refines what the running activity is (its location becomes known once
  // it starts: see IOLoop::note_activity).
  void update(ActivityKind kind, const SourceLocation& where);
  // A part of the running activity that is something else (a coroutine the
  // callback resumes): named so while it runs. enter() returns what the
  // activity was, for leave(), which names it so again unless the threshold
  // passed during the part: then the part is what blocked, and the total
  // is reported under its name.
  Activity enter(ActivityKind kind, const SourceLocation& where);
  void leave(const Activity& was);
  // Logs the total time if the activity ran for the threshold or longer.
  void end();

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  void run();

  std::mutex mu_;
  std::condition_variable cv_;  // signalled only to stop the thread
  bool stopping_ = false;              // guarded by mu_
  std::chrono::nanoseconds threshold_;  // guarded by mu_
  uint64_t seq_ = 0;                   // guarded by mu_; counts begin()s
  bool active_ = false;                // guarded by mu_
  Activity current_;                   // guarded by mu_
  SteadyTime started_;                 // guarded by mu_
  SteadyTime entered_;                 // guarded by mu_; the last enter()
  uint64_t reported_seq_ = 0;          // guarded by mu_
  std::thread thread_;
};

}  // namespace eddy::internal

#endif  // EDDY_LOOP_INTERNAL_WATCHDOG_H_
