// BPF ring-buffer records (bpf/natbpf_events.h), as the ring-buffer callback
// and the replay of a recording hand them to decode_bpf_record, including the
// variable-size NB_EV_DROP_COUNTS snapshots.
#include "fuzz_common.h"
#include "sources/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto record = natbpf::fuzz::bytes(data, size);
  (void)natbpf::decode_bpf_record(record.data(), record.size());
  return 0;
}
