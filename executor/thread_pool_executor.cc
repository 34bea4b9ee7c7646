#include "eddy/executor/thread_pool_executor.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "eddy/futures/log.h"

namespace eddy {
namespace {

// A worker that finds the queue empty polls it this many times (about
// 20-60 us) before going to sleep on work_cv_. Under a steady stream of tiny
// tasks the next one usually arrives within that window, and picking it up
// costs no futex wake for the submitter and no sleep/wake for the worker.
// Measured with W1 (1,000,000 tiny tasks, one producer) on a 2-core VM:
// median 755 ns/task without spinning, 445 with 1000 polls; 100 polls
// gained less, 5000 no more.
constexpr int kSpinIterations = 1000;

// Polling only pays when work comes back within the poll: a stream of
// tasks, each submitted soon after the last finished. It costs a core's
// time when work comes sporadically (an offload every millisecond: each
// poll runs out and the worker sleeps anyway, W2's sporadic row), and it
// stalls the very thread that would submit the next task when that thread
// waits for the core the poll holds (both cores busy with other processes:
// W2 streamed took 38 us per round trip, the length of a poll, against
// Asio's 5 us). So the pool keeps a credit, and workers poll while it is
// above 0: a poll that finds work earns one (up to kMaxPollCredit), and so
// does a sleep that a submit ended within kQuickWakeNs (a poll would have
// caught it); a poll that runs out spends one. And when a poll ran out and
// the submit that ended the sleep after it came from the core that poll
// ran on (the submitter was queued behind it), the credit drops to
// 1 - 2^k, k counting such polls since one found work (at most
// kMaxPollBackoff): polling resumes only after 2^k quick wakes.
constexpr int64_t kQuickWakeNs = 50'000;
constexpr int kMaxPollCredit = 4;
constexpr int kMaxPollBackoff = 6;

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

// The pool whose worker this thread is, for the own-thread checks.
thread_local const ThreadPoolExecutor* tls_pool = nullptr;
// Set on a worker whose own pool was destroyed by the task it is running
// (see destroy_from_own_worker): when the task returns, the worker must
// leave without touching the pool.
thread_local bool tls_pool_gone = false;

std::atomic<int> pool_counter{0};

int checked_max_workers(int max_workers) {
  if (max_workers < 0) {
    throw std::invalid_argument("ThreadPoolExecutor: max_workers must be >= 0 (0: the default), got " +
                                std::to_string(max_workers));
  }
  return max_workers == 0 ? ThreadPoolExecutor::default_max_workers() : max_workers;
}

std::string prefix_or_default(std::string prefix) {
  if (!prefix.empty()) return prefix;
  return "eddy-pool-" + std::to_string(pool_counter.fetch_add(1, std::memory_order_relaxed));
}

// "<prefix>_<index>" in Linux's 15 visible characters: the prefix gives way,
// so that the index, which tells the workers apart, survives.
std::string thread_name(const std::string& prefix, int index) {
  constexpr size_t kMaxName = 15;
  std::string suffix = "_" + std::to_string(index);
  size_t keep = suffix.size() >= kMaxName ? 0 : kMaxName - suffix.size();
  return (prefix.substr(0, keep) + suffix).substr(0, kMaxName);
}

}  // namespace

int ThreadPoolExecutor::default_max_workers() {
  unsigned cores = std::thread::hardware_concurrency();
  if (cores == 0) cores = 1;
  return static_cast<int>(std::min<unsigned>(32, cores + 4));
}

ThreadPoolExecutor::ThreadPoolExecutor(int max_workers)
    : ThreadPoolExecutor(Options{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(Options options)
    : max_workers_(checked_max_workers(options.max_workers)),
      max_queue_size_(options.max_queue_size),
      thread_name_prefix_(prefix_or_default(std::move(options.thread_name_prefix))),
      initializer_(std::move(options.initializer)),
      batch_scheduling_(options.batch_scheduling),
      max_spinners_(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2)),
      back_(&stub_),
      front_(&stub_) {}

// Runs a task popped under `lock` (held on entry and, normally, on return).
// Returns false, with `lock` released and the pool gone, if the task
// destroyed the pool: the caller must then not touch `this`.
// Inlined: it is the worker's hot path.
[[gnu::always_inline]] inline bool ThreadPoolExecutor::run_popped(
    std::unique_lock<QueueMutex>& lock, Task* task) {
  ++running_;
  if (max_queue_size_ != 0) {
    make_room_locked(lock);
  } else {
    lock.unlock();
  }
  // No lock while the task runs, nor while it is destroyed: both run
  // user code, which may submit more work, or drop the pool.
  // While workers may still start, the call counts this worker as about to
  // be free just before it completes its future: a submit woken by that
  // completion (a submit().result() loop) then leaves the task to it
  // rather than starting another worker.
  const bool may_start_more = started_.load(std::memory_order_relaxed) < max_workers_;
  if (may_start_more) {
    internal::t_worker_finishing = &finishing_;
    internal::t_worker_task = task;
  }
  bool ran = task->run();
  task->dispose();
  if (tls_pool_gone) {
    internal::t_worker_finishing = nullptr;
    return false;
  }
  lock.lock();
  if (may_start_more) {
    // Takes back its count unless a submit claimed it (counts are
    // interchangeable: each stands for one worker about to look again).
    if (internal::t_worker_finishing == nullptr) {
      claim_finishing_locked();
    } else {
      internal::t_worker_finishing = nullptr;  // the task did not count itself
    }
  }
  --running_;
  if (ran) {
    ++completed_;
  } else {
    ++cancelled_;
  }
  return true;
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (on_pool_thread()) {
    destroy_from_own_worker();
  } else {
    shutdown(/*wait=*/true, /*cancel_futures=*/false);
  }
  // Threads blocked in submit() for room in a bounded queue were woken by
  // the shutdown and are failing with ExecutorShutdownError: wait until
  // they have left (see wait_for_room_locked), or they would relock mu_
  // after it is freed.
  std::unique_lock<QueueMutex> lock(mu_);
  room_cv_.wait(lock, [&] { return room_waiters_ == 0; });
}

// One of the pool's tasks dropped the last reference to whatever owns the
// pool (run_on_executor's object, a shared_ptr captured by a submitted
// lambda). The destructor still does what shutdown(wait=true) does, as far
// as a worker can: it runs what is queued (here, since the other workers
// may be busy or absent), joins the other workers, and lets go of its own
// thread, which leaves as soon as the task returns (worker_main checks
// tls_pool_gone before it touches the pool again).
void ThreadPoolExecutor::destroy_from_own_worker() {
  shutdown(/*wait=*/false, /*cancel_futures=*/false);
  {
    std::unique_lock<QueueMutex> lock(mu_);
    for (;;) {
      bool retry;
      if (Task* task = pop_locked(retry)) {
        run_popped(lock, task);
        continue;
      }
      if (!retry) break;
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
  }
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> join_lock(join_mu_);
    {
      std::lock_guard<QueueMutex> lock(mu_);
      threads.swap(threads_);
    }
  }
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else {
      t.join();
    }
  }
  tls_pool_gone = true;
  // The running call must not count this worker into the pool it is
  // destroying (t_worker_finishing points into it).
  internal::t_worker_finishing = nullptr;
}


bool ThreadPoolExecutor::on_pool_thread() const { return tls_pool == this; }

bool internal::on_pool_worker_thread() noexcept { return tls_pool != nullptr; }

void ThreadPoolExecutor::throw_not_accepting() const {
  if (broken_) {
    throw BrokenExecutorError(
        "A thread initializer failed, the thread pool is not usable anymore");
  }
  throw ExecutorShutdownError();
}

// Vyukov's push: one exchange claims the back of the queue, then the link
// from the previous task makes the new one reachable. Until that link is
// written a worker may find the queue "busy" (pop_locked's retry).
// seq_cst: a submit pushes and then reads available_; a worker registers
// in available_ and then reads back_ (queue_looks_empty). Of two such
// sequences at least one sees the other, so a task is never left queued
// with every worker asleep and none claimed.
void ThreadPoolExecutor::push(Task* task) {
  link(task).store(nullptr, std::memory_order_relaxed);
  Task* prev = back_.exchange(task, std::memory_order_seq_cst);
  link(prev).store(task, std::memory_order_release);
}

// Takes the oldest task. Returns nullptr with `retry` false when the queue
// is empty, and with `retry` true when a push is half done (its task, or
// one behind it, is not reachable yet: only the pusher can finish that).
// A task is only handed out once its successor is known, so front_ always
// points at a queued task or at stub_, which is pushed behind the last
// task before that one is handed out.
ThreadPoolExecutor::Task* ThreadPoolExecutor::pop_locked(bool& retry) {
  retry = false;
  Task* front = front_;
  Task* next = link(front).load(std::memory_order_acquire);
  if (front == &stub_) {
    if (next == nullptr) return nullptr;
    front_ = front = next;
    next = link(front).load(std::memory_order_acquire);
  }
  if (next == nullptr) {
    if (back_.load(std::memory_order_acquire) != front) {
      retry = true;
      return nullptr;
    }
    push(&stub_);
    next = link(front).load(std::memory_order_acquire);
    if (next == nullptr) {
      retry = true;  // a submit exchanged in between us and the stub
      return nullptr;
    }
  }
  front_ = next;
  return front;
}

// Claims an available worker for a task just queued: a poller if any, else
// a sleeper, whom the caller wakes.
// Returns kSpinner, kSleeper, or 0 when every worker is busy or between
// states (such a worker looks at the queue before it polls or sleeps).
uint64_t ThreadPoolExecutor::claim_available() {
  uint64_t a = available_.load(std::memory_order_seq_cst);
  for (;;) {
    uint64_t kind = (a & (kSleeper - 1)) != 0 ? kSpinner : a != 0 ? kSleeper : 0;
    if (kind == 0) return 0;
    if (available_.compare_exchange_weak(a, a - kind, std::memory_order_seq_cst)) return kind;
  }
}

// A worker takes back its own registration as `kind`. False when submits
// have claimed every worker registered so: one of those claims is this
// worker's (claims are anonymous), so it must act on it.
bool ThreadPoolExecutor::unclaim(uint64_t kind) {
  const uint64_t mask = kind == kSpinner ? kSleeper - 1 : ~(kSleeper - 1);
  uint64_t a = available_.load(std::memory_order_seq_cst);
  for (;;) {
    if ((a & mask) == 0) return false;
    if (available_.compare_exchange_weak(a, a - kind, std::memory_order_seq_cst)) return true;
  }
}

void ThreadPoolExecutor::wake_sleeper() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    ++wakeups_;
    wake_requested_ns_ = monotonic_ns();
    wake_requested_cpu_ = sched_getcpu();
  }
  work_cv_.notify_one();
}

// Sleeps until a submit claims this worker (or shutdown); called and
// returns with mu_ held. Registers as a sleeper first, then looks at the
// queue once more: a submit that pushed before the registration may have
// found nobody to claim. It looks under mu_, at the front too: back_ alone
// can say "empty" with a task queued. A submit that pushes while a worker
// pops the last task lands in front of the stub that worker then pushes,
// so back_ points at the stub until that task is taken (and its submit,
// finding nobody registered yet, woke nobody).
//
// Returns true when a submit woke it within kQuickWakeNs of its going to
// sleep (or it never slept), and then sets *waker_cpu to the core that
// submit ran on (-1: unknown).
bool ThreadPoolExecutor::sleep(std::unique_lock<QueueMutex>& queue_lock, int* waker_cpu) {
  *waker_cpu = -1;
  available_.fetch_add(kSleeper, std::memory_order_seq_cst);
  if (!queue_empty_locked() && unclaim(kSleeper)) return true;
  queue_lock.unlock();
  bool quick = false;
  {
    const int64_t slept_ns = monotonic_ns();
    std::unique_lock<std::mutex> lock(sleep_mu_);
    work_cv_.wait(lock, [&] { return wakeups_ > 0 || stopping_; });
    if (wakeups_ > 0) {
      --wakeups_;
      quick = wake_requested_ns_ - slept_ns < kQuickWakeNs;
      *waker_cpu = wake_requested_cpu_;
    } else {
      // Shutting down. Had a submit claimed us, its token just goes unused.
      unclaim(kSleeper);
    }
  }
  queue_lock.lock();
  return quick;
}

// Called after shutdown_ or broken_ is set: sleepers get up, drain what
// they must and exit.
void ThreadPoolExecutor::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  room_cv_.notify_all();
}

// Starts worker number started_. Under mu_, so that shutdown, which
// sets shutdown_ under mu_ before collecting threads_ to join, never misses
// a worker. Throws only when the pool has no worker at all (then nothing
// could ever run the task, which is not queued yet); with some workers
// running, a failed start (no thread, or no memory for it) is logged and
// the queue waits for them: the task is queued by then, and execute()
// must not throw once it has taken the task.
void ThreadPoolExecutor::spawn_locked() {
  int index = started_.load(std::memory_order_relaxed);
  try {
    threads_.emplace_back([this, index] { worker_main(index); });
    started_.store(index + 1, std::memory_order_release);
  } catch (const std::exception& e) {
    if (index == 0) throw;
    try {
      log(LogLevel::kWarning,
          std::string("ThreadPoolExecutor: could not start another worker: ") + e.what());
    } catch (...) {
      // No memory for the message either: the pool goes on with its workers.
    }
  }
}

// Under mu_: queues `task` and finds it a worker: an available one,
// claimed (returns true when it is a sleeper, which the caller wakes after
// releasing mu_); else a new one while there is room for one; else a busy
// one once it is free. The claim comes after the push, as in
// try_execute_unlocked: a worker registering as available at the same
// time either is claimed or sees the task. The first worker starts before
// the push, so that if it cannot start the task is not queued (and no
// claim is needed: it looks at the queue under mu_ once it runs).
// Under mu_ (the count's increments are not): takes one finishing
// worker's count, if any.
bool ThreadPoolExecutor::claim_finishing_locked() {
  int f = finishing_.load(std::memory_order_relaxed);
  while (f > 0) {
    if (finishing_.compare_exchange_weak(f, f - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

bool ThreadPoolExecutor::hand_over_locked(TaskPtr& task) {
  const int started = started_.load(std::memory_order_relaxed);
  if (started == 0) spawn_locked();
  push(task.release());
  if (max_queue_size_ != 0) ++queued_;
  if (started == 0) return false;
  uint64_t claimed = claim_available();
  // A worker about to be free takes this task (one task per such worker:
  // a burst still starts workers).
  if (claimed == 0 && started < max_workers_ && !shutdown_ && !broken_ &&
      !claim_finishing_locked()) {
    spawn_locked();
  }
  return claimed == kSleeper;
}

// The common case, without mu_: an unbounded pool whose workers have all
// started. Returns false (task untouched) when the caller must take mu_.
bool ThreadPoolExecutor::try_execute_unlocked(TaskPtr& task) {
  if (max_queue_size_ != 0 || started_.load(std::memory_order_acquire) < max_workers_) {
    return false;
  }
  {
    std::lock_guard<SpinLock> lock(submit_mu_);
    check_accepting_locked();
    ++submitted_;
    push(task.release());
  }
  // Claimed after the push: a claimed poller looks at the queue after the
  // claim, so it finds the task (or a worker took it already).
  if (claim_available() == kSleeper) wake_sleeper();
  return true;
}

void ThreadPoolExecutor::execute(TaskPtr task) {
  if (!try_execute_unlocked(task)) execute_locked(task, nullptr);
}

void ThreadPoolExecutor::execute_without_blocking(TaskPtr task,
                                                  absl::AnyInvocable<void()> on_admitted) {
  if (try_execute_unlocked(task) || execute_locked(task, &on_admitted)) {
    if (on_admitted) on_admitted();
  }
}

// The submit path under mu_: while workers are still to be started, and
// for bounded pools. When the queue is full, parks the task if
// `on_admitted` is given (returns false: the worker that makes room admits
// it), else waits for room. Returns true once the task is queued.
// A submit from one of this pool's own threads parks too, instead of
// waiting: a task that waits for room only its own pool can make would
// deadlock the pool once every worker does it (a task fanning out
// subtasks). Parked, it keeps its place in submission order.
bool ThreadPoolExecutor::execute_locked(TaskPtr& task, absl::AnyInvocable<void()>* on_admitted) {
  bool wake;
  {
    std::unique_lock<QueueMutex> lock(mu_);
    check_accepting_locked();
    if (!room_locked()) {
      if (on_admitted != nullptr || on_pool_thread()) {
        // The queue is full, so workers exist and are busy: one of them
        // admits the task when it takes the next one off the queue.
        absl::AnyInvocable<void()> admitted;
        if (on_admitted != nullptr) admitted = std::move(*on_admitted);
        // Released only once it is parked: a failed push_back leaves the
        // task to `task`, which cancels its future.
        parked_.push_back(Parked{task.get(), std::move(admitted)});
        task.release();
        std::lock_guard<SpinLock> submit_lock(submit_mu_);
        ++submitted_;
        return false;
      }
      return wait_for_room_locked(lock, task);
    }
    wake = hand_over_locked(task);
    std::lock_guard<SpinLock> submit_lock(submit_mu_);
    ++submitted_;
  }
  if (wake) wake_sleeper();
  return true;
}

// execute_locked() with the queue full, off the pool: blocks for room.
// The destructor may be waiting (after a shutdown) for this thread to
// leave, which it sees once room_waiters_ is back where it was, under mu_:
// so the count drops only at the end, and this thread does everything
// else, the wake-up of a worker included, before it lets go of mu_, the
// last thing it touches. (Lock order: mu_ before sleep_mu_, as ever.)
bool ThreadPoolExecutor::wait_for_room_locked(std::unique_lock<QueueMutex>& lock, TaskPtr& task) {
  struct Leave {
    ThreadPoolExecutor* pool;
    ~Leave() {
      if (--pool->room_waiters_ == 0 && (pool->shutdown_ || pool->broken_)) {
        pool->room_cv_.notify_all();  // the destructor, if it waits
      }
    }
  };
  ++room_waiters_;
  Leave leave{this};
  room_cv_.wait(lock, [&] { return shutdown_ || broken_ || room_locked(); });
  check_accepting_locked();
  const bool wake = hand_over_locked(task);
  {
    std::lock_guard<SpinLock> submit_lock(submit_mu_);
    ++submitted_;
  }
  if (wake) wake_sleeper();
  return true;
}

void ThreadPoolExecutor::worker_main(int index) {
  tls_pool = this;
  tls_pool_gone = false;
  pthread_setname_np(pthread_self(), thread_name(thread_name_prefix_, index).c_str());
#ifdef SCHED_BATCH
  // Only from the default policy: a worker that inherited a real-time or
  // idle policy from the thread that started it (a submitter) keeps it.
  if (batch_scheduling_ && sched_getscheduler(0) == SCHED_OTHER) {
    // Best effort (see Options::batch_scheduling): without it the pool
    // works the same, only its wake-ups may preempt the submitter.
    sched_param param{};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  }
#endif

  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      std::exception_ptr e = std::current_exception();
      log(LogLevel::kError,
          "ThreadPoolExecutor: exception in initializer (" + describe_exception(e) +
              "); the pool is broken");
      break_pool(e);
      return;
    }
  }

  std::unique_lock<QueueMutex> lock(mu_);
  bool spun = false;
  int run_out_cpu = -1;  // the core of this worker's last poll, if it ran out
  for (;;) {
    bool retry;
    if (Task* task = pop_locked(retry)) {
      spun = false;
      run_out_cpu = -1;  // work came after all: the poll held nobody up
      if (!run_popped(lock, task)) return;  // the task destroyed the pool
      continue;
    }
    if (retry) {
      // A submit is between its exchange and its link, a few instructions
      // unless it was preempted there: let it run.
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
      continue;
    }
    if (shutdown_ || broken_) break;
    // Poll once between sleeps. A poller counts as available: a submit
    // claims it (no wake, no new worker), and the poller then looks at the
    // queue again, claimed or not (an unclaimed one also sees a task pushed
    // while it registered). At most max_spinners_ poll at once: a poller
    // burns a core that the loop thread, or a worker with real work, may
    // need (on 2 cores, letting both workers of W3's fan-out poll made it
    // up to 3x slower than one).
    // Only while polling pays (see kQuickWakeNs).
    if (!spun && spinning_ < max_spinners_ && poll_credit_ > 0) {
      spun = true;
      ++spinning_;
      ++polls_;
      available_.fetch_add(kSpinner, std::memory_order_seq_cst);
      lock.unlock();
      bool found = false;
      for (int i = 0; i < kSpinIterations; ++i) {
        if (!queue_looks_empty()) {
          found = true;
          break;
        }
        cpu_relax();
      }
      if (!found) run_out_cpu = sched_getcpu();
      // Under mu_, so that from here until it sleeps (registered again,
      // under mu_ too) a submit, which decides under mu_ whether to start
      // a worker, never finds this one neither busy nor registered.
      lock.lock();
      unclaim(kSpinner);
      --spinning_;
      if (found) {
        poll_credit_ = std::min(poll_credit_ + 1, kMaxPollCredit);
        poll_backoff_ = 0;
        run_out_cpu = -1;
      } else {
        ++polls_run_out_;
        --poll_credit_;
      }
      continue;
    }
    spun = false;
    int waker_cpu;
    if (sleep(lock, &waker_cpu)) {
      if (run_out_cpu >= 0 && waker_cpu == run_out_cpu) {
        // The submitter waited for the core this worker's poll held.
        poll_backoff_ = std::min(poll_backoff_ + 1, kMaxPollBackoff);
        poll_credit_ = 1 - (1 << poll_backoff_);
      } else {
        poll_credit_ = std::min(poll_credit_ + 1, kMaxPollCredit);
      }
    }
    run_out_cpu = -1;
  }
}

// Bounded pools: a worker took a task off the queue, which frees a slot:
// it goes to the oldest parked task first, else to a blocked submitter.
// Releases mu_.
void ThreadPoolExecutor::make_room_locked(std::unique_lock<QueueMutex>& lock) {
  --queued_;
  absl::AnyInvocable<void()> admitted;
  bool wake_worker = false;
  bool wake_submitter = false;
  if (!parked_.empty()) {
    Parked p = std::move(parked_.front());
    parked_.pop_front();
    TaskPtr next(p.task);
    wake_worker = hand_over_locked(next);
    admitted = std::move(p.on_admitted);
  } else if (room_waiters_ > 0) {
    wake_submitter = true;
  }
  lock.unlock();
  if (wake_worker) wake_sleeper();
  if (wake_submitter) room_cv_.notify_one();
  if (admitted) admitted();
}

// Python's _initializer_failed: mark the pool broken and fail everything
// that waits, outside mu_ (failing a future runs its callbacks).
void ThreadPoolExecutor::break_pool(std::exception_ptr cause) {
  std::vector<Task*> queued;
  std::deque<Parked> parked;
  {
    std::lock_guard<QueueMutex> lock(mu_);
    std::lock_guard<SpinLock> submit_lock(submit_mu_);
    broken_ = true;
    // No push is half done: submits push under submit_mu_, workers under mu_.
    bool retry;
    while (Task* t = pop_locked(retry)) queued.push_back(t);
    parked.swap(parked_);
    queued_ = 0;
    failed_ += queued.size() + parked.size();
  }
  stop_workers();
  std::exception_ptr error = std::make_exception_ptr(BrokenExecutorError(
      "A thread initializer failed, the thread pool is not usable anymore: " +
      describe_exception(cause)));
  for (Task* t : queued) {
    t->fail(error);
    t->dispose();
  }
  for (Parked& p : parked) {
    p.task->fail(error);
    p.task->dispose();
    if (p.on_admitted) p.on_admitted();
  }
}

ShutdownReport ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  std::vector<Task*> queued;
  std::deque<Parked> parked;
  {
    std::lock_guard<QueueMutex> lock(mu_);
    std::lock_guard<SpinLock> submit_lock(submit_mu_);
    shutdown_ = true;
    if (cancel_futures) {
      // No push is half done: submits push under submit_mu_, workers under mu_.
      bool retry;
      while (Task* t = pop_locked(retry)) queued.push_back(t);
      parked.swap(parked_);
      queued_ = 0;
      cancelled_ += queued.size() + parked.size();
    }
  }
  stop_workers();
  for (Task* t : queued) {
    t->cancel();
    t->dispose();
  }
  for (Parked& p : parked) {
    p.task->cancel();
    p.task->dispose();
    if (p.on_admitted) p.on_admitted();
  }

  if (wait && !on_pool_thread()) {
    // No worker starts after shutdown_ was set, so the threads collected
    // here are all there will ever be. A second waiting caller blocks on
    // join_mu_ until the first has joined them.
    std::lock_guard<std::mutex> join_lock(join_mu_);
    std::vector<std::thread> threads;
    {
      std::lock_guard<QueueMutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  std::lock_guard<QueueMutex> lock(mu_);
  return snapshot_locked();
}

ShutdownReport ThreadPoolExecutor::snapshot_locked() const {
  std::lock_guard<SpinLock> submit_lock(submit_mu_);
  ShutdownReport r;
  r.submitted = submitted_;
  r.completed = completed_;
  r.cancelled = cancelled_;
  r.failed = failed_;
  r.running = running_;
  // Queued or parked: everything accepted and not yet taken by a worker.
  r.queued = submitted_ - completed_ - cancelled_ - failed_ - running_;
  return r;
}

ShutdownReport ThreadPoolExecutor::stats() const {
  std::lock_guard<QueueMutex> lock(mu_);
  return snapshot_locked();
}

int ThreadPoolExecutor::thread_count() const { return started_.load(std::memory_order_acquire); }

int ThreadPoolExecutor::idle_workers() const {
  return static_cast<int>(available_.load(std::memory_order_acquire) / kSleeper);
}

bool ThreadPoolExecutor::broken() const {
  std::lock_guard<QueueMutex> lock(mu_);
  return broken_;
}

}  // namespace eddy
