// IOLoop: the single-threaded event loop everything comes back to, after
// Tornado's tornado.ioloop.IOLoop. One loop per thread runs callbacks,
// timers and file-descriptor handlers; other threads hand it work with
// add_callback(); blocking work goes to a ThreadPoolExecutor and its result
// comes back through add_future().
//
//   eddy::IOLoop& loop = eddy::IOLoop::current();
//   loop.call_later(absl::Milliseconds(100), [] { std::puts("tick"); });
//   int answer = loop.run_sync([]() -> eddy::Future<int> {
//     eddy::Future<int> f;
//     eddy::IOLoop::current().add_callback([f]() mutable { f.set_result(42); });
//     return f;
//   });
//
// One iteration of the loop, in order (cf. libuv's design document):
//   1. Decide how long to wait: not at all if callbacks are queued, a stop
//      is pending or a timer is due within 20 us (a sleep would end later
//      than that: the kernel's wake-up takes longer, so the loop polls
//      for it instead); otherwise until the earliest timer
//      (forever with no timers, or on a clock that does not advance by
//      itself, such as ManualClock; an auto-advancing ManualClock jumps to
//      the timer instead when nothing else is ready and no work the loop
//      awaits from another thread, an offload or a bridged
//      ConcurrentFuture, is still out).
//   2. Poll: epoll_wait on the registered fds and the waker (an eventfd
//      that other threads write only when the loop is asleep and not yet
//      signalled). Skipped entirely when there is no fd to watch and no
//      reason to wait.
//   3. Clear the inbox's wake-up state after a poll that could sleep. (The
//      inbox itself is read in phase 6, without a lock.)
//   4. Run the handlers of the ready fds. A handler may add, update or
//      remove any handler, itself included; events of a handler removed
//      meanwhile are dropped.
//   5. Fire the timers due when the phase began, earliest first and in
//      scheduling order for equal deadlines; timers scheduled during this
//      phase wait for the next one (one scheduled in the past counts as due
//      at the phase's time, after the timers already due).
//   6. Run the callbacks queued before this phase began: this thread's, in
//      FIFO order, then those other threads had posted to the inbox by
//      then, in FIFO order per posting thread. Callbacks posted meanwhile
//      (from any thread) run on the next iteration, so a callback that
//      re-posts itself, or a thread that never stops posting, never starves
//      I/O and timers. While other threads stream posts (the last turn took
//      two or more of them) and nothing of its own is queued, the loop lets
//      a batch gather for at most ~2.5 us before taking it: taking a few
//      closures at a time bounces every cache line between the cores. A
//      lone post is never held back.
//      Then, if the first callback queued during this phase is a
//      coroutine's resume (a future it awaited was completed here), it runs
//      now rather than first thing in phase 6 of the next iteration: the
//      same order of callbacks, one iteration less per await. Once per
//      iteration, and not after a stop().
//   7. If stop() was called, return from start().
// Futures bound to the loop post their callbacks through the same queue
// (IOLoop implements eddy::Scheduler), so they run in phase 6 too.
//
// Threading: an IOLoop belongs to one thread: the one that created it,
// until another thread makes it current or runs it while it is not
// running. add_callback(), spawn_callback(), stop(), run_in_loop(), time()
// and remote() are safe from any thread; everything else must be called on
// the loop's thread, and in builds with EDDY_THREAD_CHECKS (on without
// NDEBUG) a call from another thread throws InvalidStateError naming the
// method. Every callback, timer and handler runs on the loop's thread. To
// post from a thread that may outlive the loop, keep remote(): it answers
// false instead of touching a destroyed loop. A loop may be handed to
// another thread (created here, started there) while its creator keeps
// calling add_callback(): the thread taking it over waits for a post the
// creator is making on its owner path, and the creator's later posts go
// through the cross-thread inbox, in order.
//
// Lifetime: destroying (or close()-ing) a loop destroys, on the calling
// thread and without running them, every queued callback, pending timer and
// fd handler, the closures other threads had queued, and whatever futures
// and coroutines owned by the loop hold (see Scheduler::detach_scheduler);
// futures bound to it run their callbacks inline from then on. A future
// whose callbacks' turn was queued loses them with it (they may hold the
// loop): they are destroyed there, unrun, and only callbacks added later
// run. Nothing leaks. The default executor the loop created, if any, is shut down too:
// its queued calls are cancelled and its running calls are waited for (see
// default_executor()); the completions of offloaded calls still in flight
// are dropped safely. A loop must not be destroyed while it runs.
//
// std::exit() may be called from a callback (or inside run_sync), as
// sys.exit() under Tornado: the process exits with that status. Of the
// loops running on the exiting thread, the default one (IOLoop::current()'s)
// is left as it is, neither closed nor freed, and one of static storage
// duration, which exit() destroys, is closed as usual (the callback never
// returns to it).
//
// Errors: a callback, timer or handler that throws is logged through
// eddy::log and the loop goes on (each runs once, whatever happens while
// its failure is reported). As in Tornado, a CancelledError escaping a
// callback, a timer or an add_future callback is not logged (the usual one
// reads a future cancelled on purpose); a handler's is. Misuse fails fast with InvalidStateError:
// start()/run_sync() on a running loop (nested), an fd added twice or
// removed when absent, a loop touched from a foreign thread, another
// loop's TimeoutHandle given to remove_timeout(), a run_sync() whose fn
// returns a Future of another loop. Bad arguments throw
// std::invalid_argument at the call, before anything is queued: an empty
// callable (nullptr, a null function pointer, an empty AnyInvocable), a
// negative fd, unknown event bits.
#ifndef EDDY_LOOP_IO_LOOP_H_
#define EDDY_LOOP_IO_LOOP_H_

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "eddy/executor/cancellation.h"
#include "eddy/executor/executor.h"
#include "eddy/executor/offload.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/futures/internal/copy_or_move.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/scheduler.h"
#include "eddy/futures/source_location.h"
#include "eddy/loop/internal/timer_queue.h"
#include "eddy/loop/time.h"

struct epoll_event;

namespace eddy {

class IOLoop;

namespace internal {

// The calling thread's std::thread::id, as the loop's owner test compares
// it (every post from the loop's thread asks). On x86-64 glibc a thread's
// id is its thread pointer: one load from %fs, where
// std::this_thread::get_id() calls pthread_self() through the PLT.
// Elsewhere, std::this_thread::get_id(). The two are equal (glibc's
// pthread_self() returns the thread pointer): tests/io_loop_test.cc.
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer)
#define EDDY_INTERNAL_THREAD_POINTER_ID 1
#endif
#endif
inline std::thread::id this_thread_id() noexcept {
#ifdef EDDY_INTERNAL_THREAD_POINTER_ID
  return std::thread::id(
      reinterpret_cast<std::thread::native_handle_type>(__builtin_thread_pointer()));
#else
  return std::this_thread::get_id();
#endif
}

}  // namespace internal

namespace internal {
class Inbox;
class Watchdog;
struct Activity;
enum class ActivityKind : uint8_t;
struct FdHandler;
}  // namespace internal

// Names a timer scheduled with call_later/call_at/add_timeout, for
// remove_timeout() on the same loop. A small value type (16 bytes); a
// default-constructed handle, and the handle of a timer that fired or was
// removed, name nothing, and removing them is a harmless no-op. A handle
// also names its loop (each loop numbers its timers from 1, so the timer
// part alone would match a timer of any other loop): handles of two loops
// never compare equal, and another loop's remove_timeout() refuses it.
class TimeoutHandle {
 public:
  TimeoutHandle() = default;
  // True if this handle was returned by a call_* method (whether or not the
  // timer is still pending).
  explicit operator bool() const { return seq_ != 0; }
  friend bool operator==(const TimeoutHandle& a, const TimeoutHandle& b) {
    return a.loop_ == b.loop_ && a.slot_ == b.slot_ && a.seq_ == b.seq_;
  }

 private:
  friend class IOLoop;
  TimeoutHandle(uint32_t loop, internal::TimerQueue::Id id)
      : loop_(loop), slot_(id.slot), seq_(id.seq) {}
  internal::TimerQueue::Id id() const { return internal::TimerQueue::Id{slot_, seq_}; }

  uint32_t loop_ = 0;  // the arming loop's id (IOLoop::id_), unique in the process
  uint32_t slot_ = 0;
  uint64_t seq_ = 0;   // 0: no timer
};

namespace internal {

template <class R>
struct IsConcurrentFuture : std::false_type {};
template <class T>
struct IsConcurrentFuture<ConcurrentFuture<T>> : std::true_type {};

// What run_sync returns and run_in_loop's ConcurrentFuture holds for a
// function returning R: T for Future<T> and ConcurrentFuture<T>, R itself
// otherwise.
template <class R>
struct Unwrapped {
  using type = R;
};
template <class T>
struct Unwrapped<Future<T>> {
  using type = T;
};
template <class T>
struct Unwrapped<ConcurrentFuture<T>> {
  using type = T;
};

// A Future or ConcurrentFuture, whatever reference or const is on it.
template <class R>
inline constexpr bool kIsAnyFuture = IsFuture<std::remove_cvref_t<R>>::value ||
                                     IsConcurrentFuture<std::remove_cvref_t<R>>::value;

// What run_sync returns (and run_in_loop's ConcurrentFuture holds) for a
// function returning R: T for Future<T> and ConcurrentFuture<T>, also when
// returned by reference or as const; R itself otherwise.
template <class R>
using RunResult =
    typename Unwrapped<std::conditional_t<kIsAnyFuture<R>, std::remove_cvref_t<R>, R>>::type;

// Calls cb(f) or cb(), whichever it accepts.
template <class F, class Fut>
void call_with_future(F& cb, Fut& f) {
  if constexpr (std::is_invocable_v<F&, Fut&>) {
    cb(f);
  } else {
    static_assert(std::is_invocable_v<F&>,
                  "add_future: cb must be callable as cb(future&) or cb()");
    cb();
  }
}

// add_future's call of cb: as Tornado's, a CancelledError escaping it (cb
// read a cancelled future's result) is not logged. Anything else is, by
// whoever runs the callback.
template <class F, class Fut>
void call_add_future_callback(F& cb, Fut& f) {
  try {
    call_with_future(cb, f);
  } catch (const CancelledError&) {
  }
}

// Completes a ConcurrentFuture exactly once; if destroyed first (the loop
// dropped the work without running it, or the Future it waited for died
// pending), fails it with CancelledError so that a waiting thread wakes
// instead of hanging. Move-only.
template <class T>
class LoopCompleter {
 public:
  explicit LoopCompleter(ConcurrentFuture<T> f) : f_(std::move(f)) {}
  LoopCompleter(LoopCompleter&& o) noexcept
      : f_(std::move(o.f_)), armed_(std::exchange(o.armed_, false)) {}
  LoopCompleter(const LoopCompleter&) = delete;
  LoopCompleter& operator=(const LoopCompleter&) = delete;
  LoopCompleter& operator=(LoopCompleter&&) = delete;
  ~LoopCompleter() {
    // done(): a twin (see below) that finds the future completed makes no
    // exception to throw away.
    if (armed_ && !f_.done()) {
      f_.try_set_exception(std::make_exception_ptr(CancelledError(
          "IOLoop::run_in_loop: the loop was closed before the work finished")));
    }
  }

  template <class... A>
  void set_value(A&&... args) {
    armed_ = false;
    try {
      f_.try_set_result(std::forward<A>(args)...);
    } catch (...) {
      // The value's copy threw (the future is left as it was): fail it
      // with that, or a thread waiting on it would hang.
      f_.try_set_exception(std::current_exception());
    }
  }
  void set_exception(std::exception_ptr e) {
    armed_ = false;
    f_.try_set_exception(std::move(e));
  }
  // Copies a done loop future's outcome.
  void set_from(Future<T>& done) {
    if (done.cancelled()) {
      set_exception(std::make_exception_ptr(CancelledError()));
    } else if (std::exception_ptr e = done.exception()) {
      set_exception(std::move(e));
    } else if constexpr (std::is_void_v<T>) {
      set_value();
    } else if constexpr (internal::is_deeply_copyable_v<T>) {
      set_value(done.result());
    } else {
      set_value(std::move(done.result()));
    }
  }
  bool armed() const { return armed_; }
  // Another completer of the same future: whichever completes it first
  // wins, and either one destroyed armed fails it (unless it is done).
  LoopCompleter twin() const { return LoopCompleter(f_); }
  // A twin that only completes: destroyed first, it leaves the future as
  // it is (another completer answers for that).
  LoopCompleter unarmed_twin() const {
    LoopCompleter c(f_);
    c.armed_ = false;
    return c;
  }
  // Hands this completer's duty to another: destroyed, it no longer fails
  // the future.
  void disarm() { armed_ = false; }

 private:
  ConcurrentFuture<T> f_;
  bool armed_ = true;
};

using Task = absl::AnyInvocable<void()>;

// A block of queued callbacks: slots [begin, end) hold live tasks, those
// before `begin` have run (and been destroyed), those from `end` on are raw.
struct TaskBlock {
  static constexpr uint32_t kCapacity = 256;  // 8 KiB of tasks

  TaskBlock* next = nullptr;
  uint32_t begin = 0;
  uint32_t end = 0;
  alignas(Task) unsigned char storage[kCapacity * sizeof(Task)];

  Task* slot(uint32_t i) {
    return std::launder(reinterpret_cast<Task*>(storage + size_t{i} * sizeof(Task)));
  }
  // Where the next task pushed here goes (one past the block when full).
  const void* next_slot() const { return storage + size_t{end} * sizeof(Task); }
  bool full() const { return end == kCapacity; }
  void reset() {
    next = nullptr;
    begin = end = 0;
  }
};

// A callable that add_callback() builds in its queue slot, on the owner
// thread, with no temporary closure to move (see InPlaceCallable). Others
// are wrapped first.
template <class F>
concept InPlaceLoopCallback =
    InPlaceCallable<F> && !NeedsKeeping<F> && std::is_invocable_v<std::decay_t<F>&>;

// A FIFO of queued callbacks in fixed-size blocks (see io_loop.cc): a push
// constructs the callback in place and queued callbacks never move; each
// runs where it was queued and is destroyed right after it runs. The head
// block holds callbacks unless it is the only block (a drained chain keeps
// its last block).
struct TaskChain {
  TaskBlock* head = nullptr;
  TaskBlock* tail = nullptr;
  bool empty() const;
};

// Emptied blocks kept for reuse, up to a bound.
struct SpareBlocks {
  TaskBlock* top = nullptr;
  TaskBlock* bottom = nullptr;  // valid when count > 0
  size_t count = 0;
};

}  // namespace internal

class IOLoop final : public Scheduler {
 public:
  // Event bits for fd handlers (the epoll values, as Tornado's). ERROR
  // (EPOLLERR | EPOLLHUP: an error or a hang-up) is always reported,
  // whether or not it was asked for.
  static constexpr uint32_t READ = 0x001;
  static constexpr uint32_t WRITE = 0x004;
  static constexpr uint32_t ERROR = 0x008 | 0x010;

  struct Options {
    // Where time() comes from; SteadyClock when empty. See manual_clock.h.
    std::shared_ptr<Clock> clock;
  };

  // Counters for tests and diagnostics. Loop thread only.
  struct Stats {
    size_t callbacks = 0;           // same-thread callbacks queued
    size_t timers = 0;              // pending timers
    size_t timer_heap_entries = 0;  // heap entries (cancelled timers leave at once)
    size_t handlers = 0;            // registered fds
    uint64_t iterations = 0;        // loop iterations run so far
    uint64_t waker_writes = 0;      // eventfd writes by other threads' posts and stop()
    // Memory the callback queues keep for reuse while empty: bounded, so a
    // burst of posts does not pin its memory.
    size_t retained_queue_bytes = 0;
  };

  // A new loop on the steady clock. It does not become current: call
  // make_current(), or run it (start(), run_sync()).
  // Throws std::system_error if epoll or eventfd cannot be created.
  IOLoop();
  explicit IOLoop(Options options);
  // close(). Aborts (after logging) if the loop is running, unless this
  // thread is ending inside one of its callbacks (std::exit(), see
  // Lifetime above): then it is closed all the same.
  ~IOLoop() override;

  // This thread's current loop; if there is none, a loop owned by this
  // thread is created (once; destroyed at thread exit, unless it is running
  // then: std::exit() from one of its callbacks) and made current.
  // Throws InvalidStateError if none is current and that default loop was
  // closed (IOLoop::current().close()): it is not replaced, since
  // references to it may still be held (Tornado's current() hands back the
  // closed loop, which then refuses every use). Make another loop current.
  // Throws InvalidStateError on a ThreadPoolExecutor worker with no loop
  // made current there (make_current(), or a run of a loop on it): a loop
  // created there would never run. A pool task that must reach a loop
  // takes it from the loop's own thread (IOLoop& loop = IOLoop::current();
  // captured) and posts with loop.add_callback(...).
  static IOLoop& current();
  // This thread's current loop, or nullptr; never creates one.
  static IOLoop* current_or_null() noexcept;
  // Makes this loop current on the calling thread (for IOLoop::current(),
  // and for the Futures created here) and the thread its owner. Called
  // during a run of this loop, the choice outlasts the run (see start()).
  // Throws InvalidStateError if it is running on another thread, or closed.
  void make_current();
  // Makes no loop current on the calling thread.
  static void clear_current() noexcept;

  // Runs the loop until stop() is called. The loop is current on this
  // thread while it runs (and this thread becomes its owner); afterwards
  // this thread's current loop is the one it had before the run (as
  // Tornado), unless make_current() chose this loop during the run. What
  // another thread made current is that thread's business: a loop made
  // current on one thread and run on another is not left current on the
  // second. The same holds for run_sync(). If stop()
  // was called before start(), runs one iteration without waiting and
  // returns (as Tornado).
  // Throws InvalidStateError if the loop is already running (nested start,
  // or running on another thread) or closed.
  void start();

  // Makes start() return after the current iteration (or run_sync() throw,
  // see there). Safe from any thread; wakes a sleeping loop. From another
  // thread it touches nothing of the loop once the stop is published, so
  // the loop's owner may destroy the loop as soon as start() returns, even
  // while stop() is still returning on the stopping thread.
  void stop();

  // True while start() or run_sync() runs. Loop thread only.
  bool is_running() const { return running_.load(std::memory_order_relaxed); }

  // Runs `fn` on this loop (on the calling thread) as a callback, after the
  // callbacks already queued (as Tornado), and then the loop, until the
  // future it returns is done; returns that future's value or rethrows its
  // exception. `fn` may return:
  //   - Future<T> (a coroutine is a function returning Future<T>) -> T;
  //   - ConcurrentFuture<T> (bridged onto the loop) -> T;
  //     either one also by reference or const (a getter returning
  //     `const Future<T>&`), waited for the same way;
  //   - anything else (or void), which is returned as is after one
  //     non-waiting iteration of the loop.
  // An exception thrown by fn propagates, after one more non-waiting
  // iteration (what fn queued before it threw runs, as in Tornado). With a
  // `timeout`, on expiry the future is cancelled (as Tornado's run_sync: a
  // ConcurrentFuture too, so work still queued in its pool never runs) and
  // TimeoutError is thrown. A coroutine's future is cancelled at once (see
  // coroutine.h): cleanup it awaits after that runs only if the loop runs
  // again. A future that ends cancelled without a timeout throws
  // CancelledError (Tornado: TimeoutError). A temporary fn returning a
  // Future (a coroutine lambda) is moved into a box its coroutine keeps,
  // so that a coroutine left suspended by a timeout or a stop() may still
  // use its captures when the loop runs again (one allocation); an lvalue
  // fn is called in place and stays the caller's to keep alive.
  // Throws InvalidStateError if the loop is already running (nested) or
  // closed, if stop() is called before the future is done, or if fn
  // returns a Future bound to another loop that still exists (as asyncio's
  // run_until_complete): it could complete only while that loop runs,
  // which it does not while this one does. (Make the future inside fn, or
  // run its own loop. A future whose loop is gone, or that has none, needs
  // no loop and is accepted.) A stop() made during a run that finishes
  // anyway (the future done in the same iteration) is consumed with that
  // run: it does not end the next one.
  //
  // Running a *different* loop (its start() or run_sync()) from inside a
  // callback of this one is allowed, but it blocks this loop: none of its
  // callbacks, timers or fd handlers run, and none of its futures
  // complete, until the inner run returns. Keep such inner runs short, or
  // run the other loop on a thread of its own.
  template <class F>
  auto run_sync(F&& fn, std::optional<absl::Duration> timeout = std::nullopt)
      -> internal::RunResult<std::invoke_result_t<F&>>;

  // Releases everything the loop holds, as the destructor does (see
  // Lifetime above); afterwards add_callback() returns false, remove_*()
  // are no-ops and the other methods throw InvalidStateError. Idempotent.
  // Throws InvalidStateError if the loop is running.
  void close();
  bool closed() const { return closed_; }

  // Runs `fn` on the loop's thread during a later iteration; never before
  // returning. Safe from any thread: a post from the loop's own thread takes
  // no lock and does not touch the waker; a post from another thread wakes
  // a sleeping loop (once per batch of posts). Returns true if queued, false
  // if the loop is closed (then `fn` is destroyed, unrun, before returning).
  // While the blocking watchdog is on, `where` is recorded and named in its
  // reports and when fn throws (otherwise it costs nothing: a queued
  // callback is one 32-byte closure).
  // Throws std::invalid_argument if `fn` is empty (nullptr, a null function
  // pointer, an empty AnyInvocable), on the calling thread, before anything
  // is queued. (Inline: for a closure built from a lambda at the call, the
  // test folds away.)
  bool add_callback(absl::AnyInvocable<void()> fn,
                    SourceLocation where = SourceLocation::current()) {
    if (fn == nullptr) [[unlikely]] internal::throw_empty_callable("IOLoop::add_callback", "fn");
    return add_nonempty_callback(std::move(fn), where);
  }

  // The same, for a small lambda (InPlaceLoopCallback): built where it
  // will run when posted on the loop's own thread.
  template <class F>
    requires internal::InPlaceLoopCallback<F>
  bool add_callback(F&& fn, SourceLocation where = SourceLocation::current()) {
    if (owner_push_in_place<F>(fn)) [[likely]] return true;
    return add_nonempty_callback(absl::AnyInvocable<void()>(std::forward<F>(fn)), where);
  }

  // Tornado's spawn_callback: the same as add_callback.
  template <class F>
    requires internal::InPlaceLoopCallback<F>
  bool spawn_callback(F&& fn, SourceLocation where = SourceLocation::current()) {
    if (owner_push_in_place<F>(fn)) [[likely]] return true;
    return add_nonempty_callback(absl::AnyInvocable<void()>(std::forward<F>(fn)), where);
  }
  bool spawn_callback(absl::AnyInvocable<void()> fn,
                      SourceLocation where = SourceLocation::current()) {
    if (fn == nullptr) [[unlikely]] internal::throw_empty_callable("IOLoop::spawn_callback", "fn");
    return add_nonempty_callback(std::move(fn), where);
  }

  // add_callback and spawn_callback with a callable that returns a Future
  // (a coroutine lambda): the same, and the callable, captures included,
  // is kept alive until the coroutine it starts is finished (completed,
  // failed, or destroyed with the loop), so that the coroutine may use its
  // captures after a co_await. (A callable that is not a coroutine is kept
  // until its Future is done.) The Future is dropped: an exception in it
  // is logged when it goes. Costs one allocation for the box.
  template <class F>
    requires internal::NeedsKeeping<F>
  bool add_callback(F&& fn, SourceLocation where = SourceLocation::current()) {
    internal::check_callable(fn, "IOLoop::add_callback", "fn");
    return add_nonempty_callback(internal::KeptCallable<std::decay_t<F>>(std::forward<F>(fn)),
                                 where);
  }
  template <class F>
    requires internal::NeedsKeeping<F>
  bool spawn_callback(F&& fn, SourceLocation where = SourceLocation::current()) {
    internal::check_callable(fn, "IOLoop::spawn_callback", "fn");
    return add_nonempty_callback(internal::KeptCallable<std::decay_t<F>>(std::forward<F>(fn)),
                                 where);
  }

  // Runs `fn` once, `delay` from now (a negative delay means now), on a
  // later iteration. Returns its handle for remove_timeout(). Timers due at
  // the same time fire in the order they were scheduled.
  // Throws InvalidStateError on a foreign thread or a closed loop,
  // std::invalid_argument if `fn` is empty.
  TimeoutHandle call_later(absl::Duration delay, absl::AnyInvocable<void()> fn,
                           SourceLocation where = SourceLocation::current());
  // As call_later, at the loop time `when`.
  TimeoutHandle call_at(MonotonicTime when, absl::AnyInvocable<void()> fn,
                        SourceLocation where = SourceLocation::current());
  // Tornado's spelling: a delay or a deadline.
  TimeoutHandle add_timeout(absl::Duration delay, absl::AnyInvocable<void()> fn,
                            SourceLocation where = SourceLocation::current()) {
    internal::check_callable(fn, "IOLoop::add_timeout", "fn");
    return call_later(delay, std::move(fn), where);
  }
  TimeoutHandle add_timeout(MonotonicTime deadline, absl::AnyInvocable<void()> fn,
                            SourceLocation where = SourceLocation::current()) {
    internal::check_callable(fn, "IOLoop::add_timeout", "fn");
    return call_at(deadline, std::move(fn), where);
  }
  // The timers with a callable that returns a Future (a coroutine lambda):
  // kept alive until the coroutine it starts is finished, as add_callback's.
  // Removing the timer before it fires destroys the callable unrun.
  template <class F>
    requires internal::NeedsKeeping<F>
  TimeoutHandle call_later(absl::Duration delay, F&& fn,
                           SourceLocation where = SourceLocation::current()) {
    return call_later(delay, keep_timer_callable("IOLoop::call_later", std::forward<F>(fn)),
                      where);
  }
  template <class F>
    requires internal::NeedsKeeping<F>
  TimeoutHandle call_at(MonotonicTime when, F&& fn,
                        SourceLocation where = SourceLocation::current()) {
    return call_at(when, keep_timer_callable("IOLoop::call_at", std::forward<F>(fn)), where);
  }
  template <class F>
    requires internal::NeedsKeeping<F>
  TimeoutHandle add_timeout(absl::Duration delay, F&& fn,
                            SourceLocation where = SourceLocation::current()) {
    return call_later(delay, keep_timer_callable("IOLoop::add_timeout", std::forward<F>(fn)),
                      where);
  }
  // call_later(250ms, fn): a std::chrono delay (see to_duration()).
  template <internal::ChronoDuration D, class F>
  TimeoutHandle call_later(D delay, F&& fn, SourceLocation where = SourceLocation::current()) {
    return call_later(to_duration(delay), std::forward<F>(fn), where);
  }
  template <class F>
    requires internal::NeedsKeeping<F>
  TimeoutHandle add_timeout(MonotonicTime deadline, F&& fn,
                            SourceLocation where = SourceLocation::current()) {
    return call_at(deadline, keep_timer_callable("IOLoop::add_timeout", std::forward<F>(fn)),
                   where);
  }

  // Cancels a pending timer: its callback is destroyed without running.
  // A no-op for a timer that fired or was removed, an empty handle, or a
  // closed loop. Throws InvalidStateError on a foreign thread, or for a
  // handle another loop returned (it names a timer of that loop, which
  // this one cannot cancel: remove it through the loop that armed it).
  void remove_timeout(TimeoutHandle handle);

  // The loop's clock reading. Safe from any thread.
  MonotonicTime time() const { return clock_->now(); }
  const std::shared_ptr<Clock>& clock() const { return clock_; }

  // Calls cb(f) (or cb()) on this loop once `f` is done, during a later
  // iteration. `f` must belong to this thread. A cb returning a Future (a
  // coroutine lambda) is kept alive until its coroutine is finished (as
  // add_callback's); that Future is dropped.
  // Throws InvalidStateError on a foreign thread or a closed loop,
  // std::invalid_argument if `cb` is empty (nullptr, a null function
  // pointer, an empty AnyInvocable or std::function).
  template <class T, class F>
  void add_future(Future<T> f, F&& cb);

  // Calls cb(f) (or cb()) on this loop's thread once `f` is done, whichever
  // thread completes it, even while the loop sleeps. If the loop is closed
  // first, cb is destroyed on this loop's thread without running.
  // Throws InvalidStateError on a foreign thread or a closed loop,
  // std::invalid_argument if `cb` is empty.
  template <class T, class F>
  void add_future(ConcurrentFuture<T> f, F&& cb);

  // From any thread: runs fn() on the loop's thread and returns a
  // ConcurrentFuture completed with its result (asyncio's
  // run_coroutine_threadsafe). If fn returns a Future<T> (a coroutine), the
  // ConcurrentFuture completes with that future's outcome. If fn throws, it
  // holds the exception. If the loop is closed (or destroyed) before fn
  // (or its future) finishes, it fails with CancelledError during the
  // close, even if fn's future lives on (held by an Event's waiter, or by
  // the application); whatever that future gets later is not passed on.
  // It fails the same way if fn's future is destroyed pending. A coroutine
  // lambda fn is kept alive, captures included, until its coroutine is
  // finished (as add_callback's). Blocking on
  // it on this loop's thread, with or without a timeout, throws
  // InvalidStateError instead of deadlocking or stalling the loop for the
  // whole timeout (a zero timeout only polls; see ConcurrentFuture::result).
  // Throws std::invalid_argument (on the calling thread, before anything is
  // queued) if `fn` is empty (a null function pointer, an empty
  // AnyInvocable or std::function).
  template <class F>
  auto run_in_loop(F&& fn)
      -> ConcurrentFuture<internal::RunResult<std::invoke_result_t<std::decay_t<F>&>>>;

  // Runs fn(args...) on `executor` (nullptr: this loop's default executor)
  // and returns a Future, on this loop, of its result (Tornado's
  // run_in_executor). fn and args are decay-copied into the task; the
  // result type is fn's decayed return type (Future<void> for void). The
  // outcome, value or exception, is delivered on this loop's thread.
  // Never blocks, even on a pool with a full bounded queue (the task then
  // waits outside the queue). Cancelling the Future cancels the task if it
  // is still queued, or else signals the CancellationToken that fn receives
  // if its first parameter is one (for a member function: the first after
  // the object); a result that arrives after that is discarded. If the loop
  // is closed before the outcome arrives, it is dropped safely. See
  // eddy/executor/offload.h for the whole contract.
  // Throws std::invalid_argument if fn is empty (an empty AnyInvocable or
  // std::function, a null function pointer); InvalidStateError on a foreign
  // thread or a closed loop; ExecutorShutdownError / BrokenExecutorError
  // from the executor.
  template <class F, class... A>
    requires(!std::same_as<std::remove_cvref_t<F>, Deadline>)
  auto run_in_executor(Executor* executor, F&& fn, A&&... args);
  // As above, with a deadline: a call still queued when it passes does not
  // run (the Future fails with TimeoutError), and the token fn receives
  // reports expired() once it passes. A running call is not interrupted.
  template <class F, class... A>
  auto run_in_executor(Executor* executor, Deadline deadline, F&& fn, A&&... args);

  // Makes `executor` the one run_in_executor(nullptr, ...) uses. The loop
  // keeps a reference but never shuts a supplied executor down: its owner
  // does. nullptr goes back to a lazily created default pool.
  // Throws InvalidStateError on a foreign thread or a closed loop.
  void set_default_executor(std::shared_ptr<Executor> executor);

  // The executor run_in_executor(nullptr, ...) uses. Unless one was set,
  // a ThreadPoolExecutor with the default size (threads named
  // "eddy-loop-<N>_<i>"), created on first use and owned by the loop:
  // closing the loop shuts it down with cancel_futures (queued calls are
  // cancelled: nobody could receive their results) and waits for the
  // running calls to return, so no pool thread outlives the loop. (Python's
  // asyncio does not wait; here the pool's threads would otherwise outlive
  // the object that owns them.)
  // Throws InvalidStateError on a foreign thread or a closed loop.
  Executor& default_executor();

  // Calls handler(fd, events) on the loop's thread whenever `fd` is ready
  // for any of `events` (READ, WRITE; ERROR is always included). Level
  // triggered: the handler runs on every iteration while the fd stays
  // ready. The loop does not own or close the fd.
  // Throws std::invalid_argument for a negative fd, unknown event bits or
  // an empty `handler`, InvalidStateError if `fd` already has a handler (or on a foreign thread
  // or closed loop), std::system_error if epoll refuses the fd (e.g. a
  // regular file).
  void add_handler(int fd, absl::AnyInvocable<void(int fd, uint32_t events)> handler,
                   uint32_t events,
                   SourceLocation where = SourceLocation::current());
  // Changes the events `fd` is watched for.
  // Throws InvalidStateError if `fd` has no handler; as add_handler otherwise.
  void update_handler(int fd, uint32_t events);
  // Stops watching `fd` and destroys its handler (after it returns, if it is
  // the one running). Events already collected for it are dropped. A no-op
  // on a closed loop. Throws InvalidStateError if `fd` has no handler, or on
  // a foreign thread.
  void remove_handler(int fd);

  // Turns on (threshold > 0) or off (zero or infinite) the blocking
  // watchdog: a thread that logs a warning naming any callback, timer or fd
  // handler that has been running for `threshold` while it is still
  // running, and the loop logs it again with its total time when it
  // returns. Thresholds are kept within [1 ms, 1 year]; reports come
  // between 1x and 1.5x the threshold into the callback. While it is on, the
  // loop also records where each callback and timer was posted (one small
  // allocation per post), to name them in its reports and exception logs.
  // Throws InvalidStateError on a foreign thread or closed loop.
  void set_blocking_log_threshold(absl::Duration threshold);

  Stats stats() const;

  // Scheduler: same-thread post (the add_callback fast path; Futures use
  // it), the cross-thread inbox, and the owner-thread test.
  void post(absl::AnyInvocable<void()> fn) override;
  void post_resume(void (*resume)(void*), void* ctx) override;
  void resume_now(void (*resume)(void*), void* ctx) override;
  // Keeps posts from completing futures from failing: see
  // Scheduler::reserve_post and chain_grow in io_loop.cc.
  void reserve_post() override;
  void reserve_posts(size_t n) override;
  std::shared_ptr<RemoteScheduler> remote() override;
  bool in_scheduler_thread() const override {
    return owner_.load(std::memory_order_relaxed) == internal::this_thread_id();
  }

 private:
  enum class RunOutcome { kDone, kTimedOut, kStopped };

  // Entered by start() and run_sync(): checks, claims the thread, makes the
  // loop current; the destructor undoes it.
  class RunScope {
   public:
    RunScope(IOLoop* loop, const char* op);
    ~RunScope();
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

   private:
    IOLoop* loop_;
    IOLoop* previous_loop_;
    Scheduler* previous_scheduler_;
  };

  // Brackets a push on add_callback()'s unlocked owner path: raises
  // owner_posting_, then re-reads the owner (see take_ownership()).
  class OwnerPost {
   public:
    explicit OwnerPost(IOLoop* loop) : loop_(loop) {
      loop_->owner_posting_.store(true, std::memory_order_relaxed);
      // The compiler keeps the raise before the re-read; the CPU's store
      // buffer is take_ownership()'s barrier's business.
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~OwnerPost() { loop_->owner_posting_.store(false, std::memory_order_release); }
    OwnerPost(const OwnerPost&) = delete;
    OwnerPost& operator=(const OwnerPost&) = delete;
    bool still_owner(std::thread::id me) const {
      return loop_->owner_.load(std::memory_order_relaxed) == me;
    }

   private:
    IOLoop* loop_;
  };

  // Makes the calling thread the owner. From another thread (a hand-off),
  // first waits out an add_callback() the old owner may be making on its
  // unlocked path; its later posts then go through the inbox.
  void take_ownership();

  void check_owner(const char* op) const {
#if EDDY_THREAD_CHECKS
    if (!in_scheduler_thread()) throw_wrong_thread(op);
#else
    (void)op;
#endif
  }
  void check_open(const char* op) const {
    if (closed_) throw_closed(op);
  }
  // The timers' callable returning a Future, checked and boxed.
  template <class F>
  static absl::AnyInvocable<void()> keep_timer_callable(const char* who, F&& fn) {
    internal::check_callable(fn, who, "fn");
    return internal::KeptCallable<std::decay_t<F>>(std::forward<F>(fn));
  }
  [[noreturn]] void throw_wrong_thread(const char* op) const;
  [[noreturn]] static void throw_closed(const char* op);
  [[noreturn]] static void throw_stopped();
  [[noreturn]] static void throw_run_sync_timeout(absl::Duration timeout);
  [[noreturn]] static void throw_foreign_timeout_handle();
  [[noreturn]] static void throw_foreign_future();
  // A process-wide unique id for a new loop (never 0), for TimeoutHandle.
  static uint32_t next_loop_id() noexcept;

  // Runs iterations until `watched` is done after one (at least one runs,
  // not waiting if it is done already; nullptr: done at once), `timeout`
  // passes, or stop() is called. The status is read in place (it is asked
  // after every iteration; a call through a predicate cost more than it).
  // A stop() made meanwhile is consumed when `watched` is done, unless
  // `consume_stop` is false (a first stage of a longer run: the stop is
  // then for the rest of it).
  RunOutcome run_until(const internal::FutureStatus* watched,
                       std::optional<absl::Duration> timeout, bool consume_stop = true);
  // stop() was called: clears the request. A plain load first, since the
  // exchange is a locked instruction on every turn.
  bool take_stop_request() {
    return stop_requested_.load(std::memory_order_relaxed) &&
           stop_requested_.exchange(false, std::memory_order_acq_rel);
  }
  void run_iteration(bool may_block);
  // Blocks in epoll for at most `wait_ns` (-1: forever); returns the number
  // of events in events_.
  int poll(int64_t wait_ns);
  bool arm_timer_fd(MonotonicTime deadline);
  void dispatch_fd_events(int n);
  // Phase 5. Inline so that an iteration without timers (the common case
  // in callback-heavy workloads) costs a load and a branch, not a call
  // that sets up run_due_timers()'s frame.
  void run_timers() {
    if (!timers_.empty()) run_due_timers();
  }
  void run_due_timers();
  void run_callbacks();
  // Runs the resume held in resume_fn_ (see turn_mark_), or after a stop()
  // puts it at the head of the queue.
  void run_held_resume();
  [[gnu::noinline, gnu::cold]] void requeue_held_resume();
  // Runs one callback, timer or handler: watchdog bracket, exceptions
  // logged naming it.
  template <class Fn>
  void run_guarded(internal::ActivityKind kind, int fd, const SourceLocation* where, Fn&& fn);
  // run_guarded's bracket while the watchdog is on.
  void run_watched(internal::ActivityKind kind, int fd, const SourceLocation& where,
                   absl::FunctionRef<void()> fn);
  void log_failure(internal::ActivityKind kind, int fd, const SourceLocation& where,
                   std::exception_ptr e);
  // While locations are recorded (the watchdog is on): wraps `fn` so that,
  // when it runs, it first tells the loop what it is (note_activity).
  // Throws std::bad_alloc with `fn` left intact.
  absl::AnyInvocable<void()> locate(absl::AnyInvocable<void()>&& fn, internal::ActivityKind kind,
                                    const SourceLocation& where);
  void note_activity(internal::ActivityKind kind, const SourceLocation& where);
  // add_callback()'s common case, inline: on the owner thread, with room in
  // the tail block and nothing recorded, builds the task from `fn` (moved
  // from if an rvalue) in its slot; else false, `fn` untouched.
  template <class F>
  bool owner_push_in_place(std::remove_reference_t<F>& fn) {
    const std::thread::id me = internal::this_thread_id();
    if (record_locations_.load(std::memory_order_relaxed) ||
        owner_.load(std::memory_order_relaxed) != me || closed_) {
      return false;
    }
    OwnerPost post(this);
    if (!post.still_owner(me)) [[unlikely]] return false;
    internal::TaskBlock* const b = callbacks_.tail;
    if (b == nullptr || b->full()) [[unlikely]] return false;
    ::new (static_cast<void*>(b->slot(b->end))) internal::Task(static_cast<F&&>(fn));
    ++b->end;
    return true;
  }
  // add_callback() once `fn` is known not to be empty. The same-thread
  // post inline in it, everything else out of line.
  bool add_nonempty_callback(absl::AnyInvocable<void()>&& fn, SourceLocation where);
  // add_callback while locations are recorded: out of line, so that the
  // common case keeps a small frame.
  [[gnu::noinline]] bool add_located_callback(absl::AnyInvocable<void()>&& fn,
                                              const SourceLocation& where);
  // add_callback's, post_resume's and post's uncommon cases (another thread, the
  // loop closed, locations recorded), out of line for the same reason.
  [[gnu::noinline]] bool add_callback_slow(absl::AnyInvocable<void()>&& fn,
                                           const SourceLocation& where);
  [[gnu::noinline]] void post_resume_slow(void (*resume)(void*), void* ctx);
  [[gnu::noinline]] void resume_named(void (*resume)(void*), void* ctx);
  [[gnu::noinline]] void post_slow(absl::AnyInvocable<void()>&& fn);
  void retire_handlers();
  void close_now();

  template <class T, class OnTimeout>
  T finish_run_sync(Future<T>& f, std::optional<absl::Duration> timeout, OnTimeout&& on_timeout);
  TimeoutHandle call_at_unchecked(MonotonicTime when, absl::AnyInvocable<void()> fn,
                                  const SourceLocation& where);

  // What a post from another thread reads (add_callback's owner test, the
  // watchdog flag, the inbox pointer) is padded off the fields the loop
  // writes every turn, so those writes do not evict it from the posters'
  // caches. Padding, not alignas: an over-aligned IOLoop would be a trap
  // for containers and allocators that ignore alignment.
  [[maybe_unused]] char pad_before_readers_[64];
  std::atomic<std::thread::id> owner_;
  std::atomic<bool> record_locations_{false};  // the watchdog is on: callbacks carry locations
  std::shared_ptr<internal::Inbox> inbox_;
  [[maybe_unused]] char pad_after_readers_[64];
  std::shared_ptr<Clock> clock_;
  std::atomic<bool> running_{false};  // atomic: start() on a foreign thread reads it
  bool closed_ = false;
  // Raised by the owner thread around add_callback()'s unlocked push; a
  // thread taking the loop over waits for it to fall (take_ownership()).
  std::atomic<bool> owner_posting_{false};
  // make_current() was called during the current run (so on the running
  // thread): the loop stays current there after the run (see ~RunScope).
  bool made_current_in_run_ = false;
  std::atomic<bool> stop_requested_{false};
  uint64_t iterations_ = 0;
  // Stamped on the TimeoutHandles this loop returns: one atomic increment
  // per loop, none per timer.
  const uint32_t id_ = next_loop_id();

  int epoll_fd_ = -1;
  // The timerfd the loop sleeps on toward its next timer (arm_timer_fd):
  // -1 until first used, kTimerFdUnavailable for a clock other than the
  // steady one (or if the system refuses one, or once closed).
  static constexpr int kTimerFdUnavailable = -2;
  int timer_fd_ = -1;
  int64_t timer_fd_deadline_ = 0;  // armed for this MonotonicTime (ns); 0: not armed
  internal::TaskChain callbacks_;      // queued on this thread
  // The same-turn resume (see run_callbacks). While the callback phase runs,
  // turn_mark_ is the slot callbacks_'s next post would fill if nothing had
  // been queued for the next iteration yet (null once something has been):
  // a coroutine resume posted while the tail is there is first in line, and
  // instead of the queue it takes resume_fn_ and resume_ctx_, which run at
  // the end of the phase (after a stop(), it goes to the head of the queue
  // instead, as at the end of a run an exception cut short). Outside the
  // phase the mark may be stale: whatever runs user code there (fd
  // handlers, timers) and the end of a run clear it before. (A resume that
  // takes the mark clears it: the held one's resumes are queued.)
  const void* turn_mark_ = nullptr;
  void (*resume_fn_)(void*) = nullptr;
  void* resume_ctx_ = nullptr;
  internal::SpareBlocks spare_blocks_;  // for callbacks_
  internal::SpareBlocks remote_spare_;  // the inbox's emptied blocks, on their way back to it
  // The last iteration that ran posts from other threads (0: none yet).
  uint64_t last_remote_iteration_ = 0;

  internal::TimerQueue timers_;
  // While the timer phase runs: the time it fires timers for. A timer armed
  // in the phase for an earlier time is armed for this one instead, so it
  // sorts after every timer already due and cannot hold them back (the
  // phase stops at the first timer armed during it).
  std::optional<MonotonicTime> timer_phase_now_;

  absl::flat_hash_map<int, std::unique_ptr<internal::FdHandler>> handlers_;
  std::vector<std::unique_ptr<internal::FdHandler>> retired_handlers_;
  bool dispatching_fds_ = false;
  uint32_t next_handler_generation_ = 0;
  std::unique_ptr<epoll_event[]> events_;  // epoll_wait's output

  // run_in_executor(nullptr, ...)'s executor; owned (shut down at close)
  // only when the loop created it.
  std::shared_ptr<Executor> default_executor_;
  bool owns_default_executor_ = false;
  // Default pools this loop created and then replaced: shut down without
  // waiting when replaced, joined at close.
  std::vector<std::shared_ptr<Executor>> retired_executors_;
  // Runs offload's setup with this loop as the current scheduler, so the
  // Future it makes belongs here even on a loop that is not current.
  class CurrentSchedulerScope;

  std::unique_ptr<internal::Watchdog> watchdog_;
  std::unique_ptr<internal::Watchdog> retired_watchdog_;  // switched off mid-callback
  bool watchdog_busy_ = false;  // inside a watchdog-bracketed callback
  // What note_activity() said about the running callback, if anything:
  // cleared when that callback returns, or by log_failure when it throws.
  bool noted_ = false;
  internal::ActivityKind noted_kind_{};
  SourceLocation noted_where_;
};

// ---------------------------------------------------------------------------
// Template definitions.

template <class F>
auto IOLoop::run_sync(F&& fn, std::optional<absl::Duration> timeout)
    -> internal::RunResult<std::invoke_result_t<F&>> {
  using Returned = std::invoke_result_t<F&>;
  // A future by reference or const is a future too: a handle is copied.
  using R = std::remove_cvref_t<Returned>;
  RunScope scope(this, "run_sync");
  // As Tornado: fn runs as a callback of this loop, after the callbacks
  // queued before the call (the first iteration), and a throwing fn still
  // lets the loop run what it queued (one more iteration) before its
  // exception propagates.
  constexpr bool kFuture = internal::IsFuture<R>::value || internal::IsConcurrentFuture<R>::value;
  using Kept = std::conditional_t<
      kFuture, R,
      std::conditional_t<std::is_reference_v<Returned>, std::remove_reference_t<Returned>*,
                         std::conditional_t<std::is_void_v<Returned>, bool, Returned>>>;
  std::optional<Kept> kept;
  std::exception_ptr error;
  internal::FutureStatus ran = internal::FutureStatus::kPending;
  // A temporary fn returning a Future (a coroutine lambda) dies when this
  // returns, but its coroutine may outlive the run (a timeout or a stop()
  // leaves it suspended, to resume if the loop runs again): it is moved
  // into a box the coroutine keeps (see keep_alive.h). An lvalue fn is the
  // caller's. Anything else is called in place, as before.
  constexpr bool kKeep = internal::IsFuture<R>::value && !std::is_lvalue_reference_v<F> &&
                         std::is_class_v<std::decay_t<F>> &&
                         std::is_move_constructible_v<std::decay_t<F>>;
  using Call = std::conditional_t<kKeep, internal::KeptCallable<std::decay_t<F>>, F&>;
  [[maybe_unused]] Call call = [&]() -> Call {
    if constexpr (kKeep) {
      return Call(std::move(fn));
    } else {
      return fn;
    }
  }();
  add_callback([&] {
    ran = internal::FutureStatus::kValue;
    try {
      if constexpr (std::is_void_v<Returned>) {
        fn();
        kept.emplace(true);
      } else if constexpr (!kFuture && std::is_reference_v<Returned>) {
        kept.emplace(&fn());
      } else {
        kept.emplace(call());
      }
    } catch (...) {
      error = std::current_exception();
    }
  });
  run_until(&ran, std::nullopt, /*consume_stop=*/false);
  if (error) {
    run_until(nullptr, std::nullopt);
    std::rethrow_exception(error);
  }
  if constexpr (internal::IsFuture<R>::value) {
    return finish_run_sync(*kept, timeout, [] {});
  } else if constexpr (internal::IsConcurrentFuture<R>::value) {
    using T = typename R::value_type;
    R& cf = *kept;
    internal::ConcurrentAccess::state(cf, "IOLoop::run_sync",
                                      "fn returned an empty ConcurrentFuture");
    Future<T> f;
    chain_future(cf, f);
    // On a timeout the pool's work is cancelled too, if still queued (as
    // Tornado, which cancels the concurrent future itself).
    return finish_run_sync(f, timeout, [&cf] { cf.cancel(); });
  } else if constexpr (std::is_void_v<Returned>) {
    run_until(nullptr, std::nullopt);
  } else if constexpr (std::is_reference_v<Returned>) {
    run_until(nullptr, std::nullopt);
    return static_cast<Returned>(**kept);
  } else {
    run_until(nullptr, std::nullopt);
    return std::move(*kept);
  }
}

template <class T, class OnTimeout>
T IOLoop::finish_run_sync(Future<T>& f, std::optional<absl::Duration> timeout,
                          OnTimeout&& on_timeout) {
  internal::FutureState<T>* state =
      internal::FutureAccess::state(f, "IOLoop::run_sync", "fn returned an empty Future");
  if (Scheduler* owner = state->scheduler(); owner != nullptr && owner != this) [[unlikely]] {
    throw_foreign_future();
  }
  switch (run_until(&state->status_ref(), timeout)) {
    case RunOutcome::kDone:
      break;
    case RunOutcome::kTimedOut:
      // As Tornado: cancel, and give the cancellation one iteration to
      // reach whatever produces the future (a coroutine's pending await).
      on_timeout();
      if (f.cancel()) run_until(nullptr, std::nullopt);
      throw_run_sync_timeout(*timeout);
    case RunOutcome::kStopped:
      throw_stopped();
  }
  if constexpr (std::is_void_v<T>) {
    f.result();
  } else if constexpr (internal::is_deeply_copyable_v<T>) {
    return f.result();
  } else {
    return std::move(f.result());
  }
}

template <class T, class F>
void IOLoop::add_future(Future<T> f, F&& cb) {
  constexpr bool kKeepCb = internal::NeedsKeeping<F, Future<T>&> ||
                           (!std::is_invocable_v<std::decay_t<F>&, Future<T>&> &&
                            internal::NeedsKeeping<F>);
  check_owner("add_future");
  check_open("add_future");
  internal::check_callable(cb, "IOLoop::add_future", "cb");
  if (internal::FutureAccess::state(f, "IOLoop::add_future", "the Future f is empty")
          ->scheduler() == this) {
    // The future already posts its callbacks here, on a later iteration.
    // (A cb returning a Future, a coroutine lambda, is kept alive until
    // its coroutine is finished: keep_alive.h.)
    f.add_done_callback([cb = internal::keep_if<kKeepCb>(std::forward<F>(cb))](
                            Future<T>& done) mutable {
      internal::call_add_future_callback(cb, done);
    });
  } else {
    // Bound to no loop (its callbacks run inline at completion) or to
    // another one: hop onto this loop.
    f.add_done_callback(
        [remote = remote(), cb = internal::keep_if<kKeepCb>(std::forward<F>(cb))](
            Future<T>& done) mutable {
          remote->post([cb = std::move(cb), done]() mutable {
            Future<T> copy = done;
            internal::call_add_future_callback(cb, copy);
          });
        });
  }
}

template <class T, class F>
void IOLoop::add_future(ConcurrentFuture<T> f, F&& cb) {
  constexpr bool kKeepCb = internal::NeedsKeeping<F, ConcurrentFuture<T>&> ||
                           (!std::is_invocable_v<std::decay_t<F>&, ConcurrentFuture<T>&> &&
                            internal::NeedsKeeping<F>);
  check_owner("add_future");
  check_open("add_future");
  internal::check_callable(cb, "IOLoop::add_future", "cb");
  internal::ConcurrentAccess::state(f, "IOLoop::add_future", "the ConcurrentFuture f is empty");
  // The payload (cb) lives and dies on this thread, whichever of the loop
  // and the future finishes first. It must not hold `f` itself: f's state
  // holds the delivery handle, and the cycle would keep both alive until the
  // loop closes even after every other handle on f is gone. The completing
  // thread hands the done future to the delivery instead, in the closure
  // it posts: one recycled block per call, and a done-callback small
  // enough to be stored in the state without an allocation.
  auto delivery = internal::make_delivery_with<ConcurrentFuture<T>>(
      this, internal::delivery_from(f, this),
      [cb = internal::keep_if<kKeepCb>(std::forward<F>(cb))](ConcurrentFuture<T>& done) mutable {
        internal::call_add_future_callback(cb, done);
      });
  f.add_done_callback([delivery = std::move(delivery)](ConcurrentFuture<T>& done) mutable {
    delivery.deliver(std::move(done));  // a handle of this callback's own
  });
}

template <class F>
auto IOLoop::run_in_loop(F&& fn)
    -> ConcurrentFuture<internal::RunResult<std::invoke_result_t<std::decay_t<F>&>>> {
  using Fn = std::decay_t<F>;
  using Returned = std::invoke_result_t<Fn&>;
  // Futures by reference or const count as futures (see run_sync).
  using R = std::conditional_t<internal::kIsAnyFuture<Returned>, std::remove_cvref_t<Returned>,
                               Returned>;
  using V = internal::RunResult<Returned>;
  static_assert(!internal::IsConcurrentFuture<R>::value,
                "run_in_loop: fn returns a ConcurrentFuture already; call it directly");
  internal::check_callable(fn, "IOLoop::run_in_loop", "fn");
  ConcurrentFuture<V> result;
  // Set before `result` is shared: the deadlock check reads it unlocked.
  internal::ConcurrentAccess::state(result).completed_on = this;
  internal::LoopCompleter<V> completer(result);
  // If the loop is closed, add_callback destroys the closure, and the
  // completer in it fails `result` with CancelledError.
  // A fn returning a Future (a coroutine lambda) is kept alive until its
  // coroutine is finished (keep_alive.h); anything else is held as before.
  add_callback([this, fn = internal::keep_if<internal::IsFuture<R>::value && std::is_class_v<Fn>>(
                    std::forward<F>(fn)),
                completer = std::move(completer)]() mutable {
    [[maybe_unused]] IOLoop* const loop = this;  // for a Future only
    try {
      if constexpr (internal::IsFuture<R>::value) {
        R f = fn();
        // `f` may outlive the loop (an Event's waiter, a handle the
        // application keeps), and its callback with it: closing the loop
        // must still fail `result`. So the loop owns a second completer,
        // as the payload of a delivery that is never delivered: closing
        // drops it (CancelledError, unless `result` is done); otherwise it
        // dies on the loop thread once f's callback is gone, finding
        // `result` done (or failing it, if f died pending). `result`
        // takes whichever completion comes first.
        //
        // on_close also answers for f dying pending (its callback, and
        // on_close with it, destroyed unrun): so the callback's completer
        // is unarmed, and `completer` stays armed here until the callback
        // is attached. If a step throws (std::bad_alloc), the catch below
        // fails `result` with that exception: no armed completer may die
        // on the way, or it would fail `result` first, with a
        // CancelledError saying the loop was closed. Hence also the twin
        // made inside on_close's block, once that is allocated.
        auto on_close = internal::make_delivery_in_place(
            loop, internal::DeliveryFrom::kAnyThread, [&completer] { return completer.twin(); });
        f.add_done_callback([setter = completer.unarmed_twin(),
                             on_close = std::move(on_close)](R& done) mutable {
          setter.set_from(done);
          [[maybe_unused]] auto release = std::move(on_close);  // now, not with f's state
        });
        completer.disarm();
      } else if constexpr (std::is_void_v<R>) {
        fn();
        completer.set_value();
      } else {
        completer.set_value(fn());
      }
    } catch (...) {
      if (completer.armed()) completer.set_exception(std::current_exception());
    }
  });
  return result;
}

// Makes the loop the current Scheduler on its own thread for the scope (the
// Future run_in_executor returns binds to the current scheduler).
class IOLoop::CurrentSchedulerScope {
 public:
  explicit CurrentSchedulerScope(IOLoop* loop) : previous_(Scheduler::current()) {
    set_current(loop);
  }
  ~CurrentSchedulerScope() { set_current(previous_); }
  CurrentSchedulerScope(const CurrentSchedulerScope&) = delete;
  CurrentSchedulerScope& operator=(const CurrentSchedulerScope&) = delete;

 private:
  Scheduler* previous_;
};

template <class F, class... A>
  requires(!std::same_as<std::remove_cvref_t<F>, Deadline>)
auto IOLoop::run_in_executor(Executor* executor, F&& fn, A&&... args) {
  return run_in_executor(executor, Deadline::none(), std::forward<F>(fn),
                         std::forward<A>(args)...);
}

template <class F, class... A>
auto IOLoop::run_in_executor(Executor* executor, Deadline deadline, F&& fn, A&&... args) {
  internal::check_callable(fn, "IOLoop::run_in_executor", "fn");
  // Always checked (not only with EDDY_THREAD_CHECKS): the default pool is
  // created lazily below, and a Future made here must belong to this loop.
  if (!in_scheduler_thread()) throw_wrong_thread("run_in_executor");
  check_open("run_in_executor");
  Executor& target = executor != nullptr ? *executor : default_executor();
  CurrentSchedulerScope scope(this);
  return internal::offload(*this, target, deadline, std::forward<F>(fn),
                           std::forward<A>(args)...);
}

}  // namespace eddy

#endif  // EDDY_LOOP_IO_LOOP_H_
