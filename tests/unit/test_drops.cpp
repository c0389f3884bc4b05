// Drop attribution: causes from location, hook and conntrack state; ranking.
#include <gtest/gtest.h>

#include "explain/drops.h"

namespace natbpf {
namespace {

SkbDropEvent drop(uint64_t skb, uint64_t location, uint16_t dport, uint32_t netns) {
  SkbDropEvent d;
  d.skb = skb;
  d.location = location;
  d.reason = 12;
  d.pkt.family = 2;
  d.pkt.l4proto = 17;
  d.pkt.daddr = *Addr::parse("10.0.0.1");
  d.pkt.dport = dport;
  d.pkt.netns = netns;
  return d;
}

DropAggregator make() {
  return DropAggregator([](uint64_t a) { return a == 1 ? "nft_do_chain+0x3e8" : "nf_hook_slow+0x7d"; },
                        [](uint32_t) { return std::string("NETFILTER_DROP"); });
}

TEST(Drops, RanksCausesByCount) {
  auto agg = make();
  for (int i = 0; i < 3; i++) agg.add(BpfEvent{drop(100 + i, 1, 9999, 7)});
  agg.add(BpfEvent{drop(200, 2, 7777, 8)});
  agg.finish();
  auto r = agg.ranked();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].count, 3u);
  EXPECT_EQ(r[0].cause, "nftables rule or chain policy drop");
  EXPECT_EQ(r[0].flows.at("udp -> 10.0.0.1:9999"), 3u);
  EXPECT_EQ(r[1].cause, "iptables-legacy, conntrack or NAT hook returned NF_DROP");
  EXPECT_EQ(agg.total(), 4u);
}

TEST(Drops, ConfirmFailureAndHookJoinBySkb) {
  auto agg = make();
  auto d = drop(300, 2, 8080, 7);
  agg.add(BpfEvent{d});
  HookDropEvent h;
  h.skb = 300;
  h.hook = 4;
  agg.add(BpfEvent{h});
  CtConfirmEvent c;
  c.skb = 300;
  c.accepted = false;
  agg.add(BpfEvent{c});
  agg.finish();
  auto r = agg.ranked();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].cause, "conntrack insert failed at confirm (clash with an existing entry)");
  EXPECT_EQ(r[0].where, "nf_hook_slow at postrouting");
}

TEST(Drops, UnconfirmedNatedEntryPointsAtConfirm) {
  auto agg = make();
  auto d = drop(400, 2, 8080, 7);
  CtEntry ct;
  ct.status = ips::kSrcNat | ips::kSrcNatDone;  // not confirmed
  d.ct = ct;
  agg.add(BpfEvent{d});
  agg.finish();
  EXPECT_NE(agg.ranked()[0].cause.find("conntrack insert failed at confirm"), std::string::npos);
}

}  // namespace
}  // namespace natbpf
