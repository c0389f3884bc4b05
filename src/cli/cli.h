// The whole command line, defined once: main() parses with it, and
// natbpf-clidoc (src/clidoc.cpp) writes the man page and the shell
// completions from it (cli/clidoc.h).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace natbpf {

// Names the App "natbpf", sets its description, --version and every
// subcommand; their callbacks store their Status in ctx.
//
// An option's type_name says what its value is, for --help and for the
// completions: FILE (a path), NETNS (a network namespace), IFNAME (an
// interface), "a|b|c" (one of these words; the command still checks the
// value itself, with its own error message), anything else a free value.
void build_cli(CLI::App& app, CommandContext& ctx);

}  // namespace natbpf
