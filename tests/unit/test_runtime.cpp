// util/runtime: the one subprocess runner (iptables-save and friends).
#include <gtest/gtest.h>

#include "sources/legacy_trace.h"
#include "util/runtime.h"
#include "util/text.h"

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

TEST(Text, OwnerPidIsExactlyNatbpfUnderscoreDigits) {
  EXPECT_EQ(natbpf::natbpf_owner_pid("natbpf_123"), 123);
  EXPECT_FALSE(natbpf::natbpf_owner_pid("mynatbpf_5"));
  EXPECT_FALSE(natbpf::natbpf_owner_pid("natbpf_5x"));
  EXPECT_FALSE(natbpf::natbpf_owner_pid("natbpf_"));
  EXPECT_FALSE(natbpf::natbpf_owner_pid("natbpf_0"));
  EXPECT_FALSE(natbpf::natbpf_owner_pid("natbpf_99999999999"));
  EXPECT_FALSE(natbpf::natbpf_owner_pid("natbpf_99999999999999999999999"));
  EXPECT_FALSE(natbpf::parse_uint("18446744073709551616"));
  EXPECT_EQ(natbpf::parse_uint("42"), 42u);
}

TEST(Text, RuleCommentAndHugeTraceRuleNumbers) {
  EXPECT_EQ(natbpf::rule_comment("-A PREROUTING -p tcp -m comment --comment natbpf_12 -j TRACE"), "natbpf_12");
  EXPECT_EQ(natbpf::rule_comment("-A X -m comment --comment \"demo/web:http has no local endpoints\" -j Y"),
            "demo/web:http has no local endpoints");
  EXPECT_NE(natbpf::rule_comment("-A PREROUTING -m comment --comment natbpf_123 -j TRACE"), "natbpf_12");
  EXPECT_EQ(natbpf::rule_comment("-A INPUT -j DROP"), "");
  EXPECT_FALSE(natbpf::parse_trace_prefix("TRACE: filter:FORWARD:rule:99999999999999999999999 "));
  ASSERT_TRUE(natbpf::parse_trace_prefix("TRACE: filter:FORWARD:rule:7 "));
  EXPECT_EQ(natbpf::parse_trace_prefix("TRACE: filter:FORWARD:rule:7 ")->number, 7u);
}

TEST(Runtime, DurationsMustBeFinitePositiveAndBounded) {
  for (const char* bad : {"nan", "inf", "-inf", "1e300", "-1s", "0", "NaNs", "9999999h"})
    EXPECT_FALSE(natbpf::parse_duration(bad)) << bad;
  EXPECT_EQ(natbpf::parse_duration("1.5s")->count(), 1500);
  EXPECT_EQ(natbpf::parse_duration("2m")->count(), 120000);
}
