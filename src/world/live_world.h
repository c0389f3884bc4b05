// The world as the running system answers it: ctnetlink, /proc sysctls,
// iptables-save and nftables in the namespace a question names, kallsyms and
// BTF. Caches only what cannot change during a run (symbols, reason names).
#pragma once

#include <functional>
#include <memory>

#include "probe/kallsyms.h"
#include "util/netns.h"
#include "util/runtime.h"
#include "world/world.h"

namespace natbpf {

class LiveWorld : public World {
 public:
  // counts: the loss counts of the job's sources (nothing when it has none).
  explicit LiveWorld(std::function<SourceCounts()> counts = {});

  // Reads kallsyms (and, when asked, the drop reason names from BTF) now,
  // before the job gets ready: on a slow machine that takes seconds, which
  // must not stall the event loop at the first drop.
  void preload(bool drop_reasons);

  uint32_t own_netns() override { return current_netns_inode(); }  // after --netns moved natbpf there
  std::string symbol(uint64_t addr) override;
  std::string drop_reason(uint32_t reason) override;
  uint64_t realtime_ns() override;
  SourceCounts source_counts() override { return counts_ ? counts_() : SourceCounts{}; }
  std::optional<std::vector<CtCpuStats>> ct_stats() override;
  std::optional<CtNetlinkEntry> ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) override;
  RangeUsage ct_range_usage(uint32_t netns, const RangeQuery& q) override;
  TableSize table_size(uint32_t netns) override;
  std::vector<NatRule> nat_rules(uint32_t netns) override;
  std::vector<NamedNetns> namespaces() override;
  NetnsSnapshot snapshot(const NamedNetns& ns) override;

 private:
  std::function<SourceCounts()> counts_;
  NetnsIndex netns_;
  std::unique_ptr<Kallsyms> kallsyms_;                            // read at preload or the first question
  std::optional<std::map<uint32_t, std::string>> drop_reasons_;  // likewise
};

}  // namespace natbpf
