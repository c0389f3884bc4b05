#include "cli/cli.h"

#include "cli/version.h"

namespace natbpf {

void build_cli(CLI::App& app, CommandContext& ctx) {
  app.name("natbpf");
  app.description("natbpf: explain netfilter, conntrack and NAT drops, one packet at a time");
  app.set_version_flag("--version", version_line());
  app.require_subcommand(1);
  register_probe_command(app, ctx);
  register_trace_command(app, ctx);
  register_clash_command(app, ctx);
  register_drops_command(app, ctx);
  register_explain_command(app, ctx);
}

}  // namespace natbpf
