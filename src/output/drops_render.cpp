#include "output/drops_render.h"

#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "output/schema.h"

namespace natbpf {

std::string drops_to_text(const DropsReport& r, size_t top) {
  std::ostringstream o;
  o << "netfilter drops in " << std::fixed << std::setprecision(1) << r.seconds << "s: " << r.drops << " drops, "
    << r.causes.size() << " causes\n";
  size_t rank = 0;
  for (const auto& c : r.causes) {
    if (++rank > top) break;
    o << "  " << rank << ". " << c.count << "x  " << c.cause << "  [" << c.where << ", netns " << c.netns_name << "]\n";
    for (const auto& [rule, n] : c.rules) o << "       " << rule << ": " << n << " drops\n";
    for (const auto& m : c.mark_origins) {
      o << "       mark " << m.mark << " (matched by " << m.matched_by << ") was set by " << m.set_by.where << ": "
        << m.set_by.text << " (+" << m.set_by.count << ")\n";
      for (const auto& v : m.via) o << "         reached from " << v.where << ": " << v.text << " (+" << v.count << ")\n";
    }
    o << "       flows:";
    for (const auto& [f, n] : c.flows) o << " " << f << " (" << n << ")";
    o << "\n       evidence: ";
    for (size_t i = 0; i < c.evidence.size(); i++) o << (i ? "; " : "") << c.evidence[i];
    o << "\n";
  }
  for (const auto& [ns, d] : r.conntrack) {
    if (d.insert_failed || d.drop || d.early_drop || d.invalid)
      o << "  conntrack counters, netns " << ns << ": insert_failed +" << d.insert_failed << ", drop +" << d.drop
        << ", early_drop +" << d.early_drop << ", invalid +" << d.invalid << "\n";
  }
  o << "  lost events: bpf " << r.lost << (r.lost ? " (counts are a lower bound)" : "") << "\n";
  o << "  " << r.plan_summary << "\n";
  return o.str();
}

std::string drops_to_json_lines(const DropsReport& r, size_t top) {
  std::ostringstream o;
  size_t rank = 0;
  for (const auto& c : r.causes) {
    if (++rank > top) break;
    nlohmann::json j{{"type", "drop_cause"}, {"schema_version", kSchemaVersion}, {"rank", rank},
                     {"count", c.count},     {"cause", c.cause},                 {"where", c.where},
                     {"netns", c.netns_name}, {"flows", c.flows},                {"evidence", c.evidence}};
    j["rules"] = nlohmann::json::array();
    for (const auto& [rule, n] : c.rules) j["rules"].push_back({{"rule", rule}, {"count", n}});
    j["mark_origins"] = nlohmann::json::array();
    auto hit = [](const RuleHit& h) { return nlohmann::json{{"where", h.where}, {"rule", h.text}, {"count", h.count}}; };
    for (const auto& m : c.mark_origins) {
      nlohmann::json via = nlohmann::json::array();
      for (const auto& v : m.via) via.push_back(hit(v));
      j["mark_origins"].push_back({{"mark", m.mark}, {"matched_by", m.matched_by}, {"set_by", hit(m.set_by)}, {"via", via}});
    }
    o << j.dump() << "\n";
  }
  nlohmann::json s{{"type", "summary"},     {"schema_version", kSchemaVersion}, {"seconds", r.seconds},
                   {"drops", r.drops},      {"causes", r.causes.size()},        {"lost", {{"bpf", r.lost}}},
                   {"plan", r.plan_summary}};
  s["conntrack"] = nlohmann::json::object();
  for (const auto& [ns, d] : r.conntrack)
    s["conntrack"][ns] = {{"insert_failed", d.insert_failed}, {"drop", d.drop}, {"early_drop", d.early_drop},
                          {"invalid", d.invalid}};
  o << s.dump() << "\n";
  return o.str();
}

}  // namespace natbpf
