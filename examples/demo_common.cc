#include "examples/demo_common.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string_view>
#include <system_error>

namespace demo {
namespace {

void usage(FILE* out, const char* argv0, const char* summary) {
  std::fprintf(out,
               "%s\n\n"
               "usage: %s [--workers=N] [--timeout=DURATION] [DIR]\n\n"
               "  DIR               directory whose files are checksummed (default: a\n"
               "                    generated temporary set of ~50 MiB and one broken link)\n"
               "  --workers=N       pool threads doing the blocking reads (default 4, 1..256)\n"
               "  --timeout=D       per-file limit, e.g. 500ms, 10s (default 10s)\n"
               "  --help            this text\n",
               summary, argv0);
}

[[noreturn]] void bad_flag(const char* argv0, const char* summary, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n\n", argv0, why.c_str());
  usage(stderr, argv0, summary);
  std::exit(2);
}

}  // namespace

Flags parse_flags(int argc, char** argv, const char* summary) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view name) -> std::optional<std::string> {
      if (arg.substr(0, name.size()) != name) return std::nullopt;
      if (arg.size() > name.size() && arg[name.size()] == '=') {
        return std::string(arg.substr(name.size() + 1));
      }
      if (arg.size() == name.size()) {
        if (i + 1 >= argc) bad_flag(argv[0], summary, std::string(name) + " needs a value");
        return std::string(argv[++i]);
      }
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout, argv[0], summary);
      std::exit(0);
    } else if (auto v = value_of("--workers")) {
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < 1 || n > 256) {
        bad_flag(argv[0], summary, "--workers must be a whole number from 1 to 256, not '" + *v + "'");
      }
      flags.workers = static_cast<int>(n);
    } else if (auto v = value_of("--timeout")) {
      if (!absl::ParseDuration(*v, &flags.timeout) || flags.timeout <= absl::ZeroDuration()) {
        bad_flag(argv[0], summary, "--timeout must be a positive duration such as 500ms or 10s, not '" + *v + "'");
      }
    } else if (!arg.empty() && arg[0] == '-') {
      bad_flag(argv[0], summary, "unknown flag '" + std::string(arg) + "'");
    } else if (flags.dir.empty()) {
      flags.dir = std::string(arg);
      std::error_code ec;
      if (!std::filesystem::is_directory(flags.dir, ec)) {
        bad_flag(argv[0], summary, "'" + flags.dir + "' is not a directory");
      }
    } else {
      bad_flag(argv[0], summary, "only one directory may be given");
    }
  }
  return flags;
}

Digest checksum_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + path);
  Digest d;
  d.checksum = 14695981039346656037ull;  // FNV-1a 64 offset basis
  std::vector<unsigned char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw std::system_error(err, std::generic_category(), "cannot read " + path);
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      d.checksum ^= buf[i];
      d.checksum *= 1099511628211ull;
    }
    d.bytes += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return d;
}

std::vector<std::string> list_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied)) {
    if (entry.is_symlink() || entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

GeneratedFiles::GeneratedFiles() {
  std::string pattern = (std::filesystem::temp_directory_path() / "eddy-demo-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  dir_ = pattern;
  std::mt19937_64 rng(42);
  std::vector<char> data;
  for (int i = 0; i < 48; ++i) {
    // 64 KiB .. 4 MiB, about 50 MiB in all.
    size_t size = size_t{64} << 10 << (i % 7);
    data.resize(size);
    for (size_t j = 0; j + 8 <= size; j += 8) {
      uint64_t r = rng();
      std::memcpy(data.data() + j, &r, 8);
    }
    char name[32];
    std::snprintf(name, sizeof(name), "file-%02d.bin", i);
    std::string path = dir_ + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(data.data(), 1, size, f) != size) {
      throw std::system_error(errno, std::generic_category(), "writing " + path);
    }
    std::fclose(f);
  }
  // Unreadable on purpose: its failure is reported, the rest go on.
  std::filesystem::create_symlink(dir_ + "/no-such-target", dir_ + "/broken-link.bin");
}

GeneratedFiles::~GeneratedFiles() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void print_report(const std::map<std::string, Outcome>& outcomes, const Summary& s) {
  size_t ok = 0, failed = 0;
  uint64_t bytes = 0;
  for (const auto& [path, outcome] : outcomes) {
    if (outcome.digest) {
      ++ok;
      bytes += outcome.digest->bytes;
    } else {
      ++failed;
      std::printf("  FAILED  %s: %s\n", path.c_str(), outcome.error.c_str());
    }
  }
  double mib = static_cast<double>(bytes) / (1 << 20);
  double secs = absl::ToDoubleSeconds(s.wall);
  std::printf(
      "items: %zu (%zu ok, %zu failed)  total: %.1f MiB  wall: %s (%.0f MiB/s on %d workers)\n"
      "loop timer ran at most %s late while the pool worked\n",
      s.items, ok, failed, mib, absl::FormatDuration(absl::Trunc(s.wall, absl::Microseconds(100))).c_str(),
      secs > 0 ? mib / secs : 0.0, s.workers,
      absl::FormatDuration(absl::Trunc(s.worst_timer_lateness, absl::Microseconds(10))).c_str());
}

void print_progress(size_t done, size_t total, uint64_t bytes, absl::Duration worst) {
  static const bool tty = ::isatty(STDOUT_FILENO) != 0;
  if (!tty) return;
  std::printf("\r  %zu/%zu files  %.1f MiB  worst timer lateness %s      ", done, total,
              static_cast<double>(bytes) / (1 << 20),
              absl::FormatDuration(absl::Trunc(worst, absl::Microseconds(10))).c_str());
  if (done == total) std::printf("\n");
  std::fflush(stdout);
}

}  // namespace demo
