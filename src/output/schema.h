#pragma once

namespace natbpf {
// Bumped whenever a JSON field changes meaning or disappears.
inline constexpr int kSchemaVersion = 1;
}  // namespace natbpf
