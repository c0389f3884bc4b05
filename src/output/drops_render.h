// Renders a drop-attribution run (natbpf drops) as text or JSON Lines.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "explain/drops.h"
#include "kernel/ct_stats.h"

namespace natbpf {

struct DropsReport {
  double seconds = 0;
  uint64_t drops = 0, lost = 0;
  std::string plan_summary;
  std::vector<DropCause> causes;                              // ranked
  std::vector<std::pair<std::string, CtStatsTotals>> conntrack;  // per namespace, deltas
};

std::string drops_to_text(const DropsReport& r, size_t top);
std::string drops_to_json_lines(const DropsReport& r, size_t top);

}  // namespace natbpf
