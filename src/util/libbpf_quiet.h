// Silences libbpf's own stderr chatter while a probe or a plan tries
// variants that are expected to fail; keeps the last message for errors.
#pragma once

#include <bpf/libbpf.h>

#include <string>

namespace natbpf {

class LibbpfQuiet {
 public:
  LibbpfQuiet();
  ~LibbpfQuiet();
  LibbpfQuiet(const LibbpfQuiet&) = delete;
  LibbpfQuiet& operator=(const LibbpfQuiet&) = delete;

  // The last warning libbpf printed while silenced, without its newline.
  static std::string last_message();

 private:
  libbpf_print_fn_t previous_;
};

// "EPERM", "ESRCH", ... for a positive errno value.
std::string errno_name(int err);

}  // namespace natbpf
