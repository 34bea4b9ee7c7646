// What both demos share: flags, the blocking checksum, the generated file
// set, and the report. The eddy parts (loop, pool, futures) are in
// demo.cc (callbacks) and demo_coroutines.cc (coroutines).
#ifndef EDDY_EXAMPLES_DEMO_COMMON_H_
#define EDDY_EXAMPLES_DEMO_COMMON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace demo {

struct Flags {
  int workers = 4;
  absl::Duration timeout = absl::Seconds(10);
  std::string dir;  // empty: generate a temporary set
};

// Parses argv. On --help prints usage and exits 0; on a bad flag prints the
// problem and usage to stderr and exits 2.
Flags parse_flags(int argc, char** argv, const char* program_summary);

// The blocking work: reads a whole file and returns its FNV-1a 64 checksum
// and size. Throws std::system_error naming the file if it cannot be read.
struct Digest {
  uint64_t checksum = 0;
  uint64_t bytes = 0;
};
Digest checksum_file(const std::string& path);

// The files to hash under `dir` (regular files and symlinks, recursively),
// sorted.
std::vector<std::string> list_files(const std::string& dir);

// A temporary directory of files with random contents (about 50 MiB in
// all) and one dangling symlink, removed when the object goes away.
class GeneratedFiles {
 public:
  GeneratedFiles();
  ~GeneratedFiles();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// One file's outcome, as the demos report it.
struct Outcome {
  std::optional<Digest> digest;  // set on success
  std::string error;             // set on failure ("timed out after 10s", ...)
};

struct Summary {
  size_t items = 0;
  absl::Duration wall;
  absl::Duration worst_timer_lateness;
  int workers = 0;
};

// Prints each failure and the summary line.
void print_report(const std::map<std::string, Outcome>& outcomes, const Summary& summary);

// Progress line: "\r  12/49 files  37.5 MiB  ..." on a terminal, nothing
// otherwise (logs stay clean).
void print_progress(size_t done, size_t total, uint64_t bytes, absl::Duration worst_lateness);

}  // namespace demo

#endif  // EDDY_EXAMPLES_DEMO_COMMON_H_
