// `natbpf trace|clash|drops --record FILE`: the raw inputs of a run as JSON
// Lines, so `natbpf explain FILE` prints the same output later, on any
// machine and without root. The one module that writes and reads them:
//   header   {"record":"natbpf","version":1,"command":"clash",...}
//   raw      {"t":"bpf"|"nftrace"|"nflog","ns":...,"hex":...}: events as received
//   plan     {"t":"plan","summary":...,"hooks":[...],"own_netns":...}: first, what attached
//   start    {"t":"start","ns":...}: the job starts counting (clash, drops)
//   tick     {"t":"tick","ns":...,"final":bool}: a job's periodic work (clash)
//   answer   {"t":"answer","q":...,"key":...,"value":...}: what the world answered
//   end      {"t":"end",...}: how the run ended
// and, for trace, its own setup / ruleset / set / symbol / ifname / flush
// records.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
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
  void start(uint64_t ns) { write({{"t", "start"}, {"ns", ns}}); }
  void tick(uint64_t ns, bool final) { write({{"t", "tick"}, {"ns", ns}, {"final", final}}); }
  void answer(const char* question, const nlohmann::json& key, const nlohmann::json& value) {
    write({{"t", "answer"}, {"q", question}, {"key", key}, {"value", value}});
  }
  // Any other record: {"t": "...", ...}.
  void write(const nlohmann::json& record);

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file_;
};

// Reads a recording record by record, in bounded memory.
class RecordingReader {
 public:
  // Opens path and checks its header; a file that is not a recording (or of
  // a newer version) is an error naming the fix.
  static Result<RecordingReader> open(const std::string& path);
  const nlohmann::json& header() const { return header_; }
  std::string command() const;  // "trace", "clash", "drops"; "" when absent or not a string
  // The next record (an object), nullopt at the end, an error on a line that is not one.
  Result<std::optional<nlohmann::json>> next();

 private:
  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  nlohmann::json header_;
  size_t line_ = 1;
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
