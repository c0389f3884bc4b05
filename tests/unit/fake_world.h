// A world with empty answers, for tests to override the questions they need.
#pragma once

#include "world/world.h"

namespace natbpf {

class EmptyWorld : public World {
 public:
  uint32_t own_netns() override { return 1; }
  std::string symbol(uint64_t) override { return "0x0"; }
  std::string drop_reason(uint32_t) override { return "NETFILTER_DROP"; }
  uint64_t realtime_ns() override { return 0; }
  SourceCounts source_counts() override { return {}; }
  std::optional<std::vector<CtCpuStats>> ct_stats() override { return std::nullopt; }
  std::optional<CtNetlinkEntry> ct_find(uint32_t, const Tuple&, TupleDir) override { return std::nullopt; }
  RangeUsage ct_range_usage(uint32_t, const RangeQuery&) override { return {}; }
  TableSize table_size(uint32_t) override { return {}; }
  std::vector<NatRule> nat_rules(uint32_t) override { return {}; }
  std::vector<NamedNetns> namespaces() override { return {}; }
  NetnsSnapshot snapshot(const NamedNetns&) override { return {}; }
};

}  // namespace natbpf
