#include "world/recording.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
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

namespace {

Error not_a_recording(const std::string& what) {
  return usage_error(what, "give a file written by `natbpf trace|clash|drops --record FILE`");
}

// natbpf writes integers everywhere but in "seconds" (a non-negative
// duration). nlohmann's get<unsigned>() casts a float without a range check,
// undefined for 1e30, so any other float (or a negative or infinite
// "seconds") becomes null: reading it then fails like any value of the wrong
// type, and the record is counted as malformed. Iterative: a line may nest deeply.
void null_stray_floats(nlohmann::json& record) {
  std::vector<nlohmann::json*> todo{&record};
  while (!todo.empty()) {
    nlohmann::json* j = todo.back();
    todo.pop_back();
    if (j->is_object()) {
      for (auto it = j->begin(); it != j->end(); ++it) {
        if (it->is_number_float()) {
          double v = it->get<double>();
          if (it.key() != "seconds" || !std::isfinite(v) || v < 0) *it = nullptr;
        } else if (it->is_structured()) {
          todo.push_back(&*it);
        }
      }
    } else if (j->is_array()) {
      for (auto& v : *j) {
        if (v.is_number_float()) v = nullptr;
        else if (v.is_structured()) todo.push_back(&v);
      }
    }
  }
}

nlohmann::json parse_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  null_stray_floats(j);
  return j;
}

}  // namespace

Result<RecordingReader> RecordingReader::open(const std::string& path) {
  RecordingReader r;
  r.path_ = path;
  r.in_ = std::make_unique<std::ifstream>(path);
  if (!*r.in_) return not_a_recording("cannot read " + path + " (" + errno_name(errno) + ")");
  std::string line;
  if (!std::getline(*r.in_, line) || line.empty()) return not_a_recording(path + " is empty");
  auto j = parse_line(line);
  auto record = j.is_object() ? j.find("record") : j.end();
  if (!j.is_object() || record == j.end() || *record != "natbpf") return not_a_recording(path + " is not a natbpf recording");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_unsigned())
    return not_a_recording(path + " has no recording version");
  if (version->get<uint64_t>() > kRecordingVersion)
    return usage_error(path + " is a version " + std::to_string(version->get<uint64_t>()) + " recording",
                       "explain it with a natbpf that reads that version");
  r.header_ = std::move(j);
  return r;
}

std::string RecordingReader::command() const {
  auto it = header_.find("command");
  return it != header_.end() && it->is_string() ? it->get<std::string>() : "";
}

Result<std::optional<nlohmann::json>> RecordingReader::next() {
  std::string line;
  while (std::getline(*in_, line)) {
    line_++;
    if (line.empty()) continue;
    auto j = parse_line(line);
    if (j.is_discarded() || !j.is_object()) return not_a_recording(path_ + " line " + std::to_string(line_) + " is not JSON");
    return std::optional<nlohmann::json>(std::move(j));
  }
  return std::optional<nlohmann::json>();
}

Result<Recording> read_recording(const std::string& path) {
  auto reader = RecordingReader::open(path);
  if (!reader) return reader.error();
  Recording r;
  r.header = reader->header();
  while (true) {
    auto j = reader->next();
    if (!j) return j.error();
    if (!*j) break;
    r.records.push_back(std::move(**j));
  }
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
