// Trace building blocks without root: ruleset parsing, set-lookup keys,
// journeys from synthetic trace events, iptables TRACE prefixes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "explain/trace_explain.h"
#include "journey/journey.h"
#include "journey/trace_stories.h"
#include "sources/legacy_trace.h"
#include "sources/ruleset.h"
#include "sources/trace_table.h"

namespace natbpf {
namespace {

using ::testing::HasSubstr;

const char* kSeed001Ruleset = R"(table inet nat { # handle 1
	chain prerouting { # handle 1
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22 # handle 2
	}
}
table inet filter { # handle 2
	set allow_in { # handle 3
		type ipv4_addr . inet_service
		elements = { 192.168.70.11 . 22 }
	}

	chain forward { # handle 1
		type filter hook forward priority filter; policy accept;
		ct state established,related accept # handle 4
		ct status dnat jump allowed_dnats # handle 5
	}

	chain allowed_dnats { # handle 2
		ip daddr . tcp dport @allow_in accept # handle 6
		drop # handle 7
	}
}
)";

Packet tcp(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  Packet p;
  p.family = 2;
  p.l4proto = 6;
  p.saddr = *Addr::parse(s);
  p.daddr = *Addr::parse(d);
  p.sport = sp;
  p.dport = dp;
  p.tcp_flags = 0x02;
  return p;
}

TEST(Ruleset, ParsesChainsHooksAndRules) {
  auto rs = Ruleset::parse(kSeed001Ruleset);
  const ChainInfo* fwd = rs.chain("inet", "filter", "forward");
  ASSERT_NE(fwd, nullptr);
  EXPECT_EQ(fwd->hook, "forward");
  EXPECT_EQ(fwd->priority, 0);
  EXPECT_EQ(fwd->policy, "accept");
  ASSERT_EQ(fwd->rules.size(), 2u);
  EXPECT_EQ(fwd->rules[1].text, "ct status dnat jump allowed_dnats");
  EXPECT_EQ(rs.chain("inet", "nat", "prerouting")->priority, -100);
  EXPECT_FALSE(rs.chain("inet", "filter", "allowed_dnats")->hook.has_value());
  ASSERT_NE(rs.rule("inet", "filter", "allowed_dnats", 7), nullptr);
  EXPECT_EQ(rs.rule("inet", "filter", "allowed_dnats", 7)->text, "drop");
  // Set bodies are not rules.
  EXPECT_EQ(rs.chain("inet", "filter", "allow_in"), nullptr);
}

TEST(Ruleset, PriorityExpressions) {
  EXPECT_EQ(parse_priority("dstnat + 10", "ip"), -90);
  EXPECT_EQ(parse_priority("srcnat - 5", "ip"), 95);
  EXPECT_EQ(parse_priority("-200000", "inet"), -200000);
  // Out of the kernel's s32, or not a number: unknown, never an overflow.
  EXPECT_FALSE(parse_priority("srcnat + 2147483647", "ip"));
  EXPECT_FALSE(parse_priority("99999999999999999999", "ip"));
  EXPECT_EQ(parse_priority("-2147483648", "ip"), -2147483648LL);
  EXPECT_FALSE(parse_priority("filter * 2", "ip"));
  EXPECT_FALSE(parse_priority("bogus", "ip").has_value());
}

TEST(Ruleset, IptablesNftSyntaxByPosition) {
  auto rs = Ruleset::parse(R"(table ip filter { # handle 2
	chain FORWARD { # handle 2
		type filter hook forward priority filter; policy accept;
		ct state related,established counter accept # handle 3
		counter drop # handle 4
	}
}
)");
  EXPECT_TRUE(rs.has_xtables_tables("ip"));
  rs.add_iptables_syntax("ip", "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT\n");
  EXPECT_EQ(rs.rule("ip", "filter", "FORWARD", 4)->iptables, "-A FORWARD -j DROP");
}

// The live world parses a node's listing once and builds the snapshot from
// that parse; a recording is built from its texts: both must be one snapshot.
// The legacy save is parsed straight into the ruleset: a chain nftables
// has keeps its nft rules; a table saved twice adds to its own chains.
TEST(Ruleset, LegacySaveSkipsChainsNftablesHas) {
  Ruleset rs = Ruleset::parse(R"(table ip filter { # handle 2
	chain FORWARD { # handle 2
		type filter hook forward priority filter; policy accept;
		counter drop # handle 4
	}
}
)");
  rs.add_legacy_save("*filter\n:FORWARD DROP [0:0]\n:X - [0:0]\n-A FORWARD -j X\n-A X -p udp -j DROP\nCOMMIT\n"
                     "*filter\n-A X -j ACCEPT\nCOMMIT\n",
                     "ip");
  ASSERT_EQ(rs.chains().size(), 2u);
  const ChainInfo* forward = rs.chain("ip", "filter", "FORWARD");
  ASSERT_NE(forward, nullptr);
  EXPECT_EQ(forward->policy, "accept");
  ASSERT_EQ(forward->rules.size(), 1u);
  EXPECT_EQ(forward->rules[0].shown(), "counter drop");
  EXPECT_FALSE(forward->rules[0].iptables_syntax());
  const ChainInfo* x = rs.chain("ip", "filter", "X");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(x->rules.size(), 2u);
  EXPECT_EQ(x->rules[1].handle, 2u);
  EXPECT_EQ(x->rules[1].text, "-A X -j ACCEPT");
  EXPECT_TRUE(x->rules[1].legacy);
  EXPECT_TRUE(x->rules[1].iptables.empty());
}

// A damaged save's ":" line with only blanks after it declares nothing (it
// was read as a chain's first word: undefined behaviour, found by fuzzing).
TEST(Ruleset, LegacyBlankChainDeclarationIsSkipped) {
  Ruleset rs;
  rs.add_legacy_save(std::make_shared<const std::string>("*mangle\n:\r\r\n:\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n"),
                     "ip6");
  EXPECT_NE(rs.chain("ip6", "mangle", "PREROUTING"), nullptr);
  for (const ChainInfo& c : rs.chains()) EXPECT_TRUE(c.rules.empty() || c.name == "PREROUTING") << c.name;
}

// A legacy chain is parsed when first asked for; a chain handed out earlier
// stays where it is; chains() parses the rest, in the order of the save.
TEST(Ruleset, LegacyChainsParsedWhenAsked) {
  Ruleset rs;
  auto save = std::make_shared<const std::string>(
      "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC - [0:0]\n:KUBE-SEP - [0:0]\n"
      "-A PREROUTING -j KUBE-SVC\n-A KUBE-SVC -p tcp -j KUBE-SEP\n-A KUBE-SEP -p tcp -j DNAT --to-destination 10.0.0.1\n"
      "-A KUBE-SVC -j RETURN\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n:KUBE-SVC - [0:0]\n-A INPUT -j KUBE-SVC\nCOMMIT\n");
  rs.add_legacy_save(save, "ip");
  const ChainInfo* svc = rs.chain("ip", "nat", "KUBE-SVC");
  ASSERT_NE(svc, nullptr);
  ASSERT_EQ(svc->rules.size(), 2u);  // its lines on both sides of KUBE-SEP's
  EXPECT_EQ(svc->rules[0].text, "-A KUBE-SVC -p tcp -j KUBE-SEP");
  EXPECT_EQ(svc->rules[1].handle, 2u);
  EXPECT_EQ(svc->rules[1].text, "-A KUBE-SVC -j RETURN");
  EXPECT_FALSE(svc->hook);
  const ChainInfo* input = rs.chain("ip", "filter", "INPUT");
  ASSERT_NE(input, nullptr);
  EXPECT_EQ(input->hook, "input");
  EXPECT_EQ(input->policy, "drop");
  EXPECT_EQ(rs.chain("ip", "filter", "KUBE-SEP"), nullptr);
  EXPECT_EQ(rs.chain("ip6", "nat", "KUBE-SVC"), nullptr);
  EXPECT_EQ(rs.rule("ip", "nat", "KUBE-SEP", 1)->text, "-A KUBE-SEP -p tcp -j DNAT --to-destination 10.0.0.1");
  EXPECT_EQ(svc, rs.chain("ip", "nat", "KUBE-SVC"));  // parsed once, not moved
  EXPECT_EQ(svc->rules.size(), 2u);
  std::vector<std::string> all;
  for (const auto& c : rs.chains()) all.push_back(c.table + "/" + c.name);
  EXPECT_EQ(all, (std::vector<std::string>{"nat/KUBE-SVC", "filter/INPUT", "nat/KUBE-SEP", "nat/PREROUTING",
                                           "filter/KUBE-SVC"}));
  EXPECT_EQ(rs.chain("ip", "filter", "KUBE-SVC")->rules.size(), 0u);
}

TEST(Ruleset, BuiltFromParsedNftAsFromTexts) {
  RulesetTexts texts;
  texts.nft = R"(table ip filter { # handle 2
	chain FORWARD { # handle 2
		type filter hook forward priority filter; policy accept;
		ct state related,established counter accept # handle 3
		counter drop # handle 4
	}
}
)";
  texts.iptables_nft["ip"] = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT\n";
  texts.iptables_legacy["ip"] = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j ACCEPT\nCOMMIT\n";
  for (const Ruleset& rs : {texts.build(), texts.build(Ruleset::parse(texts.nft))}) {
    ASSERT_NE(rs.rule("ip", "filter", "FORWARD", 4), nullptr);
    EXPECT_EQ(rs.rule("ip", "filter", "FORWARD", 4)->iptables, "-A FORWARD -j DROP");
    ASSERT_NE(rs.chain("ip", "raw", "PREROUTING"), nullptr);
    const RuleInfo& legacy = rs.chain("ip", "raw", "PREROUTING")->rules.at(0);
    EXPECT_EQ(legacy.shown(), "-A PREROUTING -p tcp -j ACCEPT");
    EXPECT_TRUE(legacy.iptables_syntax());
    EXPECT_EQ(rs.chains().size(), 2u);
  }
}

// The live world lists the chains first (no rules), then the rules of the
// chains a story crossed, one `list chain` and `iptables-nft -S CHAIN` each,
// appended to the texts: the later listing of a chain replaces the earlier,
// in the live snapshot (put_chains) as in one built from the texts.
TEST(Ruleset, ChainListedAgainReplacesItsHeader) {
  RulesetTexts texts;
  texts.nft = R"(table ip filter {
	chain INPUT { # handle 1
		type filter hook input priority filter; policy accept;
	}
	chain FORWARD { # handle 2
		type filter hook forward priority filter; policy drop;
	}
}
)";
  const std::string forward = R"(table ip filter {
	chain FORWARD { # handle 2
		type filter hook forward priority filter; policy drop;
		ct state related,established counter accept # handle 3
		counter drop # handle 4
	}
}
)";
  const std::string save = "*filter\n-P FORWARD DROP\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                           "-A FORWARD -j DROP\nCOMMIT\n";
  Ruleset live = Ruleset::parse(texts.nft);
  ASSERT_NE(live.chain("ip", "filter", "FORWARD"), nullptr);
  EXPECT_TRUE(live.chain("ip", "filter", "FORWARD")->rules.empty());
  live.put_chains(Ruleset::parse(forward));
  live.add_iptables_syntax("ip", save);
  texts.nft += forward;
  texts.iptables_nft["ip"] += save;
  for (const Ruleset& rs : {live, texts.build()}) {
    EXPECT_EQ(rs.chains().size(), 2u);
    const ChainInfo* c = rs.chain("ip", "filter", "FORWARD");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->hook, "forward");
    EXPECT_EQ(c->policy, "drop");
    ASSERT_EQ(c->rules.size(), 2u);
    EXPECT_EQ(c->rules[1].iptables, "-A FORWARD -j DROP");
    EXPECT_EQ(rs.chain("ip", "filter", "INPUT")->hook, "input");
  }
}

TEST(SetLookup, ConcatenatedKeyFromPacket) {
  auto k = set_lookup_key("meta nfproto ipv4 ip daddr . tcp dport @allow_in accept",
                          tcp("10.2.1.2", 40000, "192.168.70.10", 22));
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->set, "allow_in");
  EXPECT_EQ(k->key, "192.168.70.10 . 22");
  EXPECT_EQ(set_lookup_key("ip saddr @blocked drop", tcp("10.2.1.2", 1, "1.1.1.1", 2))->key, "10.2.1.2");
  EXPECT_FALSE(set_lookup_key("ip saddr != @trusted drop", tcp("10.2.1.2", 1, "1.1.1.1", 2)).has_value());
  EXPECT_FALSE(set_lookup_key("ct mark @marks accept", tcp("10.2.1.2", 1, "1.1.1.1", 2)).has_value());
}

TEST(NearMiss, FirstPlainComparisonThePacketFails) {
  auto p = tcp("10.2.1.2", 40000, "192.168.70.10", 22);
  EXPECT_EQ(first_mismatch("ip saddr 10.9.9.9 accept", p), "ip saddr is 10.2.1.2, not 10.9.9.9");
  EXPECT_EQ(first_mismatch("ip saddr 10.2.0.0/16 tcp dport { 80, 443 } accept", p),
            "tcp dport is 22, not { 80, 443 }");
  EXPECT_EQ(first_mismatch("ip daddr != 192.168.70.0/24 accept", p),
            "ip daddr is 192.168.70.10, which the rule excludes (!= 192.168.70.0/24)");
  EXPECT_EQ(first_mismatch("tcp dport 1000-2000 accept", p), "tcp dport is 22, not 1000-2000");
  EXPECT_EQ(first_mismatch("udp dport 53 accept", p), "the packet is tcp, not udp");
  EXPECT_EQ(first_mismatch("meta nfproto ipv6 accept", p), "the packet is ipv4, not ipv6");
  EXPECT_EQ(first_mismatch("meta l4proto udp accept", p), "meta l4proto is tcp, not udp");
  // Everything it can evaluate matched, or it cannot evaluate what comes first: no claim.
  EXPECT_FALSE(first_mismatch("ip saddr 10.2.1.2 tcp dport 20-30 accept", p).has_value());
  EXPECT_FALSE(first_mismatch("ct state established accept", p).has_value());
  EXPECT_FALSE(first_mismatch("iifname \"eth0\" ip saddr 10.9.9.9 accept", p).has_value());
  EXPECT_FALSE(first_mismatch("ip daddr . tcp dport @allow_in accept", p).has_value());
  EXPECT_FALSE(first_mismatch("tcp dport ssh accept", p).has_value());
}

NftTraceEvent ev(uint32_t id, const std::string& table, const std::string& chain, std::optional<uint64_t> handle,
                 std::optional<NftVerdict> v, uint64_t t) {
  NftTraceEvent e;
  e.id = id;
  e.family = 1;
  e.table = table;
  e.chain = chain;
  e.type = handle ? NftTraceType::Rule : NftTraceType::Policy;
  e.rule_handle = handle;
  e.verdict = v;
  e.recv_ns = t;
  return e;
}

// An iptables-legacy TRACE line of pkt (starts: our TRACE rule's, which
// starts a packet).
NftTraceEvent line_of(uint32_t id, const std::string& table, const std::string& chain, NftVerdict v, uint64_t t,
                      const Packet& pkt, bool starts = false) {
  NftTraceEvent e = ev(id, table, chain, 1, v, t);
  e.origin = Origin::Nflog;
  e.starts_packet = starts;
  e.packet = pkt;
  return e;
}

TEST(Journey, Seed001StoryWithNearMiss) {
  auto rs = Ruleset::parse(kSeed001Ruleset);
  JourneyBuilder b("natbpf_1", 1000);
  auto mark = ev(7, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 100);
  mark.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(std::move(mark));
  auto nat = ev(7, "nat", "prerouting", 2, NftVerdict::Accept, 101);
  nat.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(std::move(nat));
  auto fwd = ev(7, "filter", "forward", 5, NftVerdict::Jump, 102);
  fwd.jump_target = "allowed_dnats";
  fwd.packet = tcp("10.2.1.2", 40000, "192.168.70.10", 22);
  b.add(std::move(fwd));
  b.add(ev(7, "filter", "allowed_dnats", 7, NftVerdict::Drop, 103));
  std::vector<Journey> out;
  b.flush(5000, false, [&](Journey&& j) { out.push_back(std::move(j)); });
  ASSERT_EQ(out.size(), 1u);
  Journey& j = out[0];
  assign_hooks(j, [&](const std::string& f, const std::string& t, const std::string& c) {
    const ChainInfo* ch = rs.chain(f, t, c);
    return ch ? ch->hook : std::nullopt;
  });
  ExplainContext ctx;
  ctx.ruleset = &rs;
  ctx.set_has = [](const std::string&, const std::string&, const std::string& set, const std::string& key) {
    return std::optional<bool>(set == "allow_in" && key == "192.168.70.11 . 22");
  };
  explain_journey(j, ctx);
  ASSERT_EQ(j.steps.size(), 3u);  // our marking chain is not a step
  EXPECT_EQ(j.steps[2].hook, "forward");  // inherited from the calling base chain
  ASSERT_EQ(j.nat.size(), 1u);
  EXPECT_EQ(j.nat[0].from, "10.1.2.3:1222");
  EXPECT_EQ(j.nat[0].to, "192.168.70.10:22");
  ASSERT_TRUE(j.drop.has_value());
  EXPECT_EQ(j.drop->chain, "allowed_dnats");
  EXPECT_EQ(j.drop->rule, "drop");
  ASSERT_EQ(j.near_misses.size(), 1u);
  EXPECT_EQ(j.near_misses[0].why, "192.168.70.10 . 22 is not in set inet filter allow_in");
  EXPECT_THAT(j.explanation, HasSubstr("was DNATed to 192.168.70.10:22"));
}

TEST(Journey, RepeatedTraceIdAfterADropStartsANewPacket) {
  JourneyBuilder b("natbpf_1", 1000);
  auto m1 = ev(9, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 100);
  m1.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(NftTraceEvent(m1));
  b.add(ev(9, "filter", "input", 3, NftVerdict::Drop, 101));
  m1.recv_ns = 200;
  b.add(NftTraceEvent(m1));
  b.add(ev(9, "filter", "input", 3, NftVerdict::Drop, 201));
  std::vector<Journey> out;
  b.flush(0, true, [&](Journey&& j) { out.push_back(std::move(j)); });
  EXPECT_EQ(out.size(), 2u);
}

TEST(Journey, KfreeSkbDropJoinsByConntrackTupleAfterDnat) {
  JourneyBuilder b("natbpf_1", 1000);
  auto m = ev(3, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 100);
  m.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(std::move(m));
  SkbDropEvent d;
  d.ts_ns = 150;
  d.pkt = tcp("10.2.1.2", 40000, "192.168.70.10", 22);  // after DNAT: no header match
  CtEntry ct;
  ct.orig = Tuple{*Addr::parse("10.2.1.2"), *Addr::parse("10.1.2.3"), 40000, 1222, 6};
  d.ct = ct;
  b.add(BpfEvent{d});
  std::vector<Journey> out;
  b.flush(0, true, [&](Journey&& j) { out.push_back(std::move(j)); });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bpf.size(), 1u);
}

TEST(Journey, BpfRecordWaitsForTheStoryOfItsTraceId) {
  // Loopback: the output pass (id 5) is read; the input pass (id 6) of the
  // same skb is known from BPF, but its trace messages come after the drop.
  JourneyBuilder b("natbpf_1", 1000);
  auto out_pass = ev(5, "natbpf_1", "mark_out", 2, NftVerdict::Accept, 100);
  out_pass.packet = tcp("127.0.0.1", 40000, "127.0.0.1", 5354);
  b.add(std::move(out_pass));
  NftTraceIdEvent id;
  id.ts_ns = 200;
  id.skb = 0xabc;
  id.trace_id = 6;
  b.add(BpfEvent{id});
  SkbDropEvent d;
  d.ts_ns = 210;
  d.skb = 0xabc;
  d.pkt = tcp("127.0.0.1", 40000, "127.0.0.1", 5354);
  b.add(BpfEvent{d});
  auto in_pass = ev(6, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 220);
  in_pass.packet = tcp("127.0.0.1", 40000, "127.0.0.1", 5354);
  b.add(std::move(in_pass));
  std::vector<Journey> out;
  b.flush(0, true, [&](Journey&& j) { out.push_back(std::move(j)); });
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].trace_id, 5u);
  EXPECT_TRUE(out[0].bpf.empty()) << "the drop belongs to the input pass";
  EXPECT_EQ(out[1].trace_id, 6u);
  ASSERT_EQ(out[1].bpf.size(), 1u);
  EXPECT_TRUE(out[1].joined_by_trace_id);
}

// An accepted, DNATed SYN: the trace-id hook ran for its pass; its only BPF
// record is the NAT setup, which has no skb and joins by conntrack. The
// story joined by trace id, as every story of a pass the hook reported.
TEST(Journey, AcceptedPassJoinsByTraceIdWhenTheHookReportedIt) {
  JourneyBuilder b("natbpf_1", 1000);
  auto m = ev(8, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 100);
  m.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(std::move(m));
  NftTraceIdEvent id;
  id.ts_ns = 105;
  id.skb = 0xdef;
  id.trace_id = 8;
  b.add(BpfEvent{id});
  NatSetupEvent nat;
  nat.ts_ns = 110;
  nat.snat = false;
  nat.ct.orig = Tuple{*Addr::parse("10.2.1.2"), *Addr::parse("10.1.2.3"), 40000, 1222, 6};
  b.add(BpfEvent{nat});
  std::vector<Journey> out;
  b.flush(0, true, [&](Journey&& j) { out.push_back(std::move(j)); });
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].bpf.size(), 1u);
  EXPECT_TRUE(out[0].joined_by_trace_id);
}

// The last ACK of a close is not a retransmission of the handshake ACK:
// same flow, flags and path, but another acknowledgment number.
TEST(Journey, ClosingAckIsNotARepeatOfTheHandshakeAck) {
  Journey handshake, closing, again;
  handshake.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  handshake.packet.tcp_flags = 0x10;
  handshake.packet.tcp_seq = 1001;
  handshake.packet.tcp_ack = 5001;
  closing = handshake;
  closing.packet.tcp_ack = 5002;  // acknowledges the peer's FIN
  again = handshake;              // the same segment sent again
  EXPECT_NE(path_signature(handshake), path_signature(closing));
  EXPECT_EQ(path_signature(handshake), path_signature(again));
}

TEST(TraceTable, MatchExpressionAndRate) {
  TraceMatch m;
  m.dport = 1222;
  m.daddr = Addr::parse("10.1.2.3");
  // The port first: the cheapest selector that rejects most packets.
  EXPECT_EQ(trace_match_expression(m), "th dport 1222 meta l4proto { tcp, udp, sctp, dccp } ip daddr 10.1.2.3");
  m.l4proto = 17;
  m.daddr = Addr::parse("fd00::1");
  EXPECT_EQ(trace_match_expression(m), "th dport 1222 meta l4proto udp ip6 daddr fd00::1");
  EXPECT_TRUE(parse_rate("6/minute").ok());
  EXPECT_FALSE(parse_rate("0/second").ok());
  EXPECT_FALSE(parse_rate("10/fortnight").ok());
}

TEST(LegacyTrace, PrefixSaveAndTargets) {
  auto p = parse_trace_prefix("TRACE: filter:ALLOWED_DNATS:return:2 ");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->table, "filter");
  EXPECT_EQ(p->chain, "ALLOWED_DNATS");
  EXPECT_EQ(p->type, "return");
  EXPECT_EQ(p->number, 2u);
  EXPECT_FALSE(parse_trace_prefix("IN=eth0 OUT= ").has_value());
  auto chains = parse_legacy_save("*filter\n:FORWARD DROP [0:0]\n:X - [0:0]\n-A FORWARD -j X\n-A X -j DROP\nCOMMIT\n", "ip");
  ASSERT_EQ(chains.size(), 2u);
  EXPECT_EQ(chains[0].hook, "forward");
  EXPECT_EQ(chains[0].policy, "drop");
  EXPECT_EQ(chains[1].rules[0].handle, 1u);
  std::string target;
  EXPECT_EQ(legacy_target_verdict("-A FORWARD -j X", &target), NftVerdict::Jump);
  EXPECT_EQ(target, "X");
  EXPECT_EQ(legacy_target_verdict("-A X -j DROP", nullptr), NftVerdict::Drop);
  EXPECT_EQ(legacy_target_verdict("-A P -p tcp -j DNAT --to-destination 1.2.3.4:22", nullptr), NftVerdict::Accept);
  EXPECT_EQ(legacy_target_verdict("-A P -j LOG", nullptr), NftVerdict::Continue);
  TraceMatch m;
  m.dport = 1222;
  EXPECT_EQ(legacy_match_args(m).size(), 2u);  // tcp and udp
}

}  // namespace
}  // namespace natbpf

namespace natbpf {

TEST(Nat, OnlyNatStatementsAreNat) {
  EXPECT_EQ(nat_statement_kind("ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22"), "dnat");
  EXPECT_EQ(nat_statement_kind("ip saddr 10.0.0.0/8 snat to 1.2.3.4"), "snat");
  EXPECT_EQ(nat_statement_kind("oifname \"eth0\" masquerade random"), "masquerade");
  EXPECT_EQ(nat_statement_kind("tcp dport 80 redirect to :8080"), "redirect");
  EXPECT_EQ(nat_statement_kind("-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080"), "dnat");
  EXPECT_EQ(nat_statement_kind("-A POSTROUTING -o eth0 -j MASQUERADE"), "masquerade");
  EXPECT_EQ(nat_statement_kind("ct status dnat accept"), "");
  EXPECT_EQ(nat_statement_kind("-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT"), "");
  EXPECT_EQ(nat_statement_kind("meta mark 0x1 accept comment \"snat later\""), "");
}

}  // namespace natbpf

namespace natbpf {

// A packet a user's own `meta nftrace set 1` rule traced passes natbpf's fate
// chains too, but never natbpf's marking rule: not natbpf's story.
TEST(Journey, PacketsOtherTracersMarkedAreNotOurs) {
  JourneyBuilder b("natbpf_1", 1000);
  auto user = ev(11, "filter", "input", 4, NftVerdict::Accept, 100);
  user.packet = tcp("fe80::1", 0, "ff02::1", 0);
  b.add(std::move(user));
  b.add(ev(11, "natbpf_1", "mark_pre", std::nullopt, NftVerdict::Accept, 101));  // only the chain's policy
  b.add(ev(11, "natbpf_1", "fate_in", std::nullopt, NftVerdict::Accept, 102));
  auto ours = ev(12, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 103);
  ours.packet = tcp("10.2.1.2", 40000, "10.1.2.3", 1222);
  b.add(std::move(ours));
  b.add(ev(12, "natbpf_1", "fate_in", std::nullopt, NftVerdict::Accept, 104));
  std::vector<Journey> out;
  b.flush(5000, true, [&](Journey&& j) { out.push_back(std::move(j)); });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].trace_id, 12u);
  EXPECT_EQ(b.foreign(), 1u);
}

}  // namespace natbpf

namespace natbpf {

// A stalled reader (a ruleset read, an emulated machine) gets the TRACE
// lines of a dropped SYN 600 ms after the kernel sent them, and after the
// drop record: the record still joins that story, because every source was
// drained at the last flush, before the kernel sent anything of this packet.
TEST(Journey, LateReaderDoesNotSplitAPacketInTwo) {
  auto run = [](bool flushed_before) {
    JourneyBuilder b("natbpf_1", 300'000'000ULL);
    std::vector<Journey> out;
    auto sink = [&](Journey&& j) { out.push_back(std::move(j)); };
    if (flushed_before) b.flush(1'000'000'000ULL, false, sink);
    SkbDropEvent d;
    d.ts_ns = 1'010'000'000ULL;  // kernel time of the drop
    d.skb = 0x1234;
    d.pkt = tcp("10.30.0.1", 40000, "10.30.0.2", 52000);
    b.add(BpfEvent{d});
    Packet syn = tcp("10.30.0.1", 40000, "10.30.0.2", 52000);
    b.add(line_of(0x77, "raw", "PREROUTING", NftVerdict::Continue, 1'610'000'000ULL, syn, true));  // natbpf's TRACE rule
    b.add(line_of(0x77, "filter", "KUBE-FIREWALL", NftVerdict::Drop, 1'610'000'000ULL, syn));
    b.flush(2'500'000'000ULL, false, sink);
    return out;
  };
  auto joined = run(true);
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].bpf.size(), 1u);
  EXPECT_EQ(joined[0].sent_after_ns, 1'000'000'000ULL);
  // Without a drain to bound it, a record 600 ms older than the story is
  // another packet's: told apart, as before.
  EXPECT_EQ(run(false).size(), 2u);
}

// A reader stalled through a SYN and its retransmission (same flow, same
// sequence number, 1 s apart): both drop records are read first, then both
// stories, received together long after. Each story gets its own packet's
// record: IPv4 gives each packet its own IP ID; IPv6 has none, and a packet
// is freed once, so no story takes two records.
TEST(Journey, StalledReaderJoinsEachRetransmissionToItsOwnRecord) {
  auto run = [](bool v6) {
    JourneyBuilder b("natbpf_1", 300'000'000ULL);
    std::vector<Journey> out;
    auto sink = [&](Journey&& j) { out.push_back(std::move(j)); };
    b.flush(1'000'000'000ULL, false, sink);  // drained before the first SYN
    auto syn = [v6](uint16_t ip_id) {
      Packet p = v6 ? tcp("fd00::1", 40000, "fd00::2", 52000) : tcp("10.30.0.1", 40000, "10.30.0.2", 52000);
      p.family = v6 ? 10 : 2;
      p.ip_id = v6 ? 0 : ip_id;
      return p;
    };
    for (uint64_t i = 0; i < 2; i++) {
      SkbDropEvent d;
      d.ts_ns = 1'100'000'000ULL + i * 1'000'000'000ULL;
      d.skb = 0xabc;  // the clone of a retransmission often reuses the address
      d.pkt = syn(static_cast<uint16_t>(100 + i));
      b.add(BpfEvent{d});
    }
    for (uint32_t i = 0; i < 2; i++) {
      auto mark = ev(0x42, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 5'000'000'000ULL + i);
      mark.packet = syn(static_cast<uint16_t>(100 + i));
      b.add(std::move(mark));
      b.add(ev(0x42, "filter", "input", 3, NftVerdict::Drop, 5'000'000'000ULL + i));
    }
    b.flush(6'000'000'000ULL, false, sink);
    return out;
  };
  auto v4 = run(false);
  ASSERT_EQ(v4.size(), 2u);
  for (const auto& j : v4) {
    ASSERT_EQ(j.bpf.size(), 1u);
    EXPECT_EQ(std::get<SkbDropEvent>(j.bpf[0]).pkt.ip_id, j.packet.ip_id);
  }
  auto v6 = run(true);
  ASSERT_EQ(v6.size(), 2u);
  EXPECT_EQ(v6[0].bpf.size(), 1u);
  EXPECT_EQ(v6[1].bpf.size(), 1u);
}

// Two packets of seed 001 (sports 40001, 40002), each marked by our chain and
// dropped in filter forward: two complete stories once flushed.
namespace {
void add_two_dropped_packets(TraceStories& stories) {
  for (uint32_t id : {1u, 2u}) {
    auto mark = ev(id, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 100 * id);
    mark.packet = tcp("10.2.1.2", static_cast<uint16_t>(40000 + id), "10.1.2.3", 1222);
    stories.add(std::move(mark));
    stories.add(ev(id, "filter", "forward", 5, NftVerdict::Drop, 100 * id + 1));
  }
}
}  // namespace

// A story whose chains are still being read (prepare() started it on a
// worker) waits, and so do the stories after it: they are told in order.
TEST(TraceStoriesTest, StoriesWaitForWhatTheirExplanationReads) {
  Ruleset rs = Ruleset::parse(kSeed001Ruleset);
  std::vector<uint16_t> asked;
  bool read_done = false;
  StoryWorld w;
  w.ruleset = [&]() -> const Ruleset& { return rs; };
  w.prepare = [&](const Journey& j) {
    asked.push_back(j.packet.sport);
    return read_done || j.packet.sport != 40001;
  };
  TraceStories stories("natbpf_1", 0, make_json_renderer(), w);
  add_two_dropped_packets(stories);
  testing::internal::CaptureStdout();
  stories.flush(10'000'000'000ULL, false);
  EXPECT_EQ(stories.counters().packets, 0u);
  EXPECT_EQ(asked, std::vector<uint16_t>{40001});  // the second is not asked before the first is told
  read_done = true;
  stories.flush(10'100'000'000ULL, false);
  std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(stories.counters().packets, 2u);
  EXPECT_EQ(asked, (std::vector<uint16_t>{40001, 40001, 40002}));
  EXPECT_LT(printed.find("40001"), printed.find("40002")) << printed;
}

// iptables TRACE lines join the story our nftables marking chain began for
// the same packet (same source, IP ID, sequence). A reader that stalled
// between two of its lines (waiting for a ruleset read) receives them far
// apart, but since the same drain: still one packet, one story.
TEST(Journey, LegacyLinesReceivedFarApartAfterOneDrainAreOnePacket) {
  JourneyBuilder b("natbpf_1", 300'000'000ULL);
  std::vector<Journey> out;
  auto sink = [&](Journey&& j) { out.push_back(std::move(j)); };
  b.flush(1'000'000'000ULL, false, sink);
  Packet syn = tcp("10.30.0.1", 40000, "10.30.0.2", 52000);
  syn.ip_id = 4024;
  auto mark = ev(0x80, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 5'000'000'000ULL);
  mark.packet = syn;
  b.add(std::move(mark));
  b.add(line_of(0x2c, "raw", "PREROUTING", NftVerdict::Continue, 5'001'000'000ULL, syn, true));
  // 399 ms after the first line: the reader waited meanwhile
  b.add(line_of(0x2c, "filter", "KUBE-FIREWALL", NftVerdict::Drop, 5'400'000'000ULL, syn));
  b.flush(9'000'000'000ULL, false, sink);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].trace_id, 0x80u);
  ASSERT_EQ(out[0].steps.size(), 1u);
  EXPECT_EQ(out[0].steps[0].chain, "KUBE-FIREWALL");
}

// An accepted packet's nftables messages, our fate chain's (the last hook)
// among them, are often read before its TRACE lines, which come through
// another socket: the finished story still takes them. Two packets with the
// same headers (UDP from an unconnected socket: IP ID 0) both read before
// any line: each line of our TRACE rule starts the oldest story without a
// line, and the lines after it go on there.
TEST(Journey, LegacyLinesJoinStoriesThatWentOnInOrder) {
  JourneyBuilder b("natbpf_1", 300'000'000ULL);
  std::vector<Journey> out;
  auto sink = [&](Journey&& j) { out.push_back(std::move(j)); };
  Packet dns = tcp("10.30.0.1", 40000, "10.30.0.2", 53);
  dns.l4proto = 17;  // UDP
  dns.ip_id = 0;
  dns.tcp_seq = 0;
  uint64_t t = 5'000'000'000ULL;
  for (uint32_t id : {0x80u, 0x81u}) {  // both packets' nftables messages first
    auto mark = ev(id, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, t++);
    mark.packet = dns;
    b.add(std::move(mark));
    auto fate = ev(id, "natbpf_1", "fate_in", 1, NftVerdict::Accept, t++);
    fate.packet = dns;
    b.add(std::move(fate));
  }
  for (const char* chain : {"INPUT", "KUBE-SERVICES"}) {  // then each packet's lines
    b.add(line_of(0x2c, "raw", "PREROUTING", NftVerdict::Continue, t++, dns, true));
    b.add(line_of(0x2c, "filter", chain, NftVerdict::Accept, t++, dns));
  }
  b.flush(9'000'000'000ULL, false, sink);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].trace_id, 0x80u);
  EXPECT_EQ(out[1].trace_id, 0x81u);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(out[i].fate, Fate::Local);
    ASSERT_EQ(out[i].steps.size(), 1u) << i;
    EXPECT_EQ(out[i].steps[0].chain, i == 0 ? "INPUT" : "KUBE-SERVICES");
  }
}

// --count 1: once one story is told, the next complete one is neither told
// nor prepared (no rules are read for a story nobody will see).
TEST(TraceStoriesTest, NothingIsReadForAStoryPastTheCount) {
  Ruleset rs = Ruleset::parse(kSeed001Ruleset);
  int prepared = 0;
  StoryWorld w;
  w.ruleset = [&]() -> const Ruleset& { return rs; };
  w.prepare = [&](const Journey&) { return ++prepared > 0; };
  TraceStories stories("natbpf_1", 1, make_json_renderer(), w);
  add_two_dropped_packets(stories);
  testing::internal::CaptureStdout();
  stories.flush(10'000'000'000ULL, false);
  testing::internal::GetCapturedStdout();
  EXPECT_TRUE(stories.done());
  EXPECT_EQ(stories.counters().packets, 1u);
  EXPECT_EQ(prepared, 1);
}

// The segments of a traced GSO packet (or fragments) are freed one by one,
// each with an IP ID of its own: no story of their own comes, so the later
// ones still join the packet's story instead of being told alone.
TEST(Journey, SegmentsOfOnePacketJoinItsStory) {
  JourneyBuilder b("natbpf_1", 300'000'000ULL);
  std::vector<Journey> out;
  auto sink = [&](Journey&& j) { out.push_back(std::move(j)); };
  b.flush(1'000'000'000ULL, false, sink);
  Packet p = tcp("10.30.0.1", 40000, "10.30.0.2", 8080);
  p.ip_id = 100;
  auto mark = ev(0x51, "natbpf_1", "mark_out", 2, NftVerdict::Accept, 1'100'000'000ULL);
  mark.packet = p;
  b.add(std::move(mark));
  for (uint16_t i = 0; i < 3; i++) {
    SkbDropEvent d;
    d.ts_ns = 1'100'500'000ULL + i;
    d.skb = 0x500 + i;
    d.pkt = p;
    d.pkt.ip_id = static_cast<uint16_t>(100 + i);
    b.add(BpfEvent{d});
  }
  b.flush(2'000'000'000ULL, false, sink);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bpf.size(), 3u);
}

// While the ruleset is still being read (on a worker), complete stories
// wait, in order, and are told once it is there; the final flush does not wait.
TEST(TraceStoriesTest, CompleteStoriesWaitForTheWorld) {
  Ruleset rs = Ruleset::parse(kSeed001Ruleset);
  bool ready = false;
  int rulesets_asked = 0;
  StoryWorld w;
  w.ready = [&] { return ready; };
  w.ruleset = [&]() -> const Ruleset& {
    rulesets_asked++;
    return rs;
  };
  TraceStories stories("natbpf_1", 0, make_json_renderer(), w);
  auto told = [&] { return stories.counters().packets; };
  add_two_dropped_packets(stories);
  testing::internal::CaptureStdout();
  stories.flush(10'000'000'000ULL, false);
  EXPECT_EQ(told(), 0u);
  EXPECT_EQ(rulesets_asked, 0) << "nothing may ask the ruleset while it is read";
  ready = true;
  stories.flush(10'100'000'000ULL, false);
  std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(told(), 2u);
  EXPECT_LT(printed.find("40001"), printed.find("40002")) << printed;
  EXPECT_THAT(printed, HasSubstr("\"hook\":\"forward\"")) << "hooks are named when the story is told";
  ready = false;
  auto late = ev(3, "natbpf_1", "mark_pre", 2, NftVerdict::Accept, 10'200'000'000ULL);
  late.packet = tcp("10.2.1.2", 40003, "10.1.2.3", 1222);
  stories.add(std::move(late));
  testing::internal::CaptureStdout();
  stories.flush(10'300'000'000ULL, true);
  testing::internal::GetCapturedStdout();
  EXPECT_EQ(told(), 3u);
}

}  // namespace natbpf
