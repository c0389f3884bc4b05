// Process-level plumbing shared by the long-running commands (trace, clash,
// drops): entering a network namespace, stopping on signals, bounded runs,
// the readiness file, monotonic time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/result.h"

namespace natbpf {

// Moves the calling process into the namespace named by spec: a name under
// /run/netns, a PID, or a path. Returns the namespace inode (the BPF filter
// key). An empty spec stays put and returns the current namespace's inode.
Result<uint32_t> enter_netns(const std::string& spec);
uint32_t current_netns_inode();

// Parses "10s", "500ms", "2m", "1h" or a plain number of seconds.
Result<std::chrono::milliseconds> parse_duration(const std::string& text);

uint64_t monotonic_ns();

// Blocks SIGINT/SIGTERM/SIGHUP and exposes them as a readable fd, so the
// event loop stops cleanly and every destructor (nft tables, links) runs.
class StopSignals {
 public:
  static Result<StopSignals> install();
  StopSignals(StopSignals&&) noexcept;
  StopSignals& operator=(StopSignals&&) = delete;
  ~StopSignals();
  int fd() const { return fd_; }
  // Reads the pending signal; returns its number or 0.
  int take();

 private:
  StopSignals() = default;
  int fd_ = -1;
};

// One readable fd and what to do when it is readable.
struct Watch {
  int fd;
  std::function<Status()> on_readable;
};

struct LoopLimits {
  std::optional<std::chrono::milliseconds> duration;
  std::function<bool()> done;                 // e.g. enough packets seen
  std::function<void()> on_tick;              // every tick_interval, for flushing
  std::chrono::milliseconds tick_interval{100};
};

// Polls the watches until a stop signal, the duration or done(). Returns the
// signal number that stopped it (0 otherwise).
Result<int> run_loop(std::vector<Watch>& watches, StopSignals& signals, const LoopLimits& limits);

// Runs a program (PATH lookup, no shell, stderr discarded) and returns its
// exit status and standard output; status -1 if it could not run or was
// killed by a signal.
std::pair<int, std::string> run_program(const std::vector<std::string>& argv);

// Writes the readiness file (atomically) once every hook is attached; the
// scenario tests start traffic only then.
Status write_ready_file(const std::string& path);

}  // namespace natbpf
