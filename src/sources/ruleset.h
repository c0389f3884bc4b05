// A snapshot of the nftables ruleset: every chain with its hook and rules in
// order, and each rule's text in nft syntax, keyed by (family, table, chain,
// handle). Built from `list ruleset` with handles (libnftables).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace natbpf {

struct RuleInfo {
  uint64_t handle = 0;
  std::string text;      // without the "# handle N" comment; an iptables-legacy rule's "-A ..." line
  std::string iptables;  // "-A FORWARD -j DROP" for iptables-nft rules, else empty
  // An iptables-legacy rule: text is in iptables syntax and there is no nft
  // text (one copy of it: 100000 kube-proxy rules held it twice, 12 MB).
  bool legacy = false;

  // The rule as its user wrote it, and whether that is iptables syntax.
  const std::string& shown() const { return iptables.empty() ? text : iptables; }
  bool iptables_syntax() const { return legacy || !iptables.empty(); }
};

struct ChainInfo {
  std::string family, table, name;
  std::optional<std::string> hook;  // "prerouting", ... for base chains
  std::optional<std::string> type;  // "filter", "nat", "route"
  std::optional<int> priority;
  std::optional<std::string> policy;
  std::vector<RuleInfo> rules;
};

class Ruleset {
 public:
  // Parses `nft -a list ruleset` text, or listings of single chains one
  // after another (`list chains`, then `list chain` of some): a chain
  // listed again replaces what an earlier listing said of it.
  static Ruleset parse(const std::string& text);

  // The chain, or null. An iptables-legacy chain is parsed from its save
  // text when first asked for (so the ruleset changes under a const
  // reference: one thread at a time, as for every other use).
  const ChainInfo* chain(const std::string& family, const std::string& table, const std::string& name) const;
  const RuleInfo* rule(const std::string& family, const std::string& table, const std::string& chain,
                       uint64_t handle) const;
  // Every chain, the iptables-legacy ones not asked for yet parsed now.
  const std::deque<ChainInfo>& chains() const;
  // Chains from elsewhere (iptables-legacy), unless nftables has the same name.
  void add_chains(std::vector<ChainInfo> chains);
  // The chains of an iptables-legacy-save dump of `family`, unless nftables
  // has the same name: rule "handles" are the rule numbers TRACE reports,
  // text the -A lines (RuleInfo::legacy), built-in chains get their hook
  // and policy. The text is held and only indexed: a chain's lines are
  // parsed when it is first asked for (a kube-proxy node's 100000 rules,
  // of which a story crosses a handful: 26 MB of rules and chains not
  // built). A chain already asked for gets nothing of a later save.
  void add_legacy_save(std::shared_ptr<const std::string> save, const std::string& family);
  void add_legacy_save(const std::string& save, const std::string& family) {
    add_legacy_save(std::make_shared<const std::string>(save), family);
  }
  // The chains of a later listing, each replacing its namesake (as parse
  // does with both listings one after the other).
  void put_chains(Ruleset listed);

  // iptables-nft keeps its rules in nftables tables; iptables-save lists them
  // in the same order, so the n-th "-A CHAIN" line of a table is the n-th
  // rule of that chain. Adds that text to tables of `family` ("ip"/"ip6").
  void add_iptables_syntax(const std::string& family, const std::string& save_output);
  // The iptables-nft tables (ip/ip6 filter, nat, mangle, raw, security) present.
  bool has_xtables_tables(const std::string& family) const;

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  // Lines of a held iptables-legacy save: a chain's ":NAME" line, or a run
  // of its "-A NAME" lines (iptables-save writes a chain's rules together;
  // a chain written in pieces has a run per piece). 32 bytes a chain or
  // two, where a parsed chain of 100000 kube-proxy rules' was 700.
  struct LegacyLines {
    std::string_view chain;  // into the text
    uint32_t text = 0, begin = 0, end = 0;
    bool decl = false;
  };
  // A legacy table's lines, by chain name, then save and place in it.
  struct LegacyTable {
    std::string family, table;
    std::vector<LegacyLines> lines;
  };

  size_t index_of(const std::string& family, const std::string& table, const std::string& name) const;
  const ChainInfo* read_legacy_chain(const std::string& family, const std::string& table,
                                     const std::string& name) const;
  void push_chain(ChainInfo c) const;
  ChainInfo* put_chain(ChainInfo c);

  // A deque: a chain parsed late does not move those already handed out.
  mutable std::deque<ChainInfo> chains_;
  // hash of (family, table, name) -> index in chains_: chain() runs for every
  // trace event (a saved log has millions), and rulesets have hundreds of chains.
  mutable std::unordered_multimap<size_t, size_t> by_name_;
  std::vector<LegacyTable> legacy_;
  std::vector<std::shared_ptr<const std::string>> legacy_texts_;
};

// The hook of an iptables built-in chain ("PREROUTING" -> "prerouting"), else "".
std::string iptables_builtin_hook(const std::string& chain);

// A table iptables-nft keeps its rules in: ip/ip6 filter, nat, mangle, raw
// or security.
bool is_xtables_table(const std::string& family, const std::string& table);

// nft's textual priority names ("filter", "dstnat + 10") as numbers, per hook.
std::optional<int> parse_priority(const std::string& text, const std::string& family);

}  // namespace natbpf
