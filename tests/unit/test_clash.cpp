// Clash diagnosis, NAT rule parsing and ctnetlink entry parsing, from
// fixtures built in the test (no root, no kernel).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "explain/clash.h"
#include "sources/ct_lookup.h"
#include "sources/iptables_rules.h"

using namespace natbpf;
using ::testing::Contains;
using ::testing::HasSubstr;

namespace {

Tuple tcp(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  return Tuple{*Addr::parse(s), *Addr::parse(d), sp, dp, 6};
}

// Seed 004: SNAT to the single tuple 127.0.0.1:40000, second connection lost.
ClashFacts seed004() {
  ClashFacts f;
  f.cpu = 1;
  f.seen_by = "skb:kfree_skb (tp_btf) at nf_hook_slow+0x7d, reason NETFILTER_DROP, conntrack entry not confirmed";
  CtEntry loser;
  loser.orig = tcp("127.0.0.1", 38486, "127.0.0.1", 8080);
  loser.reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
  loser.status = ips::kSrcNat | ips::kSrcNatDone;
  f.loser = loser;
  WinnerFacts w;
  w.ct.orig = tcp("127.0.0.1", 38484, "127.0.0.1", 8080);
  w.ct.reply = loser.reply;
  w.ct.status = ips::kConfirmed | ips::kAssured | ips::kSeenReply | ips::kSrcNat | ips::kSrcNatDone;
  w.tcp_state = 3;  // ESTABLISHED
  w.found_by = "ctnetlink lookup of the loser's reply tuple";
  f.winner = w;
  NatFacts n;
  n.source = "ruleset (iptables-nft)";
  n.min_addr = n.max_addr = *Addr::parse("127.0.0.1");
  n.min_port = n.max_port = 40000;
  n.rule_text = "iptables -t nat -A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source 127.0.0.1:40000";
  f.nat = n;
  f.range_used = 1;
  return f;
}

}  // namespace

TEST(ClashDiagnose, Seed004RangeOfOnePortExhausted) {
  auto r = diagnose(seed004());
  EXPECT_EQ(r.cause, ClashCause::RangeExhausted);
  EXPECT_EQ(r.explanation,
            "SNAT range 127.0.0.1:40000-40000 has 1 port, already used by 127.0.0.1:38484 → 127.0.0.1:8080; every new "
            "connection to 127.0.0.1:8080 is dropped at conntrack confirm; widen the range or add random-fully");
  bool winner_evidence = false;
  for (const auto& e : r.evidence) winner_evidence |= e.find("ctnetlink lookup") != std::string::npos;
  EXPECT_TRUE(winner_evidence);
}

TEST(ClashDiagnose, TwoPortRangeFullyUsed) {
  auto f = seed004();
  f.nat->max_port = 40001;
  f.range_used = 2;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::RangeExhausted);
  EXPECT_NE(r.explanation.find("has 2 ports, all in use towards 127.0.0.1:8080"), std::string::npos) << r.explanation;
}

TEST(ClashDiagnose, FreePortsMeanARace) {
  auto f = seed004();
  f.nat->min_port = 1024;
  f.nat->max_port = 65535;
  f.range_used = 3;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::NatPortRace);
  EXPECT_NE(r.explanation.find("random-fully"), std::string::npos);
}

TEST(ClashDiagnose, AllProbesTakenIsExhaustionEvenWithoutUsageCount) {
  auto f = seed004();
  f.range_used.reset();
  f.nat->max_port = 40001;
  AllocationFacts a;
  a.attempts = a.taken = 2;
  f.alloc = a;
  EXPECT_EQ(diagnose(f).cause, ClashCause::RangeExhausted);
}

TEST(ClashDiagnose, SameOriginalTupleIsASameTupleRace) {
  auto f = seed004();
  f.winner->ct.orig = f.loser->orig;
  EXPECT_EQ(diagnose(f).cause, ClashCause::SameTupleRace);
}

TEST(ClashDiagnose, ClosingWinnerIsStale) {
  auto f = seed004();
  f.winner->tcp_state = 7;  // TIME_WAIT
  f.range_used = 0;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::StaleEntry);
  EXPECT_NE(r.explanation.find("TIME_WAIT"), std::string::npos);
  ASSERT_TRUE(r.fix);
  const Tuple& w = f.winner->ct.orig;
  EXPECT_EQ(r.fix->command, "conntrack -D -p tcp --orig-src " + w.src.str() + " --orig-dst " + w.dst.str() +
                                " --orig-port-src " + std::to_string(w.sport) + " --orig-port-dst " + std::to_string(w.dport));
}

TEST(ClashDiagnose, ResolvedFromCounterOnly) {
  ClashFacts f;
  f.outcome = ClashOutcome::Resolved;
  f.count = 3;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::SameTupleRace);
  EXPECT_NE(r.explanation.find("3 clashes were resolved"), std::string::npos);
  EXPECT_EQ(r.evidence.back(), "clash_resolve counter");
}

// Seed 004's loser with no winner while chaintoolong rose.
static ClashFacts chain_too_long() {
  auto f = seed004();
  f.winner.reset();
  CtStatsTotals d;
  d.chaintoolong = 1;
  d.has_chaintoolong = true;
  f.counters = d;
  return f;
}

TEST(ClashDiagnose, NoWinnerAndChainTooLong) {
  EXPECT_EQ(diagnose(chain_too_long()).cause, ClashCause::ChainTooLong);
}

TEST(ClashDiagnose, ChainTooLongFixDoublesTheBucketsToAPowerOfTwo) {
  auto f = chain_too_long();
  f.ct_count = 3000;
  f.ct_buckets = 512;
  auto r = diagnose(f);
  ASSERT_EQ(r.cause, ClashCause::ChainTooLong);
  ASSERT_TRUE(r.fix);
  EXPECT_EQ(r.fix->command, "sysctl -w net.netfilter.nf_conntrack_buckets=4096");  // >= 3000 entries
  EXPECT_TRUE(r.fix->host);
  f.ct_buckets.reset();  // unknown: no fix
  EXPECT_FALSE(diagnose(f).fix);
}

TEST(ClashDiagnose, ChainTooLongOnTheCpuWinsOverCountersOfOthers) {
  // A confirm drop with no clash while chaintoolong rose on its CPU: no
  // winner is looked up and the counters of the interval do not matter.
  auto f = seed004();
  f.winner.reset();
  f.counters.reset();
  f.chaintoolong_on_cpu = true;
  f.cpu = f.chaintoolong_cpu = 1;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::ChainTooLong);
  EXPECT_THAT(r.explanation, HasSubstr("nf_conntrack_buckets"));
  EXPECT_THAT(r.evidence, Contains(HasSubstr("chaintoolong rose on cpu 1")));
  // Without it, and without a winner, the cause stays unknown.
  f.chaintoolong_on_cpu = false;
  EXPECT_EQ(diagnose(f).cause, ClashCause::Unknown);
  EXPECT_THAT(diagnose(f).explanation, HasSubstr("no entry holds its tuples"));
  // Where nf_ct_resolve_clash is hooked and did not run, no winner was
  // looked up: not said as if one had expired.
  f.confirm_without_clash = true;
  EXPECT_EQ(diagnose(f).cause, ClashCause::Unknown);
  EXPECT_THAT(diagnose(f).explanation, HasSubstr("without a clash (nf_ct_resolve_clash did not run)"));
}

TEST(ClashDiagnose, TableFull) {
  ClashFacts f;
  f.ct_count = 65536;
  f.ct_max = 65536;
  EXPECT_EQ(diagnose(f).cause, ClashCause::TableFull);
  Packet p;
  p.family = 2;
  p.l4proto = 6;
  p.saddr = p.daddr = *Addr::parse("127.0.0.1");
  p.sport = 46200;
  p.dport = 8081;
  f.packet = p;
  auto r = diagnose(f);
  EXPECT_EQ(r.cause, ClashCause::TableFull);
  EXPECT_THAT(r.explanation, HasSubstr("(65536/65536 entries)"));
  EXPECT_THAT(r.explanation, HasSubstr("127.0.0.1:46200 → 127.0.0.1:8081"));
  ASSERT_TRUE(r.fix);
  EXPECT_EQ(r.fix->command, "sysctl -w net.netfilter.nf_conntrack_max=131072");
  EXPECT_TRUE(r.fix->host);
  f.ct_count = 10;  // not full: no cause natbpf can name, and no fix
  EXPECT_EQ(diagnose(f).cause, ClashCause::Unknown);
  EXPECT_FALSE(diagnose(f).fix);
}

TEST(ClashSummary, CountsByCauseAndOutcome) {
  ClashSummary s;
  s.add(diagnose(seed004()));
  ClashFacts res;
  res.outcome = ClashOutcome::Resolved;
  res.count = 4;
  s.add(diagnose(res));
  EXPECT_EQ(s.dropped, 1u);
  EXPECT_EQ(s.resolved, 4u);
  EXPECT_EQ(s.by_cause_outcome["range_exhausted/dropped"], 1u);
  EXPECT_EQ(s.by_cause_outcome["same_tuple_race/resolved"], 4u);
}

TEST(NatFacts, RangeStr) {
  NatFacts n;
  n.min_addr = Addr::parse("fd00::1");
  n.max_addr = Addr::parse("fd00::4");
  n.min_port = 1024;
  n.max_port = 2047;
  EXPECT_EQ(n.range_str(), "[fd00::1]-[fd00::4]:1024-2047");
  n.max_addr = n.min_addr;
  n.max_port.reset();
  EXPECT_EQ(n.range_str(), "[fd00::1]:1024-1024");
  NatFacts m;
  m.kind = "masquerade";
  EXPECT_EQ(m.range_str(), "(interface address)");
}

TEST(NatRules, IptablesSave) {
  const char* text =
      "# Generated by iptables-save v1.8.9 (nf_tables)\n*filter\n-A INPUT -j DROP\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source 127.0.0.1:40000\n"
      "-A POSTROUTING -s 10.0.0.0/8 -o eth0 -j MASQUERADE --to-ports 1024-2047 --random-fully\n"
      "-A POSTROUTING -p udp -j SNAT --to-source 192.0.2.1-192.0.2.4 --persistent --random\n"
      "-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080\nCOMMIT\n";
  auto rules = parse_iptables_save(text, "iptables-nft", 2);
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].kind, "snat");
  EXPECT_EQ(rules[0].range_str(), "127.0.0.1:40000-40000");
  EXPECT_EQ(*rules[0].dport, 8080);
  EXPECT_EQ(rules[0].text,
            "iptables -t nat -A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source 127.0.0.1:40000");
  EXPECT_EQ(rules[1].kind, "masquerade");
  EXPECT_EQ(rules[1].flags_str(), "random-fully");
  EXPECT_EQ(*rules[1].min_port, 1024);
  EXPECT_EQ(rules[1].saddr->len, 8);
  EXPECT_EQ(rules[2].flags_str(), "random,persistent");
  EXPECT_EQ(rules[2].max_addr->str(), "192.0.2.4");
  EXPECT_FALSE(rules[2].min_port);
  EXPECT_EQ(rules[3].kind, "dnat");
}

TEST(NatRules, NftAndIpv6Specs) {
  auto rs = Ruleset::parse(
      "table ip6 t {\n\tchain postrouting { # handle 1\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\tip6 daddr ::1 tcp dport 8080 counter packets 3 bytes 180 masquerade to :40000-40001 fully-random,persistent # handle 2\n"
      "\t\tsnat ip6 to [2001:db8::1]:5000 # handle 3\n\t}\n}\n");
  auto rules = nat_rules_from_nft(rs);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].kind, "masquerade");
  EXPECT_EQ(rules[0].text, "ip6 daddr ::1 tcp dport 8080 masquerade to :40000-40001 fully-random,persistent");
  EXPECT_EQ(rules[0].flags_str(), "random-fully,persistent");
  EXPECT_EQ(*rules[0].max_port, 40001);
  EXPECT_EQ(rules[1].min_addr->str(), "2001:db8::1");
  EXPECT_EQ(*rules[1].min_port, 5000);
}

TEST(NatRules, MatchPrefersIptablesOverItsNftCopy) {
  auto ipt = parse_iptables_save(
      "*nat\n-A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source 127.0.0.1:40000\nCOMMIT\n",
      "iptables-nft", 2);
  auto nft = nat_rules_from_nft(Ruleset::parse(
      "table ip nat {\n\tchain POSTROUTING { # handle 1\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\tip daddr 127.0.0.1 tcp dport 8080 counter packets 0 bytes 0 snat to 127.0.0.1:40000 # handle 2\n\t}\n}\n"));
  std::vector<NatRule> all = nft;
  all.insert(all.end(), ipt.begin(), ipt.end());
  CtEntry ct;
  ct.orig = tcp("127.0.0.1", 38486, "127.0.0.1", 8080);
  ct.reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
  const NatRule* r = match_snat_rule(all, ct);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->backend, "iptables-nft");
  ct.reply.dport = 40001;  // outside the range: not this rule
  EXPECT_EQ(match_snat_rule(all, ct), nullptr);
}

TEST(CtLookup, RequestAndEntryRoundTrip) {
  // The GET request carries the tuple we asked for...
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  Tuple reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
  nlmsghdr* req = build_ct_get(buf.data(), reply, TupleDir::Reply, 7);
  EXPECT_EQ(req->nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);

  // ...and an entry message built the way the kernel does parses back.
  std::vector<char> msg(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(msg.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  auto put_tuple = [&](int type, const char* s, uint16_t sp, const char* d, uint16_t dp) {
    nlattr* t = mnl_attr_nest_start(nlh, type);
    nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, inet_addr(s));
    mnl_attr_put_u32(nlh, CTA_IP_V4_DST, inet_addr(d));
    mnl_attr_nest_end(nlh, ip);
    nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, 6);
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sp));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dp));
    mnl_attr_nest_end(nlh, p);
    mnl_attr_nest_end(nlh, t);
  };
  put_tuple(CTA_TUPLE_ORIG, "127.0.0.1", 38484, "127.0.0.1", 8080);
  put_tuple(CTA_TUPLE_REPLY, "127.0.0.1", 8080, "127.0.0.1", 40000);
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(ips::kConfirmed | ips::kSrcNat));
  mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(431999));
  mnl_attr_put_u32(nlh, CTA_ID, htonl(42));
  nlattr* pi = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
  nlattr* pt = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
  mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3);
  mnl_attr_nest_end(nlh, pt);
  mnl_attr_nest_end(nlh, pi);
  mnl_attr_put_u16(nlh, 200, 0);  // unknown attribute: skipped
  auto e = parse_ct_message(nlh, nlh->nlmsg_len);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ct.orig, tcp("127.0.0.1", 38484, "127.0.0.1", 8080));
  EXPECT_EQ(e->ct.reply, reply);
  EXPECT_EQ(*e->ct.id, 42u);
  EXPECT_EQ(*e->ct.timeout_s, 431999u);
  EXPECT_EQ(*e->tcp_state, 3);
  EXPECT_FALSE(e->start_ns);
  RangeQuery q{6, *Addr::parse("127.0.0.1"), 8080, *Addr::parse("127.0.0.1"), *Addr::parse("127.0.0.1"), 40000, 40000};
  EXPECT_EQ(count_range_usage({*e}, q), 1u);
  q.dport = 8081;  // another destination's entries are not counted
  EXPECT_EQ(count_range_usage({*e}, q), 0u);

  // Truncated: rejected, not read past the end.
  EXPECT_FALSE(parse_ct_message(nlh, 20));
}

namespace natbpf {
namespace {

NatFacts iptables_snat(const std::string& backend) {
  NatFacts n;
  n.min_addr = n.max_addr = *Addr::parse("127.0.0.1");
  n.min_port = 40000;
  n.max_port = 40001;
  n.rule_text = "iptables -t nat -A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source "
                "127.0.0.1:40000-40001";
  n.rule_backend = backend;
  n.rule_chain = "POSTROUTING";
  n.rule_table = "nat";
  n.rule_number = 1;
  return n;
}

TEST(WidenRangeFix, IptablesReplacesTheRuleByNumberWithTwiceTheConnectionsSeen) {
  auto fix = widen_range_fix(iptables_snat("iptables-nft"), 2, "ns1");
  ASSERT_TRUE(fix);
  EXPECT_EQ(fix->command,
            "iptables-nft -t nat -R POSTROUTING 1 -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source "
            "127.0.0.1:40000-40005");
  EXPECT_EQ(fix->netns, "ns1");
  EXPECT_NE(fix->why.find("3 connections"), std::string::npos) << fix->why;
  auto legacy = widen_range_fix(iptables_snat("iptables-legacy"), 2, "");
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->command.rfind("iptables-legacy -t nat -R POSTROUTING 1 ", 0), 0u) << legacy->command;
}

TEST(WidenRangeFix, NftMasqueradeByHandle) {
  NatFacts n;
  n.kind = "masquerade";
  n.min_port = 40000;
  n.max_port = 40001;
  n.rule_text = "ip6 daddr ::1 tcp dport 8080 masquerade to :40000-40001";
  n.rule_backend = "nftables";
  n.rule_chain = "postrouting";
  n.rule_table = "ip6 natbpf_range";
  n.rule_number = 2;
  auto fix = widen_range_fix(n, 5, "");
  ASSERT_TRUE(fix);
  EXPECT_EQ(fix->command,
            "nft replace rule ip6 natbpf_range postrouting handle 2 ip6 daddr ::1 tcp dport 8080 masquerade to "
            ":40000-40011");
}

TEST(WidenRangeFix, NoFixWithoutTheRulesPlaceOrRoomInThePortSpace) {
  NatFacts n = iptables_snat("iptables-nft");
  n.rule_number = 0;  // a recording that did not keep where the rule is
  EXPECT_FALSE(widen_range_fix(n, 2, ""));
  n = iptables_snat("iptables-nft");
  n.min_port = 65530;
  n.max_port = 65535;
  n.rule_text = "iptables -t nat -A POSTROUTING -j SNAT --to-source 127.0.0.1:65530-65535";
  EXPECT_FALSE(widen_range_fix(n, 100, ""));
  n = iptables_snat("iptables-nft");
  n.rule_text = "iptables -t nat -A POSTROUTING -j SNAT --to-source 10.0.0.1:40000-40001 -m comment --comment 40000-40001";
  EXPECT_FALSE(widen_range_fix(n, 2, "")) << "the range appears twice: which is it?";
}

}  // namespace
}  // namespace natbpf
