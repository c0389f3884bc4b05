// util/runtime: the one subprocess runner (iptables-save and friends).
#include <gtest/gtest.h>

#include "util/runtime.h"

namespace natbpf {
namespace {

TEST(RunProgram, ReturnsExitStatusAndStdout) {
  auto [status, out] = run_program({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(status, 3);
  EXPECT_EQ(out, "out\n");  // stderr is discarded
}

TEST(RunProgram, MissingProgramIsMinusOne) {
  auto [status, out] = run_program({"natbpf-no-such-program"});
  EXPECT_EQ(status, -1);
  EXPECT_EQ(out, "");
  EXPECT_EQ(run_program({}).first, -1);
}

TEST(RunProgram, KilledBySignalIsMinusOne) {
  EXPECT_EQ(run_program({"sh", "-c", "kill -KILL $$"}).first, -1);
}

TEST(RunProgram, ReadsLargeOutput) {
  auto [status, out] = run_program({"head", "-c", "100000", "/dev/zero"});
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out.size(), 100000u);
}

}  // namespace
}  // namespace natbpf
