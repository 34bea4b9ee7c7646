// The demos a newcomer runs first (examples/demo.cc, demo_coroutines.cc):
// they checksum a directory, report the unreadable file without stopping,
// and reject bad flags with a usage message and a non-zero exit.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;
};

Outcome run(const std::string& command) {
  Outcome r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string binary(const char* name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/eddy/examples/" + name;
}

class DemoTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(std::getenv("TEST_TMPDIR")) / GetParam() / info->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "a.txt") << "hello";
    std::ofstream(dir_ / "b.txt") << std::string(100000, 'x');
    std::filesystem::create_symlink(dir_ / "missing", dir_ / "broken");
  }
  std::filesystem::path dir_;
};

TEST_P(DemoTest, ChecksumsADirectoryAndReportsTheUnreadableFile) {
  Outcome r = run(binary(GetParam()) + " --workers=2 --timeout=30s " + dir_.string());
  EXPECT_EQ(r.exit_code, 1) << "a failed file gives a non-zero exit\n" << r.output;
  EXPECT_NE(r.output.find("items: 3 (2 ok, 1 failed)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAILED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("broken"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("late"), std::string::npos) << "reports timer lateness\n" << r.output;
}

TEST_P(DemoTest, GeneratedSetRunsCleanly) {
  Outcome r = run(binary(GetParam()) + " --workers=2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("items: 49 (48 ok, 1 failed)"), std::string::npos) << r.output;
}

TEST_P(DemoTest, BadFlagsGiveUsageAndExitCodeTwo) {
  for (const char* args : {"--bogus", "--workers=0", "--workers=abc", "--timeout=soon",
                           "/no/such/dir"}) {
    Outcome r = run(binary(GetParam()) + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << args << "\n" << r.output;
  }
}

TEST_P(DemoTest, HelpExitsZero) {
  Outcome r = run(binary(GetParam()) + " --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--workers"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(BothStyles, DemoTest, ::testing::Values("demo", "demo_coroutines"));

}  // namespace
