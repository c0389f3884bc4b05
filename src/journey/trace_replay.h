// `natbpf explain` of a trace recording: the recorded datagrams and
// ring-buffer records go through the same decoders, journeys and
// explanations as the live run; rule texts, set lookups, symbols and
// interface names are the answers the live run got.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "journey/trace_stories.h"
#include "output/trace_render.h"
#include "world/recording.h"

namespace natbpf {

// A header field, or 0 / fallback when absent or of another type.
uint64_t header_number(const nlohmann::json& header, const char* key);
std::string header_text(const nlohmann::json& header, const char* key, const char* fallback);

class TraceReplay {
 public:
  explicit TraceReplay(const Recording& r) : rec_(r) {}
  // quiet: no line on stderr (JSON output).
  Status run(std::unique_ptr<TraceRenderer> renderer, bool quiet);

 private:
  StoryWorld recorded_world();
  Status setup();
  void take(size_t i);  // record i; throws nlohmann::json::exception on a malformed one
  void feed(const std::string& kind, const nlohmann::json& record);
  void apply(const nlohmann::json& j);
  static bool is_answer(const nlohmann::json& j);

  const Recording& rec_;
  std::optional<TraceStories> stories_;
  Ruleset ruleset_;
  std::map<std::string, std::optional<bool>> sets_;
  std::map<uint64_t, std::string> symbols_;
  std::map<uint32_t, std::string> ifnames_;
  std::map<uint32_t, std::string> reasons_;
  std::string own_table_, plan_;
  std::string legacy_comment_;  // marks natbpf's own TRACE rules
};

}  // namespace natbpf
