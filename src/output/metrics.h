// natbpf drops --prometheus: the reports of a run added up into counters and
// rendered in the Prometheus text exposition format (version 0.0.4).
// Counters count from the start of the run. The label sets of
// natbpf_drops_total are bounded: past max_series, new ones are added to one
// overflow series (cause="other: natbpf series limit reached") and counted
// in natbpf_metrics_series_overflow_total; the per-namespace conntrack and
// clash series likewise (netns="other: natbpf series limit reached").
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "explain/clash.h"
#include "explain/drops.h"

namespace natbpf {

inline constexpr size_t kDefaultMaxDropSeries = 1000;
// Rule texts and causes longer than this are cut (on a UTF-8 boundary) and end in "...".
inline constexpr size_t kMaxLabelBytes = 200;

struct BuildInfo {
  std::string version, revision;
};

class DropMetrics {
 public:
  explicit DropMetrics(BuildInfo build, size_t max_series = kDefaultMaxDropSeries);
  // One report of the run (each covers the drops since the previous one).
  void add(const DropsReport& r);
  // natbpf drops --clash: clash reports counted by namespace, outcome, cause.
  void enable_clashes() { clashes_enabled_ = true; }
  void add_clash(const ClashReport& r);
  std::string render() const;
  size_t series() const { return drops_.size(); }

 private:
  // netns, layer, cause, family, table, chain, rule, reason, where
  using Labels = std::array<std::string, 9>;
  void count(Labels labels, uint64_t n);

  BuildInfo build_;
  size_t max_series_;
  std::map<Labels, uint64_t> drops_;
  uint64_t overflow_ = 0, unkeyed_ = 0, lost_bpf_ = 0, lost_examples_ = 0, reports_ = 0;
  std::map<std::string, CtStatsTotals> conntrack_;  // per namespace name, sums of the reports' deltas
  bool clashes_enabled_ = false;
  std::map<std::array<std::string, 3>, uint64_t> clashes_;  // netns, outcome, cause (bounded by their kinds)
};

// Prometheus label value escaping (backslash, double quote, newline).
std::string prometheus_escape(const std::string& value);

}  // namespace natbpf
