#include "eddy/sync/semaphore.h"

#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "eddy/futures/log.h"
#include "eddy/sync/internal/wait_timeout.h"
#include "eddy/sync/internal/waiter_queue.h"

namespace eddy {
namespace internal {

// Everything a Semaphore is, kept behind a shared_ptr so that a Releaser
// (holding a weak_ptr) can tell when the semaphore is gone. Loop-affine
// like the rest; the atomics inside shared_ptr are incidental. Its loop is
// waiters.home(), bound by every acquire() (a Releaser may be handed out
// with nobody waiting), which is what a Releaser looks at on another
// thread: nothing else here may be read there.
struct SemaphoreState : std::enable_shared_from_this<SemaphoreState> {
  SemaphoreState(int v, bool b) : value(v), initial(v), bounded(b) {}

  Semaphore::Releaser make_releaser() { return Semaphore::Releaser(weak_from_this()); }

  void release(const char* op) {
    waiters.check_owner(op);
    if (bounded && value >= initial) throw SemaphoreOverReleaseError();
    // Hand the permit straight to the oldest live waiter, so an acquire()
    // arriving later cannot overtake it. The waiter is out of the deque
    // before it completes: with no loop current its callbacks run inline
    // and may acquire or release again.
    // Room for its completion's post first: out of memory, release()
    // throws std::bad_alloc with the waiter still queued and the permit
    // still held (a Releaser made for the waiter and then dropped would
    // give the permit away from under it).
    waiters.reserve_completions(1);
    std::optional<Future<Semaphore::Releaser>> waiter = waiters.pop_live();
    if (!waiter.has_value()) {
      ++value;
      return;
    }
    waiter->set_result(make_releaser());
  }

  int value;
  const int initial;
  const bool bounded;
  WaiterQueue<Future<Semaphore::Releaser>> waiters;
};

}  // namespace internal

namespace {

void log_release_failure(const std::exception_ptr& e) noexcept {
  log(LogLevel::kError, "Semaphore::Releaser could not release: " + describe_exception(e));
}

}  // namespace

// On a thread that is not the semaphore's loop's (a guard dropped in a
// pool task): nothing of the semaphore may be touched here, neither the
// count nor the waiters (the loop's thread may be in acquire() right now),
// nor the loop (it may be being destroyed). The release is posted through
// the home's RemoteScheduler, which only holds a weak reference to the
// state: if the loop refuses it (closed), the permit is not given back.
void Semaphore::Releaser::release_elsewhere(
    std::shared_ptr<internal::SemaphoreState> state) noexcept {
  try {
    log(LogLevel::kError,
        "Semaphore::Releaser reset on a thread that does not own the semaphore's loop; the "
        "release is done on that loop's thread instead");
    std::weak_ptr<internal::SemaphoreState> weak = state;
    const bool posted = state->waiters.home().post([weak = std::move(weak)] {
      // Gone meanwhile: its destructor cancelled the waiters.
      if (std::shared_ptr<internal::SemaphoreState> s = weak.lock()) {
        try {
          s->release("Semaphore::Releaser::reset");
        } catch (...) {
          log_release_failure(std::current_exception());
        }
      }
    });
    if (!posted) {
      log(LogLevel::kError,
          "Semaphore::Releaser: the semaphore's loop is closed: the permit is not given back");
    }
  } catch (...) {
    // Out of memory on the way: the permit is lost, as when the loop is
    // closed.
  }
}

void Semaphore::Releaser::reset() noexcept {
  std::shared_ptr<internal::SemaphoreState> state = std::exchange(state_, {}).lock();
  if (state == nullptr) return;
  // Asked before anything changes, whether or not thread checks are on,
  // and of the semaphore's own record of its loop: waiters queued or not,
  // releasing here would race with the loop's thread.
  if (!state->waiters.home().here()) [[unlikely]] {
    release_elsewhere(std::move(state));
    return;
  }
  try {
    state->release("Semaphore::Releaser::reset");
  } catch (...) {
    log_release_failure(std::current_exception());
  }
}

Semaphore::Semaphore(int value) : Semaphore(value, /*bounded=*/false) {}

Semaphore::Semaphore(int value, bool bounded) {
  if (value < 0) throw std::invalid_argument("Semaphore: the initial value must be >= 0");
  state_ = std::make_shared<internal::SemaphoreState>(value, bounded);
}

Semaphore::~Semaphore() {
  // Nobody could complete these waiters any more. Releasers handed out
  // earlier hold weak_ptrs, which expire with `state` below.
  std::shared_ptr<internal::SemaphoreState> state = std::move(state_);
  internal::cancel_waiters(state->waiters, "Semaphore (or Lock)");
}

Future<Semaphore::Releaser> Semaphore::acquire(std::optional<absl::Duration> timeout,
                                               SourceLocation where) {
  internal::SemaphoreState& s = *state_;
  // The loop the Releaser will belong to (two compares when it is bound
  // already); push() below binds it too.
  s.waiters.home().bind(Scheduler::current());
  if (s.value > 0) {
    --s.value;
    return make_ready_future(s.make_releaser(), where);
  }
  Future<Releaser> waiter = internal::make_waiter<Releaser>(timeout, "Semaphore::acquire",
                                                            "Semaphore::acquire timed out", where);
  s.waiters.push(waiter);
  return waiter;
}

void Semaphore::release() { state_->release("Semaphore::release"); }

void Semaphore::release_as(const char* op) { state_->release(op); }

int Semaphore::value() const { return state_->value; }

size_t Semaphore::waiter_count() const { return state_->waiters.live_count(); }

}  // namespace eddy
