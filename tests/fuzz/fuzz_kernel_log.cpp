// Kernel log lines of iptables TRACE ("TRACE: nat:KUBE-NODEPORTS:rule:16
// IN=eth0 ...") and conntrack's INVALID log ("nf_ct_proto_6: invalid ..."),
// as `explain --log` reads them: each input line goes whole to
// parse_kernel_log_line (syslog, dmesg, dmesg -T, journal prefixes),
// looks_like_kernel_log and kernel_log_time, and the "TRACE: table:chain:type:N "
// prefix ip_tables logs to parse_trace_prefix, as it is and from "TRACE: " up
// to the first " IN=" (the prefix NFLOG's NFULA_PREFIX carries).
#include <cstdlib>

#include "fuzz_common.h"
#include "sources/kernel_log.h"
#include "sources/legacy_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text = natbpf::fuzz::text(data, size);
  size_t start = 0;
  for (uint64_t number = 1; start <= text.size(); number++) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    (void)natbpf::parse_trace_prefix(line);
    if (size_t at = line.find("TRACE: "); at != std::string::npos) {
      size_t in = line.find(" IN=", at);
      (void)natbpf::parse_trace_prefix(line.substr(at, in == std::string::npos ? std::string::npos : in - at + 1));
      (void)natbpf::kernel_log_time(std::string_view(line).substr(0, at));
    }
    (void)natbpf::kernel_log_time(line);
    (void)natbpf::looks_like_kernel_log(line);
    if (auto rec = natbpf::parse_kernel_log_line(line, number)) {
      // A record has both addresses, of one family.
      if (rec->pkt.saddr.family != rec->pkt.daddr.family || rec->pkt.family != rec->pkt.saddr.family) std::abort();
      (void)rec->pkt.str();
      (void)natbpf::parse_trace_prefix(rec->prefix);
    }
    start = end + 1;
  }
  return 0;
}
