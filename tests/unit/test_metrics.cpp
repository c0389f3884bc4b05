// natbpf drops --prometheus: counters from reports, the text format, the
// series cap, the listen address, and namespaces that appear during a run.
#include <gtest/gtest.h>

#include "explain/drops.h"
#include "fake_world.h"
#include "output/metrics.h"
#include "output/metrics_server.h"

namespace natbpf {
namespace {

DropCause firewall_cause(uint64_t count, uint64_t by_rule) {
  DropCause c;
  c.layer = kLayerNetfilter;
  c.cause = "iptables-legacy rule drop";
  c.where = "nf_hook_slow at input";
  c.netns_name = "node";
  c.count = count;
  c.reasons = {"NETFILTER_DROP"};
  c.families = {"ip"};
  c.rules.push_back({"iptables-legacy -t filter KUBE-FIREWALL rule 1: -A KUBE-FIREWALL -m comment --comment \"fw\" -j DROP",
                     by_rule, "ip", "filter", "KUBE-FIREWALL", "-A KUBE-FIREWALL -m comment --comment \"fw\" -j DROP"});
  return c;
}

TEST(Metrics, ACauseIsOneSeriesPerRuleAndOneForTheRest) {
  DropMetrics m({"1.2.3", "abc1234"});
  DropsReport r;
  r.causes.push_back(firewall_cause(5, 3));
  r.conntrack.push_back({"node", CtStatsTotals{}});
  r.conntrack.back().second.insert_failed = 2;
  r.lost = 1;
  m.add(r);
  m.add(r);  // counters add up across reports
  std::string text = m.render();
  EXPECT_NE(text.find("natbpf_build_info{version=\"1.2.3\",revision=\"abc1234\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("natbpf_drops_total{netns=\"node\",layer=\"netfilter\",cause=\"iptables-legacy rule drop\","
                      "family=\"ip\",table=\"filter\",chain=\"KUBE-FIREWALL\",rule=\"-A KUBE-FIREWALL -m comment "
                      "--comment \\\"fw\\\" -j DROP\",reason=\"NETFILTER_DROP\",where=\"nf_hook_slow at input\"} 6\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("natbpf_drops_total{netns=\"node\",layer=\"netfilter\",cause=\"iptables-legacy rule drop\","
                      "family=\"ip\",table=\"\",chain=\"\",rule=\"\",reason=\"NETFILTER_DROP\",where=\"nf_hook_slow at "
                      "input\"} 4\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("natbpf_conntrack_insert_failed_total{netns=\"node\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("natbpf_lost_events_total{source=\"bpf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE natbpf_drops_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("clash_resolve_total{"), std::string::npos);  // the kernel did not count it
  EXPECT_EQ(m.series(), 2u);
}

TEST(Metrics, SeriesAreCappedIntoOneOverflowSeries) {
  DropMetrics m({"1", "x"}, 3);
  DropsReport r;
  for (int i = 0; i < 5; i++) {
    DropCause c;
    c.layer = kLayerOutside;
    c.cause = "NO_SOCKET";
    c.netns_name = "ns" + std::to_string(i);
    c.count = 10;
    r.causes.push_back(c);
  }
  for (int i = 0; i < 5; i++) r.conntrack.push_back({"ns" + std::to_string(i), CtStatsTotals{}});
  r.conntrack.back().second.insert_failed = 1;
  m.add(r);
  EXPECT_EQ(m.series(), 3u);  // two real ones and the overflow series
  std::string text = m.render();
  EXPECT_NE(text.find("cause=\"other: natbpf series limit reached\""), std::string::npos);
  EXPECT_NE(text.find("natbpf_metrics_series_overflow_total 30\n"), std::string::npos) << text;
  EXPECT_NE(text.find("natbpf_conntrack_insert_failed_total{netns=\"other: natbpf series limit reached\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("natbpf_conntrack_drop_total{netns=\"ns3\"}"), std::string::npos);
  // Known series keep counting past the cap.
  m.add(r);
  EXPECT_NE(m.render().find("netns=\"ns0\",layer=\"outside netfilter\",cause=\"NO_SOCKET\",family=\"\",table=\"\","
                            "chain=\"\",rule=\"\",reason=\"\",where=\"\"} 20\n"),
            std::string::npos);
}

TEST(Metrics, LabelValuesAreEscapedAndLongRulesCut) {
  EXPECT_EQ(prometheus_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  DropMetrics m({"1", "x"});
  DropsReport r;
  DropCause c = firewall_cause(1, 1);
  c.rules[0].text = std::string(kMaxLabelBytes - 4, 'a') + "\xc3\xa9\xc3\xa9tail";  // é é across the cut
  r.causes.push_back(c);
  m.add(r);
  std::string text = m.render();
  auto at = text.find("rule=\"");
  ASSERT_NE(at, std::string::npos);
  std::string rule = text.substr(at + 6, text.find('"', at + 6) - at - 6);
  EXPECT_LE(rule.size(), kMaxLabelBytes);
  EXPECT_EQ(rule.substr(rule.size() - 3), "...");
  EXPECT_EQ(rule.substr(0, kMaxLabelBytes - 4), std::string(kMaxLabelBytes - 4, 'a'));
  EXPECT_EQ(rule.size(), kMaxLabelBytes - 4 + 3);  // the two-byte é is not split
}

TEST(Metrics, ClashesAreCountedOnlyWhenAskedFor) {
  DropMetrics m({"1", "x"});
  ClashReport r;
  r.facts.netns_name = "rng";
  r.facts.outcome = ClashOutcome::Dropped;
  r.facts.count = 3;  // a counter-only record stands for three
  r.cause = ClashCause::RangeExhausted;
  m.add_clash(r);
  EXPECT_EQ(m.render().find("natbpf_clashes_total"), std::string::npos);
  m.enable_clashes();
  m.add_clash(r);
  EXPECT_NE(m.render().find("natbpf_clashes_total{netns=\"rng\",outcome=\"dropped\",cause=\"range_exhausted\"} 6\n"),
            std::string::npos)
      << m.render();
}

TEST(Metrics, ListenAddresses) {
  EXPECT_EQ(*parse_listen_address("0.0.0.0:9477"), "0.0.0.0:9477");
  EXPECT_EQ(*parse_listen_address(":9477"), "9477");
  EXPECT_EQ(*parse_listen_address("[::1]:9477"), "[::1]:9477");
  for (const char* bad : {"9477", "host:9477", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x", "[zz]:1", "::1:9477"}) {
    auto r = parse_listen_address(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().exit_code, 2) << bad;
    EXPECT_NE(r.error().hint.find("--prometheus 0.0.0.0:9477"), std::string::npos) << bad;
  }
}

// A world whose namespaces change between calls, with one counted drop rule.
class ChangingWorld : public EmptyWorld {
 public:
  std::vector<std::vector<NamedNetns>> lists;
  size_t calls = 0;
  std::map<uint32_t, uint64_t> packets;  // per namespace, the rule's counter
  std::vector<NamedNetns> namespaces() override { return lists[std::min(calls++, lists.size() - 1)]; }
  NetnsSnapshot snapshot(const NamedNetns& ns) override {
    NetnsSnapshot s;
    s.drop_rules["inet f input 2"] = {"udp dport 9 counter drop", packets[ns.inode]};
    return s;
  }
  std::string symbol(uint64_t) override { return "nft_do_chain+0x10"; }
};

DropKey nft_key(uint32_t netns) {
  DropKey k;
  k.location = 1;
  k.netns = netns;
  k.family = 2;
  k.l4proto = 17;
  k.dport = 9;
  return k;
}

TEST(Metrics, NamespacesCreatedDuringARunAreMeasuredFromZero) {
  ChangingWorld world;
  world.lists = {{{"old", "/run/netns/old", 7}}, {{"old", "/run/netns/old", 7}, {"pod", "/run/netns/pod", 8}}};
  world.packets[7] = 100;
  DropsRun run(world);
  run.start();
  DropCountsEvent c0;
  c0.seq = 1;
  c0.last = true;
  run.add(BpfEvent{c0});
  // The pod's namespace appears; its rule drops 4 packets before the report.
  world.packets[8] = 4;
  DropCountsEvent c1 = c0;
  c1.seq = 2;
  c1.rows = {{nft_key(8), 4}};
  run.add(BpfEvent{c1});
  auto r = run.report(1, 0, "");
  ASSERT_EQ(r.causes.size(), 1u);
  EXPECT_EQ(r.causes[0].netns_name, "pod");
  ASSERT_EQ(r.causes[0].rules.size(), 1u);
  EXPECT_EQ(r.causes[0].rules[0].count, 4u);
  EXPECT_EQ(r.causes[0].rules[0].table, "f");
  EXPECT_EQ(r.causes[0].rules[0].chain, "input");
  EXPECT_EQ(r.causes[0].rules[0].family, "inet");
}

}  // namespace
}  // namespace natbpf
