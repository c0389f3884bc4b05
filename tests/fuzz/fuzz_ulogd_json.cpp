// ulogd2 JSON output (one object per line), line by line as a log file is
// read: format detection on each line and the record it gives.
#include "fuzz_common.h"
#include "sources/nflog_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text = natbpf::fuzz::text(data, size);
  size_t start = 0;
  for (uint64_t number = 1; start <= text.size(); number++) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    (void)natbpf::looks_like_ulogd_json(line);
    if (auto rec = natbpf::parse_ulogd_json_line(line, number)) (void)rec->pkt.str();
    start = end + 1;
  }
  return 0;
}
