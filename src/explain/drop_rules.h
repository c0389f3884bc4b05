// Rule counters as evidence for `natbpf drops`: which drop rules' counters
// rose in a namespace during the run (nftables, iptables-nft and
// iptables-legacy, each in its own syntax), whether conntrack's
// insert_failed rose enough to blame conntrack, and where the marks a
// dropping rule matched were set (MARK rules and the jumps that reached
// them, with their comments). Pure functions of two snapshots.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "explain/drops.h"

namespace natbpf {

// An unconfirmed-entry drop at nf_hook_slow is conntrack's only when the
// namespace's insert_failed rose by at least the drops counted; otherwise a
// hook's rule dropped a new connection, and the cause says so.
void confirm_by_insert_failed(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after);

// Lists the drop rules whose counters rose under the cause (nft_do_chain:
// nftables and iptables-nft; nf_hook_slow: iptables-legacy, and nftables on
// kernels before 6.7), relabels a hook cause the rules account for, and adds
// the mark origins of iptables rules that match a mark. A rule that names a
// destination port the cause's packets did not have is not its; a rule
// gives at most its counter's rise, shared through budget.
void name_drop_rules(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after, RuleBudget& budget);

// The destination port a rule matches ("dport 9999", "--dport 9999"), if one.
std::optional<uint16_t> rule_dport(const std::string& rule_text);

// "0x8000/0x8000" of "-m mark --mark 0x8000/0x8000" (nullopt when the rule matches no mark).
// value/mask of "V" or "V/M" (hex or decimal, as iptables-save writes them).
std::optional<std::pair<uint32_t, uint32_t>> parse_mark(const std::string& text);
std::optional<std::string> matched_mark(const std::string& rule_text);
// Whether a MARK target rule sets the bits a mark match tests.
bool sets_mark(const std::string& rule_text, const std::string& mark);
// nftables: "0x00008000/0x00008000" of "meta mark & 0x00008000 == 0x00008000",
// "0x00008000" of "meta mark 0x00008000"; whether "meta mark set ..." sets it.
std::optional<std::string> nft_matched_mark(const std::string& rule_text);
bool nft_sets_mark(const std::string& rule_text, const std::string& mark);

}  // namespace natbpf
