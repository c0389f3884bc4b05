#pragma once
#include <nlohmann/json.hpp>

namespace natbpf {

struct Packet;  // sources/events.h, reached by each renderer through its explanation

// Bumped whenever a JSON field changes meaning or disappears.
inline constexpr int kSchemaVersion = 1;

// A packet's addresses and ports, the same object in every JSON record.
nlohmann::json packet_json(const Packet& p);
}  // namespace natbpf
