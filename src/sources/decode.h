// Raw ring-buffer bytes -> typed events. Size and version are checked before
// any field is read; a bad record is an error value, never a crash.
#pragma once

#include <cstddef>

#include "sources/events.h"
#include "util/result.h"

namespace natbpf {

Result<BpfEvent> decode_bpf_record(const void* data, size_t size);

}  // namespace natbpf
