// One NFLOG pseudo-packet of a `tcpdump -i nflog -w` capture, as libpcap
// hands a record to read_nflog_pcap: nflog_hdr and TLVs (lengths and types in
// this machine's byte order), whole and as a record the snap length cut.
#include "fuzz_common.h"
#include "sources/nflog_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto record = natbpf::fuzz::bytes(data, size);
  (void)natbpf::looks_like_pcap(record);
  for (bool snapped : {false, true})
    if (auto rec = natbpf::parse_nflog_pcap_packet(record, snapped)) (void)rec->pkt.str();
  return 0;
}
