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
//     up to max_workers; idle workers are reused, and so is a worker whose
//     call has just completed the future the submitter waited for (a
//     submit(...).result() loop runs on one worker);
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
// A submit() from one of the pool's own threads (a task fanning out
// subtasks) parks the task rather than block: a full pool whose workers
// all wait for room would never make any.
//
// Costs: submit takes the task (callable + arguments) and its future's
// shared state from recycled memory (futures/internal/recycler.h: blocks
// freed on a worker come back to the submitting thread in batches, without
// the malloc arena lock); the queue is intrusive. Once every worker has
// started, an unbounded pool's submit does not take the workers' lock: it
// links the task in with one atomic exchange (the queue is lock-free on
// the submitting side) under a spin lock that only submitters and shutdown
// take, then hands the task to a polling worker if one is free, else wakes
// a sleeping one, else leaves it to the busy workers (when all are busy,
// a submit touches nothing the workers write). Marking a task running and
// completing a future nobody waits on take no lock (an atomic status
// word). No lock is held while a task runs. A submit that wakes a sleeping
// worker costs one futex wake; one worker per two cores polls the queue
// briefly before it sleeps, so a steady stream of tasks mostly avoids that
// without the pollers taking the cores the loop needs.
//
// Threading: every method is safe from any thread. Tasks, their
// ConcurrentFuture callbacks and the initializer run on pool threads.
// From a pool thread, shutdown() does not wait (a worker cannot join
// itself). The destructor may run on a pool thread (a task that drops the
// last reference to the pool's owner): it then runs the queued tasks on
// that thread, joins the other workers, and the worker leaves when the
// task returns.
#ifndef EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_
#define EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "eddy/executor/executor.h"
#include "eddy/futures/internal/callable_check.h"

namespace eddy {

class ThreadPoolExecutor final : public Executor {
 public:
  // The type of Options::initializer: an absl::AnyInvocable<void() const>
  // that is empty (no initializer) when made from an empty callable, such
  // as an empty std::function or a null function pointer. (An AnyInvocable
  // made from an empty std::function is not empty: calling it throws
  // std::bad_function_call, which would break the pool.) Keep it as an
  // Initializer: an AnyInvocable made from one wraps it, emptiness lost.
  class Initializer : public absl::AnyInvocable<void() const> {
    using Base = absl::AnyInvocable<void() const>;

   public:
    Initializer() = default;
    template <class F>
      requires(!std::is_same_v<std::remove_cvref_t<F>, Initializer> &&
               std::is_constructible_v<Base, F>)
    Initializer(F&& fn) : Base(make(std::forward<F>(fn))) {}

   private:
    template <class F>
    static Base make(F&& fn) {
      if (internal::is_empty_callable(fn)) return Base();
      return Base(std::forward<F>(fn));
    }
  };

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
    // and the pool is broken (BrokenExecutorError). Empty (the default, an
    // empty std::function, a null function pointer): no initializer.
    Initializer initializer = {};
    // At most this many tasks wait in the queue (not counting running
    // ones); 0 means unbounded. When full, submit() blocks until there is
    // room and submit_from_loop() / run_in_executor park the task, as does
    // a submit() from one of the pool's own threads (blocking there could
    // deadlock the pool). Parked tasks are admitted in order as room
    // appears.
    size_t max_queue_size = 0;
    // Workers run under Linux's SCHED_BATCH policy: the same share of the
    // CPU as any thread at nice 0, but a worker that wakes up does not
    // preempt the thread running on the core it lands on (that waits for
    // the next scheduler tick instead). On a machine with more busy
    // threads than cores, the thread a woken worker would preempt is most
    // often the one that just handed it work, the loop: without this, the
    // loop stalls for a worker's whole turn each time it wakes one (W1 and
    // W3 in bench/ ran at half speed in that mode). A worker still runs at
    // once on an idle core. Set before the initializer runs, which may
    // change it; threads a task starts inherit it. Only a worker under the
    // default policy (SCHED_OTHER) changes: workers start on the thread
    // that submits, and inherit its policy, so a pool fed from a
    // real-time (or SCHED_IDLE) thread keeps that policy. false keeps the
    // inherited policy always (for tasks that must preempt other CPU-bound
    // threads of the process the moment they are woken). Where the policy
    // is unavailable (another OS, a sandbox that forbids it), workers keep
    // the default policy.
    bool batch_scheduling = true;
  };

  // min(32, hardware threads + 4), as Python: the pool is meant for
  // blocking calls, which mostly wait, so a few more threads than cores
  // keep the cores busy; the cap bounds memory on very large machines.
  static int default_max_workers();

  // Throws std::invalid_argument if max_workers < 0.
  explicit ThreadPoolExecutor(int max_workers = 0);
  explicit ThreadPoolExecutor(Options options);

  // shutdown(wait=true): runs what is queued and joins. On one of this
  // pool's own threads (a task dropped the last reference to the pool's
  // owner) it runs the queued tasks on that thread, joins the other
  // workers, and that worker leaves once its task returns. Threads blocked
  // in submit() for room in a full bounded queue fail with
  // ExecutorShutdownError, and the destructor waits until they have
  // returned from the pool's code. (Any other call racing the destructor
  // is the caller's bug: a submit() that is not yet blocked may find the
  // pool gone.)
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

  // glibc's adaptive mutex: a contended lock spins briefly before it
  // sleeps in the kernel. The workers' lock is held for a few dozen
  // instructions at a time, so they mostly get it without a futex round
  // trip.
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

  // A test-and-test-and-set lock, for submit_mu_: held for a few dozen
  // instructions, by submitters (one, usually) and the rare shutdown. Two
  // plain atomic operations where a pthread mutex call costs ~30
  // instructions each way.
  class SpinLock {
   public:
    void lock() {
      while (locked_.exchange(true, std::memory_order_acquire)) {
        while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
      }
    }
    void unlock() { locked_.store(false, std::memory_order_release); }

   private:
    std::atomic<bool> locked_{false};
  };

  // The queue's permanent node (see push()); never run.
  class Stub final : public Task {
   public:
    bool run() noexcept override { return false; }
    void cancel() noexcept override {}
    void fail(std::exception_ptr) noexcept override {}
    void dispose() noexcept override {}
  };

  // available_ packs the workers a submit may hand its task to without
  // starting one: pollers (spinning) in the low half, sleepers in the high
  // half, each counted until a submit claims it.
  static constexpr uint64_t kSpinner = 1;
  static constexpr uint64_t kSleeper = uint64_t{1} << 32;

  // Task::next_, the queue link: written by a submitter, read by workers.
  static std::atomic_ref<Task*> link(Task* task) { return std::atomic_ref<Task*>(task->next_); }

  void worker_main(int index);
  bool run_popped(std::unique_lock<QueueMutex>& lock, Task* task);
  void destroy_from_own_worker();
  void check_accepting_locked() const {
    if (shutdown_ || broken_) [[unlikely]] throw_not_accepting();
  }
  [[noreturn]] void throw_not_accepting() const;
  bool room_locked() const { return max_queue_size_ == 0 || (queued_ < max_queue_size_ && parked_.empty()); }
  bool try_execute_unlocked(TaskPtr& task);
  bool execute_locked(TaskPtr& task, absl::AnyInvocable<void()>* on_admitted);
  bool wait_for_room_locked(std::unique_lock<QueueMutex>& lock, TaskPtr& task);
  bool hand_over_locked(TaskPtr& task);
  bool claim_finishing_locked();
  void push(Task* task);
  Task* pop_locked(bool& retry);
  // Unlocked: a poller's hint (see sleep() for when it is wrong).
  bool queue_looks_empty() const { return back_.load(std::memory_order_seq_cst) == &stub_; }
  // Under mu_: nothing queued and no push under way. front_ is a queued
  // task unless it is the stub; behind the stub, a link or a back_ that has
  // moved on is a push.
  bool queue_empty_locked() {
    return front_ == &stub_ && link(&stub_).load(std::memory_order_acquire) == nullptr &&
           back_.load(std::memory_order_seq_cst) == &stub_;
  }
  uint64_t claim_available();
  bool unclaim(uint64_t kind);
  void make_room_locked(std::unique_lock<QueueMutex>& lock);
  void wake_sleeper();
  bool sleep(std::unique_lock<QueueMutex>& queue_lock, int* waker_cpu);
  void stop_workers();
  void spawn_locked();
  void break_pool(std::exception_ptr error);
  ShutdownReport snapshot_locked() const;
  bool on_pool_thread() const;

  const int max_workers_;
  const size_t max_queue_size_;
  const std::string thread_name_prefix_;
  const Initializer initializer_;
  const bool batch_scheduling_;
  const int max_spinners_;  // workers allowed to poll the queue at once

  // Lock order: mu_, then submit_mu_, then sleep_mu_. The fields are
  // grouped by who writes them, 64 bytes of padding between groups, so
  // that a submit does not miss in the cache on the workers' counters, nor
  // a worker on the submitters'. (Padding, not alignas: pools live on
  // stacks too, which ASan's fake stack does not over-align.)
  using Pad = std::byte[64];

  // Read by everybody, rarely written: beside the constants above.
  // Written under mu_ and submit_mu_ both, so either lock reads them.
  bool shutdown_ = false;
  bool broken_ = false;
  // Guarded by mu_; read without it by submits, to skip mu_ once it has
  // reached max_workers_ (it never decreases).
  std::atomic<int> started_{0};

  // Submitters. submit_mu_ orders submits against shutdown and break_pool,
  // so that a submit either fails or links its task in before the workers
  // can see shutdown_ and exit. On a line of its own: the workers read the
  // fields above whenever the queue runs dry, which would take away the
  // line that every submit writes.
  [[maybe_unused]] Pad pad0_{};
  mutable SpinLock submit_mu_;
  uint64_t submitted_ = 0;          // guarded by submit_mu_

  // The queue: Vyukov's intrusive multi-producer queue through Task::next_.
  // Submitters link tasks in at back_ without a lock; workers take them
  // from front_ under mu_. stub_ keeps the list from ever being empty, so a
  // push never touches front_.
  [[maybe_unused]] Pad pad1_{};
  std::atomic<Task*> back_;
  Stub stub_;

  // Written by workers as they start and stop polling or sleeping, and by
  // submits that claim one of them (decremented: two quick submits never
  // count the same worker twice). A claimed poller looks at the queue when
  // it stops polling; a claimed sleeper gets a token in wakeups_.
  [[maybe_unused]] Pad pad2_{};
  std::atomic<uint64_t> available_{0};

  // Workers. mu_ guards taking tasks off the queue, the counters and the
  // worker bookkeeping; submits take it only while workers are still being
  // started, or when the queue is bounded.
  [[maybe_unused]] Pad pad3_{};
  mutable QueueMutex mu_;
  Task* front_;                     // guarded by mu_
  uint64_t completed_ = 0;          // counters guarded by mu_
  uint64_t cancelled_ = 0;
  uint64_t failed_ = 0;
  uint64_t running_ = 0;
  int spinning_ = 0;                // workers polling; guarded by mu_
  // Whether polling pays at the moment (see kQuickWakeNs in the .cc):
  // workers poll while the credit is above 0; it starts at the .cc's
  // kMaxPollCredit. The back-off counts polls that held up their
  // submitter's core since one found work. Guarded by mu_.
  int poll_credit_ = 4;
  int poll_backoff_ = 0;
  uint64_t polls_ = 0;              // polls started; guarded by mu_
  uint64_t polls_run_out_ = 0;      // polls that found no work; guarded by mu_
  friend struct ThreadPoolExecutorTestPeer;  // reads the two above
  // Workers whose call completed its future and that will look at the
  // queue again (internal::t_worker_finishing): counted as about to be free
  // while not every worker has started; claimed by submits, under mu_.
  std::atomic<int> finishing_{0};
  int room_waiters_ = 0;            // submit()s blocked for room; guarded by mu_
  size_t queued_ = 0;               // bounded pools only; guarded by mu_
  std::deque<Parked> parked_;       // waiting for room; guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_; joined under join_mu_
  std::condition_variable_any room_cv_;  // blocked submitters wait for room

  // Sleepers wait on work_cv_ for a wake-up token.
  [[maybe_unused]] Pad pad4_{};
  std::mutex sleep_mu_;
  int wakeups_ = 0;                 // guarded by sleep_mu_
  int64_t wake_requested_ns_ = 0;   // the last wake_sleeper(): when, and on
  int wake_requested_cpu_ = -1;     // which core; guarded by sleep_mu_
  bool stopping_ = false;           // guarded by sleep_mu_: sleepers wake for good
  std::condition_variable work_cv_;

  // Serialises joining, so concurrent waiting shutdowns all return after
  // every worker has exited. Never taken by a worker.
  std::mutex join_mu_;
};

namespace internal {

// True on a worker thread of any ThreadPoolExecutor (for as long as the
// thread lives, its initializer included). IOLoop::current() refuses to
// create a loop there: nothing would ever run it.
bool on_pool_worker_thread() noexcept;

}  // namespace internal

}  // namespace eddy

#endif  // EDDY_EXECUTOR_THREAD_POOL_EXECUTOR_H_
