#include "eddy/futures/scheduler.h"

#include <atomic>

namespace eddy {

namespace {

std::atomic<uint64_t> next_serial{1};

}  // namespace

constinit thread_local Scheduler* Scheduler::current_ = nullptr;

Scheduler::Scheduler()
    : serial_(next_serial.fetch_add(1, std::memory_order_relaxed)),
      anchor_(new internal::SchedulerAnchor(this)) {
  owned_.prev = owned_.next = &owned_;
}

Scheduler::~Scheduler() { detach_scheduler(); }

void Scheduler::own(internal::OwnedNode* node) noexcept {
  node->prev = owned_.prev;
  node->next = &owned_;
  owned_.prev->next = node;
  owned_.prev = node;
}

void Scheduler::disown(internal::OwnedNode* node) noexcept {
  if (!node->linked()) return;
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = nullptr;
}

void Scheduler::detach_scheduler() {
  if (current_ == this) current_ = nullptr;
  if (anchor_ != nullptr) {
    // Clear first: dropping the nodes below runs destructors that may
    // complete futures; their callbacks must not be posted here any more, and
    // resumers of frames bound here must not resume them.
    anchor_->clear();
    anchor_->release();
    anchor_ = nullptr;
  }
  // Dropping one node may disown others (a frame's destructor can free a
  // delivery), never add one here, so take them one at a time from the front.
  while (owned_.next != &owned_) {
    internal::OwnedNode* node = owned_.next;
    disown(node);
    node->drop(node);
  }
}

}  // namespace eddy
