// nft_rule_text: each rule is built from the expressions `nft --debug=netlink`
// showed for it (nft 1.0.6, kernel 6.18), and must print as `nft -a -t -s
// list` printed it; what it cannot print exactly it refuses.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include <memory>
#include <string>

#include "sources/nft_rule_text.h"
#include "sources/nft_values.h"

namespace natbpf {
namespace {

std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string addr4(const char* a) {
  in_addr x{};
  inet_pton(AF_INET, a, &x);
  return std::string(reinterpret_cast<const char*>(&x), 4);
}
std::string port(uint16_t p) { return {char(p >> 8), char(p & 0xff)}; }

class Rule {
 public:
  Rule() : r_(nftnl_rule_alloc()) {}
  const nftnl_rule* get() const { return r_.get(); }

  Rule& payload(uint32_t base, uint32_t off, uint32_t len, uint32_t dreg) {
    return add("payload", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    });
  }
  Rule& meta(uint32_t key, uint32_t dreg) {
    return add("meta", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
      nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    });
  }
  Rule& meta_set(uint32_t key, uint32_t sreg) {
    return add("meta", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
      nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
    });
  }
  Rule& cmp(uint32_t op, const std::string& data, uint32_t sreg = NFT_REG_1) {
    return add("cmp", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
      nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data.data(), data.size());
    });
  }
  Rule& bitwise(const std::string& mask, const std::string& x) {
    return add("bitwise", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, mask.size());
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask.data(), mask.size());
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, x.data(), x.size());
    });
  }
  Rule& lookup(const char* set, bool vmap = false, uint32_t flags = 0) {
    return add("lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
      if (vmap) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, flags);
    });
  }
  Rule& verdict(int32_t code, const char* chain = nullptr) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, uint32_t(code));
      if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
    });
  }
  Rule& data(uint32_t dreg, const std::string& bytes) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
      nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, bytes.data(), bytes.size());
    });
  }
  Rule& ct_state() {
    return add("ct", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
      nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    });
  }
  Rule& reject(uint32_t type, uint8_t code) {
    return add("reject", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
      nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
    });
  }
  Rule& limit() {
    return add("limit", [&](nftnl_expr* e) {
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, 10);
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
    });
  }
  // u32 attributes only.
  Rule& expr(const char* name, std::initializer_list<std::pair<uint16_t, uint32_t>> attrs) {
    return add(name, [&](nftnl_expr* e) {
      for (auto [attr, v] : attrs) nftnl_expr_set_u32(e, attr, v);
    });
  }
  Rule& comment(const char* text) {
    std::unique_ptr<nftnl_udata_buf, void (*)(const nftnl_udata_buf*)> buf(nftnl_udata_buf_alloc(256),
                                                                     nftnl_udata_buf_free);
    nftnl_udata_put_strz(buf.get(), NFTNL_UDATA_RULE_COMMENT, text);
    nftnl_rule_set_data(r_.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(buf.get()),
                        nftnl_udata_buf_len(buf.get()));
    return *this;
  }

 private:
  template <typename F>
  Rule& add(const char* name, F fill) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    fill(e);
    nftnl_rule_add_expr(r_.get(), e);
    return *this;
  }
  struct Free {
    void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
  };
  std::unique_ptr<nftnl_rule, Free> r_;
};

const NftSets kKubeProxySets = {
    {"cluster-ips", {4, 0, {}}},
    {"nodeport-ips", {4, 0, {}}},
    {"firewall-ips", {12, NFT_SET_MAP | NFT_SET_CONCAT, {}}},
    {"no-endpoint-nodeports", {8, NFT_SET_MAP | NFT_SET_CONCAT, {}}},
    // numgen random mod 2 vmap { ... }: the kernel holds 1 before 0.
    {"__map0",
     {4,
      NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP,
      {{u32(1), NFT_GOTO, "endpoint-SFVJEKDK-demo/web/tcp/http__10.244.0.2/8080"},
       {u32(0), NFT_GOTO, "endpoint-BYW2A3AT-demo/web/tcp/http__10.244.0.1/8080"}}}},
};

std::string text(const Rule& r, uint32_t family = NFPROTO_IPV4, const NftSets& sets = kKubeProxySets) {
  return nft_rule_text(r.get(), family, sets).value_or("<refused>");
}

TEST(NftRuleText, KubeProxyFilterRules) {
  EXPECT_EQ(text(Rule()
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1)
                     .lookup("cluster-ips")
                     .reject(NFT_REJECT_ICMP_UNREACH, 3)
                     .comment("Reject traffic to invalid ports of ClusterIPs")),
            "ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"");
  EXPECT_EQ(text(Rule()
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1)
                     .bitwise(u32(0x0000f0ff), u32(0))
                     .cmp(NFT_CMP_EQ, u32(0x0000600a))
                     .verdict(NF_DROP)),
            "ip daddr 10.96.0.0/12 drop");
  EXPECT_EQ(text(Rule().ct_state().bitwise(u32(8), u32(0)).cmp(NFT_CMP_NEQ, u32(0)).verdict(NFT_JUMP, "firewall-check")),
            "ct state new jump firewall-check");
  EXPECT_EQ(text(Rule()
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1)
                     .meta(NFT_META_L4PROTO, NFT_REG32_01)
                     .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_02)
                     .lookup("firewall-ips", true)),
            "ip daddr . meta l4proto . th dport vmap @firewall-ips");
  EXPECT_EQ(text(Rule()
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1)
                     .lookup("nodeport-ips")
                     .meta(NFT_META_L4PROTO, NFT_REG_1)
                     .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01)
                     .lookup("no-endpoint-nodeports", true)),
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports");
}

TEST(NftRuleText, KubeProxyNatRules) {
  EXPECT_EQ(text(Rule().meta(NFT_META_MARK, NFT_REG_1).bitwise(u32(0xffffbfff), u32(0x4000)).meta_set(NFT_META_MARK, NFT_REG_1)),
            "meta mark set meta mark | 0x00004000");
  EXPECT_EQ(text(Rule().meta(NFT_META_MARK, NFT_REG_1).bitwise(u32(0xffffffff), u32(0x4000)).meta_set(NFT_META_MARK, NFT_REG_1)),
            "meta mark set meta mark ^ 0x00004000");
  EXPECT_EQ(text(Rule()
                     .meta(NFT_META_MARK, NFT_REG_1)
                     .bitwise(u32(0x4000), u32(0))
                     .cmp(NFT_CMP_EQ, u32(0))
                     .verdict(NFT_RETURN)),
            "meta mark & 0x00004000 == 0x00000000 return");
  EXPECT_EQ(text(Rule().expr("masq", {{NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY}})), "masquerade fully-random");
  EXPECT_EQ(text(Rule()
                     .meta(NFT_META_L4PROTO, NFT_REG_1)
                     .cmp(NFT_CMP_EQ, std::string(1, char(IPPROTO_TCP)))
                     .data(NFT_REG_1, addr4("10.244.0.1"))
                     .data(NFT_REG_2, port(8080))
                     .expr("nat", {{NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT},
                                   {NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4},
                                   {NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1},
                                   {NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1},
                                   {NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2},
                                   {NFTNL_EXPR_NAT_REG_PROTO_MAX, NFT_REG_2},
                                   {NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED}})),
            "meta l4proto tcp dnat to 10.244.0.1:8080");
  EXPECT_EQ(text(Rule()
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1)
                     .cmp(NFT_CMP_EQ, addr4("10.96.0.1"))
                     .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1)
                     .bitwise(u32(0x0000ffff), u32(0))
                     .cmp(NFT_CMP_NEQ, u32(0x0000f40a))
                     .verdict(NFT_JUMP, "mark-for-masquerade")),
            "ip daddr 10.96.0.1 ip saddr != 10.244.0.0/16 jump mark-for-masquerade");
  EXPECT_EQ(text(Rule()
                     .expr("numgen", {{NFTNL_EXPR_NG_DREG, NFT_REG_1}, {NFTNL_EXPR_NG_MODULUS, 2}, {NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM}})
                     .lookup("__map0", true)),
            "numgen random mod 2 vmap { 0 : goto endpoint-BYW2A3AT-demo/web/tcp/http__10.244.0.1/8080, "
            "1 : goto endpoint-SFVJEKDK-demo/web/tcp/http__10.244.0.2/8080 }");
  EXPECT_EQ(text(Rule()
                     .expr("fib", {{NFTNL_EXPR_FIB_DREG, NFT_REG_1},
                                   {NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE},
                                   {NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR}})
                     .cmp(NFT_CMP_EQ, u32(2))
                     .verdict(NFT_JUMP, "mark-for-masquerade")
                     .comment("masquerade local traffic")),
            "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"");
}

// An inet table: nft hides the dependencies it added ("meta nfproto ipv4"
// before an ip header field, "meta l4proto tcp" before a port).
TEST(NftRuleText, InetDependenciesAreHidden) {
  const NftSets sets = {{"s4", {4, 0, {}}},
                        {"__set0",
                         {1,
                          NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
                          {{std::string(1, char(IPPROTO_UDP)), std::nullopt, ""},
                           {std::string(1, char(IPPROTO_TCP)), std::nullopt, ""}}}}};
  auto nfproto4 = [](Rule& r) -> Rule& {
    return r.meta(NFT_META_NFPROTO, NFT_REG_1).cmp(NFT_CMP_EQ, std::string(1, char(NFPROTO_IPV4)));
  };
  auto l4 = [](Rule& r, int proto) -> Rule& {
    return r.meta(NFT_META_L4PROTO, NFT_REG_1).cmp(NFT_CMP_EQ, std::string(1, char(proto)));
  };
  Rule tcp22;
  l4(tcp22, IPPROTO_TCP).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1).cmp(NFT_CMP_EQ, port(22)).verdict(NF_ACCEPT);
  EXPECT_EQ(text(tcp22, NFPROTO_INET, sets), "tcp dport 22 accept");
  Rule saddr;
  nfproto4(saddr).payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1).cmp(NFT_CMP_EQ, addr4("1.2.3.4")).verdict(NF_DROP);
  EXPECT_EQ(text(saddr, NFPROTO_INET, sets), "ip saddr 1.2.3.4 drop");
  Rule not_in;
  nfproto4(not_in).payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1).lookup("s4", false, NFT_LOOKUP_F_INV).verdict(NF_DROP);
  EXPECT_EQ(text(not_in, NFPROTO_INET, sets), "ip daddr != @s4 drop");
  Rule anon;
  anon.meta(NFT_META_L4PROTO, NFT_REG_1)
      .lookup("__set0")
      .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)
      .cmp(NFT_CMP_EQ, port(53))
      .verdict(NF_ACCEPT);
  EXPECT_EQ(text(anon, NFPROTO_INET, sets), "meta l4proto { tcp, udp } th dport 53 accept");
  // A /8 prefix is a one-byte load.
  Rule udp;
  l4(udp, IPPROTO_UDP).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, NFT_REG_1).cmp(NFT_CMP_EQ, port(53));
  nfproto4(udp).payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 1, NFT_REG_1).cmp(NFT_CMP_EQ, std::string(1, char(10)));
  udp.expr("counter", {}).verdict(NF_ACCEPT);
  EXPECT_EQ(text(udp, NFPROTO_INET, sets), "udp sport 53 ip daddr 10.0.0.0/8 counter accept");
  Rule ct;
  ct.ct_state().bitwise(u32(6), u32(0)).cmp(NFT_CMP_NEQ, u32(0)).verdict(NF_ACCEPT);
  EXPECT_EQ(text(ct, NFPROTO_INET, sets), "ct state established,related accept");
  Rule iif;
  iif.meta(NFT_META_IIFNAME, NFT_REG_1).cmp(NFT_CMP_EQ, std::string("eth0") + std::string(12, '\0')).verdict(NF_ACCEPT);
  EXPECT_EQ(text(iif, NFPROTO_INET, sets), "iifname \"eth0\" accept");
}

// What it cannot print as nft would, it refuses (the chain is then listed
// with libnftables).
TEST(NftRuleText, RefusesWhatItDoesNotKnow) {
  // An expression it does not know: natbpf's own marking rule ends in limit.
  EXPECT_FALSE(nft_rule_text(Rule()
                                 .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, port(5353))
                                 .limit()
                                 .get(),
                             NFPROTO_INET, {}));
  // A register loaded and never read.
  EXPECT_FALSE(nft_rule_text(Rule().meta(NFT_META_MARK, NFT_REG_1).verdict(NF_ACCEPT).get(), NFPROTO_IPV4, {}));
  // A set it was not told about.
  EXPECT_FALSE(nft_rule_text(Rule().payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1).lookup("unknown").get(),
                             NFPROTO_IPV4, {}));
  // An interface wildcard ("eth*" compares 3 bytes).
  EXPECT_FALSE(nft_rule_text(Rule().meta(NFT_META_IIFNAME, NFT_REG_1).cmp(NFT_CMP_EQ, "eth").verdict(NF_ACCEPT).get(),
                             NFPROTO_INET, {}));
  // An ip header field in an inet table without its nfproto dependency.
  EXPECT_FALSE(nft_rule_text(Rule()
                                 .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, addr4("1.2.3.4"))
                                 .get(),
                             NFPROTO_INET, {}));
  // Nothing at all: an empty rule is not one nft prints.
  EXPECT_FALSE(nft_rule_text(Rule().get(), NFPROTO_IPV4, {}));
  // An immediate without its verdict (absent reads as 0, NF_DROP).
  EXPECT_FALSE(nft_rule_text(Rule().expr("immediate", {{NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT}}).get(), NFPROTO_IPV4, {}));
}

// nft names every port after the protocol a rule matched, printed or not:
// where this cannot follow it, it refuses.
TEST(NftRuleText, PortsAreNamedByTheRulesProtocol) {
  auto tcp = std::string(1, char(IPPROTO_TCP));
  Rule two_ports;
  two_ports.meta(NFT_META_L4PROTO, NFT_REG_1)
      .cmp(NFT_CMP_EQ, tcp)
      .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, NFT_REG_1)
      .cmp(NFT_CMP_NEQ, port(53))
      .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)
      .cmp(NFT_CMP_EQ, port(53))
      .verdict(NF_ACCEPT);
  EXPECT_EQ(text(two_ports), "tcp sport != 53 tcp dport 53 accept");
  // Protocol numbers above 127 too (a signed char compared with 132 never matched).
  Rule sctp;
  sctp.meta(NFT_META_L4PROTO, NFT_REG_1)
      .cmp(NFT_CMP_EQ, std::string(1, char(IPPROTO_SCTP)))
      .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)
      .cmp(NFT_CMP_EQ, port(3868))
      .verdict(NF_ACCEPT);
  EXPECT_EQ(text(sctp), "sctp dport 3868 accept");
  // "meta l4proto tcp" printed (not right before the port): nft would still
  // call the port "tcp dport" and hide the match.
  EXPECT_FALSE(nft_rule_text(Rule()
                                 .meta(NFT_META_L4PROTO, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, tcp)
                                 .ct_state()
                                 .bitwise(u32(8), u32(0))
                                 .cmp(NFT_CMP_NEQ, u32(0))
                                 .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, port(22))
                                 .get(),
                             NFPROTO_IPV4, {}));
  // ICMP has no ports: "icmp type echo-request icmp code 0" is one 2-byte load at 0.
  EXPECT_FALSE(nft_rule_text(Rule()
                                 .meta(NFT_META_L4PROTO, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, std::string(1, char(IPPROTO_ICMP)))
                                 .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, port(0x0800))
                                 .get(),
                             NFPROTO_IPV4, {}));
  // meta nfproto where nft would hide it by rules this does not follow (an ip table).
  EXPECT_FALSE(nft_rule_text(Rule()
                                 .meta(NFT_META_NFPROTO, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, std::string(1, char(NFPROTO_IPV4)))
                                 .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1)
                                 .cmp(NFT_CMP_EQ, addr4("1.2.3.4"))
                                 .get(),
                             NFPROTO_IPV4, {}));
}

// Anonymous sets nft would print otherwise: interface names (nft sorts them
// by value, not as text) and elements with a comment.
TEST(NftRuleText, RefusesAnonymousSetsItCannotOrder) {
  std::string eth0 = std::string("eth0") + std::string(12, '\0'), wg0 = std::string("wg0") + std::string(13, '\0');
  NftSets ifnames = {{"__set0", {16, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, {{eth0, std::nullopt, ""}, {wg0, std::nullopt, ""}}}}};
  EXPECT_FALSE(nft_rule_text(Rule().meta(NFT_META_IIFNAME, NFT_REG_1).lookup("__set0").verdict(NF_ACCEPT).get(),
                             NFPROTO_INET, ifnames));
  NftSets commented = {{"__set0", {2, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, {{port(22), std::nullopt, "", true}}}}};
  EXPECT_FALSE(nft_rule_text(Rule().payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1).lookup("__set0").get(),
                             NFPROTO_IPV4, commented));
}

}  // namespace
}  // namespace natbpf

namespace natbpf {
namespace {

// A set lookup's key as the explanation writes it, in the bytes the kernel
// compares (nft's datatype ids: ipv4_addr 7, ipv6_addr 8, inet_proto 12,
// inet_service 13; a concatenation's fields padded to 4 bytes).
TEST(NftValues, SetKeyIsWhatTheSetHolds) {
  using nft_values::set_key;
  EXPECT_EQ(set_key("192.168.70.10", 7, 4), addr4("192.168.70.10"));
  EXPECT_EQ(set_key("22", 13, 2), port(22));
  EXPECT_EQ(set_key("192.168.70.10 . 22", 7 << 6 | 13, 8), addr4("192.168.70.10") + port(22) + std::string(2, '\0'));
  EXPECT_EQ(set_key("10.96.0.1 . tcp . 80", (7 << 6 | 12) << 6 | 13, 12),
            addr4("10.96.0.1") + std::string(1, char(IPPROTO_TCP)) + std::string(3, '\0') + port(80) +
                std::string(2, '\0'));
  EXPECT_EQ(set_key("ipv6-icmp", 12, 1), std::string(1, char(IPPROTO_ICMPV6)));
  EXPECT_EQ(set_key("132", 12, 1), std::string(1, char(132)));
  in6_addr six{};
  inet_pton(AF_INET6, "fd00::1", &six);
  EXPECT_EQ(set_key("fd00::1", 8, 16), std::string(reinterpret_cast<const char*>(&six), 16));
  // Keys that do not fit the set: told as unknown, never asked.
  EXPECT_FALSE(set_key("fd00::1", 7, 4));                // an IPv6 address in a set of IPv4 ones
  EXPECT_FALSE(set_key("192.168.70.10 . 22", 7, 4));     // two fields, one in the set's type
  EXPECT_FALSE(set_key("192.168.70.10", 7 << 6 | 13, 8));
  EXPECT_FALSE(set_key("65536", 13, 2));
  EXPECT_FALSE(set_key("http", 13, 2));
  EXPECT_FALSE(set_key("256", 12, 1));
  EXPECT_FALSE(set_key("1.2.3.4", 19, 4));                // a mark's type
  EXPECT_FALSE(set_key("1.2.3.4", 7, 16));                // a length the type does not give
  EXPECT_FALSE(set_key("", 13, 2));
}

}  // namespace
}  // namespace natbpf
