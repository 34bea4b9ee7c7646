// A Scheduler for futures/ tests that need no real loop: post() queues,
// run_pending() runs the queue on the calling thread. The RemoteScheduler
// side is thread-safe, as the real loop's is.
#ifndef EDDY_TESTS_MANUAL_SCHEDULER_H_
#define EDDY_TESTS_MANUAL_SCHEDULER_H_

#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "eddy/futures/scheduler.h"

namespace eddy::testing {

class ManualScheduler : public Scheduler {
 public:
  ManualScheduler() : remote_(std::make_shared<Remote>()), owner_(std::this_thread::get_id()) {
    previous_ = Scheduler::current();
    set_current(this);
  }
  ~ManualScheduler() override {
    remote_->close();
    detach_scheduler();
    queue_.clear();
    if (previous_ != nullptr) set_current(previous_);
  }

  void post(absl::AnyInvocable<void()> fn) override { queue_.push_back(std::move(fn)); }
  std::shared_ptr<RemoteScheduler> remote() override { return remote_; }
  bool in_scheduler_thread() const override { return std::this_thread::get_id() == owner_; }

  // Runs queued callbacks (and those they post) until none is left, plus
  // those posted from other threads. Returns how many ran.
  int run_pending() {
    int ran = 0;
    for (;;) {
      for (auto& fn : remote_->take()) queue_.push_back(std::move(fn));
      if (queue_.empty()) return ran;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
      ++ran;
    }
  }
  size_t pending() const { return queue_.size(); }

 private:
  class Remote : public RemoteScheduler {
   public:
    bool post(absl::AnyInvocable<void()> fn) override {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return false;
      inbox_.push_back(std::move(fn));
      return true;
    }
    std::deque<absl::AnyInvocable<void()>> take() {
      std::lock_guard<std::mutex> lock(mu_);
      return std::exchange(inbox_, {});
    }
    void close() {
      std::deque<absl::AnyInvocable<void()>> dropped;
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      dropped.swap(inbox_);
    }

   private:
    std::mutex mu_;
    bool closed_ = false;
    std::deque<absl::AnyInvocable<void()>> inbox_;
  };

  std::shared_ptr<Remote> remote_;
  std::thread::id owner_;
  Scheduler* previous_ = nullptr;
  std::deque<absl::AnyInvocable<void()>> queue_;
};

}  // namespace eddy::testing

#endif  // EDDY_TESTS_MANUAL_SCHEDULER_H_
