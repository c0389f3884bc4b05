#include "journey/nat_facts.h"

namespace natbpf {
namespace {
constexpr uint32_t kNfNatRangeMapIps = 1 << 0, kNfNatRangeProtoSpecified = 1 << 1;  // NF_NAT_RANGE_*
}  // namespace

void setup_facts(const NatSetupEvent& s, bool search_hooked, NatFacts& n, std::optional<AllocationFacts>& alloc) {
  n.source = std::string("nf_nat_setup_info (") + exit_name(s.origin) + ")";
  if (s.range.flags & kNfNatRangeMapIps) {
    n.min_addr = s.range.min_addr;
    n.max_addr = s.range.max_addr;
  }
  if (s.range.flags & kNfNatRangeProtoSpecified) {
    n.min_port = s.range.min_port;
    n.max_port = s.range.max_port;
  }
  n.flags = s.range.flag_names();
  AllocationFacts al;
  al.origin = s.origin;
  al.before = s.before;
  al.chosen = Tuple{s.ct.reply.dst, s.ct.reply.src, s.ct.reply.dport, s.ct.reply.sport, s.ct.reply.proto};
  al.attempts = s.attempts;
  al.taken = s.taken;
  if (s.attempts) al.last_probe = s.last_probe;
  al.observed = search_hooked;
  alloc = al;
}

void rule_range(const NatRule& rule, NatFacts& n) {
  n.source = "ruleset (" + rule.backend + ")";
  n.min_addr = rule.min_addr;
  n.max_addr = rule.max_addr;
  n.min_port = rule.min_port;
  n.max_port = rule.max_port;
  if (rule.random) n.flags.push_back("random");
  if (rule.random_fully) n.flags.push_back("random-fully");
  if (rule.persistent) n.flags.push_back("persistent");
}


}  // namespace natbpf
