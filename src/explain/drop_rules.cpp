#include "explain/drop_rules.h"

#include <cctype>
#include <charconv>
#include <initializer_list>
#include <map>
#include <regex>
#include <string_view>

#include "util/text.h"

namespace natbpf {
namespace {

// std::regex recurses once per character it consumes: a rule text from a
// damaged recording of hundreds of kB would overflow the stack, so longer
// ones are not searched (too_long_for_regex). No rule natbpf reads is near
// that long (kube-proxy's longest are under 1 kB).

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

// nftables counterparts: the risen counted rules of a snapshot pair, and
// the jumps to a chain of the same table, nearest first, at most three.
struct NftRisen {
  std::string key;  // "family table chain handle"
  std::string text;
  uint64_t delta;
  std::string table() const { return key.substr(0, key.find(' ', key.find(' ') + 1)); }  // "family table"
  std::string chain() const {
    size_t a = key.find(' ', key.find(' ') + 1) + 1;
    return key.substr(a, key.rfind(' ') - a);
  }
  std::string where() const { return key.substr(0, key.rfind(' ')) + " (handle " + key.substr(key.rfind(' ') + 1) + ")"; }
};

std::vector<NftRisen> risen_nft(const std::map<std::string, DropRuleCounter>& before,
                                const std::map<std::string, DropRuleCounter>& after) {
  std::vector<NftRisen> out;
  for (const auto& [key, rule] : after) {
    auto b = before.find(key);
    uint64_t base = b != before.end() && b->second.text == rule.text ? b->second.packets : 0;
    if (rule.packets > base) out.push_back({key, rule.text, rule.packets - base});
  }
  return out;
}

RuleHit nft_hit(const NftRisen& r) { return {r.where(), r.text, r.delta}; }

std::vector<RuleHit> nft_jumps_to(const NftRisen& target, const std::vector<NftRisen>& risen) {
  static const std::regex jump(R"((?:^| )(?:jump|goto) (\S+))");
  std::vector<RuleHit> via;
  std::string chain = target.chain();
  for (int level = 0; level < 3; level++) {
    const NftRisen* found = nullptr;
    for (const auto& r : risen) {
      std::smatch m;
      if (r.table() == target.table() && !too_long_for_regex(r.text) && std::regex_search(r.text, m, jump) && m[1] == chain) {
        found = &r;
        break;
      }
    }
    if (!found) break;
    via.push_back(nft_hit(*found));
    chain = found->chain();
  }
  return via;
}

// Whether the bits value/mask of a match are all written, to those values,
// by a setter writing set_value under set_mask.
bool writes_bits(std::pair<uint32_t, uint32_t> want, std::pair<uint32_t, uint32_t> given) {
  auto [value, mask] = want;
  auto [set_value, set_mask] = given;
  return (set_mask & mask) == mask && (set_value & mask) == (value & mask);
}

}  // namespace

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


// A conntrack mark is written "ct V/M": the packet mark and the
// connection's mark are set by different rules.
constexpr const char* kCtPrefix = "ct ";

// The iptables matches below run for the steps of every story (`explain
// --log` tells millions), so they are scanned by hand, not with std::regex
// (microseconds a rule); each gives what the regex in its comment gives,
// the leftmost match, and still nothing for texts too long for a regex.

// The word (a run of non-space characters, regex \S+) at s[at], at <= s.size().
std::string_view word_at(std::string_view s, size_t at) {
  size_t end = at;
  while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end]))) end++;
  return s.substr(at, end - at);
}

// What `text` starts with among `choices` (followed by `then`), or "".
std::string_view starts_with_one(std::string_view text, std::initializer_list<std::string_view> choices,
                                 std::string_view then) {
  for (auto c : choices)
    if (text.starts_with(c) && text.substr(c.size()).starts_with(then)) return c;
  return {};
}

std::optional<std::string> matched_mark(const std::string& rule_text) {
  // (?:^| )-m (mark|connmark) --mark (\S+)
  if (too_long_for_regex(rule_text)) return std::nullopt;
  std::string_view t = rule_text;
  for (size_t at = t.find("-m "); at != std::string_view::npos; at = t.find("-m ", at + 1)) {
    if (at > 0 && t[at - 1] != ' ') continue;
    std::string_view rest = t.substr(at + 3);
    std::string_view kind = starts_with_one(rest, {"mark", "connmark"}, " --mark ");
    std::string_view value = kind.empty() ? "" : word_at(rest, kind.size() + 8);
    if (!value.empty()) return (kind == "connmark" ? kCtPrefix : "") + std::string(value);
  }
  return std::nullopt;
}

bool sets_mark(const std::string& rule_text, const std::string& mark) {
  //  -j (MARK|CONNMARK) --(set-xmark|set-mark|or-mark) (\S+)
  if (too_long_for_regex(rule_text)) return false;
  std::string_view t = rule_text, target, op, value;
  for (size_t at = t.find(" -j "); at != std::string_view::npos && value.empty(); at = t.find(" -j ", at + 1)) {
    std::string_view rest = t.substr(at + 4);
    target = starts_with_one(rest, {"MARK", "CONNMARK"}, " --");
    if (target.empty()) continue;
    rest.remove_prefix(target.size() + 3);
    op = starts_with_one(rest, {"set-xmark", "set-mark", "or-mark"}, " ");
    value = op.empty() ? "" : word_at(rest, op.size() + 1);
  }
  if (value.empty()) return false;
  bool ct = mark.rfind(kCtPrefix, 0) == 0;
  if (ct != (target == "CONNMARK")) return false;
  auto want = parse_mark(ct ? mark.substr(3) : mark);
  auto given = parse_mark(std::string(value));
  if (!want || !given) return false;
  if (op == "or-mark") given->second = given->first;
  // The bits the match tests are all written by this rule, to the values it wants.
  return writes_bits(*want, *given);
}

std::optional<std::string> nft_matched_mark(const std::string& rule_text) {
  static const std::regex masked(R"((?:^| )(meta |ct )?mark & (0x[0-9a-f]+) == (0x[0-9a-f]+)(?: |$))");
  static const std::regex plain(R"((?:^| )(meta |ct )?mark (0x[0-9a-f]+)(?: |$))");
  std::smatch m;
  if (too_long_for_regex(rule_text) || rule_text.find("mark ") == std::string::npos) return std::nullopt;
  if (std::regex_search(rule_text, m, masked))
    return (m[1] == "ct " ? kCtPrefix : "") + m[3].str() + "/" + m[2].str();
  if (std::regex_search(rule_text, m, plain)) return (m[1] == "ct " ? kCtPrefix : "") + m[2].str();
  return std::nullopt;
}

bool nft_sets_mark(const std::string& rule_text, const std::string& mark) {
  static const std::regex set_or(R"((?:^| )(meta |ct )?mark set (?:meta |ct )?mark \| (0x[0-9a-f]+)(?: |$))");
  static const std::regex set_plain(R"((?:^| )(meta |ct )?mark set (0x[0-9a-f]+)(?: |$))");
  bool ct = mark.rfind(kCtPrefix, 0) == 0;
  auto want = parse_mark(ct ? mark.substr(3) : mark);
  if (!want) return false;
  std::smatch m;
  if (too_long_for_regex(rule_text) || rule_text.find("mark set ") == std::string::npos) return false;
  bool is_or = std::regex_search(rule_text, m, set_or);
  if (!is_or && !std::regex_search(rule_text, m, set_plain)) return false;
  if (ct != (m[1] == "ct ")) return false;
  auto v = parse_mark(m[2].str());
  return v && writes_bits(*want, {v->first, is_or ? v->first : 0xffffffffu});
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
  if (too_long_for_regex(rule_text) || !std::regex_search(rule_text, m, dport)) return std::nullopt;
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
  std::optional<std::vector<NftRisen>> nft_marks;  // read once, when a drop rule matches a mark
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
    std::string where = key.substr(0, key.rfind(' ')) + ": rule \"" + rule.text + "\" (handle " +
                        key.substr(key.rfind(' ') + 1) + ")";
    size_t family_end = key.find(' '), table_end = key.find(' ', family_end + 1);
    c.rules.push_back({where, delta, key.substr(0, family_end), key.substr(family_end + 1, table_end - family_end - 1),
                       key.substr(table_end + 1, key.rfind(' ') - table_end - 1), rule.text});
    if (auto mark = nft_matched_mark(rule.text)) {
      if (!nft_marks) nft_marks = risen_nft(before.mark_rules, after.mark_rules);
      for (const auto& m : *nft_marks)
        if (nft_sets_mark(m.text, *mark))
          c.mark_origins.push_back({*mark, key.substr(0, key.rfind(' ')) + " (handle " + key.substr(key.rfind(' ') + 1) + ")",
                                    nft_hit(m), nft_jumps_to(m, *nft_marks)});
    }
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
    c.rules.push_back({r.rule->where() + ": " + r.rule->text, delta, r.rule->family, r.rule->table, r.rule->chain,
                       r.rule->text});
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
