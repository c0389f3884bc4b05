// nftables trace messages (NFT_MSG_TRACE) as the listener reads them: one
// datagram of netlink messages through parse_nftrace_datagram, then each
// good event printed as the debug line does.
#include "fuzz_common.h"
#include "sources/nftrace_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto datagram = natbpf::fuzz::bytes(data, size);
  size_t errors = 0;
  natbpf::parse_nftrace_datagram(
      datagram, 1,
      [](natbpf::NftTraceEvent&& ev) {
        (void)natbpf::format_nftrace_line(ev);
        (void)ev.effective_verdict();
      },
      [&errors](std::string) { errors++; });
  return 0;
}
