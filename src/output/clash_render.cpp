#include "output/clash_render.h"

#include <sstream>

#include "output/schema.h"
#include "util/names.h"

namespace natbpf {
namespace {

using json = nlohmann::json;

const char* proto(uint8_t p) { return p == 6 ? "tcp" : p == 17 ? "udp" : p == 132 ? "sctp" : "other"; }

json ct_to_json(const CtEntry& c) {
  return json{{"orig", tuple_to_json(c.orig)},  {"reply", tuple_to_json(c.reply)},
              {"status", status_names(c.status)}, {"status_bits", c.status},
              {"confirmed", (c.status & ips::kConfirmed) != 0}, {"id", or_null(c.id)},
              {"timeout_s", or_null(c.timeout_s)}};
}

json counters_json(const CtStatsTotals& d) {
  json j{{"insert_failed", d.insert_failed}, {"drop", d.drop}, {"early_drop", d.early_drop}};
  j["clash_resolve"] = d.has_clash_resolve ? json(d.clash_resolve) : json(nullptr);
  j["chaintoolong"] = d.has_chaintoolong ? json(d.chaintoolong) : json(nullptr);
  return j;
}

std::string counters_text(const CtStatsTotals& d) {
  std::string s = "insert_failed +" + std::to_string(d.insert_failed) + ", drop +" + std::to_string(d.drop);
  if (d.has_clash_resolve) s += ", clash_resolve +" + std::to_string(d.clash_resolve);
  if (d.has_chaintoolong) s += ", chaintoolong +" + std::to_string(d.chaintoolong);
  s += ", early_drop +" + std::to_string(d.early_drop);
  return s;
}

}  // namespace

json tuple_to_json(const Tuple& t) {
  return json{{"proto", proto(t.proto)}, {"src", t.src.str()}, {"sport", t.sport}, {"dst", t.dst.str()},
              {"dport", t.dport}, {"text", t.str()}};
}

json clash_to_json(const ClashReport& r) {
  const ClashFacts& f = r.facts;
  json j{{"type", "clash"},
         {"schema_version", kSchemaVersion},
         {"ts_ns", f.ts_ns},
         {"outcome", to_string(f.outcome)},
         {"cause", to_string(r.cause)},
         {"explanation", r.explanation},
         {"evidence", r.evidence},
         {"fix", r.fix ? json{{"command", r.fix->command}, {"why", r.fix->why}, {"netns", or_null(r.fix->netns)}}
                       : json()},
         {"cpu", f.loser || f.packet ? json(f.cpu) : json(nullptr)},
         {"netns", or_null(f.netns_name)},
         {"netns_inode", f.netns ? json(f.netns) : json()},
         {"count", f.count},
         {"repeat", f.repeat}};
  j["loser"] = f.loser ? ct_to_json(*f.loser) : json(nullptr);
  j["packet"] = f.packet ? packet_json(*f.packet) : json(nullptr);
  if (f.winner) {
    json w = ct_to_json(f.winner->ct);
    w["found_by"] = or_null(f.winner->found_by);
    w["state"] = f.winner->tcp_state ? json(tcp_state_name(*f.winner->tcp_state)) : json(nullptr);
    w["age_s"] = f.winner->age_s ? json(*f.winner->age_s) : json(nullptr);
    j["winner"] = w;
  } else {
    j["winner"] = nullptr;
  }
  if (f.nat) {
    const NatFacts& n = *f.nat;
    json range{{"text", n.range_str()}, {"addresses", n.addresses()}};
    range["min_addr"] = n.min_addr ? json(n.min_addr->str()) : json(nullptr);
    range["max_addr"] = n.max_addr ? json(n.max_addr->str()) : json(nullptr);
    range["min_port"] = n.min_port ? json(*n.min_port) : json(nullptr);
    range["max_port"] = n.max_port ? json(*n.max_port) : json(nullptr);
    range["ports"] = n.ports() ? json(*n.ports()) : json(nullptr);
    range["capacity"] = n.capacity() ? json(*n.capacity()) : json(nullptr);
    range["used"] = f.range_used ? json(*f.range_used) : json(nullptr);
    range["counted_by"] = or_null(f.range_counted_by);
    json rule = nullptr;
    if (n.rule_text)
      rule = json{{"text", *n.rule_text}, {"where", or_null(n.rule_where)}, {"backend", or_null(n.rule_backend)}};
    j["nat"] = json{
        {"kind", n.kind}, {"range", range}, {"flags", n.flags}, {"rule", rule}, {"source", or_null(n.source)}};
  } else {
    j["nat"] = nullptr;
  }
  if (f.alloc) {
    json a{{"origin", to_string(f.alloc->origin)},
           {"attempts", f.alloc->observed ? json(f.alloc->attempts) : json(nullptr)},
           {"taken", f.alloc->observed ? json(f.alloc->taken) : json(nullptr)},
           {"before", tuple_to_json(f.alloc->before)},
           {"chosen", tuple_to_json(f.alloc->chosen)}};
    a["last_probe"] = f.alloc->last_probe ? tuple_to_json(*f.alloc->last_probe) : json(nullptr);
    j["allocation"] = a;
  } else {
    j["allocation"] = nullptr;
  }
  j["counters"] = f.counters ? counters_json(*f.counters) : json(nullptr);
  return j;
}

std::string clash_to_text(const ClashReport& r, uint64_t number) {
  const ClashFacts& f = r.facts;
  std::ostringstream o;
  std::string outcome = f.outcome == ClashOutcome::Dropped ? "DROPPED" : "RESOLVED";
  o << "clash #" << number << " " << outcome;
  if (f.loser || f.packet) o << " on cpu " << f.cpu;
  if (f.count > 1) o << " (" << f.count << " clashes)";
  if (f.repeat) o << " (retransmission " << f.repeat << " of the same connection)";
  o << "\n";
  if (f.loser) {
    o << "  loser   orig  " << f.loser->orig.str() << "\n";
    o << "          reply " << f.loser->reply.str() << "   status " << status_names(f.loser->status)
      << ((f.loser->status & ips::kConfirmed) ? "" : " (not confirmed)") << "\n";
  }
  if (f.packet) o << "  packet  " << f.packet->str() << " (no conntrack entry)\n";
  if (f.winner) {
    const auto& w = f.winner->ct;
    o << "  winner  orig  " << w.orig.str() << "\n";
    o << "          reply " << w.reply.str() << "\n";
    o << "          ";
    if (f.winner->tcp_state) o << tcp_state_name(*f.winner->tcp_state) << ", ";
    o << "status " << status_names(w.status);
    if (w.id) o << ", id " << *w.id;
    if (f.winner->age_s) o << ", age " << *f.winner->age_s << "s";
    else o << ", age unknown (net.netfilter.nf_conntrack_timestamp=1 records it)";
    if (w.timeout_s) o << ", expires in " << *w.timeout_s << "s";
    o << "\n";
  } else if (f.loser && !f.chaintoolong_on_cpu) {
    o << "  winner  not found\n";
  }
  if (f.nat) {
    const NatFacts& n = *f.nat;
    o << "  nat     " << n.kind << " " << n.range_str();
    if (auto c = n.capacity()) o << " (" << *c << (*c == 1 ? " tuple" : " tuples");
    else o << " (size unknown";
    if (f.range_used) o << ", " << *f.range_used << " in use towards this destination";
    o << "), flags " << (n.flags.empty() ? std::string("none") : [&] {
      std::string s;
      for (const auto& x : n.flags) s += (s.empty() ? "" : ",") + x;
      return s;
    }()) << "\n";
    if (n.rule_text) o << "  rule    " << *n.rule_text << "\n          (" << n.rule_where.value_or("") << ")\n";
    else o << "  rule    not found in nftables or iptables\n";
  }
  if (f.alloc) {
    if (f.alloc->observed)
      o << "  alloc   " << f.alloc->attempts << " attempts, " << f.alloc->taken << " taken; chosen ";
    else
      o << "  alloc   attempts not observed on this kernel; chosen ";
    o << f.alloc->chosen.str();
    if (f.alloc->last_probe) o << "; last probe " << f.alloc->last_probe->str();
    o << "\n";
  }
  o << "  cause   " << to_string(r.cause) << ": " << r.explanation << "\n";
  o << "  evidence\n";
  for (const auto& e : r.evidence) o << "    - " << e << "\n";
  if (r.fix)
    o << "  fix:    " << (r.fix->netns.empty() ? "" : "ip netns exec " + r.fix->netns + " ") << r.fix->command
      << "\n          (" << r.fix->why << ")\n";
  return o.str();
}

json summary_to_json(const ClashSummary& s, bool final) {
  json j{{"type", "summary"},       {"schema_version", kSchemaVersion}, {"final", final},
         {"interval_ms", s.interval_ms}, {"dropped", s.dropped},         {"resolved", s.resolved},
         {"by_cause", s.by_cause_outcome}, {"lost_events", s.lost_events}, {"decode_errors", s.decode_errors},
         {"unattributed_netfilter_drops", s.unmatched_drops}};
  j["counters"] = s.counters ? counters_json(*s.counters) : json(nullptr);
  return j;
}

std::string summary_to_text(const ClashSummary& s, bool final) {
  std::ostringstream o;
  o << (final ? "summary (whole run): " : "summary: ") << s.dropped << " dropped, " << s.resolved << " resolved";
  for (const auto& [k, v] : s.by_cause_outcome) o << "; " << k << " " << v;
  o << "\n";
  if (s.counters) o << "  counters " << counters_text(*s.counters) << "\n";
  o << "  lost events " << s.lost_events;
  if (s.decode_errors) o << ", bad records " << s.decode_errors;
  if (s.lost_events) o << " (some clashes may be missing)";
  if (s.unmatched_drops) o << "; " << s.unmatched_drops << " netfilter drops of new connections were not conntrack's";
  o << "\n";
  return o.str();
}

}  // namespace natbpf
