#include "eddy/executor/executor.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "eddy/executor/offload.h"

namespace eddy {

ShutdownReport InlineExecutor::shutdown(bool /*wait*/, bool /*cancel_futures*/) {
  shutdown_.store(true, std::memory_order_release);
  ShutdownReport r;
  // Read the outcome counters before submitted_ so that a concurrent submit
  // can only make the report look busier, never lose a task.
  r.completed = completed_.load(std::memory_order_acquire);
  r.cancelled = cancelled_.load(std::memory_order_acquire);
  r.running = running_.load(std::memory_order_acquire);
  r.submitted = submitted_.load(std::memory_order_acquire);
  return r;
}

void InlineExecutor::execute(TaskPtr task) {
  if (shutdown_.load(std::memory_order_acquire)) throw ExecutorShutdownError();
  submitted_.fetch_add(1, std::memory_order_acq_rel);
  running_.fetch_add(1, std::memory_order_acq_rel);
  bool ran = task->run();
  task.reset();
  (ran ? completed_ : cancelled_).fetch_add(1, std::memory_order_acq_rel);
  running_.fetch_sub(1, std::memory_order_acq_rel);
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

}  // namespace internal
}  // namespace eddy
