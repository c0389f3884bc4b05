// `nft -a list ruleset` text: the ruleset snapshot every command builds, the
// NAT rules `clash` takes from it and the iptables-nft texts laid over it.
#include "fuzz_common.h"
#include "sources/iptables_rules.h"
#include "sources/ruleset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text = natbpf::fuzz::text(data, size);
  natbpf::Ruleset rs = natbpf::Ruleset::parse(text);
  for (const auto& r : natbpf::nat_rules_from_nft(rs)) {
    (void)r.flags_str();
    (void)r.range_str();
  }
  for (const auto& c : rs.chains()) {
    for (const auto& r : c.rules) (void)rs.rule(c.family, c.table, c.name, r.handle);
    if (c.hook) (void)natbpf::parse_priority(c.priority ? std::to_string(*c.priority) : "filter", c.family);
  }
  (void)rs.has_xtables_tables("ip");
  rs.add_iptables_syntax("ip", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n");
  return 0;
}
