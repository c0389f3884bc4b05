// `natbpf explain FILE` of trace, clash and drops recordings: the input is
// written to a memfd and explained through its /proc/self/fd path, the same
// reader, replay, decoders and printers as the command. Output goes where
// stdout goes (scripts/fuzz.sh runs with -close_fd_mask=3). The last byte
// picks JSON or text output.
#include <sys/mman.h>
#include <unistd.h>

#include "cli/commands.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("natbpf-fuzz-recording", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  bool json = size > 0 && (data[size - 1] & 1);
  (void)natbpf::explain_recording("/proc/self/fd/" + std::to_string(fd), json, 10);
  close(fd);
  return 0;
}
