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

TEST(Decode, DropExampleKeyFlags) {
  auto r = make<nb_drop_example>(NB_EV_DROP_EXAMPLE);
  r.key.location = 0xffffffff81000000ULL;
  r.key.reason = 12;
  r.key.hook = NB_HOOK_UNKNOWN;
  r.key.flags = NB_DROP_HAS_REASON | NB_DROP_HAS_CT | NB_DROP_CT_NAT;
  r.key.dport = 52000;
  r.has_ct = 1;
  auto ev = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(ev) << ev.error().message;
  const auto& e = std::get<DropExampleEvent>(*ev);
  EXPECT_EQ(e.key.reason, 12u);
  EXPECT_FALSE(e.key.hook);
  EXPECT_TRUE(e.key.has_ct && e.key.ct_nat && !e.key.ct_confirmed && !e.key.confirm_failed);
  EXPECT_TRUE(e.ct);
  r.key.flags = 0;  // no reason: absent, not 0
  r.key.hook = 1;
  auto again = decode_bpf_record(&r, sizeof(r));
  ASSERT_TRUE(again);
  const auto& bare = std::get<DropExampleEvent>(*again);
  EXPECT_FALSE(bare.key.reason);
  EXPECT_EQ(bare.key.hook, 1);
}

// A count snapshot: a header, then as many rows as it says; hdr.size must
// hold exactly those rows.
TEST(Decode, DropCountsRowsMustFitTheRecord) {
  std::vector<uint8_t> bytes(sizeof(nb_drop_counts) + 2 * sizeof(nb_drop_count_row));
  auto head = make<nb_drop_counts>(NB_EV_DROP_COUNTS);
  head.rows = 2;
  head.last = 1;
  head.seq = 7;
  head.examples_lost = 3;
  head.hdr.size = static_cast<uint16_t>(bytes.size());
  std::memcpy(bytes.data(), &head, sizeof(head));
  nb_drop_count_row row{};
  row.key.dport = 9999;
  row.count = 41;
  std::memcpy(bytes.data() + sizeof(head) + sizeof(row), &row, sizeof(row));
  auto ev = decode_bpf_record(bytes.data(), bytes.size());
  ASSERT_TRUE(ev) << ev.error().message;
  const auto& c = std::get<DropCountsEvent>(*ev);
  EXPECT_EQ(c.seq, 7u);
  EXPECT_TRUE(c.last);
  EXPECT_EQ(c.examples_lost, 3u);
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.rows[1].first.dport, 9999);
  EXPECT_EQ(c.rows[1].second, 41u);
  EXPECT_FALSE(decode_bpf_record(bytes.data(), bytes.size() - 1));  // truncated
  head.rows = 3;  // more rows than bytes
  std::memcpy(bytes.data(), &head, sizeof(head));
  EXPECT_FALSE(decode_bpf_record(bytes.data(), bytes.size()));
  head.rows = 2;
  head.hdr.size = sizeof(head);  // size says no rows
  std::memcpy(bytes.data(), &head, sizeof(head));
  EXPECT_FALSE(decode_bpf_record(bytes.data(), bytes.size()));
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
