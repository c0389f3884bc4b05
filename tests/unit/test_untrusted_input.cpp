// Inputs the fuzz targets of tests/fuzz found to crash natbpf, each kept as
// a test: bad bytes from the kernel, a recording or a tool's text output are
// rejected or counted, never a crash.
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <cstring>
#include <fstream>

#include "kernel/ct_stats.h"
#include "nftrace_builders.h"
#include "sources/ct_lookup.h"
#include "sources/legacy_trace.h"
#include "sources/ruleset.h"
#include "temp_file.h"
#include "world/replay.h"

namespace natbpf {
namespace {

// nlmsg_len 0xfffffff0 is -16 as the int libmnl's mnl_nlmsg_ok() compares,
// so it passed as fitting and mnl_nlmsg_next() stepped 4 GB ahead.
constexpr uint32_t kNegativeAsInt = 0xfffffff0;

std::vector<uint8_t> with_bad_length_tail(std::vector<uint8_t> datagram) {
  nlmsghdr bad{};
  bad.nlmsg_len = kNegativeAsInt;
  auto* p = reinterpret_cast<const uint8_t*>(&bad);
  datagram.insert(datagram.end(), p, p + sizeof(bad));
  return datagram;
}

// The original and reply tuples of a TCP entry 10.0.0.1 -> 10.0.0.2.
void put_ct_tuples(nlmsghdr* nlh) {
  for (int type : {CTA_TUPLE_ORIG, CTA_TUPLE_REPLY}) {
    nlattr* t = mnl_attr_nest_start(nlh, type);
    nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(0x0a000001));
    mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(0x0a000002));
    mnl_attr_nest_end(nlh, ip);
    nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, 6);
    mnl_attr_nest_end(nlh, p);
    mnl_attr_nest_end(nlh, t);
  }
}

TEST(UntrustedInput, NflogMessageLongerThanIntIsNotWalkedInto) {
  auto packet = ipv4_header(6, "10.0.0.1", "10.0.0.2", 40, 7);
  auto tcp = tcp_header(1, 52000, 9, 0x02);
  packet.insert(packet.end(), tcp.begin(), tcp.end());
  auto datagram = with_bad_length_tail(nflog_message("TRACE: nat:KUBE-NODEPORTS:rule:1 ", packet));
  int events = 0;
  parse_nflog_datagram(datagram, 1, "natbpf_1", [](uint8_t, const std::string&, const std::string&) {
    return static_cast<const ChainInfo*>(nullptr);
  }, [&](NftTraceEvent&&) { events++; });
  EXPECT_EQ(events, 1);
}

// libmnl walks attributes up to nlmsg_len rounded up to 4, so it accepted a
// last attribute running up to 3 bytes past the message: at the very end of
// a buffer (a recording's datagram, as fuzz_nflog found), the packet's TCP
// flags were read past it. Such an attribute is not there.
TEST(UntrustedInput, AttributePastAnUnalignedMessageEndIsNotThere) {
  auto packet = ipv4_header(6, "10.0.0.1", "10.0.0.2", 40, 7);
  auto tcp = tcp_header(1, 52000, 9, 0x02);
  packet.insert(packet.end(), tcp.begin(), tcp.begin() + 14);  // up to the flags: an attribute of 4 + 34 bytes
  auto message = [&](bool cut) {
    std::vector<uint8_t> buf(512);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
    static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)))->nfgen_family = NFPROTO_IPV4;
    mnl_attr_put_strz(nlh, NFULA_PREFIX, "TRACE: nat:KUBE-NODEPORTS:rule:1 ");
    mnl_attr_put(nlh, NFULA_PAYLOAD, packet.size(), packet.data());
    nlh->nlmsg_len -= cut ? 3 : 2;  // the padding, and with cut the flags byte too
    return std::vector<uint8_t>(buf.begin(), buf.begin() + nlh->nlmsg_len);
  };
  for (bool cut : {false, true}) {
    int events = 0;
    parse_nflog_datagram(message(cut), 1, "natbpf_1", [](uint8_t, const std::string&, const std::string&) {
      return static_cast<const ChainInfo*>(nullptr);
    }, [&](NftTraceEvent&& ev) {
      events++;
      ASSERT_TRUE(ev.packet);
      EXPECT_EQ(ev.packet->tcp_flags, 0x02);
    });
    EXPECT_EQ(events, cut ? 0 : 1) << (cut ? "cut" : "whole");
  }

  // The same for ctnetlink's per-CPU counters.
  std::vector<uint8_t> buf(256);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  mnl_attr_put_u32(nlh, CTA_STATS_FOUND, htonl(3));
  mnl_attr_put_u32(nlh, CTA_STATS_INVALID, htonl(4));
  nlh->nlmsg_len -= 1;
  std::vector<uint8_t> ct(buf.begin(), buf.begin() + nlh->nlmsg_len);
  auto stats = parse_ct_stats_message(ct.data(), ct.size());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->found, 3u);
  EXPECT_FALSE(stats->invalid);

  // And for a conntrack entry whose reply tuple runs 1 byte past the message.
  std::vector<uint8_t> entry(512);
  nlh = mnl_nlmsg_put_header(entry.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  put_ct_tuples(nlh);
  for (uint32_t cut : {0u, 1u}) {
    std::vector<uint8_t> m(entry.begin(), entry.begin() + nlh->nlmsg_len - cut);
    reinterpret_cast<nlmsghdr*>(m.data())->nlmsg_len = static_cast<uint32_t>(m.size());
    EXPECT_EQ(parse_ct_message(reinterpret_cast<const nlmsghdr*>(m.data()), m.size()).has_value(), cut == 0)
        << "cut " << cut;
  }
}

TEST(UntrustedInput, CtnetlinkLengthLongerThanIntIsRejected) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  put_ct_tuples(nlh);
  size_t len = nlh->nlmsg_len;
  ASSERT_TRUE(parse_ct_message(nlh, len));
  nlh->nlmsg_len = kNegativeAsInt;  // claims more than the len bytes there are
  EXPECT_FALSE(parse_ct_message(nlh, len));
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  EXPECT_FALSE(parse_ct_stats_message(nlh, len));
}

// std::regex matches recursively: a 1 MB prefix (an NFLOG attribute of a
// damaged recording can carry one) overflowed the stack.
TEST(UntrustedInput, HugeTracePrefixIsNoTracePrefix) {
  EXPECT_TRUE(parse_trace_prefix("TRACE: nat:KUBE-NODEPORTS:rule:16 "));
  EXPECT_FALSE(parse_trace_prefix("TRACE: " + std::string(1 << 20, 'a') + ":b:rule:1 "));
}

// "priority 2147483647 + 1" overflowed an int (undefined behaviour).
TEST(UntrustedInput, ChainPriorityBeyondIntIsNoPriority) {
  EXPECT_EQ(parse_priority("2147483646 + 1", "ip"), 2147483647);
  EXPECT_FALSE(parse_priority("2147483647 + 1", "ip"));
  EXPECT_FALSE(parse_priority("-2147483648 - 1", "ip"));
  EXPECT_FALSE(parse_priority("srcnat - -2147483648", "ip"));
}

// nlohmann's get<uint32_t>() casts a float unchecked: an own_netns of
// 4e31 was undefined behaviour, not a malformed plan record.
TEST(UntrustedInput, RecordingFloatsWhereIntegersBelongAreMalformed) {
  std::string path = temp_path();
  std::ofstream(path) << "{\"record\":\"natbpf\",\"version\":1,\"command\":\"drops\"}\n"
                      << "{\"t\":\"plan\",\"summary\":\"\",\"hooks\":[],\"own_netns\":4.0e31}\n";
  auto reader = RecordingReader::open(path);
  ASSERT_TRUE(reader);
  EXPECT_FALSE(read_plan_record(*reader));

  // Durations stay floats; floats elsewhere, however deep, become null.
  std::ofstream(path) << "{\"record\":\"natbpf\",\"version\":1}\n"
                      << "{\"t\":\"end\",\"seconds\":2.5,\"lost\":1e300,\"a\":[{\"b\":[-1.5]}]}\n"
                      << "{\"t\":\"report\",\"seconds\":-1.0}\n";
  auto rec = read_recording(path);
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->records.size(), 2u);
  EXPECT_EQ(rec->records[0]["seconds"], 2.5);
  EXPECT_TRUE(rec->records[0]["lost"].is_null());
  EXPECT_TRUE(rec->records[0]["a"][0]["b"][0].is_null());
  EXPECT_TRUE(rec->records[1]["seconds"].is_null());
  unlink(path.c_str());
}

}  // namespace
}  // namespace natbpf
