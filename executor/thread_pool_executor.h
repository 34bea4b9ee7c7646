// ThreadPoolExecutor: a pool of worker threads with Python's
// concurrent.futures.ThreadPoolExecutor semantics. The loop hands it
// blocking calls and stays responsive.
//
//   eddy::ThreadPoolExecutor pool({.max_workers = 4, .thread_name_prefix = "db"});
//   eddy::ConcurrentFuture<Row> f = pool.submit(&Db::fetch, &db, id);    // any thread
//   eddy::Future<Row> g = loop.run_in_executor(&pool, &Db::fetch, &db, id);  // loop thread
//   pool.shutdown();                     // runs what is queued, joins the workers
//
// Behaviour, as Python's:
//   - workers start lazily: a submit that finds no idle worker starts one,
//     up to max_workers; idle workers are reused;
//   - tasks run in submission order (FIFO queue); a task that throws stores
//     the exception in its future and the worker goes on;
//   - the future of a queued task can be cancelled and the task never runs;
//     a running task cannot be cancelled (see cancellation.h for asking it);
//   - an initializer that throws breaks the pool: queued and later submits
//     fail with BrokenExecutorError;
//   - submit after shutdown throws ExecutorShutdownError; shutdown(wait)
//     runs every queued task and joins; shutdown(cancel_futures) cancels the
//     queued ones; the destructor is shutdown(true).
// Beyond Python: an optional queue bound (Options::max_queue_size), under
// which submit() blocks for room and submit_from_loop() parks the task
// instead (see executor.h for which to use where), and a ShutdownReport.
//
// Costs: submit takes the task (callable + arguments) and its future's
// shared state from recycled memory (futures/internal/recycler.h: blocks
// freed on a worker come back to the submitting thread in batches, without
// the malloc arena lock); the queue is intrusive. Marking a task running
// and completing a future nobody waits on take no lock (an atomic status
// word). No lock is held while a task runs. A submit that wakes a sleeping
// worker costs one futex wake; one worker per two cores polls the queue
// briefly before it sleeps, so a steady stream of tasks mostly avoids that
// without the pollers taking the cores the loop needs.
//
// Threading: every method is safe from any thread. Tasks, their
// ConcurrentFuture callbacks and the initializer run on pool threads. The
// destructor, and shutdown(wait=true), must not run on a pool thread (a
// worker cannot join itself): from a pool thread, shutdown() does not wait,
// and the destructor aborts with a message.
#ifndef EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_
#define EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_

#include <atomic>
#include <pthread.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/executor/executor.h"

namespace eddy {

class ThreadPoolExecutor final : public Executor {
 public:
  // Every field has a default (the `= {}` keep g++'s -Wextra quiet about
  // designated initializers that leave fields out).
  struct Options {
    // Upper bound on worker threads; 0 means default_max_workers().
    int max_workers = 0;
    // Workers are named "<prefix>_<index>" (visible in top -H, gdb, perf),
    // cut to Linux's 15 characters by shortening the prefix. Empty means
    // "eddy-pool-<N>", N counting pools in this process.
    std::string thread_name_prefix = {};
    // Runs once at the start of each worker thread, concurrently on
    // several workers (hence const). If it throws, the exception is logged
    // and the pool is broken (BrokenExecutorError).
    absl::AnyInvocable<void() const> initializer = {};
    // At most this many tasks wait in the queue (not counting running
    // ones); 0 means unbounded. When full, submit() blocks until there is
    // room and submit_from_loop() / run_in_executor park the task.
    size_t max_queue_size = 0;
  };

  // min(32, hardware threads + 4), as Python: the pool is meant for
  // blocking calls, which mostly wait, so a few more threads than cores
  // keep the cores busy; the cap bounds memory on very large machines.
  static int default_max_workers();

  // Throws std::invalid_argument if max_workers < 0.
  explicit ThreadPoolExecutor(int max_workers = 0);
  explicit ThreadPoolExecutor(Options options);

  // shutdown(wait=true): runs what is queued and joins. Aborts with a
  // message when called on one of this pool's threads.
  ~ThreadPoolExecutor() override;

  // See Executor::shutdown. From one of this pool's own threads `wait` is
  // ignored (a worker cannot join itself).
  ShutdownReport shutdown(bool wait = true, bool cancel_futures = false) override;

  // The same counts as shutdown()'s report, now.
  ShutdownReport stats() const;

  int max_workers() const { return max_workers_; }
  size_t max_queue_size() const { return max_queue_size_; }
  // Worker threads started so far (they are joined only at shutdown).
  int thread_count() const;
  // Workers waiting for work right now.
  int idle_workers() const;
  // True once an initializer has thrown.
  bool broken() const;

 protected:
  // Throws ExecutorShutdownError / BrokenExecutorError; blocks while a
  // bounded queue is full; std::system_error if no worker can be started.
  void execute(TaskPtr task) override;
  // Parks the task instead of blocking when a bounded queue is full.
  void execute_without_blocking(TaskPtr task,
                                absl::AnyInvocable<void()> on_admitted) override;

 private:
  struct Parked {
    Task* task;
    absl::AnyInvocable<void()> on_admitted;
  };

  void worker_main(int index);
  void check_accepting_locked() const;
  bool room_locked() const { return max_queue_size_ == 0 || (queued_ < max_queue_size_ && parked_.empty()); }
  bool enqueue_locked(TaskPtr& task);
  void link_locked(Task* task);
  Task* unlink_locked();
  void spawn_locked();
  void break_pool(std::exception_ptr error);
  ShutdownReport snapshot_locked() const;
  bool on_pool_thread() const;

  const int max_workers_;
  const size_t max_queue_size_;
  const std::string thread_name_prefix_;
  const absl::AnyInvocable<void() const> initializer_;
  const int max_spinners_;  // workers allowed to poll the queue at once

  // glibc's adaptive mutex: a contended lock spins briefly before it
  // sleeps in the kernel. The queue lock is held for a few dozen
  // instructions at a time, so the producer and the workers mostly get it
  // without a futex round trip (W1: 3 threads on one lock).
  class QueueMutex {
   public:
    QueueMutex() {
      pthread_mutexattr_t attr;
      pthread_mutexattr_init(&attr);
      pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
      pthread_mutex_init(&mu_, &attr);
      pthread_mutexattr_destroy(&attr);
    }
    ~QueueMutex() { pthread_mutex_destroy(&mu_); }
    QueueMutex(const QueueMutex&) = delete;
    QueueMutex& operator=(const QueueMutex&) = delete;
    void lock() { pthread_mutex_lock(&mu_); }
    void unlock() { pthread_mutex_unlock(&mu_); }
    bool try_lock() { return pthread_mutex_trylock(&mu_) == 0; }

   private:
    pthread_mutex_t mu_;
  };

  mutable QueueMutex mu_;
  std::condition_variable_any work_cv_;  // workers wait here for wakeups_
  std::condition_variable_any room_cv_;  // blocked submitters wait for room
  // The queue: an intrusive FIFO through Task::next_. Guarded by mu_.
  Task* head_ = nullptr;
  Task* tail_ = nullptr;
  size_t queued_ = 0;
  std::deque<Parked> parked_;       // waiting for room; guarded by mu_
  // Idle accounting: a submit that finds idle_ > 0 claims one idle worker
  // (idle_ -= 1) and leaves it a wake-up token, so two quick submits never
  // count the same sleeping worker twice and start a thread when needed.
  int idle_ = 0;                    // guarded by mu_
  int wakeups_ = 0;                 // guarded by mu_
  int spinning_ = 0;                // workers polling before sleep; guarded by mu_
  int claims_ = 0;                  // spinners claimed by submits; <= spinning_
  std::atomic<size_t> queued_hint_{0};  // queued_, readable without mu_ by spinners
  int room_waiters_ = 0;            // guarded by mu_
  bool shutdown_ = false;           // guarded by mu_
  bool broken_ = false;             // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_; joined under join_mu_
  int started_ = 0;                 // guarded by mu_; never decreases
  uint64_t submitted_ = 0;          // counters guarded by mu_
  uint64_t completed_ = 0;
  uint64_t cancelled_ = 0;
  uint64_t failed_ = 0;
  uint64_t running_ = 0;

  // Serialises joining, so concurrent waiting shutdowns all return after
  // every worker has exited. Never taken by a worker.
  std::mutex join_mu_;
};

}  // namespace eddy

#endif  // EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_
