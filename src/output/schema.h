#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace natbpf {

struct Packet;  // sources/events.h, reached by each renderer through its explanation

// Bumped whenever a JSON field changes meaning or disappears.
inline constexpr int kSchemaVersion = 2;

// A packet's addresses and ports, the same object in every JSON record.
nlohmann::json packet_json(const Packet& p);

// Absent facts are null (docs/json.md): the explanations keep an unknown
// text as "" (a hook, a rule, an interface), which JSON never shows.
inline nlohmann::json or_null(const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); }
template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}
inline nlohmann::json or_null(const std::optional<std::string>& s) { return s ? or_null(*s) : nlohmann::json(); }
}  // namespace natbpf
