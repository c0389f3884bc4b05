#include "world/replay.h"

namespace natbpf {
namespace {

using json = nlohmann::json;

std::string kind_of(const json& record) {
  auto t = record.find("t");
  return t != record.end() && t->is_string() ? t->get<std::string>() : "";
}

// Runs one event, tick or other record; false when it is malformed.
bool perform(const json& r, const ReplayHandlers& h) {
  std::string t = kind_of(r);
  try {
    if (t == "bpf" || t == "bpf-clash" || t == "nftrace" || t == "nflog") {
      std::string hex = r.at("hex").get<std::string>();
      auto bytes = from_hex(hex);
      if (bytes.empty() && !hex.empty()) return false;
      if (h.raw) h.raw(t, bytes, r.at("ns").get<uint64_t>());
    } else if (t == "start") {
      if (h.start) h.start(r.at("ns").get<uint64_t>());
    } else if (t == "tick") {
      if (h.tick) h.tick(r.at("ns").get<uint64_t>(), r.at("final").get<bool>());
    } else if (h.other) {
      h.other(r);
    }
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

}  // namespace

Result<RecordedPlan> read_plan_record(RecordingReader& reader) {
  auto first = reader.next();
  if (!first) return first.error();
  const Error missing = usage_error("the recording has no plan record (natbpf stopped before it attached)",
                                    "record a run that got ready");
  if (!*first || kind_of(**first) != "plan") return missing;
  RecordedPlan plan;
  try {
    const json& j = **first;
    plan.hooks = j.at("hooks").get<std::set<std::string>>();
    plan.summary = j.at("summary").get<std::string>();
    plan.own_netns = j.at("own_netns").get<uint32_t>();
  } catch (const json::exception&) {
    return missing;
  }
  return plan;
}

Result<ReplayCounts> replay(RecordingReader& reader, RecordedWorld& world, const ReplayHandlers& handlers) {
  ReplayCounts counts;
  std::optional<json> action;  // waits until the answers behind it are in
  while (true) {
    auto next = reader.next();
    if (!next) return next.error();
    if (*next && kind_of(**next) == "answer") {
      if (!world.add_answer(**next)) counts.bad_records++;
      continue;
    }
    if (action && !perform(*action, handlers)) counts.bad_records++;
    if (!*next) break;
    action = std::move(**next);
  }
  return counts;
}

}  // namespace natbpf
