// The packet headers an nftables trace message carries, decoded into a
// Packet: messages are built with libmnl (nftrace_builders.h) and parsed back.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <sys/socket.h>

#include <vector>

#include "nftrace_builders.h"
#include "sources/nftrace.h"

namespace natbpf {
namespace {

TEST(Nftrace, Ipv4TcpSynIsDecoded) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be64(NFTA_TRACE_RULE_HANDLE, 7).verdict(NF_DROP);
  m.be32(NFTA_TRACE_IIF, 4).be16(NFTA_TRACE_IIFTYPE, 1);
  m.raw(NFTA_TRACE_LL_HEADER, std::vector<uint8_t>(14, 0xaa));
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(IPPROTO_TCP, "10.2.1.2", "10.1.2.3", 60, 0x4d2));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, tcp_header(40000, 1222, 0xdeadbeef, 0x02));
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->ll_header.size(), 14u);
  EXPECT_EQ(ev->network_header.size(), 20u);
  EXPECT_EQ(ev->transport_header.size(), 20u);
  EXPECT_EQ(ev->iif, 4u);
  EXPECT_EQ(ev->iiftype, 1);
  ASSERT_TRUE(ev->packet);
  const Packet& p = *ev->packet;
  EXPECT_EQ(p.family, AF_INET);
  EXPECT_EQ(p.l4proto, IPPROTO_TCP);
  EXPECT_EQ(p.saddr, *Addr::parse("10.2.1.2"));
  EXPECT_EQ(p.daddr, *Addr::parse("10.1.2.3"));
  EXPECT_EQ(p.sport, 40000);
  EXPECT_EQ(p.dport, 1222);
  EXPECT_EQ(p.tcp_flags, 0x02);
  EXPECT_EQ(p.tcp_seq, 0xdeadbeefu);
  EXPECT_EQ(p.ip_id, 0x4d2);
  EXPECT_EQ(p.len, 60u);
  EXPECT_EQ(p.ifindex, 4u);
  EXPECT_EQ(p.str(), "tcp 10.2.1.2:40000 -> 10.1.2.3:1222 [S]");
  EXPECT_EQ(format_nftrace_line(*ev),
            "trace id 1a2b3c4d inet filter allowed_dnats rule handle 7 verdict drop iif 4 packet: "
            "tcp 10.2.1.2:40000 -> 10.1.2.3:1222 [S]");
}

TEST(Nftrace, ShortTransportHeaderDecodesWhatIsThere) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE);
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(IPPROTO_TCP, "10.2.1.2", "10.1.2.3", 60, 1));
  auto th = tcp_header(40000, 1222, 5, 0x12);
  th.resize(6);
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, th);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  ASSERT_TRUE(ev->packet);
  EXPECT_EQ(ev->packet->sport, 40000);
  EXPECT_EQ(ev->packet->dport, 1222);
  EXPECT_EQ(ev->packet->tcp_seq, 0u);
  EXPECT_EQ(ev->packet->tcp_flags, 0);
}

TEST(Nftrace, Ipv4FragmentHasNoPorts) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE);
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(IPPROTO_UDP, "10.2.1.2", "10.1.2.3", 1500, 9, 0x00b9));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, udp_header(1111, 2222, 100));
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  ASSERT_TRUE(ev->packet);
  EXPECT_EQ(ev->packet->l4proto, IPPROTO_UDP);
  EXPECT_EQ(ev->packet->sport, 0);
  EXPECT_EQ(ev->packet->dport, 0);
}

TEST(Nftrace, Ipv6UdpIsDecoded) {
  TraceMsg m(NFPROTO_IPV6);
  m.basics(NFT_TRACETYPE_RULE).verdict(NF_ACCEPT).be32(NFTA_TRACE_OIF, 2);
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv6_header(IPPROTO_UDP, "2001:db8::1", "2001:db8::2", 20));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, udp_header(5353, 53, 20));
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  ASSERT_TRUE(ev->packet);
  const Packet& p = *ev->packet;
  EXPECT_EQ(p.family, AF_INET6);
  EXPECT_EQ(p.l4proto, IPPROTO_UDP);
  EXPECT_EQ(p.saddr, *Addr::parse("2001:db8::1"));
  EXPECT_EQ(p.daddr, *Addr::parse("2001:db8::2"));
  EXPECT_EQ(p.sport, 5353);
  EXPECT_EQ(p.dport, 53);
  EXPECT_EQ(p.len, 60u);
  EXPECT_EQ(p.ifindex, 2u);
  EXPECT_EQ(p.str(), "udp [2001:db8::1]:5353 -> [2001:db8::2]:53");
}

TEST(Nftrace, IcmpAndUndecodableHeaders) {
  {
    TraceMsg m;
    m.basics(NFT_TRACETYPE_RULE);
    m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(IPPROTO_ICMP, "127.0.0.1", "127.0.0.1", 84, 7));
    m.raw(NFTA_TRACE_TRANSPORT_HEADER, {8, 0, 0, 0, 0, 1, 0, 1});
    auto ev = m.parse();
    ASSERT_TRUE(ev) << ev.error().to_string();
    ASSERT_TRUE(ev->packet);
    EXPECT_EQ(ev->packet->l4proto, IPPROTO_ICMP);
    EXPECT_EQ(ev->packet->sport, 0);
    EXPECT_EQ(ev->packet->str(), "icmp 127.0.0.1 -> 127.0.0.1");
  }
  {
    TraceMsg m;  // an ARP header in a bridge table: kept raw, not decoded
    m.basics(NFT_TRACETYPE_RULE);
    m.raw(NFTA_TRACE_NETWORK_HEADER, {0, 1, 8, 0, 6, 4, 0, 1});
    auto ev = m.parse();
    ASSERT_TRUE(ev) << ev.error().to_string();
    EXPECT_FALSE(ev->packet);
    EXPECT_EQ(ev->network_header.size(), 8u);
  }
  {
    TraceMsg m;  // IPv4 header shorter than 20 bytes
    m.basics(NFT_TRACETYPE_RULE);
    auto nh = ipv4_header(IPPROTO_TCP, "10.0.0.1", "10.0.0.2", 40, 1);
    nh.resize(12);
    m.raw(NFTA_TRACE_NETWORK_HEADER, nh);
    auto ev = m.parse();
    ASSERT_TRUE(ev) << ev.error().to_string();
    EXPECT_FALSE(ev->packet);
  }
}

}  // namespace
}  // namespace natbpf
