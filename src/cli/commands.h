// Each command registers its CLI11 subcommand; its callback stores a Status
// that main() turns into an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include "probe/attach_plan.h"
#include "util/result.h"

namespace natbpf {

struct CommandContext {
  Status status = Ok{};
};

void register_probe_command(CLI::App& app, CommandContext& ctx);
void register_trace_command(CLI::App& app, CommandContext& ctx);
void register_clash_command(CLI::App& app, CommandContext& ctx);
void register_drops_command(CLI::App& app, CommandContext& ctx);
void register_explain_command(CLI::App& app, CommandContext& ctx);

// Shared by every command that loads BPF: root/capabilities and BTF checks.
Status check_privileges_and_btf();
// --no-fentry / --no-kprobe, also settable with NATBPF_NO_FENTRY=1 and NATBPF_NO_KPROBE=1.
void add_attach_flags(CLI::App* cmd, PlanRequest& request);
void apply_attach_env(PlanRequest& request);

}  // namespace natbpf
