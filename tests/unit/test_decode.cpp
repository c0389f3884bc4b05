// The ring-buffer record decoder: sizes, versions and field mapping.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "sources/decode.h"

extern "C" {
#include "natbpf_events.h"
}

namespace natbpf {
namespace {

template <typename Raw>
Raw make(uint16_t kind) {
  Raw r;
  std::memset(&r, 0, sizeof(r));
  r.hdr.kind = kind;
  r.hdr.version = NB_EVENT_VERSION;
  r.hdr.size = sizeof(Raw);
  r.hdr.origin = NB_ORIGIN_TP_BTF;
  r.hdr.cpu = 1;
  r.hdr.ts_ns = 123456789;
  return r;
}

void ipv4(uint8_t* dst, const char* text) { inet_pton(AF_INET, text, dst); }

nb_tuple tcp_tuple(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  nb_tuple t{};
  ipv4(t.src, s);
  ipv4(t.dst, d);
  t.sport = sp;
  t.dport = dp;
  t.l3num = 2;
  t.protonum = 6;
  return t;
}

TEST(Decode, SkbDropWithConntrack) {
  auto r = make<nb_skb_drop>(NB_EV_SKB_DROP);
  r.skb = 0xffff888001;
  r.location = 0xffffffff81abcdef;
  r.reason = 12;
  r.has_reason = 1;
  r.pkt.family = 2;
  r.pkt.l4proto = 6;
  r.pkt.tcp_flags = 0x02;
  r.pkt.sport = 40000;
  r.pkt.dport = 22;
  ipv4(r.pkt.saddr, "10.2.1.2");
  ipv4(r.pkt.daddr, "192.168.70.10");
  r.has_ct = 1;
  r.ct.orig = tcp_tuple("10.2.1.2", 40000, "10.1.2.3", 1222);
  r.ct.reply = tcp_tuple("192.168.70.10", 22, "10.2.1.2", 40000);
  r.ct.status = (1 << 5) | (1 << 8);
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  const auto& d = std::get<SkbDropEvent>(*ev);
  EXPECT_EQ(d.ts_ns, 123456789u);
  EXPECT_EQ(d.origin, Origin::TpBtf);
  EXPECT_EQ(d.reason, 12u);
  EXPECT_EQ(d.pkt.str(), "tcp 10.2.1.2:40000 -> 192.168.70.10:22 [S]");
  ASSERT_TRUE(d.ct.has_value());
  EXPECT_EQ(d.ct->orig.str(), "tcp 10.2.1.2:40000 -> 10.1.2.3:1222");
  EXPECT_EQ(status_names(d.ct->status), "DST_NAT|DST_NAT_DONE");
}

TEST(Decode, AbsentReasonAndConntrackStayAbsent) {
  auto r = make<nb_skb_drop>(NB_EV_SKB_DROP);
  r.reason = 0;
  r.has_reason = 0;
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev.ok());
  EXPECT_FALSE(std::get<SkbDropEvent>(*ev).reason.has_value());
  EXPECT_FALSE(std::get<SkbDropEvent>(*ev).ct.has_value());
}

TEST(Decode, ClashOutcome) {
  auto r = make<nb_ct_clash>(NB_EV_CT_CLASH);
  r.hdr.origin = NB_ORIGIN_FENTRY;
  r.loser.orig = tcp_tuple("127.0.0.1", 38486, "127.0.0.1", 8080);
  r.winner.orig = tcp_tuple("127.0.0.1", 38484, "127.0.0.1", 8080);
  r.ret = 0;
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev.ok());
  const auto& c = std::get<CtClashEvent>(*ev);
  EXPECT_FALSE(c.resolved);
  EXPECT_EQ(c.origin, Origin::Fentry);
  EXPECT_EQ(c.winner.orig.sport, 38484);
}

TEST(Decode, NatSetupRangeAndAttempts) {
  auto r = make<nb_nat_setup>(NB_EV_NAT_SETUP);
  r.before = tcp_tuple("127.0.0.1", 38486, "127.0.0.1", 8080);
  r.range.flags = (1 << 0) | (1 << 1) | (1 << 4);
  r.range.min_port = 40000;
  r.range.max_port = 40000;
  ipv4(r.range.min_addr, "127.0.0.1");
  ipv4(r.range.max_addr, "127.0.0.1");
  r.maniptype = 0;
  r.ret = 1;
  r.attempts = 1;
  r.taken = 1;
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev.ok());
  const auto& n = std::get<NatSetupEvent>(*ev);
  EXPECT_TRUE(n.snat);
  EXPECT_EQ(n.range.flags_str(), "random-fully");
  EXPECT_EQ(n.range.min_addr.str(), "127.0.0.1");
  EXPECT_EQ(n.taken, 1u);
}

TEST(Decode, RejectsTruncatedRecords) {
  auto r = make<nb_ct_confirm>(NB_EV_CT_CONFIRM);
  EXPECT_FALSE(decode_bpf_record(&r, sizeof(r) - 1).ok());
  EXPECT_FALSE(decode_bpf_record(&r, 8).ok());
}

TEST(Decode, RejectsWrongVersionKindSizeAndOrigin) {
  auto r = make<nb_hook_drop>(NB_EV_HOOK_DROP);
  ASSERT_TRUE(decode_bpf_record(&r, sizeof(r)).ok());
  auto bad = r;
  bad.hdr.version = NB_EVENT_VERSION + 1;
  EXPECT_FALSE(decode_bpf_record(&bad, sizeof(bad)).ok());
  bad = r;
  bad.hdr.kind = 99;
  EXPECT_FALSE(decode_bpf_record(&bad, sizeof(bad)).ok());
  bad = r;
  bad.hdr.size = sizeof(r) + 8;
  EXPECT_FALSE(decode_bpf_record(&bad, sizeof(bad)).ok());
  bad = r;
  bad.hdr.origin = 77;
  EXPECT_FALSE(decode_bpf_record(&bad, sizeof(bad)).ok());
}

TEST(Decode, HookDropFields) {
  auto r = make<nb_hook_drop>(NB_EV_HOOK_DROP);
  r.hdr.origin = NB_ORIGIN_KPROBE;
  r.ret = -1;
  r.hook = 2;
  r.pf = 2;
  r.out_ifindex = 7;
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev.ok());
  const auto& h = std::get<HookDropEvent>(*ev);
  EXPECT_EQ(h.ret, -1);
  EXPECT_EQ(h.hook, 2);
  EXPECT_EQ(h.out_ifindex, 7u);
  EXPECT_EQ(h.origin, Origin::Kprobe);
}

TEST(Events, Ipv6AndParse) {
  auto a = Addr::parse("fd00::1");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->family, 10);
  Tuple t{*a, *Addr::parse("fd00::2"), 1, 53, 17};
  EXPECT_EQ(t.str(), "udp [fd00::1]:1 -> [fd00::2]:53");
  EXPECT_FALSE(Addr::parse("10.1.2.300").has_value());
}

}  // namespace
}  // namespace natbpf
