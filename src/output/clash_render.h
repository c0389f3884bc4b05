// `natbpf clash` output: one block of text or one JSON object per clash, and
// the periodic summary. Renderers see only explanations (ClashReport).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "explain/clash.h"

namespace natbpf {

nlohmann::json tuple_to_json(const Tuple& t);
nlohmann::json clash_to_json(const ClashReport& report);
std::string clash_to_text(const ClashReport& report, uint64_t number);
nlohmann::json summary_to_json(const ClashSummary& summary, bool final);
std::string summary_to_text(const ClashSummary& summary, bool final);

}  // namespace natbpf
