#include "eddy/futures/internal/loop_home.h"

#include <thread>

#if defined(__SANITIZE_ADDRESS__)
#define EDDY_LOOP_HOME_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define EDDY_LOOP_HOME_LSAN 1
#endif
#endif
#if defined(EDDY_LOOP_HOME_LSAN)
#include <sanitizer/lsan_interface.h>
#endif

namespace eddy::internal {

namespace {

// How deep this thread is in post_marked (a payload's destructor could in
// principle post again).
thread_local int t_posting = 0;

}  // namespace

void LoopHome::rebind(Scheduler* s) {
  const uint64_t serial = s->serial();
  // The scheduler's own thread, so its remote() may be asked for. A weak
  // reference: a home must not keep a dead loop's inbox (and its
  // descriptor) alive.
  std::weak_ptr<RemoteScheduler> remote;
  if (serial != serial_.load(std::memory_order_relaxed)) remote = s->remote();
  lock();
  if (serial != serial_.load(std::memory_order_relaxed)) remote_ = std::move(remote);
  serial_.store(serial, std::memory_order_relaxed);
  thread_.store(this_thread(), std::memory_order_relaxed);
  unlock();
}

bool LoopHome::post(absl::AnyInvocable<void()> fn) const {
  lock();
  std::shared_ptr<RemoteScheduler> remote = remote_.lock();
  unlock();
  return remote != nullptr && remote->post(std::move(fn));
}

bool LoopHome::post_marked(absl::AnyInvocable<void()>&& task) const noexcept {
  // A refused post destroys the task on this thread before it returns (or
  // at the end of the call's full expression, with the parameter): either
  // way inside this scope, where Owned's destructor sees the mark. A task
  // that was queued is destroyed later, on the loop's thread.
  ++t_posting;
  bool queued = false;
  try {
    lock();
    std::shared_ptr<RemoteScheduler> remote = remote_.lock();
    unlock();
    queued = remote != nullptr && remote->post(std::move(task));
  } catch (...) {
    // Out of memory in the poster: refused like any other.
  }
  if (!queued) task = nullptr;
  --t_posting;
  return queued;
}

bool LoopHome::posting_here() noexcept { return t_posting != 0; }

void LoopHome::leak(const void* p) noexcept {
#if defined(EDDY_LOOP_HOME_LSAN)
  __lsan_ignore_object(p);
#else
  (void)p;
#endif
}

void LoopHome::lock() const noexcept {
  while (locked_.exchange(true, std::memory_order_acquire)) {
    while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
}

}  // namespace eddy::internal
