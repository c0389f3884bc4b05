// `natbpf trace --record FILE`: the raw inputs of a run as JSON Lines, so
// `natbpf explain FILE` tells the same stories later, on any machine and
// without root. Recorded: the header (kernel, plan, filter), every nftables
// trace datagram and BPF ring-buffer record as received (hex), the ruleset
// texts natbpf read, and the answers it got from the live system (set
// element lookups, kernel symbols, drop reason names), plus the moments the
// stories were flushed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace natbpf {

inline constexpr int kRecordingVersion = 1;

class RecordingWriter {
 public:
  // Creates (truncates) path and writes the header line.
  static Result<RecordingWriter> create(const std::string& path, nlohmann::json header);
  // "nftrace" datagrams and "bpf" records, with the time they were read.
  void raw(const char* kind, std::span<const uint8_t> bytes, uint64_t recv_ns);
  // Any other record: {"t": "...", ...}.
  void write(const nlohmann::json& record);

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file_;
};

struct Recording {
  nlohmann::json header;
  std::vector<nlohmann::json> records;  // in the order they were written
};

// Reads a recording; a file that is not one (or of a newer version) is an
// error naming the fix.
Result<Recording> read_recording(const std::string& path);

std::string to_hex(std::span<const uint8_t> bytes);
std::vector<uint8_t> from_hex(const std::string& hex);  // empty on a bad digit

}  // namespace natbpf
