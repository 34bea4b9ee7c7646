// LoopHome: the loop a loop-affine object belongs to, in a form that any
// thread may use, even while that loop is being destroyed. For objects that
// tolerate being dropped on the wrong thread (a sync/ primitive, a Lock
// guard, a PeriodicCallback): they look here instead of at the Scheduler,
// which such a thread must never dereference (it may be freed meanwhile).
//
//   LoopHome home;                              // in the object
//   home.bind(Scheduler::current());            // on the loop, at each use
//   ...
//   if (home.here()) { touch(); } else {        // on any thread
//     home.post_owned(std::move(stuff), &touch_on_the_loop);
//   }
//
// bind() remembers the scheduler by its serial number, the thread it runs
// on, and a weak reference to its RemoteScheduler (taken the first time
// only: binding again to the same loop on the same thread compares two
// words). here() compares the thread; it never looks at a scheduler.
// post() and post_owned() go through the RemoteScheduler, which outlives
// the loop and refuses posts once the loop is closed.
//
// Not for users. Threading: bind() on the thread of the scheduler it is
// given (the current one); here(), post() and post_owned() from any thread.
// A foreign call racing a bind() that moves the object to another loop sees
// one home or the other.
#ifndef EDDY_FUTURES_INTERNAL_LOOP_HOME_H_
#define EDDY_FUTURES_INTERNAL_LOOP_HOME_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "eddy/futures/scheduler.h"

namespace eddy::internal {

class LoopHome {
 public:
  LoopHome() = default;
  LoopHome(const LoopHome&) = delete;
  LoopHome& operator=(const LoopHome&) = delete;

  // Scheduler `s`'s thread, `s` being current there (or null: the home
  // stays as it is). Makes `s` the home, and this thread its thread (a
  // loop handed to another thread moves its objects' homes along as they
  // are used there).
  void bind(Scheduler* s) {
    if (s == nullptr) return;
    if (s->serial() == serial_.load(std::memory_order_relaxed) &&
        thread_.load(std::memory_order_relaxed) == this_thread()) [[likely]] {
      return;
    }
    rebind(s);
  }

  // Any thread: true when the caller may touch the object: it was never
  // bound (no scheduler was ever current where it was used: its futures
  // have no loop to be foreign to), or the caller runs on the thread that
  // bound it last. Reads two words; nothing of the scheduler, not even
  // which one is current here (a thread that handed its loop to another
  // may still have it current, and the other may have destroyed it).
  bool here() const noexcept {
    return thread_.load(std::memory_order_relaxed) == this_thread() ||
           serial_.load(std::memory_order_relaxed) == 0;
  }

  // Any thread: true once bind() was given a scheduler.
  bool bound() const noexcept { return serial_.load(std::memory_order_relaxed) != 0; }

  // Any thread: queues `fn` to run on the home loop's thread. Returns
  // false, destroying `fn` here unrun, when there is no home or its loop is
  // closed or gone: `fn` must hold nothing loop-affine (use post_owned).
  bool post(absl::AnyInvocable<void()> fn) const;

  // Any thread: hands `payload` to the home loop, whose thread runs
  // `fn(*payload)` on a later turn and destroys it (or only destroys it,
  // if the loop closes first). Returns false when there is no home or its
  // loop is closed or gone: the payload is then leaked on purpose (and
  // hidden from LeakSanitizer), since what it holds belongs to a loop whose
  // thread may still be using it, and no other thread may destroy it.
  // Never throws. The payload may own this LoopHome: nothing of it is used
  // once the payload is queued (the loop may have destroyed it already).
  template <class T>
  bool post_owned(std::unique_ptr<T> payload, void (*fn)(T&)) const noexcept {
    // 16 bytes, nothrow-movable: AnyInvocable stores it in place, so making
    // the task cannot fail after the payload left the unique_ptr.
    return post_marked(absl::AnyInvocable<void()>(Owned<T>(payload.release(), fn)));
  }

 private:
  // Owns the payload on its way to the loop: frees it there, run or not.
  // Destroyed unrun on the posting thread inside post_marked, it is the
  // refused post's: it lets the payload go without destroying it.
  template <class T>
  class Owned {
   public:
    Owned(T* payload, void (*fn)(T&)) noexcept : payload_(payload), fn_(fn) {}
    Owned(Owned&& o) noexcept : payload_(std::exchange(o.payload_, nullptr)), fn_(o.fn_) {}
    Owned& operator=(Owned&&) = delete;
    ~Owned() {
      if (payload_ == nullptr) return;
      if (posting_here()) {
        leak(payload_);
        return;
      }
      delete payload_;
    }
    void operator()() {
      std::unique_ptr<T> payload(std::exchange(payload_, nullptr));
      fn_(*payload);
    }

   private:
    T* payload_;
    void (*fn_)(T&);
  };

  // The calling thread, as the address of a thread_local: unique among
  // running threads, like std::thread::id (and like it, an ended thread's
  // may come back), without the call into libc.
  static const void* this_thread() noexcept { return &t_thread_mark; }
  static inline thread_local char t_thread_mark = 0;

  void rebind(Scheduler* s);
  // post(), with this thread marked as posting (posting_here()) until the
  // task is queued or destroyed.
  bool post_marked(absl::AnyInvocable<void()>&& task) const noexcept;
  static bool posting_here() noexcept;
  // Keeps `p` alive for good, out of LeakSanitizer's reports.
  static void leak(const void* p) noexcept;

  void lock() const noexcept;
  void unlock() const noexcept { locked_.store(false, std::memory_order_release); }

  std::atomic<uint64_t> serial_{0};            // the home's Scheduler::serial(); 0: none
  std::atomic<const void*> thread_{nullptr};  // this_thread() of the last bind
  mutable std::atomic<bool> locked_{false};    // a spin lock for remote_ (rebind, post)
  std::weak_ptr<RemoteScheduler> remote_;      // guarded by locked_
};

}  // namespace eddy::internal

#endif  // EDDY_FUTURES_INTERNAL_LOOP_HOME_H_
