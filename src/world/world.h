// The world: everything a job asks the running system while it explains
// (conntrack entries and counters, NAT rules, rule counters, namespaces,
// kernel symbols, drop reason names, the clock, the sources' loss counts).
// Streams of events come from sources; questions go through this interface
// only, so a job runs the same against the live system (LiveWorld), against
// the answers a recording kept (RecordedWorld), and against a fake in the
// unit tests. A job never asks the kernel directly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sources/ct_lookup.h"
#include "kernel/ct_stats.h"
#include "sources/iptables_rules.h"

namespace natbpf {

// nf_conntrack_count of a namespace and the global nf_conntrack_max.
struct TableSize {
  std::optional<uint64_t> count, max;
  std::optional<uint64_t> buckets;  // nf_conntrack_buckets (global)
};

// A network namespace drops can be reported for: its name (ip netns), or
// "(natbpf's namespace)", and the inode BPF records carry.
inline constexpr const char* kOwnNetnsName = "(natbpf's namespace)";
struct NamedNetns {
  std::string name, path;
  uint32_t inode = 0;
};

// An nftables rule ending in drop whose counter natbpf reads.
// An nftables rule with a counter, by "family table chain handle".
struct DropRuleCounter {
  std::string text;  // the rule without its counter values
  uint64_t packets = 0;
};

// Drop rule counters and conntrack counters of one namespace at one moment.
struct NetnsSnapshot {
  std::map<std::string, DropRuleCounter> drop_rules;  // "inet filter input 2" -> rule
  // The other counted nftables rules that can lead to a drop: mark setters
  // ("meta mark set ...") and jumps, for where a matched mark was set.
  std::map<std::string, DropRuleCounter> mark_rules;
  std::vector<IptRuleCounter> ipt_rules;              // every iptables rule, both backends
  std::optional<CtStatsTotals> ct;
};


// Events the sources lost before natbpf read them, records that failed to
// decode, and events their kernel side rejected as not the job's, since the
// start.
struct SourceCounts {
  uint64_t lost = 0, malformed = 0, rejected = 0;
};

class World {
 public:
  virtual ~World() = default;

  // The namespace natbpf runs in (counters are read there).
  virtual uint32_t own_netns() = 0;
  // "nf_hook_slow+0x7d", or "0x..." when unknown.
  virtual std::string symbol(uint64_t addr) = 0;
  // enum skb_drop_reason value -> "NETFILTER_DROP" ("reason N" when unknown).
  virtual std::string drop_reason(uint32_t reason) = 0;
  // CLOCK_REALTIME, for ages of conntrack entries (their start is realtime).
  virtual uint64_t realtime_ns() = 0;
  virtual SourceCounts source_counts() = 0;

  // Conntrack, per CPU, in natbpf's own namespace; nullopt when unreadable.
  virtual std::optional<std::vector<CtCpuStats>> ct_stats() = 0;
  // The entry holding tuple in direction dir in a namespace, if any.
  virtual std::optional<CtNetlinkEntry> ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) = 0;
  // How much of a NAT range one destination uses (lookups or a kernel-filtered
  // dump, never the whole table).
  virtual RangeUsage ct_range_usage(uint32_t netns, const RangeQuery& q) = 0;
  virtual TableSize table_size(uint32_t netns) = 0;
  virtual std::vector<NatRule> nat_rules(uint32_t netns) = 0;

  // Named namespaces and natbpf's own.
  virtual std::vector<NamedNetns> namespaces() = 0;
  virtual NetnsSnapshot snapshot(const NamedNetns& ns) = 0;
};

// The bare function of a symbol: "nf_hook_slow" of "nf_hook_slow+0x7d";
// "" when the address is unknown.
std::string symbol_function(const std::string& symbol);

}  // namespace natbpf
