#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "probe/probe_report.h"

namespace natbpf {

nlohmann::json probe_to_json(const ProbeReport& report);
std::string probe_to_text(const ProbeReport& report);

}  // namespace natbpf
