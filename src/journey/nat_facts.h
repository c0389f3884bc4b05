// The NAT facts of a clash from what reported them: nf_nat_setup_info's
// record (range, flags, the port search), or the rule's own range.
#pragma once

#include <optional>

#include "explain/clash.h"
#include "sources/events.h"
#include "sources/iptables_rules.h"

namespace natbpf {

// The range, flags and allocation that nf_nat_setup_info reported;
// search_hooked: every kind of probe the port search makes was hooked.
void setup_facts(const NatSetupEvent& s, bool search_hooked, NatFacts& n, std::optional<AllocationFacts>& alloc);

// The range and flags a NAT rule gives the kernel.
void rule_range(const NatRule& rule, NatFacts& n);

}  // namespace natbpf
