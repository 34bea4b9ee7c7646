#include "eddy/futures/scheduler.h"

#include <atomic>

namespace eddy {

namespace {

std::atomic<uint64_t> next_serial{1};

// Links `node` at the back of the circular list whose sentinel is `list`.
void link_back(internal::OwnedNode& list, internal::OwnedNode* node) noexcept {
  node->prev = list.prev;
  node->next = &list;
  list.prev->next = node;
  list.prev = node;
}

}  // namespace

constinit thread_local Scheduler* Scheduler::current_ = nullptr;

Scheduler::Scheduler()
    : serial_(next_serial.fetch_add(1, std::memory_order_relaxed)),
      anchor_(new internal::SchedulerAnchor(this)) {
  owned_.prev = owned_.next = &owned_;
  awaited_.prev = awaited_.next = &awaited_;
}

Scheduler::~Scheduler() { detach_scheduler(); }

void Scheduler::own(internal::OwnedNode* node) noexcept { link_back(owned_, node); }

void Scheduler::own_awaited(internal::OwnedNode* node) noexcept { link_back(awaited_, node); }

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
  // Dropping one node may disown others, from either list (a frame's
  // destructor can free a delivery), and should add none, so take them one
  // at a time from the front: the frames first, then what other threads
  // were to deliver. (Each drop stands alone; the order of the two kinds
  // was arbitrary when they shared one list.)
  for (;;) {
    internal::OwnedNode* list = owned_.next != &owned_ ? &owned_ : &awaited_;
    if (list->next == list) break;
    internal::OwnedNode* node = list->next;
    disown(node);
    node->drop(node);
  }
}

}  // namespace eddy
