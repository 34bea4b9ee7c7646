// run_on_executor: Tornado's @run_on_executor decorator for C++. A method
// runs on a pool, and the caller gets a loop Future that resolves on the
// loop that was current at the call.
//
//   class Store {
//    public:
//     eddy::Future<Row> load(int id) {
//       return eddy::run_on_executor(this, &Store::load_blocking, id);
//     }
//     Row load_blocking(int id);      // blocking: runs on a pool thread
//
//     std::string dsn_;               // what the calls use, declared first...
//     // ...and the pool last: members go in reverse order, so the pool's
//     // destructor (shutdown(wait=true): queued calls still run) finishes
//     // every call before anything they use is destroyed.
//     std::unique_ptr<eddy::ThreadPoolExecutor> executor =
//         std::make_unique<eddy::ThreadPoolExecutor>(4);
//   };
//
// The object's public member named `executor` picks the pool; it may be an
// Executor (or derived) pointer, reference or value, or a std::unique_ptr /
// std::shared_ptr to one (a value used from a const method must be
// `mutable`). To use another pool, or keep the member private, name it:
//   eddy::run_on_executor(pool_.get(), this, &Store::load_blocking, id);
// where nullptr means the loop's default executor.
//
// A free function is wrapped once and then called like an async function:
//
//   auto load = eddy::on_executor(&pool, &load_row);   // nullptr: the default pool
//   eddy::Future<Row> f = load(42);
//
// Arguments are decay-copied into the task (std::ref / std::cref to pass by
// reference); `self` is captured as given: a raw pointer must outlive the
// call, a std::shared_ptr keeps the object alive until the call is done.
// Cancelling the returned Future cancels the task if it is still queued,
// or signals its CancellationToken if the method takes one (as its first
// parameter); a deadline is set through IOLoop::run_in_executor (see
// offload.h for the whole contract, and offload_stats()).
//
// Threading: call on a loop thread (IOLoop::current() is used, and created
// if this thread has none, as in Tornado). The method runs on the pool's
// thread; the Future completes on the caller's loop thread. Never blocks the
// loop, even with a bounded pool queue (the task waits outside the queue).
#ifndef EDDY_EXECUTOR_RUN_ON_EXECUTOR_H_
#define EDDY_EXECUTOR_RUN_ON_EXECUTOR_H_

#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "eddy/executor/executor.h"
#include "eddy/executor/offload.h"
#include "eddy/futures/future.h"
#include "eddy/futures/internal/callable_check.h"
#include "eddy/loop/io_loop.h"

namespace eddy {

namespace internal {

// The Executor behind an object's `executor` member, whatever it holds.
inline Executor* as_executor(Executor* e) { return e; }
inline Executor* as_executor(Executor& e) { return &e; }
template <class E>
  requires std::is_base_of_v<Executor, E>
Executor* as_executor(const std::unique_ptr<E>& e) {
  return e.get();
}
template <class E>
  requires std::is_base_of_v<Executor, E>
Executor* as_executor(const std::shared_ptr<E>& e) {
  return e.get();
}

template <class Self>
Executor* executor_member(const Self& self) {
  static_assert(requires { (*self).executor; },
                "run_on_executor(self, method, ...): the object has no accessible member named "
                "`executor`: make it public, or name the pool: "
                "run_on_executor(pool, self, method, ...)");
  static_assert(requires { as_executor((*self).executor); },
                "run_on_executor(self, method, ...): the object's `executor` member is not an "
                "Executor pointer, reference or value, or a std::unique_ptr / std::shared_ptr to "
                "one (a value used from a const method must be declared `mutable`)");
  Executor* e = as_executor((*self).executor);
  if (e == nullptr) {
    throw std::invalid_argument("run_on_executor: the object's `executor` member is null");
  }
  return e;
}

}  // namespace internal

// Runs (self->*method)(args...) on self->executor (see the file comment).
// Returns a Future of the method's (decayed) result on the current loop.
// Throws std::invalid_argument if `method` is null or self->executor is
// null, ExecutorShutdownError / BrokenExecutorError as Executor::submit.
// `self` is a raw pointer or a std::shared_ptr.
template <class Self, class Method, class... A>
  requires std::is_member_function_pointer_v<Method>
auto run_on_executor(Self self, Method method, A&&... args) {
  internal::check_callable(method, "run_on_executor", "method");
  Executor* executor = internal::executor_member(self);
  return IOLoop::current().run_in_executor(executor, method, std::move(self),
                                           std::forward<A>(args)...);
}

// As above, on `executor` (nullptr: the loop's default executor) instead of
// self->executor, which the class then need not have.
template <class Self, class Method, class... A>
  requires std::is_member_function_pointer_v<Method>
auto run_on_executor(Executor* executor, Self self, Method method, A&&... args) {
  internal::check_callable(method, "run_on_executor", "method");
  return IOLoop::current().run_in_executor(executor, method, std::move(self),
                                           std::forward<A>(args)...);
}

// A callable that offloads `fn` on every call. Copyable when `fn` is.
template <class F>
class OnExecutor {
 public:
  // Throws std::invalid_argument if `fn` is empty (an empty AnyInvocable or
  // std::function, a null function pointer).
  OnExecutor(Executor* executor, F fn) : executor_(executor), fn_(std::move(fn)) {
    internal::check_callable(fn_, "on_executor", "fn");
  }

  // Offloads fn(args...) to the executor (nullptr: the current loop's
  // default) and returns the Future of its result on the current loop.
  // Throws as IOLoop::run_in_executor.
  template <class... A>
  auto operator()(A&&... args) const {
    return IOLoop::current().run_in_executor(executor_, fn_, std::forward<A>(args)...);
  }

 private:
  Executor* executor_;
  F fn_;
};

// Wraps `fn` once (see the file comment). The executor must outlive every
// call of the wrapper. Throws std::invalid_argument if `fn` is empty.
template <class F>
OnExecutor<std::decay_t<F>> on_executor(Executor* executor, F&& fn) {
  return OnExecutor<std::decay_t<F>>(executor, std::forward<F>(fn));
}

}  // namespace eddy

#endif  // EDDY_EXECUTOR_RUN_ON_EXECUTOR_H_
