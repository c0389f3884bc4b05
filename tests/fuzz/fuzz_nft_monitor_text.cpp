// Saved `nft monitor trace` text, the log `explain --log` reads: every line
// is fed to one parser (so packet and conntrack lines wait for their event
// line) and to the format check; the events are printed the debugging way.
#include <cstdlib>

#include "fuzz_common.h"
#include "sources/nft_monitor_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text = natbpf::fuzz::text(data, size);
  natbpf::NftMonitorTextParser parser;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    (void)natbpf::NftMonitorTextParser::looks_like(line);
    if (auto parsed = parser.feed(line)) {
      // Every event names its table and chain, and a policy event its policy.
      if (parsed->ev.table.empty() || parsed->ev.chain.empty()) std::abort();
      if (parsed->ev.type == natbpf::NftTraceType::Policy && !parsed->ev.policy) std::abort();
      (void)natbpf::format_nftrace_line(parsed->ev);
      (void)parsed->ev.effective_verdict();
    }
    start = end + 1;
  }
  if (parser.malformed() > parser.lines()) std::abort();
  return 0;
}
