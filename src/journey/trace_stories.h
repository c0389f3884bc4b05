// The story half of `natbpf trace`, shared by the live command and by
// `natbpf explain` (a recording): typed events in, joined into journeys,
// explained, counted and rendered. What explaining needs from the system
// (rule texts, set lookups, symbols, drop reason names) comes through
// StoryWorld: live queries, or the answers a recording kept.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "journey/journey.h"
#include "journey/story_writer.h"
#include "output/trace_render.h"
#include "sources/ruleset.h"

namespace natbpf {

// The texts a ruleset snapshot is built from: `nft list ruleset`, and the
// iptables-nft / iptables-legacy save output per family ("ip", "ip6").
struct RulesetTexts {
  std::string nft;
  std::map<std::string, std::string> iptables_nft, iptables_legacy;

  Ruleset build() const;
  // The same, from nft already parsed (Ruleset::parse(nft)): a node's
  // listing is parsed once.
  Ruleset build(Ruleset parsed_nft) const;
  nlohmann::json to_json() const;
  static RulesetTexts from_json(const nlohmann::json& j);
};

struct StoryWorld {
  // False while the ruleset is still being read (on a worker): complete
  // stories wait to be told, and the events keep being read meanwhile.
  // Unset: always ready.
  std::function<bool()> ready;
  // Starts what telling this complete journey needs (rules of its chains)
  // without waiting for it; true when nothing is left to read. Unset: true.
  std::function<bool(const Journey&)> prepare;
  std::function<void(const Journey&)> before_explain;  // e.g. refresh a stale ruleset
  std::function<const Ruleset&()> ruleset;
  std::function<std::optional<bool>(const std::string& family, const std::string& table, const std::string& set,
                                    const std::string& key)>
      set_has;
  std::function<std::string(uint64_t)> symbol;
  std::function<std::string(uint32_t)> drop_reason;
  std::function<std::string(uint32_t)> ifname;  // interface index -> name
  // A sysctl of the traced namespace ("net.netfilter.nf_conntrack_tcp_loose").
  std::function<std::optional<std::string>(const std::string&)> sysctl;
  // Sockets listening on (protocol, port) in the traced namespace.
  std::function<std::vector<Listener>(uint8_t, uint16_t)> listeners;
  std::string netns;  // as the user named it ("" for natbpf's own)
};

// What makes two stories one path: the same flow, TCP flags, decisions and
// end (and, for TCP, sequence and acknowledgment numbers). A story whose
// signature an earlier one had is told as its repeat.
std::string path_signature(const Journey& j);

class TraceStories {
 public:
  // count: stop after this many stories (0: no limit).
  TraceStories(std::string own_table, uint64_t count, std::unique_ptr<TraceRenderer> renderer, StoryWorld world);

  void add(NftTraceEvent&& ev) { builder_.add(std::move(ev)); }
  void add(BpfEvent&& ev) { builder_.add(std::move(ev)); }
  // Explains and prints the journeys that are complete at now_ns (all: every
  // one); while the world is not ready, they wait, in order (all: it is waited for).
  void flush(uint64_t now_ns, bool all);
  bool done() const { return count_ && counters_.packets >= count_; }
  TraceCounters& counters() { return counters_; }
  JourneyBuilder& builder() { return builder_; }
  // Only stories this accepts are told and counted (explain --log --match).
  std::function<bool(const Journey&)> filter;
  void print_summary(const std::string& plan_summary);
  // A saved log: stories are rendered and written by a StoryWriter's
  // thread, in large pieces, not each flushed as it is told (a live trace's are).
  bool buffer_output = false;
  void write_output();  // every story told so far written, flushed

 private:
  void emit(Journey&& j);

  uint64_t count_;
  std::unique_ptr<TraceRenderer> renderer_;
  StoryWorld world_;
  JourneyBuilder builder_;
  std::deque<Journey> complete_;  // joined, waiting for the world to be ready
  TraceCounters counters_;
  // Paths told so far (a hash of path_signature -> the first story's
  // number), the newest kMaxPaths: a long trace or a log of millions of
  // lines must not keep one signature per packet. With a 64-bit hash a
  // story is taken for a repeat by a collision less than once in 10^14.
  static constexpr size_t kMaxPaths = 65536;
  std::unordered_map<uint64_t, uint64_t> first_of_path_;
  std::deque<uint64_t> path_order_;  // oldest first, to forget
  std::string out_;        // the rendered story, reused
  std::string signature_;  // of the story being told, reused
  // With buffer_output, from the first story on; declared after renderer_,
  // which its thread uses until it is destroyed.
  std::unique_ptr<StoryWriter> writer_;
};

}  // namespace natbpf
