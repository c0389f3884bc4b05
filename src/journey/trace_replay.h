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

// Streams the file: a first pass takes the setup record and the fixed
// answers (interface names, symbols), the second tells the stories record
// by record, closing them as the live run did, so memory stays bounded by
// the stories open at one moment, not by the file.
class TraceReplay {
 public:
  explicit TraceReplay(std::string path) : path_(std::move(path)) {}
  // quiet: no line on stderr (JSON output).
  Status run(std::unique_ptr<TraceRenderer> renderer, bool quiet);

 private:
  StoryWorld recorded_world();
  Status setup();
  // One record; throws nlohmann::json::exception on a malformed one. A flush
  // reads the answers behind it first; the record after them is left in next.
  Status take(const nlohmann::json& r, RecordingReader& reader, std::optional<nlohmann::json>& next);
  void feed(const std::string& kind, const nlohmann::json& record);
  void apply(const nlohmann::json& j);
  static bool is_answer(const nlohmann::json& j);

  std::string path_;
  nlohmann::json header_;
  uint64_t last_flush_ns_ = 0;
  bool flush_recorded_ = false;  // the recording has the live run's flushes
  std::optional<TraceStories> stories_;
  Ruleset ruleset_;
  std::map<std::string, std::optional<bool>> sets_;
  std::map<uint64_t, std::string> symbols_;
  std::map<uint32_t, std::string> ifnames_;
  std::map<std::string, std::optional<std::string>> sysctls_;
  std::map<std::pair<uint8_t, uint16_t>, std::vector<Listener>> listeners_;
  std::map<uint32_t, std::string> reasons_;
  std::string own_table_, plan_;
  std::string legacy_comment_;  // marks natbpf's own raw rules
};

}  // namespace natbpf
