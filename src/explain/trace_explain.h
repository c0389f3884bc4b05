// Turns a journey into an explanation: rule texts, NAT changes, the drop
// point and its cause, near misses (rules and set lookups that did not
// match), and one sentence for a human.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "explain/trace_causes.h"
#include "journey/journey.h"
#include "sources/ruleset.h"

namespace natbpf {

struct ExplainContext {
  const Ruleset* ruleset = nullptr;
  // Whether `key` ("192.168.70.10 . 22") is in the set; nullopt when unknown.
  std::function<std::optional<bool>(const std::string& family, const std::string& table, const std::string& set,
                                    const std::string& key)>
      set_has;
  std::function<std::string(uint64_t)> symbol;        // kernel address -> "nft_do_chain+0x3e8"
  std::function<std::string(uint32_t)> drop_reason;   // 12 -> "NETFILTER_DROP"
  CauseContext causes;  // sysctls, listeners and the namespace, for causes and fixes
};

void explain_journey(Journey& j, const ExplainContext& ctx);

// For a rule like "ip daddr . tcp dport @allow_in accept": the set name and
// the key this packet presents to it ("192.168.70.10 . 22"). Exposed for tests.
struct SetLookup {
  std::string set;
  std::string key;
  size_t first_word = 0;   // of the selectors ("ip" of "ip daddr . tcp dport @allow_in")
  size_t lookup_word = 0;  // "@allow_in"
};
std::optional<SetLookup> set_lookup_key(const std::string& rule, const Packet& packet);

// For a rule whose leading matches are plain comparisons of addresses, ports
// or protocols ("ip saddr 10.9.9.9 tcp dport { 22, 80 } accept"): the first
// one this packet fails, in words ("ip saddr is 10.2.1.2, not 10.9.9.9").
// nullopt when a match natbpf cannot evaluate comes first, or all matched.
std::optional<std::string> first_mismatch(const std::string& rule, const Packet& packet);

// Whether every match of these rule words is one natbpf evaluates and this
// packet passes (words with no match at all pass too).
bool all_matches_hold(const std::vector<std::string>& words, const Packet& packet);

// The NAT a rule's statement performs ("dnat", "snat", "masquerade",
// "redirect"), or "" when the rule has none (words inside matches, such as
// "ct status dnat", are not NAT).
std::string nat_statement_kind(const std::string& rule);

}  // namespace natbpf
