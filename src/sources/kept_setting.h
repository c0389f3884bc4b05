#pragma once

#include <string>

#include "util/result.h"

namespace natbpf {

// A sysctl natbpf changes for a run: the user's value is kept in
// /run/natbpf/<name>.<netns inode>.<sysctl basename> until restore(), so a
// killed run's value is given back by the next run that sets it.
class KeptSetting {
 public:
  KeptSetting(std::string sysctl, std::string state_name);
  Status set(const std::string& value);
  void restore();
  static std::string read_sysctl(const std::string& path);

 private:
  std::string sysctl_, state_, old_;
  bool changed_ = false;
};

}  // namespace natbpf
