// What `natbpf trace` asks the running system while it explains a journey:
// the ruleset snapshot (nftables, iptables-nft and iptables-legacy rule
// texts, refreshed when the nftables generation moves or a traced rule is
// unknown; iptables-legacy tables when their shape changes), set element lookups, kernel symbols, interface names and drop
// reason names. Every answer is also written to the recording when there is
// one; `natbpf explain` answers from those records (journey/trace_replay).
#pragma once

#include <algorithm>
#include <functional>
#include <future>
#include <memory>
#include <map>
#include <set>
#include <tuple>
#include <optional>
#include <string>
#include <vector>

#include "journey/trace_stories.h"
#include "probe/kallsyms.h"
#include "sources/legacy_tables.h"
#include "sources/nft.h"
#include "sources/ruleset.h"
#include "world/recording.h"

namespace natbpf {

class LiveTraceWorld {
 public:
  // The world, without a ruleset yet (start_reading); recorder may be null.
  static Result<LiveTraceWorld> create(RecordingWriter* recorder);
  // The families iptables-legacy TRACE runs for: their rules are read with
  // iptables-legacy-save from then on.
  void set_legacy_families(std::function<std::vector<std::string>()> families) { legacy_families_ = std::move(families); }
  // The nftables generation natbpf's own commits since generation g lead to
  // (g when none followed it): a snapshot is not read again for natbpf's
  // own marking rules being swapped (the trace table's hold).
  void set_own_changes(std::function<uint32_t(uint32_t)> follow) { own_changes_ = std::move(follow); }

  // Reads the ruleset again (and records it): the chains, or with `whole`
  // every rule.
  Status refresh_ruleset(bool whole = false);
  // Reads the ruleset's chains (or, on a node whose table holds many sets,
  // the whole ruleset) on a worker thread, once natbpf's own tables and
  // raw rules are in (so their generation is the snapshot's), so that
  // start-up and the event loop do not wait for a node's worth of rules.
  // The rules of a chain are listed when a story first crosses it. The
  // result is installed by poll() (on the loop's tick) or by the first
  // question that needs the ruleset, which then waits for it. With a
  // recording the read is done at once: it holds the ruleset before any event.
  void start_reading();
  void poll();
  // No read runs on a worker, or its result is there to install.
  bool ready() const;
  // What telling j needs and the snapshot lacks, read on a worker; true
  // when there is nothing (left) to read.
  bool prepare(const Journey& j);
  const Ruleset& ruleset() {
    settle();
    return ruleset_;
  }
  // The first read is over (installed by poll() or by a question, or failed).
  bool first_read_done() const { return first_read_done_; }
  // The snapshot installed last, without waiting for a read running on a
  // worker (but for the first one): the rule of an iptables-legacy TRACE
  // line, looked up as the line is parsed, on the loop.
  const Ruleset& installed_ruleset() {
    if (!first_read_done_) settle();
    return ruleset_;
  }
  const std::map<uint32_t, std::string>& drop_reasons() const { return drop_reasons_; }
  // The questions of a journey's explanation, as TraceStories asks them.
  StoryWorld story_world();

 private:
  explicit LiveTraceWorld(RecordingWriter* recorder) : recorder_(recorder) {}
  // The nftables generation moved since the snapshot, by others than natbpf.
  bool generation_moved();
  // One iptables-legacy table as last read: its shape and save text.
  struct LegacyCopy {
    std::optional<LegacyTableInfo> info;
    uint64_t read_ns = 0;
    // Shared with the rulesets built from it, which parse its chains when asked.
    std::shared_ptr<const std::string> text;
  };
  // family -> (table, copy), in the order iptables-legacy-save lists them
  using LegacyCopies = std::map<std::string, std::vector<std::pair<std::string, LegacyCopy>>>;
  struct LegacyRead {
    LegacyCopies copies;
    bool changed = false;  // a text differs, or a table came or went
  };
  // The legacy tables as they are now, each with its copy, and which to save again.
  struct LegacyPlan {
    struct Table {
      std::string family, name;
      std::optional<LegacyTableInfo> info;
      std::optional<LegacyCopy> old;  // kept unless save
      bool save = true;
    };
    std::vector<std::string> families;
    std::vector<Table> tables;
    bool changed = false;  // a table came or went
    bool saves() const {
      return std::any_of(tables.begin(), tables.end(), [](const Table& t) { return t.save; });
    }
  };
  // A read's result.
  struct Pending {
    uint32_t gen = 0;  // nftables generation, asked before the listing
    bool whole = false;  // every rule listed (else the chains only)
    LegacyCopies copies;
    RulesetTexts texts;
    Ruleset ruleset;
  };
  static Result<std::string> list_nft(const std::string& command);
  static Result<Pending> read_all(const std::vector<std::string>& families, LegacyCopies copies, bool whole);
  using ChainKey = std::tuple<std::string, std::string, std::string>;  // family, table, chain
  struct ChainRead {
    ChainKey key;
    bool drop_chain = false;        // where the journey was dropped (its near misses read nft text)
    std::optional<ChainInfo> base;  // a base chain's hook, type, priority, policy (no rules)
  };
  struct ChainListing {
    ChainKey key;
    std::string text;  // nft listing
    std::string save;  // iptables-nft -S of the chain, as a save ("" for nft tables)
  };
  std::optional<std::vector<ChainRead>> chains_to_read(const Journey& j) const;
  static Result<std::vector<ChainListing>> read_chains(const std::vector<ChainRead>& wanted);
  static std::string iptables_chain_listing(const ChainRead& read, const std::string& lines);
  static std::string chain_listing(const ChainRead& read, const std::string& rules);
  void install_chains(std::vector<ChainListing> listings);
  bool list_chains_of(const Journey& j);
  bool rule_missing(const Journey& j) const;
  void start_read(bool whole);
  static std::optional<LegacyPlan> check_legacy(const std::vector<std::string>& families, const LegacyCopies& copies);
  static LegacyRead save_legacy(LegacyPlan plan);
  static std::optional<LegacyRead> read_legacy(const std::vector<std::string>& families, const LegacyCopies& copies);
  static std::map<std::string, std::string> legacy_texts(const LegacyCopies& copies);
  static void add_legacy_chains(Ruleset& ruleset, const LegacyCopies& copies);
  void record_texts() const;
  void ensure_rules_known(const Journey& j);
  void install_legacy(LegacyRead read);
  void rebuild();
  void settle();
  void install(Pending p);
  std::optional<bool> set_has(const std::string& family, const std::string& table, const std::string& set,
                              const std::string& key);
  std::string ifname(uint32_t index);
  std::optional<std::string> sysctl(const std::string& name);
  std::vector<Listener> listeners(uint8_t proto, uint16_t port);

  RecordingWriter* recorder_;
  std::function<std::vector<std::string>()> legacy_families_;
  RulesetTexts texts_;  // what ruleset_ is built from, with the legacy copies (not in texts_)
  LegacyCopies legacy_;
  std::future<Result<Pending>> pending_;  // a background read of the ruleset
  std::future<Result<std::vector<ChainListing>>> chains_pending_;  // of a journey's chains
  std::future<LegacyRead> legacy_pending_;                         // iptables-legacy tables saved again
  // The journey prepare() works for (first receive time, trace id), and what it started.
  using JourneyId = std::pair<uint64_t, uint32_t>;
  JourneyId preparing_{};
  struct PrepareSteps {
    bool generation = false, chains = false, whole = false, legacy = false, done = false;
  };
  PrepareSteps prepared_;
  bool chains_failed_ = false;  // a chain read on the worker failed: read every rule
  bool first_read_done_ = false;  // the first read was installed, or failed
  Ruleset ruleset_;
  uint32_t ruleset_gen_ = 0;  // nftables generation of the snapshot
  std::function<uint32_t(uint32_t)> own_changes_;
  bool whole_ = false;        // every nftables rule is in the snapshot
  // (family, table, chain) of the nftables chains whose rules are listed
  std::set<ChainKey> listed_;
  // Read by a thread started with the world: the kernel formats
  // /proc/kallsyms slowly, and neither start-up nor the event loop (whose
  // receive times join the stories) may wait for it.
  std::shared_future<std::shared_ptr<const Kallsyms>> kallsyms_;
  std::map<uint32_t, std::string> drop_reasons_;
};

}  // namespace natbpf
