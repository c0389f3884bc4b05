#include "sources/kept_setting.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>

#include "util/libbpf_quiet.h"
#include "util/runtime.h"
#include "util/text.h"

namespace natbpf {

namespace {

constexpr const char* kStateDir = "/run/natbpf";

uint64_t own_netns_inode() {
  struct stat st {};
  return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

std::optional<std::string> read_state(const std::string& path) {
  std::ifstream in(path);
  std::string value;
  if (!in || !std::getline(in, value) || value.empty() || value.size() > 64) return std::nullopt;
  return value;
}

bool write_state(const std::string& path, const std::string& value) {
  if (mkdir(kStateDir, 0700) != 0 && errno != EEXIST) return false;
  std::ofstream out(path, std::ios::trunc);
  out << value << "\n";
  out.close();
  return bool(out);
}

void remove_state(const std::string& path) {
  unlink(path.c_str());
  rmdir(kStateDir);  // only when no other namespace's state is kept
}

// The network namespaces alive now: every process's, and those kept by a
// bind mount (ip netns add) without one.
std::set<uint64_t> live_netns_inodes() {
  std::set<uint64_t> live;
  std::error_code ec;
  struct stat st {};
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec))
    if (std::isdigit(static_cast<unsigned char>(e.path().filename().string()[0])) &&
        stat((e.path() / "ns/net").c_str(), &st) == 0)
      live.insert(st.st_ino);
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec))
    if (stat(e.path().c_str(), &st) == 0) live.insert(st.st_ino);
  return live;
}

// A killed run's state for a namespace that is gone went with its sysctls;
// left here, a new namespace given the same inode number would get a value
// that was never its own. So it is removed before anything is kept.
void prune_dead_states() {
  std::error_code ec;
  std::vector<std::filesystem::path> states;
  for (const auto& e : std::filesystem::directory_iterator(kStateDir, ec)) states.push_back(e.path());
  if (states.empty()) return;
  std::set<uint64_t> live = live_netns_inodes();
  for (const auto& path : states) {
    std::string name = path.filename().string();  // <name>.<netns inode>.<sysctl basename>
    size_t a = name.find('.'), b = name.find('.', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    auto inode = parse_uint(name.substr(a + 1, b - a - 1));
    if (inode && !live.count(*inode)) remove_state(path.string());
  }
}

}  // namespace

KeptSetting::KeptSetting(std::string sysctl, std::string state_name)
    : sysctl_(std::move(sysctl)),
      state_(std::string(kStateDir) + "/" + state_name + "." + std::to_string(own_netns_inode()) + "." +
             sysctl_.substr(sysctl_.rfind('/') + 1)) {}

std::string KeptSetting::read_sysctl(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  std::getline(in, v);
  return v;
}

Status KeptSetting::set(const std::string& value) {
  // A state file left here is a killed run's (NFLOG group 0 is ours, so no
  // other natbpf runs in this namespace): it holds the user's value, the
  // sysctl itself still reads natbpf's.
  prune_dead_states();
  if (auto kept = read_state(state_)) {
    old_ = *kept;
  } else {
    std::ifstream probe(sysctl_);
    if (!probe) return Error{"cannot read " + sysctl_ + " (" + errno_name(errno) + ")", ""};
    old_ = read_sysctl(sysctl_);
    if (old_ == value) return Ok{};
    if (!write_state(state_, old_))
      return Error{"cannot keep " + sysctl_ + " in " + state_ + " (" + errno_name(errno) + ")", "is /run writable?"};
  }
  changed_ = true;
  std::ofstream out(sysctl_);
  out << value;
  out.close();
  if (!out) return Error{"cannot set " + sysctl_ + " to " + value, ""};
  return Ok{};
}

void KeptSetting::restore() {
  if (!changed_) return;
  changed_ = false;
  std::ofstream out(sysctl_);
  out << old_;
  out.close();
  if (out) remove_state(state_);
}

}  // namespace natbpf
