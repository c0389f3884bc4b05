// One line (or captured packet) of a saved netfilter log: what the kernel's
// nf_log printed (iptables TRACE, conntrack's INVALID log) or NFLOG carried,
// whichever form it was saved in (kernel log text, a tcpdump -i nflog pcap,
// ulogd2 JSON). `natbpf explain --log` turns these into the same trace
// events the live NFLOG source gives (sources/legacy_trace.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sources/events.h"

namespace natbpf {

struct LogRecord {
  // When it was logged, in ns on the log's own clock (syslog wall time,
  // dmesg uptime, pcap time); nullopt when the line has no time.
  std::optional<uint64_t> ts_ns;
  uint8_t family = 0;  // NFPROTO_IPV4 2 / NFPROTO_IPV6 10
  // The log prefix as the kernel gave it: "TRACE: raw:PREROUTING:policy:3 "
  // or "nf_ct_proto_6: invalid tcp flag combination ".
  std::string prefix;
  Packet pkt;                         // the logged headers (addresses, ports, IP id, TCP seq/ack/flags)
  std::string in, out;                // interface names (IN= / OUT=, ulogd oob.in / oob.out)
  std::optional<uint32_t> iif, oif;   // interface indexes, where only those were saved (NFLOG)
  std::optional<uint32_t> mark;       // MARK= / NFULA_MARK
  uint64_t line = 0;                  // 1-based line (or packet) number in its file
};

}  // namespace natbpf
