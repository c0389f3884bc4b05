// A cheap change detector for iptables-legacy tables. ip_tables has no
// generation number, and iptables-legacy-save dumps and formats a whole
// table (seconds on a node with 100000 rules). getsockopt IPT_SO_GET_INFO
// answers per table with its entry count, blob size and hook offsets: any
// rule added or deleted changes them, and then only that table is read
// again (iptables-legacy-save -t TABLE). A rule replaced by one of the same
// size (-R with another port or verdict) keeps them: the caller re-reads a
// table also when its copy is old.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace natbpf {

struct LegacyTableInfo {
  uint32_t valid_hooks = 0;  // a bit per built-in chain (NF_INET_*)
  uint32_t num_entries = 0, size = 0;
  std::array<uint32_t, 5> hook_entry{}, underflow{};
  bool operator==(const LegacyTableInfo&) const = default;
};

// The tables of the calling thread's network namespace that exist (and only those:
// asking for another would make the kernel load, so create, it), in the
// order iptables-legacy-save lists them. family "ip" or "ip6".
std::vector<std::string> legacy_table_names(const std::string& family);
// The table's shape, or nothing when it cannot be asked (no CAP_NET_ADMIN,
// table gone).
std::optional<LegacyTableInfo> legacy_table_info(const std::string& family, const std::string& table);

// Whether any of the family's tables holds a rule (raw_save: the raw
// table's save text, when it was read already). Tables are saved one by
// one, smallest first (a kube-proxy node's nat table has tens of thousands
// of rules); a table whose entries are only its built-in chains' policies
// and the end marker is not saved at all.
bool legacy_tables_have_rules(const std::string& family, const std::vector<std::string>& tables,
                              const std::string& raw_save);

}  // namespace natbpf
