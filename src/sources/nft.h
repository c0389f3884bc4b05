// libnftables, owned: one context (and its netlink socket) per instance, in
// the network namespace the calling thread is in when it is created.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

struct nft_ctx;

namespace natbpf {

class NftContext {
 public:
  // stateless: rule text without counter values (as the user wrote the rule).
  // terse: named sets listed without their elements, which libnftables then
  // does not fetch (anonymous sets stay inline in their rules).
  static Result<NftContext> create(bool stateless = true, bool terse = false);
  NftContext(NftContext&&) noexcept;
  NftContext& operator=(NftContext&&) noexcept;
  ~NftContext();

  // Runs nft commands; returns what nft printed, or its error text.
  Result<std::string> run(const std::string& commands);

 private:
  NftContext() = default;
  nft_ctx* ctx_ = nullptr;
};

// The nftables ruleset generation of the current namespace (NFT_MSG_GETGEN):
// it changes with every committed change, so a snapshot of rule text is
// stale when it differs from the one taken with the snapshot.
Result<uint32_t> nft_generation();

// The names of the nftables tables of `family` (NFPROTO_INET, ...) in the
// current namespace, from one NFT_MSG_GETTABLE dump: libnftables 1.0.6's
// `list tables` fills its whole cache first (every chain, rule and set
// element: 0.5 s on 20000 kube-proxy rules).
Result<std::vector<std::string>> nft_table_names(uint16_t family);

// The base chains (those on a hook) of the current namespace, without
// rules, in the text `nft -a list chains` prints (priorities as numbers),
// from one NFT_MSG_GETCHAIN dump: libnftables fills a cache of every chain
// for that (100000 iptables-nft rules, 45000 chains: 0.29 s and 41 MB).
// Regular chains are left out (held, the 45000 took 15 MB): a story lists
// those it crosses.
Result<std::string> nft_chain_listing();

// Deletes a table through one netlink batch: libnftables 1.0.6 fetches every
// table's chains and sets to run `delete table` (30 MB on a node of 100000
// iptables-nft rules).
Status nft_delete_table(uint16_t family, const std::string& name);

// The handles of the rules of one chain, in order, from an NFT_MSG_GETRULE
// dump the kernel filters by table and chain (no libnftables cache: it
// would hold every chain of the table, 40 MB for kube-proxy's nat table of
// 100000 rules).
Result<std::vector<uint64_t>> nft_rule_handles(uint16_t family, const std::string& table, const std::string& chain);

// Whether set `set` of a table holds `key`, written as natbpf writes a set
// lookup's key ("192.168.70.10 . 22": addresses, protocols, ports), asked
// with one NFT_MSG_GETSETELEM for that element: libnftables 1.0.6's `get
// element` fills a cache of the whole table first (0.2 s a question on
// 20000 kube-proxy rules). nullopt when that cannot be told: a key that does
// not fit the set's type, no such set, or another error (a set deleted
// between the two requests reads as not holding the key). A set of ranges
// holds the keys of its ranges.
std::optional<bool> nft_set_has(uint16_t family, const std::string& table, const std::string& set,
                                const std::string& key);

}  // namespace natbpf
