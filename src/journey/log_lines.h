// The lines of a saved text log (kernel log, ulogd2 JSON, `nft monitor
// trace`), read and parsed on a thread of their own while the caller groups,
// explains and renders the records of earlier lines: on a machine with two
// cores reading and parsing cost a third of `explain --log`. Records come in
// batches through a bounded queue, so memory stays bounded whatever the size
// of the log.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "sources/log_record.h"
#include "sources/nft_monitor_text.h"

namespace natbpf {

enum class LogFormat { Auto, Kernel, NftMonitor, Pcap, Ulogd };

// One line that parsed: an nf_log record (kernel log, ulogd2) or an nft
// monitor trace event (its packet and conntrack lines joined to it).
struct ParsedLine {
  uint64_t line = 0;  // 1-based number in the file
  std::string where;  // "kern.log:12": the file's base name and the line
  // Of a LogRecord: the same number for the same prefix text, never reused
  // for another (numbered here, so that the caller need not hash the text).
  uint64_t prefix_id = 0;
  std::variant<LogRecord, NftMonitorTextEvent> what;
};

class ParsedLines {
 public:
  // format: Kernel, Ulogd or NftMonitor; name: the file as lines name it.
  // Starts reading when the file opens.
  ParsedLines(const std::string& path, LogFormat format, std::string name);
  ~ParsedLines();
  ParsedLines(const ParsedLines&) = delete;
  ParsedLines& operator=(const ParsedLines&) = delete;

  bool ok() const { return ok_; }
  // The next lines that parsed, in file order; false at the end of the file.
  // The span stays valid until the next call; its records may be moved from.
  bool next(std::vector<ParsedLine>*& batch, size_t& count);

  // Valid once next() returned false.
  uint64_t lines() const { return lines_; }
  uint64_t malformed() const { return malformed_; }  // trace lines that could not be read

 private:
  struct Batch {
    std::vector<ParsedLine> items;  // kept between uses: their strings' storage is reused
    size_t count = 0;
  };
  static constexpr size_t kBatchLines = 512;
  static constexpr size_t kMaxPrefixes = 4096;  // numbered prefixes remembered
  static constexpr size_t kBatches = 4;  // in the queue, besides the one each side holds

  void produce(std::FILE* in, LogFormat format, const std::string& name);
  bool hand_over(Batch*& b);  // false: the reader stops early
  Batch* take_free();
  uint64_t prefix_id(const std::string& prefix);  // the reader's thread only

  std::unordered_map<std::string, uint64_t> prefix_ids_;
  uint64_t next_prefix_id_ = 1;
  bool ok_ = false;
  uint64_t lines_ = 0, malformed_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch*> full_, free_;
  std::vector<Batch> storage_;
  Batch* held_ = nullptr;  // the caller's current batch
  bool done_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace natbpf
