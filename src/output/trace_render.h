// Renders explained journeys: text (one story per packet, colour on a TTY)
// or JSON Lines. Renderers see only journeys and counters, never the kernel.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "journey/journey.h"

namespace natbpf {

struct TraceCounters {
  uint64_t packets = 0, dropped = 0, accepted = 0, unknown = 0, retransmissions = 0;
  uint64_t nftrace_lost = 0, nftrace_parse_errors = 0, bpf_lost = 0, bpf_decode_errors = 0;
  std::map<std::string, uint64_t> drop_points;  // "inet filter allowed_dnats rule \"drop\" (handle 7)" -> count
};

std::string drop_point_str(const DropPoint& d);

class TraceRenderer {
 public:
  virtual ~TraceRenderer() = default;
  // Appends the story of one packet to out.
  virtual void packet(const Journey& j, std::string& out) = 0;
  virtual std::string summary(const TraceCounters& c, const std::string& plan_summary) = 0;
};

std::unique_ptr<TraceRenderer> make_text_renderer(bool colour);
std::unique_ptr<TraceRenderer> make_json_renderer();

nlohmann::json journey_to_json(const Journey& j);
// Shared by the text and JSON renderers.
std::string hex_id(uint32_t trace_id);     // "1a2b3c4d"
const char* fate_str(Fate f);              // "dropped", "forwarded", ...
std::string ct_state_str(uint32_t state);  // nft's ct state bits: "established,related"

}  // namespace natbpf
