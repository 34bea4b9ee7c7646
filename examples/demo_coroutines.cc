// demo.cc written as coroutines: the same offloading, progress and report,
// with co_await where demo.cc chains callbacks. Compare the two.
//
//   bazel run //examples:demo_coroutines -- [--workers=N] [--timeout=10s] [DIR]
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "eddy/executor/run_on_executor.h"
#include "eddy/executor/thread_pool_executor.h"
#include "eddy/futures/coroutine.h"
#include "eddy/futures/log.h"
#include "eddy/loop/io_loop.h"
#include "eddy/loop/periodic_callback.h"
#include "eddy/loop/with_timeout.h"
#include "examples/demo_common.h"

namespace {

class FileHasher {
 public:
  explicit FileHasher(int workers)
      : executor(std::make_unique<eddy::ThreadPoolExecutor>(eddy::ThreadPoolExecutor::Options{
            .max_workers = workers, .thread_name_prefix = "hasher"})) {}

  eddy::Future<demo::Digest> hash(std::string path) {
    return eddy::run_on_executor(this, &FileHasher::hash_blocking, std::move(path));
  }

  std::unique_ptr<eddy::ThreadPoolExecutor> executor;

 private:
  demo::Digest hash_blocking(const std::string& path) { return demo::checksum_file(path); }
};

struct Progress {
  size_t done = 0;
  uint64_t bytes = 0;
};

// One file: offload, bound it in time, and turn failure into an outcome.
eddy::Future<demo::Outcome> hash_one(FileHasher& hasher, std::string path, absl::Duration timeout,
                                     Progress& progress) {
  demo::Outcome o;
  try {
    o.digest = co_await eddy::with_timeout(timeout, hasher.hash(std::move(path)));
    progress.bytes += o.digest->bytes;
  } catch (const eddy::TimeoutError&) {
    o.error = "timed out";
  } catch (...) {
    o.error = eddy::describe_exception(std::current_exception());
  }
  ++progress.done;
  co_return o;
}

eddy::Future<int> run(const demo::Flags& flags, const std::vector<std::string>& files) {
  eddy::IOLoop& loop = eddy::IOLoop::current();
  FileHasher hasher(flags.workers);
  Progress progress;
  const absl::Time started = absl::Now();

  absl::Duration worst_lateness;
  const absl::Duration tick = absl::Milliseconds(10);
  eddy::MonotonicTime last_tick = loop.time();
  eddy::PeriodicCallback ticker(
      [&] {
        eddy::MonotonicTime now = loop.time();
        worst_lateness = std::max(worst_lateness, (now - last_tick) - tick);
        last_tick = now;
        demo::print_progress(progress.done, files.size(), progress.bytes, worst_lateness);
      },
      tick);
  ticker.start();

  std::map<std::string, eddy::Future<demo::Outcome>> jobs;
  for (const std::string& path : files) {
    jobs.emplace(path, hash_one(hasher, path, flags.timeout, progress));  // all start now
  }
  std::map<std::string, demo::Outcome> outcomes = co_await jobs;  // in parallel (multi)

  ticker.stop();
  demo::print_progress(progress.done, files.size(), progress.bytes, worst_lateness);
  demo::print_report(outcomes, {.items = outcomes.size(),
                                .wall = absl::Now() - started,
                                .worst_timer_lateness = worst_lateness,
                                .workers = flags.workers});
  int failures = 0;
  for (const auto& [path, o] : outcomes) failures += o.digest ? 0 : 1;
  co_return failures;
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
  int failures = eddy::IOLoop::current().run_sync([&] { return run(flags, files); });
  return generated || failures == 0 ? 0 : 1;
}
