// NAT rules (SNAT, MASQUERADE, DNAT) as the user wrote them, from
// iptables-save / iptables-legacy-save / ip6tables-* output and from the
// nftables ruleset, with the range and flags they give the kernel
// (struct nf_nat_range2). `clash` uses them to name the rule that installed a
// colliding mapping and to know the range's size when no BPF hook on
// nf_nat_setup_info can report it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sources/events.h"
#include "sources/ruleset.h"

namespace natbpf {

struct Prefix {
  Addr addr;
  int len = 0;
  bool contains(const Addr& a) const;
};

struct NatRule {
  std::string backend;  // "iptables-nft", "iptables-legacy", "nftables"
  uint8_t family = 0;   // 2, 10, or 0 (nft inet: both)
  std::string kind;     // "snat", "masquerade", "dnat"
  std::string text;     // the rule in its own syntax, e.g. "iptables -t nat -A POSTROUTING ... -j SNAT ..."
  std::string where;    // "table ip nat chain POSTROUTING handle 3", "iptables -t nat chain POSTROUTING rule 1"
  std::string chain;    // "POSTROUTING"
  std::string table;    // nft "ip6 natbpf_range"; "nat" for iptables
  uint64_t number = 0;  // iptables rule number in its chain, nft rule handle

  // Matches natbpf understands; anything else in the rule is ignored, so a
  // match is a best guess and is reported as such.
  std::optional<uint8_t> proto;
  std::optional<Prefix> saddr, daddr;
  std::optional<uint16_t> dport;

  // The range the rule gives nf_nat_setup_info. No addresses: masquerade (the
  // interface address). No ports: the kernel's default for the source port.
  std::optional<Addr> min_addr, max_addr;
  std::optional<uint16_t> min_port, max_port;
  bool random = false, random_fully = false, persistent = false;

  std::string flags_str() const;  // "random-fully,persistent" or ""
  std::string range_str() const;  // "127.0.0.1:40000-40000", "masquerade :1024-65535"
};

// iptables-save text of one backend; family 2 for iptables, 10 for ip6tables.
// Only rules of the nat table with -j SNAT/MASQUERADE/DNAT are returned.
std::vector<NatRule> parse_iptables_save(const std::string& text, const std::string& backend, uint8_t family);

// snat/masquerade/dnat statements in the nat chains of an nftables ruleset.
std::vector<NatRule> nat_rules_from_nft(const Ruleset& ruleset);

// Parses a NAT target address/port spec as iptables (--to-source) and nft
// (snat to) write it: "A", "A-B", "A:p", "A-B:p1-p2", "[v6]:p", ":p1-p2".
bool parse_nat_spec(const std::string& spec, NatRule& rule);

// Every NAT rule of the calling thread's network namespace. Backends that are
// missing or empty are skipped; notes says which sources were read.
std::vector<NatRule> load_nat_rules(std::vector<std::string>* notes = nullptr);

// One iptables rule with its packet counter, as `iptables-save -c` lists it.
struct IptRuleCounter {
  std::string backend;  // "iptables-legacy", "iptables-nft"
  std::string family;   // "ip", "ip6"
  std::string table, chain;
  uint32_t number = 0;  // position in its chain, from 1 (as TRACE and `iptables -L --line-numbers` count)
  std::string text;     // "-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP"
  uint64_t packets = 0;

  std::string key() const;    // identity across snapshots: backend, family, table, chain, number
  std::string where() const;  // "iptables-legacy -t filter KUBE-FIREWALL rule 1"
};

// Parses `iptables-save -c` output of one backend and family ("ip", "ip6").
std::vector<IptRuleCounter> parse_iptables_counters(const std::string& save, const std::string& backend,
                                                    const std::string& family);

// The SNAT/masquerade rule that most likely installed the mapping of `ct`
// (orig tuple matched against the rule, reply.dst against its range).
// iptables rules win over their nft copies (iptables-nft shows in both).
const NatRule* match_snat_rule(const std::vector<NatRule>& rules, const CtEntry& ct);

}  // namespace natbpf
