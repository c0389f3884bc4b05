// Kernel log lines of iptables TRACE ("TRACE: nat:KUBE-NODEPORTS:rule:16
// IN=eth0 ..."): the "TRACE: table:chain:type:N " prefix ip_tables logs is
// what parse_trace_prefix reads, from NFLOG's NFULA_PREFIX. Each input line is
// given as it is, and from "TRACE: " up to the first " IN=" as the logger
// writes the prefix in a syslog line.
#include "fuzz_common.h"
#include "sources/legacy_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text = natbpf::fuzz::text(data, size);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    (void)natbpf::parse_trace_prefix(line);
    if (size_t at = line.find("TRACE: "); at != std::string::npos) {
      size_t in = line.find(" IN=", at);
      (void)natbpf::parse_trace_prefix(line.substr(at, in == std::string::npos ? std::string::npos : in - at + 1));
    }
    start = end + 1;
  }
  return 0;
}
