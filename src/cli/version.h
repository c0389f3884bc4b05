// What `natbpf --version` prints: the release and the commit it was built
// from, so a bug report names the exact code.
#pragma once

#include <string>

namespace natbpf {

// "natbpf 0.1.0 (git 5fd4e80)", "(git 5fd4e80-dirty)" when the tree had
// uncommitted changes, "(git unknown)" when built outside a git checkout.
std::string version_line();
// The revision alone, as in version_line().
const char* git_revision();

}  // namespace natbpf
