// ctnetlink replies: each netlink message of a datagram, handed to the
// parsers of ct_lookup/ct_dump (conntrack entries) and read_ct_stats
// (IPCTNL_MSG_CT_GET_STATS_CPU) with the bytes left in the datagram as their
// length, so the parsers' own checks of nlmsg_len are what is tested.
#include "fuzz_common.h"
#include "kernel/ct_stats.h"
#include "sources/ct_lookup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto datagram = natbpf::fuzz::bytes(data, size);
  std::vector<natbpf::CtNetlinkEntry> entries;
  std::vector<natbpf::CtCpuStats> stats;
  size_t off = 0;
  while (off + sizeof(nlmsghdr) <= datagram.size()) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data() + off);
    size_t left = datagram.size() - off;
    if (auto e = natbpf::parse_ct_message(nlh, left)) entries.push_back(std::move(*e));
    if (auto s = natbpf::parse_ct_stats_message(nlh, left)) stats.push_back(*s);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > left) break;
    off += NLMSG_ALIGN(static_cast<size_t>(nlh->nlmsg_len));
  }
  natbpf::Addr lo, hi;
  for (const auto& e : entries) {
    lo = hi = e.ct.reply.dst;
    natbpf::RangeQuery q{e.ct.orig.proto, e.ct.orig.dst, e.ct.orig.dport, lo, hi, 0, 65535};
    (void)natbpf::count_range_usage(entries, q);
    (void)q.tuples();
  }
  (void)natbpf::CtStatsTotals::sum(stats);
  return 0;
}
