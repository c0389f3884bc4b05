// Replays a recording into a job: event records and ticks in the order they
// were written, each after the answers recorded behind it have been handed
// to the recorded world (the live run asked those questions while it handled
// that record, so the replay finds them ready when it asks again).
#pragma once

#include <functional>
#include <set>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "world/recorded_world.h"
#include "world/recording.h"

namespace natbpf {

struct ReplayHandlers {
  // "bpf", "bpf-clash" (drops --clash's second session), "nftrace", "nflog"
  // records, with the moment they were read.
  std::function<void(const std::string& kind, std::span<const uint8_t> bytes, uint64_t ns)> raw;
  std::function<void(uint64_t ns)> start;  // the job starts counting
  std::function<void(uint64_t ns, bool final)> tick;
  std::function<void(const nlohmann::json& record)> other;  // e.g. "end"
};

struct ReplayCounts {
  uint64_t bad_records = 0;  // of a known kind but malformed (bad hex, wrong types)
};

// The "plan" record a job writes first: the hooks that attached, the plan's
// summary and natbpf's own namespace.
struct RecordedPlan {
  std::set<std::string> hooks;
  std::string summary;
  uint32_t own_netns = 0;
};
Result<RecordedPlan> read_plan_record(RecordingReader& reader);

Result<ReplayCounts> replay(RecordingReader& reader, RecordedWorld& world, const ReplayHandlers& handlers);

}  // namespace natbpf
