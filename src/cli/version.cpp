#include "cli/version.h"

// Generated at every build by cmake/git_revision.cmake (target
// natbpf_git_revision); rewritten only when the revision changes, so a new
// commit rebuilds this file and relinks, and nothing else.
#include "git_revision.h"

namespace natbpf {

const char* git_revision() { return NATBPF_GIT_REVISION; }

std::string version_line() { return std::string("natbpf ") + NATBPF_VERSION + " (git " + git_revision() + ")"; }

}  // namespace natbpf
