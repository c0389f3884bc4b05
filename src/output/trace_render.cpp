#include "output/trace_render.h"

#include <cstdio>
#include <iomanip>
#include <memory>
#include <sstream>

#include "output/schema.h"
#include "util/names.h"

#include "util/text.h"

namespace natbpf {

std::string hex_id(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", id);
  return buf;
}

const char* fate_str(Fate f) {
  switch (f) {
    case Fate::Dropped: return "dropped";
    case Fate::Forwarded: return "forwarded";
    case Fate::Local: return "delivered";
    case Fate::Sent: return "sent";
    case Fate::Unknown: return "unknown";
  }
  return "unknown";
}

// nft's ct state bits: invalid 1, established 2, related 4, new 8, untracked 64.
std::string ct_state_str(uint32_t m) {
  std::string s;
  for (auto [bit, name] : {std::pair{1u, "invalid"}, std::pair{2u, "established"}, std::pair{4u, "related"},
                           std::pair{8u, "new"}, std::pair{64u, "untracked"}}) {
    if (!(m & bit)) continue;
    if (!s.empty()) s += ',';
    s += name;
  }
  return s.empty() ? "none" : s;
}

namespace {

class JsonRenderer : public TraceRenderer {
 public:
  // Text from a saved log or a ruleset may hold bytes that are not UTF-8:
  // replaced (U+FFFD), never an exception.
  void packet(const Journey& j, std::string& out) override {
    out += journey_to_json(j).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
  }
  std::string summary(const TraceCounters& c, const std::string& plan_summary) override {
    nlohmann::json s{{"type", "summary"},
                     {"schema_version", kSchemaVersion},
                     {"packets", c.packets},
                     {"dropped", c.dropped},
                     {"accepted", c.accepted},
                     {"unknown", c.unknown},
                     {"retransmissions", c.retransmissions},
                     {"drop_points", c.drop_points},
                     {"lost", {{"nftrace", c.nftrace_lost}, {"bpf", c.bpf_lost}}},
                     {"parse_errors", c.nftrace_parse_errors + c.bpf_decode_errors},
                     {"plan", plan_summary}};
    return s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
};

}  // namespace

// Family 0: no headers were seen (the text prints "?"); ports only for
// protocols that have them (ICMP has none, not port 0).
nlohmann::json packet_json(const Packet& p) {
  using json = nlohmann::json;
  bool seen = p.family != 0;
  bool ports = seen && has_ports(p.l4proto);
  return {{"proto", seen ? json(proto_name(p.l4proto)) : json()},
          {"saddr", p.saddr.family ? json(p.saddr.str()) : json()},
          {"daddr", p.daddr.family ? json(p.daddr.str()) : json()},
          {"sport", ports ? json(p.sport) : json()},
          {"dport", ports ? json(p.dport) : json()},
          {"tcp_flags", seen && p.l4proto == 6 ? json(tcp_flag_names(p.tcp_flags)) : json()}};
}

std::string drop_point_str(const DropPoint& d) {
  std::string s;
  if (!d.chain.empty()) {
    s = "in " + d.family + " " + d.table + " " + d.chain;
    if (!d.rule.empty()) s += " by rule " + quote(d.rule);
    else if (d.cause == "chain policy drop") s += " by policy drop";
    if (d.handle) s += " (handle " + std::to_string(*d.handle) + ")";
  } else {
    s = (d.hook.empty() ? "" : "at " + d.hook + ": ") + d.cause;
  }
  return s;
}

// Every key is always there: an absent fact is null, never "" or missing.
nlohmann::json journey_to_json(const Journey& j) {
  using json = nlohmann::json;
  json o{{"type", "packet"}, {"schema_version", kSchemaVersion}, {"number", j.number},
         {"trace_id", j.trace_id ? json(hex_id(j.trace_id)) : json()}};
  o["packet"] = packet_json(j.packet);
  o["packet"]["iif"] = or_null(j.iif_name);
  // A story has dozens of steps and a saved log millions of stories: each
  // step's object is filled key by key (an initializer list builds a
  // two-element array per key first), the array reserved once.
  json steps = json::array();
  steps.get_ref<json::array_t&>().reserve(j.steps.size());
  for (const auto& s : j.steps) {
    json step(json::value_t::object);
    auto& m = step.get_ref<json::object_t&>();
    m.emplace("family", family_name(s.family));
    m.emplace("table", s.table);
    m.emplace("chain", s.chain);
    m.emplace("hook", or_null(s.hook));
    m.emplace("rule", or_null(s.rule));
    m.emplace("syntax", s.syntax);
    m.emplace("handle", or_null(s.handle));
    m.emplace("verdict", s.verdict_str());
    m.emplace("evidence", to_string(s.origin));
    m.emplace("log", or_null(s.log_ref));
    steps.push_back(std::move(step));
  }
  o["steps"] = std::move(steps);
  o["nat"] = json::array();
  for (const auto& n : j.nat)
    o["nat"].push_back({{"kind", n.kind}, {"from", or_null(n.from)}, {"to", or_null(n.to)}, {"rule", or_null(n.rule)},
                        {"evidence", n.evidence}});
  o["conntrack"] = nullptr;
  if (j.ct_id || j.ct_state || j.invalid)
    o["conntrack"] = {{"evidence", j.ct_id || j.ct_state ? json("nftrace") : json()},
                      {"id", or_null(j.ct_id)},
                      {"state", j.ct_state ? json(ct_state_str(*j.ct_state)) : j.invalid ? json("invalid") : json()},
                      {"status", j.ct_status ? json(status_names(*j.ct_status)) : json()},
                      {"invalid_reason", j.invalid ? or_null(j.invalid->reason) : json()},
                      {"invalid_evidence", j.invalid ? json(j.invalid->evidence) : json()},
                      {"invalid_inferred", j.invalid ? json(j.invalid->inferred) : json()}};
  bool has_bpf = !j.bpf.empty();
  // The trace-id hook reported this pass: it is identified by id even when
  // no BPF record with an skb came with it.
  o["join"] = j.joined_by_trace_id ? "trace id" : !has_bpf ? "none" : "skb, headers and time";
  o["verdict"] = j.drop ? "drop" : (j.fate == Fate::Unknown ? "unknown" : "accept");
  o["fate"] = fate_str(j.fate);
  // A dropped packet did not leave: the interface its route had chosen is
  // the drop's route_oif, never the packet's oif.
  bool left = !j.drop && (j.fate == Fate::Forwarded || j.fate == Fate::Sent);
  o["oif"] = left ? or_null(j.oif_name) : json();
  o["drop"] = nullptr;
  if (j.drop) {
    const DropPoint& d = *j.drop;
    o["drop"] = {{"family", or_null(d.family)}, {"table", or_null(d.table)},       {"chain", or_null(d.chain)},
                 {"rule", or_null(d.rule)},     {"handle", or_null(d.handle)},     {"hook", or_null(d.hook)},
                 {"cause", or_null(d.cause)},   {"location", or_null(d.location)}, {"reason", or_null(d.reason)},
                 {"route_oif", or_null(j.oif_name)}, {"evidence", d.evidence}};
  }
  o["near_misses"] = json::array();
  for (const auto& m : j.near_misses) o["near_misses"].push_back({{"handle", m.handle}, {"rule", m.rule}, {"why", m.why}});
  o["mark_origins"] = json::array();
  for (const auto& m : j.mark_origins)
    o["mark_origins"].push_back({{"mark", m.mark}, {"matched_by", m.matched_by}, {"set_by", m.set_by},
                                 {"set_in", m.set_in}, {"reached_by", or_null(m.reached_by)},
                                 {"comment", or_null(m.comment)}});
  o["listeners"] = json::array();
  for (const auto& l : j.listeners)
    o["listeners"].push_back({{"address", l.address}, {"pid", l.pid ? json(l.pid) : json()}, {"comm", or_null(l.comm)}});
  o["fix"] = j.fix ? json{{"command", j.fix->command}, {"why", j.fix->why}, {"netns", or_null(j.fix->netns)}} : json();
  o["explanation"] = j.explanation;
  o["repeat_of"] = or_null(j.repeat_of);
  return o;
}

std::unique_ptr<TraceRenderer> make_json_renderer() { return std::make_unique<JsonRenderer>(); }

}  // namespace natbpf
