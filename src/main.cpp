// natbpf: why did this connection through Linux NAT fail?
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/version.h"

int main(int argc, char** argv) {
  CLI::App app{"natbpf: explain netfilter, conntrack and NAT drops, one packet at a time"};
  app.set_version_flag("--version", natbpf::version_line());
  app.require_subcommand(1);
  natbpf::CommandContext ctx;
  natbpf::register_probe_command(app, ctx);
  natbpf::register_trace_command(app, ctx);
  natbpf::register_clash_command(app, ctx);
  natbpf::register_drops_command(app, ctx);
  natbpf::register_explain_command(app, ctx);
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
