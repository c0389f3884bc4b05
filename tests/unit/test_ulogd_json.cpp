// ulogd2 JSON lines: a real file of ulogd2 2.0.8 (NFLOG, BASE, IFINDEX,
// IP2STR, HWHDR and JSON in its stack; tests/unit/fixtures/ulogd_trace.json,
// written by capture_nflog.sh beside it, from the same packets as
// nflog_trace.pcap) and hand-written damaged lines, none of which may throw.
#include <gtest/gtest.h>
#include <linux/netfilter.h>

#include <fstream>

#include "sources/nflog_file.h"

namespace natbpf {
namespace {

const std::string kUlogdFixture = NATBPF_FIXTURES "/ulogd_trace.json";

std::vector<std::string> fixture_lines() {
  std::ifstream in(kUlogdFixture);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<LogRecord> fixture_records() {
  std::vector<LogRecord> out;
  auto lines = fixture_lines();
  for (size_t i = 0; i < lines.size(); i++) {
    auto rec = parse_ulogd_json_line(lines[i], i + 1);
    EXPECT_TRUE(rec) << "line " << i + 1;
    if (rec) out.push_back(*rec);
  }
  return out;
}

// A TCP SYN line with only the keys natbpf reads, plus what a test adds.
std::string line_with(const std::string& extra) {
  return R"({"oob.family": 2, "oob.prefix": "TRACE: raw:PREROUTING:rule:1 ", "oob.in": "eth0",)"
         R"( "oob.out": "", "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "ip.protocol": 6,)"
         R"( "src_port": 40000, "dest_port": 52000, "tcp.syn": 1)" +
         extra + "}";
}

TEST(UlogdJson, ReadsRealUlogdOutput) {
  auto recs = fixture_records();
  ASSERT_EQ(recs.size(), 11u);
  const LogRecord& syn = recs[0];
  EXPECT_EQ(syn.line, 1u);
  EXPECT_EQ(syn.family, NFPROTO_IPV4);
  EXPECT_EQ(syn.prefix, "TRACE: raw:PREROUTING:rule:1 ");
  EXPECT_EQ(syn.pkt.str(), "tcp 10.99.0.1:55018 -> 10.99.0.2:8080 [S]");
  EXPECT_EQ(syn.pkt.tcp_seq, 2832993870u);
  EXPECT_EQ(syn.pkt.ip_id, 7045);
  EXPECT_EQ(syn.pkt.len, 60u);
  EXPECT_EQ(syn.in, "eth0");
  EXPECT_EQ(syn.out, "");
  EXPECT_EQ(syn.iif, 2u);
  EXPECT_FALSE(syn.oif);
  EXPECT_FALSE(syn.mark) << "ulogd writes oob.mark 0 for no mark";
  EXPECT_EQ(syn.ts_ns, 1795661767302783000u);
  EXPECT_EQ(recs[1].mark, 0x2au);
  const LogRecord& icmp = recs[4];
  EXPECT_EQ(icmp.prefix, "TRACE: filter:OUTPUT:policy:1 ");
  EXPECT_EQ(icmp.pkt.l4proto, 1);
  EXPECT_EQ(icmp.out, "eth0");
  EXPECT_EQ(icmp.oif, 2u);
  EXPECT_FALSE(icmp.iif);
  EXPECT_EQ(recs[6].pkt.tcp_flags, 0x10);
  EXPECT_EQ(recs[6].pkt.tcp_ack, 584062687u);
  EXPECT_EQ(recs[7].pkt.tcp_flags, 0x18);
  EXPECT_EQ(recs[8].pkt.tcp_flags, 0x11);
  const LogRecord& v6 = recs[10];
  EXPECT_EQ(v6.family, NFPROTO_IPV6);
  EXPECT_EQ(v6.pkt.str(), "udp [fd00:99::1]:52576 -> [fd00:99::2]:53");
  EXPECT_EQ(v6.pkt.len, 51u);
}

// The same packets, logged to two NFLOG groups, read from the pcap and from
// ulogd's JSON: the two readers must tell the same story.
TEST(UlogdJson, AgreesWithTheCaptureOfTheSamePackets) {
  auto json = fixture_records();
  std::vector<LogRecord> pcap;
  uint64_t malformed = 0;
  ASSERT_TRUE(read_nflog_pcap(NATBPF_FIXTURES "/nflog_trace.pcap",
                              [&](LogRecord&& r) { pcap.push_back(std::move(r)); }, malformed));
  ASSERT_EQ(json.size(), pcap.size());
  for (size_t i = 0; i < json.size(); i++) {
    SCOPED_TRACE("record " + std::to_string(i + 1));
    const Packet &a = json[i].pkt, &b = pcap[i].pkt;
    EXPECT_EQ(json[i].prefix, pcap[i].prefix);
    EXPECT_EQ(json[i].family, pcap[i].family);
    EXPECT_EQ(a.str(), b.str());
    EXPECT_EQ(a.family, b.family);
    EXPECT_EQ(a.saddr, b.saddr);
    EXPECT_EQ(a.tcp_flags, b.tcp_flags);
    EXPECT_EQ(a.tcp_seq, b.tcp_seq);
    EXPECT_EQ(a.tcp_ack, b.tcp_ack);
    EXPECT_EQ(a.ip_id, b.ip_id);
    EXPECT_EQ(a.len, b.len);
    EXPECT_EQ(json[i].iif, pcap[i].iif);
    EXPECT_EQ(json[i].oif, pcap[i].oif);
    EXPECT_EQ(json[i].mark, pcap[i].mark);
    // Two groups, two copies: the kernel stamped them microseconds apart.
    ASSERT_TRUE(json[i].ts_ns && pcap[i].ts_ns);
    EXPECT_NEAR(double(*json[i].ts_ns), double(*pcap[i].ts_ns), 1e6);
  }
}

TEST(UlogdJson, TimeFromTheTimestampWhenOobTimeIsMissing) {
  auto ts = [](const std::string& key, const std::string& value) {
    auto rec = parse_ulogd_json_line(line_with(", \"" + key + "\": \"" + value + "\""), 1);
    EXPECT_TRUE(rec) << value;
    return rec ? rec->ts_ns : std::nullopt;
  };
  EXPECT_EQ(ts("timestamp", "2026-11-26T03:46:39.391093+0100"), 1795661199391093000u);
  EXPECT_EQ(ts("timestamp", "2026-11-25T21:16:39-0530"), 1795661199000000000u);
  EXPECT_EQ(ts("@timestamp", "2026-11-26T02:46:39.5Z"), 1795661199500000000u);  // eventv1=1
  EXPECT_FALSE(ts("timestamp", "2026-11-26T03:46:39.391093")) << "no offset: the zone is unknown";
  EXPECT_FALSE(ts("timestamp", "2026-13-26T03:46:39+0100"));
  EXPECT_FALSE(ts("timestamp", "1969-12-31T23:59:59+0000"));
  EXPECT_FALSE(ts("timestamp", "9999-12-31T23:59:59+0000")) << "beyond what uint64 ns hold";
  EXPECT_FALSE(ts("timestamp", "2026-11-26T03:46:39.+0100"));
  EXPECT_FALSE(ts("timestamp", "2026"));
  std::string both = R"(, "oob.time.sec": 1795661199, "oob.time.usec": 7,)"
                     R"( "timestamp": "2030-01-01T00:00:00Z")";
  auto rec = parse_ulogd_json_line(line_with(both), 1);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->ts_ns, 1795661199000007000u) << "oob.time.* first";
}

TEST(UlogdJson, FamilyFromTheAddressesWithoutOobFamily) {
  auto rec = parse_ulogd_json_line(R"({"src_ip": "fd00::1", "dest_ip": "fd00::2", "ip.protocol": 17})", 3);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->family, NFPROTO_IPV6);
  EXPECT_EQ(rec->line, 3u);
  EXPECT_EQ(rec->pkt.str(), "udp [fd00::1]:0 -> [fd00::2]:0");
  EXPECT_FALSE(rec->ts_ns);
  rec = parse_ulogd_json_line(line_with(R"(, "tcp.ack": 1, "tcp.res2": 3, "tcp.urg": 1)"), 1);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->pkt.tcp_flags, 0x02 | 0x10 | 0x20 | 0x40 | 0x80);
}

TEST(UlogdJson, DamagedLinesAreNoRecordAndNeverThrow) {
  EXPECT_TRUE(parse_ulogd_json_line(line_with(""), 1));
  const std::vector<std::string> bad = {
      "",
      "not json",
      "[1, 2]",
      "{\"oob.family\": 2",
      "{}",
      R"({"oob.family": 2, "orig.ip.saddr.str": "10.0.0.1", "orig.ip.protocol": 6})",  // an NFCT flow line
      line_with(R"(, "oob.family": 7)"),                              // duplicate key: the last wins
      line_with(R"(, "src_port": 70000)"),
      line_with(R"(, "tcp.seq": -1)"),
      line_with(R"(, "tcp.seq": 4e31)"),
      line_with(R"(, "tcp.seq": "1")"),
      line_with(R"(, "tcp.syn": 2)"),
      line_with(R"(, "oob.mark": 4294967296)"),
      line_with(R"(, "oob.time.usec": 1000000, "oob.time.sec": 1)"),
      line_with(R"(, "oob.in": "an-interface-name-too-long")"),
      line_with(R"(, "dest_ip": "fd00::2")"),                          // family and address disagree
      line_with(R"(, "dest_ip": "10.0.0.2\u0000junk")"),
      line_with(R"(, "dest_ip": 167772162)"),
      line_with(", \"oob.prefix\": \"\xff\xfe\""),                     // not UTF-8
      line_with(", \"x\": \"" + std::string(70000, 'a') + "\""),  // longer than any ulogd line
  };
  for (size_t i = 0; i < bad.size(); i++) {
    std::optional<LogRecord> rec;
    EXPECT_NO_THROW(rec = parse_ulogd_json_line(bad[i], i + 1)) << i;
    EXPECT_FALSE(rec) << i << ": " << bad[i].substr(0, 200);
    EXPECT_NO_THROW((void)looks_like_ulogd_json(bad[i])) << i;
  }
  // Deep nesting within the length cap: parsed and freed without recursion.
  std::string deep = line_with(", \"x\": " + std::string(30000, '[') + std::string(30000, ']'));
  EXPECT_NO_THROW(EXPECT_TRUE(parse_ulogd_json_line(deep, 1)));
  std::string long_line = line_with(", \"oob.prefix\": \"" + std::string(500, 'p') + "\"");
  auto long_prefix = parse_ulogd_json_line(long_line, 1);
  ASSERT_TRUE(long_prefix);
  EXPECT_EQ(long_prefix->prefix.size(), 127u) << "cut where the kernel's prefixes end";
  auto escaped = parse_ulogd_json_line(line_with(R"(, "oob.prefix": "\u001b[2J \u00e9", "oob.in": "e\nth0")"), 1);
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->prefix, "?[2J ??") << "printable ASCII only";
  EXPECT_EQ(escaped->in, "e?th0");
}

TEST(UlogdJson, LooksLikeUlogdJson) {
  EXPECT_TRUE(looks_like_ulogd_json(fixture_lines().at(0)));
  EXPECT_TRUE(looks_like_ulogd_json(R"({"oob.family": 2})"));
  EXPECT_FALSE(looks_like_ulogd_json(R"({"record":"natbpf","version":1,"command":"trace"})"));
  EXPECT_FALSE(looks_like_ulogd_json("Nov 26 03:46:39 host kernel: TRACE: raw:PREROUTING:rule:1 IN=eth0"));
  EXPECT_FALSE(looks_like_ulogd_json("{}"));
  EXPECT_FALSE(looks_like_ulogd_json("[\"oob.family\"]"));
}

}  // namespace
}  // namespace natbpf
