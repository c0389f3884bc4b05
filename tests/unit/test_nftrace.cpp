// The nftables trace parser: messages are built with libmnl the way
// net/netfilter/nf_tables_trace.c builds them (nftrace_builders.h), then
// parsed back. Header decoding is tested in test_nftrace_headers.cpp.
#include <arpa/inet.h>
#include <endian.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "nftrace_builders.h"
#include "sources/nftrace.h"

namespace natbpf {
namespace {

TEST(Nftrace, RuleWithAccept) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be64(NFTA_TRACE_RULE_HANDLE, 7).verdict(NF_ACCEPT).be32(NFTA_TRACE_OIF, 3);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->recv_ns, 0u);
  EXPECT_EQ(ev->id, 0x1a2b3c4du);
  EXPECT_EQ(ev->family, NFPROTO_INET);
  EXPECT_EQ(ev->type, NftTraceType::Rule);
  EXPECT_EQ(ev->table, "filter");
  EXPECT_EQ(ev->chain, "allowed_dnats");
  EXPECT_EQ(ev->rule_handle, 7u);
  EXPECT_EQ(ev->verdict, NftVerdict::Accept);
  EXPECT_EQ(ev->verdict_code, NF_ACCEPT);
  EXPECT_EQ(ev->effective_verdict(), NftVerdict::Accept);
  EXPECT_FALSE(ev->jump_target);
  EXPECT_FALSE(ev->policy);
  EXPECT_EQ(ev->nfproto, NFPROTO_IPV4);
  EXPECT_EQ(ev->oif, 3u);
  EXPECT_FALSE(ev->iif);
  EXPECT_FALSE(ev->mark);
  EXPECT_FALSE(ev->packet);
  EXPECT_FALSE(ev->ct_id);
  EXPECT_EQ(format_nftrace_line(*ev), "trace id 1a2b3c4d inet filter allowed_dnats rule handle 7 verdict accept oif 3");
}

TEST(Nftrace, RuleWithJumpAndTarget) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE, 0x1, "nat", "prerouting").be64(NFTA_TRACE_RULE_HANDLE, 0x1234567890ull);
  m.verdict(NFT_JUMP, "allowed_dnats");
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->rule_handle, 0x1234567890ull);
  EXPECT_EQ(ev->verdict, NftVerdict::Jump);
  EXPECT_EQ(ev->verdict_code, NFT_JUMP);
  EXPECT_EQ(ev->jump_target, "allowed_dnats");
  EXPECT_EQ(format_nftrace_line(*ev),
            "trace id 00000001 inet nat prerouting rule handle 78187493520 verdict jump allowed_dnats");
}

TEST(Nftrace, PolicyDropHasNoVerdict) {
  TraceMsg m(NFPROTO_IPV4);
  m.basics(NFT_TRACETYPE_POLICY, 0xdeadbeef, "filter", "forward").be32(NFTA_TRACE_POLICY, NF_DROP);
  m.be32(NFTA_TRACE_MARK, 0x42);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->type, NftTraceType::Policy);
  EXPECT_FALSE(ev->verdict);
  EXPECT_FALSE(ev->rule_handle);
  EXPECT_EQ(ev->policy, 0u);
  EXPECT_EQ(ev->mark, 0x42u);
  EXPECT_EQ(ev->effective_verdict(), NftVerdict::Drop);
  EXPECT_EQ(format_nftrace_line(*ev), "trace id deadbeef ip filter forward policy drop meta mark 0x00000042");
}

TEST(Nftrace, AbsentVerdictIsNotDrop) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be64(NFTA_TRACE_RULE_HANDLE, 3);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_FALSE(ev->verdict);
  EXPECT_FALSE(ev->verdict_code);
  EXPECT_FALSE(ev->effective_verdict());
  std::string line = format_nftrace_line(*ev);
  EXPECT_EQ(line.find("drop"), std::string::npos) << line;
  EXPECT_NE(line.find("(no verdict)"), std::string::npos) << line;

  // A policy event without NFTA_TRACE_POLICY is just as undecided.
  TraceMsg p;
  p.basics(NFT_TRACETYPE_POLICY);
  auto pev = p.parse();
  ASSERT_TRUE(pev) << pev.error().to_string();
  EXPECT_FALSE(pev->policy);
  EXPECT_FALSE(pev->effective_verdict());
}

TEST(Nftrace, VerdictNestWithoutCodeIsAbsent) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RETURN);
  nlattr* nest = mnl_attr_nest_start(m.nlh(), NFTA_TRACE_VERDICT);
  mnl_attr_put_strz(m.nlh(), NFTA_VERDICT_CHAIN, "somewhere");
  mnl_attr_nest_end(m.nlh(), nest);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->type, NftTraceType::Return);
  EXPECT_FALSE(ev->verdict);
  EXPECT_EQ(ev->jump_target, "somewhere");
}

TEST(Nftrace, VerdictCodes) {
  EXPECT_EQ(nft_verdict_from_code(NF_DROP), NftVerdict::Drop);
  EXPECT_EQ(nft_verdict_from_code(NF_DROP_ERR(-EPERM)), NftVerdict::Drop);
  EXPECT_EQ(nft_verdict_from_code(NF_ACCEPT), NftVerdict::Accept);
  EXPECT_EQ(nft_verdict_from_code(NF_STOLEN), NftVerdict::Stolen);
  EXPECT_EQ(nft_verdict_from_code(NF_QUEUE_NR(5)), NftVerdict::Queue);
  // Queue 65535 with bypass: negative as int32 but still NF_QUEUE.
  EXPECT_EQ(nft_verdict_from_code(static_cast<int32_t>(NF_QUEUE_NR(0xffffu) | NF_VERDICT_FLAG_QUEUE_BYPASS)),
            NftVerdict::Queue);
  EXPECT_EQ(nft_verdict_from_code(NF_REPEAT), NftVerdict::Repeat);
  EXPECT_EQ(nft_verdict_from_code(NF_STOP), NftVerdict::Stop);
  EXPECT_EQ(nft_verdict_from_code(NFT_CONTINUE), NftVerdict::Continue);
  EXPECT_EQ(nft_verdict_from_code(NFT_BREAK), NftVerdict::Break);
  EXPECT_EQ(nft_verdict_from_code(NFT_JUMP), NftVerdict::Jump);
  EXPECT_EQ(nft_verdict_from_code(NFT_GOTO), NftVerdict::Goto);
  EXPECT_EQ(nft_verdict_from_code(NFT_RETURN), NftVerdict::Return);
  EXPECT_EQ(nft_verdict_from_code(6), NftVerdict::Unknown);
  EXPECT_EQ(nft_verdict_from_code(-6), NftVerdict::Unknown);
  EXPECT_STREQ(to_string(NftVerdict::Goto), "goto");

  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).verdict(NF_QUEUE_NR(7));
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->verdict, NftVerdict::Queue);
  EXPECT_EQ(ev->verdict_code, NF_QUEUE_NR(7));
}

TEST(Nftrace, ShortRuleHandleIsAnError) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be32(NFTA_TRACE_RULE_HANDLE, 7).verdict(NF_ACCEPT);
  auto ev = m.parse();
  ASSERT_FALSE(ev);
  EXPECT_NE(ev.error().message.find("NFTA_TRACE_RULE_HANDLE has 4 bytes, expected 8"), std::string::npos)
      << ev.error().message;
}

TEST(Nftrace, WrongLengthsAreErrors) {
  {
    TraceMsg m;
    m.basics(NFT_TRACETYPE_RULE).be16(NFTA_TRACE_IIF, 1);
    EXPECT_FALSE(m.parse());
  }
  {
    TraceMsg m;
    m.basics(NFT_TRACETYPE_RULE).be32(kCtDirection, 1);
    EXPECT_FALSE(m.parse());
  }
  {
    TraceMsg m;  // verdict code is a u32 inside the nest
    m.basics(NFT_TRACETYPE_RULE);
    nlattr* nest = mnl_attr_nest_start(m.nlh(), NFTA_TRACE_VERDICT);
    mnl_attr_put_u16(m.nlh(), NFTA_VERDICT_CODE, 1);
    mnl_attr_nest_end(m.nlh(), nest);
    EXPECT_FALSE(m.parse());
  }
  {
    TraceMsg m;  // an empty table name
    m.be32(NFTA_TRACE_TYPE, NFT_TRACETYPE_RULE).be32(NFTA_TRACE_ID, 1).str(NFTA_TRACE_CHAIN, "c");
    m.raw(NFTA_TRACE_TABLE, {});
    EXPECT_FALSE(m.parse());
  }
}

TEST(Nftrace, CutOffMessagesAreErrorsNotCrashes) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be64(NFTA_TRACE_RULE_HANDLE, 7).verdict(NFT_JUMP, "target");
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(IPPROTO_TCP, "10.2.1.2", "10.1.2.3", 60, 1));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, tcp_header(40000, 1222, 1, 0x02));
  size_t full = m.len();
  ASSERT_TRUE(m.parse());

  // Fewer bytes received than nlmsg_len claims.
  EXPECT_FALSE(parse_nftrace_message(m.nlh(), full - 1));
  EXPECT_FALSE(parse_nftrace_message(m.nlh(), 10));
  EXPECT_FALSE(parse_nftrace_message(m.nlh(), 0));
  EXPECT_FALSE(parse_nftrace_message(nullptr, 100));

  // Where each top-level attribute starts and ends (without its padding).
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t start = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg)); start < full;) {
    const auto* attr = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(m.nlh()) + start);
    spans.emplace_back(start, start + attr->nla_len);
    start += MNL_ALIGN(attr->nla_len);
  }
  ASSERT_EQ(spans.size(), 9u);

  // nlmsg_len itself cut at every length: a cut strictly inside an attribute
  // must be an error; a cut between attributes leaves a shorter valid message
  // once table and chain are in.
  std::vector<char> copy(reinterpret_cast<char*>(m.nlh()), reinterpret_cast<char*>(m.nlh()) + full);
  for (size_t cut = 0; cut < full; cut++) {
    std::vector<char> buf(copy);
    auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
    nlh->nlmsg_len = static_cast<uint32_t>(cut);
    auto ev = parse_nftrace_message(nlh, cut);
    bool inside = false;
    for (auto [start, end] : spans) inside |= cut > start && cut < end;
    if (inside) {
      EXPECT_FALSE(ev) << "cut " << cut;
    } else if (ev) {
      EXPECT_EQ(ev->table, "filter") << "cut " << cut;
    }
  }
  // Explicitly: the verdict nest cut in its middle.
  std::vector<char> buf(copy);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
  nlh->nlmsg_len = static_cast<uint32_t>(full - 2);
  EXPECT_FALSE(parse_nftrace_message(nlh, full - 2));
}

TEST(Nftrace, RandomCorruptionNeverCrashes) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be64(NFTA_TRACE_RULE_HANDLE, 7).verdict(NFT_JUMP, "target");
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv6_header(IPPROTO_UDP, "2001:db8::1", "2001:db8::2", 8));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, udp_header(1, 2, 8));
  size_t full = m.len();
  std::vector<char> copy(reinterpret_cast<char*>(m.nlh()), reinterpret_cast<char*>(m.nlh()) + full);
  ASSERT_TRUE(parse_nftrace_message(reinterpret_cast<nlmsghdr*>(copy.data()), full));
  std::mt19937 rng(42);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; i++) {
    std::vector<char> buf(copy);
    for (int flips = 0; flips < 3; flips++) buf[16 + rng() % (full - 16)] = static_cast<char>(rng());
    auto ev = parse_nftrace_message(reinterpret_cast<nlmsghdr*>(buf.data()), full);
    if (!ev) {
      refused++;
      continue;
    }
    accepted++;
    // What is accepted still has what every trace message must have.
    EXPECT_FALSE(ev->table.empty());
    EXPECT_FALSE(ev->chain.empty());
    EXPECT_FALSE(format_nftrace_line(*ev).empty());
  }
  // The corruption reaches both outcomes: it tests the checks, not one path.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

TEST(Nftrace, EmptyTableOrChainNameIsRefused) {
  for (bool empty_table : {true, false}) {
    TraceMsg m;
    m.be32(NFTA_TRACE_TYPE, NFT_TRACETYPE_RULE);
    m.be32(NFTA_TRACE_ID, 1);
    m.str(NFTA_TRACE_CHAIN, empty_table ? "c" : "");
    m.str(NFTA_TRACE_TABLE, empty_table ? "" : "t");
    m.verdict(NF_ACCEPT);
    EXPECT_FALSE(m.parse());
  }
}

TEST(Nftrace, MissingRequiredAttributes) {
  struct Case {
    bool table, chain, id, type;
  };
  for (Case c : {Case{false, true, true, true}, Case{true, false, true, true}, Case{true, true, false, true},
                 Case{true, true, true, false}}) {
    TraceMsg m;
    if (c.type) m.be32(NFTA_TRACE_TYPE, NFT_TRACETYPE_RULE);
    if (c.id) m.be32(NFTA_TRACE_ID, 1);
    if (c.chain) m.str(NFTA_TRACE_CHAIN, "c");
    if (c.table) m.str(NFTA_TRACE_TABLE, "t");
    m.verdict(NF_ACCEPT);
    EXPECT_FALSE(m.parse());
  }
}

TEST(Nftrace, OtherMessageTypesAreErrors) {
  TraceMsg m(NFPROTO_INET, NFT_MSG_NEWRULE);
  m.basics(NFT_TRACETYPE_RULE);
  auto ev = m.parse();
  ASSERT_FALSE(ev);
  EXPECT_NE(ev.error().message.find("not NFT_MSG_TRACE"), std::string::npos);

  TraceMsg bare;  // no nfgenmsg at all
  bare.nlh()->nlmsg_len = MNL_NLMSG_HDRLEN;
  EXPECT_FALSE(bare.parse());
}

TEST(Nftrace, UnknownAttributesAreSkipped) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).be32(30, 0xffffffff).raw(200, {1, 2, 3}).raw(NFTA_TRACE_PAD, {});
  m.verdict(NF_DROP);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->verdict, NftVerdict::Drop);
  EXPECT_EQ(ev->verdict_code, NF_DROP);
}

TEST(Nftrace, UnknownTraceTypeIsKept) {
  TraceMsg m;
  m.basics(9);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->type, NftTraceType::Unknown);
}

TEST(Nftrace, IdByteOrderMatchesNft) {
  TraceMsg m;
  m.be32(NFTA_TRACE_TYPE, NFT_TRACETYPE_RULE).str(NFTA_TRACE_CHAIN, "c").str(NFTA_TRACE_TABLE, "t");
  mnl_attr_put_u32(m.nlh(), NFTA_TRACE_ID, htonl(0x1a2b3c4d));
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->id, 0x1a2b3c4du);
  EXPECT_EQ(format_nftrace_line(*ev).rfind("trace id 1a2b3c4d ", 0), 0u);
}

TEST(Nftrace, ConntrackAttributesOf618) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE).verdict(NF_ACCEPT);
  m.be32(kCtState, 1u << 3).u8(kCtDirection, 1).be32(kCtId, 0xabcdef01).be32(kCtStatus, 0x18a);
  auto ev = m.parse();
  ASSERT_TRUE(ev) << ev.error().to_string();
  EXPECT_EQ(ev->ct_state, 8u);
  EXPECT_EQ(ev->ct_direction, 1);
  EXPECT_EQ(ev->ct_id, 0xabcdef01u);
  EXPECT_EQ(ev->ct_status, 0x18au);
}

TEST(Nftrace, ListenerDrainsIdleSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "joining NFNLGRP_NFTRACE needs CAP_NET_ADMIN";
  auto listener = NftraceListener::open();
  ASSERT_TRUE(listener) << listener.error().to_string();
  EXPECT_GE(listener->fd(), 0);
  NftraceListener moved = std::move(*listener);
  int events = 0;
  auto st = moved.drain([&](NftTraceEvent&&) { events++; });
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(moved.lost_overruns(), 0u);
  EXPECT_EQ(moved.parse_errors(), 0u);
  EXPECT_TRUE(moved.last_parse_error().empty());
  EXPECT_EQ(listener->fd(), -1);
}

}  // namespace
}  // namespace natbpf
