#include "output/metrics.h"

#include <numeric>
#include <sstream>
#include <string_view>

namespace natbpf {

namespace {

constexpr const char* kOverflowCause = "other: natbpf series limit reached";
constexpr std::array<const char*, 9> kDropLabels = {"netns", "layer", "cause", "family", "table",
                                                    "chain", "rule",  "reason", "where"};

// Cut to at most kMaxLabelBytes without splitting a UTF-8 sequence.
std::string cut(const std::string& s) {
  if (s.size() <= kMaxLabelBytes) return s;
  size_t end = kMaxLabelBytes - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) end--;
  return s.substr(0, end) + "...";
}

std::string joined(const std::set<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

// A delta read from counters that went backwards (a namespace recreated
// under the same name) adds nothing rather than 2^64 - n.
uint64_t sane(uint64_t delta) { return delta > (uint64_t(1) << 62) ? 0 : delta; }

void header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

void sample(std::ostringstream& o, const char* name, std::initializer_list<std::pair<const char*, std::string>> labels,
            uint64_t value) {
  o << name;
  if (labels.size()) {
    o << "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
      o << (first ? "" : ",") << k << "=\"" << prometheus_escape(v) << "\"";
      first = false;
    }
    o << "}";
  }
  o << " " << value << "\n";
}

}  // namespace

std::string prometheus_escape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

DropMetrics::DropMetrics(BuildInfo build, size_t max_series) : build_(std::move(build)), max_series_(max_series) {}

void DropMetrics::count(Labels labels, uint64_t n) {
  if (n == 0) return;
  auto it = drops_.find(labels);
  if (it != drops_.end()) {
    it->second += n;
    return;
  }
  if (drops_.size() + 1 >= max_series_) {  // the last place is the overflow series'
    overflow_ += n;
    Labels other;
    other[2] = kOverflowCause;
    drops_[other] += n;
    return;
  }
  drops_.emplace(std::move(labels), n);
}

// Each cause is one series per drop rule that took some of its drops, and
// one without a rule for the rest (drops outside netfilter, policies, rules
// without counters).
void DropMetrics::add(const DropsReport& r) {
  reports_++;
  unkeyed_ += r.unkeyed;
  lost_bpf_ += r.lost;
  lost_examples_ += r.examples_lost;
  for (const auto& c : r.causes) {
    std::string reason = joined(c.reasons), families = joined(c.families);
    uint64_t by_rules = 0;
    for (const auto& rule : c.rules) {
      count({c.netns_name, c.layer, cut(c.cause), rule.family, rule.table, rule.chain, cut(rule.text), reason, c.where},
            rule.count);
      by_rules += rule.count;
    }
    if (c.count > by_rules)
      count({c.netns_name, c.layer, cut(c.cause), families, "", "", "", reason, c.where}, c.count - by_rules);
  }
  for (const auto& [ns, d] : r.conntrack) {
    // Pods come and go: past the cap, new namespaces share one series.
    bool known = conntrack_.count(ns) > 0;
    CtStatsTotals& t = conntrack_[known || conntrack_.size() + 1 < max_series_ ? ns : kOverflowCause];
    t.insert_failed += sane(d.insert_failed);
    t.drop += sane(d.drop);
    t.early_drop += sane(d.early_drop);
    t.invalid += sane(d.invalid);
    t.error += sane(d.error);
    t.clash_resolve += sane(d.clash_resolve);
    t.chaintoolong += sane(d.chaintoolong);
    t.has_clash_resolve = t.has_clash_resolve || d.has_clash_resolve;
    t.has_chaintoolong = t.has_chaintoolong || d.has_chaintoolong;
  }
}

void DropMetrics::add_clash(const ClashReport& r) {
  std::array<std::string, 3> key{r.facts.netns_name, to_string(r.facts.outcome), to_string(r.cause)};
  // Namespaces are many only on large nodes; past the cap they share one series.
  if (!clashes_.count(key) && clashes_.size() + 1 >= max_series_) key = {kOverflowCause, "", ""};
  clashes_[key] += r.facts.count;
}

std::string DropMetrics::render() const {
  std::ostringstream o;
  header(o, "natbpf_build_info", "gauge", "natbpf's version and the git revision it was built from");
  sample(o, "natbpf_build_info", {{"version", build_.version}, {"revision", build_.revision}}, 1);
  header(o, "natbpf_drops_total", "counter",
         "Packets dropped since natbpf started, by namespace, cause and the rule that dropped them");
  for (const auto& [labels, n] : drops_) {
    o << "natbpf_drops_total{";
    for (size_t i = 0; i < labels.size(); i++)
      o << (i ? "," : "") << kDropLabels[i] << "=\"" << prometheus_escape(labels[i]) << "\"";
    o << "} " << n << "\n";
  }
  header(o, "natbpf_drops_unkeyed_total", "counter", "Drops counted without their cause: the kernel's key map was full");
  sample(o, "natbpf_drops_unkeyed_total", {}, unkeyed_);
  header(o, "natbpf_metrics_series_overflow_total", "counter",
         "Drops added to the overflow series because natbpf_drops_total reached its series limit");
  sample(o, "natbpf_metrics_series_overflow_total", {}, overflow_);
  struct CtCounter {
    const char* name;
    const char* help;
    uint64_t CtStatsTotals::*field;
  };
  static const CtCounter counters[] = {
      {"natbpf_conntrack_insert_failed_total", "conntrack insert_failed (clash drops) since natbpf started",
       &CtStatsTotals::insert_failed},
      {"natbpf_conntrack_drop_total", "conntrack drop (table full, no early drop possible) since natbpf started",
       &CtStatsTotals::drop},
      {"natbpf_conntrack_early_drop_total", "conntrack early_drop (entries evicted, table full) since natbpf started",
       &CtStatsTotals::early_drop},
      {"natbpf_conntrack_invalid_total", "conntrack invalid (packets conntrack could not track) since natbpf started",
       &CtStatsTotals::invalid},
      {"natbpf_conntrack_error_total", "conntrack error since natbpf started", &CtStatsTotals::error},
  };
  for (const auto& c : counters) {
    header(o, c.name, "counter", c.help);
    for (const auto& [ns, t] : conntrack_) sample(o, c.name, {{"netns", ns}}, t.*c.field);
  }
  header(o, "natbpf_conntrack_clash_resolve_total", "counter",
         "conntrack clash_resolve (clashes resolved without a drop) since natbpf started, where the kernel counts it");
  for (const auto& [ns, t] : conntrack_)
    if (t.has_clash_resolve) sample(o, "natbpf_conntrack_clash_resolve_total", {{"netns", ns}}, t.clash_resolve);
  if (clashes_enabled_) {
    header(o, "natbpf_clashes_total", "counter",
           "conntrack confirm clashes natbpf explained since it started (--clash), by namespace, outcome and cause");
    for (const auto& [k, n] : clashes_)
      sample(o, "natbpf_clashes_total", {{"netns", k[0]}, {"outcome", k[1]}, {"cause", k[2]}}, n);
  }
  header(o, "natbpf_lost_events_total", "counter",
         "Records lost before natbpf read them (drop counts stay exact; examples and hook records are lost)");
  sample(o, "natbpf_lost_events_total", {{"source", "bpf"}}, lost_bpf_);
  sample(o, "natbpf_lost_events_total", {{"source", "bpf_examples"}}, lost_examples_);
  header(o, "natbpf_reports_total", "counter", "Reports natbpf computed (one per refresh of these metrics)");
  sample(o, "natbpf_reports_total", {}, reports_);
  return o.str();
}

}  // namespace natbpf
