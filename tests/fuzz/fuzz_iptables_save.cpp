// `iptables-save -c` text: the rule counters `drops` reads and the NAT rules
// `clash` reads, for both families.
#include "fuzz_common.h"
#include "sources/iptables_rules.h"
#include "sources/legacy_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string save = natbpf::fuzz::text(data, size);
  for (auto [family, pf] : {std::pair{"ip", uint8_t{2}}, std::pair{"ip6", uint8_t{10}}}) {
    for (const auto& c : natbpf::parse_iptables_counters(save, "iptables-legacy", family)) {
      (void)c.key();
      (void)c.where();
    }
    auto nat = natbpf::parse_iptables_save(save, "iptables-legacy", pf);
    for (const auto& r : nat) {
      (void)r.flags_str();
      (void)r.range_str();
    }
    natbpf::CtEntry ct;
    (void)natbpf::match_snat_rule(nat, ct);
    for (const auto& chain : natbpf::parse_legacy_save(save, family))
      for (const auto& rule : chain.rules) {
        std::string target;
        (void)natbpf::legacy_target_verdict(rule.text, &target);
        (void)natbpf::rule_comment(rule.text);
      }
  }
  return 0;
}
