// Throughput of `natbpf explain --log`, in log lines per second: one kernel
// log TRACE line, one `nft monitor trace` line, and the whole LogReplay
// pipeline (reading, grouping into packets, journeys, explanations and
// rendering) over a generated log of many packets. The target is 1 million
// lines per second. Results go to docs/benchmarks.md (bench/logs.sh).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <streambuf>
#include <string>
#include <vector>

#include "journey/log_replay.h"
#include "output/trace_render.h"
#include "sources/kernel_log.h"
#include "sources/nft_monitor_text.h"

namespace natbpf {
namespace {

const std::string kFixtures = NATBPF_FIXTURES;
const std::string kKernelLog = kFixtures + "/logs/seed003-kern.log";
const std::string kKernelRuleset = kFixtures + "/logs/seed003-iptables-save.txt";
const std::string kNftLog = kFixtures + "/nft_monitor_trace.txt";
const std::string kNftRuleset = kFixtures + "/nft_monitor_trace.ruleset.txt";
// Lines of each generated log: many packets, so that grouping, the open
// journeys and the repeat table are exercised as in a long capture.
constexpr size_t kGeneratedLines = 200'000;

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "bench_logs: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// The line with the number after `key` (e.g. "SPT=", "ip id ") replaced by `value`.
std::string with_number(const std::string& line, const std::string& key, uint64_t value, int base = 10) {
  size_t at = line.find(key);
  if (at == std::string::npos) return line;
  size_t from = at + key.size(), to = from;
  while (to < line.size() && std::isxdigit(static_cast<unsigned char>(line[to]))) to++;
  char num[24];
  std::snprintf(num, sizeof(num), base == 16 ? "%08llx" : "%llu", static_cast<unsigned long long>(value));
  return line.substr(0, from) + num + line.substr(to);
}

uint64_t number_after(const std::string& line, const std::string& key, int base = 10) {
  size_t at = line.find(key);
  return at == std::string::npos ? 0 : std::strtoull(line.c_str() + at + key.size(), nullptr, base);
}

// The seed's two packets over and over, each copy with its own IP ids,
// source ports and sequence numbers, 500 copies (1000 packets) per second
// of syslog time: "Jan  1 HH:MM:SS host kernel: TRACE: ...".
std::vector<std::string> kernel_log(size_t lines) {
  auto seed = read_lines(kKernelLog);
  std::vector<std::string> out;
  for (uint64_t copy = 0; out.size() < lines; copy++) {
    uint64_t sec = 21 * 3600 + copy / 500;
    char stamp[32];
    std::snprintf(stamp, sizeof(stamp), "Jan  1 %02llu:%02llu:%02llu", static_cast<unsigned long long>(sec / 3600 % 24),
                  static_cast<unsigned long long>(sec / 60 % 60), static_cast<unsigned long long>(sec % 60));
    for (const auto& l : seed) {
      if (out.size() == lines) break;
      size_t host = l.find(" cos74 ");
      std::string line = stamp + l.substr(host);
      line = with_number(line, " ID=", (number_after(line, " ID=") + copy) & 0xffff);
      line = with_number(line, " SPT=", 1024 + (number_after(line, " SPT=") + copy) % 64000);
      line = with_number(line, " SEQ=", (number_after(line, " SEQ=") + copy * 7919) & 0xffffffff);
      out.push_back(std::move(line));
    }
  }
  return out;
}

// The fixture's packets over and over with new trace ids, IP ids and source
// ports; nft prints no time, so LogReplay's clock advances per line.
std::vector<std::string> nft_log(size_t lines) {
  auto seed = read_lines(kNftLog);
  std::vector<std::string> out;
  for (uint64_t copy = 0; out.size() < lines; copy++) {
    for (const auto& l : seed) {
      if (out.size() == lines) break;
      uint64_t id = number_after(l, "trace id ", 16);
      std::string line = with_number(l, "trace id ", (id ^ (copy * 2654435761u)) & 0xffffffff, 16);
      line = with_number(line, "ip id ", (number_after(line, "ip id ") + copy) & 0xffff);
      line = with_number(line, "tcp sport ", 1024 + (number_after(line, "tcp sport ") + copy) % 64000);
      out.push_back(std::move(line));
    }
  }
  return out;
}

// A generated log in a temporary file (LogReplay reads files), removed at exit.
class TempLog {
 public:
  explicit TempLog(const std::vector<std::string>& lines) {
    char name[] = "/tmp/natbpf-bench-log.XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0) std::exit(1);
    close(fd);
    path_ = name;
    std::ofstream out(path_, std::ios::binary);
    for (const auto& l : lines) out << l << '\n';
  }
  ~TempLog() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Swallows what the renderers print (std::cout) while a benchmark runs.
class NullBuf : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

class CoutToNull {
 public:
  CoutToNull() : old_(std::cout.rdbuf(&null_)) {}
  ~CoutToNull() { std::cout.rdbuf(old_); }

 private:
  NullBuf null_;
  std::streambuf* old_;
};

void BM_KernelLogLine(benchmark::State& state) {
  auto lines = kernel_log(1000);
  size_t i = 0;
  for (auto _ : state) {
    auto r = parse_kernel_log_line(lines[i], i + 1);
    benchmark::DoNotOptimize(r);
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KernelLogLine);

void BM_NftMonitorLine(benchmark::State& state) {
  auto lines = nft_log(1000);
  NftMonitorTextParser parser;
  size_t i = 0;
  for (auto _ : state) {
    auto ev = parser.feed(lines[i]);
    benchmark::DoNotOptimize(ev);
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NftMonitorLine);

// The whole of `natbpf explain --log FILE --ruleset FILE [--json]`;
// state.range(0): 1 for the JSON renderer, 0 for text.
void explain_log(benchmark::State& state, const std::string& log, const std::string& ruleset, size_t lines) {
  CoutToNull quiet;
  for (auto _ : state) {
    LogReplayOptions o;
    o.logs = {log};
    o.rulesets = {ruleset};
    LogReplay replay(std::move(o));
    auto st = replay.run(state.range(0) ? make_json_renderer() : make_text_renderer(false), true);
    if (!st) state.SkipWithError("explain --log failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * lines));
  state.SetLabel(state.range(0) ? "json" : "text");
}

void BM_ExplainLogKernel(benchmark::State& state) {
  static TempLog log(kernel_log(kGeneratedLines));
  explain_log(state, log.path(), kKernelRuleset, kGeneratedLines);
}
// Real time, not this thread's CPU time: LogReplay reads and renders on
// threads of its own (journey/log_lines.h, journey/story_writer.h).
BENCHMARK(BM_ExplainLogKernel)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ExplainLogNft(benchmark::State& state) {
  static TempLog log(nft_log(kGeneratedLines));
  explain_log(state, log.path(), kNftRuleset, kGeneratedLines);
}
BENCHMARK(BM_ExplainLogNft)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace natbpf
