// Saved `nft monitor trace` text: the published example of the Fedora
// Magazine article (seed 001), real nftables 1.0.6 output captured by
// fixtures/capture_nft_monitor_trace.sh, the conntrack lines of nftables
// 1.1.4+ (its tests/shell/testcases/trace/0001simple) and damaged lines.
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
// After netinet/in.h, which linux/in.h then defers to.
#include <linux/netfilter.h>

#include <fstream>
#include <string>
#include <vector>

#include "sources/nft_monitor_text.h"

namespace natbpf {
namespace {

using Parsed = NftMonitorTextParser::Parsed;

std::vector<Parsed> feed_all(NftMonitorTextParser& parser, const std::vector<std::string>& lines) {
  std::vector<Parsed> out;
  for (const std::string& line : lines)
    if (auto ev = parser.feed(line)) out.push_back(std::move(*ev));
  return out;
}

std::vector<std::string> fixture_lines(const std::string& name) {
  std::ifstream in(std::string(NATBPF_FIXTURES) + "/" + name);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Addr ip(const std::string& text) { return *Addr::parse(text); }

// The events of one trace id, in order.
std::vector<Parsed> of_id(const std::vector<Parsed>& events, uint32_t id) {
  std::vector<Parsed> out;
  for (const Parsed& p : events)
    if (p.ev.id == id) out.push_back(p);
  return out;
}

TEST(NftMonitorText, PublishedExample) {
  NftMonitorTextParser parser;
  auto events = feed_all(
      parser,
      {
          R"(trace id 9c01f8 inet trace_debug trace_pre packet: iif "enp0" ether saddr .. ip saddr 10.2.1.2 ip daddr 10.1.2.3 ip protocol tcp tcp dport 1222 tcp flags == syn)",
          "trace id 9c01f8 inet trace_debug trace_pre rule ip daddr 10.2.1.2 tcp dport 1222 tcp flags syn "
          "limit rate 6/minute meta nftrace set 1 (verdict continue)",
          "trace id 9c01f8 inet trace_debug trace_pre verdict continue",
          "trace id 9c01f8 inet trace_debug trace_pre policy accept",
          R"(trace id 9c01f8 inet nat prerouting packet: iif "enp0" ether saddr .. ip saddr 10.2.1.2 ip daddr 10.1.2.3 ip protocol tcp  tcp dport 1222 tcp flags == syn)",
          "trace id 9c01f8 inet nat prerouting rule ip daddr 10.1.2.3  tcp dport 1222 dnat ip to "
          "192.168.70.10:22 (verdict accept)",
          R"(trace id 9c01f8 inet filter forward packet: iif "enp0" oif "veth21" ether saddr .. ip daddr 192.168.70.10 .. tcp dport 22 tcp flags == syn tcp window 29200)",
          "trace id 9c01f8 inet filter forward rule ct status dnat jump allowed_dnats (verdict jump "
          "allowed_dnats)",
          "trace id 9c01f8 inet filter allowed_dnats rule drop (verdict drop)",
          R"(trace id 20a4ef inet trace_debug trace_pre packet: iif "enp0" ether saddr .. ip saddr 10.2.1.2 ip daddr 10.1.2.3 ip protocol tcp tcp dport 1222 tcp flags == syn)",
          "trace id 497abf58 inet filter allowed_dnats rule meta nfproto ipv4 ip daddr . tcp dport @allow_in "
          "accept (verdict accept)",
          // Two lines run together in the article: the table is missing.
          R"(trace id 497abf58 ip postrouting packet: iif "enp0" oif "veth21" ether .. trace id 497abf58 ip postrouting policy accept)",
      });
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(parser.malformed(), 1u);
  EXPECT_EQ(parser.lines(), 12u);

  const Parsed& first = events[0];
  EXPECT_EQ(first.line, 2u);
  EXPECT_EQ(first.ev.id, 0x9c01f8u);
  EXPECT_EQ(first.ev.family, NFPROTO_INET);
  EXPECT_EQ(first.ev.table, "trace_debug");
  EXPECT_EQ(first.ev.chain, "trace_pre");
  EXPECT_EQ(first.ev.type, NftTraceType::Rule);
  EXPECT_EQ(first.ev.rule_text,
            "ip daddr 10.2.1.2 tcp dport 1222 tcp flags syn limit rate 6/minute meta nftrace set 1");
  EXPECT_FALSE(first.ev.rule_handle);
  EXPECT_EQ(first.ev.verdict, NftVerdict::Continue);
  EXPECT_EQ(first.ev.origin, Origin::Nftrace);
  EXPECT_EQ(first.iif_name, "enp0");
  EXPECT_EQ(first.oif_name, "");
  EXPECT_FALSE(first.ev.iif);
  ASSERT_TRUE(first.ev.packet);
  EXPECT_EQ(first.ev.packet->family, NFPROTO_IPV4);
  EXPECT_EQ(first.ev.packet->saddr, ip("10.2.1.2"));
  EXPECT_EQ(first.ev.packet->daddr, ip("10.1.2.3"));
  EXPECT_EQ(first.ev.packet->l4proto, IPPROTO_TCP);
  EXPECT_EQ(first.ev.packet->dport, 1222);
  EXPECT_EQ(first.ev.packet->tcp_flags, 0x02);
  EXPECT_EQ(first.ev.nfproto, uint32_t(NFPROTO_IPV4));

  // The chain's end and policy: the packet was given to the first event only.
  EXPECT_EQ(events[1].ev.type, NftTraceType::Return);
  EXPECT_EQ(events[1].ev.verdict, NftVerdict::Continue);
  EXPECT_FALSE(events[1].ev.packet);
  EXPECT_EQ(events[2].ev.type, NftTraceType::Policy);
  EXPECT_EQ(events[2].ev.policy, uint32_t(NF_ACCEPT));
  EXPECT_FALSE(events[2].ev.verdict);
  EXPECT_EQ(events[2].ev.effective_verdict(), NftVerdict::Accept);

  EXPECT_EQ(events[3].ev.rule_text, "ip daddr 10.1.2.3  tcp dport 1222 dnat ip to 192.168.70.10:22");
  EXPECT_EQ(events[3].ev.verdict, NftVerdict::Accept);

  // After DNAT: the ".." the article left out are skipped.
  const Parsed& jump = events[4];
  EXPECT_EQ(jump.ev.verdict, NftVerdict::Jump);
  EXPECT_EQ(jump.ev.jump_target, "allowed_dnats");
  EXPECT_EQ(jump.oif_name, "veth21");
  ASSERT_TRUE(jump.ev.packet);
  EXPECT_EQ(jump.ev.packet->daddr, ip("192.168.70.10"));
  EXPECT_EQ(jump.ev.packet->saddr.family, 0);
  EXPECT_EQ(jump.ev.packet->dport, 22);

  EXPECT_EQ(events[5].ev.chain, "allowed_dnats");
  EXPECT_EQ(events[5].ev.rule_text, "drop");
  EXPECT_EQ(events[5].ev.verdict, NftVerdict::Drop);
  EXPECT_FALSE(events[5].ev.packet);

  EXPECT_EQ(events[6].ev.id, 0x497abf58u);
  EXPECT_FALSE(events[6].ev.packet);  // 20a4ef's packet stays with 20a4ef
}

// The DNAT-then-drop capture (the ruleset is fixtures/nft_monitor_trace.ruleset.txt).
TEST(NftMonitorText, CapturedDnatDropAndAccept) {
  NftMonitorTextParser parser;
  auto lines = fixture_lines("nft_monitor_trace.txt");
  ASSERT_EQ(lines.size(), 42u);
  auto events = feed_all(parser, lines);
  EXPECT_EQ(parser.malformed(), 0u);
  ASSERT_EQ(events.size(), 42u - 13u);  // all but the packet lines

  // Dropped in the jumped-to chain: 10.1.2.3:1222, DNATed to 192.168.70.10:22.
  auto dropped = of_id(events, 0xb45cf366);
  ASSERT_EQ(dropped.size(), 7u);
  EXPECT_EQ(dropped[0].ev.rule_text, "ip daddr 10.1.2.3 tcp flags syn meta nftrace set 1");
  ASSERT_TRUE(dropped[0].ev.packet);
  const Packet& before = *dropped[0].ev.packet;
  EXPECT_EQ(before.saddr, ip("10.2.1.2"));
  EXPECT_EQ(before.daddr, ip("10.1.2.3"));
  EXPECT_EQ(before.sport, 44802);
  EXPECT_EQ(before.dport, 1222);
  EXPECT_EQ(before.ip_id, 15384);
  EXPECT_EQ(before.len, 60u);
  EXPECT_EQ(before.tcp_flags, 0x02);
  EXPECT_EQ(dropped[0].iif_name, "nbr0");
  EXPECT_EQ(dropped[1].ev.type, NftTraceType::Policy);
  EXPECT_EQ(dropped[2].ev.table, "nat");
  EXPECT_EQ(dropped[2].ev.rule_text, "ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22");
  EXPECT_EQ(dropped[2].ev.verdict, NftVerdict::Accept);
  EXPECT_EQ(dropped[3].ev.chain, "forward");
  EXPECT_EQ(dropped[3].ev.jump_target, "mark_it");
  ASSERT_TRUE(dropped[3].ev.packet);
  EXPECT_EQ(dropped[3].ev.packet->daddr, ip("192.168.70.10"));
  EXPECT_EQ(dropped[3].ev.packet->dport, 22);
  EXPECT_EQ(dropped[3].oif_name, "nbr1");
  EXPECT_EQ(dropped[4].ev.rule_text, "meta mark set 0x00000042");
  EXPECT_EQ(dropped[5].ev.jump_target, "allowed_dnats");
  EXPECT_EQ(dropped[6].ev.chain, "allowed_dnats");
  EXPECT_EQ(dropped[6].ev.rule_text, "counter packets 0 bytes 0 drop");
  EXPECT_EQ(dropped[6].ev.verdict, NftVerdict::Drop);
  EXPECT_EQ(dropped[6].line, 10u);

  // Its retransmission is another trace id with the same story.
  EXPECT_EQ(of_id(events, 0x52a55ac1).back().ev.verdict, NftVerdict::Drop);

  // Accepted: 1223 -> 8080 is in @allow_in, then masqueraded.
  auto accepted = of_id(events, 0xe701109e);
  ASSERT_EQ(accepted.size(), 8u);
  EXPECT_EQ(accepted[6].ev.rule_text,
            R"x(ip daddr . tcp dport @allow_in accept comment "allowed (services)")x");
  EXPECT_EQ(accepted[6].ev.verdict, NftVerdict::Accept);
  EXPECT_EQ(accepted[7].ev.chain, "postrouting");
  ASSERT_TRUE(accepted[7].ev.packet);
  EXPECT_EQ(accepted[7].ev.packet->dport, 8080);

  // Not DNATed: mark_it returns and the forward policy drops, with the mark.
  auto policy = of_id(events, 0x84958053);
  ASSERT_EQ(policy.size(), 7u);
  EXPECT_EQ(policy[2].ev.type, NftTraceType::Policy);  // nat prerouting: no rule matched
  ASSERT_TRUE(policy[2].ev.packet);
  EXPECT_EQ(policy[5].ev.verdict, NftVerdict::Return);
  EXPECT_EQ(policy[6].ev.policy, uint32_t(NF_DROP));
  EXPECT_EQ(policy[6].ev.effective_verdict(), NftVerdict::Drop);
  EXPECT_EQ(policy[6].ev.mark, 0x42u);
}

// `nft -a monitor trace` of the same packets: the same events with handles.
TEST(NftMonitorText, CapturedWithHandles) {
  NftMonitorTextParser plain_parser, handle_parser;
  auto plain = feed_all(plain_parser, fixture_lines("nft_monitor_trace.txt"));
  auto handles = feed_all(handle_parser, fixture_lines("nft_monitor_trace_handles.txt"));
  EXPECT_EQ(handle_parser.malformed(), 0u);
  ASSERT_EQ(handles.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(handles[i].ev.rule_text, plain[i].ev.rule_text) << "event " << i;
    EXPECT_EQ(handles[i].ev.verdict, plain[i].ev.verdict) << "event " << i;
    EXPECT_EQ(handles[i].ev.type == NftTraceType::Rule, handles[i].ev.rule_handle.has_value())
        << "event " << i;
  }
  auto dropped = of_id(handles, 0xb45cf366);
  EXPECT_EQ(dropped[0].ev.rule_handle, 2u);
  EXPECT_EQ(dropped[6].ev.rule_handle, 11u);  // "counter ... drop # handle 11" in the ruleset
  EXPECT_EQ(of_id(handles, 0xe701109e)[6].ev.rule_handle, 10u);
}

TEST(NftMonitorText, CapturedOtherForms) {
  NftMonitorTextParser parser;
  auto lines = fixture_lines("nft_monitor_trace_forms.txt");
  auto events = feed_all(parser, lines);
  EXPECT_EQ(parser.malformed(), 0u);
  EXPECT_EQ(events.size(), lines.size() - 28u);

  auto echo = of_id(events, 0x8353b62d);  // ip family: jump and return
  ASSERT_EQ(echo.size(), 4u);
  EXPECT_EQ(echo[0].ev.family, NFPROTO_IPV4);
  ASSERT_TRUE(echo[0].ev.packet);
  EXPECT_EQ(echo[0].ev.packet->l4proto, IPPROTO_ICMP);
  EXPECT_EQ(echo[0].ev.packet->daddr, ip("10.9.0.2"));
  EXPECT_EQ(echo[0].oif_name, "nbfv");
  EXPECT_EQ(echo[2].ev.chain, "j4");
  EXPECT_EQ(echo[2].ev.rule_text, "return");
  EXPECT_EQ(echo[2].ev.verdict, NftVerdict::Return);

  auto udp = of_id(events, 0x24b98612);  // goto, and a policy with the mark set
  ASSERT_EQ(udp.size(), 4u);
  EXPECT_EQ(udp[0].ev.packet->l4proto, IPPROTO_UDP);
  EXPECT_EQ(udp[0].ev.packet->dport, 5353);
  EXPECT_EQ(udp[1].ev.verdict, NftVerdict::Goto);
  EXPECT_EQ(udp[1].ev.jump_target, "g4");
  EXPECT_EQ(udp[3].ev.mark, 7u);

  auto arp = of_id(events, 0x522751f8);  // no IP header: names, no packet
  EXPECT_EQ(arp[0].ev.family, NFPROTO_ARP);
  EXPECT_FALSE(arp[0].ev.packet);
  EXPECT_EQ(arp[0].iif_name, "nbfv");

  auto added = of_id(events, 0x22e98cc5);  // a rule newer than nft's cache
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[1].ev.type, NftTraceType::Rule);
  EXPECT_EQ(added[1].ev.rule_handle, 13u);
  EXPECT_EQ(added[1].ev.rule_text, "");
  EXPECT_EQ(added[1].ev.verdict, NftVerdict::Continue);

  // ip6 reject: the RST it sends is traced in between (another id).
  auto syn = of_id(events, 0x2bc3b6ed);
  ASSERT_EQ(syn.size(), 2u);
  ASSERT_TRUE(syn[0].ev.packet);
  EXPECT_EQ(syn[0].ev.packet->family, NFPROTO_IPV6);
  EXPECT_EQ(syn[0].ev.packet->saddr, ip("fd00::1"));
  EXPECT_EQ(syn[0].ev.packet->l4proto, IPPROTO_TCP);
  EXPECT_EQ(syn[0].ev.packet->dport, 7);
  EXPECT_EQ(syn[0].ev.packet->len, 80u);
  EXPECT_EQ(syn[1].ev.rule_text, "tcp dport 7 reject with tcp reset");
  EXPECT_EQ(syn[1].ev.verdict, NftVerdict::Drop);
  EXPECT_FALSE(syn[1].ev.packet);
  auto rst = of_id(events, 0x0c90f02b);
  ASSERT_TRUE(rst[0].ev.packet);
  EXPECT_EQ(rst[0].ev.packet->tcp_flags, 0x14);  // "tcp flags == 0x14": rst|ack
  EXPECT_EQ(rst[0].oif_name, "lo");

  // One packet in a netdev and then a bridge table, both under one id.
  auto bridged = of_id(events, 0x239c23fb);
  ASSERT_EQ(bridged.size(), 4u);
  EXPECT_EQ(bridged[0].ev.family, NFPROTO_NETDEV);
  EXPECT_EQ(bridged[2].ev.family, NFPROTO_BRIDGE);
  ASSERT_TRUE(bridged[2].ev.packet);
  EXPECT_EQ(bridged[2].ev.packet->l4proto, IPPROTO_ICMP);
  EXPECT_FALSE(bridged[2].ev.nfproto);
}

// nftables 1.1.4+ prints a "conntrack:" line before the packet line.
TEST(NftMonitorText, ConntrackLines) {
  NftMonitorTextParser parser;
  auto events = feed_all(
      parser,
      {
          "trace id 32 inet t pre conntrack: ct direction original ct state new ct id 2641368242 ",
          R"(trace id 32 inet t pre packet: iif "eth0" ip saddr 10.23.42.2 ip daddr 10.23.42.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 7 ip protocol icmp ip length 84 icmp type echo-request icmp code 0 icmp id 0 icmp sequence 1 )",
          "trace id 32 inet t pre rule icmp type { echo-reply, echo-request } meta mark set 0x00000042 ct "
          "state established,new meta nftrace set 1 (verdict continue)",
          "trace id 32 inet t pre policy accept meta mark 0x00000042 ",
          "trace id 33 inet t output conntrack: ct direction reply ct state established ct status "
          "seen-reply,confirmed,dnat-done ct id 5 ",
          R"(trace id 33 inet t output packet: oif "eth0" ip saddr 10.23.42.1 ip daddr 10.23.42.2 ip protocol icmp ip length 84 icmp type echo-reply )",
          "trace id 33 inet t output rule icmp type echo-reply meta nftrace set 1 (verdict continue)",
      });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(parser.malformed(), 0u);
  EXPECT_EQ(events[0].ev.ct_direction, 0);
  EXPECT_EQ(events[0].ev.ct_state, 8u);  // NF_CT_STATE_BIT(IP_CT_NEW)
  EXPECT_EQ(events[0].ev.ct_id, 2641368242u);
  EXPECT_FALSE(events[0].ev.ct_status);
  EXPECT_EQ(events[0].ev.packet->ip_id, 7);
  EXPECT_FALSE(events[1].ev.ct_state);  // given to the first event only
  EXPECT_EQ(events[1].ev.mark, 0x42u);
  EXPECT_EQ(events[2].ev.ct_direction, 1);
  EXPECT_EQ(events[2].ev.ct_state, 2u);
  EXPECT_EQ(events[2].ev.ct_status, ips::kSeenReply | ips::kConfirmed | ips::kDstNatDone);
  EXPECT_EQ(events[2].ev.ct_id, 5u);
}

TEST(NftMonitorText, HandlesCommentsAndPrefixes) {
  NftMonitorTextParser parser;
  auto events = feed_all(
      parser,
      {
          R"(trace id 0000000a ip filter input rule tcp dport 1 accept comment "x (verdict drop) # handle 9" # handle 4 (verdict accept))",
          "Nov 25 21:58:01 host nft[812]: trace id 0000000b ip6 filter input policy drop",
          "2024-01-01T00:00:00.123456 trace id 0000000c bridge filter forward rule drop # handle 12 (verdict "
          "drop)\r",
          "trace id 0000000d ip filter input unknown rule handle 77 (verdict jump other)",
      });
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(parser.malformed(), 0u);
  EXPECT_EQ(events[0].ev.rule_text, R"(tcp dport 1 accept comment "x (verdict drop) # handle 9")");
  EXPECT_EQ(events[0].ev.rule_handle, 4u);
  EXPECT_EQ(events[0].ev.verdict, NftVerdict::Accept);
  EXPECT_EQ(events[0].prefix, "");
  EXPECT_EQ(events[1].prefix, "Nov 25 21:58:01 host nft[812]:");
  EXPECT_EQ(events[1].ev.family, NFPROTO_IPV6);
  EXPECT_EQ(events[1].ev.policy, uint32_t(NF_DROP));
  EXPECT_EQ(events[2].prefix, "2024-01-01T00:00:00.123456");
  EXPECT_EQ(events[2].ev.rule_text, "drop");
  EXPECT_EQ(events[2].ev.rule_handle, 12u);
  EXPECT_EQ(events[3].ev.rule_handle, 77u);
  EXPECT_EQ(events[3].ev.jump_target, "other");
  EXPECT_EQ(events[3].line, 4u);
}

TEST(NftMonitorText, UnknownVerdicts) {
  NftMonitorTextParser parser;
  auto events =
      feed_all(parser, {
                           "trace id 1 inet t c rule meta nftrace set 1 (verdict frobnicate)",
                           "trace id 1 inet t c rule meta nftrace set 1 (verdict unknown verdict value 4)",
                           "trace id 1 inet t c verdict unknown verdict value 5 meta mark 0x00000001",
                           "trace id 1 inet t c rule queue (verdict queue)",
                           "trace id 1 inet t c rule x (verdict stolen)",
                           "trace id 1 inet t c verdict return",
                       });
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(parser.malformed(), 0u);
  EXPECT_EQ(events[0].ev.verdict, NftVerdict::Unknown);
  EXPECT_FALSE(events[0].ev.verdict_code);
  EXPECT_EQ(events[1].ev.verdict, NftVerdict::Repeat);
  EXPECT_EQ(events[1].ev.verdict_code, 4);
  EXPECT_EQ(events[2].ev.type, NftTraceType::Return);
  EXPECT_EQ(events[2].ev.verdict, NftVerdict::Stop);
  EXPECT_EQ(events[2].ev.mark, 1u);
  EXPECT_EQ(events[3].ev.verdict, NftVerdict::Queue);
  EXPECT_EQ(events[4].ev.verdict, NftVerdict::Stolen);
  EXPECT_EQ(events[5].ev.verdict, NftVerdict::Return);
}

TEST(NftMonitorText, MalformedLinesAreCounted) {
  NftMonitorTextParser parser;
  auto events = feed_all(parser, {
                                     "",
                                     "Jan  1 21:23:16 cos74 kernel: TRACE: raw:PREROUTING:rule:1 IN=eth0",
                                     "Error: Could not process rule: No such file or directory",
                                     "trace id zz inet t c policy accept",
                                     "trace id 123456789 inet t c policy accept",
                                     "trace id 0x12 inet t c policy accept",
                                     "trace id 12 inetx t c policy accept",
                                     "trace id 12",
                                     "trace id 12 inet t c",
                                     "trace id 12 inet t c rule drop",
                                     "trace id 12 inet t c rule drop (verdict dr",
                                     "trace id 12 inet t c rule drop (verdict )",
                                     "trace id 12 inet t c policy continue",
                                     "trace id 12 inet t c policy",
                                     "trace id 12 inet t c verdict",
                                     "trace id 12 inet t c something else",
                                     "trace id 12 inet t c unknown rule handle x (verdict drop)",
                                 });
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(parser.malformed(), 14u);
  EXPECT_EQ(parser.lines(), 17u);
}

// A log cut mid-line keeps what was whole; a cut rule line is malformed and
// the packet then goes to the id's next event.
TEST(NftMonitorText, TruncatedLines) {
  NftMonitorTextParser parser;
  auto events = feed_all(
      parser,
      {
          R"(trace id 5 ip raw pre packet: iif "eth0" ip saddr 10.0.0.1 ip daddr 10.0.0.2 ip protocol udp ip length 40 udp sport 53 udp dp)",
          "trace id 5 ip raw pre rule udp sport 53 meta nftrace set 1 (verd",
          "trace id 5 ip raw pre policy accept",
          R"(trace id 6 ip raw pre packet: iif "eth)",
          "trace id 6 ip raw pre policy drop",
          R"(trace id 7 ip6 raw pre packet: ip6 saddr fd00::1 ip6 daddr fd00:)",
          "trace id 7 ip6 raw pre policy drop",
      });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(parser.malformed(), 1u);
  ASSERT_TRUE(events[0].ev.packet);
  EXPECT_EQ(events[0].ev.packet->sport, 53);
  EXPECT_EQ(events[0].ev.packet->dport, 0);
  EXPECT_EQ(events[0].ev.packet->l4proto, IPPROTO_UDP);
  EXPECT_EQ(events[0].iif_name, "eth0");
  EXPECT_EQ(events[1].iif_name, "");  // a name without its closing quote
  EXPECT_FALSE(events[1].ev.packet);
  ASSERT_TRUE(events[2].ev.packet);
  EXPECT_EQ(events[2].ev.packet->saddr, ip("fd00::1"));
  EXPECT_EQ(events[2].ev.packet->daddr.family, 0);
}

TEST(NftMonitorText, InterfaceIndexesAndServiceNames) {
  NftMonitorTextParser parser;
  auto events = feed_all(
      parser,
      {
          R"(trace id 8 ip t out packet: iif 7 oif 9 ip saddr 10.9.0.1 ip daddr 10.9.0.2 tcp sport 40000 tcp dport "ssh" tcp flags == syn | ack tcp ackseq 99 tcp sequence 5)",
          "trace id 8 ip t out policy accept",
      });
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ev.iif, 7u);
  EXPECT_EQ(events[0].ev.oif, 9u);
  ASSERT_TRUE(events[0].ev.packet);
  const Packet& p = *events[0].ev.packet;
  EXPECT_EQ(p.ifindex, 7u);
  EXPECT_EQ(p.l4proto, IPPROTO_TCP);
  EXPECT_EQ(p.tcp_flags, 0x12);
  EXPECT_EQ(p.tcp_ack, 99u);
  EXPECT_EQ(p.tcp_seq, 5u);
  EXPECT_EQ(p.sport, 40000);
  if (!getservbyname("ssh", "tcp")) GTEST_SKIP() << "no ssh in /etc/services";
  EXPECT_EQ(p.dport, 22);
}

TEST(NftMonitorText, PendingPacketsAreBounded) {
  NftMonitorTextParser parser;
  const size_t extra = 10;
  for (uint32_t id = 1; id <= NftMonitorTextParser::kMaxPending + extra; ++id) {
    char line[128];
    std::snprintf(line, sizeof(line), "trace id %08x ip t c packet: ip saddr 10.0.0.1 ip daddr 10.0.0.2", id);
    EXPECT_FALSE(parser.feed(line));
  }
  EXPECT_EQ(parser.evicted(), extra);
  auto oldest = parser.feed("trace id 00000001 ip t c policy accept");
  ASSERT_TRUE(oldest);
  EXPECT_FALSE(oldest->ev.packet);
  char newest[64];
  std::snprintf(newest, sizeof(newest), "trace id %08zx ip t c policy accept",
                NftMonitorTextParser::kMaxPending + extra);
  auto last = parser.feed(newest);
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->ev.packet);
  EXPECT_EQ(parser.malformed(), 0u);
}

TEST(NftMonitorText, LooksLike) {
  EXPECT_TRUE(NftMonitorTextParser::looks_like("trace id 9c01f8 inet trace_debug trace_pre policy accept"));
  EXPECT_TRUE(NftMonitorTextParser::looks_like(
      "Nov 25 21:58:01 h nft[1]: trace id 0000000b ip6 filter input policy drop"));
  EXPECT_FALSE(
      NftMonitorTextParser::looks_like("Jan  1 21:23:16 cos74 kernel: TRACE: raw:PREROUTING:rule:1 IN=eth0"));
  EXPECT_FALSE(NftMonitorTextParser::looks_like("trace id of the packet"));
  EXPECT_FALSE(NftMonitorTextParser::looks_like("trace id 12 nope t c policy accept"));
  EXPECT_FALSE(NftMonitorTextParser::looks_like(""));
}

}  // namespace
}  // namespace natbpf
