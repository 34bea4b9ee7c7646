// The job eddy exists for, in callback style: a single-threaded loop stays
// responsive (a live progress line driven by a PeriodicCallback) while
// blocking work (reading and checksumming every file of a directory) runs on
// a ThreadPoolExecutor through run_on_executor. Results are gathered with
// multi() over a map (path -> outcome), each file bounded by with_timeout();
// a file that cannot be read is reported without stopping the rest.
//
//   tools/run-example [--workers=N] [--timeout=10s] [DIR]
//
// demo_coroutines.cc is the same program written with co_await.
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "eddy/executor/run_on_executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/future.h"
#include "eddy/futures/log.h"
#include "eddy/futures/multi.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/loop/with_timeout.h"
#include "examples/demo_common.h"

namespace {

// Blocking file work behind a loop-friendly interface: hash() returns at
// once; the read happens on the pool; the Future resolves on the loop.
class FileHasher {
 public:
  explicit FileHasher(int workers)
      : executor(std::make_unique<eddy::ThreadPoolExecutor>(eddy::ThreadPoolExecutor::Options{
            .max_workers = workers, .thread_name_prefix = "hasher"})) {}

  eddy::Future<demo::Digest> hash(std::string path) {
    return eddy::run_on_executor(this, &FileHasher::hash_blocking, std::move(path));
  }

  // run_on_executor finds the pool through this member.
  std::unique_ptr<eddy::ThreadPoolExecutor> executor;

 private:
  demo::Digest hash_blocking(const std::string& path) { return demo::checksum_file(path); }
};

// Turns a digest future into an outcome future that never fails, so one
// bad file does not fail the whole multi().
eddy::Future<demo::Outcome> settle(eddy::Future<demo::Digest> digest) {
  eddy::Future<demo::Outcome> outcome;
  digest.add_done_callback([outcome](eddy::Future<demo::Digest>& d) mutable {
    demo::Outcome o;
    try {
      o.digest = d.result();
    } catch (const eddy::TimeoutError&) {
      o.error = "timed out";
    } catch (...) {
      o.error = eddy::describe_exception(std::current_exception());
    }
    outcome.set_result(std::move(o));
  });
  return outcome;
}

}  // namespace

int main(int argc, char** argv) {
  demo::Flags flags = demo::parse_flags(
      argc, argv, "Checksums files on a thread pool while the event loop stays responsive.");
  std::optional<demo::GeneratedFiles> generated;
  if (flags.dir.empty()) generated.emplace();
  const std::string dir = generated ? generated->dir() : flags.dir;
  const std::vector<std::string> files = demo::list_files(dir);
  std::printf("checksumming %zu files under %s on %d workers (timeout %s each)\n", files.size(),
              dir.c_str(), flags.workers, absl::FormatDuration(flags.timeout).c_str());

  eddy::IOLoop& loop = eddy::IOLoop::current();
  FileHasher hasher(flags.workers);
  const absl::Time started = absl::Now();

  // Progress, and a measure of responsiveness: how late each 10 ms tick runs.
  size_t done = 0;
  uint64_t bytes = 0;
  absl::Duration worst_lateness;
  const absl::Duration tick = absl::Milliseconds(10);
  eddy::MonotonicTime last_tick = loop.time();
  eddy::PeriodicCallback progress(
      [&] {
        eddy::MonotonicTime now = loop.time();
        worst_lateness = std::max(worst_lateness, (now - last_tick) - tick);
        last_tick = now;
        demo::print_progress(done, files.size(), bytes, worst_lateness);
      },
      tick);

  // Offload every file at once; the pool runs `workers` of them at a time.
  std::map<std::string, eddy::Future<demo::Outcome>> jobs;
  for (const std::string& path : files) {
    eddy::Future<demo::Outcome> outcome = settle(eddy::with_timeout(flags.timeout, hasher.hash(path)));
    outcome.add_done_callback([&](eddy::Future<demo::Outcome>& f) {
      ++done;
      if (f.result().digest) bytes += f.result().digest->bytes;
    });
    jobs.emplace(path, std::move(outcome));
  }

  int exit_code = 0;
  loop.add_future(eddy::multi(std::move(jobs)),
                  [&](eddy::Future<std::map<std::string, demo::Outcome>>& all) {
                    progress.stop();
                    demo::print_progress(done, files.size(), bytes, worst_lateness);
                    const auto& outcomes = all.result();
                    for (const auto& [path, o] : outcomes) exit_code |= o.digest ? 0 : 1;
                    demo::print_report(outcomes, {.items = outcomes.size(),
                                                  .wall = absl::Now() - started,
                                                  .worst_timer_lateness = worst_lateness,
                                                  .workers = flags.workers});
                    loop.stop();
                  });
  progress.start();
  loop.start();
  // A generated set contains one broken link on purpose: that is success.
  return generated ? 0 : exit_code;
}
