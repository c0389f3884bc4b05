// ctnetlink replies: each netlink message of a datagram, as mnl_cb_run hands
// them to ct_lookup/ct_dump (conntrack entries) and read_ct_stats
// (IPCTNL_MSG_CT_GET_STATS_CPU).
#include <libmnl/libmnl.h>

#include "fuzz_common.h"
#include "kernel/ct_stats.h"
#include "sources/ct_lookup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto datagram = natbpf::fuzz::bytes(data, size);
  int len = static_cast<int>(datagram.size());
  std::vector<natbpf::CtNetlinkEntry> entries;
  std::vector<natbpf::CtCpuStats> stats;
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    if (auto e = natbpf::parse_ct_message(nlh, nlh->nlmsg_len)) entries.push_back(std::move(*e));
    if (auto s = natbpf::parse_ct_stats_message(nlh, nlh->nlmsg_len)) stats.push_back(*s);
  }
  natbpf::Addr lo, hi;
  for (const auto& e : entries) {
    lo = hi = e.ct.reply.dst;
    (void)natbpf::count_range_usage(entries, e.ct.orig.proto, e.ct.orig.dst, e.ct.orig.dport, lo, hi, 0, 65535);
  }
  (void)natbpf::CtStatsTotals::sum(stats);
  return 0;
}
