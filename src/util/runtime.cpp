#include "util/runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "util/libbpf_quiet.h"

extern char** environ;

namespace natbpf {

uint32_t current_netns_inode() {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) != 0) return 0;
  return static_cast<uint32_t>(st.st_ino);
}

Result<uint32_t> enter_netns(const std::string& spec) {
  if (spec.empty()) return current_netns_inode();
  std::string path;
  bool numeric = std::all_of(spec.begin(), spec.end(), [](unsigned char c) { return std::isdigit(c); });
  if (spec.find('/') != std::string::npos) path = spec;
  else if (numeric) path = "/proc/" + spec + "/ns/net";
  else path = "/run/netns/" + spec;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return usage_error("unknown network namespace '" + spec + "' (" + path + ": " + errno_name(errno) + ")",
                       "give a name from `ip netns list`, a PID, or a /proc/PID/ns/net path");
  if (setns(fd, CLONE_NEWNET) != 0) {
    int e = errno;
    close(fd);
    return Error{"cannot enter network namespace '" + spec + "' (" + errno_name(e) + ")", "run it as root", 2};
  }
  close(fd);
  return current_netns_inode();
}

Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  size_t pos = 0;
  double value;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    return usage_error("bad duration '" + text + "'", "use e.g. 10s, 500ms, 2m");
  }
  std::string unit = text.substr(pos);
  double ms;
  if (unit.empty() || unit == "s") ms = value * 1000;
  else if (unit == "ms") ms = value;
  else if (unit == "m") ms = value * 60000;
  else if (unit == "h") ms = value * 3600000;
  else return usage_error("bad duration unit in '" + text + "'", "use ms, s, m or h, e.g. 10s");
  // NaN fails every comparison: only a finite, positive value of at most
  // a year is a duration (and converts to milliseconds without overflow).
  if (!(value > 0) || !(ms <= 365.0 * 24 * 3600 * 1000))
    return usage_error("duration must be positive and at most a year, got '" + text + "'", "use e.g. 10s");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + ts.tv_nsec;
}

Result<StopSignals> StopSignals::install() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Error{"sigprocmask: " + errno_name(errno), ""};
  StopSignals s;
  s.fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.fd_ < 0) return Error{"signalfd: " + errno_name(errno), ""};
  return s;
}

StopSignals::StopSignals(StopSignals&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
StopSignals::~StopSignals() {
  if (fd_ >= 0) close(fd_);
}

int StopSignals::take() {
  signalfd_siginfo info{};
  if (read(fd_, &info, sizeof(info)) != sizeof(info)) return 0;
  return static_cast<int>(info.ssi_signo);
}

Result<int> run_loop(std::vector<Watch>& watches, StopSignals& signals, const LoopLimits& limits) {
  uint64_t start = monotonic_ns();
  uint64_t last_tick = start;
  std::vector<pollfd> fds;
  fds.push_back({signals.fd(), POLLIN, 0});
  for (const auto& w : watches) fds.push_back({w.fd, POLLIN, 0});
  for (;;) {
    if (limits.done && limits.done()) return 0;
    uint64_t now = monotonic_ns();
    if (limits.duration && now - start >= uint64_t(limits.duration->count()) * 1000000ULL) return 0;
    int timeout = static_cast<int>(limits.tick_interval.count());
    int n = poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) return Error{"poll: " + errno_name(errno), ""};
    if (n > 0 && (fds[0].revents & POLLIN)) {
      if (int sig = signals.take()) return sig;
    }
    for (size_t i = 1; n > 0 && i < fds.size(); i++) {
      if (!(fds[i].revents & (POLLIN | POLLERR))) continue;
      if (auto st = watches[i - 1].on_readable(); !st) return st.error();
    }
    now = monotonic_ns();
    if (limits.on_tick && now - last_tick >= uint64_t(limits.tick_interval.count()) * 1000000ULL) {
      limits.on_tick();
      last_tick = now;
    }
  }
}

namespace {

// Reads fd to its end; a read error ends the output where it happened.
std::string read_to_end(int fd) {
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

// posix_spawnp rather than fork+exec: it reports a program that cannot run
// as an error (so status -1, not 127), and nothing but the pipe's write end
// leaks into the child (the pipe is O_CLOEXEC; dup2 onto 1 clears the flag).
std::pair<int, std::string> run_program(const std::vector<std::string>& argv) {
  if (argv.empty()) return {-1, ""};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {-1, ""};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return {-1, ""};
  }
  std::string out = read_to_end(pipefd[0]);
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::move(out)};  // not a copy: a save is 14 MB
}

Status write_ready_file(const std::string& path) {
  if (path.empty()) return Ok{};
  std::string tmp = path + ".tmp";
  FILE* f = fopen(tmp.c_str(), "w");
  if (!f) return usage_error("cannot write --ready-file " + path + " (" + errno_name(errno) + ")",
                             "give a writable path");
  fprintf(f, "%d\n", getpid());
  fclose(f);
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return usage_error("cannot write --ready-file " + path + " (" + errno_name(errno) + ")", "give a writable path");
  return Ok{};
}

}  // namespace natbpf
