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
// the handle side); it never touches the payload off the loop thread. In
// the common order (delivered while the loop lives) the loop holds both
// references when the posted closure runs, and frees the block without
// touching the count. The delivering thread reads and writes nothing of
// the block: the handle carries the scheduler's door, the posted closure
// carries the reference. Costs one (recycled) allocation.
//
// make_delivery_with<Arg>() makes a handle whose deliver(arg) hands the
// payload an argument from the delivering thread: payload(arg) on the loop.
// The argument travels in the posted closure (stored in the loop's queue
// without an allocation when it is small, as a ConcurrentFuture handle
// is), so a callback that needs the done future costs no second
// allocation.
//
// The maker says who will deliver (DeliveryFrom): a delivery that waits for
// work on another thread keeps Scheduler::awaiting_other_threads() true
// until it runs or is dropped, which stops an auto-advancing ManualClock
// from jumping past that work.
#ifndef EDDY_FUTURES_INTERNAL_DELIVERY_H_
#define EDDY_FUTURES_INTERNAL_DELIVERY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "eddy/futures/internal/recycler.h"
#include "eddy/futures/scheduler.h"

namespace eddy::internal {

// The Arg of a delivery without an argument.
struct NoDeliveryArg {};

// Who calls deliver(), as far as the maker knows.
enum class DeliveryFrom : uint8_t {
  // Any thread, this loop's own included (a callback adapter's `done`,
  // which legacy code often calls from a timer of the same loop).
  kAnyThread,
  // Work that runs on another thread for this loop (a pool's call, a
  // ConcurrentFuture that this loop does not complete itself): the loop is
  // awaiting it (Scheduler::own_awaited).
  kOtherThread,
};

template <class Fn, class Arg = NoDeliveryArg>
class DeliveryHandle;

template <class Fn, class Arg = NoDeliveryArg>
class DeliveryBlock : public Recycled {
 private:
  friend class DeliveryHandle<Fn, Arg>;
  template <class F>
  friend DeliveryHandle<F> make_delivery(Scheduler* scheduler, DeliveryFrom from, F payload);
  template <class A, class F>
  friend DeliveryHandle<F, A> make_delivery_with(Scheduler* scheduler, DeliveryFrom from,
                                                 F payload);
  template <class Make>
  friend DeliveryHandle<std::invoke_result_t<Make&>> make_delivery_in_place(Scheduler* scheduler,
                                                                           DeliveryFrom from,
                                                                           Make make);

  struct Node : OwnedNode {
    DeliveryBlock* owner;
  };

  DeliveryBlock(Scheduler* scheduler, DeliveryFrom from, Fn payload)
      : remote_(scheduler->remote()), payload_(std::move(payload)) {
    link(scheduler, from);
  }
  // The payload made by `make()` here, once the block's memory exists.
  struct InPlace {};
  template <class Make>
  DeliveryBlock(Scheduler* scheduler, DeliveryFrom from, InPlace, Make& make)
      : remote_(scheduler->remote()), payload_(std::in_place, make()) {
    link(scheduler, from);
  }

  void link(Scheduler* scheduler, DeliveryFrom from) noexcept {
    node_.owner = this;
    node_.drop = &drop;
    if (from == DeliveryFrom::kOtherThread) {
      scheduler->own_awaited(&node_);
    } else {
      scheduler->own(&node_);
    }
  }

  // Loop thread, from detach_scheduler(): the loop is going away.
  static void drop(OwnedNode* node) {
    DeliveryBlock* d = static_cast<Node*>(node)->owner;
    d->payload_.reset();
    d->release();  // the loop side's reference
  }

  // The handle side's reference, owned by the closure the handle posts: if
  // the post fails, or the loop is destroyed with the closure still queued,
  // the closure's destructor releases it.
  struct Ref {
    explicit Ref(DeliveryBlock* d) : d_(d) {}
    Ref(Ref&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    ~Ref() {
      if (d_ != nullptr) d_->release();
    }
    DeliveryBlock* d_;
  };

  // The closures a handle posts. They carry everything the delivering
  // thread hands over (the reference, the argument), so that thread reads
  // and writes nothing of the block: its lines stay with the loop, which
  // made the block and frees it.
  template <bool kRun>
  struct Posted {
    Ref ref;
    void operator()() { finish<kRun>(ref); }
  };
  struct PostedWith {
    Ref ref;
    Arg arg;
    void operator()() { finish<true>(ref, arg); }
  };

  // Loop thread, in a posted closure. Unless the loop dropped the payload
  // already (then `ref` frees the block when the closure dies), both
  // references are this thread's: the loop side's (the node is still
  // linked, and once disowned drop() never runs) and the handle side's, in
  // `ref`. So the block is freed without touching its counter, and the
  // payload runs (or, not delivered, dies) after.
  template <bool kRun, class... A>
  static void finish(Ref& ref, A&... arg) {
    DeliveryBlock* d = ref.d_;
    if (!d->node_.linked()) return;  // the loop dropped the payload already
    // A plain local, not an optional: GCC 12 at -O1 reports a moved
    // std::optional as maybe-uninitialized (bug 80635).
    Fn payload = std::move(*d->payload_);
    Scheduler::disown(&d->node_);
    ref.d_ = nullptr;
    delete d;
    if constexpr (kRun) payload(arg...);
  }

  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Node node_;                      // loop thread only
  std::atomic<int> refs_{2};       // loop side + handle side
  std::shared_ptr<RemoteScheduler> remote_;
  std::optional<Fn> payload_;      // loop thread only
};

// The delivering side: move-only, usable from any thread. It keeps the
// scheduler's door beside the block pointer (the block keeps the door
// alive until the handle side's reference goes), so delivering touches
// nothing of the block.
template <class Fn, class Arg>
class DeliveryHandle {
  using Block = DeliveryBlock<Fn, Arg>;

 public:
  DeliveryHandle(DeliveryHandle&& o) noexcept
      : block_(std::exchange(o.block_, nullptr)), remote_(o.remote_) {}
  DeliveryHandle& operator=(DeliveryHandle&& o) noexcept {
    if (this != &o) {
      reset();
      block_ = std::exchange(o.block_, nullptr);
      remote_ = o.remote_;
    }
    return *this;
  }
  ~DeliveryHandle() { reset(); }

  // Runs the payload on the loop thread during a later turn, unless the
  // loop is gone. At most once. Posts with post_completion: queuing does not
  // fail for lack of memory (it waits for memory instead), so the payload
  // is never lost and reset(), from the destructor, cannot throw.
  void deliver()
    requires std::is_same_v<Arg, NoDeliveryArg>
  {
    if (block_ == nullptr) return;
    remote_->post_completion(typename Block::template Posted<true>{
        typename Block::Ref(std::exchange(block_, nullptr))});
  }

  // The same, handing the payload `arg` (copied or moved here, on the
  // delivering thread, and carried in the posted closure). If the copy
  // throws, nothing is posted yet: the handle still holds the block, and
  // its destructor posts the payload's destruction.
  template <class A>
    requires(!std::is_same_v<Arg, NoDeliveryArg>)
  void deliver(A&& arg) {
    if (block_ == nullptr) return;
    Arg copy(std::forward<A>(arg));
    remote_->post_completion(typename Block::PostedWith{
        typename Block::Ref(std::exchange(block_, nullptr)), std::move(copy)});
  }

 private:
  template <class F>
  friend DeliveryHandle<F> make_delivery(Scheduler* scheduler, DeliveryFrom from, F payload);
  template <class A, class F>
  friend DeliveryHandle<F, A> make_delivery_with(Scheduler* scheduler, DeliveryFrom from,
                                                 F payload);
  template <class Make>
  friend DeliveryHandle<std::invoke_result_t<Make&>> make_delivery_in_place(Scheduler* scheduler,
                                                                           DeliveryFrom from,
                                                                           Make make);
  explicit DeliveryHandle(Block* b) : block_(b), remote_(b->remote_.get()) {}

  // Not delivered: the payload must still die on the loop thread.
  void reset() {
    if (block_ == nullptr) return;
    remote_->post_completion(typename Block::template Posted<false>{
        typename Block::Ref(std::exchange(block_, nullptr))});
  }

  Block* block_;
  RemoteScheduler* remote_;
};

// Loop thread (`scheduler` runs here). See the file comment.
template <class Fn>
DeliveryHandle<Fn> make_delivery(Scheduler* scheduler, DeliveryFrom from, Fn payload) {
  return DeliveryHandle<Fn>(new DeliveryBlock<Fn>(scheduler, from, std::move(payload)));
}

// Loop thread. make_delivery() with the payload made by `make()` inside the
// block, after the block's allocation: a payload whose destruction does
// something (a completer that fails its future when dropped) is never
// destroyed by a failed allocation here.
template <class Make>
DeliveryHandle<std::invoke_result_t<Make&>> make_delivery_in_place(Scheduler* scheduler,
                                                                  DeliveryFrom from, Make make) {
  using Fn = std::invoke_result_t<Make&>;
  using Block = DeliveryBlock<Fn>;
  return DeliveryHandle<Fn>(new Block(scheduler, from, typename Block::InPlace{}, make));
}

// Loop thread. The same, for a payload called as payload(Arg&) with what
// the handle's deliver(arg) hands it.
template <class Arg, class Fn>
DeliveryHandle<Fn, Arg> make_delivery_with(Scheduler* scheduler, DeliveryFrom from,
                                           Fn payload) {
  return DeliveryHandle<Fn, Arg>(
      new DeliveryBlock<Fn, Arg>(scheduler, from, std::move(payload)));
}

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_DELIVERY_H_
