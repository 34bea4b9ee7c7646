#include "eddy/loop/io_loop.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>

#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/log.h"
#include "eddy/loop/internal/watchdog.h"

namespace eddy {
namespace internal {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct FdHandler {
  absl::AnyInvocable<void(int, uint32_t)> fn;
  uint32_t events;      // READ | WRITE bits asked for
  uint32_t generation;  // tells this registration's events from a previous one's
  SourceLocation where;
};

inline bool TaskChain::empty() const { return head == nullptr || head->begin == head->end; }

// Emptied blocks are reused (no allocation in the steady state), but a burst
// of millions of posts must not pin its memory forever: each pool keeps at
// most this many (512 KiB of tasks) and frees the rest.
constexpr size_t kRetainedBlocks = 64;

TaskBlock* take_block(SpareBlocks& spare) {
  TaskBlock* b = spare.top;
  if (b == nullptr) return new TaskBlock;
  spare.top = b->next;
  if (--spare.count == 0) spare.bottom = nullptr;
  b->reset();
  return b;
}

void free_blocks(TaskBlock* b) {
  while (b != nullptr) delete std::exchange(b, b->next);
}

// Keeps an emptied block for reuse, or frees it past the bound.
void recycle(SpareBlocks& spare, TaskBlock* b) {
  if (spare.count >= kRetainedBlocks) {
    delete b;
    return;
  }
  b->next = spare.top;
  spare.top = b;
  if (spare.count++ == 0) spare.bottom = b;
}

// Moves all of `from` onto `to` (O(1)).
void splice_spare(SpareBlocks& to, SpareBlocks& from) {
  if (from.count == 0) return;
  from.bottom->next = to.top;
  to.top = from.top;
  if (to.count == 0) to.bottom = from.bottom;
  to.count += from.count;
  from = SpareBlocks();
}

// The loop's own chain keeps a spare block ready, so that a post from a
// completing future never has to allocate (a post that threw there would
// lose the future's callbacks: see Scheduler::reserve_post). Room for this
// many posts also does when no spare block can be had: a completion's own
// post and those of what it completes inline (a multi() counting its
// children, a chain of cancellations passed down).
constexpr uint32_t kPostReserveSlots = 32;

// Adds a new block to `spare`; false if there is no memory for one.
bool refill_spare(SpareBlocks& spare) noexcept {
  TaskBlock* b;
  try {
    b = new TaskBlock;
  } catch (const std::bad_alloc&) {
    return false;
  }
  recycle(spare, b);
  return true;
}

// Gives `chain` a new tail block from `spare`, or a new one when none is
// left (that throws std::bad_alloc with nothing changed). Then, if `spare`
// is empty, tries to allocate the next block right away, here on the slow
// path, so that the posts after this one find it ready; failing that,
// raises `owner`'s post_room_low() (lowered when a spare is ready), and
// completing futures ask IOLoop::reserve_post for room before they change
// anything, until a block is back. Out of line: a chain keeps its last block when it drains (see
// chain_run_batch), so this runs once per kCapacity posts, and the pushes
// stay small.
[[gnu::noinline]] TaskBlock* chain_grow(TaskChain& chain, SpareBlocks& spare, Scheduler* owner) {
  TaskBlock* fresh = take_block(spare);
  if (chain.tail == nullptr) {
    chain.head = fresh;
  } else {
    chain.tail->next = fresh;
  }
  chain.tail = fresh;
  if (spare.count == 0) refill_spare(spare);
  if (SchedulerAnchor* anchor = owner->anchor()) anchor->set_post_room_low(spare.count == 0);
  return fresh;
}

// Appends a task made from `fn` (a Task, or a callable built into one in
// place) to `chain`, the loop `owner`'s.
template <class F>
[[gnu::noinline]] void chain_push_grow(TaskChain& chain, SpareBlocks& spare, F&& fn,
                                       Scheduler* owner) {
  TaskBlock* b = chain_grow(chain, spare, owner);
  ::new (static_cast<void*>(b->slot(b->end))) Task(std::forward<F>(fn));
  ++b->end;
}

// The common case makes no call (a new block is a tail call), so that the
// posting functions it is inlined into need no frame of their own.
template <class F>
inline void chain_push(TaskChain& chain, SpareBlocks& spare, F&& fn, Scheduler* owner) {
  TaskBlock* b = chain.tail;
  if (b == nullptr || b->full()) [[unlikely]] {
    chain_push_grow(chain, spare, std::forward<F>(fn), owner);
    return;
  }
  ::new (static_cast<void*>(b->slot(b->end))) Task(std::forward<F>(fn));
  ++b->end;
}

size_t chain_size(const TaskChain& chain) {
  size_t n = 0;
  for (const TaskBlock* b = chain.head; b != nullptr; b = b->next) n += b->end - b->begin;
  return n;
}

// After the head block `b` of `chain` lost a task outside the usual walk
// (chain_run_batch's unwinding): a drained block is rewound if it is the
// only one, else unlinked and kept in `spare`, so the chain's invariant
// holds again.
[[gnu::cold]] inline void chain_settle_head(TaskChain& chain, SpareBlocks& spare, TaskBlock* b) {
  if (b->begin < b->end) return;
  if (b == chain.tail) {
    b->begin = b->end = 0;
  } else {
    chain.head = b->next;
    recycle(spare, b);
  }
}

// Runs (with `run(task)`) and destroys the tasks queued on `chain` when it
// is called, in order; what they post joins the same chain behind them and
// waits for the next call. Blocks emptied before the last go to `spare`; the
// last, once drained, is rewound and kept, so a loop turning over a few
// callbacks at a time reuses one block in place. Keeps the chain's
// invariant (the head block holds tasks, or is the only block).
//
// `run` is not meant to throw (run_guarded logs what a callback throws),
// but if it does anyway (the logging failed), the task it was running
// counts as run: it is destroyed and dequeued before the exception goes on,
// so the next call does not run it a second time, and the rest is left
// queued, in order, for it. (A catch, not a guard: it costs the common path
// nothing.)
template <class Run>
inline void chain_run_batch(TaskChain& chain, SpareBlocks& spare, Run&& run) {
  TaskBlock* const last = chain.tail;
  const uint32_t last_end = last->end;
  for (;;) {
    TaskBlock* b = chain.head;
    // Blocks before the last were full when the batch was taken, and
    // nothing is added to them.
    const uint32_t stop = b == last ? last_end : b->end;
    while (b->begin < stop) {
      Task* t = b->slot(b->begin);
      try {
        run(*t);
      } catch (...) {
        std::destroy_at(t);
        ++b->begin;
        chain_settle_head(chain, spare, b);
        throw;
      }
      std::destroy_at(t);
      ++b->begin;
    }
    if (b->begin < b->end) return;  // the last block: the rest is the next batch
    if (b == chain.tail) {
      b->begin = b->end = 0;
      return;
    }
    chain.head = b->next;
    recycle(spare, b);
    if (b == last) return;
  }
}

// Destroys the tasks of `chain` without running them and frees its blocks;
// true if there were any. The chain is detached first: destructors may post.
bool chain_drop(TaskChain& chain) {
  if (chain.head == nullptr) return false;
  const bool any = !chain.empty();
  TaskChain doomed = chain;
  chain = TaskChain();
  for (TaskBlock* b = doomed.head; b != nullptr;) {
    for (uint32_t i = b->begin; i < b->end; ++i) std::destroy_at(b->slot(i));
    delete std::exchange(b, b->next);
  }
  return any;
}

// The inbox's lock, which serializes the posters (the loop takes it only to
// sleep, hand back blocks and close). Its critical sections are a few dozen
// instructions (no allocation, no system call, nothing that runs user code),
// so a poster spins rather than sleeping: a futex sleep would leave the
// poster off the CPU while the loop runs what is queued and goes to sleep
// too. A holder preempted meanwhile is waited for with sched_yield. One
// atomic exchange to lock, a plain store to unlock (a std::mutex costs twice
// the instructions on the post path).
class SpinLock {
 public:
  [[gnu::always_inline]] void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]] return;
    lock_contended();
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  // Out of line: the spin and the yield would otherwise cost every post a
  // bigger frame.
  [[gnu::noinline]] void lock_contended() {
    do {
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
          spins = 0;
        }
      }
    } while (locked_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> locked_{false};
};

// Batching a stream of posts (Inbox::take_limit): a take of this many
// closures marks a stream; the loop then lets up to kBatchTarget (one block)
// build, waiting at most kBatchRounds rounds of kBatchSpins busy iterations
// (~0.4 us each at 3 GHz) per turn.
constexpr uint64_t kStreamTake = 2;
constexpr uint64_t kBatchTarget = TaskBlock::kCapacity;
constexpr int kBatchSpins = 1280;
constexpr int kBatchRounds = 4;

// Waits `iterations` loop iterations (about a cycle each) without PAUSE.
// Under KVM a vCPU that runs PAUSE back to back for a few thousand cycles
// takes a pause-loop exit to the hypervisor, which may deschedule it. The
// batch wait, built on PAUSE, ran W5 at 15.4 ns per callback (median of 36
// samples, 13 of them at 20-45 ns) against 10.8 (none above 20) with this
// (Nov 2026, interleaved processes on a 2-core KVM guest).
inline void busy_wait(int iterations) {
  for (int i = 0; i < iterations; ++i) asm volatile("" ::: "memory");
}

// The loop's cross-thread door: a queue of task blocks with many producers
// (serialized by mu_) and one consumer (the loop) that never takes mu_ to
// read, and an eventfd that wakes the loop.
//
// Producers append at the tail: a post moves its closure into the next raw
// slot of the tail block (a new block, from the free list, every kCapacity
// posts) and then publishes it by a release store of published_, the number
// of closures ever queued. Blocks fill completely and in order, so position
// p lives in slot p % kCapacity of the (p / kCapacity)-th block, and a block
// is linked to its successor before the first closure in the successor is
// published. The loop reads published_ with acquire and runs closures
// [consumed_, published_) in place, following the links. It never takes
// the tail block away from the producers (a post to a loop that keeps up
// with it finds room in the tail block, rather than a fresh block on every
// turn), nor their lock: mu_ stays in the producers' caches while the loop
// is busy. The loop takes mu_ only to go to sleep, after a poll that may
// have slept, to hand back its emptied blocks, and to close.
//
// Wake-up protocol (all under mu_):
//   - the loop sets polling_ just before it blocks in epoll_wait, unless
//     closures are published and not yet run, or a stop is pending (then it
//     does not block);
//   - a post publishes, then writes the eventfd only if polling_ and not
//     signalled_, and sets signalled_: many posts to a sleeping loop cost
//     one write, and posts to a busy loop cost none;
//   - after epoll_wait the loop clears polling_, and clears signalled_ if
//     it read the eventfd (so a write is pending whenever signalled_ is set).
// Since a post publishes and reads polling_ in one critical section, and the
// loop reads published_ and sets polling_ in another, either the loop sees
// the post and does not block, or the post sees polling_ and wakes it.
// The eventfd belongs to the Inbox, not the loop, so a poster holding the
// shared_ptr never writes to a closed (or reused) descriptor.
//
// The inbox's blocks use TaskBlock's `next` and slots only: positions are
// counted here, not in the blocks' begin/end.
class Inbox final : public RemoteScheduler {
 public:
  Inbox() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "IOLoop: eventfd");
    head_ = tail_ = new TaskBlock;
  }
  ~Inbox() override {
    // A poster that decided to wake the loop writes the eventfd after it
    // unlocked mu_. If it holds no reference of its own (a delivery or an
    // offload: the loop may run its closure, free it, and with it the last
    // reference, the moment mu_ is free), this may run before that write:
    // let it finish before the descriptor closes and the memory goes.
    while (waking_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    // The loop closes its inbox before it goes away (close_and_drop), so
    // normally nothing is left here; a loop whose constructor failed after
    // making its inbox never published anything either.
    drop_unrun();
    free_chain();
    free_blocks(free_.top);
    ::close(fd_);
  }

  bool post(absl::AnyInvocable<void()> fn) override { return push(std::move(fn)); }
  bool post_completion(absl::AnyInvocable<void()> fn) noexcept override {
    return push(std::move(fn), /*wait_for_memory=*/true);
  }

  // Any thread. On failure `task` is left to the caller, which destroys it
  // after this returns, unlocked. Throws std::bad_alloc (with `task` left
  // intact) if a new block is needed and cannot be allocated, unless
  // `wait_for_memory`: see push_slow.
  [[gnu::always_inline]] bool push(Task&& task, bool wait_for_memory = false) {
    // Fast path: room in the tail block (then the inbox is not closed:
    // close() leaves no room).
    mu_.lock();
    if (tail_end_ < TaskBlock::kCapacity) [[likely]] {
      const bool wake = place_locked(std::move(task));
      mu_.unlock();
      if (wake) [[unlikely]] write_waker();
      return true;
    }
    mu_.unlock();
    return push_slow(std::move(task), wait_for_memory);
  }

  // The tail block is full (a new one is needed), or the inbox is closed.
  //
  // With `wait_for_memory` (post_completion: an offload's outcome, a
  // delivery, posted by a worker from noexcept code, or from a destructor)
  // a failed allocation is not thrown: nobody could handle it, and the
  // completion would be lost, or the process terminated. The poster waits
  // with a growing back-off (logging once) and tries again, taking a block
  // the loop hands back meanwhile, or a new one once memory is there, or
  // giving up if the loop closes. Nothing is lost, at the price of a
  // blocked poster while memory is short. (An intrusive emergency queue,
  // the posted object as its own node, would not block; it would cost
  // every offload and delivery a node and the loop a second queue to
  // drain, for a case that is already out of memory.)
  [[gnu::noinline]] bool push_slow(Task&& task, bool wait_for_memory) {
    bool queued = false;
    bool wake = false;
    int failures = 0;
    TaskBlock* fresh = nullptr;  // allocated unlocked when no free block is left
    for (;;) {
      {
        std::lock_guard<SpinLock> lock(mu_);
        if (closed_) break;
        if (tail_end_ == TaskBlock::kCapacity) {
          if (fresh == nullptr && free_.count > 0) fresh = take_block(free_);
          if (fresh != nullptr) {
            // Published with the first closure in it (place_locked).
            tail_->next = fresh;
            tail_ = std::exchange(fresh, nullptr);
            tail_end_ = 0;
          }
        }
        // Another poster may have linked a block while `fresh` was made.
        if (tail_end_ < TaskBlock::kCapacity) {
          if (fresh != nullptr) recycle(free_, std::exchange(fresh, nullptr));
          wake = place_locked(std::move(task));
          queued = true;
          break;
        }
      }
      if (!wait_for_memory) {
        fresh = new TaskBlock;
        continue;
      }
      try {
        fresh = new TaskBlock;
      } catch (const std::bad_alloc&) {
        wait_for_memory_to_post(failures++);
      }
    }
    delete fresh;  // the loop was closed meanwhile
    if (wake) write_waker();
    return queued;
  }

  // Any thread: wakes the loop if it sleeps (stop()).
  void wake() {
    bool wake = false;
    {
      std::lock_guard<SpinLock> lock(mu_);
      if (polling_ && !signalled_) {
        wake = signalled_ = true;
        waking_.fetch_add(1, std::memory_order_relaxed);  // see ~Inbox
      }
    }
    if (wake) write_waker();
  }

  // --- the loop's side -------------------------------------------------------

  // Loop thread: true if closures are published and not yet run. One
  // acquire load: no lock, and no write to the posters' cache line.
  bool maybe_nonempty() const { return published_.load(std::memory_order_acquire) != consumed_; }

  // Loop thread: waits up to `spins` pauses for a post, watching a flag of
  // its own that the next post clears, not published_: polling the
  // posters' line would take it from them on every post.
  void spin_for_post(int spins) {
    if (maybe_nonempty()) return;
    last_take_ = 0;  // a gap: whatever comes next is not a stream (take_limit)
    // A full fence between raising the flag and the second look: a post
    // published before it is seen now, a later one sees the flag (but for
    // the poster's own store-load reordering, which the occasional look at
    // published_ below covers).
    spinning_.store(true, std::memory_order_seq_cst);
    for (int i = 0; i < spins; ++i) {
      if (!spinning_.load(std::memory_order_relaxed)) return;
      if (i % 64 == 0 && maybe_nonempty()) break;
      cpu_relax();
    }
    spinning_.store(false, std::memory_order_relaxed);
  }

  // Loop thread, before a blocking poll. Returns false when the loop must
  // not block: closures are waiting or a stop is pending. The stop flag is
  // read under mu_ because stop() sets it before taking mu_ to decide on a
  // wake. Hands back the emptied blocks in `spare` under the same lock.
  bool prepare_to_block(const std::atomic<bool>& stop_requested, SpareBlocks& spare) {
    TaskBlock* excess;
    bool block;
    {
      std::lock_guard<SpinLock> lock(mu_);
      excess = give_back_locked(spare);
      // published_ only changes under mu_: this read is the last word.
      block = published_.load(std::memory_order_relaxed) == consumed_ &&
              !stop_requested.load(std::memory_order_acquire);
      polling_ = block;
    }
    last_take_ = 0;  // as in spin_for_post
    free_blocks(excess);
    return block;
  }

  // Loop thread, after a poll that followed a successful prepare_to_block(),
  // or that read the eventfd (`drained`): see the protocol above.
  void after_poll(bool drained) {
    std::lock_guard<SpinLock> lock(mu_);
    polling_ = false;
    if (drained) signalled_ = false;
  }

  // Loop thread: the position up to which consume() runs closures on this
  // turn; what is published later waits for the next turn, so a producer
  // that keeps posting cannot hold the loop in one batch. Equal to
  // consumed() when nothing is waiting.
  //
  // When the previous take was a stream (kStreamTake or more closures, with
  // no gap since: see spin_for_post) and some but fewer than kBatchTarget
  // are waiting, the loop lets the batch build for a moment first, if
  // `may_wait` (nothing of its own is queued). A loop that trails its
  // posters closely takes a few closures per turn, and each take pulls the
  // posters' line and the slot lines they are still writing across cores:
  // several transfers per line, paid mostly by the posters, who then have
  // to take the lines back. A bigger take moves each line once. A lone post
  // (the last take was 0 or 1) never waits.
  uint64_t take_limit(bool may_wait) {
    uint64_t limit = published_.load(std::memory_order_acquire);
    const uint64_t waiting = limit - consumed_;
    const bool stream = may_wait && last_take_ >= kStreamTake;
    if (stream && waiting != 0 && waiting < kBatchTarget) [[unlikely]] {
      limit = wait_for_batch(limit);
    }
    last_take_ = limit - consumed_;
    return limit;
  }

  // Loop thread: what consume() has reached.
  uint64_t consumed() const { return consumed_; }

  // Loop thread: runs (with `run(task)`) and destroys the closures up to
  // position `limit`, in order; emptied blocks go to `spare`, to be handed
  // back with give_back() or prepare_to_block(). `run` is not meant to
  // throw; if it does anyway, the closure it was running counts as run (it
  // is destroyed and the cursor moves past it) and the exception goes on:
  // the next call starts with the closure after it, and never runs one
  // twice.
  template <class Run>
  void consume(uint64_t limit, SpareBlocks& spare, Run&& run) {
    while (consumed_ != limit) {
      if (head_pos_ == TaskBlock::kCapacity) {
        // Every closure of the head block ran, and a later one is published:
        // the producers linked the next block and moved on.
        TaskBlock* done = std::exchange(head_, head_->next);
        head_pos_ = 0;
        recycle(spare, done);
      }
      // The closures run with the cursor in registers; it is stored back
      // once per block (nothing reads it while they run: the loop is not
      // reentrant, and cannot be closed while it runs).
      const uint32_t n = static_cast<uint32_t>(
          std::min<uint64_t>(limit - consumed_, TaskBlock::kCapacity - head_pos_));
      Task* const first = head_->slot(head_pos_);
      Task* t = first;
      try {
        for (Task* const end = t + n; t != end; ++t) {
          run(*t);
          std::destroy_at(t);
        }
      } catch (...) {
        std::destroy_at(t);
        const uint32_t ran = static_cast<uint32_t>(t - first) + 1;
        head_pos_ += ran;
        consumed_ += ran;
        throw;
      }
      head_pos_ += n;
      consumed_ += n;
    }
  }

  // Loop thread: hands the emptied blocks in `spare` back to the producers.
  void give_back(SpareBlocks& spare) {
    TaskBlock* excess;
    {
      std::lock_guard<SpinLock> lock(mu_);
      excess = give_back_locked(spare);
    }
    free_blocks(excess);
  }

  // Loop thread, after epoll reported the eventfd readable.
  void drain() {
    uint64_t count;
    while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
  }

  // Loop thread: refuses further posts, then destroys what is queued
  // (unrun, on this thread) and frees the blocks. The closures' destructors
  // run unlocked: they may post (and be refused).
  void close_and_drop() {
    {
      std::lock_guard<SpinLock> lock(mu_);
      if (closed_) return;
      closed_ = true;
      tail_end_ = TaskBlock::kCapacity;  // no room: every post takes the slow path
    }
    // From here on nothing is published: the queue is the loop's alone.
    drop_unrun();
    free_chain();
    free_blocks(std::exchange(free_, SpareBlocks()).top);
  }

  int fd() const { return fd_; }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }
  // Loop thread: blocks kept for reuse (the free list, and the head block,
  // which the queue always holds).
  size_t retained_block_count() {
    std::lock_guard<SpinLock> lock(mu_);
    return free_.count + (head_ != nullptr ? 1 : 0);
  }

 private:
  // push_slow's back-off after the `failures`-th failed allocation of a
  // block for a completion: 0.1 ms, doubling up to 100 ms.
  [[gnu::noinline, gnu::cold]] static void wait_for_memory_to_post(int failures) noexcept {
    if (failures == 0) {
      try {
        log(LogLevel::kError,
            "IOLoop: no memory for a block of the loop's cross-thread queue; a completion "
            "waits for memory to be queued");
      } catch (...) {
        // Logging needs memory too.
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100 << std::min(failures, 10)));
  }

  // Under mu_, with room in the tail block: queues `task` and publishes it.
  // Returns true if the caller must write the eventfd (after unlocking).
  bool place_locked(Task&& task) {
    // Decided, and counted in waking_, before the closure is published: the
    // loop may run it (and drop the inbox's last reference) as soon as it
    // sees it, and then must see the count too (see ~Inbox).
    bool wake = false;
    if (polling_ && !signalled_) [[unlikely]] {
      signalled_ = true;
      waking_.fetch_add(1, std::memory_order_relaxed);
      wake = true;
    }
    ::new (static_cast<void*>(tail_->slot(tail_end_))) Task(std::move(task));
    ++tail_end_;
    published_.store(published_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    // Read on every post, written only when the loop spins: stays in cache.
    if (spinning_.load(std::memory_order_relaxed)) spinning_.store(false, std::memory_order_relaxed);
    return wake;
  }

  // Loop thread: waits up to kBatchRounds rounds of kBatchSpins iterations for
  // more posts after `seen`, looking at published_ only between rounds (each
  // look takes the posters' line from them). Stops early once kBatchTarget
  // closures wait, or when a round brought nothing: the stream paused (or its
  // poster lost its CPU), and waiting longer would only delay what came.
  [[gnu::noinline]] uint64_t wait_for_batch(uint64_t seen) {
    for (int round = 0; round < kBatchRounds; ++round) {
      busy_wait(kBatchSpins);
      const uint64_t now = published_.load(std::memory_order_acquire);
      if (now == seen || now - consumed_ >= kBatchTarget) return now;
      seen = now;
    }
    return seen;
  }

  // Loop thread (or the destructor), once no producer can publish.
  void drop_unrun() {
    const uint64_t end = published_.load(std::memory_order_acquire);
    SpareBlocks emptied;
    consume(end, emptied, [](Task&) {});
    free_blocks(emptied.top);
  }
  void free_chain() {
    free_blocks(head_);  // head_ .. tail_, linked
    head_ = tail_ = nullptr;
  }

  // Moves the loop's emptied blocks to the free list if they fit within the
  // bound; otherwise returns them, to be freed after the lock is released.
  TaskBlock* give_back_locked(SpareBlocks& spare) {
    if (spare.count == 0) return nullptr;
    if (free_.count + spare.count <= kRetainedBlocks) {
      splice_spare(free_, spare);
      return nullptr;
    }
    TaskBlock* excess = spare.top;
    spare = SpareBlocks();
    return excess;
  }

  // After a post or wake() that counted itself in waking_ under mu_. The
  // release of waking_ is this poster's last touch of the inbox.
  void write_waker() {
    writes_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is already signalled.
    while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    waking_.fetch_sub(1, std::memory_order_release);
  }

  // The producers' line: written on every post, read by the loop once per
  // turn (published_) and locked by it only as described above.
  alignas(64) SpinLock mu_;
  TaskBlock* tail_;          // guarded by mu_
  uint32_t tail_end_ = 0;    // raw slots of tail_ start here; guarded by mu_
  bool closed_ = false;      // guarded by mu_
  bool polling_ = false;     // guarded by mu_
  bool signalled_ = false;   // guarded by mu_
  SpareBlocks free_;         // guarded by mu_
  // Closures ever queued; written under mu_, read by the loop without it.
  std::atomic<uint64_t> published_{0};
  // The loop's line: where it reads next.
  alignas(64) TaskBlock* head_;
  uint32_t head_pos_ = 0;    // the next slot of head_ to run
  uint64_t consumed_ = 0;    // closures run (or dropped) so far
  uint64_t last_take_ = 0;   // closures the last take_limit() allowed
  // Raised by the loop while it spins for a post, lowered by the next post.
  alignas(64) std::atomic<bool> spinning_{false};
  alignas(64) const int fd_;
  std::atomic<uint64_t> writes_{0};
  // Posters between their decision to wake the loop (under mu_) and the
  // end of their eventfd write: see ~Inbox.
  std::atomic<uint32_t> waking_{0};
};

}  // namespace internal

namespace {

constexpr int kMaxEvents = 256;

// A loop whose last two iterations ran posts from other threads waits this
// many pauses (a few microseconds) for a post before it goes to sleep. A
// producer that keeps posting usually posts again within that window, and
// then neither side pays for a sleep and a wake-up (an eventfd write and a
// context switch, tens of microseconds on a VM). Two iterations, not one:
// an offload's completion arrives as a post, and the Future's callbacks
// (which submit the next call) run on the turn after it. A loop that is
// idle, or that gets no cross-thread posts, sleeps at once.
constexpr int kInboxSpins = 500;
constexpr uint64_t kInboxSpinTurns = 2;

// A timer due this soon is not slept toward: the loop polls (without
// blocking) until it is due. A sleep ends when the kernel wakes the thread,
// 5-15 us after the deadline on this VM (W6), so it cannot end sooner than
// polling would, and the wake-up costs about as much CPU time as the poll.
// Only a loop that is awake anyway spins, and only this long; one that goes
// idle toward a later timer sleeps as before.
constexpr int64_t kTimerSpinNs = 20'000;

// epoll data of the waker; fd handlers use (generation << 32 | fd), whose
// low half is never 0xffffffff (fds are non-negative ints).
constexpr uint64_t kWakerToken = UINT64_MAX;
// epoll data of the timerfd (see IOLoop::arm_timer_fd); its low half is
// not a valid fd either.
constexpr uint64_t kTimerFdToken = UINT64_MAX - 1;
// When the loop sleeps on the timerfd, epoll's own timeout stays as a
// backstop this much later.
constexpr int64_t kTimerFdBackstopNs = 2'000'000;

thread_local IOLoop* t_current_loop = nullptr;

// Raised on a thread whose thread_local objects are being destroyed: at its
// exit, or, on a thread that calls std::exit(), before the objects of
// static storage duration are. A loop running on such a thread is not
// coming back to its callback: the thread is ending inside it. (A trivial
// thread_local, readable all the while.) Set by the destructor of
// ThreadEnd, which a run constructs on its thread (see RunScope), so it is
// destroyed before any static loop that ran here.
thread_local bool t_thread_ending = false;
struct ThreadEnd {
  ~ThreadEnd() { t_thread_ending = true; }
};
thread_local ThreadEnd t_thread_end;

// The loop IOLoop::current() creates; destroyed at thread exit, unless it
// is running on this thread then: std::exit() called from one of its
// callbacks (or inside run_sync) destroys thread_local objects with the
// loop running below. The process is ending, and the callback will never
// return to the loop: it is left as it is, neither closed nor freed, so
// that nothing the callback was in the middle of is torn down under it,
// and exit() cannot hang joining the loop's default pool. A pointer to it
// stays in g_left_running, for leak checkers.
std::atomic<IOLoop*> g_left_running{nullptr};
class DefaultLoop {
 public:
  ~DefaultLoop() {
    if (loop != nullptr && loop->is_running() && loop->in_scheduler_thread()) {
      g_left_running.store(loop.release(), std::memory_order_relaxed);
    }
  }
  std::unique_ptr<IOLoop> loop;
};
thread_local DefaultLoop t_default_loop;

uint32_t to_epoll(uint32_t events) {
  uint32_t out = 0;
  if (events & IOLoop::READ) out |= EPOLLIN;
  if (events & IOLoop::WRITE) out |= EPOLLOUT;
  return out;
}

uint64_t handler_token(int fd, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | static_cast<uint32_t>(fd);
}

std::string method(const char* op) { return std::string("IOLoop::") + op; }

}  // namespace

static_assert(IOLoop::READ == EPOLLIN && IOLoop::WRITE == EPOLLOUT &&
                  IOLoop::ERROR == (EPOLLERR | EPOLLHUP),
              "event bits are epoll's");

// --- construction, destruction, current -------------------------------------

IOLoop::IOLoop() : IOLoop(Options()) {}

IOLoop::IOLoop(Options options)
    : owner_(internal::this_thread_id()),
      // Not make_shared: the reference count, which every offload made on
      // this loop takes and drops, must not share a cache line with the
      // Inbox's vtable pointer and descriptor, which every poster reads.
      inbox_(std::shared_ptr<internal::Inbox>(new internal::Inbox())),
      clock_(options.clock ? std::move(options.clock) : SteadyClock::shared()),
      events_(new epoll_event[kMaxEvents]) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "IOLoop: epoll_create1");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakerToken;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, inbox_->fd(), &ev) < 0) {
    int err = errno;
    ::close(epoll_fd_);
    throw std::system_error(err, std::generic_category(), "IOLoop: epoll_ctl(waker)");
  }
  clock_->attach(inbox_);
  // No spare block for callbacks_ yet: the first completion makes one (see
  // reserve_post), unless a post has made it already.
  set_post_room_low(true);
}

IOLoop::~IOLoop() {
  if (running_ && !(in_scheduler_thread() && t_thread_ending)) [[unlikely]] {
    // Destroying the loop under its own feet: nothing sensible can follow.
    log(LogLevel::kError, "IOLoop destroyed while running (from one of its callbacks?)");
    std::abort();
  }
  // Running here while this thread ends: std::exit() was called from one of
  // the loop's callbacks, and the loop has static storage duration (the
  // default loop is left alone, see DefaultLoop). The callback never
  // returns, so nothing will touch the loop after this: it is closed as
  // usual (what it owns is destroyed, the callback's own closure included,
  // unrun or mid-run).
  close_now();
}

void IOLoop::close() {
  check_owner("close");
  if (closed_) return;
  if (running_) {
    throw InvalidStateError("IOLoop::close: the loop is running (stop it first)");
  }
  close_now();
}

void IOLoop::close_now() {
  if (closed_) return;
  closed_ = true;
  // A same-turn resume held back dies unrun, like the queue's.
  turn_mark_ = nullptr;
  resume_fn_ = nullptr;
  watchdog_.reset();
  retired_watchdog_.reset();
  // (1) No more cross-thread posts; what was queued dies here, unrun.
  inbox_->close_and_drop();
  // (2) + (3), until nothing is left: destructors of what we drop may
  // queue more (a timer's closure owning a future whose callbacks...).
  for (;;) {
    detach_scheduler();
    bool any = false;
    any |= internal::chain_drop(callbacks_);
    if (!timers_.storage_empty()) {
      timers_.clear();
      any = true;
    }
    if (!handlers_.empty()) {
      absl::flat_hash_map<int, std::unique_ptr<internal::FdHandler>> doomed;
      doomed.swap(handlers_);
      doomed.clear();
      any = true;
    }
    if (!retired_handlers_.empty()) {
      std::vector<std::unique_ptr<internal::FdHandler>> doomed;
      doomed.swap(retired_handlers_);
      doomed.clear();
      any = true;
    }
    if (!any) break;
  }
  // (4) The default pools this loop created die with it (see
  // default_executor()): queued calls are cancelled, running ones finish
  // and their completions, arriving at a closed loop, are dropped.
  if (owns_default_executor_) retired_executors_.push_back(std::move(default_executor_));
  default_executor_.reset();
  owns_default_executor_ = false;
  for (std::shared_ptr<Executor>& pool : retired_executors_) {
    pool->shutdown(/*wait=*/true, /*cancel_futures=*/true);
  }
  retired_executors_.clear();
  internal::free_blocks(std::exchange(spare_blocks_, internal::SpareBlocks()).top);
  internal::free_blocks(std::exchange(remote_spare_, internal::SpareBlocks()).top);
  ::close(epoll_fd_);
  epoll_fd_ = -1;
  if (timer_fd_ >= 0) ::close(timer_fd_);
  timer_fd_ = kTimerFdUnavailable;
  if (t_current_loop == this) t_current_loop = nullptr;
}

void IOLoop::set_default_executor(std::shared_ptr<Executor> executor) {
  check_owner("set_default_executor");
  check_open("set_default_executor");
  std::shared_ptr<Executor> previous = std::exchange(default_executor_, std::move(executor));
  if (std::exchange(owns_default_executor_, false) && previous != nullptr) {
    // Ours: let it finish what it has without blocking this thread; it is
    // joined when the loop closes.
    previous->shutdown(/*wait=*/false);
    retired_executors_.push_back(std::move(previous));
  }
}

Executor& IOLoop::default_executor() {
  check_owner("default_executor");
  check_open("default_executor");
  if (default_executor_ == nullptr) {
    static std::atomic<int> counter{0};
    ThreadPoolExecutor::Options options;
    options.thread_name_prefix =
        "eddy-loop-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
    default_executor_ = std::make_shared<ThreadPoolExecutor>(std::move(options));
    owns_default_executor_ = true;
  }
  return *default_executor_;
}

IOLoop& IOLoop::current() {
  if (t_current_loop != nullptr) return *t_current_loop;
  std::unique_ptr<IOLoop>& default_loop = t_default_loop.loop;
  if (default_loop == nullptr) {
    // A default loop on a pool worker would never run: callbacks posted to
    // it would be lost, and a sleep or timeout made there would never fire.
    if (internal::on_pool_worker_thread()) [[unlikely]] {
      throw InvalidStateError(
          "IOLoop::current() on a pool worker: no loop runs on this thread. Capture the loop "
          "on its own thread (IOLoop& loop = IOLoop::current();) and post to it with "
          "loop.add_callback(...) from the task, or return the value from the task; "
          "IOLoop::current_or_null() probes without throwing");
    }
    default_loop = std::make_unique<IOLoop>();
  } else if (default_loop->closed_) [[unlikely]] {
    // Not replaced by a fresh loop: references to the closed one may be
    // held, and Tornado's current() hands back the closed loop too.
    throw InvalidStateError(
        "IOLoop::current: this thread's default loop (the one IOLoop::current() created) was "
        "closed, and no other loop is current; make a loop current (IOLoop loop; "
        "loop.make_current();) instead of relying on the default one after closing it");
  }
  default_loop->make_current();
  return *default_loop;
}

IOLoop* IOLoop::current_or_null() noexcept { return t_current_loop; }

void IOLoop::make_current() {
  check_open("make_current");
  if (running_.load(std::memory_order_relaxed) && !in_scheduler_thread()) {
    throw InvalidStateError("IOLoop::make_current: the loop is running on another thread");
  }
  take_ownership();
  t_current_loop = this;
  set_current(this);
  // While it runs, the loop runs here (checked above): the choice is this
  // thread's, and outlasts the run. Before a run it needs no flag: the run
  // finds the loop current and puts it back.
  if (running_.load(std::memory_order_relaxed)) made_current_in_run_ = true;
}

void IOLoop::clear_current() noexcept {
  if (t_current_loop != nullptr && Scheduler::current() == t_current_loop) set_current(nullptr);
  t_current_loop = nullptr;
}

// --- hand-off ----------------------------------------------------------------

namespace {

// A full memory barrier executed by every running thread of this process
// before it returns (the "heavy" side of an asymmetric fence): Linux's
// membarrier(PRIVATE_EXPEDITED), or, where that is missing, a permission
// change on a page of our own, whose TLB shoot-down interrupts every CPU
// running one of our threads.
void heavy_barrier() {
  static const bool have_membarrier =
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  if (have_membarrier &&
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) {
    return;
  }
  static std::mutex mu;
  static char* page = [] {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }();
  std::lock_guard<std::mutex> lock(mu);
  if (page != nullptr && ::mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0) {
    *static_cast<volatile char*>(page) = 1;  // the page is now mapped and dirty
    if (::mprotect(page, 4096, PROT_READ) == 0) return;
  }
  // Neither: nothing to fall back on but this thread's own fence. The old
  // owner's post could then race; no Linux this library builds on lacks
  // both (membarrier is 4.14+).
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace

// The old owner posts with owner_posting_ raised and reads owner_ after
// raising it (add_callback). We store owner_, run a barrier on every thread,
// then wait for the flag to fall. Either the old owner's raise was before
// the barrier (so we see it, and wait for its push), or its read of owner_
// was after it (so it sees us, and takes the inbox). This costs the owner's
// post two plain stores, and the hand-off a system call.
void IOLoop::take_ownership() {
  const std::thread::id me = internal::this_thread_id();
  if (owner_.load(std::memory_order_relaxed) == me) return;
  owner_.store(me, std::memory_order_relaxed);
  heavy_barrier();
  while (owner_posting_.load(std::memory_order_acquire)) std::this_thread::yield();
}

// --- running -----------------------------------------------------------------

IOLoop::RunScope::RunScope(IOLoop* loop, const char* op) : loop_(loop) {
  if (loop->running_.load(std::memory_order_relaxed)) {
    throw InvalidStateError(
        method(op) + ": the loop is already running" +
        (loop->in_scheduler_thread() ? " (a nested call from one of its own callbacks)"
                                     : " on another thread"));
  }
  loop->check_open(op);
  // Running the loop makes this thread its owner (a loop may be created on
  // one thread and run on another), and the loop current here.
  loop->take_ownership();
  (void)&t_thread_end;  // odr-use: registers its destructor on this thread
  loop->running_.store(true, std::memory_order_relaxed);
  previous_loop_ = t_current_loop;
  previous_scheduler_ = Scheduler::current();
  t_current_loop = loop;
  set_current(loop);
  loop->made_current_in_run_ = false;
}

IOLoop::RunScope::~RunScope() {
  loop_->running_.store(false, std::memory_order_relaxed);
  // Futures completed between runs queue their resumes (see turn_mark_),
  // behind one still held if an exception cut the turn short.
  loop_->turn_mark_ = nullptr;
  if (loop_->resume_fn_ != nullptr) [[unlikely]] loop_->requeue_held_resume();
  // Put back what was current on this thread before the run, unless
  // make_current() chose this loop during the run (and nothing replaced it
  // since). What made it current before the run, here or on another
  // thread, does not count: here the loop is then put back anyway, and on
  // another thread it would leave this one pointing at a loop whose owner
  // may destroy it.
  const bool keep = loop_->made_current_in_run_ && t_current_loop == loop_;
  loop_->made_current_in_run_ = false;
  if (!keep) {
    t_current_loop = previous_loop_;
    set_current(previous_scheduler_);
  }
}

void IOLoop::start() {
  RunScope scope(this, "start");
  for (;;) {
    run_iteration(/*may_block=*/true);
    if (take_stop_request()) return;
  }
}

void IOLoop::stop() {
  if (in_scheduler_thread()) {
    stop_requested_.store(true, std::memory_order_release);
    return;
  }
  // From another thread, nothing of the loop may be touched once the flag
  // is up: the owner may see it, return from start() and destroy the loop
  // at once (a controller thread stopping a worker's loop cannot know when
  // that happens). So the owner test above and this copy of the inbox come
  // first, and the wake goes through the copy, which keeps the inbox (and
  // its eventfd) alive past the loop. The flag is still set before the
  // inbox decides whether to wake: see Inbox::prepare_to_block.
  std::shared_ptr<internal::Inbox> inbox = inbox_;
  stop_requested_.store(true, std::memory_order_release);
  inbox->wake();
}

IOLoop::RunOutcome IOLoop::run_until(const internal::FutureStatus* watched,
                                     std::optional<absl::Duration> timeout, bool consume_stop) {
  auto done = [watched] {
    return watched == nullptr || *watched != internal::FutureStatus::kPending;
  };
  bool timed_out = false;
  TimeoutHandle timer;
  // An infinite timeout is none (its timer could never fire, but would
  // keep an auto-advancing ManualClock from idling).
  if (timeout && *timeout != absl::InfiniteDuration()) {
    timer = call_later(*timeout, [&timed_out] { timed_out = true; });
  }
  struct RemoveTimer {
    IOLoop* loop;
    TimeoutHandle* timer;
    ~RemoveTimer() { loop->remove_timeout(*timer); }
  } remove_timer{this, &timer};
  // done() is asked once per iteration: its answer after one iteration is
  // still its answer before the next (nothing runs in between).
  bool finished = done();
  for (;;) {
    run_iteration(/*may_block=*/!finished && !timed_out);
    finished = done();
    if (finished) {
      // A stop() made during this run was meant for it, and the run is
      // over: left pending, it would end the next start() or run_sync()
      // after one iteration (asyncio's run_forever, under Tornado, clears
      // its stopping flag on the way out too).
      if (consume_stop) take_stop_request();
      return RunOutcome::kDone;
    }
    if (timed_out) return RunOutcome::kTimedOut;
    if (take_stop_request()) return RunOutcome::kStopped;
  }
}

void IOLoop::throw_stopped() {
  throw InvalidStateError(
      "IOLoop::run_sync: stop() was called before the future was done");
}

void IOLoop::throw_foreign_future() {
  throw InvalidStateError(
      "IOLoop::run_sync: fn returned a Future of another loop, which does not run while this "
      "one does (the future could never complete here); create the future while this loop is "
      "current (inside fn), or run the loop it belongs to");
}

void IOLoop::throw_run_sync_timeout(absl::Duration timeout) {
  throw TimeoutError("IOLoop::run_sync: operation timed out after " +
                     absl::FormatDuration(timeout));
}

void IOLoop::throw_wrong_thread(const char* op) const {
  throw InvalidStateError(
      method(op) +
      ": called from a thread that does not own the loop (only add_callback, "
      "spawn_callback, stop, run_in_loop, time and remote are safe from other threads)");
}

void IOLoop::throw_closed(const char* op) {
  throw InvalidStateError(method(op) + ": the loop is closed");
}

// --- one iteration -----------------------------------------------------------

void IOLoop::run_iteration(bool may_block) {
  ++iterations_;

  // Phase 1: how long may we wait?
  int64_t wait_ns = -1;  // forever
  MonotonicTime next_timer = MonotonicTime::infinite_future();
  bool idle_on_manual_clock = false;
  if (!may_block || !callbacks_.empty() || stop_requested_.load(std::memory_order_relaxed)) {
    wait_ns = 0;
  } else if (!timers_.empty()) {
    next_timer = timers_.next_deadline();
    const MonotonicTime now = clock_->now();
    if (next_timer <= now) {
      wait_ns = 0;
    } else if (clock_->advances_by_itself()) {
      wait_ns = absl::ToInt64Nanoseconds(next_timer - now);
      if (wait_ns <= kTimerSpinNs) wait_ns = 0;  // see kTimerSpinNs
    } else {
      // Only somebody moving the clock can make the timer due: never
      // sleep toward it.
      idle_on_manual_clock = true;
    }
  }

  // Phases 2 and 3: poll, take the inbox.
  int n = 0;
  bool may_sleep = false;  // the inbox was told that the loop is about to sleep
  if (wait_ns != 0 && !idle_on_manual_clock) {
    if (last_remote_iteration_ != 0 && iterations_ - last_remote_iteration_ <= kInboxSpinTurns) {
      // See kInboxSpins.
      inbox_->spin_for_post(kInboxSpins);
    }
    // Posts waiting: no need to ask under the inbox's lock.
    may_sleep = !inbox_->maybe_nonempty() && inbox_->prepare_to_block(stop_requested_, remote_spare_);
  }
  if (!may_sleep && handlers_.empty() && !idle_on_manual_clock) {
    // Nothing to poll for and no reason to wait: skip the system call.
  } else {
    if (wait_ns == 0) {
      n = poll(0);
    } else if (idle_on_manual_clock) {
      n = poll(0);
      if (n == 0 && !inbox_->maybe_nonempty()) {
        // Truly idle: an auto-advancing clock jumps to the timer, unless
        // work another thread does for us (an offload, a ConcurrentFuture
        // bridged here) is still to report: its outcome must arrive at the
        // time it would on a real clock, not after a jump past a timeout
        // around it. Anything else leaves us to block on fds and the inbox
        // only, so that work's post wakes us, as on a real clock. (Asked
        // here only: the loop on a steady clock never gets this far.)
        if (awaiting_other_threads() || !clock_->advance_when_idle(next_timer)) {
          may_sleep = inbox_->prepare_to_block(stop_requested_, remote_spare_);
          n = poll(may_sleep ? -1 : 0);
        }
      }
    } else {
      int64_t timeout = may_sleep ? wait_ns : 0;
      if (timeout > 0 && arm_timer_fd(next_timer)) timeout += kTimerFdBackstopNs;
      n = poll(timeout);
    }
    bool drained = false;
    for (int i = 0; i < n; ++i) {
      if (events_[i].data.u64 == kWakerToken) {
        inbox_->drain();
        drained = true;
      } else if (events_[i].data.u64 == kTimerFdToken) {
        uint64_t expirations;
        while (::read(timer_fd_, &expirations, sizeof expirations) < 0 && errno == EINTR) {
        }
        timer_fd_deadline_ = 0;
      }
    }
    // A poll that could not have slept and did not read the eventfd leaves
    // the inbox's wake-up state as it was: no need for its lock.
    if (may_sleep || drained) inbox_->after_poll(drained);
  }

  // Phase 4: fd handlers.
  if (n > 0 && !handlers_.empty()) dispatch_fd_events(n);
  // Phase 5: timers.
  run_timers();
  // Phase 6: callbacks.
  run_callbacks();
}

// Sleeping toward a timer: epoll's timeout is stretched by the kernel's
// timer slack (50 us for a normal thread, and 0.1% of the timeout beyond
// that), a timerfd's absolute expiry is not. So the loop arms a timerfd at
// the next deadline (a system call only when that deadline changes) and
// keeps epoll's timeout as a backstop. Only for the steady clock, whose
// epoch is CLOCK_MONOTONIC's; created on first use.
bool IOLoop::arm_timer_fd(MonotonicTime deadline) {
  if (timer_fd_ == kTimerFdUnavailable) return false;
  if (timer_fd_ < 0) {
    if (!clock_->reads_clock_monotonic()) {
      timer_fd_ = kTimerFdUnavailable;
      return false;
    }
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) {
      timer_fd_ = kTimerFdUnavailable;
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimerFdToken;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      ::close(fd);
      timer_fd_ = kTimerFdUnavailable;
      return false;
    }
    timer_fd_ = fd;
  }
  const int64_t ns = deadline.nanoseconds();
  if (ns <= 0) return false;  // a zero expiry would disarm it
  if (ns == timer_fd_deadline_) return true;
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) < 0) return false;
  timer_fd_deadline_ = ns;
  return true;
}

int IOLoop::poll(int64_t wait_ns) {
  // epoll_pwait2 takes nanoseconds; epoll_wait only milliseconds, rounded
  // up so that a timer never wakes us early into a busy loop.
  static std::atomic<bool> have_pwait2{true};
  for (;;) {
    int n;
    if (have_pwait2.load(std::memory_order_relaxed)) {
      timespec ts{};
      if (wait_ns >= 0) {
        ts.tv_sec = static_cast<time_t>(wait_ns / 1000000000);
        ts.tv_nsec = static_cast<long>(wait_ns % 1000000000);
      }
      n = ::epoll_pwait2(epoll_fd_, events_.get(), kMaxEvents, wait_ns >= 0 ? &ts : nullptr,
                         nullptr);
      // Kernels before 5.11 say ENOSYS; seccomp sandboxes that deny what
      // they do not know (older Docker and podman profiles) say EPERM,
      // which epoll_pwait2 itself never returns.
      if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
        have_pwait2.store(false, std::memory_order_relaxed);
        continue;
      }
    } else {
      int ms = -1;
      if (wait_ns >= 0) {
        int64_t rounded = (wait_ns + 999999) / 1000000;
        ms = rounded > INT_MAX ? INT_MAX : static_cast<int>(rounded);
      }
      n = ::epoll_wait(epoll_fd_, events_.get(), kMaxEvents, ms);
    }
    if (n >= 0) return n;
    if (errno == EINTR) return 0;  // a signal: go round the loop
    throw std::system_error(errno, std::generic_category(), "IOLoop: epoll_wait");
  }
}

// Inline, so that the common case (no watchdog) costs a branch and the
// call, not a frame of its own per callback. `where` (an fd handler's
// location; null for callbacks and timers, whose locations, when recorded,
// travel with them) is a pointer so that the common case stores nothing
// for a failure that does not come.
template <class Fn>
[[gnu::always_inline]] inline void IOLoop::run_guarded(internal::ActivityKind kind, int fd,
                                                       const SourceLocation* where, Fn&& fn) {
  if (watchdog_ == nullptr) [[likely]] {
    try {
      fn();
    } catch (...) {
      log_failure(kind, fd, where != nullptr ? *where : SourceLocation(),
                  std::current_exception());
    }
    return;
  }
  run_watched(kind, fd, where != nullptr ? *where : SourceLocation(), [&fn] { fn(); });
}

void IOLoop::run_watched(internal::ActivityKind kind, int fd, const SourceLocation& where,
                         absl::FunctionRef<void()> fn) {
  internal::Watchdog* watchdog = watchdog_.get();
  watchdog_busy_ = true;
  watchdog->begin(internal::Activity{kind, fd, where});
  // The bracket closes even if logging a failure throws (see
  // chain_run_batch): a watchdog left believing the callback still runs
  // would report it as blocked forever.
  struct EndBracket {
    IOLoop* loop;
    internal::Watchdog* watchdog;
    ~EndBracket() {
      watchdog->end();
      loop->watchdog_busy_ = false;
      // Switched off (or replaced) from inside the callback: now it may go.
      loop->retired_watchdog_.reset();
    }
  } end_bracket{this, watchdog};
  try {
    fn();
  } catch (...) {
    log_failure(kind, fd, where, std::current_exception());
  }
}

void IOLoop::log_failure(internal::ActivityKind kind, int fd, const SourceLocation& where,
                         std::exception_ptr e) {
  // What the failed callback noted, if it did, is for this failure only.
  const bool noted = std::exchange(noted_, false);
  // As Tornado (6.0 on): a CancelledError out of a callback or a timer is
  // not logged; the usual one is a callback reading a future that was
  // cancelled on purpose. An fd handler's is (asyncio logs it too).
  if (kind != internal::ActivityKind::kFdHandler && internal::is_cancelled_error(e)) return;
  internal::Activity what{kind, fd, where};
  if (noted) {  // the callback said what it is when it started
    what.kind = noted_kind_;
    what.where = noted_where_;
  }
  log(LogLevel::kError,
      "Exception in " + internal::describe_activity(what) + ": " + describe_exception(e),
      what.where);
}

void IOLoop::dispatch_fd_events(int n) {
  turn_mark_ = nullptr;  // not the callback phase (see turn_mark_)
  dispatching_fds_ = true;
  // Cleared even if a handler's guarded run throws (see chain_run_batch):
  // left set, remove_handler() would retire handlers nobody destroys.
  struct EndDispatch {
    bool& flag;
    ~EndDispatch() { flag = false; }
  } end_dispatch{dispatching_fds_};
  for (int i = 0; i < n; ++i) {
    const uint64_t token = events_[i].data.u64;
    if (token == kWakerToken || token == kTimerFdToken) continue;
    const int fd = static_cast<int>(static_cast<uint32_t>(token));
    auto it = handlers_.find(fd);
    // Removed by an earlier handler in this batch, or removed and added
    // again (a new generation): these events are not for it.
    if (it == handlers_.end() || it->second->generation != static_cast<uint32_t>(token >> 32)) {
      continue;
    }
    internal::FdHandler* h = it->second.get();
    const uint32_t ready = events_[i].events & (h->events | ERROR);
    if (ready == 0) continue;  // update_handler dropped the event meanwhile
    // `h` stays alive through the call even if it removes itself:
    // remove_handler() retires it while dispatching_fds_ is set.
    run_guarded(internal::ActivityKind::kFdHandler, fd, &h->where,
                [h, fd, ready] { h->fn(fd, ready); });
    if (!retired_handlers_.empty()) retire_handlers();
  }
}

void IOLoop::retire_handlers() {
  // A handler's destructor may remove more handlers (which retire into the
  // emptied vector), so repeat.
  while (!retired_handlers_.empty()) {
    std::vector<std::unique_ptr<internal::FdHandler>> doomed;
    doomed.swap(retired_handlers_);
    doomed.clear();
  }
}

void IOLoop::run_due_timers() {
  turn_mark_ = nullptr;  // not the callback phase (see turn_mark_)
  const MonotonicTime now = clock_->now();
  // Only timers that existed when the phase began: one that schedules
  // another due at once (zero delay on a manual clock) must not keep this
  // phase going forever.
  const uint64_t limit = timers_.next_seq();
  absl::AnyInvocable<void()> fired;
  timer_phase_now_ = now;
  // The phase ends even if a guarded run throws (see chain_run_batch): a
  // stale phase time would clamp later timers. A timer is off the queue
  // before it runs, so it never runs twice.
  struct EndPhase {
    std::optional<MonotonicTime>& phase;
    ~EndPhase() { phase.reset(); }
  } end_phase{timer_phase_now_};
  while (timers_.pop_due(now, limit, &fired)) {
    run_guarded(internal::ActivityKind::kTimer, -1, nullptr, fired);
    fired = nullptr;  // its captures die before the next timer runs
  }
}

inline void IOLoop::run_held_resume() {
  // Taken before it runs, so that what it posts cannot meet it. (The mark
  // went when the resume took it: what this one resumes waits for the next
  // iteration.)
  void (*const fn)(void*) = std::exchange(resume_fn_, nullptr);
  run_guarded(internal::ActivityKind::kCallback, -1, nullptr, Resume{fn, resume_ctx_});
}

void IOLoop::run_callbacks() {
  // The callbacks queued by now: what they post waits for the next
  // iteration. Each callback is destroyed (its captures die) right after it
  // runs, before the next one runs.
  if (!callbacks_.empty()) [[likely]] {
    turn_mark_ = callbacks_.tail->next_slot();
    internal::chain_run_batch(callbacks_, spare_blocks_, [this](internal::Task& fn) {
      run_guarded(internal::ActivityKind::kCallback, -1, nullptr, fn);
    });
  }
  // The inbox's closures published by now (or a moment later: see
  // take_limit; not while callbacks of our own are queued); later ones wait
  // for the next iteration.
  const uint64_t limit = inbox_->take_limit(callbacks_.empty());
  if (limit != inbox_->consumed()) {
    // Their resumes may run at the end of the phase too, if no resume did
    // yet and nothing was posted (a drained chain's tail was rewound).
    internal::TaskBlock* const tail = callbacks_.tail;
    turn_mark_ = resume_fn_ == nullptr && tail != nullptr && callbacks_.empty()
                     ? tail->next_slot()
                     : nullptr;
    last_remote_iteration_ = iterations_;
    inbox_->consume(limit, remote_spare_, [this](internal::Task& fn) {
      run_guarded(internal::ActivityKind::kRemoteCallback, -1, nullptr, fn);
    });
    // Emptied blocks go back at once: the posters would otherwise allocate.
    if (remote_spare_.count > 0) inbox_->give_back(remote_spare_);
  }
  // The mark stays, stale, past the phase: what runs user code outside it
  // (fd handlers, timers, the end of the run) clears it first, and a held
  // resume took it; a turn of callbacks pays no store for it.
  if (resume_fn_ != nullptr) {
    if (!stop_requested_.load(std::memory_order_relaxed)) [[likely]] {
      run_held_resume();
    } else {
      requeue_held_resume();
    }
  }
}

void IOLoop::requeue_held_resume() {
  // It is first in line: at the head of the queue, it runs first thing in
  // the next phase 6.
  const Resume resume{std::exchange(resume_fn_, nullptr), resume_ctx_};
  if (closed_) return;
  try {
    internal::TaskBlock* const head = callbacks_.head;
    if (callbacks_.empty()) {
      internal::chain_push(callbacks_, spare_blocks_, resume, this);
    } else if (head->begin > 0) {
      ::new (static_cast<void*>(head->slot(head->begin - 1))) internal::Task(resume);
      --head->begin;
    } else {
      // A block of its own in front, full as those before the tail are.
      internal::TaskBlock* b = internal::take_block(spare_blocks_);
      b->begin = internal::TaskBlock::kCapacity - 1;
      b->end = internal::TaskBlock::kCapacity;
      ::new (static_cast<void*>(b->slot(b->begin))) internal::Task(resume);
      b->next = head;
      callbacks_.head = b;
      // The spare a completion's post counts on (see chain_grow).
      if (spare_blocks_.count == 0) internal::refill_spare(spare_blocks_);
      set_post_room_low(spare_blocks_.count == 0);
    }
  } catch (const std::bad_alloc&) {
    // No memory to keep it: it runs now, a moment before the stop, rather
    // than never.
    run_guarded(internal::ActivityKind::kCallback, -1, nullptr, resume);
  }
}

// --- callbacks -----------------------------------------------------------------

// The same-thread post inline, everything else out of line: the common
// case then needs no stack frame (no temporary closure, no stack canary).
// closed_ is only read on the loop's own thread. (add_callback(), inline,
// has rejected an empty fn on the caller's side.)
bool IOLoop::add_nonempty_callback(absl::AnyInvocable<void()>&& fn, SourceLocation where) {
  const std::thread::id me = internal::this_thread_id();
  if (!record_locations_.load(std::memory_order_relaxed) &&
      owner_.load(std::memory_order_relaxed) == me && !closed_) [[likely]] {
    OwnerPost post(this);
    if (post.still_owner(me)) [[likely]] {
      internal::chain_push(callbacks_, spare_blocks_, std::move(fn), this);
      return true;
    }
  }
  return add_callback_slow(std::move(fn), where);
}

bool IOLoop::add_callback_slow(absl::AnyInvocable<void()>&& fn, const SourceLocation& where) {
  if (record_locations_.load(std::memory_order_relaxed)) return add_located_callback(std::move(fn), where);
  if (in_scheduler_thread()) return false;  // closed: fn dies unrun in the caller
  return inbox_->push(std::move(fn));
}

bool IOLoop::add_located_callback(absl::AnyInvocable<void()>&& fn, const SourceLocation& where) {
  if (in_scheduler_thread()) {
    OwnerPost post(this);
    if (post.still_owner(internal::this_thread_id())) {
      if (closed_) return false;
      internal::chain_push(callbacks_, spare_blocks_,
                           locate(std::move(fn), internal::ActivityKind::kCallback, where), this);
      return true;
    }
  }
  return inbox_->push(locate(std::move(fn), internal::ActivityKind::kRemoteCallback, where));
}

void IOLoop::post(absl::AnyInvocable<void()> fn) {
  if (!closed_ && !record_locations_.load(std::memory_order_relaxed)) [[likely]] {
    internal::chain_push(callbacks_, spare_blocks_, std::move(fn), this);
    return;
  }
  post_slow(std::move(fn));
}

void IOLoop::post_slow(absl::AnyInvocable<void()>&& fn) {
  // After close() nothing will ever run it: it dies unrun in post().
  if (closed_) return;
  // A future's post must not fail (see reserve_post): with no memory for
  // the location's wrapper, `fn` (left intact by locate) goes without it.
  absl::AnyInvocable<void()> located;
  try {
    located = locate(std::move(fn), internal::ActivityKind::kFutureCallback, SourceLocation());
  } catch (const std::bad_alloc&) {
  }
  internal::chain_push(callbacks_, spare_blocks_, located ? std::move(located) : std::move(fn),
                       this);
}

void IOLoop::reserve_post() {
  // Called only while post_room_low() is up: chain_grow could not replace
  // the spare block it took. Try again; a spare block makes room for 256
  // posts.
  if (spare_blocks_.count == 0) internal::refill_spare(spare_blocks_);
  if (spare_blocks_.count > 0) {
    set_post_room_low(false);
    return;
  }
  // Still no memory: the room left in the tail block does if it is enough
  // for the completion and what it completes inline (the flag stays up).
  const internal::TaskBlock* tail = callbacks_.tail;
  const uint32_t room = tail == nullptr ? 0 : internal::TaskBlock::kCapacity - tail->end;
  if (room >= internal::kPostReserveSlots || closed_) return;
  throw std::bad_alloc();
}

void IOLoop::reserve_posts(size_t n) {
  // After close() a post queues nothing: no room needed.
  if (closed_) return;
  constexpr size_t kCapacity = internal::TaskBlock::kCapacity;
  // Each completion then finds, when post_room_low() is up, at least
  // kPostReserveSlots slots left in the tail (see reserve_post).
  const size_t need = n + internal::kPostReserveSlots;
  const internal::TaskBlock* tail = callbacks_.tail;
  const size_t room =
      (tail == nullptr ? 0 : kCapacity - tail->end) + spare_blocks_.count * kCapacity;
  if (room < need) {
    // All the blocks first, so that a failure leaves the spare pool as it
    // was. They join it past kRetainedBlocks: the posts take them, and
    // recycle() trims the pool as they drain.
    internal::SpareBlocks fresh;
    try {
      for (size_t have = room; have < need; have += kCapacity) {
        internal::TaskBlock* b = new internal::TaskBlock;
        b->next = fresh.top;
        fresh.top = b;
        if (fresh.count++ == 0) fresh.bottom = b;
      }
    } catch (...) {
      internal::free_blocks(fresh.top);
      throw;
    }
    internal::splice_spare(spare_blocks_, fresh);
  }
  if (spare_blocks_.count > 0) set_post_room_low(false);
}

void IOLoop::post_resume(void (*resume)(void*), void* ctx) {
  // First in line for the next iteration, in the callback phase: it runs at
  // the end of this one instead (see run_callbacks), and takes the mark, so
  // that nothing else does. (No mark while locations are recorded: the
  // queue's wrapper names it. None once closed either.)
  if (turn_mark_ != nullptr && !record_locations_.load(std::memory_order_relaxed)) {
    if (callbacks_.tail->next_slot() == turn_mark_) {
      turn_mark_ = nullptr;
      resume_fn_ = resume;
      resume_ctx_ = ctx;
      return;
    }
  }
  if (!closed_ && !record_locations_.load(std::memory_order_relaxed)) [[likely]] {
    // Built in its slot: no closure to construct, move and destroy on the way.
    internal::chain_push(callbacks_, spare_blocks_, Resume{resume, ctx}, this);
    return;
  }
  post_resume_slow(resume, ctx);
}

void IOLoop::resume_now(void (*resume)(void*), void* ctx) {
  if (!watchdog_busy_) [[likely]] {
    resume(ctx);
    return;
  }
  resume_named(resume, ctx);
}

// Inside a watchdog-bracketed callback (run_watched): the coroutine is what
// runs until it suspends or ends, then the callback again. The bracket's
// watchdog is the retired one if the callback switched the watchdog off
// (see set_blocking_log_threshold), before or during the resume.
void IOLoop::resume_named(void (*resume)(void*), void* ctx) {
  const SourceLocation* where = static_cast<const internal::CoroutineWaiter*>(ctx)->location;
  auto bracket = [this] {
    return retired_watchdog_ != nullptr ? retired_watchdog_.get() : watchdog_.get();
  };
  internal::Watchdog* watchdog = bracket();
  if (where == nullptr || watchdog == nullptr) {
    resume(ctx);
    return;
  }
  const internal::Activity was = watchdog->enter(internal::ActivityKind::kCoroutine, *where);
  resume(ctx);
  // The bracket's watchdog, even if the coroutine switched it off (then it
  // is the retired one) or replaced it.
  if (watchdog_busy_) {
    if (internal::Watchdog* now = bracket()) now->leave(was);
  }
}

void IOLoop::post_resume_slow(void (*resume)(void*), void* ctx) {
  if (closed_) return;
  if (record_locations_.load(std::memory_order_relaxed)) {
    // The watchdog names the coroutine (ctx is its CoroutineWaiter). With
    // no memory for the wrapper it goes unnamed, as post_slow's.
    const SourceLocation* where = static_cast<const internal::CoroutineWaiter*>(ctx)->location;
    absl::AnyInvocable<void()> located;
    try {
      located = locate(Resume{resume, ctx}, internal::ActivityKind::kCoroutine,
                       where != nullptr ? *where : SourceLocation());
    } catch (const std::bad_alloc&) {
    }
    if (located) {
      internal::chain_push(callbacks_, spare_blocks_, std::move(located), this);
      return;
    }
  }
  post(Resume{resume, ctx});
}

absl::AnyInvocable<void()> IOLoop::locate(absl::AnyInvocable<void()>&& fn,
                                          internal::ActivityKind kind,
                                          const SourceLocation& where) {
  struct Located {
    IOLoop* loop;
    internal::ActivityKind kind;
    SourceLocation where;
    absl::AnyInvocable<void()> fn;
  };
  // The one allocation first, so that if it throws `fn` is still the
  // caller's (post_slow then posts it as it is). The closure holds only the
  // box: it fits in AnyInvocable's inline buffer and moves without throwing.
  auto box = std::make_unique<Located>(Located{this, kind, where, nullptr});
  box->fn = std::move(fn);
  // Runs only on the loop (inside run_guarded), so the loop is alive then;
  // destroyed unrun, it never touches the loop.
  return [box = std::move(box)]() mutable {
    box->loop->note_activity(box->kind, box->where);
    box->fn();
    // Returned: what it noted must not name the next callback's failure
    // (one that fails keeps it for log_failure, which clears it).
    box->loop->noted_ = false;
  };
}

void IOLoop::note_activity(internal::ActivityKind kind, const SourceLocation& where) {
  noted_ = true;
  noted_kind_ = kind;
  noted_where_ = where;
  if (watchdog_ != nullptr) watchdog_->update(kind, where);
}

std::shared_ptr<RemoteScheduler> IOLoop::remote() { return inbox_; }

// --- timers ----------------------------------------------------------------------

TimeoutHandle IOLoop::call_later(absl::Duration delay, absl::AnyInvocable<void()> fn,
                                 SourceLocation where) {
  check_owner("call_later");
  check_open("call_later");
  internal::check_callable(fn, "IOLoop::call_later", "fn");
  return call_at_unchecked(time() + delay, std::move(fn), where);
}

TimeoutHandle IOLoop::call_at(MonotonicTime when, absl::AnyInvocable<void()> fn,
                              SourceLocation where) {
  check_owner("call_at");
  check_open("call_at");
  internal::check_callable(fn, "IOLoop::call_at", "fn");
  return call_at_unchecked(when, std::move(fn), where);
}

TimeoutHandle IOLoop::call_at_unchecked(MonotonicTime when, absl::AnyInvocable<void()> fn,
                                        const SourceLocation& where) {
  if (record_locations_.load(std::memory_order_relaxed)) [[unlikely]] {
    fn = locate(std::move(fn), internal::ActivityKind::kTimer, where);
  }
  if (timer_phase_now_.has_value() && when < *timer_phase_now_) [[unlikely]] {
    when = *timer_phase_now_;  // see timer_phase_now_
  }
  return TimeoutHandle(id_, timers_.add(when, std::move(fn)));
}

void IOLoop::remove_timeout(TimeoutHandle handle) {
  check_owner("remove_timeout");
  if (closed_ || !handle) return;
  // Its timer part could name one of our timers by chance: never use it.
  if (handle.loop_ != id_) [[unlikely]] throw_foreign_timeout_handle();
  timers_.remove(handle.id());
}

void IOLoop::throw_foreign_timeout_handle() {
  throw InvalidStateError(
      "IOLoop::remove_timeout: the handle belongs to another loop (it was returned by that "
      "loop's call_later/call_at/add_timeout); remove the timer through that loop");
}

uint32_t IOLoop::next_loop_id() noexcept {
  static std::atomic<uint32_t> last{0};
  uint32_t id = last.fetch_add(1, std::memory_order_relaxed) + 1;
  // After 2^32 loops the count wraps; 0 stays "no loop". (Two loops that
  // far apart in a process's life could then share an id.)
  if (id == 0) id = last.fetch_add(1, std::memory_order_relaxed) + 1;
  return id;
}

// --- fd handlers -------------------------------------------------------------------

void IOLoop::add_handler(int fd, absl::AnyInvocable<void(int fd, uint32_t events)> handler,
                         uint32_t events, SourceLocation where) {
  check_owner("add_handler");
  check_open("add_handler");
  internal::check_callable(handler, "IOLoop::add_handler", "handler");
  if (fd < 0) throw std::invalid_argument("IOLoop::add_handler: negative fd " + std::to_string(fd));
  if ((events & ~(READ | WRITE | ERROR)) != 0) {
    throw std::invalid_argument("IOLoop::add_handler: unknown event bits " +
                                std::to_string(events & ~(READ | WRITE | ERROR)));
  }
  if (handlers_.contains(fd)) {
    throw InvalidStateError("IOLoop::add_handler: fd " + std::to_string(fd) +
                            " already has a handler (added twice? use update_handler to change "
                            "its events, or remove_handler first)");
  }
  const uint32_t generation = next_handler_generation_++;
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = handler_token(fd, generation);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "IOLoop::add_handler: epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
  }
  handlers_.emplace(fd, std::make_unique<internal::FdHandler>(internal::FdHandler{
                            std::move(handler), events & (READ | WRITE), generation, where}));
}

void IOLoop::update_handler(int fd, uint32_t events) {
  check_owner("update_handler");
  check_open("update_handler");
  if ((events & ~(READ | WRITE | ERROR)) != 0) {
    throw std::invalid_argument("IOLoop::update_handler: unknown event bits " +
                                std::to_string(events & ~(READ | WRITE | ERROR)));
  }
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) {
    throw InvalidStateError("IOLoop::update_handler: fd " + std::to_string(fd) +
                            " has no handler (add_handler first)");
  }
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = handler_token(fd, it->second->generation);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "IOLoop::update_handler: epoll_ctl(MOD, fd " + std::to_string(fd) +
                                ")");
  }
  it->second->events = events & (READ | WRITE);
}

void IOLoop::remove_handler(int fd) {
  check_owner("remove_handler");
  if (closed_) return;
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) {
    throw InvalidStateError("IOLoop::remove_handler: fd " + std::to_string(fd) +
                            " has no handler (never added, or removed already)");
  }
  // EBADF/ENOENT: the fd was closed already, which took it out of the epoll
  // set. Either way it is gone.
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  std::unique_ptr<internal::FdHandler> handler = std::move(it->second);
  handlers_.erase(it);
  if (dispatching_fds_) {
    // It may be the handler running right now: destroy it after it returns.
    retired_handlers_.push_back(std::move(handler));
  }
  // Otherwise destroyed here, after the table is consistent again.
}

// --- watchdog, stats -----------------------------------------------------------------

void IOLoop::set_blocking_log_threshold(absl::Duration threshold) {
  check_owner("set_blocking_log_threshold");
  check_open("set_blocking_log_threshold");
  const bool off = threshold <= absl::ZeroDuration() || threshold == absl::InfiniteDuration();
  // From now on posts record where they come from (or stop doing so).
  record_locations_.store(!off, std::memory_order_relaxed);
  if (off) {
    if (watchdog_busy_ && retired_watchdog_ == nullptr) {
      retired_watchdog_ = std::move(watchdog_);  // the running callback's bracket still needs it
    } else {
      // Not running, or one made inside this callback after the running
      // one was retired (off, on, off): that one is in no bracket.
      watchdog_.reset();
    }
    return;
  }
  if (watchdog_ != nullptr) {
    watchdog_->set_threshold(threshold);
  } else {
    watchdog_ = std::make_unique<internal::Watchdog>(threshold);
  }
}

IOLoop::Stats IOLoop::stats() const {
  check_owner("stats");
  Stats s;
  // (A resume held for the end of the turn counts: it is queued, out of line.)
  s.callbacks = internal::chain_size(callbacks_) + (resume_fn_ != nullptr ? 1 : 0);
  s.timers = timers_.size();
  s.timer_heap_entries = timers_.heap_entries();
  s.handlers = handlers_.size();
  s.iterations = iterations_;
  s.waker_writes = inbox_->writes();
  s.retained_queue_bytes = (spare_blocks_.count + remote_spare_.count +
                            (closed_ ? 0 : inbox_->retained_block_count())) *
                           sizeof(internal::TaskBlock);
  return s;
}

}  // namespace eddy
