#include "util/netns.h"

#include <dirent.h>
#include <cstdlib>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fd.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

uint32_t inode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint32_t>(st.st_ino);
}

}  // namespace

void NetnsIndex::scan() {
  paths_.clear();
  auto add_dir = [&](const std::string& dir, bool pids) {
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (pids && name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string path = pids ? dir + "/" + name + "/ns/net" : dir + "/" + name;
      if (uint32_t ino = inode_of(path)) paths_.emplace(ino, path);  // the first handle found is kept
    }
    closedir(d);
  };
  add_dir("/run/netns", false);
  add_dir("/proc", true);
  last_scan_ns_ = monotonic_ns();
}

std::string NetnsIndex::path_of(uint32_t inode) {
  auto it = paths_.find(inode);
  // A cached path may now name another namespace (a PID reused): checked.
  if (it != paths_.end() && inode_of(it->second) == inode) return it->second;
  if (monotonic_ns() - last_scan_ns_ < 200'000'000ULL && it == paths_.end()) return "";
  scan();
  it = paths_.find(inode);
  return it == paths_.end() ? "" : it->second;
}

bool NetnsIndex::run_in(uint32_t inode, const std::function<void()>& fn) {
  if (inode == 0 || inode == current_netns_inode()) {
    fn();
    return true;
  }
  std::string path = path_of(inode);
  if (path.empty()) return false;
  Fd home(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  Fd there(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (home.get() < 0 || there.get() < 0) return false;
  struct stat st {};
  if (fstat(there.get(), &st) != 0 || static_cast<uint32_t>(st.st_ino) != inode) return false;
  if (setns(there.get(), CLONE_NEWNET) != 0) return false;
  fn();
  // Going home cannot fail for a root process that came from there; if it
  // did, every later lookup would read the wrong namespace, so stop hard.
  if (setns(home.get(), CLONE_NEWNET) != 0) std::abort();
  return true;
}

}  // namespace natbpf
