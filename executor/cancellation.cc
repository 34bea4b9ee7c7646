#include "eddy/executor/cancellation.h"

#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "eddy/futures/log.h"

namespace eddy {
namespace internal {
namespace {

// The list is a ring through prev/next; `callbacks` is its first node.
void link_last(CancellationState& s, CancellationCallbackNode* n) {
  if (s.callbacks == nullptr) {
    n->prev = n->next = n;
    s.callbacks = n;
  } else {
    CancellationCallbackNode* first = s.callbacks;
    n->prev = first->prev;
    n->next = first;
    first->prev->next = n;
    first->prev = n;
  }
}

void unlink(CancellationState& s, CancellationCallbackNode* n) {
  if (n->next == n) {
    s.callbacks = nullptr;
  } else {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    if (s.callbacks == n) s.callbacks = n->next;
  }
  n->prev = n->next = nullptr;
}

void run_callback(absl::AnyInvocable<void()>& fn) noexcept {
  try {
    fn();
  } catch (...) {
    try {
      log(LogLevel::kError, "Exception in a CancellationCallback: " +
                                describe_exception(std::current_exception()));
    } catch (...) {
    }
  }
}

}  // namespace

bool CancellationState::request() {
  std::unique_lock<std::mutex> lock(mu);
  if (requested.exchange(true, std::memory_order_acq_rel)) return false;
  // From here on no callback registers (the constructor sees the flag under
  // mu and runs its fn itself): drain the list as it is.
  while (CancellationCallbackNode* n = callbacks) {
    unlink(*this, n);
    running = n;
    n->runner = std::this_thread::get_id();
    bool destroyed = false;
    n->destroyed_while_running = &destroyed;
    lock.unlock();
    run_callback(n->fn);
    if (!destroyed) n->destroyed_while_running = nullptr;
    lock.lock();
    running = nullptr;
    cv.notify_all();  // a destructor waiting for this callback
  }
  lock.unlock();
  cv.notify_all();  // wait_for_cancel()
  return true;
}

}  // namespace internal

CancellationCallback::CancellationCallback(const CancellationToken& token,
                                           absl::AnyInvocable<void()> fn) {
  if (!fn) throw std::invalid_argument("CancellationCallback: fn is empty");
  node_.fn = std::move(fn);
  internal::CancellationState* s = token.state_.get();
  if (s == nullptr) return;  // never cancelled: nothing to register
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->requested.load(std::memory_order_relaxed)) {
      internal::link_last(*s, &node_);
      state_ = token.state_;
      return;
    }
  }
  internal::run_callback(node_.fn);  // cancelled already: at once, here
}

CancellationCallback::~CancellationCallback() {
  if (state_ == nullptr) return;
  internal::CancellationState& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  if (node_.next != nullptr) {
    internal::unlink(s, &node_);  // not run, and now never will be
    return;
  }
  if (s.running == &node_) {
    if (node_.runner == std::this_thread::get_id()) {
      // Destroyed by its own fn: the runner must not touch the node again.
      *node_.destroyed_while_running = true;
      return;
    }
    s.cv.wait(lock, [&] { return s.running != &node_; });
  }
  // Else it ran already, and the runner is done with it.
}

}  // namespace eddy
