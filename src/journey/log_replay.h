// `natbpf explain --log FILE [--ruleset FILE]`: stories from logs someone
// already saved, offline and without root: kernel log lines of iptables
// TRACE and conntrack's INVALID log (syslog, dmesg, journalctl), `nft
// monitor trace` text, NFLOG pcaps (tcpdump -i nflog) and ulogd2 JSON. The
// lines are grouped into packets here and told by the same journeys,
// explanations and renderers as `natbpf trace`; rule numbers and handles are
// resolved against the saved ruleset (iptables-save, nft list ruleset).
// Files are streamed: memory is bounded by the packets open at one moment.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "journey/log_lines.h"
#include "journey/trace_stories.h"
#include "output/trace_render.h"
#include "sources/legacy_trace.h"
#include "sources/log_record.h"
#include "sources/ruleset.h"
#include "sources/trace_table.h"
#include "util/result.h"

namespace natbpf {

Result<LogFormat> parse_log_format(const std::string& name);  // auto|kernel|nft|pcap|ulogd
const char* log_format_name(LogFormat f);

// The format a file's first bytes show; nullopt when none fits.
std::optional<LogFormat> detect_log_format(const std::string& head);

// "tcp dport 52000", "ip saddr 10.0.0.1 udp", "iif eth0": the packets a
// story must have met (any of its header snapshots, so before or after NAT).
Result<TraceMatch> parse_log_match(const std::string& text);
bool journey_matches(const Journey& j, const TraceMatch& m);

// Saved rulesets (iptables-save / ip6tables-save / iptables-legacy-save,
// `nft [-a] list ruleset`) as one Ruleset.
Result<Ruleset> load_saved_rulesets(const std::vector<std::string>& files);

struct LogReplayOptions {
  std::vector<std::string> logs, rulesets;
  LogFormat format = LogFormat::Auto;
  std::optional<TraceMatch> match;
};

class LogReplay {
 public:
  explicit LogReplay(LogReplayOptions o) : o_(std::move(o)) {}
  // quiet: no line on stderr (JSON output).
  Status run(std::unique_ptr<TraceRenderer> renderer, bool quiet);

  struct FileCounts {
    std::string file;
    LogFormat format = LogFormat::Auto;
    uint64_t lines = 0, trace = 0, invalid = 0, malformed = 0;
  };

 private:
  Status read_file(const std::string& file, FileCounts& c);
  // where: "kern.log:12"; prefix_id: ParsedLine::prefix_id, 0 when not numbered
  void take(LogRecord&& r, std::string where, uint64_t prefix_id, FileCounts& c);
  void take_nft(NftTraceEvent&& ev, const std::string& iif, const std::string& oif, std::optional<uint64_t> ts,
                std::string where, FileCounts& c);
  // What a TRACE prefix says, worked out once per prefix and family: a log
  // repeats the same rule positions millions of times.
  struct TraceLine {
    TracePrefix prefix;
    std::optional<NftTraceEvent> event;  // its packet and id still to set
  };
  static constexpr size_t kMaxTraceLines = 4096;  // distinct prefixes kept per family
  const TraceLine* trace_line(const std::string& prefix, uint8_t family);  // nullptr: no TRACE prefix
  const TraceLine* trace_line(const std::string& prefix, uint8_t family, uint64_t prefix_id);
  uint64_t advance(std::optional<uint64_t> ts);
  uint32_t ifindex(const std::string& name);
  void flush_if_due();
  StoryWorld world();

  LogReplayOptions o_;
  Ruleset ruleset_;
  std::optional<TraceStories> stories_;
  uint64_t now_ns_ = 0, last_flush_ns_ = 0;
  uint32_t next_group_ = 1;
  struct Group {
    uint32_t id = 0;
    bool raw = false;  // the packet's latest line was of the raw table
    uint64_t last_ns = 0;
  };
  std::unordered_map<uint32_t, Group> groups_;      // headers (IP id, seq, source) -> the packet they belong to
  std::unordered_map<uint32_t, Group> nft_groups_;  // nft trace id -> the packet
  // family -> log prefix -> what it says (nullopt: no TRACE prefix)
  std::map<uint8_t, std::unordered_map<std::string, std::optional<TraceLine>>> trace_lines_;
  // (prefix id << 8 | family) -> its entry in trace_lines_ (nullptr: none), cleared with it
  std::unordered_map<uint64_t, const TraceLine*> trace_line_by_id_;
  // Saved nft rules by the text nft prints: chain (family, table, name) ->
  // rule_shape of its rule -> handle (rules never change during a replay).
  std::unordered_map<std::string, std::unordered_map<std::string, uint64_t>> handle_by_shape_;
  std::map<std::string, uint32_t> ifindex_;
  std::map<uint32_t, std::string> ifname_;
};

}  // namespace natbpf
