#include "explain/drop_rules.h"

#include <charconv>
#include <map>
#include <regex>

namespace natbpf {
namespace {

struct Risen {
  const IptRuleCounter* rule;
  uint64_t delta;
};

// iptables rules whose counters rose between the snapshots. A rule that is
// new, or whose position now holds another rule, counts from zero.
std::vector<Risen> risen_iptables(const NetnsSnapshot& before, const NetnsSnapshot& after) {
  std::map<std::string, const IptRuleCounter*> earlier;
  for (const auto& r : before.ipt_rules) earlier[r.key()] = &r;
  std::vector<Risen> out;
  for (const auto& r : after.ipt_rules) {
    auto it = earlier.find(r.key());
    uint64_t base = it != earlier.end() && it->second->text == r.text ? it->second->packets : 0;
    if (r.packets > base) out.push_back({&r, r.packets - base});
  }
  return out;
}

bool drops(const std::string& text) {
  return text.size() >= 8 && (text.compare(text.size() - 8, 8, " -j DROP") == 0 ||
                              text.find(" -j REJECT") != std::string::npos);
}

// value/mask of "V" or "V/M" (hex or decimal, as iptables-save writes them).
std::optional<std::pair<uint32_t, uint32_t>> parse_mark(const std::string& text) {
  auto number = [](const std::string& s) -> std::optional<uint32_t> {
    uint32_t v = 0;
    bool hex = s.rfind("0x", 0) == 0;
    const char* first = s.data() + (hex ? 2 : 0);
    auto [end, ec] = std::from_chars(first, s.data() + s.size(), v, hex ? 16 : 10);
    if (ec != std::errc{} || end != s.data() + s.size() || first == end) return std::nullopt;
    return v;
  };
  size_t slash = text.find('/');
  auto value = number(text.substr(0, slash));
  auto mask = slash == std::string::npos ? std::optional<uint32_t>(0xffffffffu) : number(text.substr(slash + 1));
  if (!value || !mask) return std::nullopt;
  return std::pair{*value, *mask};
}

RuleHit hit(const Risen& r) { return {r.rule->where(), r.rule->text, r.delta}; }

// The jumps to chain (same backend, family and table) whose counters rose,
// then the jumps to those, nearest first; at most three levels.
std::vector<RuleHit> jumps_to(const IptRuleCounter& target, const std::vector<Risen>& risen) {
  std::vector<RuleHit> via;
  std::string chain = target.chain;
  for (int level = 0; level < 3; level++) {
    const Risen* found = nullptr;
    for (const auto& r : risen) {
      const IptRuleCounter& j = *r.rule;
      if (j.backend != target.backend || j.family != target.family || j.table != target.table) continue;
      std::string jump = " -j " + chain;
      if (j.text.size() >= jump.size() && j.text.compare(j.text.size() - jump.size(), jump.size(), jump) == 0) {
        found = &r;
        break;
      }
    }
    if (!found) break;
    via.push_back(hit(*found));
    chain = found->rule->chain;
  }
  return via;
}

}  // namespace

std::optional<std::string> matched_mark(const std::string& rule_text) {
  static const std::regex mark(R"((?:^| )-m mark --mark (\S+))");
  std::smatch m;
  if (!std::regex_search(rule_text, m, mark)) return std::nullopt;
  return m[1].str();
}

bool sets_mark(const std::string& rule_text, const std::string& mark) {
  static const std::regex set(R"( -j MARK --(set-xmark|set-mark|or-mark) (\S+))");
  std::smatch m;
  if (!std::regex_search(rule_text, m, set)) return false;
  auto want = parse_mark(mark);
  auto given = parse_mark(m[2].str());
  if (!want || !given) return false;
  auto [value, mask] = *want;
  auto [set_value, set_mask] = *given;
  if (m[1] == "or-mark") set_mask = set_value;
  // The bits the match tests are all written by this rule, to the values it wants.
  return (set_mask & mask) == mask && (set_value & mask) == (value & mask);
}

void confirm_by_insert_failed(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after) {
  if (!before.ct || !after.ct) {
    c.cause = "a netfilter hook dropped new connections before conntrack confirm (conntrack counters unreadable)";
    return;
  }
  uint64_t rose = after.ct->delta_since(*before.ct).insert_failed;
  if (rose >= c.count) {
    c.evidence.push_back("insert_failed +" + std::to_string(rose) + " in this namespace");
    return;
  }
  c.cause = "a netfilter hook dropped new connections before conntrack confirm (not conntrack: insert_failed +" +
            std::to_string(rose) + ")";
  c.evidence.push_back("insert_failed +" + std::to_string(rose) + " in this namespace, fewer than the drops");
}

std::optional<uint16_t> rule_dport(const std::string& rule_text) {
  static const std::regex dport(R"((?:^| )(?:--dport|dport) (\d{1,5})(?: |$))");
  std::smatch m;
  if (!std::regex_search(rule_text, m, dport)) return std::nullopt;
  uint32_t port = 0;
  std::from_chars(m[1].first.base(), m[1].second.base(), port);
  if (port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

void name_drop_rules(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after, RuleBudget& budget) {
  bool nft_location = c.where.rfind("nft_do_chain", 0) == 0;
  bool hook_location = c.where.rfind("nf_hook_slow", 0) == 0;
  if (!nft_location && !hook_location) return;
  uint64_t nft_counted = 0, legacy_counted = 0, xt_counted = 0;
  uint64_t wanted = c.count;
  // What is left of a rule's rise for this cause: 0 when its port is not
  // the cause's, or other causes took it all.
  auto take = [&](const std::string& id, const std::string& text, uint64_t delta) -> uint64_t {
    auto port = rule_dport(text);
    if (port && !c.ports.count(*port)) return 0;
    uint64_t left = delta - std::min(delta, budget[id]);
    uint64_t n = std::min(left, wanted);
    budget[id] += n;
    wanted -= n;
    return n;
  };
  for (const auto& [key, rule] : after.drop_rules) {
    auto b = before.drop_rules.find(key);
    uint64_t base = b == before.drop_rules.end() ? 0 : b->second.packets;
    if (rule.packets <= base) continue;
    uint64_t delta = take("nft " + key, rule.text, rule.packets - base);
    if (!delta) continue;
    nft_counted += delta;
    c.rules.push_back({key.substr(0, key.rfind(' ')) + ": rule \"" + rule.text + "\" (handle " +
                           key.substr(key.rfind(' ') + 1) + ")",
                       delta});
  }
  if (nft_counted) c.evidence.push_back("nftables rule counters");
  auto risen = risen_iptables(before, after);
  for (const auto& r : risen) {
    bool legacy = r.rule->backend == "iptables-legacy";
    // iptables-nft rules run in nft_do_chain; before 6.7 (e0d4593140b0) every
    // nftables drop is freed by nf_hook_slow, so there both backends count.
    if (!drops(r.rule->text) || (legacy && !hook_location)) continue;
    uint64_t delta = take(r.rule->where() + " " + r.rule->text, r.rule->text, r.delta);
    if (!delta) continue;
    (legacy ? legacy_counted : xt_counted) += delta;
    c.rules.push_back({r.rule->where() + ": " + r.rule->text, delta});
    if (auto mark = matched_mark(r.rule->text))
      for (const auto& m : risen)
        if (m.rule->backend == r.rule->backend && m.rule->family == r.rule->family && sets_mark(m.rule->text, *mark))
          c.mark_origins.push_back({*mark, r.rule->where(), hit(m), jumps_to(*m.rule, risen)});
  }
  if (legacy_counted) c.evidence.push_back("iptables-legacy rule counters (iptables-legacy-save -c)");
  if (xt_counted) c.evidence.push_back("iptables-nft rule counters (iptables-nft-save -c)");
  if (!c.mark_origins.empty()) c.evidence.push_back("MARK rule counters: where the matched mark was set");
  bool generic_hook = c.cause.rfind("iptables-legacy, conntrack or NAT hook", 0) == 0 ||
                      c.cause.rfind("a netfilter hook dropped new connections", 0) == 0;
  if (hook_location && generic_hook && legacy_counted >= c.count) c.cause = "iptables-legacy rule drop";
  else if (hook_location && generic_hook && nft_counted + xt_counted >= c.count) c.cause = "nftables rule or chain policy drop";
  else if (nft_location && xt_counted >= c.count && !nft_counted) c.cause = "iptables-nft rule drop";
  else if (hook_location && generic_hook && nft_counted + legacy_counted + xt_counted > 0)
    c.cause += " (" + std::to_string(nft_counted + legacy_counted + xt_counted) + " of them counted by drop rules)";
}

}  // namespace natbpf
