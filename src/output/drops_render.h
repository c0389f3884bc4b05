// Renders a drop-attribution run (natbpf drops) as text or JSON Lines.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "explain/drops.h"

namespace natbpf {

std::string drops_to_text(const DropsReport& r, size_t top);
std::string drops_to_json_lines(const DropsReport& r, size_t top);

}  // namespace natbpf
