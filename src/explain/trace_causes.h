// The "why" behind a story's drop point, and the command that fixes it:
// where a matched mark was set (earlier in the same story), conntrack's
// reason for INVALID (its own log line, or inferred from the sysctl and the
// TCP flags and said so), local listeners on the port NAT or a drop took
// the packet away from, and a `fix` when the evidence determines one.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "journey/journey.h"

namespace natbpf {

struct CauseContext {
  // A sysctl of the traced namespace ("net.netfilter.nf_conntrack_tcp_loose"); nullopt when unreadable.
  std::function<std::optional<std::string>(const std::string&)> sysctl;
  // Sockets listening on a protocol and port in the traced namespace.
  std::function<std::vector<Listener>(uint8_t proto, uint16_t port)> listeners;
  std::string netns;  // the traced namespace as the user named it ("" for natbpf's own)
};

// Fills mark_origins, invalid, listeners and fix; the drop point and near
// misses must be known.
void find_causes(Journey& j, const CauseContext& ctx);

// The sentences these add to a story's explanation ("" when none).
std::string cause_sentences(const Journey& j);

// Whether a rule matches conntrack state INVALID alone ("ct state invalid",
// "-m conntrack --ctstate INVALID", "-m state --state INVALID"); a rule
// matching several states says nothing about which one the packet had.
bool matches_ct_invalid(const std::string& rule);

// The comment of a rule: iptables `--comment "x"`, nft `comment "x"`.
std::string any_rule_comment(const std::string& rule);

}  // namespace natbpf
