// The command that would make a packet pass, given only where the evidence
// determines it (a missing set element, a range too small for the
// connections seen, a sysctl), never as a guess.
#pragma once

#include <string>

namespace natbpf {

struct Fix {
  std::string command;  // runs as is inside `netns`
  std::string why;
  std::string netns;    // the namespace as the user named it; "" for natbpf's own (the host's)
  bool host = false;    // a host-wide setting (nf_conntrack_max): runs in the host's namespace
};

}  // namespace natbpf
