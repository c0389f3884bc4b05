#include "output/drops_render.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "output/schema.h"

namespace natbpf {

namespace {

constexpr size_t kTextFlows = 8;

void cause_to_text(std::ostringstream& o, size_t rank, const DropCause& c) {
  o << "  " << rank << ". " << c.count << "x  " << c.cause << "  [" << c.where << ", netns " << c.netns_name << "]\n";
  for (const auto& r : c.rules) o << "       " << r.where << ": " << r.count << " drops\n";
  for (const auto& m : c.mark_origins) {
    o << "       mark " << m.mark << " (matched by " << m.matched_by << ") was set by " << m.set_by.where << ": "
      << m.set_by.text << " (+" << m.set_by.count << ")\n";
    for (const auto& v : m.via) o << "         reached from " << v.where << ": " << v.text << " (+" << v.count << ")\n";
  }
  // The largest flows; a flood over many ports would make an endless line.
  std::vector<std::pair<std::string, uint64_t>> flows(c.flows.begin(), c.flows.end());
  std::stable_sort(flows.begin(), flows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  o << "       flows:";
  for (size_t i = 0; i < flows.size() && i < kTextFlows; i++) o << " " << flows[i].first << " (" << flows[i].second << ")";
  if (flows.size() > kTextFlows) o << " and " << flows.size() - kTextFlows << " more";
  o << "\n";
  for (const auto& e : c.examples) o << "       e.g. " << e << "\n";
  o << "       evidence: ";
  for (size_t i = 0; i < c.evidence.size(); i++) o << (i ? "; " : "") << c.evidence[i];
  o << "\n";
  if (!c.fix.empty()) o << "       fix: " << c.fix << "\n";
}

// The causes of one layer, ranked, at most top of them.
void section_to_text(std::ostringstream& o, const DropsReport& r, const char* layer, size_t top) {
  size_t rank = 0;
  for (const auto& c : r.causes) {
    if (c.layer != layer) continue;
    if (++rank > top) break;
    cause_to_text(o, rank, c);
  }
  if (rank == 0) o << "  none\n";
}

size_t causes_in(const DropsReport& r, const char* layer) {
  return std::count_if(r.causes.begin(), r.causes.end(), [layer](const DropCause& c) { return c.layer == layer; });
}

std::string plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

std::string drops_to_text(const DropsReport& r, size_t top) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1);
  o << "drops in " << r.seconds << "s: " << r.drops << " counted in the kernel";
  if (!r.counted) o << " (the kernel's counts could not be read)";
  o << "\n";
  o << "netfilter: " << r.netfilter_drops << " drops, " << plural(causes_in(r, kLayerNetfilter), "cause") << "\n";
  section_to_text(o, r, kLayerNetfilter, top);
  for (const auto& [ns, d] : r.conntrack) {
    if (d.insert_failed || d.drop || d.early_drop || d.invalid)
      o << "  conntrack counters, netns " << ns << ": insert_failed +" << d.insert_failed << ", drop +" << d.drop
        << ", early_drop +" << d.early_drop << ", invalid +" << d.invalid << "\n";
  }
  uint64_t outside = r.drops - r.netfilter_drops - r.unkeyed;
  o << "not the firewall (dropped outside netfilter): " << outside << " drops, "
    << plural(causes_in(r, kLayerOutside), "cause") << "\n";
  section_to_text(o, r, kLayerOutside, top);
  if (r.unkeyed)
    o << "  " << r.unkeyed << " drops counted without their cause: the kernel's key map was full\n";
  o << "  lost: " << r.examples_lost << " example packets, " << r.lost << " other records"
    << (r.examples_lost || r.lost ? " (counts stay exact; some flows may read *)" : "") << "\n";
  o << "  " << r.plan_summary << "\n";
  return o.str();
}

std::string drops_to_json_lines(const DropsReport& r, size_t top) {
  std::ostringstream o;
  std::map<std::string, size_t> ranks;  // per layer
  for (const auto& c : r.causes) {
    size_t rank = ++ranks[c.layer];
    if (rank > top) continue;
    nlohmann::json j{{"type", "drop_cause"},   {"schema_version", kSchemaVersion}, {"rank", rank},
                     {"layer", c.layer},        {"count", c.count},                 {"cause", c.cause},
                     {"where", c.where},        {"netns", c.netns_name},            {"flows", c.flows},
                     {"examples", c.examples},  {"evidence", c.evidence}};
    j["netns_inode"] = c.netns ? nlohmann::json(c.netns) : nlohmann::json();  // as clash gives it, beside the name
    j["fix"] = c.fix.empty() ? nlohmann::json() : nlohmann::json(c.fix);
    j["rules"] = nlohmann::json::array();
    for (const auto& r : c.rules) j["rules"].push_back({{"rule", r.where}, {"count", r.count}});
    j["mark_origins"] = nlohmann::json::array();
    auto hit = [](const RuleHit& h) { return nlohmann::json{{"where", h.where}, {"rule", h.text}, {"count", h.count}}; };
    for (const auto& m : c.mark_origins) {
      nlohmann::json via = nlohmann::json::array();
      for (const auto& v : m.via) via.push_back(hit(v));
      j["mark_origins"].push_back({{"mark", m.mark}, {"matched_by", m.matched_by}, {"set_by", hit(m.set_by)}, {"via", via}});
    }
    o << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  nlohmann::json s{{"type", "summary"},
                   {"schema_version", kSchemaVersion},
                   {"seconds", r.seconds},
                   {"counted", r.counted},
                   {"drops", r.drops},
                   {"netfilter_drops", r.netfilter_drops},
                   {"unkeyed", r.unkeyed},
                   {"causes", r.causes.size()},
                   {"lost", {{"bpf", r.lost}, {"examples", r.examples_lost}}},
                   {"plan", r.plan_summary}};
  s["conntrack"] = nlohmann::json::object();
  for (const auto& [ns, d] : r.conntrack)
    s["conntrack"][ns] = {{"insert_failed", d.insert_failed}, {"drop", d.drop}, {"early_drop", d.early_drop},
                          {"invalid", d.invalid}};
  o << s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return o.str();
}

}  // namespace natbpf
