#include <iostream>

#include "cli/commands.h"
#include "output/probe_render.h"
#include "probe/probe_report.h"

namespace natbpf {

void register_probe_command(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("probe", "report what this kernel allows natbpf to attach, and the attach plan");
  static bool json = false;
  static PlanRequest request;
  cmd->add_flag("--json", json, "print one JSON object");
  add_attach_flags(cmd, request);
  cmd->callback([&ctx]() {
    if (auto s = check_privileges_and_btf(); !s) {
      ctx.status = s;
      return;
    }
    apply_attach_env(request);
    for (const auto& spec : hook_specs()) request.hooks.push_back(spec.name);
    KernelFeatures features;
    auto report = gather_probe_report(features, request);
    if (json) std::cout << probe_to_json(report).dump() << "\n";
    else std::cout << probe_to_text(report);
  });
}

}  // namespace natbpf
