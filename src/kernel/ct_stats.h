// Per-CPU conntrack statistics over ctnetlink (IPCTNL_MSG_CT_GET_STATS_CPU),
// the counters `conntrack -S` prints. Absent counters (older kernels) stay
// std::nullopt, never 0.
// A question to the kernel, not an event source: it sits below sources/ and
// probe/ so the feature probe (probe/features) can ask it too.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "util/result.h"

namespace natbpf {

struct CtCpuStats {
  uint16_t cpu = 0;
  std::optional<uint32_t> found, invalid, insert, insert_failed, drop, early_drop, error,
      search_restart, clash_resolve, chaintoolong;
};

struct CtStatsTotals {
  uint64_t found = 0, invalid = 0, insert_failed = 0, drop = 0, early_drop = 0, error = 0,
           clash_resolve = 0, chaintoolong = 0;
  bool has_clash_resolve = false;
  bool has_chaintoolong = false;

  static CtStatsTotals sum(const std::vector<CtCpuStats>& cpus);
  CtStatsTotals delta_since(const CtStatsTotals& earlier) const;
};

// Reads the statistics of the calling thread's network namespace.
Result<std::vector<CtCpuStats>> read_ct_stats();

// Parses one IPCTNL_MSG_CT_GET_STATS_CPU reply (exposed for unit tests).
std::optional<CtCpuStats> parse_ct_stats_message(const void* nlh, size_t len);

}  // namespace natbpf
