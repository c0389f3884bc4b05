// natbpf explain --log: kernel log lines in every saved form, and the whole
// path from saved logs (the seeds' published examples with reconstructed
// rulesets) to the stories natbpf trace tells.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "journey/log_replay.h"
#include "sources/kernel_log.h"
#include "temp_file.h"

using namespace natbpf;
using json = nlohmann::json;

namespace {

const std::string kLogs = NATBPF_FIXTURES "/logs/";
const std::string kSeedLine =
    "TRACE: nat:KUBE-NODEPORTS:rule:16 IN=eth0 OUT= MAC=00:15:5d:12:e2:28:00:15:5d:12:e2:24:08:00 "
    "SRC=172.28.129.2 DST=172.28.129.4 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=41569 DF PROTO=TCP SPT=55694 "
    "DPT=52000 SEQ=2805899841 ACK=0 WINDOW=29200 RES=0x00 SYN URGP=0 OPT (020405B40402080ACCEE00200000000001030307)";

struct Told {
  std::vector<json> packets;
  json summary;
  Status status = Ok{};
};

Told explain(LogReplayOptions o) {
  testing::internal::CaptureStdout();
  Told t;
  t.status = LogReplay(std::move(o)).run(make_json_renderer(), true);
  std::istringstream out(testing::internal::GetCapturedStdout());
  for (std::string line; std::getline(out, line);) {
    json j = json::parse(line);
    if (j["type"] == "packet") t.packets.push_back(j);
    else t.summary = j;
  }
  return t;
}

std::string write_temp(const std::string& text) {
  std::string path = temp_path();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(KernelLog, SyslogTraceLine) {
  auto r = parse_kernel_log_line("Jan 1 21:23:16 cos74 kernel: " + kSeedLine + " MARK=0x8000", 7);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->prefix, "TRACE: nat:KUBE-NODEPORTS:rule:16 ");
  EXPECT_EQ(r->line, 7u);
  EXPECT_EQ(r->family, 2);
  EXPECT_EQ(r->in, "eth0");
  EXPECT_EQ(r->out, "");
  EXPECT_EQ(r->pkt.saddr.str(), "172.28.129.2");
  EXPECT_EQ(r->pkt.daddr.str(), "172.28.129.4");
  EXPECT_EQ(r->pkt.l4proto, 6);
  EXPECT_EQ(r->pkt.sport, 55694);
  EXPECT_EQ(r->pkt.dport, 52000);
  EXPECT_EQ(r->pkt.ip_id, 41569);
  EXPECT_EQ(r->pkt.tcp_seq, 2805899841u);
  EXPECT_EQ(r->pkt.tcp_flags, 0x02);
  EXPECT_EQ(r->pkt.len, 60u);
  ASSERT_TRUE(r->mark);
  EXPECT_EQ(*r->mark, 0x8000u);
  // January 1st, 21:23:16 on the log's clock (seconds since the start of its year)
  EXPECT_EQ(r->ts_ns, (21 * 3600 + 23 * 60 + 16) * 1'000'000'000ULL);
}

TEST(KernelLog, EveryLoggerPrefixGivesTheSameRecord) {
  auto bare = parse_kernel_log_line(kSeedLine, 1);
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->ts_ns);
  for (const std::string prefix : {"[ 2176.164569] ", "[Thu Jan  1 21:23:16 2026] ",
                                   "2026-01-01T21:23:16.500000+00:00 node kernel: ",
                                   "Jan 01 21:23:16.25 node kernel: ", "Jan  1 21:23:16 node kernel: [ 2176.164569] "}) {
    auto r = parse_kernel_log_line(prefix + kSeedLine, 1);
    ASSERT_TRUE(r) << prefix;
    EXPECT_EQ(r->prefix, bare->prefix) << prefix;
    EXPECT_EQ(r->pkt.str(), bare->pkt.str()) << prefix;
    EXPECT_TRUE(r->ts_ns) << prefix;
  }
  EXPECT_EQ(kernel_log_time("[ 2176.164569] "), 2176164569000ULL);
  EXPECT_EQ(kernel_log_time("Jan 01 21:23:16.25 node kernel: "), (21 * 3600 + 23 * 60 + 16) * 1'000'000'000ULL + 250'000'000ULL);
  EXPECT_EQ(kernel_log_time("1970-01-02T00:00:01+00:00 "), 86401 * 1'000'000'000ULL);
}

TEST(KernelLog, TransportFieldsDoNotOverwriteTheIpHeader) {
  // UDP has its own LEN=, ICMP echo its own ID= and SEQ=: they belong to the transport header.
  auto udp = parse_kernel_log_line(
      "[ 1.000000] TRACE: raw:OUTPUT:policy:2 IN= OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=31 TOS=0x00 PREC=0x00 "
      "TTL=64 ID=52258 DF PROTO=UDP SPT=39986 DPT=5555 LEN=11 UID=0 GID=0 ",
      1);
  ASSERT_TRUE(udp);
  EXPECT_EQ(udp->pkt.len, 31u);
  EXPECT_EQ(udp->pkt.ip_id, 52258);
  EXPECT_EQ(udp->pkt.dport, 5555);
  EXPECT_EQ(udp->out, "lo");
  auto icmp = parse_kernel_log_line(
      "TRACE: filter:INPUT:rule:1 IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=99 DF "
      "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 ",
      1);
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->pkt.ip_id, 99);
  EXPECT_EQ(icmp->pkt.l4proto, 1);
  EXPECT_EQ(icmp->pkt.tcp_seq, 0u);
  auto v6 = parse_kernel_log_line(
      "TRACE: filter:INPUT:policy:3 IN=eth0 OUT= SRC=fd00:99::1 DST=fd00:99::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 "
      "PROTO=UDP SPT=52576 DPT=53 LEN=40 ",
      1);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family, 10);
  EXPECT_EQ(v6->pkt.str(), "udp [fd00:99::1]:52576 -> [fd00:99::2]:53");
}

TEST(KernelLog, ConntrackInvalidLinesAndOthers) {
  auto r = parse_kernel_log_line(
      "[ 5.000001] nf_ct_proto_6: invalid tcp flag combination IN= OUT=lo SRC=10.0.0.1 DST=10.0.0.2 LEN=40 "
      "TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 SEQ=1 ACK=0 WINDOW=0 RES=0x00 SYN RST URGP=0 ",
      3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->prefix, "nf_ct_proto_6: invalid tcp flag combination ");
  EXPECT_EQ(r->pkt.tcp_flags, 0x06);
  EXPECT_FALSE(parse_kernel_log_line("[ 5.0] e1000: eth0 NIC Link is Up 1000 Mbps", 1));
  EXPECT_FALSE(parse_kernel_log_line("TRACE: raw:PREROUTING:policy:3 IN=eth0 OUT= MAC=00:15", 1));  // cut short
  EXPECT_FALSE(parse_kernel_log_line("TRACE: raw:PREROUTING:policy:3 IN=eth0 SRC=1.2.3.4 DST=::1 PROTO=TCP", 1));
  EXPECT_FALSE(parse_kernel_log_line("TRACE: x IN= SRC=not-an-address DST=1.2.3.4", 1));
  EXPECT_TRUE(looks_like_kernel_log("Jan 1 21:23:16 cos74 kernel: " + kSeedLine));
  EXPECT_FALSE(looks_like_kernel_log("trace id 9c01f8 inet filter forward rule drop (verdict drop)"));
}

TEST(ExplainLog, Seed003TraceLinesWithTheirIptablesSave) {
  Told t = explain({{kLogs + "seed003-kern.log"}, {kLogs + "seed003-iptables-save.txt"}, LogFormat::Auto, {}});
  ASSERT_TRUE(t.status) << t.status.error().to_string();
  ASSERT_EQ(t.packets.size(), 2u);
  const json& drop = t.packets[0];
  EXPECT_EQ(drop["verdict"], "drop");
  EXPECT_EQ(drop["drop"]["table"], "filter");
  EXPECT_EQ(drop["drop"]["chain"], "KUBE-FIREWALL");
  EXPECT_EQ(drop["drop"]["handle"], 1);
  EXPECT_NE(drop["drop"]["rule"].get<std::string>().find("--mark 0x8000/0x8000 -j DROP"), std::string::npos);
  EXPECT_EQ(drop["drop"]["evidence"][0], "iptables TRACE line seed003-kern.log:25");
  EXPECT_EQ(drop["mark_origins"][0]["set_in"], "ip nat KUBE-MARK-DROP");
  EXPECT_EQ(drop["mark_origins"][0]["comment"], "ootob9/ingress-nginx:http has no local endpoints");
  EXPECT_EQ(drop["packet"]["iif"], "eth0");
  const json& dnat = t.packets[1];
  EXPECT_EQ(dnat["verdict"], "unknown");
  EXPECT_EQ(dnat["nat"][0]["from"], "172.28.129.4:80");
  EXPECT_EQ(dnat["nat"][0]["to"], "172.28.129.4:52000");
  EXPECT_NE(dnat["explanation"].get<std::string>().find("no verdict in the log after ip nat INPUT policy accept"),
            std::string::npos);
  EXPECT_EQ(t.summary["packets"], 2);
  EXPECT_EQ(t.summary["dropped"], 1);
}

TEST(ExplainLog, WithoutTheRulesetNothingIsGuessed) {
  Told t = explain({{kLogs + "seed003-kern.log"}, {}, LogFormat::Kernel, {}});
  ASSERT_TRUE(t.status);
  ASSERT_EQ(t.packets.size(), 2u);
  // The last line names rule 1 of KUBE-FIREWALL, but without the rule its verdict is unknown.
  EXPECT_EQ(t.packets[0]["verdict"], "unknown");
  EXPECT_EQ(t.packets[0]["steps"].back()["chain"], "KUBE-FIREWALL");
  EXPECT_EQ(t.packets[0]["steps"].back()["handle"], 1);
  EXPECT_TRUE(t.packets[0]["steps"].back()["rule"].is_null());
}

TEST(ExplainLog, Seed001MonitorTraceWithItsRuleset) {
  Told t = explain({{kLogs + "seed001-monitor.txt"}, {kLogs + "seed001-ruleset.nft"}, LogFormat::Auto, {}});
  ASSERT_TRUE(t.status);
  ASSERT_EQ(t.packets.size(), 1u);
  const json& p = t.packets[0];
  EXPECT_EQ(p["drop"]["chain"], "allowed_dnats");
  EXPECT_EQ(p["drop"]["rule"], "drop");
  EXPECT_EQ(p["nat"][0]["to"], "192.168.70.10:22");
  EXPECT_EQ(p["steps"][0]["rule"], "ip daddr 10.2.1.2 tcp dport 1222 tcp flags syn limit rate 6/minute meta nftrace set 1");
}

TEST(ExplainLog, RetransmissionsAreTheirOwnPackets) {
  // The same SYN logged twice (same headers): the raw table starts each pass.
  std::ifstream in(kLogs + "seed003-kern.log");
  std::string first, line;
  for (int i = 0; i < 25 && std::getline(in, line); i++) first += line + "\n";
  std::string log = write_temp(first + first);
  Told t = explain({{log}, {kLogs + "seed003-iptables-save.txt"}, LogFormat::Auto, {}});
  ASSERT_EQ(t.packets.size(), 2u);
  EXPECT_EQ(t.packets[1]["repeat_of"], 1);
  unlink(log.c_str());
}

TEST(ExplainLog, MatchAndMalformedLines) {
  auto m = parse_log_match("tcp dport 80");
  ASSERT_TRUE(m);
  Told t = explain({{kLogs + "seed003-kern.log"}, {kLogs + "seed003-iptables-save.txt"}, LogFormat::Auto, *m});
  ASSERT_EQ(t.packets.size(), 1u);
  EXPECT_EQ(t.packets[0]["nat"][0]["to"], "172.28.129.4:52000");
  std::string log = write_temp(std::string("Jan 1 21:23:16 h kernel: TRACE: raw:PREROUTING:policy:3 IN=eth0 OUT= MAC=\n") +
                               "Jan 1 21:23:16 h kernel: " + kSeedLine + "\n");
  Told bad = explain({{log}, {}, LogFormat::Auto, {}});
  EXPECT_EQ(bad.summary["parse_errors"], 1);
  EXPECT_NE(bad.summary["plan"].get<std::string>().find("1 malformed"), std::string::npos);
  unlink(log.c_str());
  EXPECT_FALSE(parse_log_match("tcp dport http"));
  EXPECT_FALSE(parse_log_match("tcp dport"));
  EXPECT_FALSE(parse_log_match("frobnicate 1"));
  EXPECT_EQ(parse_log_match("ip saddr 10.0.0.1 iif \"eth0\"")->iif, "eth0");
}

TEST(ExplainLog, BadInputIsAClearError) {
  std::string junk = write_temp("hello\nworld\n");
  Told t = explain({{junk}, {}, LogFormat::Auto, {}});
  ASSERT_FALSE(t.status);
  EXPECT_NE(t.status.error().hint.find("--format"), std::string::npos);
  Told r = explain({{kLogs + "seed003-kern.log"}, {junk}, LogFormat::Auto, {}});
  ASSERT_FALSE(r.status);
  EXPECT_NE(r.status.error().hint.find("iptables-save"), std::string::npos);
  Told missing = explain({{"/nonexistent/kern.log"}, {}, LogFormat::Auto, {}});
  ASSERT_FALSE(missing.status);
  unlink(junk.c_str());
  EXPECT_FALSE(parse_log_format("syslog"));
  EXPECT_EQ(detect_log_format("Jan 1 21:23:16 cos74 kernel: " + kSeedLine + "\n"), LogFormat::Kernel);
  EXPECT_EQ(detect_log_format("trace id 9c01f8 inet filter allowed_dnats rule drop (verdict drop)\n"),
            LogFormat::NftMonitor);
  EXPECT_FALSE(detect_log_format("nothing here\n"));
}

TEST(ExplainLog, BytesThatAreNotUtf8DoNotStopJsonOutput) {
  std::string line = "[ 1.000000] TRACE: filter:BAD\xff\xfe" "CHAIN:rule:1 IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 "
                     "TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=2 SEQ=1 ACK=0 WINDOW=1 RES=0x00 SYN URGP=0\n";
  std::string log = write_temp(line);
  Told t = explain({{log}, {}, LogFormat::Auto, {}});
  ASSERT_TRUE(t.status);
  ASSERT_EQ(t.packets.size(), 1u);
  EXPECT_NE(t.packets[0]["steps"][0]["chain"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
  unlink(log.c_str());
}
