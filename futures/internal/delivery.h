// Delivering loop-affine work from another thread, safely in both orders of
// "the work finishes" and "the loop goes away".
//
// The payload (typically a closure holding Future handles or a coroutine
// handle) is created and destroyed only on the loop's thread:
//   - the loop thread calls make_delivery(): the scheduler owns the payload
//     and the caller gets a DeliveryHandle that may move to any thread;
//   - any thread calls handle.deliver(): the payload is posted to the loop's
//     RemoteScheduler and runs (then dies) on the loop thread; a handle
//     destroyed without deliver() posts the payload's destruction instead;
//   - if the loop is destroyed first, detach_scheduler() drops the payload
//     on the loop thread, and the handle later only releases memory.
// The control block is reference counted with atomics (the loop side and
// the handle side); it never touches the payload off the loop thread.
// Costs one (recycled) allocation.
//
// make_delivery_with<Arg>() makes a handle whose deliver(arg) hands the
// payload an argument from the delivering thread: payload(arg) on the loop.
// The argument travels in the same block (written before the post, read
// after it, destroyed with the block on whichever side lets go last), so
// a callback that needs the done future costs no second allocation.
#ifndef EDDY_FUTURES_INTERNAL_DELIVERY_H_
#define EDDY_FUTURES_INTERNAL_DELIVERY_H_

#include <atomic>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "eddy/futures/internal/recycler.h"
#include "eddy/futures/scheduler.h"

namespace eddy::internal {

// The Arg of a delivery without an argument.
struct NoDeliveryArg {};

template <class Fn, class Arg = NoDeliveryArg>
class DeliveryHandle;

template <class Fn, class Arg = NoDeliveryArg>
class DeliveryBlock : public Recycled {
 private:
  friend class DeliveryHandle<Fn, Arg>;
  template <class F>
  friend DeliveryHandle<F> make_delivery(Scheduler* scheduler, F payload);
  template <class A, class F>
  friend DeliveryHandle<F, A> make_delivery_with(Scheduler* scheduler, F payload);

  struct Node : OwnedNode {
    DeliveryBlock* owner;
  };

  DeliveryBlock(Scheduler* scheduler, Fn payload)
      : remote_(scheduler->remote()), payload_(std::move(payload)) {
    node_.owner = this;
    node_.drop = &drop;
    scheduler->own(&node_);
  }

  // Loop thread, from detach_scheduler(): the loop is going away.
  static void drop(OwnedNode* node) {
    DeliveryBlock* d = static_cast<Node*>(node)->owner;
    d->payload_.reset();
    d->release();  // the loop side's reference
  }

  // Any thread; consumes the handle side's reference. The posted closure
  // owns that reference: if the post fails, or the loop is destroyed with
  // the closure still queued, the closure's destructor releases it.
  void post(bool run) {
    remote_->post([ref = Ref(this), run]() mutable {
      DeliveryBlock* d = ref.get();
      if (!d->node_.linked()) return;  // the loop dropped the payload already
      Scheduler::disown(&d->node_);
      // A plain local, not an optional: GCC 12 at -O1 reports a moved
      // std::optional as maybe-uninitialized (bug 80635).
      Fn payload = std::move(*d->payload_);
      d->payload_.reset();
      d->release();  // the loop side's reference; ref keeps d alive
      if (run) {
        if constexpr (std::is_same_v<Arg, NoDeliveryArg>) {
          payload();
        } else {
          payload(*d->arg_);
        }
      }
    });
  }

  struct Ref {
    explicit Ref(DeliveryBlock* d) : d_(d) {}
    Ref(Ref&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    ~Ref() {
      if (d_ != nullptr) d_->release();
    }
    DeliveryBlock* get() const { return d_; }
    DeliveryBlock* d_;
  };

  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Node node_;                      // loop thread only
  std::atomic<int> refs_{2};       // loop side + handle side
  std::shared_ptr<RemoteScheduler> remote_;
  std::optional<Fn> payload_;      // loop thread only
  // Written by the handle side before it posts, read by the posted closure
  // on the loop (the inbox's publication orders the two); destroyed with
  // the block.
  [[no_unique_address]] std::conditional_t<std::is_same_v<Arg, NoDeliveryArg>, NoDeliveryArg,
                                           std::optional<Arg>>
      arg_;
};

// The delivering side: move-only, usable from any thread.
template <class Fn, class Arg>
class DeliveryHandle {
 public:
  DeliveryHandle(DeliveryHandle&& o) noexcept : block_(std::exchange(o.block_, nullptr)) {}
  DeliveryHandle& operator=(DeliveryHandle&& o) noexcept {
    if (this != &o) {
      reset();
      block_ = std::exchange(o.block_, nullptr);
    }
    return *this;
  }
  ~DeliveryHandle() { reset(); }

  // Runs the payload on the loop thread during a later turn, unless the
  // loop is gone. At most once.
  void deliver()
    requires std::is_same_v<Arg, NoDeliveryArg>
  {
    if (block_ != nullptr) std::exchange(block_, nullptr)->post(true);
  }

  // The same, handing the payload `arg` (copied or moved here, on the
  // delivering thread). If the copy throws, nothing is posted yet: the
  // handle still holds the block, and its destructor posts the payload's
  // destruction.
  template <class A>
    requires(!std::is_same_v<Arg, NoDeliveryArg>)
  void deliver(A&& arg) {
    if (block_ == nullptr) return;
    block_->arg_.emplace(std::forward<A>(arg));
    std::exchange(block_, nullptr)->post(true);
  }

 private:
  template <class F>
  friend DeliveryHandle<F> make_delivery(Scheduler* scheduler, F payload);
  template <class A, class F>
  friend DeliveryHandle<F, A> make_delivery_with(Scheduler* scheduler, F payload);
  explicit DeliveryHandle(DeliveryBlock<Fn, Arg>* b) : block_(b) {}

  // Not delivered: the payload must still die on the loop thread.
  void reset() {
    if (block_ != nullptr) std::exchange(block_, nullptr)->post(false);
  }

  DeliveryBlock<Fn, Arg>* block_;
};

// Loop thread (`scheduler` runs here). See the file comment.
template <class Fn>
DeliveryHandle<Fn> make_delivery(Scheduler* scheduler, Fn payload) {
  return DeliveryHandle<Fn>(new DeliveryBlock<Fn>(scheduler, std::move(payload)));
}

// Loop thread. The same, for a payload called as payload(Arg&) with what
// the handle's deliver(arg) hands it.
template <class Arg, class Fn>
DeliveryHandle<Fn, Arg> make_delivery_with(Scheduler* scheduler, Fn payload) {
  return DeliveryHandle<Fn, Arg>(new DeliveryBlock<Fn, Arg>(scheduler, std::move(payload)));
}

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_DELIVERY_H_
