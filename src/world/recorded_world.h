// The world from a recording, and the recorder that writes it.
//
// RecordingWorld stands between a job and the live world: it passes every
// question on and writes the answer to the recording ({"t":"answer","q":...,
// "key":...,"value":...}). RecordedWorld answers the same questions from those
// records. A replay feeds the job the same events at the same ticks, so it
// asks the same questions in the same order: answers that change during a
// run (counters, lookups, tables, the clock) are taken in order, each checked
// against its key; answers that cannot change (symbols, reason names) are
// written once and looked up by key.
#pragma once

#include <deque>
#include <map>
#include <nlohmann/json.hpp>

#include "world/recording.h"
#include "world/world.h"

namespace natbpf {

class RecordingWorld : public World {
 public:
  RecordingWorld(World& live, RecordingWriter& writer) : live_(live), writer_(writer) {}

  uint32_t own_netns() override { return live_.own_netns(); }
  std::string symbol(uint64_t addr) override;
  std::string drop_reason(uint32_t reason) override;
  uint64_t realtime_ns() override;
  SourceCounts source_counts() override;
  std::optional<std::vector<CtCpuStats>> ct_stats() override;
  std::optional<CtNetlinkEntry> ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) override;
  RangeUsage ct_range_usage(uint32_t netns, const RangeQuery& q) override;
  TableSize table_size(uint32_t netns) override;
  std::vector<NatRule> nat_rules(uint32_t netns) override;
  std::vector<NamedNetns> namespaces() override;
  NetnsSnapshot snapshot(const NamedNetns& ns) override;

 private:
  template <typename T>
  T keep(const char* question, const nlohmann::json& key, T answer);

  World& live_;
  RecordingWriter& writer_;
  std::map<uint64_t, std::string> symbols_;
  std::map<uint32_t, std::string> reasons_;
};

class RecordedWorld : public World {
 public:
  explicit RecordedWorld(uint32_t own_netns) : own_netns_(own_netns) {}

  // Takes one {"t":"answer",...} record. False when it is malformed.
  bool add_answer(const nlohmann::json& record);
  // Questions whose recorded answer was missing, of another key or malformed:
  // the replay then differs from the live run and says so.
  uint64_t mismatches() const { return mismatches_; }

  uint32_t own_netns() override { return own_netns_; }
  std::string symbol(uint64_t addr) override;
  std::string drop_reason(uint32_t reason) override;
  uint64_t realtime_ns() override;
  SourceCounts source_counts() override;
  std::optional<std::vector<CtCpuStats>> ct_stats() override;
  std::optional<CtNetlinkEntry> ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) override;
  RangeUsage ct_range_usage(uint32_t netns, const RangeQuery& q) override;
  TableSize table_size(uint32_t netns) override;
  std::vector<NatRule> nat_rules(uint32_t netns) override;
  std::vector<NamedNetns> namespaces() override;
  NetnsSnapshot snapshot(const NamedNetns& ns) override;

 private:
  // The next answer to question with this key, or fallback.
  template <typename T>
  T next(const char* question, const nlohmann::json& key, T fallback);

  uint32_t own_netns_;
  std::map<std::string, std::deque<nlohmann::json>> answers_;  // question -> {"key","value"} in order
  std::map<uint64_t, std::string> symbols_;
  std::map<uint32_t, std::string> reasons_;
  uint64_t mismatches_ = 0;
};

}  // namespace natbpf
