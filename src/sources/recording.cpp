#include "sources/recording.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "util/libbpf_quiet.h"

namespace natbpf {

Result<RecordingWriter> RecordingWriter::create(const std::string& path, nlohmann::json header) {
  RecordingWriter w;
  // 0600: a recording holds packet headers and the ruleset.
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) w.file_.reset(fdopen(fd, "w"));
  if (fd >= 0 && !w.file_) close(fd);
  if (!w.file_)
    return usage_error("cannot write the recording " + path + " (" + errno_name(errno) + ")",
                       "give a writable path to --record");
  header["record"] = "natbpf";
  header["version"] = kRecordingVersion;
  w.write(header);
  return w;
}

void RecordingWriter::raw(const char* kind, std::span<const uint8_t> bytes, uint64_t recv_ns) {
  write({{"t", kind}, {"ns", recv_ns}, {"hex", to_hex(bytes)}});
}

void RecordingWriter::write(const nlohmann::json& record) {
  std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_.get());
  std::fflush(file_.get());  // a recording cut by SIGKILL keeps what came before
}

Result<Recording> read_recording(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return usage_error("cannot read " + path + " (" + errno_name(errno) + ")",
                       "give a file written by `natbpf trace --record FILE`");
  Recording r;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    n++;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return usage_error(path + " line " + std::to_string(n) + " is not JSON",
                         "give a file written by `natbpf trace --record FILE`");
    if (n == 1) {
      if (j.value("record", "") != "natbpf")
        return usage_error(path + " is not a natbpf recording", "record one with `natbpf trace --record FILE`");
      if (j.value("version", 0) > kRecordingVersion)
        return usage_error(path + " is a version " + std::to_string(j.value("version", 0)) + " recording",
                           "explain it with a natbpf that reads that version");
      r.header = std::move(j);
      continue;
    }
    r.records.push_back(std::move(j));
  }
  if (r.header.is_null())
    return usage_error(path + " is empty", "record one with `natbpf trace --record FILE`");
  return r;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  if (hex.size() % 2) return {};
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

}  // namespace natbpf
