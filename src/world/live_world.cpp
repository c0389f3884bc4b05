#include "world/live_world.h"

#include <dirent.h>
#include <linux/netfilter.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>

#include "probe/drop_reasons.h"
#include "sources/legacy_tables.h"
#include "sources/nft.h"
#include "sources/ruleset.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

std::optional<uint64_t> read_number(const char* path) {
  std::ifstream in(path);
  uint64_t v;
  if (in >> v) return v;
  return std::nullopt;
}

bool is_xtables_table(const std::string& table) {
  return table == "filter" || table == "nat" || table == "mangle" || table == "raw" || table == "security";
}

struct NftTable {
  std::string family, name;
};

// The nftables tables of the calling thread's namespace, from one kernel
// dump per family (no libnftables cache); nullopt when nf_tables cannot be asked.
std::optional<std::vector<NftTable>> nft_tables() {
  static const std::pair<uint16_t, const char*> families[] = {
      {NFPROTO_IPV4, "ip"},  {NFPROTO_IPV6, "ip6"},      {NFPROTO_INET, "inet"},
      {NFPROTO_ARP, "arp"}, {NFPROTO_BRIDGE, "bridge"}, {NFPROTO_NETDEV, "netdev"}};
  std::vector<NftTable> tables;
  for (auto [id, family] : families) {
    auto names = nft_table_names(id);
    if (!names) return std::nullopt;
    for (auto& name : *names) tables.push_back({family, std::move(name)});
  }
  return tables;
}

// Every iptables rule with its counter, both backends and families. Without
// -t: naming a table would make the legacy tools load (and so create) it.
// A save tool runs only where its backend has tables (iptables-nft's are
// nftables tables with the xtables names): with hundreds of namespaces, most
// have none, and four processes per namespace and report were most of a
// report's cost.
std::vector<IptRuleCounter> iptables_counters(const std::optional<std::vector<NftTable>>& nft) {
  std::vector<IptRuleCounter> all;
  auto has_xtables = [&nft](const std::string& family) {
    return !nft || std::any_of(nft->begin(), nft->end(), [&](const NftTable& t) {
             return t.family == family && is_xtables_table(t.name);
           });
  };
  for (const char* backend : {"iptables-legacy", "iptables-nft"})
    for (const char* family : {"ip", "ip6"}) {
      bool legacy = backend == std::string("iptables-legacy");
      if (legacy ? legacy_table_names(family).empty() : !has_xtables(family)) continue;
      std::string tool = std::string(family == std::string("ip6") ? "ip6tables" : "iptables") +
                         (backend == std::string("iptables-legacy") ? "-legacy-save" : "-nft-save");
      auto [status, out] = run_program({tool, "-c"});
      if (status != 0) continue;
      auto rules = parse_iptables_counters(out, backend, family);
      all.insert(all.end(), rules.begin(), rules.end());
    }
  return all;
}

// The nftables tables whose rules iptables-nft-save did not give, listed one
// by one with counters: listing iptables-nft's own tables makes nft translate
// every xt match (1.5 s on a 20000-rule kube-proxy node, each report), and
// their counters came with iptables syntax already. A user's own `table ip
// filter` that iptables-nft-save calls incompatible is listed here.
using TableSet = std::set<std::pair<std::string, std::string>>;  // (family, table)

std::optional<Ruleset> nft_ruleset(const std::vector<NftTable>& tables, const TableSet& saved) {
  auto nft = NftContext::create(false);
  if (!nft) return std::nullopt;
  // A name nft's command syntax cannot carry as it is (nft 1.0.6 takes no
  // quoted table name; netlink lets a program create any): the whole ruleset then.
  auto plain = [](const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/';
    });
  };
  if (!std::all_of(tables.begin(), tables.end(), [&](const NftTable& t) { return plain(t.name); })) {
    auto all = nft->run("list ruleset");
    if (!all) return std::nullopt;
    return Ruleset::parse(*all);  // nft_rule_counters leaves the saved tables out
  }
  std::string text;
  for (const auto& t : tables)
    if (!saved.count({t.family, t.name}))
      if (auto listed = nft->run("list table " + t.family + " " + t.name)) text += *listed + "\n";
  return Ruleset::parse(text);
}

// nftables rules that carry a counter, by position: those ending in drop,
// and those that set a mark or jump (where a matched mark came from).
void nft_rule_counters(const std::optional<Ruleset>& nft, const TableSet& saved, NetnsSnapshot& s) {
  if (!nft) return;
  static const std::regex counter(R"(counter packets ([0-9]+) bytes [0-9]+)");
  static const std::regex ends_in_drop(R"((^| )drop( comment ".*")?$)");
  static const std::regex leads_to_mark(R"((^| )(meta |ct )?mark set |(^| )(jump|goto) )");
  for (const auto& c : nft->chains()) {
    if (saved.count({c.family, c.table})) continue;
    for (const auto& r : c.rules) {
      std::smatch m;
      if (!std::regex_search(r.text, m, counter)) continue;
      bool drops = std::regex_search(r.text, ends_in_drop);
      if (!drops && !std::regex_search(r.text, leads_to_mark)) continue;
      uint64_t packets = 0;
      const std::string digits = m[1];
      if (std::from_chars(digits.data(), digits.data() + digits.size(), packets).ec != std::errc{}) continue;
      std::string key = c.family + " " + c.table + " " + c.name + " " + std::to_string(r.handle);
      (drops ? s.drop_rules : s.mark_rules)[key] = {std::regex_replace(r.text, counter, "counter"), packets};
    }
  }
}

}  // namespace

std::string symbol_function(const std::string& symbol) {
  if (symbol.rfind("0x", 0) == 0) return "";
  return symbol.substr(0, symbol.find('+'));
}

LiveWorld::LiveWorld(std::function<SourceCounts()> counts)
    : counts_(std::move(counts)) {}

void LiveWorld::preload(bool drop_reasons) {
  if (!kallsyms_) kallsyms_ = std::make_unique<Kallsyms>();
  if (drop_reasons && !drop_reasons_) drop_reasons_ = load_drop_reasons();
}

std::string LiveWorld::symbol(uint64_t addr) {
  if (!kallsyms_) kallsyms_ = std::make_unique<Kallsyms>();
  return kallsyms_->resolve(addr);
}

std::string LiveWorld::drop_reason(uint32_t reason) {
  if (!drop_reasons_) drop_reasons_ = load_drop_reasons();
  return drop_reason_name(*drop_reasons_, reason);
}

uint64_t LiveWorld::realtime_ns() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
}

std::optional<std::vector<CtCpuStats>> LiveWorld::ct_stats() {
  auto stats = read_ct_stats();
  if (!stats) return std::nullopt;
  return *stats;
}

std::optional<CtNetlinkEntry> LiveWorld::ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) {
  std::optional<CtNetlinkEntry> e;
  netns_.run_in(netns, [&] {
    if (auto r = ct_lookup(tuple, dir); r && *r) e = **r;
  });
  return e;
}

RangeUsage LiveWorld::ct_range_usage(uint32_t netns, const RangeQuery& q) {
  RangeUsage u{std::nullopt, "not counted: cannot enter netns " + std::to_string(netns)};
  netns_.run_in(netns, [&] {
    auto r = natbpf::ct_range_usage(q);
    u = r ? *r : RangeUsage{std::nullopt, "not counted: " + r.error().message};
  });
  return u;
}

// nf_conntrack_count is per namespace; nf_conntrack_max is global.
TableSize LiveWorld::table_size(uint32_t netns) {
  TableSize s;
  netns_.run_in(netns, [&] {
    s.count = read_number("/proc/sys/net/netfilter/nf_conntrack_count");
    s.max = read_number("/proc/sys/net/netfilter/nf_conntrack_max");
    s.buckets = read_number("/proc/sys/net/netfilter/nf_conntrack_buckets");
  });
  return s;
}

std::vector<NatRule> LiveWorld::nat_rules(uint32_t netns) {
  std::vector<NatRule> rules;
  netns_.run_in(netns, [&] { rules = load_nat_rules(); });
  return rules;
}

std::vector<NamedNetns> LiveWorld::namespaces() {
  std::vector<NamedNetns> out{{kOwnNetnsName, "/proc/self/ns/net", current_netns_inode()}};
  if (DIR* d = opendir("/run/netns")) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      struct stat st {};
      std::string path = "/run/netns/" + n;
      if (stat(path.c_str(), &st) == 0) out.push_back({n, path, static_cast<uint32_t>(st.st_ino)});
    }
    closedir(d);
  }
  return out;
}

NetnsSnapshot LiveWorld::snapshot(const NamedNetns& ns) {
  NetnsSnapshot s;
  netns_.run_in(ns.inode, [&] {
    auto tables = nft_tables();
    s.ipt_rules = iptables_counters(tables);
    TableSet saved;  // iptables-nft's tables: their counters came with iptables syntax
    for (const auto& r : s.ipt_rules)
      if (r.backend == "iptables-nft") saved.insert({r.family, r.table});
    if (tables) nft_rule_counters(nft_ruleset(*tables, saved), saved, s);
    if (auto st = read_ct_stats()) s.ct = CtStatsTotals::sum(*st);
  });
  return s;
}

}  // namespace natbpf
