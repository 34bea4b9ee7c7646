#include "eddy/executor/executor.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "eddy/executor/offload.h"

namespace eddy {

constinit thread_local std::atomic<int>* internal::t_worker_finishing = nullptr;
constinit thread_local const void* internal::t_worker_task = nullptr;

namespace {

// The InlineExecutor calls the current thread is inside, innermost first: a
// shutdown(wait=true) from inside a call must not wait for that call.
struct InlineFrame {
  const InlineExecutor* executor;
  const InlineFrame* outer;
};
thread_local const InlineFrame* tls_inline_frames = nullptr;

uint64_t calls_inside(const InlineExecutor* executor) {
  uint64_t n = 0;
  for (const InlineFrame* f = tls_inline_frames; f != nullptr; f = f->outer) {
    if (f->executor == executor) ++n;
  }
  return n;
}

}  // namespace

ShutdownReport InlineExecutor::report_locked() const {
  ShutdownReport r;
  r.submitted = submitted_;
  r.completed = completed_;
  r.cancelled = cancelled_;
  r.running = running_;
  return r;
}

ShutdownReport InlineExecutor::shutdown(bool wait, bool /*cancel_futures*/) {
  const uint64_t mine = wait ? calls_inside(this) : 0;
  std::unique_lock<std::mutex> lock(mu_);
  shutdown_ = true;
  if (wait) idle_.wait(lock, [&] { return running_ <= mine; });
  return report_locked();
}

void InlineExecutor::execute(TaskPtr task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) throw ExecutorShutdownError();
    ++submitted_;
    ++running_;
  }
  const InlineFrame frame{this, tls_inline_frames};
  tls_inline_frames = &frame;
  // run() does not throw (a task settles its own future); the frame and
  // the counts are restored all the same.
  bool ran = task->run();
  task.reset();
  tls_inline_frames = frame.outer;
  std::lock_guard<std::mutex> lock(mu_);
  ++(ran ? completed_ : cancelled_);
  --running_;
  if (shutdown_) idle_.notify_all();
}

namespace {
std::atomic<uint64_t> late_completions_dropped{0};
std::atomic<uint64_t> results_discarded_after_cancel{0};
}  // namespace

OffloadStats offload_stats() {
  OffloadStats s;
  s.late_completions_dropped = late_completions_dropped.load(std::memory_order_relaxed);
  s.results_discarded_after_cancel = results_discarded_after_cancel.load(std::memory_order_relaxed);
  return s;
}

namespace internal {

void count_late_completion_dropped() {
  late_completions_dropped.fetch_add(1, std::memory_order_relaxed);
}

void count_result_discarded_after_cancel() {
  results_discarded_after_cancel.fetch_add(1, std::memory_order_relaxed);
}

void throw_source_empty(const char* op) {
  throw InvalidStateError(std::string("CancellationSource::") + op +
                          ": the handle is empty (moved from)");
}

}  // namespace internal
namespace internal {

void throw_map_timeout(size_t not_done, size_t submitted, bool all_submitted,
                       std::optional<size_t> total, absl::Duration timeout) {
  const std::string within =
      " not done within " + absl::FormatDuration(std::max(timeout, absl::ZeroDuration()));
  if (all_submitted || total) {
    const size_t n = total.value_or(submitted);
    throw TimeoutError("Executor::map: " + std::to_string(not_done + (n - submitted)) + " of " +
                       std::to_string(n) + " calls" + within);
  }
  throw TimeoutError("Executor::map: not done within " +
                     absl::FormatDuration(std::max(timeout, absl::ZeroDuration())) + ": " +
                     std::to_string(not_done) + " of the " + std::to_string(submitted) +
                     " calls submitted were still running or queued, and the rest of the "
                     "items were never submitted");
}

}  // namespace internal

}  // namespace eddy
