// LoopRef: a weak reference to an IOLoop for objects that outlive what they
// scheduled on it (a PeriodicCallback, with_timeout's cleanup): get()
// returns the loop while it is open and nullptr once it has been closed or
// destroyed, so they never touch a dead loop. Built on the scheduler anchor
// futures already hold. Not a public API.
//
// Threading: the loop's thread only (the anchor's count is not atomic).
#ifndef EDDY_LOOP_INTERNAL_LOOP_REF_H_
#define EDDY_LOOP_INTERNAL_LOOP_REF_H_

#include <utility>

#include "eddy/futures/scheduler.h"
#include "eddy/loop/io_loop.h"

namespace eddy::internal {

class LoopRef {
 public:
  LoopRef() = default;
  explicit LoopRef(IOLoop* loop) : anchor_(loop->anchor()) {
    if (anchor_ != nullptr) anchor_->add_ref();
  }
  LoopRef(const LoopRef& o) : anchor_(o.anchor_) {
    if (anchor_ != nullptr) anchor_->add_ref();
  }
  LoopRef(LoopRef&& o) noexcept : anchor_(std::exchange(o.anchor_, nullptr)) {}
  LoopRef& operator=(LoopRef o) noexcept {
    std::swap(anchor_, o.anchor_);
    return *this;
  }
  ~LoopRef() {
    if (anchor_ != nullptr) anchor_->release();
  }

  // The loop, or nullptr once it is closed (or was never set).
  IOLoop* get() const {
    return anchor_ != nullptr ? static_cast<IOLoop*>(anchor_->get()) : nullptr;
  }

 private:
  SchedulerAnchor* anchor_ = nullptr;
};

}  // namespace eddy::internal

#endif  // EDDY_LOOP_INTERNAL_LOOP_REF_H_
