#include "explain/trace_explain.h"

#include "util/names.h"
#include "util/text.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <cstdlib>

namespace natbpf {
namespace {


// nft's keyword for a protocol, as a set key holds it ("ipv6-icmp", not "icmpv6").
std::string nft_proto_keyword(uint8_t p) {
  return p == 6 ? "tcp" : p == 17 ? "udp" : p == 1 ? "icmp" : p == 58 ? "ipv6-icmp" : std::to_string(p);
}

// The value a packet gives for one nft selector, or nullopt if unsupported.
std::optional<std::string> selector_value(const std::string& a, const std::string& b, const Packet& p) {
  if ((a == "ip" || a == "ip6") && b == "saddr") return p.saddr.str();
  if ((a == "ip" || a == "ip6") && b == "daddr") return p.daddr.str();
  if ((a == "tcp" || a == "udp" || a == "th" || a == "sctp") && b == "sport") return std::to_string(p.sport);
  if ((a == "tcp" || a == "udp" || a == "th" || a == "sctp") && b == "dport") return std::to_string(p.dport);
  if (a == "meta" && b == "l4proto") return nft_proto_keyword(p.l4proto);
  if (a == "ip" && b == "protocol") return nft_proto_keyword(p.l4proto);
  return std::nullopt;
}

bool is_destination_nat(const std::string& kind) { return kind == "dnat" || kind == "redirect"; }

void fill_rule_texts(Journey& j, const ExplainContext& ctx) {
  for (auto& s : j.steps) {
    if (!s.handle || !ctx.ruleset) continue;
    const RuleInfo* r = ctx.ruleset->rule(family_name(s.family), s.table, s.chain, *s.handle);
    if (!r) continue;
    s.rule = r->shown();
    if (r->iptables_syntax()) s.syntax = "iptables";
  }
}

}  // namespace

// A NAT statement, not a word: nft "dnat to", "dnat ip to", "snat ip6 to",
// "masquerade", "redirect"; iptables "-j DNAT", "-j MASQUERADE". Matches on
// NAT state ("ct status dnat", "--ctstate DNAT") are not NAT.
std::string nat_statement_kind(const std::string& rule) {
  // Every name below has "nat", "masquerade" or "redirect" in it, in any
  // case: most rules have none, and need not be split (every accepting step).
  auto has = [&rule](std::string_view word) {
    return std::search(rule.begin(), rule.end(), word.begin(), word.end(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           }) != rule.end();
  };
  if (!has("nat") && !has("masquerade") && !has("redirect")) return "";
  auto words = split_words(rule);
  for (size_t i = 0; i < words.size(); i++) {
    size_t n = words[i].size();
    if (n != 4 && n != 8 && n != 10) continue;  // none of the names below (runs for every accepting step)
    std::string w = words[i];
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string prev = i ? words[i - 1] : "";
    const std::string next = i + 1 < words.size() ? words[i + 1] : "";
    const std::string after = i + 2 < words.size() ? words[i + 2] : "";
    for (const char* k : {"dnat", "snat", "masquerade", "redirect"}) {
      if (w != k) continue;
      if (prev == "-j" || prev == "--jump") return k;  // an iptables target
      if (prev == "status" || (!prev.empty() && prev[0] == '-')) continue;  // a match on NAT state
      bool mapping = w == "dnat" || w == "snat";
      if (!mapping || next == "to" || ((next == "ip" || next == "ip6") && after == "to")) return k;
    }
  }
  return "";
}

namespace {

void find_nat(Journey& j, const ExplainContext& ctx) {
  for (size_t i = 0; i < j.steps.size(); i++) {
    const Step& s = j.steps[i];
    if (s.verdict != NftVerdict::Accept || s.rule.empty()) continue;
    std::string kind = nat_statement_kind(s.rule);
    if (kind.empty()) continue;
    NatChange n{kind, "", "", s.rule, s.handle, family_name(s.family) + " " + s.table + " " + s.chain, ""};
    // Headers before and after: this step's chain saw them before the
    // change, a later hook's first trace message carries them after it.
    std::optional<Packet> before, after;
    const Step* after_step = nullptr;
    for (size_t k = 0; k <= i; k++)
      if (j.steps[k].packet) before = j.steps[k].packet;
    if (!before && j.packet.family) before = j.packet;
    for (size_t k = i + 1; k < j.steps.size() && !after; k++)
      if (j.steps[k].packet) {
        after = j.steps[k].packet;
        after_step = &j.steps[k];
      }
    if (!after && j.final_packet) after = j.final_packet;
    if (before) {
      n.from = is_destination_nat(kind) ? endpoint(before->daddr, before->dport) : endpoint(before->saddr, before->sport);
    }
    if (after) {
      n.to = is_destination_nat(kind) ? endpoint(after->daddr, after->dport) : endpoint(after->saddr, after->sport);
      n.evidence = s.origin == Origin::Nflog ? "iptables TRACE headers" : "nftrace headers";
      if (after_step && !s.log_ref.empty()) n.evidence += ", " + s.log_ref + " then " + after_step->log_ref;
    }
    // The conntrack entry (from BPF) holds the mapping in its reply tuple.
    for (const auto& b : j.bpf) {
      if (!n.to.empty()) break;
      const CtEntry* ct = nullptr;
      if (auto* d = std::get_if<SkbDropEvent>(&b); d && d->ct) ct = &*d->ct;
      if (auto* c = std::get_if<CtConfirmEvent>(&b)) ct = &c->loser;
      if (!ct) continue;
      n.to = is_destination_nat(kind) ? endpoint(ct->reply.src, ct->reply.sport) : endpoint(ct->reply.dst, ct->reply.dport);
      n.evidence = "conntrack entry";
    }
    if (n.to.empty()) n.evidence = "rule text only";
    (void)ctx;
    j.nat.push_back(std::move(n));
  }
  // Later packets of a connection are translated by its conntrack entry
  // without passing the NAT chains: the headers still tell.
  if (!j.nat.empty() || !j.packet.family || !j.final_packet) return;
  const Packet& a = j.packet;
  const Packet& b = *j.final_packet;
  if (a.daddr != b.daddr || a.dport != b.dport)
    j.nat.push_back({"dnat", endpoint(a.daddr, a.dport), endpoint(b.daddr, b.dport), "", std::nullopt, "",
                     "conntrack entry of the connection (headers before and after)"});
  if (a.saddr != b.saddr || a.sport != b.sport)
    j.nat.push_back({"snat", endpoint(a.saddr, a.sport), endpoint(b.saddr, b.sport), "", std::nullopt, "",
                     "conntrack entry of the connection (headers before and after)"});
}

std::string reason_text(const SkbDropEvent& d, const ExplainContext& ctx) {
  if (!d.reason) return "";
  return ctx.drop_reason ? ctx.drop_reason(*d.reason) : std::to_string(*d.reason);
}

void find_drop(Journey& j, const ExplainContext& ctx) {
  // nftables' own verdict first: it names the rule.
  for (const auto& s : j.steps) {
    if (s.verdict != NftVerdict::Drop) continue;
    DropPoint d;
    d.family = family_name(s.family);
    d.table = s.table;
    d.chain = s.chain;
    d.hook = s.hook;
    d.handle = s.handle;
    d.rule = s.type == NftTraceType::Policy ? "" : s.rule;
    d.cause = s.type == NftTraceType::Policy ? "chain policy drop" : "rule drop";
    if (!s.log_ref.empty())
      d.evidence.push_back((s.origin == Origin::Nflog ? "iptables TRACE line " : "nft monitor trace line ") + s.log_ref);
    else
      d.evidence.push_back(s.origin == Origin::Nflog ? "iptables TRACE (nflog)" : "nftrace");
    j.drop = d;
    break;
  }
  for (const auto& b : j.bpf) {
    if (auto* c = std::get_if<CtConfirmEvent>(&b); c && !c->accepted) {
      if (!j.drop) j.drop = DropPoint{};
      j.drop->cause = "conntrack insert failed at confirm: the entry clashes with an existing one";
      j.drop->evidence.push_back(std::string(exit_name(c->origin)) + " __nf_conntrack_confirm returned NF_DROP");
    }
    if (auto* h = std::get_if<HookDropEvent>(&b)) {
      if (!j.drop) j.drop = DropPoint{};
      if (j.drop->hook.empty()) j.drop->hook = nf_hook_name(h->hook);
      j.drop->evidence.push_back(std::string(exit_name(h->origin)) + " nf_hook_slow returned " + std::to_string(h->ret) +
                                 " at " + nf_hook_name(h->hook));
    }
    auto* d = std::get_if<SkbDropEvent>(&b);
    if (!d) continue;
    std::string where = ctx.symbol ? ctx.symbol(d->location) : "";
    std::string reason = reason_text(*d, ctx);
    std::string fn = where.substr(0, where.find('+'));
    if (!j.drop) {
      j.drop = DropPoint{};
      if (reason == "NETFILTER_DROP" || (!d->reason && fn == "nf_hook_slow")) {
        if (fn == "nf_hook_slow") {
          bool unconfirmed = d->ct && !(d->ct->status & ips::kConfirmed);
          j.drop->cause = unconfirmed
                              ? "dropped by a netfilter hook outside nftables; its conntrack entry was never "
                                "confirmed (conntrack insert failure, or iptables-legacy/NAT)"
                              : "dropped by a netfilter hook outside nftables (iptables-legacy, conntrack or NAT)";
        } else {
          j.drop->cause = "dropped by netfilter (" + fn + ")";
        }
      } else {
        j.drop->cause = "dropped by the kernel outside netfilter" + (reason.empty() ? "" : ": " + reason);
      }
    }
    j.drop->location = where;
    j.drop->reason = reason;
    j.drop->evidence.push_back(std::string("kfree_skb") + (reason.empty() ? "" : " " + reason) +
                               (where.empty() ? "" : " at " + where));
  }
  if (j.drop) j.fate = Fate::Dropped;
}

void find_near_misses(Journey& j, const ExplainContext& ctx) {
  if (!j.drop || !ctx.ruleset || j.drop->chain.empty()) return;
  const ChainInfo* chain = ctx.ruleset->chain(j.drop->family, j.drop->table, j.drop->chain);
  if (!chain) return;
  std::set<uint64_t> matched;
  std::optional<Packet> seen;  // headers as this chain saw them (after DNAT)
  for (const auto& s : j.steps) {
    if (s.packet) seen = s.packet;
    if (s.table == j.drop->table && s.chain == j.drop->chain && s.handle) matched.insert(*s.handle);
    if (s.verdict == NftVerdict::Drop) break;
  }
  if (!seen && j.packet.family) seen = j.packet;
  for (const auto& r : chain->rules) {
    if (j.drop->handle && r.handle == *j.drop->handle) break;
    if (matched.count(r.handle)) continue;
    NearMiss m{r.handle, r.shown(), "did not match"};
    if (seen) {
      if (auto lk = set_lookup_key(r.text, *seen)) {
        std::string setname = j.drop->family + " " + j.drop->table + " " + lk->set;
        std::optional<bool> has = ctx.set_has ? ctx.set_has(j.drop->family, j.drop->table, lk->set, lk->key)
                                              : std::nullopt;
        if (has == false) {
          m.why = lk->key + " is not in set " + setname;
          m.set = setname;
          m.key = lk->key;
          auto w = split_words(r.text);
          std::vector<std::string> before(w.begin(), w.begin() + static_cast<long>(lk->first_word));
          bool accepts = !w.empty() && w.back() == "accept";
          for (size_t k = lk->lookup_word + 1; k + 1 < w.size(); k++) accepts = accepts && w[k] == "counter";
          m.only_lookup = accepts && all_matches_hold(before, *seen);
        }
        else if (has == true) m.why = lk->key + " is in set " + setname + " now (added after this packet?)";
        else m.why = "did not match (lookup of " + lk->key + " in set " + setname + ")";
      }
      else if (auto why = first_mismatch(r.text, *seen)) {
        m.why = *why;
      }
    }
    j.near_misses.push_back(std::move(m));
  }
}

// Appended piece by piece, not through a stream: written for every story.
void write_nat_and_drop(const Journey& j, std::string& e) {
  for (const auto& n : j.nat) {
    if (n.rule.empty()) {
      e += " was " + std::string(n.kind == "dnat" ? "DNATed" : "SNATed") + " to " + n.to + " by its conntrack entry,";
      continue;
    }
    static const std::map<std::string, std::string> done = {
        {"dnat", "DNATed"}, {"snat", "SNATed"}, {"masquerade", "masqueraded"}, {"redirect", "redirected"}};
    e += " was " + done.at(n.kind);
    if (!n.to.empty()) e += " to " + n.to;
    e += " by rule " + quote(n.rule) + " in " + n.table_chain + ",";
  }
  if (!j.drop) return;
  const DropPoint& d = *j.drop;
  e += " was dropped";
  if (!d.chain.empty()) {
    e += " in " + d.family + " " + d.table + " " + d.chain;
    if (!d.rule.empty()) e += " by rule " + quote(d.rule);
    else if (d.cause == "chain policy drop") e += " by the chain's drop policy";
    if (d.handle) e += " (handle " + std::to_string(*d.handle) + ")";
  } else {
    if (!d.hook.empty()) e += " at hook " + d.hook;
    e += ": " + d.cause;
    if (!d.location.empty()) e += " (" + d.location + ")";
  }
  e += ".";
  for (const auto& m : j.near_misses)
    if (m.why != "did not match") e += " The earlier rule " + quote(m.rule) + " did not accept it because " + m.why + ".";
}

// Where a packet that was not dropped went.
void write_fate(const Journey& j, std::string& e) {
  if (j.fate == Fate::Forwarded) {
    e += " was accepted and forwarded out of " + (j.oif_name.empty() ? "an interface" : j.oif_name) + ".";
  } else if (j.fate == Fate::Local) {
    e += " was accepted and delivered locally.";
  } else if (j.fate == Fate::Sent) {
    e += " was accepted and sent out of " + (j.oif_name.empty() ? "an interface" : j.oif_name) + ".";
  } else if (j.from_log) {
    e += " has no verdict in the log";
    if (!j.steps.empty()) {
      const Step& s = j.steps.back();
      e += " after " + family_name(s.family) + " " + s.table + " " + s.chain + " " + s.verdict_str() + " (" +
           s.log_ref + ")";
    }
    e += ": the log may be cut there, or the packet went on where nothing logged it (accepted by a later hook, "
         "queued).";
  } else {
    e += " left nftables' view without a drop (no later trace).";
  }
}

void write_explanation(Journey& j) {
  std::string e = "Packet ";
  e += j.packet.family ? j.packet.str() : "the packet";
  write_nat_and_drop(j, e);
  if (!j.drop) write_fate(j, e);
  e += cause_sentences(j);
  // "...in inet nat prerouting, was dropped" reads better with "then".
  for (size_t pos = 0; (pos = e.find(", was ", pos)) != std::string::npos; pos += 7) e.replace(pos, 6, ", then ");
  j.explanation = std::move(e);
}

}  // namespace

std::optional<SetLookup> set_lookup_key(const std::string& rule, const Packet& packet) {
  auto t = split_words(rule);
  for (size_t at = 0; at < t.size(); at++) {
    if (t[at].size() < 2 || t[at][0] != '@') continue;
    // Walk back over "a b . c d" (selectors joined by concatenation).
    std::vector<std::string> values;
    size_t i = at;
    while (i >= 2) {
      auto v = selector_value(t[i - 2], t[i - 1], packet);
      if (!v) return std::nullopt;
      values.insert(values.begin(), *v);
      i -= 2;
      if (i >= 1 && t[i - 1] == ".") {
        i -= 1;
        continue;
      }
      break;
    }
    if (values.empty()) return std::nullopt;
    if (i >= 1 && t[i - 1] == "!=") return std::nullopt;  // negated lookup
    std::string key;
    for (size_t k = 0; k < values.size(); k++) key += (k ? " . " : "") + values[k];
    return SetLookup{t[at].substr(1), key, i, at};
  }
  return std::nullopt;
}

void explain_journey(Journey& j, const ExplainContext& ctx) {
  fill_rule_texts(j, ctx);
  find_nat(j, ctx);
  find_drop(j, ctx);
  find_near_misses(j, ctx);
  find_causes(j, ctx.causes);
  write_explanation(j);
}

namespace {

// One value of a comparison: an address or prefix, a port or port range,
// or a word (protocol names).
bool value_matches(const std::string& v, const std::string& actual) {
  if (v == actual) return true;
  if (auto slash = v.find('/'); slash != std::string::npos) {
    auto net = Addr::parse(v.substr(0, slash));
    auto a = Addr::parse(actual);
    if (!net || !a || net->family != a->family) return false;
    int len = std::atoi(v.c_str() + slash + 1);
    for (int bit = 0; bit < len && bit < 128; bit++) {
      uint8_t m = 0x80 >> (bit % 8);
      if ((net->bytes[bit / 8] & m) != (a->bytes[bit / 8] & m)) return false;
    }
    return true;
  }
  if (auto dash = v.find('-'); dash != std::string::npos && std::isdigit(static_cast<unsigned char>(v[0]))) {
    char* end = nullptr;
    long lo = std::strtol(v.c_str(), &end, 10), hi = std::strtol(v.c_str() + dash + 1, nullptr, 10);
    long x = std::strtol(actual.c_str(), nullptr, 10);
    if (end == v.c_str() + dash) return x >= lo && x <= hi;
  }
  return false;
}

// Whether natbpf understands a value well enough to say "not".
bool value_known(const std::string& v) {
  if (v.empty()) return false;
  if (Addr::parse(v.substr(0, v.find('/')))) return true;
  if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) || c == '-'; })) return true;
  for (const char* w : {"tcp", "udp", "icmp", "ipv6-icmp", "icmpv6", "sctp"})
    if (v == w) return true;
  return false;
}

}  // namespace

namespace {

// The first match of these words the packet fails; *understood says whether
// every word was a match natbpf evaluates.
std::optional<std::string> mismatch_in(const std::vector<std::string>& t, const Packet& p, bool* understood) {
  if (understood) *understood = false;
  size_t i = 0;
  while (i + 1 < t.size()) {
    const std::string &a = t[i], &b = t[i + 1];
    if (a == "meta" && b == "nfproto" && i + 2 < t.size()) {
      std::string fam = p.family == 10 ? "ipv6" : "ipv4";
      if (t[i + 2] != "ipv4" && t[i + 2] != "ipv6") return std::nullopt;
      if (t[i + 2] != fam) return "the packet is " + fam + ", not " + t[i + 2];
      i += 3;
      continue;
    }
    auto actual = selector_value(a, b, p);
    if (!actual) return std::nullopt;  // not a comparison natbpf can evaluate
    // The protocol a selector implies must be the packet's.
    if ((a == "ip" && p.family == 10) || (a == "ip6" && p.family == 2))
      return "the packet is " + std::string(p.family == 10 ? "IPv6" : "IPv4") + ", rule matches " + a;
    if ((a == "tcp" || a == "udp" || a == "sctp") && nft_proto_keyword(p.l4proto) != a)
      return "the packet is " + nft_proto_keyword(p.l4proto) + ", not " + a;
    size_t v = i + 2;
    bool negated = v < t.size() && t[v] == "!=";
    if (v < t.size() && (t[v] == "!=" || t[v] == "==")) v++;
    if (v >= t.size() || t[v] == "." || t[v][0] == '@') return std::nullopt;  // concatenation or set lookup
    std::vector<std::string> values;
    size_t next = v + 1;
    if (t[v] == "{") {
      size_t k = v + 1;
      for (; k < t.size() && t[k] != "}"; k++) {
        std::string e = t[k];
        if (!e.empty() && e.back() == ',') e.pop_back();
        if (!e.empty()) values.push_back(e);
      }
      if (k == t.size()) return std::nullopt;
      next = k + 1;
    } else {
      values.push_back(t[v]);
    }
    if (values.empty() || !std::all_of(values.begin(), values.end(), value_known)) return std::nullopt;
    bool hit = std::any_of(values.begin(), values.end(), [&](const auto& x) { return value_matches(x, *actual); });
    if (hit == negated) {
      std::string field = a + " " + b;
      std::string list = values.size() == 1 ? values[0] : "{ " + [&] {
        std::string l;
        for (size_t k = 0; k < values.size(); k++) l += (k ? ", " : "") + values[k];
        return l;
      }() + " }";
      if (negated) return field + " is " + *actual + ", which the rule excludes (!= " + list + ")";
      return field + " is " + *actual + ", not " + list;
    }
    i = next;
  }
  if (understood) *understood = i == t.size();
  return std::nullopt;
}

}  // namespace

std::optional<std::string> first_mismatch(const std::string& rule, const Packet& p) {
  return mismatch_in(split_words(rule), p, nullptr);
}

bool all_matches_hold(const std::vector<std::string>& words, const Packet& p) {
  bool understood = false;
  return !mismatch_in(words, p, &understood) && understood;
}

}  // namespace natbpf
