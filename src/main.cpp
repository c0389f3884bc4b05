// natbpf: why did this connection through Linux NAT fail?
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
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
