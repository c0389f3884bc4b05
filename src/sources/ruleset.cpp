#include "sources/ruleset.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "util/text.h"

namespace natbpf {
namespace {


// Splits "text # handle 7" into ("text", 7).
std::pair<std::string, std::optional<uint64_t>> split_handle(const std::string& line) {
  auto pos = line.rfind("# handle ");
  if (pos == std::string::npos) return {line, std::nullopt};
  std::string num = line.substr(pos + 9);
  try {
    return {trim(line.substr(0, pos)), std::stoull(num)};
  } catch (...) {
    return {line, std::nullopt};
  }
}

size_t chain_key(std::string_view family, std::string_view table, std::string_view name) {
  std::hash<std::string_view> h;
  size_t k = h(family);
  for (auto part : {table, name}) k = (k ^ h(part)) * 0x100000001b3ULL;
  return k;
}

}  // namespace

std::optional<int> parse_priority(const std::string& text, const std::string& family) {
  static const std::map<std::string, int> names = {{"raw", -300},  {"mangle", -150}, {"dstnat", -100},
                                                    {"filter", 0},  {"security", 50}, {"srcnat", 100}};
  // bridge uses different numbers; natbpf works with ip, ip6 and inet.
  (void)family;
  // A number of the kernel's s32, never an overflow: nft prints what it
  // was given ("srcnat + 2147483647"), which need not fit.
  auto number = [](const std::string& s) -> std::optional<int64_t> {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
  };
  std::istringstream in(text);
  std::string base;
  in >> base;
  int64_t value;
  if (auto it = names.find(base); it != names.end()) {
    value = it->second;
  } else if (auto v = number(base)) {
    value = *v;
  } else {
    return std::nullopt;
  }
  std::string op, delta_text;
  if (in >> op >> delta_text) {
    auto delta = number(delta_text);
    if (!delta || (op != "+" && op != "-")) return std::nullopt;
    value += op == "-" ? -*delta : *delta;
  }
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) return std::nullopt;
  return static_cast<int>(value);
}

Ruleset Ruleset::parse(const std::string& text) {
  Ruleset rs;
  std::istringstream in(text);
  std::string line, family, table;
  ChainInfo* current = nullptr;
  int skip_depth = 0;  // inside a set/map/flowtable/counter body
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (skip_depth > 0) {
      for (char c : t) skip_depth += c == '{' ? 1 : c == '}' ? -1 : 0;
      continue;
    }
    auto [body, handle] = split_handle(t);
    auto w = split_words(body);
    if (w.empty()) continue;
    if (w[0] == "table" && w.size() >= 3) {
      family = w[1];
      table = w[2];
      current = nullptr;
    } else if (w[0] == "chain" && w.size() >= 2) {
      current = rs.put_chain(ChainInfo{family, table, w[1], {}, {}, {}, {}, {}});
    } else if (w[0] == "}") {
      current = nullptr;
    } else if ((w[0] == "set" || w[0] == "map" || w[0] == "flowtable" || w[0] == "counter" || w[0] == "quota" ||
                w[0] == "ct" || w[0] == "limit" || w[0] == "secmark" || w[0] == "synproxy") &&
               !current && body.back() == '{') {
      skip_depth = 1;
    } else if (current && w[0] == "type" && body.find(" hook ") != std::string::npos) {
      // "type filter hook forward priority filter; policy accept;"
      current->type = w[1];
      std::istringstream parts(body);
      for (std::string part; std::getline(parts, part, ';');) {
        auto pw = split_words(part);
        if (pw.empty()) continue;
        for (size_t i = 0; i + 1 < pw.size(); i++)
          if (pw[i] == "hook") current->hook = pw[i + 1];
        auto p = part.find("priority ");
        if (p != std::string::npos) current->priority = parse_priority(trim(part.substr(p + 9)), family);
        if (pw[0] == "policy" && pw.size() > 1) current->policy = pw[1];
      }
    } else if (current && handle && w[0] != "comment") {
      current->rules.push_back(RuleInfo{*handle, body});
    }
  }
  return rs;
}

void Ruleset::push_chain(ChainInfo c) const {
  by_name_.emplace(chain_key(c.family, c.table, c.name), chains_.size());
  chains_.push_back(std::move(c));
}

ChainInfo* Ruleset::put_chain(ChainInfo c) {
  if (size_t i = index_of(c.family, c.table, c.name); i != kNone) {
    chains_[i] = std::move(c);
    return &chains_[i];
  }
  push_chain(std::move(c));
  return &chains_.back();
}

void Ruleset::put_chains(Ruleset listed) {
  for (auto& c : listed.chains_) put_chain(std::move(c));
}

// The first chain of that name, as a scan in order would find it.
size_t Ruleset::index_of(const std::string& family, const std::string& table, const std::string& name) const {
  size_t first = kNone;
  auto [from, to] = by_name_.equal_range(chain_key(family, table, name));
  for (auto it = from; it != to; ++it) {
    const ChainInfo& c = chains_[it->second];
    if (c.family == family && c.table == table && c.name == name && it->second < first) first = it->second;
  }
  return first;
}

const ChainInfo* Ruleset::chain(const std::string& family, const std::string& table, const std::string& name) const {
  if (size_t i = index_of(family, table, name); i != kNone) return &chains_[i];
  return legacy_.empty() ? nullptr : read_legacy_chain(family, table, name);
}

const std::deque<ChainInfo>& Ruleset::chains() const {
  for (const auto& t : legacy_) {
    // In the order of the saves.
    std::vector<std::pair<uint64_t, std::string_view>> first;  // (save, place) of a chain's first line
    for (size_t i = 0; i < t.lines.size(); i++)
      if (i == 0 || t.lines[i].chain != t.lines[i - 1].chain)
        first.emplace_back(uint64_t(t.lines[i].text) << 32 | t.lines[i].begin, t.lines[i].chain);
    std::sort(first.begin(), first.end());
    for (const auto& [at, name] : first) chain(t.family, t.table, std::string(name));
  }
  return chains_;
}

const RuleInfo* Ruleset::rule(const std::string& family, const std::string& table, const std::string& chain_name,
                              uint64_t handle) const {
  const ChainInfo* c = chain(family, table, chain_name);
  if (!c) return nullptr;
  for (const auto& r : c->rules)
    if (r.handle == handle) return &r;
  return nullptr;
}

void Ruleset::add_chains(std::vector<ChainInfo> chains) {
  for (auto& c : chains)
    if (!chain(c.family, c.table, c.name)) push_chain(std::move(c));
}

namespace {

// The chain named by a save line after `skip` characters (":NAME POLICY
// [p:b]", "-A NAME ...").
std::string_view save_chain_name(std::string_view line, size_t skip) {
  line.remove_prefix(std::min(skip, line.size()));
  return line.substr(0, line.find(' '));
}

}  // namespace

// Indexes the save: per table, each chain's ":" line and runs of "-A"
// lines, as views into the held text; sorted by chain name for lookups.
void Ruleset::add_legacy_save(std::shared_ptr<const std::string> save, const std::string& family) {
  const std::string& text = *save;
  if (text.size() >= UINT32_MAX) return;  // 4 GB of rules: not a save natbpf reads
  const auto source = static_cast<uint32_t>(legacy_texts_.size());
  legacy_texts_.push_back(std::move(save));
  LegacyTable* table = nullptr;
  std::vector<size_t> touched;  // indices: legacy_ grows
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      std::string name(line.substr(1));
      auto it = std::find_if(legacy_.begin(), legacy_.end(),
                             [&](const LegacyTable& t) { return t.family == family && t.table == name; });
      table = it != legacy_.end() ? &*it : &legacy_.emplace_back(LegacyTable{family, name, {}});
      touched.push_back(static_cast<size_t>(table - legacy_.data()));
    } else if (!table) {
      continue;
    } else if (line[0] == ':') {
      if (auto name = save_chain_name(line, 1); !name.empty())
        table->lines.push_back(LegacyLines{name, source, uint32_t(start), uint32_t(end), true});
    } else if (line.rfind("-A ", 0) == 0 && line.size() > 3 && line[3] != ' ') {
      auto name = save_chain_name(line, 3);
      auto& lines = table->lines;
      if (!lines.empty() && !lines.back().decl && lines.back().text == source && lines.back().chain == name)
        lines.back().end = uint32_t(end);
      else
        lines.push_back(LegacyLines{name, source, uint32_t(start), uint32_t(end), false});
    }
  }
  for (size_t i : touched) {
    auto& lines = legacy_[i].lines;
    std::sort(lines.begin(), lines.end(), [](const LegacyLines& a, const LegacyLines& b) {
      return std::tie(a.chain, a.text, a.begin) < std::tie(b.chain, b.text, b.begin);
    });
    lines.shrink_to_fit();
  }
}

// Parses a legacy chain from its lines, unless it is in no save. (chain()
// asks only for a name no chain has yet: nftables' of that name comes first.)
const ChainInfo* Ruleset::read_legacy_chain(const std::string& family, const std::string& table,
                                            const std::string& name) const {
  auto t = std::find_if(legacy_.begin(), legacy_.end(),
                        [&](const LegacyTable& l) { return l.family == family && l.table == table; });
  if (t == legacy_.end()) return nullptr;
  auto [from, to] = std::equal_range(t->lines.begin(), t->lines.end(), LegacyLines{name},
                                     [](const LegacyLines& a, const LegacyLines& b) { return a.chain < b.chain; });
  if (from == to) return nullptr;
  ChainInfo c{family, table, name, {}, {}, {}, {}, {}};
  for (auto l = from; l != to; ++l) {
    std::string_view lines = std::string_view(*legacy_texts_[l->text]).substr(l->begin, l->end - l->begin);
    if (l->decl) {
      auto w = split_words(std::string(lines.substr(1)));
      if (w.empty()) continue;  // ":" and blanks: a damaged save declares nothing
      if (std::string hook = iptables_builtin_hook(w[0]); !hook.empty()) c.hook = hook;
      if (w.size() > 1 && w[1] != "-") {
        std::string pol = w[1];
        for (auto& ch : pol) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        c.policy = pol;
      }
      continue;
    }
    while (!lines.empty()) {
      std::string_view line = lines.substr(0, lines.find('\n'));
      lines.remove_prefix(std::min(lines.size(), line.size() + 1));
      if (line.rfind("-A ", 0) == 0) c.rules.push_back(RuleInfo{c.rules.size() + 1, std::string(line), {}, true});
    }
  }
  push_chain(std::move(c));
  return &chains_.back();
}

std::string iptables_builtin_hook(const std::string& chain) {
  if (chain == "PREROUTING") return "prerouting";
  if (chain == "INPUT") return "input";
  if (chain == "FORWARD") return "forward";
  if (chain == "OUTPUT") return "output";
  if (chain == "POSTROUTING") return "postrouting";
  return "";
}

bool is_xtables_table(const std::string& family, const std::string& table) {
  static const std::set<std::string> names = {"filter", "nat", "mangle", "raw", "security"};
  return (family == "ip" || family == "ip6") && names.count(table);
}

bool Ruleset::has_xtables_tables(const std::string& family) const {
  for (const auto& c : chains_)
    if (c.family == family && is_xtables_table(c.family, c.table)) return true;
  return false;
}

void Ruleset::add_iptables_syntax(const std::string& family, const std::string& save_output) {
  std::istringstream in(save_output);
  std::string line, table;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> lines;  // (table, chain) -> rules
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == '*') table = line.substr(1);
    if (line.rfind("-A ", 0) != 0) continue;
    auto w = split_words(line);
    if (w.size() >= 2) lines[{table, w[1]}].push_back(line);
  }
  for (auto& c : chains_) {
    if (c.family != family) continue;
    auto it = lines.find({c.table, c.name});
    if (it == lines.end() || it->second.size() != c.rules.size()) continue;  // not iptables-nft's, or changed
    for (size_t i = 0; i < c.rules.size(); i++) c.rules[i].iptables = it->second[i];
  }
}

}  // namespace natbpf
