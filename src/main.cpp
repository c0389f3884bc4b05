// natbpf: why did this connection through Linux NAT fail?
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // Blocks of 1 MB and more (a ruleset's save text: 14 MB at 100000 rules,
  // doubled as it is read) mapped on their own and unmapped when freed.
  // glibc's default raises that threshold to the largest block freed, so
  // later ones stayed in the heap: peak RSS 40 or 46 MB from run to run.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CLI::App app;
  natbpf::CommandContext ctx;
  natbpf::build_cli(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "natbpf: " << e.what() << " (see natbpf --help)\n";
    return 2;
  }
  if (!ctx.status) {
    std::cerr << "natbpf: " << ctx.status.error().to_string() << "\n";
    return ctx.status.error().exit_code;
  }
  return 0;
}
