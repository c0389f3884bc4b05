// The rules of the nftables chains a story crossed, listed chain by chain
// (LiveTraceWorld, continued from trace_world.cpp): which chains a journey
// needs, their listings (on the loop, or on a worker: read_chains touches
// no member), and installing them in the snapshot.
#include <linux/netfilter.h>

#include <algorithm>
#include <cctype>
#include <string_view>

#include "sources/legacy_tables.h"
#include "sources/nft_rule_text.h"
#include "util/names.h"
#include "util/runtime.h"
#include "world/trace_world.h"

namespace natbpf {
namespace {

// A name nft's parser takes unquoted in `list chain FAMILY TABLE CHAIN`
// (1.0.6 refuses a quoted one): letters, digits and _ . / -, not first a
// digit, / or -. Others are read with the whole ruleset.
bool plain_nft_name(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_' || name[0] == '.'))
    return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '/' && c != '-') return false;
  return true;
}

}  // namespace

// A chain of an iptables-nft table as a listing Ruleset::parse reads, from
// `iptables-nft -S CHAIN`'s output `lines` (the rule texts a user of that
// table wrote) and the chain's rule handles in order (nft_rule_handles): the
// n-th "-A" line is the n-th rule. No libnftables cache (for the nat table
// of 100000 kube-proxy rules, one `list chain` holds its 45000 chains: 0.4 s
// and 40 MB). Its rules have no nft text then, which only the near misses of
// a drop chain read. Empty when the two disagree (a rule nft added, or a
// change between them). `base`: the chain's hook, type, priority and
// policy, when it is a base chain.
std::string LiveTraceWorld::iptables_chain_listing(const ChainRead& read, const std::string& lines) {
  const auto& [family, table, chain] = read.key;
  auto handles = nft_rule_handles(family == "ip" ? NFPROTO_IPV4 : NFPROTO_IPV6, table, chain);
  std::vector<std::string_view> rules;
  for (std::string_view rest = lines; !rest.empty();) {
    std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    if (line.rfind("-A ", 0) == 0) rules.push_back(line);
  }
  if (!handles || handles->size() != rules.size()) return "";
  std::string body;
  for (size_t i = 0; i < rules.size(); i++)
    body += "\t\t" + std::string(rules[i]) + " # handle " + std::to_string((*handles)[i]) + "\n";
  return chain_listing(read, body);
}

// The listing of one chain, as Ruleset::parse reads it: its header (the
// hook, type, priority and policy of a base chain) and `rules`, the lines
// of its rules.
std::string LiveTraceWorld::chain_listing(const ChainRead& read, const std::string& rules) {
  const auto& [family, table, chain] = read.key;
  std::string out = "table " + family + " " + table + " {\n\tchain " + chain + " {\n";
  if (const auto& c = read.base; c && c->hook) {
    out += "\t\ttype " + c->type.value_or("filter") + " hook " + *c->hook;
    if (c->priority) out += " priority " + std::to_string(*c->priority);
    out += ";";
    if (c->policy) out += " policy " + *c->policy + ";";
    out += "\n";
  }
  return out + rules + "\t}\n}\n";
}

// The nftables chains a journey crossed whose rules are not listed yet;
// nullopt when one cannot be listed by name (then the whole ruleset is read).
std::optional<std::vector<LiveTraceWorld::ChainRead>> LiveTraceWorld::chains_to_read(const Journey& j) const {
  std::vector<ChainRead> wanted;
  if (whole_) return wanted;
  bool drop_seen = false;  // nftables' drop verdict (as find_drop takes it)
  for (const auto& s : j.steps) {
    if (s.origin == Origin::Nflog || s.table.empty() || s.chain.empty()) continue;
    ChainKey key{family_name(s.family), s.table, s.chain};
    bool drop_chain = !drop_seen && s.verdict == NftVerdict::Drop;
    drop_seen |= drop_chain;
    auto known = std::find_if(wanted.begin(), wanted.end(), [&key](const ChainRead& r) { return r.key == key; });
    if (known != wanted.end()) known->drop_chain |= drop_chain;
    if (listed_.count(key) || known != wanted.end()) continue;
    if (!plain_nft_name(s.table) || !plain_nft_name(s.chain)) return std::nullopt;
    ChainRead read{key, drop_chain, std::nullopt};
    if (const ChainInfo* c = ruleset_.chain(std::get<0>(key), s.table, s.chain); c && c->hook)
      read.base = ChainInfo{c->family, c->table, c->name, c->hook, c->type, c->priority, c->policy, {}};
    wanted.push_back(std::move(read));
  }
  return wanted;
}

// Lists the rules of the chains `wanted`: one `list chain` each (a chain
// of 20000 iptables-nft rules' node 0-50 ms and 4-13 MB, where the whole
// ruleset takes 0.5 s and 78 MB), with `iptables-nft -S CHAIN` for a chain
// of an iptables-nft table; such a chain, but for the one that dropped the
// packet (whose near misses read nft text), is read without nft
// (iptables_chain_listing). Touches no member: runs on the loop or on a
// worker. An error when a chain cannot be listed: then the whole ruleset is
// read instead.
Result<std::vector<LiveTraceWorld::ChainListing>> LiveTraceWorld::read_chains(const std::vector<ChainRead>& wanted) {
  std::vector<ChainListing> out;
  for (const auto& read : wanted) {
    const auto& [family, table, chain] = read.key;
    ChainListing listing{read.key, "", ""};
    if (is_xtables_table(family, table)) {
      auto [rc, lines] = run_program({family == "ip" ? "iptables-nft" : "ip6tables-nft", "-t", table, "-S", chain});
      if (rc == 0 && !read.drop_chain) listing.text = iptables_chain_listing(read, lines);
      listing.save = "*" + table + "\n" + lines + "COMMIT\n";
    }
    if (listing.text.empty())
      if (auto nfproto = family_number(family))
        if (auto rules = nft_chain_rules_text(*nfproto, table, chain)) listing.text = chain_listing(read, *rules);
    if (listing.text.empty()) {
      // A rule nft_rule_text does not print: libnftables, a context each
      // (its cache is freed before the parse).
      auto listed = list_nft("list chain " + family + " " + table + " " + chain);
      if (!listed) return listed.error();
      listing.text = std::move(*listed);
    }
    out.push_back(std::move(listing));
  }
  return out;
}

// Each listing is appended to the texts, so that a recording (and its
// replay) holds the same rules.
void LiveTraceWorld::install_chains(std::vector<ChainListing> listings) {
  for (auto& l : listings) {
    ruleset_.put_chains(Ruleset::parse(l.text));
    texts_.nft += l.text;
    if (!l.save.empty()) {
      const std::string& family = std::get<0>(l.key);
      ruleset_.add_iptables_syntax(family, l.save);
      texts_.iptables_nft[family] += l.save;
    }
    listed_.insert(l.key);
  }
  if (!listings.empty()) record_texts();
}

// False when a chain cannot be listed by name: then the whole ruleset is read instead.
bool LiveTraceWorld::list_chains_of(const Journey& j) {
  auto wanted = chains_to_read(j);
  if (!wanted) return false;
  if (wanted->empty()) return true;
  auto listings = read_chains(*wanted);
  if (!listings) return false;
  install_chains(std::move(*listings));
  return true;
}

}  // namespace natbpf
