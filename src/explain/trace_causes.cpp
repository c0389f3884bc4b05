#include "explain/trace_causes.h"

#include <algorithm>
#include <regex>
#include <unordered_map>

#include "explain/drop_rules.h"
#include "sources/legacy_trace.h"
#include "util/names.h"
#include "util/text.h"

namespace natbpf {
namespace {

std::string where(const Step& s) { return family_name(s.family) + " " + s.table + " " + s.chain; }

std::optional<std::string> mark_matched(const Step& s) {
  return s.syntax == "iptables" ? matched_mark(s.rule) : nft_matched_mark(s.rule);
}

bool mark_set(const Step& s, const std::string& mark) {
  return s.syntax == "iptables" ? sets_mark(s.rule, mark) : nft_sets_mark(s.rule, mark);
}

// The mark a dropping (or jumping-to-drop) step matched, traced back to the
// step that set it and the jump that led there.
void find_mark_origins(Journey& j) {
  for (size_t d = 0; d < j.steps.size(); d++) {
    const Step& m = j.steps[d];
    if (m.verdict != NftVerdict::Drop || m.rule.empty()) continue;
    auto mark = mark_matched(m);
    if (!mark) continue;
    for (size_t k = d; k-- > 0;) {
      const Step& setter = j.steps[k];
      if (setter.rule.empty() || !mark_set(setter, *mark)) continue;
      StepMarkOrigin o{*mark, m.rule, setter.rule, where(setter), "", ""};
      for (size_t q = k; q-- > 0;) {
        const Step& jump = j.steps[q];
        if (jump.target && *jump.target == setter.chain && jump.table == setter.table) {
          o.reached_by = jump.rule;
          o.comment = any_rule_comment(jump.rule);
          break;
        }
      }
      if (o.comment.empty()) o.comment = any_rule_comment(setter.rule);
      j.mark_origins.push_back(std::move(o));
      break;
    }
  }
}

bool story_meets_invalid(const Journey& j) {
  if (j.ct_state) return *j.ct_state & 1;  // nftrace's ct state bit "invalid" (6.16+)
  // A traced rule matched: one matching only state INVALID says the packet was.
  return std::any_of(j.steps.begin(), j.steps.end(), [](const Step& s) { return matches_ct_invalid(s.rule); });
}

void find_invalid(Journey& j, const CauseContext& ctx) {
  for (const auto& b : j.bpf)
    if (auto* e = std::get_if<CtInvalidEvent>(&b)) {
      std::string by = e->origin == Origin::Nflog ? "conntrack's INVALID log (nf_conntrack_log_invalid, over NFLOG)"
                                                  : std::string(to_string(e->origin)) + " nf_l4proto_log_invalid";
      j.invalid = CtInvalid{e->reason, by, false};
      return;
    }
  if (!story_meets_invalid(j)) return;
  const Packet& p = j.packet;
  auto loose = ctx.sysctl ? ctx.sysctl("net.netfilter.nf_conntrack_tcp_loose") : std::nullopt;
  constexpr uint8_t kSyn = 0x02, kRst = 0x04;
  if (p.family && p.l4proto == 6 && !(p.tcp_flags & (kSyn | kRst)) && loose && *loose == "0") {
    j.invalid = CtInvalid{"no connection for this packet and it is not a SYN, while nf_conntrack_tcp_loose=0 "
                          "(conntrack does not pick up connections mid-stream)",
                          "inferred: TCP flags [" + tcp_flag_names(p.tcp_flags) +
                              "], conntrack logged no reason, net.netfilter.nf_conntrack_tcp_loose = 0",
                          true};
    return;
  }
  j.invalid = CtInvalid{"", "the story matched ct state invalid; conntrack logged no reason", true};
}

// Local sockets on the port the packet was sent to, when it never reached
// it: DNAT moved it elsewhere, or it was dropped.
void find_listeners(Journey& j, const CauseContext& ctx) {
  const Packet& p = j.packet;
  if (!ctx.listeners || !p.family || !has_ports(p.l4proto) || j.fate == Fate::Local) return;
  bool moved = std::any_of(j.nat.begin(), j.nat.end(), [](const NatChange& n) {
    return n.kind == "dnat" || n.kind == "redirect";
  });
  if (!moved && !j.drop) return;
  for (auto& l : ctx.listeners(p.l4proto, p.dport)) {
    std::string host = l.address.substr(0, l.address.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host == p.daddr.str() || host == "[" + p.daddr.str() + "]")
      j.listeners.push_back(std::move(l));
  }
}

void find_fix(Journey& j, const CauseContext& ctx) {
  if (!j.drop) return;
  for (const auto& m : j.near_misses) {
    if (!m.only_lookup || m.set.empty()) continue;
    j.fix = Fix{"nft add element " + m.set + " { " + m.key + " }",
                "rule " + quote(m.rule) + " accepts this packet once " + m.key + " is in set " + m.set,
                ctx.netns};
    return;
  }
  if (j.invalid && j.invalid->inferred && j.invalid->reason.find("nf_conntrack_tcp_loose=0") != std::string::npos) {
    j.fix = Fix{"sysctl -w net.netfilter.nf_conntrack_tcp_loose=1",
                "conntrack then picks the connection up from this mid-stream packet instead of calling it INVALID",
                ctx.netns};
  }
}

}  // namespace

bool matches_ct_invalid(const std::string& rule) {
  if (too_long_for_regex(rule)) return false;
  // Both patterns need the word: most rules lack it, and std::regex is slow.
  if (rule.find("invalid") == std::string::npos && rule.find("INVALID") == std::string::npos) return false;
  static const std::regex nft(R"((?:^| )ct state (?:== )?invalid(?: |$))");
  static const std::regex ipt(R"(--(?:ct)?state INVALID(?: |$))");
  return std::regex_search(rule, nft) || std::regex_search(rule, ipt);
}

namespace {

std::string search_rule_comment(const std::string& rule) {
  if (too_long_for_regex(rule)) return "";
  if (std::string c = rule_comment(rule); !c.empty()) return c;
  static const std::regex nft(R"re((?:^| )comment "([^"]*)")re");
  std::smatch m;
  return std::regex_search(rule, m, nft) ? m[1].str() : "";
}

}  // namespace

// Asked for the same few rules in story after story (a saved log has
// millions): the regex runs once per rule text, the newest kMaxComments kept.
std::string any_rule_comment(const std::string& rule) {
  constexpr size_t kMaxComments = 4096;
  thread_local std::unordered_map<std::string, std::string> known;
  if (auto it = known.find(rule); it != known.end()) return it->second;
  if (known.size() >= kMaxComments) known.clear();
  return known.emplace(rule, search_rule_comment(rule)).first->second;
}

void find_causes(Journey& j, const CauseContext& ctx) {
  find_mark_origins(j);
  find_invalid(j, ctx);
  find_listeners(j, ctx);
  find_fix(j, ctx);
}

std::string cause_sentences(const Journey& j) {
  std::string s;
  for (const auto& o : j.mark_origins) {
    s += " The drop rule matched mark " + o.mark + ", set by rule " + quote(o.set_by) + " in " + o.set_in;
    if (!o.reached_by.empty()) s += ", reached from rule " + quote(o.reached_by);
    if (!o.comment.empty()) s += " (" + o.comment + ")";
    s += ".";
  }
  if (j.invalid) {
    if (!j.invalid->reason.empty())
      s += " Conntrack called it INVALID: " + j.invalid->reason + (j.invalid->inferred ? " (inferred)." : ".");
    else
      s += " Conntrack called it INVALID and logged no reason.";
  }
  if (!j.listeners.empty()) {
    const Listener& l = j.listeners.front();
    s += " A local socket listens on " + l.address;
    if (l.pid) s += " (" + l.comm + ", pid " + std::to_string(l.pid) + ")";
    s += ": the packet was meant for it but " + std::string(j.drop ? "was dropped" : "was NATed away") +
         " first (a port collision).";
  }
  if (j.fix) s += " Fix: " + j.fix->command + ".";
  return s;
}

}  // namespace natbpf
