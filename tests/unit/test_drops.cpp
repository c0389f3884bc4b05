// Drop attribution: causes from location, hook and conntrack state; ranking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "explain/drop_rules.h"
#include "explain/drops.h"
#include "fake_world.h"

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

namespace natbpf {
namespace {

// Seed 003 on a node with kube-proxy in iptables-legacy mode: NodePort 52000
// has no local endpoints, so nat KUBE-XLB-... jumps to KUBE-MARK-DROP, which
// sets 0x8000, and filter KUBE-FIREWALL drops the SYN. The entry is new (so
// unconfirmed, with the NAT done bits of the null binding) when the filter
// hook drops it: that is not a conntrack insert failure.
const char* kSeed003Save = R"(*nat
:PREROUTING ACCEPT [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-XLB-WEB - [0:0]
:KUBE-MARK-DROP - [0:0]
[%1$d:240] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-NODEPORTS
[%1$d:240] -A KUBE-NODEPORTS -p tcp -m comment --comment "demo/web:http" -m tcp --dport 52000 -j KUBE-XLB-WEB
[%1$d:240] -A KUBE-XLB-WEB -m comment --comment "demo/web:http has no local endpoints" -j KUBE-MARK-DROP
[%1$d:240] -A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
[%1$d:240] -A INPUT -j KUBE-FIREWALL
[%1$d:240] -A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
[0:0] -A KUBE-FIREWALL -m mark --mark 0x4000/0x4000 -j DROP
COMMIT
)";

NetnsSnapshot seed003(int packets, uint32_t insert_failed) {
  char save[2048];
  std::snprintf(save, sizeof(save), kSeed003Save, packets);
  NetnsSnapshot s;
  s.ipt_rules = parse_iptables_counters(save, "iptables-legacy", "ip");
  CtStatsTotals ct;
  ct.insert_failed = insert_failed;
  s.ct = ct;
  return s;
}

class Seed003World : public EmptyWorld {
 public:
  uint32_t insert_failed_after = 0;
  int snapshots = 0;
  std::string symbol(uint64_t) override { return "nf_hook_slow+0x7d"; }
  std::vector<NamedNetns> namespaces() override { return {{"node", "/run/netns/node", 7}}; }
  NetnsSnapshot snapshot(const NamedNetns&) override {
    return snapshots++ == 0 ? seed003(0, 0) : seed003(3, insert_failed_after);
  }
};

DropsReport run_seed003(Seed003World& world) {
  DropsRun run(world);
  run.start();
  for (uint64_t skb = 1; skb <= 3; skb++) {
    SkbDropEvent d;
    d.skb = skb;
    d.location = 2;
    d.reason = 12;
    d.pkt.l4proto = 6;
    d.pkt.daddr = *Addr::parse("10.0.0.4");
    d.pkt.dport = 52000;
    d.pkt.netns = 7;
    CtEntry ct;
    ct.status = ips::kSrcNatDone | ips::kDstNatDone;  // the null binding; not confirmed
    ct.netns = 7;
    d.ct = ct;
    run.add(BpfEvent{d});
  }
  return run.finish(1.0, 0, "test");
}

TEST(Drops, IptablesSaveCountersAreNumberedPerChain) {
  auto rules = parse_iptables_counters(
      "*filter\n[5:300] -A KUBE-FIREWALL -j DROP\n[2:100] -A INPUT -j ACCEPT\n[0:0] -A KUBE-FIREWALL -j RETURN\n"
      "COMMIT\n[x:1] -A BROKEN\n",
      "iptables-legacy", "ip");
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[2].chain, "KUBE-FIREWALL");
  EXPECT_EQ(rules[2].number, 2u);
  EXPECT_EQ(rules[0].packets, 5u);
  EXPECT_EQ(rules[0].where(), "iptables-legacy -t filter KUBE-FIREWALL rule 1");
  EXPECT_EQ(rules[0].text, "-A KUBE-FIREWALL -j DROP");
}

TEST(Drops, MarkMatchAndMarkTargets) {
  EXPECT_EQ(matched_mark("-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP"), "0x8000/0x8000");
  EXPECT_FALSE(matched_mark("-A INPUT -j DROP"));
  EXPECT_TRUE(sets_mark("-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000", "0x8000/0x8000"));
  EXPECT_TRUE(sets_mark("-A X -j MARK --or-mark 0x8000", "0x8000/0x8000"));
  EXPECT_FALSE(sets_mark("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000", "0x8000/0x8000"));
  EXPECT_FALSE(sets_mark("-A X -j MARK --set-xmark 0x0/0x8000", "0x8000/0x8000"));  // clears the bit
}

// The regression: every SYN was "conntrack insert failed" with insert_failed +0.
TEST(Drops, FilterDropOfANewConnectionIsNotBlamedOnConntrack) {
  Seed003World world;
  DropsReport r = run_seed003(world);
  ASSERT_EQ(r.causes.size(), 1u);
  const DropCause& c = r.causes[0];
  EXPECT_EQ(c.cause, "iptables-legacy rule drop");
  EXPECT_EQ(c.netns_name, "node");
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].first,
            "iptables-legacy -t filter KUBE-FIREWALL rule 1: -A KUBE-FIREWALL -m comment --comment \"kubernetes "
            "firewall for dropping marked packets\" -m mark --mark 0x8000/0x8000 -j DROP");
  EXPECT_EQ(c.rules[0].second, 3u);
  ASSERT_EQ(c.mark_origins.size(), 1u);
  const MarkOrigin& m = c.mark_origins[0];
  EXPECT_EQ(m.mark, "0x8000/0x8000");
  EXPECT_EQ(m.set_by.where, "iptables-legacy -t nat KUBE-MARK-DROP rule 1");
  ASSERT_EQ(m.via.size(), 3u);
  EXPECT_NE(m.via[0].text.find("has no local endpoints"), std::string::npos);
  EXPECT_NE(m.via[1].text.find("--dport 52000"), std::string::npos);
  EXPECT_EQ(m.via[2].where, "iptables-legacy -t nat PREROUTING rule 1");
  for (const auto& e : c.evidence) EXPECT_EQ(e.find("insert_failed +3"), std::string::npos) << e;
}

TEST(Drops, InsertFailedRisingKeepsTheConntrackCause) {
  Seed003World world;
  world.insert_failed_after = 3;
  DropsReport r = run_seed003(world);
  ASSERT_EQ(r.causes.size(), 1u);
  EXPECT_EQ(r.causes[0].cause.rfind("conntrack insert failed at confirm", 0), 0u) << r.causes[0].cause;
  EXPECT_NE(std::find(r.causes[0].evidence.begin(), r.causes[0].evidence.end(), "insert_failed +3 in this namespace"),
            r.causes[0].evidence.end());
}

}  // namespace
}  // namespace natbpf
