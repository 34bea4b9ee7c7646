// Executor: the interface for running calls somewhere else, and
// InlineExecutor, which runs them right away (Tornado's DummyExecutor).
//
//   eddy::ThreadPoolExecutor pool(4);
//   eddy::ConcurrentFuture<std::string> f = pool.submit(read_file, "/etc/hosts");
//   std::string text = f.result();          // blocks this (non-loop) thread
//
// submit() accepts any callable and arguments, like std::thread: both are
// decay-copied into the task and the callable is invoked with them as
// rvalues (use std::ref / std::cref to pass by reference; member function
// pointers take the object as the first argument). The result type is the
// call's decayed return type; a void call gives ConcurrentFuture<void>.
// Move-only callables, arguments and results work. An exception thrown by
// the call is stored in the future. The callable and the arguments are
// destroyed on the thread that ran the call, as soon as it returns and
// before its future completes: whoever the completion wakes finds them
// gone (never run: when the executor drops the task). A callable whose first parameter (after
// the object, for a member function) is a CancellationToken gets one (see
// cancellation.h); one that could take either form gets the token.
//
// Which submit to use where:
//   - submit(fn, args...)            any non-loop thread. May block while a
//                                    bounded queue is full (ThreadPoolExecutor
//                                    Options::max_queue_size).
//   - submit_from_loop(fn, args...)  on a loop thread: never blocks; returns a
//                                    Future<ConcurrentFuture<R>> that completes
//                                    once the task is in the queue (awaitable
//                                    back-pressure).
//   - IOLoop::run_in_executor / run_on_executor (run_on_executor.h): on a
//     loop thread when you want the *result* as a loop Future<R>; they never
//     block either, and cancelling their Future reaches the task.
//
// Implementing an executor over another pool takes two overrides:
//
//   class AsioExecutor : public eddy::Executor {
//    public:
//     eddy::ShutdownReport shutdown(bool wait, bool cancel_futures) override;
//    protected:
//     void execute(TaskPtr task) override {
//       boost::asio::post(pool_, [t = std::move(task)] { t->run(); });
//     }
//   };
//
// Threading: submit(), submit_from_loop() and shutdown() are safe from any
// thread (submit_from_loop() only on a thread whose loop is current). Where
// the call runs is the executor's business: a pool thread for
// ThreadPoolExecutor, the submitting thread for InlineExecutor. The returned
// ConcurrentFuture's callbacks run on the thread that completes it.
#ifndef EDDY_EXECUTOR_EXECUTOR_H_
#define EDDY_EXECUTOR_EXECUTOR_H_

#include <array>
#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/executor/cancellation.h"
#include "eddy/futures/concurrent_future.h"
#include "eddy/futures/concurrent_wait.h"
#include "eddy/futures/errors.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/futures/internal/delivery.h"
#include "eddy/futures/internal/recycler.h"
#include "eddy/futures/scheduler.h"

namespace eddy {

class Executor;
namespace internal {
struct ExecutorAccess;

// Set by a ThreadPoolExecutor worker around a task (t_worker_task) while
// its pool may still start workers: that task, about to complete its
// future, counts the worker in here (once; it clears the pointer), so that
// a submit woken by that completion finds this worker about to be free
// instead of starting another one. Only the pool's own task counts: a call
// it runs inline (an InlineExecutor's) completes while the task goes on.
extern constinit thread_local std::atomic<int>* t_worker_finishing;
extern constinit thread_local const void* t_worker_task;

// For an offload, whose completion only posts to the loop.
inline void note_worker_finishing(const void* task) noexcept {
  if (std::atomic<int>* finishing = t_worker_finishing) [[unlikely]] {
    if (t_worker_task != task) return;
    finishing->fetch_add(1, std::memory_order_relaxed);  // published by the completion
    t_worker_finishing = nullptr;
  }
}

// For a task completing `future`: not while done callbacks are registered,
// which the completion runs on this worker (one that submits to this pool
// and waits must get a worker of its own, as in Python, where a worker is
// idle only once they have run).
template <class T>
inline void note_worker_finishing(const void* task, const ConcurrentFuture<T>& future) noexcept {
  if (t_worker_finishing != nullptr) [[unlikely]] {
    if (ConcurrentAccess::has_callbacks(future)) return;
    note_worker_finishing(task);
  }
}
}  // namespace internal

// What an executor did with the work it accepted, as of the moment
// shutdown() returned. Every accepted task is in exactly one of the last
// five fields: submitted == completed + cancelled + failed + running + queued.
struct ShutdownReport {
  uint64_t submitted = 0;  // tasks accepted over the executor's life
  uint64_t completed = 0;  // the call ran (and returned or threw)
  uint64_t cancelled = 0;  // never ran: future cancelled while queued (by
                           // cancel(), cancel_futures or its token), or its
                           // deadline passed before it started
  uint64_t failed = 0;     // never ran: failed with BrokenExecutorError
  uint64_t running = 0;    // still running (0 after a waiting shutdown)
  uint64_t queued = 0;     // still queued; they will run (0 after a waiting
                           // shutdown or cancel_futures)
};

class Executor {
 public:
  // One queued call: the callable, its arguments and its future. Executors
  // settle each task exactly once, through run(), cancel() or fail(), and
  // then dispose of it: TaskPtr does that (a task is not deleted directly;
  // the loop bridge's tasks are shared with the loop until it has their
  // outcome). A task disposed of unsettled cancels its future, so a task
  // an executor drops never leaves a future pending forever.
  // Task records come from recycled memory (futures/internal/recycler.h):
  // they are made on the submitting thread and freed on a worker, or, for
  // submit()'s tasks, which hold their future's state, on whichever thread
  // drops the last reference to it.
  class Task : public internal::Recycled {
   public:
    Task() = default;
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;

    // Runs the call on the calling thread and completes the future, unless
    // the future was cancelled (or the task's token was cancelled, or its
    // deadline passed) first. Returns true if the call ran. Never throws.
    virtual bool run() noexcept = 0;
    // Cancels the future without running the call. Never throws.
    virtual void cancel() noexcept = 0;
    // Fails the future with `error` without running the call. Never throws.
    virtual void fail(std::exception_ptr error) noexcept = 0;
    // The executor is done with the task (TaskPtr calls it). Never throws.
    virtual void dispose() noexcept { delete this; }

   protected:
    virtual ~Task() = default;

   private:
    friend class ThreadPoolExecutor;
    Task* next_ = nullptr;  // ThreadPoolExecutor's intrusive queue link
  };

  struct TaskDisposer {
    void operator()(Task* task) const noexcept { task->dispose(); }
  };
  // How executors hold a task: disposes of it when dropped.
  using TaskPtr = std::unique_ptr<Task, TaskDisposer>;

  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;

  // Schedules fn(args...) and returns its future. See the file comment for
  // how fn and args are stored and invoked.
  // Throws std::invalid_argument if fn is empty (an empty AnyInvocable or
  // std::function, a null function or member pointer) and queues nothing;
  // ExecutorShutdownError after shutdown(), BrokenExecutorError if the
  // executor is broken. May block while a bounded queue is full.
  template <class F, class... A>
    requires(!std::same_as<std::remove_cvref_t<F>, CancellationToken>)
  auto submit(F&& fn, A&&... args);

  // As submit(fn, args...), with `token` handed to fn if it takes one; if
  // the token is cancelled (or its deadline passed) before the task starts,
  // the call does not run: the future is cancelled (or fails with
  // TimeoutError).
  template <class F, class... A>
  auto submit(CancellationToken token, F&& fn, A&&... args);

  // For loop threads: schedules fn(args...) without ever blocking. Returns a
  // Future (of the current loop) that completes with the task's
  // ConcurrentFuture once the executor has queued the task: at once when
  // there is room, later when a bounded queue is full. Await it to apply
  // back-pressure:
  //
  //   eddy::ConcurrentFuture<int> f = co_await pool.submit_from_loop(parse, line);
  //
  // Throws std::invalid_argument if fn is empty (as submit()),
  // InvalidStateError if no loop is current on this thread,
  // ExecutorShutdownError / BrokenExecutorError as submit(). If the
  // executor shuts down while the task waits for room, the Future still
  // completes, with a cancelled (or failed) ConcurrentFuture.
  template <class F, class... A>
  auto submit_from_loop(F&& fn, A&&... args);

  // Calls fn(item) on this executor for every item of `inputs`, submitting
  // them all at once, and waits for them: returns their results in input
  // order, a std::vector<R> (nothing for a void fn). Python's Executor.map,
  // eager and blocking, for threads that are not loops (on a loop, multi()
  // the futures of IOLoop::run_in_executor instead):
  //
  //   std::vector<uint64_t> sizes = pool.map(file_size, paths);
  //   pool.map([&](const Row& r) { db.insert(r); }, rows, absl::Seconds(30));
  //
  // Each call gets its own item: copied from an lvalue range or a view (the
  // caller's elements), moved from a container given as an rvalue, moved
  // when the range makes it on the fly (a transform), and converted to the
  // range's value type when it is a proxy (std::vector<bool>'s). fn is
  // copied into every call (std::ref(fn) shares one); a fn whose first
  // parameter is a CancellationToken gets one, which reports cancelled once
  // map gives up.
  //
  // Fails fast: once a call throws, map cancels the calls still queued (the
  // failing completion cancels their tokens before its worker takes another
  // call), tells the running ones through their tokens, waits for them to
  // return and rethrows the exception of the first call that failed (the
  // other calls' outcomes are dropped, not logged). With `timeout`, the
  // same happens when the calls are not all done in time, and map throws
  // TimeoutError("Executor::map: 3 of 10 calls not done within 30s"). So
  // map never returns while a call it started is still running: fn and the
  // items may refer to the caller's stack. A call that ignores its token
  // delays that return until it ends. (The copies of fn and of the item
  // that a cancelled, never-run call holds may be destroyed by a worker
  // after map returns: their destructors must not need the caller's stack.)
  // map checks for a failure and for the timeout before each submit: with
  // a bounded queue (Options::max_queue_size), where it submits as room
  // appears, it stops there (a submit already waiting for room finishes
  // waiting first), and a timeout that has passed before the first submit
  // (zero) submits nothing. Items of an rvalue that is not a container
  // (an adaptor over std::move(v)) are copied, not moved. A call cancelled by someone
  // else (shutdown(cancel_futures)) makes map throw CancelledError once the
  // others are done.
  //
  // Throws std::invalid_argument for an empty fn, and ExecutorShutdownError
  // / BrokenExecutorError as submit() (after cancelling, and waiting for,
  // the calls already submitted).
  template <class F, class Range>
    requires std::ranges::input_range<Range>
  auto map(F&& fn, Range&& inputs, std::optional<absl::Duration> timeout = std::nullopt);
  // As above, for a braced list: pool.map(fn, {1, 2, 3}).
  template <class F, class T>
  auto map(F&& fn, std::initializer_list<T> inputs,
           std::optional<absl::Duration> timeout = std::nullopt) {
    return map(std::forward<F>(fn), std::vector<T>(inputs), timeout);
  }

  // Stops accepting work. With `cancel_futures`, cancels the queued tasks
  // (their futures report cancelled); running ones finish. With `wait`,
  // returns once every task that was not cancelled has finished and the
  // executor's threads have exited. Idempotent and safe from several
  // threads at once; returns the report as of its return.
  virtual ShutdownReport shutdown(bool wait = true, bool cancel_futures = false) = 0;

 protected:
  // Takes `task` and arranges for it to be settled exactly once (see Task).
  // May block (a bounded queue). Throws ExecutorShutdownError after
  // shutdown(), BrokenExecutorError when broken; the task is then destroyed
  // unsettled, which cancels its future.
  virtual void execute(TaskPtr task) = 0;

  // As execute(), without blocking the caller: when the task cannot be
  // queued now, the executor keeps it and queues it, in order, once there
  // is room. `on_admitted` (may be empty) runs exactly once when the task
  // is queued or settled, on whichever thread does that, possibly inside
  // this call; it is destroyed without running if this throws. The default
  // calls execute() and then on_admitted: right for executors that never
  // block.
  virtual void execute_without_blocking(TaskPtr task,
                                        absl::AnyInvocable<void()> on_admitted) {
    execute(std::move(task));
    if (on_admitted) on_admitted();
  }

  friend struct internal::ExecutorAccess;
};

// Runs every call inside submit(), on the submitting thread (Tornado's
// DummyExecutor): for tests, and for code that must choose at run time
// between offloading and not. The returned future is already done.
//
// Threading: safe from any thread; each call runs on its submitter's thread.
class InlineExecutor final : public Executor {
 public:
  InlineExecutor() = default;
  // Later submits throw ExecutorShutdownError. Nothing is ever queued, so
  // `cancel_futures` changes nothing; with `wait`, returns once the calls
  // running on other threads have finished (calls of this executor that
  // the calling thread is inside, which shut it down, are not waited for).
  ShutdownReport shutdown(bool wait = true, bool cancel_futures = false) override;

 protected:
  void execute(TaskPtr task) override;

 private:
  ShutdownReport report_locked() const;

  mutable std::mutex mu_;
  std::condition_variable idle_;  // running_ went down while shutting down
  bool shutdown_ = false;
  uint64_t submitted_ = 0;
  uint64_t completed_ = 0;
  uint64_t cancelled_ = 0;
  uint64_t running_ = 0;
};

namespace internal {

// How a task invokes its callable (decayed types, invoked as rvalues):
// token first, token after the object (member function pointers), or
// without a token.
enum class CallShape { kPlain, kTokenFirst, kTokenAfterObject, kInvalid };

template <class Fn, class... Args>
struct TokenAfterObject : std::false_type {};
template <class Fn, class Object, class... Rest>
  requires std::is_member_function_pointer_v<Fn>
struct TokenAfterObject<Fn, Object, Rest...>
    : std::bool_constant<std::is_invocable_v<Fn, Object, CancellationToken, Rest...>> {};

template <class Fn, class... Args>
constexpr CallShape call_shape() {
  if constexpr (std::is_invocable_v<Fn, CancellationToken, Args...>) {
    return CallShape::kTokenFirst;
  } else if constexpr (TokenAfterObject<Fn, Args...>::value) {
    return CallShape::kTokenAfterObject;
  } else if constexpr (std::is_invocable_v<Fn, Args...>) {
    return CallShape::kPlain;
  } else {
    return CallShape::kInvalid;
  }
}

template <class Fn, class... Args>
struct CallResultImpl {
  static constexpr CallShape kShape = call_shape<Fn, Args...>();
  static auto probe() {
    if constexpr (kShape == CallShape::kTokenFirst) {
      return std::type_identity<std::invoke_result_t<Fn, CancellationToken, Args...>>();
    } else if constexpr (kShape == CallShape::kTokenAfterObject) {
      return []<class O, class... R>(std::type_identity<std::tuple<O, R...>>) {
        return std::type_identity<std::invoke_result_t<Fn, O, CancellationToken, R...>>();
      }(std::type_identity<std::tuple<Args...>>());
    } else if constexpr (kShape == CallShape::kPlain) {
      return std::type_identity<std::invoke_result_t<Fn, Args...>>();
    } else {
      return std::type_identity<void>();
    }
  }
  using type = std::decay_t<typename decltype(probe())::type>;
  // Whether the executor entry points accept the call (see
  // assert_submittable, which says why not).
  static constexpr bool kOk = kShape != CallShape::kInvalid && !IsFuture<type>::value;
};

// The value type of the future for fn(args...) as submit() stores them.
template <class F, class... A>
using call_result_t = typename CallResultImpl<std::decay_t<F>, std::decay_t<A>...>::type;

// Whether submit() accepts fn(args...) (see CallResultImpl::kOk).
template <class F, class... A>
inline constexpr bool submittable_v = CallResultImpl<std::decay_t<F>, std::decay_t<A>...>::kOk;

// Says why an executor entry point does not accept fn(args...). Each entry
// point calls it instead of its body when submittable_v is false, so that
// the assertion is the only error.
template <class F, class... A>
constexpr void assert_submittable() {
  using Impl = CallResultImpl<std::decay_t<F>, std::decay_t<A>...>;
  static_assert(Impl::kShape != CallShape::kInvalid,
                "submit/run_in_executor: the callable cannot be invoked with these arguments "
                "(they are decay-copied and passed as rvalues: use std::ref for references)");
  // A loop Future made on a pool thread binds to no running loop: nothing
  // would ever complete it (nor run its callbacks, nor resume a coroutine
  // behind it), and whoever awaited it would hang.
  static_assert(Impl::kShape == CallShape::kInvalid || !IsFuture<typename Impl::type>::value,
                "submit/map/run_in_executor/run_on_executor/fan_out: fn returns an eddy::Future: "
                "a Future belongs to the loop that made it and a pool thread runs none, so it "
                "would never complete; call the coroutine on the loop (co_await async_thing()), "
                "or have fn return the value itself");
}

// What an entry point that does not accept the call returns (never at run
// time): the value type the caller most likely meant, so that the
// assertion is not followed by errors at the caller's next line.
template <class R>
struct RejectedCallValue {
  using type = R;
};
template <class T>
struct RejectedCallValue<Future<T>> {
  using type = T;
};
template <class F, class... A>
using rejected_call_value_t = typename RejectedCallValue<call_result_t<F, A...>>::type;

// True when fn(args...) will be handed a token.
template <class F, class... A>
inline constexpr bool takes_token_v =
    CallResultImpl<std::decay_t<F>, std::decay_t<A>...>::kShape != CallShape::kPlain;

// Invokes a task's callable as submit() documents: the callable and the
// arguments as rvalues, the token handed over first, after the object, or
// not at all (call_shape). Used once per task.
template <class O, class Fn, class... Rest>
decltype(auto) invoke_token_after_object(Fn& fn, CancellationToken& token, O& object,
                                         Rest&... rest) {
  return std::invoke(std::move(fn), std::move(object), std::move(token), std::move(rest)...);
}
template <class Fn, class... Args>
decltype(auto) invoke_call(Fn& fn, CancellationToken& token, Args&... args) {
  constexpr CallShape kShape = CallResultImpl<Fn, Args...>::kShape;
  if constexpr (kShape == CallShape::kTokenFirst) {
    return std::invoke(std::move(fn), std::move(token), std::move(args)...);
  } else if constexpr (kShape == CallShape::kTokenAfterObject) {
    return invoke_token_after_object(fn, token, args...);
  } else {
    return std::invoke(std::move(fn), std::move(args)...);
  }
}

// A submitted call and its future's state, in one block: a submit
// allocates once, and the producer's stores into the task and into the
// state fall on adjacent lines. The block lives as long as the longer of
// the task (which holds a reference of its own until dispose()) and the
// returned futures; the call itself (callable, arguments, token) is
// destroyed as soon as it returns, before its future completes (or by
// dispose() if it never ran), so that the user's captures do not live as
// long as the future.
//
// kBorrowedToken: the token borrows its source (CancellationAccess) and
// the function does not take it (Executor::map). The source may be gone
// once the future is done (map returned, its calls cancelled), so the
// token is read only once the future is running, which map waits out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"  // see EmbeddedConcurrentState
template <bool kBorrowedToken, class R, class Fn, class... Args>
class BasicCallTask final : public Executor::Task, public EmbeddedConcurrentState<R> {
 public:
  template <class F, class... A>
  BasicCallTask(CancellationToken token, F&& fn, A&&... args)
      : EmbeddedConcurrentState<R>(SourceLocation::current()),
        call_(std::move(token), std::forward<F>(fn), std::forward<A>(args)...),
        future_(ConcurrentAccess::adopt<R>(*this)) {}

  const ConcurrentFuture<R>& future() const { return future_; }

  bool run() noexcept override {
    if constexpr (!kBorrowedToken) {
      if (call_.token.cancel_requested()) {
        future_.cancel();
        return false;
      }
    }
    // Fire and forget (the submitter dropped its future, nothing listens):
    // nobody can cancel the call or see the future's states, so it runs
    // without marking the future running and completes it with plain
    // stores, three locked instructions fewer per task. A failure still
    // goes through the usual completion, which logs it if never retrieved.
    // (Never with a borrowed token, which start() must come before.)
    const bool unobserved = !kBorrowedToken && ConcurrentAccess::unobserved(future_);
    if (!unobserved && !start()) return false;
    if constexpr (kBorrowedToken) {
      // Running: the future cannot be cancelled any more, so it fails with
      // a CancelledError, which map drops (it cancels the source only once
      // it has given up on its calls).
      if (call_.token.cancel_requested()) {
        end_call();
        future_.try_set_exception(std::make_exception_ptr(
            CancelledError("the offloaded call was cancelled before it started")));
        return false;
      }
    }
    if (call_.token.expired()) {
      future_.try_set_exception(std::make_exception_ptr(
          TimeoutError("the offloaded call's deadline passed before it started")));
      return false;
    }
    // The call (the user's captures and arguments) dies before the future
    // completes: a waiter resumed by the completion then finds no
    // capture alive (a lock guard, a buffer, a shared_ptr), and a result
    // awaited from the loop is moved out, not copied, because the worker
    // no longer holds its handles for as long as the captures take to die.
    try {
      if constexpr (std::is_void_v<R>) {
        invoke();
        end_call();
        note_worker_finishing(static_cast<const Executor::Task*>(this), future_);
        settle(unobserved);
      } else {
        R value = invoke();  // a reference into a capture is copied first
        end_call();
        note_worker_finishing(static_cast<const Executor::Task*>(this), future_);
        settle(unobserved, std::move(value));
      }
    } catch (...) {
      end_call();
      note_worker_finishing(static_cast<const Executor::Task*>(this), future_);
      future_.try_set_exception(std::current_exception());
    }
    return true;
  }

  void cancel() noexcept override { future_.cancel(); }

  void fail(std::exception_ptr error) noexcept override {
    future_.try_set_exception(std::move(error));
  }

  // A future still pending means the task was dropped unsettled by its
  // executor (settling it always completes or cancels the future): do not
  // leave it pending forever. Then the call goes, and with the task's
  // reference the block, unless a future still holds it.
  void dispose() noexcept override {
    future_.cancel();
    end_call();
    ConcurrentFuture<R> last_use_of_this = std::move(future_);
  }

 private:
  struct Call {
    template <class F, class... A>
    Call(CancellationToken t, F&& f, A&&... a)
        : token(std::move(t)), fn(std::forward<F>(f)), args(std::forward<A>(a)...) {}

    CancellationToken token;
    // Often empty (no arguments, a captureless lambda): then they take no
    // room, which keeps the task within its size class.
    [[no_unique_address]] Fn fn;
    [[no_unique_address]] std::tuple<Args...> args;
  };

  // Destroys the call, once: after it ran (before its future completes),
  // or in dispose() if it never ran.
  void end_call() noexcept {
    if (!call_alive_) return;
    call_alive_ = false;
    call_.~Call();
  }

  // Only free_block() destroys a task, once dispose() has destroyed call_
  // and dropped future_.
  ~BasicCallTask() override {}

  void free_block() noexcept override { delete this; }

  // False when the call must not run: its future was cancelled, or the
  // user already completed it with set_result()/set_exception() (the
  // future is theirs to settle; the call is then skipped, and counted as
  // never run, instead of throwing out of a worker).
  bool start() noexcept {
    try {
      return future_.set_running_or_notify_cancel();
    } catch (const InvalidStateError&) {
      return false;
    }
  }

  template <class... V>
  void settle(bool unobserved, V&&... value) {
    if (unobserved) {
      ConcurrentAccess::complete_unobserved(future_, std::forward<V>(value)...);
    } else {
      future_.try_set_result(std::forward<V>(value)...);
    }
  }

  decltype(auto) invoke() {
    return std::apply(
        [this](Args&... args) -> decltype(auto) {
          return invoke_call(call_.fn, call_.token, args...);
        },
        call_.args);
  }

  union {
    Call call_;  // destroyed by end_call()
  };
  ConcurrentFuture<R> future_;  // the task's own reference; empty after dispose()
  bool call_alive_ = true;      // (in padding: the task stays 160 bytes)
};
#pragma GCC diagnostic pop

// Library-internal access to the protected hand-over (the loop bridge).
struct ExecutorAccess {
  static void execute_without_blocking(Executor& executor, Executor::TaskPtr task,
                                       absl::AnyInvocable<void()> on_admitted) {
    executor.execute_without_blocking(std::move(task), std::move(on_admitted));
  }
};

template <class R, class Fn, class... Args>
using CallTask = BasicCallTask<false, R, Fn, Args...>;

template <bool kBorrowedToken = false, class F, class... A>
auto make_call_task(CancellationToken token, F&& fn, A&&... args) {
  using R = call_result_t<F, A...>;
  using Call = BasicCallTask<kBorrowedToken, R, std::decay_t<F>, std::decay_t<A>...>;
  return std::unique_ptr<Call, Executor::TaskDisposer>(
      new Call(std::move(token), std::forward<F>(fn), std::forward<A>(args)...));
}

}  // namespace internal

template <class F, class... A>
  requires(!std::same_as<std::remove_cvref_t<F>, CancellationToken>)
auto Executor::submit(F&& fn, A&&... args) {
  return submit(CancellationToken(), std::forward<F>(fn), std::forward<A>(args)...);
}

template <class F, class... A>
auto Executor::submit(CancellationToken token, F&& fn, A&&... args) {
  if constexpr (!internal::submittable_v<F, A...>) {
    internal::assert_submittable<F, A...>();
    return ConcurrentFuture<internal::rejected_call_value_t<F, A...>>();
  } else {
    internal::check_callable(fn, "Executor::submit", "fn");
    auto task = internal::make_call_task(std::move(token), std::forward<F>(fn),
                                         std::forward<A>(args)...);
    auto future = internal::ConcurrentAccess::share_unpublished(task->future());
    execute(std::move(task));
    return future;
  }
}

template <class F, class... A>
auto Executor::submit_from_loop(F&& fn, A&&... args) {
  using R = internal::call_result_t<F, A...>;
  if constexpr (!internal::submittable_v<F, A...>) {
    internal::assert_submittable<F, A...>();
    return Future<ConcurrentFuture<internal::rejected_call_value_t<F, A...>>>();
  } else {
    internal::check_callable(fn, "Executor::submit_from_loop", "fn");
    Scheduler* loop = Scheduler::current();
    if (loop == nullptr || !loop->in_scheduler_thread()) {
      throw InvalidStateError(
          "submit_from_loop: no loop is current on this thread (use submit() off the loop)");
    }
    auto task = internal::make_call_task(CancellationToken(), std::forward<F>(fn),
                                         std::forward<A>(args)...);
    ConcurrentFuture<R> future = internal::ConcurrentAccess::share_unpublished(task->future());
    Future<ConcurrentFuture<R>> admitted;
    // The admission may be signalled from a pool thread; the loop Future is
    // completed on its own thread through a delivery.
    auto delivery = internal::make_delivery(
        loop, internal::DeliveryFrom::kOtherThread, [admitted, future]() mutable {
          internal::FutureAccess::state(admitted)->try_set_value(std::move(future));
        });
    execute_without_blocking(std::move(task),
                             [delivery = std::move(delivery)]() mutable { delivery.deliver(); });
    return admitted;
  }
}


namespace internal {

// How Executor::map hands an item of a range to a call (which decay-copies
// it, as submit() does any argument): an element of a range that owns its
// elements and was given as an rvalue is moved; one of a view or an lvalue
// range (the caller's elements) is copied; a temporary element (a
// transform's result) is moved; a proxy (std::vector<bool>'s) becomes the
// range's value type first, so no call sees, or writes through, the
// caller's container.
template <class T>
inline constexpr bool IsStdArray = false;
template <class T, size_t N>
inline constexpr bool IsStdArray<std::array<T, N>> = true;

template <class Range>
struct MapItem {
  using Reference = std::ranges::range_reference_t<Range>;
  using Value = std::ranges::range_value_t<Range>;
  // Only a container known to own its elements (one with an allocator, or
  // an array) is moved from; anything else given as an rvalue may be a
  // view of the caller's elements (std::span, absl::Span, an adaptor).
  static constexpr bool kOwnedRvalue =
      !std::is_lvalue_reference_v<Range> &&
      (requires { typename std::remove_cvref_t<Range>::allocator_type; } ||
       std::is_bounded_array_v<std::remove_cvref_t<Range>> || IsStdArray<std::remove_cvref_t<Range>>);
  using type = std::conditional_t<
      std::is_reference_v<Reference>,
      std::conditional_t<kOwnedRvalue, std::remove_reference_t<Reference>&&, Reference>,
      std::conditional_t<std::is_same_v<std::remove_cv_t<Reference>, Value>, Reference&&,
                         Value>>;
};

// Executor::map's CompletionBoard hook: the first failure cancels the
// calls' source, so that calls still queued (or not yet submitted, while
// map waits for room in a bounded queue) do not start.
inline void cancel_map_source(void* source) { static_cast<CancellationSource*>(source)->cancel(); }

// Marks the exceptions of an abandoned map's calls retrieved, but `kept`'s.
template <class Fut>
void drop_map_outcomes(std::vector<Fut>& futures, size_t kept) {
  for (size_t i = 0; i < futures.size(); ++i) {
    if (i != kept && status_of(futures[i]) == ConcurrentStatus::kException) {
      futures[i].exception();
    }
  }
}

[[noreturn]] void throw_map_timeout(size_t not_done, size_t submitted, bool all_submitted,
                                    std::optional<size_t> total, absl::Duration timeout);

}  // namespace internal

template <class F, class Range>
  requires std::ranges::input_range<Range>
auto Executor::map(F&& fn, Range&& inputs, std::optional<absl::Duration> timeout) {
  internal::check_callable(fn, "Executor::map", "fn");
  static_assert(std::is_copy_constructible_v<std::decay_t<F>>,
                "Executor::map: fn is copied into every call: pass a copyable callable, or "
                "std::ref(fn) to share one");
  using Arg = typename internal::MapItem<Range>::type;
  static_assert(internal::call_shape<std::decay_t<F>, std::decay_t<Arg>>() !=
                    internal::CallShape::kInvalid,
                "Executor::map: fn cannot be called with the range's items (each call gets "
                "its own copy of its item, as an rvalue: take it by value or const&)");
  using R = internal::call_result_t<F, Arg>;
  if constexpr (!internal::submittable_v<F, Arg>) {
    internal::assert_submittable<F, Arg>();
    using V = internal::rejected_call_value_t<F, Arg>;
    if constexpr (!std::is_void_v<V>) return std::vector<V>();
  } else {
    using Fut = ConcurrentFuture<R>;
    constexpr bool kFnTakesToken = internal::call_shape<std::decay_t<F>, std::decay_t<Arg>>() !=
                                   internal::CallShape::kPlain;

    const internal::WaitDeadline deadline(timeout);
    std::optional<size_t> total;
    if constexpr (std::ranges::sized_range<Range>) total = std::ranges::size(inputs);
    // No deadline on the tokens: map's own timeout cancels them, so that a
    // call never fails with a TimeoutError of its token's instead of map's.
    CancellationSource source;
    // Everything that allocates per call is made room for before the call is
    // submitted: once a call is queued, map must keep its future, to wait for
    // it on every way out.
    std::vector<Fut> futures;
    std::deque<internal::CompletionBoard::Node> nodes;  // stable addresses
    if (total) futures.reserve(*total);
    internal::CompletionBoard board(total.value_or(0), &internal::cancel_map_source, &source);
    size_t board_room = total.value_or(0);
    size_t not_done = 0;
    size_t failed = SIZE_MAX;  // none
    bool finished = false;
    bool all_submitted = false;
    {
      internal::Unwatcher<R, decltype(nodes)> unwatch_all(board, nodes, futures);
      auto stop_early = [&] { return board.failed() || deadline.passed(); };
      auto give_up = [&] {
        source.cancel();
        for (Fut& f : futures) f.cancel();
        board.wait_until(internal::WaitDeadline(std::nullopt), [&](const internal::WaitProgress& p) {
          return p.finished.size() == futures.size();
        }, internal::WakeWhen{.finished = futures.size(), .on_failure = false});
      };
      try {
        auto it = std::ranges::begin(inputs);
        const auto last = std::ranges::end(inputs);
        for (; it != last; ++it) {
          if (stop_early()) break;
          if (futures.size() == futures.capacity()) futures.reserve(2 * futures.size() + 8);
          nodes.emplace_back();
          // report() must not allocate.
          if (futures.size() == board_room) board_room = board.reserve(futures.size() + 1);
          if constexpr (kFnTakesToken) {
            futures.push_back(submit(source.token(), fn, static_cast<Arg>(*it)));
          } else {
            // A borrowed token: no shared count moved between cores per call.
            auto task = internal::make_call_task<true>(
                internal::CancellationAccess::borrowed(source), fn, static_cast<Arg>(*it));
            Fut future = internal::ConcurrentAccess::share_unpublished(task->future());
            execute(std::move(task));  // may throw: then map never watches the future
            futures.push_back(std::move(future));  // reserved: does not throw
          }
          board.watch(nodes.back(), futures.size() - 1, futures.back());
        }
        all_submitted = it == last;
      } catch (...) {
        give_up();
        internal::drop_map_outcomes(futures, futures.size());
        throw;
      }
      const size_t n = futures.size();
      finished = all_submitted &&
                 board.wait_until(deadline, [&](const internal::WaitProgress& p) {
                   not_done = n - p.finished.size();
                   if (p.failures > 0) failed = p.first_failure;
                   return not_done == 0 || p.failures > 0;
                 }, internal::WakeWhen{.finished = n, .on_failure = true});
      if (!finished || failed != SIZE_MAX) {
        board.inspect([&](const internal::WaitProgress& p) {
          not_done = n - p.finished.size();
          if (p.failures > 0) failed = p.first_failure;
        });
        give_up();
      }
    }
    if (failed != SIZE_MAX) {
      internal::drop_map_outcomes(futures, failed);
      std::rethrow_exception(futures[failed].exception());
    }
    if (!finished) {
      internal::drop_map_outcomes(futures, futures.size());
      internal::throw_map_timeout(not_done, futures.size(), all_submitted, total,
                                  deadline.timeout());
    }
    const size_t n = futures.size();
    for (size_t i = 0; i < n; ++i) {
      if (futures[i].cancelled()) {
        throw CancelledError("Executor::map: call " + std::to_string(i) + " of " +
                             std::to_string(n) + " was cancelled");
      }
    }
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      std::vector<R> results;
      results.reserve(n);
      for (Fut& f : futures) results.push_back(std::move(f.result()));
      return results;
    }
  }
}

}  // namespace eddy

#endif  // EDDY_EXECUTOR_EXECUTOR_H_
