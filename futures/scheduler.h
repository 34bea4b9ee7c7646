// The small interface through which a Future reaches the loop it belongs to,
// without futures/ knowing anything about loops. IOLoop implements it; a
// test or another event loop may too.
//
// A Future binds, at creation, to the Scheduler current on the creating
// thread (Scheduler::current()). When it completes, its callbacks are posted
// to that scheduler and run on a later turn, never inside set_result(). With
// no scheduler current, callbacks run inline at completion.
//
//   class MyLoop : public eddy::Scheduler {
//     void post(absl::AnyInvocable<void()> fn) override { queue_.push_back(std::move(fn)); }
//     std::shared_ptr<eddy::RemoteScheduler> remote() override { return remote_; }
//     ...
//   };
//
// Threading: a Scheduler is used from its own thread; only its
// RemoteScheduler may be used from other threads.
//
// Lifetime: futures may outlive their scheduler. They hold a reference to a
// small anchor that the scheduler clears when it goes away (see
// detach_scheduler()); from then on their callbacks run inline. A scheduler
// also owns the frames of coroutines suspended on it and the loop-side ends
// of cross-thread deliveries, and frees them when it is detached, so a loop
// destroyed mid-flight leaks nothing and frees nothing on a foreign thread.
#ifndef EDDY_FUTURES_SCHEDULER_H_
#define EDDY_FUTURES_SCHEDULER_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "eddy/futures/internal/keep_alive.h"

namespace eddy {

class Scheduler;

// The thread-safe door into a scheduler, used to deliver completions from
// other threads (a pool finishing a ConcurrentFuture). Held by shared_ptr,
// so it outlives the scheduler and answers false once that is gone.
class RemoteScheduler {
 public:
  virtual ~RemoteScheduler() = default;
  // Queues `fn` to run on the scheduler's thread. Safe from any thread.
  // Returns false, and destroys `fn` on the calling thread without running
  // it, when the scheduler is closed. Throws std::bad_alloc (and `fn` dies
  // unrun) if queuing needs memory that cannot be had.
  virtual bool post(absl::AnyInvocable<void()> fn) = 0;
  // The same for a callable returning a Future (a coroutine lambda): it is
  // kept alive, captures included, until the coroutine it starts is
  // finished, as IOLoop::add_callback keeps it. One allocation for the box.
  template <class F>
    requires internal::NeedsKeeping<F>
  bool post(F&& fn) {
    return post(absl::AnyInvocable<void()>(
        internal::KeptCallable<std::decay_t<F>>(std::forward<F>(fn))));
  }

  // As post(), for a completion that must not be lost and has nobody to
  // report a failure to (an offload's outcome, a delivery from a worker,
  // posted from noexcept code and destructors): it does not fail for lack
  // of memory. IOLoop's inbox waits for memory and retries instead (see
  // Inbox::push_slow), so the calling thread may block while memory is
  // short. The default calls post(): an implementation whose post() can
  // throw should override it.
  virtual bool post_completion(absl::AnyInvocable<void()> fn) noexcept {
    return post(std::move(fn));
  }
};

namespace internal {

// Shared by a scheduler and every future bound to it; cleared when the
// scheduler goes away. Reference counted without atomics: like the futures
// that hold it, it lives on the scheduler's thread.
class SchedulerAnchor {
 public:
  explicit SchedulerAnchor(Scheduler* target) : target_(target) {}
  Scheduler* get() const { return target_; }
  void add_ref() { ++refs_; }
  void release() {
    if (--refs_ == 0) delete this;
  }
  void clear() { target_ = nullptr; }

  // Raised by the scheduler while its next post might need an allocation
  // (see Scheduler::reserve_post): a completing future then asks it to
  // make room before it changes any state. One byte beside the target,
  // which the completion reads anyway.
  bool post_room_low() const { return post_room_low_; }
  void set_post_room_low(bool low) { post_room_low_ = low; }

 private:
  Scheduler* target_;
  uint32_t refs_ = 1;
  bool post_room_low_ = false;
};

// Something loop-affine that a scheduler keeps alive on behalf of work that
// is in flight elsewhere: a coroutine frame suspended on it, or the payload
// of a delivery from another thread (see delivery.h). An intrusive list node,
// so owning never allocates. If the scheduler goes away first,
// detach_scheduler() calls `drop` on its own thread, which frees the payload.
struct OwnedNode {
  OwnedNode* prev = nullptr;
  OwnedNode* next = nullptr;
  void (*drop)(OwnedNode* self) = nullptr;
  bool linked() const { return prev != nullptr; }
};

}  // namespace internal

class Scheduler {
 public:
  Scheduler();
  virtual ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `fn` on this scheduler's thread during a later turn; never before
  // returning. Called only on the scheduler's thread.
  virtual void post(absl::AnyInvocable<void()> fn) = 0;

  // As post([=] { resume(ctx); }), for the hottest post there is: a
  // suspended coroutine's resume when the future it awaits completes. Two
  // words, nothing to destroy, so an implementation may queue them without
  // building a closure. Like every queued post it is dropped unrun when the
  // scheduler detaches (the frames it would resume are destroyed then).
  // `ctx` is the coroutine's CoroutineWaiter (an IOLoop's watchdog names
  // the coroutine by its location).
  virtual void post_resume(void (*resume)(void*), void* ctx) { post(Resume{resume, ctx}); }

  // Resumes a suspended coroutine now, from inside something this scheduler
  // is running (a posted closure, a future's callback, a delivery from
  // another thread): `ctx` is its CoroutineWaiter, as for post_resume. An
  // IOLoop whose watchdog is on names the coroutine, by its location, for
  // as long as the resume runs, rather than the closure that resumed it.
  virtual void resume_now(void (*resume)(void*), void* ctx) { resume(ctx); }

  // Completions cannot fail halfway. A future marks itself done and then
  // posts its callbacks' turn (or its coroutine's resume); a post that threw
  // there would leave it done with its callbacks lost. So a scheduler whose
  // post() may allocate keeps room for the next posts ready and raises its
  // anchor's post_room_low() while it cannot promise that; a future about
  // to complete calls reserve_post() first, only when the flag is up, and
  // changes nothing if it throws. Scheduler thread only.
  //
  // Makes room for the next few posts (a completion's own, and those of
  // what it completes inline: a multi() counting its children, a chain of
  // cancellations); throws std::bad_alloc if it cannot. The default does
  // nothing (a scheduler that never raises the flag).
  virtual void reserve_post() {}

  // Makes room for `n` more posts at once, for a call that completes many
  // futures and must not fail halfway (Event::set and notify_all wake every
  // waiter or none; a primitive's destructor cancels all its waiters): once
  // it returns, the next `n` completions on this scheduler find room for
  // their posts, with the margin reserve_post() keeps for what each
  // completes inline, provided nothing else posts in between. Throws
  // std::bad_alloc, having queued nothing, if the room cannot be had.
  // Scheduler thread only. The default does nothing (a scheduler whose
  // post() cannot fail).
  virtual void reserve_posts(size_t n) { (void)n; }

  // The thread-safe door into this scheduler.
  virtual std::shared_ptr<RemoteScheduler> remote() = 0;

  // True when called on the thread that runs this scheduler. Used by the
  // owner-thread checks on Future (on in builds without NDEBUG).
  virtual bool in_scheduler_thread() const = 0;

  // The scheduler current on this thread, or nullptr.
  static Scheduler* current() noexcept { return current_; }

  // The anchor futures hold; valid until detach_scheduler().
  internal::SchedulerAnchor* anchor() const noexcept { return anchor_; }

  // A number no other scheduler of this process had or will have (never 0):
  // tells this scheduler from one built later at the same address.
  uint64_t serial() const noexcept { return serial_; }

  // Keeps `node` until disown(node), or calls node->drop at
  // detach_scheduler(). Scheduler thread only.
  void own(internal::OwnedNode* node) noexcept;
  // As own(), for the loop-side end of work that another thread is doing
  // for this scheduler and will post the completion of (an offload, a
  // ConcurrentFuture bridged onto the loop): awaiting_other_threads() is
  // true while any such node is owned. The same cost as own(): the nodes
  // sit on a list of their own. Scheduler thread only.
  void own_awaited(internal::OwnedNode* node) noexcept;
  // Forgets `node` (from either list); a no-op when it is not owned.
  // Scheduler thread only.
  static void disown(internal::OwnedNode* node) noexcept;

  // True while a node given to own_awaited() is owned: a post from another
  // thread is still to come. An idle IOLoop on an auto-advancing
  // ManualClock does not jump the clock then. Scheduler thread only.
  bool awaiting_other_threads() const noexcept { return awaited_.next != &awaited_; }

 protected:
  // post_resume()'s closure, for implementations that build it in place.
  struct Resume {
    void (*resume)(void*);
    void* ctx;
    void operator()() const { resume(ctx); }
  };

  // Makes `s` (or none) current on the calling thread.
  static void set_current(Scheduler* s) noexcept { current_ = s; }

  // Raises or lowers the anchor's post_room_low() (see reserve_post). No-op
  // once detached.
  void set_post_room_low(bool low) noexcept {
    if (anchor_ != nullptr) anchor_->set_post_room_low(low);
  }

  // Called first by the implementation's destructor, while its queues still
  // exist: futures bound here stop posting (their callbacks run inline from
  // now on) and suspended coroutine frames are destroyed. Idempotent.
  // What is still queued must then be destroyed without being run: a queued
  // coroutine resume may point at a frame destroyed here.
  void detach_scheduler();

 private:
  // constinit: read in hot paths; without it, every read from another
  // file first checks for a dynamic initializer.
  static constinit thread_local Scheduler* current_;
  const uint64_t serial_;
  internal::SchedulerAnchor* anchor_;
  internal::OwnedNode owned_;    // sentinel of a circular list
  internal::OwnedNode awaited_;  // the same, for own_awaited()'s nodes
};

}  // namespace eddy

#endif  // EDDY_FUTURES_SCHEDULER_H_
