#include "sources/legacy_tables.h"

// netinet/in.h before the linux headers: they then leave in_addr to it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>

#include "util/runtime.h"

namespace natbpf {

std::vector<std::string> legacy_table_names(const std::string& family) {
  // The calling thread's namespace (/proc/net is the thread group leader's);
  // no file when x_tables is not loaded there.
  std::ifstream in(family == "ip6" ? "/proc/thread-self/net/ip6_tables_names"
                                   : "/proc/thread-self/net/ip_tables_names");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

std::optional<LegacyTableInfo> legacy_table_info(const std::string& family, const std::string& table) {
  // struct ip6t_getinfo has the layout of struct ipt_getinfo.
  static_assert(sizeof(ipt_getinfo) == sizeof(ip6t_getinfo));
  bool v6 = family == "ip6";
  if (table.empty() || table.size() >= XT_TABLE_MAXNAMELEN) return std::nullopt;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return std::nullopt;
  ipt_getinfo info{};
  std::memcpy(info.name, table.data(), table.size());
  socklen_t len = sizeof(info);
  int rc = getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IP6T_SO_GET_INFO : IPT_SO_GET_INFO, &info, &len);
  close(fd);
  if (rc != 0 || len != sizeof(info)) return std::nullopt;
  LegacyTableInfo out;
  out.valid_hooks = info.valid_hooks;
  out.num_entries = info.num_entries;
  out.size = info.size;
  std::copy(std::begin(info.hook_entry), std::end(info.hook_entry), out.hook_entry.begin());
  std::copy(std::begin(info.underflow), std::end(info.underflow), out.underflow.begin());
  return out;
}

bool legacy_tables_have_rules(const std::string& family, const std::vector<std::string>& tables,
                              const std::string& raw_save) {
  const std::string save = family == "ip6" ? "ip6tables-legacy-save" : "iptables-legacy-save";
  std::vector<std::pair<uint32_t, std::string>> by_size;
  for (const auto& table : tables) {
    if (table == "raw") {
      if (raw_save.find("\n-A ") != std::string::npos) return true;
      continue;
    }
    auto info = legacy_table_info(family, table);
    if (info && info->num_entries <= static_cast<uint32_t>(std::popcount(info->valid_hooks)) + 1) continue;
    by_size.emplace_back(info ? info->size : UINT32_MAX, table);
  }
  std::sort(by_size.begin(), by_size.end());
  for (const auto& [size, table] : by_size)
    if (run_program({save, "-t", table}).second.find("\n-A ") != std::string::npos) return true;
  return false;
}

}  // namespace natbpf
