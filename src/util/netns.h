// Network namespaces by inode, for commands that watch every namespace
// (--netns all) and must read conntrack, sysctls or the ruleset of the
// namespace an event came from. BPF records carry the namespace inode; this
// finds a handle for it under /run/netns or /proc/PID/ns/net.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace natbpf {

class NetnsIndex {
 public:
  // Runs fn inside the namespace with this inode and returns to the
  // current one. False (fn not run) when no handle for it can be found,
  // e.g. the namespace is gone.
  bool run_in(uint32_t inode, const std::function<void()>& fn);

 private:
  std::string path_of(uint32_t inode);  // "" when unknown after a rescan
  void scan();

  std::map<uint32_t, std::string> paths_;
  uint64_t last_scan_ns_ = 0;
};

}  // namespace natbpf
