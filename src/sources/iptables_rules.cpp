#include "sources/iptables_rules.h"

#include <charconv>
#include <map>
#include <string_view>

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <regex>
#include <sstream>

#include "sources/nft.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::optional<uint16_t> port(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long v = std::stoul(s);
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

std::optional<uint8_t> proto_number(const std::string& s) {
  if (s == "tcp" || s == "6") return 6;
  if (s == "udp" || s == "17") return 17;
  if (s == "sctp" || s == "132") return 132;
  if (s == "udplite" || s == "136") return 136;
  if (s == "dccp" || s == "33") return 33;
  return std::nullopt;
}

std::optional<Prefix> parse_prefix(const std::string& s) {
  auto slash = s.find('/');
  auto a = Addr::parse(s.substr(0, slash));
  if (!a) return std::nullopt;
  Prefix p{*a, a->family == 2 ? 32 : 128};
  if (slash != std::string::npos) {
    try {
      p.len = std::stoi(s.substr(slash + 1));
    } catch (...) {
      return std::nullopt;  // dotted netmasks are not written by iptables-save for /N prefixes
    }
  }
  return p;
}

// "a-b" as a port range, or a single port.
bool parse_port_range(const std::string& s, NatRule& r) {
  auto dash = s.find('-');
  auto lo = port(s.substr(0, dash));
  auto hi = dash == std::string::npos ? lo : port(s.substr(dash + 1));
  if (!lo || !hi) return false;
  r.min_port = *lo;
  r.max_port = *hi;
  return true;
}

// "A" or "A-B", IPv6 possibly in brackets.
bool parse_addr_range(std::string s, NatRule& r) {
  auto strip = [](std::string a) {
    if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    return a;
  };
  std::optional<Addr> lo, hi;
  if (s.find(':') != std::string::npos && s.find('.') == std::string::npos && s.front() != '[') {
    // Bare IPv6 ("::1" or "::1-::2"): no port possible here.
    auto dash = s.find('-');
    lo = Addr::parse(s.substr(0, dash));
    hi = dash == std::string::npos ? lo : Addr::parse(s.substr(dash + 1));
  } else {
    auto dash = s.find("-");
    if (s.front() == '[') dash = s.find("]-") == std::string::npos ? std::string::npos : s.find("]-") + 1;
    lo = Addr::parse(strip(s.substr(0, dash)));
    hi = dash == std::string::npos ? lo : Addr::parse(strip(s.substr(dash + 1)));
  }
  if (!lo || !hi || lo->family != hi->family) return false;
  r.min_addr = lo;
  r.max_addr = hi;
  return true;
}

std::string strip_counters(std::string text) {
  static const std::regex counter(R"(\s*counter packets \d+ bytes \d+)");
  return std::regex_replace(text, counter, "");
}

}  // namespace

bool Prefix::contains(const Addr& a) const {
  if (a.family != addr.family) return false;
  int bits = len;
  for (int i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (addr.bytes[i] & mask)) return false;
  }
  return true;
}

std::string NatRule::flags_str() const {
  std::string s;
  if (random) s += "random";
  if (random_fully) s += std::string(s.empty() ? "" : ",") + "random-fully";
  if (persistent) s += std::string(s.empty() ? "" : ",") + "persistent";
  return s;
}

std::string NatRule::range_str() const {
  std::string s;
  if (min_addr) {
    auto a = [](const Addr& x) { return x.family == 10 ? "[" + x.str() + "]" : x.str(); };
    s = a(*min_addr);
    if (max_addr && !(*max_addr == *min_addr)) s += "-" + a(*max_addr);
  } else {
    s = kind == "masquerade" ? "(interface address)" : "";
  }
  if (min_port) s += ":" + std::to_string(*min_port) + "-" + std::to_string(max_port.value_or(*min_port));
  return s;
}

bool parse_nat_spec(const std::string& spec, NatRule& r) {
  if (spec.empty()) return false;
  if (spec.front() == ':') return parse_port_range(spec.substr(1), r);
  // The port part starts at the last ':' after the address part; IPv6
  // addresses only carry ports when bracketed.
  std::string addrs = spec, ports;
  if (spec.front() == '[') {
    auto close = spec.rfind(']');
    if (close == std::string::npos) return false;
    if (close + 1 < spec.size() && spec[close + 1] == ':') {
      addrs = spec.substr(0, close + 1);
      ports = spec.substr(close + 2);
    }
  } else if (spec.find('.') != std::string::npos) {
    auto colon = spec.find(':');
    if (colon != std::string::npos) {
      addrs = spec.substr(0, colon);
      ports = spec.substr(colon + 1);
    }
  }
  if (!parse_addr_range(addrs, r)) return false;
  return ports.empty() || parse_port_range(ports, r);
}

std::vector<NatRule> parse_iptables_save(const std::string& text, const std::string& backend, uint8_t family) {
  std::vector<NatRule> out;
  std::istringstream in(text);
  std::string line, table;
  std::map<std::string, int> rule_no;
  const std::string tool = family == 10 ? "ip6tables" : "iptables";
  while (std::getline(in, line)) {
    if (line.rfind("*", 0) == 0) {
      table = line.substr(1);
      continue;
    }
    if (table != "nat" || line.rfind("-A ", 0) != 0) continue;
    auto w = words(line);
    NatRule r;
    r.backend = backend;
    r.family = family;
    std::string chain = w.size() > 1 ? w[1] : "";
    int n = ++rule_no[chain];
    r.where = backend + ": " + tool + " -t nat, chain " + chain + ", rule " + std::to_string(n);
    r.chain = chain;
    r.table = "nat";
    r.number = static_cast<uint64_t>(n);
    bool negate = false;
    bool ok = true;
    for (size_t i = 2; i < w.size(); i++) {
      const std::string& o = w[i];
      std::string v = i + 1 < w.size() ? w[i + 1] : "";
      if (o == "!") {
        negate = true;
        continue;
      }
      if (o == "-p") {
        if (!negate) r.proto = proto_number(v);
        i++;
      } else if (o == "-s") {
        if (!negate) r.saddr = parse_prefix(v);
        i++;
      } else if (o == "-d") {
        if (!negate) r.daddr = parse_prefix(v);
        i++;
      } else if (o == "--dport" || o == "--destination-port") {
        if (!negate) r.dport = port(v);
        i++;
      } else if (o == "-j") {
        if (v == "SNAT") r.kind = "snat";
        else if (v == "MASQUERADE") r.kind = "masquerade";
        else if (v == "DNAT") r.kind = "dnat";
        i++;
      } else if (o == "--to-source" || o == "--to-destination") {
        ok &= parse_nat_spec(v, r);
        i++;
      } else if (o == "--to-ports") {
        ok &= parse_port_range(v, r);
        i++;
      } else if (o == "--random") {
        r.random = true;
      } else if (o == "--random-fully") {
        r.random_fully = true;
      } else if (o == "--persistent") {
        r.persistent = true;
      }
      negate = false;
    }
    if (r.kind.empty() || !ok) continue;
    r.text = tool + " -t nat " + line;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<NatRule> nat_rules_from_nft(const Ruleset& ruleset) {
  std::vector<NatRule> out;
  for (const auto& c : ruleset.chains()) {
    for (const auto& rule : c.rules) {
      auto w = words(rule.text);
      NatRule r;
      r.backend = "nftables";
      r.family = c.family == "ip" ? 2 : c.family == "ip6" ? 10 : 0;
      r.text = strip_counters(rule.text);
      r.where = "nftables: table " + c.family + " " + c.table + " chain " + c.name + " handle " + std::to_string(rule.handle);
      r.chain = c.name;
      r.table = c.family + " " + c.table;
      r.number = rule.handle;
      bool ok = true;
      for (size_t i = 0; i < w.size(); i++) {
        std::string v = i + 1 < w.size() ? w[i + 1] : "";
        std::string v2 = i + 2 < w.size() ? w[i + 2] : "";
        if ((w[i] == "ip" || w[i] == "ip6") && (v == "daddr" || v == "saddr") && v2 != "!=" && v2 != "{") {
          (v == "daddr" ? r.daddr : r.saddr) = parse_prefix(v2);
          i += 2;
        } else if ((w[i] == "tcp" || w[i] == "udp" || w[i] == "sctp") && v == "dport") {
          r.proto = proto_number(w[i]);
          if (v2 != "!=") r.dport = port(v2);
          i += 2;
        } else if ((w[i] == "l4proto" || w[i] == "protocol" || w[i] == "nexthdr") && v != "!=") {
          r.proto = proto_number(v);
          i++;
        } else if (w[i] == "snat" || w[i] == "dnat" || w[i] == "masquerade") {
          if (w[i] == "masquerade" && i > 0 && w[i - 1] == "xt") continue;
          r.kind = w[i];
          size_t j = i + 1;
          if (j < w.size() && (w[j] == "ip" || w[j] == "ip6")) j++;
          if (j + 1 < w.size() && w[j] == "to") {
            ok &= parse_nat_spec(w[j + 1], r);
            j += 2;
          }
          for (; j < w.size(); j++) {
            std::istringstream flags(w[j]);
            for (std::string f; std::getline(flags, f, ',');) {
              if (f == "random") r.random = true;
              else if (f == "fully-random") r.random_fully = true;
              else if (f == "persistent") r.persistent = true;
            }
          }
          break;
        }
      }
      if (r.kind.empty() || !ok) continue;
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::vector<NatRule> load_nat_rules(std::vector<std::string>* notes) {
  std::vector<NatRule> all;
  auto note = [&](const std::string& s) {
    if (notes) notes->push_back(s);
  };
  // Without -t: naming the nat table would make the legacy tools load (and
  // so create) it. Empty output means the backend has no tables here.
  struct Src {
    const char* cmd;
    const char* backend;
    uint8_t family;
  };
  for (const Src& s : {Src{"iptables-nft-save", "iptables-nft", 2}, Src{"ip6tables-nft-save", "iptables-nft", 10},
                       Src{"iptables-legacy-save", "iptables-legacy", 2},
                       Src{"ip6tables-legacy-save", "iptables-legacy", 10}}) {
    auto [status, text] = run_program({s.cmd});
    if (status != 0) continue;  // not installed, or no such backend here
    auto rules = parse_iptables_save(text, s.backend, s.family);
    if (!rules.empty()) note(std::string(s.cmd) + ": " + std::to_string(rules.size()) + " NAT rules");
    all.insert(all.end(), rules.begin(), rules.end());
  }
  auto nft = NftContext::create();
  if (nft) {
    auto text = nft->run("list ruleset");
    if (text) {
      auto rules = nat_rules_from_nft(Ruleset::parse(*text));
      if (!rules.empty()) note("nftables: " + std::to_string(rules.size()) + " NAT rules");
      all.insert(all.end(), rules.begin(), rules.end());
    }
  }
  return all;
}

const NatRule* match_snat_rule(const std::vector<NatRule>& rules, const CtEntry& ct) {
  const Tuple& o = ct.orig;
  const Addr& mapped = ct.reply.dst;  // SNAT: the new source is the reply's destination
  uint16_t mapped_port = ct.reply.dport;
  const NatRule* best = nullptr;
  int best_score = -1;
  for (const auto& r : rules) {
    if (r.kind != "snat" && r.kind != "masquerade") continue;
    if (r.family && r.family != o.src.family) continue;
    if (r.proto && *r.proto != o.proto) continue;
    if (r.dport && *r.dport != o.dport) continue;
    if (r.daddr && !r.daddr->contains(o.dst)) continue;
    if (r.saddr && !r.saddr->contains(o.src)) continue;
    if (r.min_addr && r.max_addr) {
      size_t n = mapped.family == 2 ? 4 : 16;
      if (mapped.family != r.min_addr->family ||
          std::memcmp(mapped.bytes.data(), r.min_addr->bytes.data(), n) < 0 ||
          std::memcmp(mapped.bytes.data(), r.max_addr->bytes.data(), n) > 0)
        continue;
    }
    if (r.min_port && (mapped_port < *r.min_port || mapped_port > r.max_port.value_or(*r.min_port))) continue;
    int score = (r.proto ? 1 : 0) + (r.dport ? 2 : 0) + (r.daddr ? 2 : 0) + (r.saddr ? 1 : 0) +
                (r.min_port ? 2 : 0) + (r.backend != "nftables" ? 1 : 0);
    if (score > best_score) {
      best = &r;
      best_score = score;
    }
  }
  return best;
}

std::string IptRuleCounter::key() const {
  return backend + "|" + family + "|" + table + "|" + chain + "|" + std::to_string(number);
}

std::string IptRuleCounter::where() const {
  return (family == "ip6" ? "ip6tables" : "iptables") + std::string(backend == "iptables-legacy" ? "-legacy" : "-nft") +
         " -t " + table + " " + chain + " rule " + std::to_string(number);
}

std::vector<IptRuleCounter> parse_iptables_counters(const std::string& save, const std::string& backend,
                                                    const std::string& family) {
  std::vector<IptRuleCounter> out;
  std::map<std::string, uint32_t> numbers;  // chain -> rules seen, in the current table
  std::string table;
  size_t start = 0;
  while (start < save.size()) {
    size_t end = save.find('\n', start);
    if (end == std::string::npos) end = save.size();
    std::string_view line(save.data() + start, end - start);
    start = end + 1;
    if (!line.empty() && line[0] == '*') {
      table = std::string(line.substr(1));
      numbers.clear();
      continue;
    }
    // "[12:720] -A CHAIN ..." (with -c); lines without counters are skipped.
    if (line.size() < 2 || line[0] != '[' || table.empty()) continue;
    size_t colon = line.find(':'), close = line.find(']');
    if (colon == std::string_view::npos || close == std::string_view::npos || colon > close) continue;
    uint64_t packets = 0;
    if (std::from_chars(line.data() + 1, line.data() + colon, packets).ec != std::errc{}) continue;
    std::string_view rule = line.substr(close + 1);
    while (!rule.empty() && rule.front() == ' ') rule.remove_prefix(1);
    if (rule.rfind("-A ", 0) != 0) continue;
    std::string_view rest = rule.substr(3);
    std::string chain(rest.substr(0, rest.find(' ')));
    out.push_back({backend, family, table, chain, ++numbers[chain], std::string(rule), packets});
  }
  return out;
}

}  // namespace natbpf
