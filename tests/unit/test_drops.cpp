// Drop attribution: causes from location, hook and conntrack state; ranking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "explain/drop_rules.h"
#include "explain/drops.h"
#include "fake_world.h"

namespace natbpf {
namespace {

DropKey key(uint64_t location, uint16_t dport, uint32_t netns) {
  DropKey k;
  k.location = location;
  k.netns = netns;
  k.reason = 12;
  k.family = 2;
  k.l4proto = 17;
  k.dport = dport;
  return k;
}

DropCountsEvent counts(uint32_t seq, std::vector<std::pair<DropKey, uint64_t>> rows) {
  DropCountsEvent c;
  c.seq = seq;
  c.last = true;
  c.rows = std::move(rows);
  return c;
}

// Locations 1 and 2 are nft_do_chain and nf_hook_slow; 3 is udp's receive.
class SymbolWorld : public EmptyWorld {
 public:
  std::string symbol(uint64_t a) override {
    return a == 1 ? "nft_do_chain+0x3e8" : a == 2 ? "nf_hook_slow+0x7d" : "__udp4_lib_rcv+0x5c";
  }
  std::string drop_reason(uint32_t r) override { return r == 12 ? "NETFILTER_DROP" : r == 2 ? "NO_SOCKET" : "X"; }
};

TEST(Drops, RanksCausesByCountFromTheKernelsCounts) {
  SymbolWorld world;
  DropsRun run(world);
  run.start();
  run.add(BpfEvent{counts(1, {{key(1, 9999, 7), 10}})});  // before the run: the baseline
  DropExampleEvent e;
  e.key = key(1, 9999, 7);
  e.pkt.family = 2;
  e.pkt.l4proto = 17;
  e.pkt.daddr = *Addr::parse("10.0.0.1");
  e.pkt.dport = 9999;
  run.add(BpfEvent{e});
  run.add(BpfEvent{counts(2, {{key(1, 9999, 7), 13}, {key(2, 7777, 8), 1}})});
  auto r = run.report(1.0, 0, "test");
  ASSERT_EQ(r.causes.size(), 2u);
  EXPECT_EQ(r.causes[0].count, 3u);
  EXPECT_EQ(r.causes[0].cause, "nftables rule or chain policy drop");
  EXPECT_EQ(r.causes[0].flows.at("udp -> 10.0.0.1:9999"), 3u);
  EXPECT_EQ(r.causes[0].examples.size(), 1u);
  EXPECT_EQ(r.causes[1].cause, "iptables-legacy, conntrack or NAT hook returned NF_DROP");
  EXPECT_EQ(r.causes[1].flows.at("udp -> *:7777"), 1u);  // no example: no address
  EXPECT_EQ(r.drops, 4u);
  EXPECT_EQ(r.netfilter_drops, 4u);
  // The next report counts from this one.
  run.add(BpfEvent{counts(3, {{key(1, 9999, 7), 14}, {key(2, 7777, 8), 1}})});
  auto next = run.report(1.0, 0, "test");
  ASSERT_EQ(next.causes.size(), 1u);
  EXPECT_EQ(next.drops, 1u);
}

TEST(Drops, SnapshotsInSeveralRecordsAreSummedOnlyWhenComplete) {
  SymbolWorld world;
  DropsRun run(world);
  run.start();
  run.add(BpfEvent{counts(1, {})});
  auto part = counts(2, {{key(1, 1, 7), 5}});
  part.last = false;
  run.add(BpfEvent{part});
  EXPECT_EQ(run.report(1.0, 0, "t").drops, 0u);  // incomplete: not yet the newest
  run.add(BpfEvent{counts(2, {{key(1, 2, 7), 4}})});
  EXPECT_EQ(run.report(1.0, 0, "t").drops, 9u);
}

TEST(Drops, OutsideNetfilterIsItsOwnLayerWithTheKernelsReason) {
  DropKey k = key(3, 5555, 7);
  k.reason = 2;
  KeyCause c = classify_drop(k, "__udp4_lib_rcv", "NO_SOCKET");
  EXPECT_EQ(c.layer, kLayerOutside);
  EXPECT_EQ(c.cause.rfind("NO_SOCKET: nothing listens", 0), 0u) << c.cause;
  EXPECT_FALSE(c.fix.empty());
  // Without reasons the location decides.
  DropKey old = key(2, 80, 7);
  old.reason.reset();
  EXPECT_EQ(classify_drop(old, "nf_hook_slow", "").layer, kLayerNetfilter);
  EXPECT_EQ(classify_drop(old, "tcp_v4_rcv", "").layer, kLayerOutside);
}

TEST(Drops, ConfirmFailureIsConntracksWithTheHook) {
  DropKey k = key(2, 8080, 7);
  k.confirm_failed = true;
  k.hook = 4;
  KeyCause c = classify_drop(k, "nf_hook_slow", "NETFILTER_DROP");
  EXPECT_EQ(c.cause, "conntrack insert failed at confirm (clash with an existing entry)");
  EXPECT_NE(std::find(c.evidence.begin(), c.evidence.end(), "nf_hook_slow exit at postrouting"), c.evidence.end());
}

TEST(Drops, UnconfirmedNatedEntryNeedsInsertFailed) {
  DropKey k = key(2, 8080, 7);
  k.has_ct = true;
  k.ct_nat = true;
  KeyCause c = classify_drop(k, "nf_hook_slow", "NETFILTER_DROP");
  EXPECT_TRUE(c.needs_insert_failed);
  EXPECT_NE(c.cause.find("conntrack insert failed at confirm"), std::string::npos);
  k.hook = 0;  // prerouting: confirm does not run there
  EXPECT_FALSE(classify_drop(k, "nf_hook_slow", "NETFILTER_DROP").needs_insert_failed);
  k.hook.reset();
  k.ct_confirmed = true;  // an established connection's drop is the rule's
  EXPECT_FALSE(classify_drop(k, "nf_hook_slow", "NETFILTER_DROP").needs_insert_failed);
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
  DropKey k;
  k.location = 2;
  k.reason = 12;
  k.family = 2;
  k.l4proto = 6;
  k.dport = 52000;
  k.netns = 7;
  k.hook = 1;  // input: where KUBE-FIREWALL drops
  k.has_ct = true;
  k.ct_nat = true;  // the null binding's NAT done bits; not confirmed
  run.add(BpfEvent{counts(1, {})});
  run.add(BpfEvent{counts(2, {{k, 3}})});
  return run.report(1.0, 0, "test");
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
  EXPECT_EQ(c.rules[0].where,
            "iptables-legacy -t filter KUBE-FIREWALL rule 1: -A KUBE-FIREWALL -m comment --comment \"kubernetes "
            "firewall for dropping marked packets\" -m mark --mark 0x8000/0x8000 -j DROP");
  EXPECT_EQ(c.rules[0].count, 3u);
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

namespace natbpf {
namespace {

// A damaged recording's rule text of hundreds of kB: no mark, no port, no
// crash (std::regex would recurse once per character).
TEST(Drops, HugeRuleTextsAreNotMatched) {
  std::string huge(300000, 'x');
  EXPECT_FALSE(matched_mark("-m mark --mark " + huge));
  EXPECT_FALSE(sets_mark("-A X -j MARK --set-xmark " + huge, "0x1/0x1"));
  EXPECT_FALSE(nft_matched_mark("meta mark " + huge));
  EXPECT_FALSE(nft_sets_mark("meta mark set " + huge, "0x1"));
  EXPECT_FALSE(rule_dport("dport " + huge));
}

TEST(Drops, RuleDestinationPort) {
  EXPECT_EQ(rule_dport("udp dport 9999 counter drop"), 9999);
  EXPECT_EQ(rule_dport("-A OUTPUT -p udp -m udp --dport 7777 -j DROP"), 7777);
  EXPECT_FALSE(rule_dport("-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP"));
  EXPECT_FALSE(rule_dport("tcp dport { 80, 443 } drop"));
  EXPECT_FALSE(rule_dport("tcp dport 99999 drop"));
}

// Two causes in one namespace: a rule's rise is told once, and only under
// the cause whose packets had its port (the mixed incident: a udp 9999 drop
// rule is not the reason tcp 8080's SYNs failed to confirm).
TEST(Drops, ARuleIsToldOnceUnderTheCauseOfItsPort) {
  NetnsSnapshot before, after;
  DropRuleCounter rule;
  rule.text = "udp dport 9999 counter drop";
  rule.packets = 0;
  before.drop_rules["inet filter output 2"] = rule;
  rule.packets = 5;
  after.drop_rules["inet filter output 2"] = rule;
  RuleBudget budget;
  DropCause other;
  other.where = "nf_hook_slow";
  other.cause = "iptables-legacy, conntrack or NAT hook returned NF_DROP";
  other.count = 3;
  other.ports = {8080};
  name_drop_rules(other, before, after, budget);
  EXPECT_TRUE(other.rules.empty());
  DropCause mine;
  mine.where = "nft_do_chain";
  mine.count = 5;
  mine.ports = {9999};
  name_drop_rules(mine, before, after, budget);
  ASSERT_EQ(mine.rules.size(), 1u);
  EXPECT_EQ(mine.rules[0].count, 5u);
  DropCause again = mine;
  again.rules.clear();
  name_drop_rules(again, before, after, budget);
  EXPECT_TRUE(again.rules.empty());  // all 5 told already
}

}  // namespace
}  // namespace natbpf

namespace natbpf {
namespace {

TEST(Drops, NftMarkMatchAndSetters) {
  EXPECT_EQ(nft_matched_mark("meta mark & 0x00008000 == 0x00008000 counter drop"), "0x00008000/0x00008000");
  EXPECT_EQ(nft_matched_mark("meta mark 0x00000001 counter drop"), "0x00000001");
  EXPECT_FALSE(nft_matched_mark("tcp dport 22 drop"));
  EXPECT_TRUE(nft_sets_mark("counter meta mark set meta mark | 0x00008000", "0x00008000/0x00008000"));
  EXPECT_TRUE(nft_sets_mark("meta mark set 0x00008000 counter", "0x00008000/0x00008000"));
  EXPECT_FALSE(nft_sets_mark("meta mark set meta mark | 0x00004000", "0x00008000/0x00008000"));
  EXPECT_FALSE(nft_sets_mark("meta mark set 0x00008001 counter", "0x00008000"));  // exact match wants all bits
}

// The mark of an nftables drop rule is traced to the setter whose counter
// rose and the jumps that reached it, in the setter's table.
TEST(Drops, NftMarkOriginThroughJumps) {
  NetnsSnapshot before, after;
  auto rule = [](std::string text, uint64_t n) { return DropRuleCounter{std::move(text), n}; };
  before.drop_rules["ip kube input 11"] = rule("meta mark & 0x00008000 == 0x00008000 counter drop", 0);
  after.drop_rules["ip kube input 11"] = rule("meta mark & 0x00008000 == 0x00008000 counter drop", 2);
  before.mark_rules["ip kube mark_drop 10"] = rule("counter meta mark set meta mark | 0x00008000", 0);
  after.mark_rules["ip kube mark_drop 10"] = rule("counter meta mark set meta mark | 0x00008000", 2);
  after.mark_rules["ip kube xlb_web 9"] = rule("counter jump mark_drop comment \"no local endpoints\"", 2);
  after.mark_rules["ip kube nodeports 8"] = rule("tcp dport 52000 counter jump xlb_web", 2);
  after.mark_rules["ip other chain 3"] = rule("counter jump xlb_web", 5);  // another table: not a way there
  DropCause c;
  c.where = "nft_do_chain";
  c.count = 2;
  c.ports = {52000};
  RuleBudget budget;
  name_drop_rules(c, before, after, budget);
  ASSERT_EQ(c.mark_origins.size(), 1u);
  EXPECT_EQ(c.mark_origins[0].set_by.where, "ip kube mark_drop (handle 10)");
  ASSERT_EQ(c.mark_origins[0].via.size(), 2u);
  EXPECT_EQ(c.mark_origins[0].via[0].where, "ip kube xlb_web (handle 9)");
  EXPECT_EQ(c.mark_origins[0].via[1].where, "ip kube nodeports (handle 8)");
}

}  // namespace
}  // namespace natbpf

namespace natbpf {
namespace {

// The connection's mark is another mark: only CONNMARK / ct mark set write it.
TEST(Drops, ConntrackMarksAreTheirOwn) {
  EXPECT_EQ(matched_mark("-A FW -m connmark --mark 0x1/0x1 -j DROP"), "ct 0x1/0x1");
  EXPECT_TRUE(sets_mark("-A X -j CONNMARK --set-xmark 0x1/0x1", "ct 0x1/0x1"));
  EXPECT_FALSE(sets_mark("-A X -j MARK --set-xmark 0x1/0x1", "ct 0x1/0x1"));
  EXPECT_FALSE(sets_mark("-A X -j CONNMARK --set-xmark 0x1/0x1", "0x1/0x1"));
  EXPECT_EQ(nft_matched_mark("ct mark & 0x00000001 == 0x00000001 counter drop"), "ct 0x00000001/0x00000001");
  EXPECT_TRUE(nft_sets_mark("counter ct mark set ct mark | 0x00000001", "ct 0x00000001/0x00000001"));
  EXPECT_FALSE(nft_sets_mark("counter meta mark set meta mark | 0x00000001", "ct 0x00000001/0x00000001"));
  EXPECT_FALSE(nft_sets_mark("counter ct mark set 0x00000001", "0x00000001"));
}

}  // namespace
}  // namespace natbpf
