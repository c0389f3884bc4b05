// The text `nft -a -t -s list chain` prints for a rule, built from the
// rule's expressions (libnftnl) instead of by libnftables: 1.0.6 fetches
// the elements of every set of the table to list one chain (kube-proxy's
// nftables table of 100000 rules: seconds and hundreds of MB). It knows the
// expressions of kube-proxy's nftables mode and of common firewall rules
// (addresses, ports, protocols, marks, conntrack state, sets and verdict
// maps, numgen, fib, NAT, reject); for any other it returns nothing, and
// the caller lists the chain with libnftables.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

struct nftnl_rule;

namespace natbpf {

// A set a rule looks up: its key length (a concatenation's fields, each
// padded to 4 bytes) and flags (NFT_SET_*); for an anonymous set, its
// elements, which nft prints inline.
struct NftSetInfo {
  struct Element {
    std::string key;                  // bytes, as the kernel holds them
    std::optional<int32_t> verdict;   // a verdict map's data
    std::string chain;                // of a jump or goto
    bool extras = false;              // a comment, timeout or expression nft prints with it
  };
  uint32_t key_len = 0;
  uint32_t flags = 0;
  std::vector<Element> elements;
  uint32_t key_type = 0;  // nft's datatype id (6 bits per field of a concatenation)
};
using NftSets = std::map<std::string, NftSetInfo>;

// The rule's text without its handle, or nullopt when it holds an
// expression (or a combination) this does not print exactly as nft does.
// family: the table's (NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET).
std::optional<std::string> nft_rule_text(const nftnl_rule* r, uint32_t family, const NftSets& sets);

// The names of the sets the rule's lookups use.
std::vector<std::string> nft_rule_set_names(const nftnl_rule* r);

// The rules of one chain as the body of `nft -a -t -s list chain` (a line
// "\t\t<text> # handle N" each), from a rule dump the kernel filters by
// table and chain and one request per set the rules use: no libnftables
// cache. An error when a rule cannot be printed (then list the chain with
// libnftables) or the chain cannot be read.
Result<std::string> nft_chain_rules_text(uint16_t family, const std::string& table, const std::string& chain);

}  // namespace natbpf
