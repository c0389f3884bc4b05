#include "journey/log_lines.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "sources/kernel_log.h"
#include "sources/nflog_file.h"

namespace natbpf {
namespace {

// Reads a file line by line through a large buffer (logs run to gigabytes),
// as std::getline splits it (a last line without a newline is a line), but
// with memchr over the buffer: getline cost a tenth of `explain --log`. A
// line is a view into the buffer, copied only when it spans two reads.
class LineReader {
 public:
  explicit LineReader(std::FILE* in) : in_(in, &std::fclose) { buf_.resize(1 << 20); }
  // The view is valid until the next call.
  bool next(std::string_view& line) {
    spill_.clear();
    bool any = false, whole = false;
    for (;;) {
      if (pos_ == end_ && !fill()) break;
      any = true;
      const char* from = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(from, '\n', end_ - pos_));
      if (nl && spill_.empty()) {
        line = std::string_view(from, nl - from);
        whole = true;
      } else {
        spill_.append(from, nl ? nl : buf_.data() + end_);
      }
      pos_ = nl ? nl - buf_.data() + 1 : end_;
      if (nl) break;
    }
    if (!whole) line = spill_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return any;
  }

 private:
  bool fill() {
    pos_ = 0;
    end_ = std::fread(buf_.data(), 1, buf_.size(), in_.get());
    return end_ > 0;
  }
  std::unique_ptr<std::FILE, decltype(&std::fclose)> in_;
  std::vector<char> buf_;
  std::string spill_;  // a line that spans two reads
  size_t pos_ = 0, end_ = 0;
};

}  // namespace

ParsedLines::ParsedLines(const std::string& path, LogFormat format, std::string name) : storage_(kBatches + 2) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) return;
  ok_ = true;
  for (auto& b : storage_) free_.push_back(&b);
  thread_ = std::thread([this, in, format, name = std::move(name)] { produce(in, format, name); });
}

ParsedLines::~ParsedLines() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ParsedLines::Batch* ParsedLines::take_free() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty() || stop_; });
  if (stop_) return nullptr;
  Batch* b = free_.front();
  free_.pop_front();
  b->count = 0;
  return b;
}

bool ParsedLines::hand_over(Batch*& b) {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return full_.size() < kBatches || stop_; });
    if (stop_) return false;
    full_.push_back(b);
  }
  cv_.notify_all();
  b = take_free();
  return b != nullptr;
}

uint64_t ParsedLines::prefix_id(const std::string& prefix) {
  if (auto it = prefix_ids_.find(prefix); it != prefix_ids_.end()) return it->second;
  if (prefix_ids_.size() >= kMaxPrefixes) prefix_ids_.clear();  // their numbers are not given again
  return prefix_ids_.emplace(prefix, next_prefix_id_++).first->second;
}

// The reader's thread: lines parsed into batches until the end of the file
// (or until the caller is gone).
void ParsedLines::produce(std::FILE* file, LogFormat format, const std::string& name) {
  LineReader in(file);
  NftMonitorTextParser nft;
  std::string_view line;
  uint64_t lines = 0, malformed = 0;
  Batch* b = take_free();
  while (b && in.next(line)) {
    lines++;
    if (b->count == b->items.size()) b->items.emplace_back();
    ParsedLine& p = b->items[b->count];
    bool parsed = false;
    if (format == LogFormat::Kernel) {
      // Parsed into the record this slot held before: its strings' storage reused.
      if (!std::holds_alternative<LogRecord>(p.what)) p.what = LogRecord{};
      if (parse_kernel_log_line(line, lines, std::get<LogRecord>(p.what))) parsed = true;
      else if (line.find("TRACE: ") != std::string::npos) malformed++;
    } else if (format == LogFormat::Ulogd) {
      if (auto r = parse_ulogd_json_line(line, lines)) p.what = std::move(*r), parsed = true;
      else if (!line.empty()) malformed++;
    } else if (auto e = nft.feed(line)) {
      p.what = std::move(*e), parsed = true;
    }
    if (!parsed) continue;
    if (auto* r = std::get_if<LogRecord>(&p.what)) p.prefix_id = prefix_id(r->prefix);
    p.line = lines;
    p.where.assign(name);
    p.where += ':';
    p.where += std::to_string(lines);
    if (++b->count == kBatchLines && !hand_over(b)) return;
  }
  if (format == LogFormat::NftMonitor) malformed += nft.malformed();
  {
    std::lock_guard lock(mu_);
    if (b && b->count) full_.push_back(b);
    lines_ = lines;
    malformed_ = malformed;
    done_ = true;
  }
  cv_.notify_all();
}

bool ParsedLines::next(std::vector<ParsedLine>*& batch, size_t& count) {
  {
    std::unique_lock lock(mu_);
    if (held_) free_.push_back(held_);
    held_ = nullptr;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !full_.empty() || done_; });
    if (full_.empty()) return false;
    held_ = full_.front();
    full_.pop_front();
  }
  cv_.notify_all();
  batch = &held_->items;
  count = held_->count;
  return true;
}

}  // namespace natbpf
