// Each command registers its CLI11 subcommand; its callback stores a Status
// that main() turns into an exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <set>

#include <nlohmann/json.hpp>

#include "explain/drops.h"
#include "journey/clash_join.h"
#include "probe/attach_plan.h"
#include "output/metrics.h"
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

// The version and git revision natbpf was built from (natbpf_build_info).
BuildInfo build_info();

// Shared by every command that loads BPF: root/capabilities and BTF checks.
Status check_privileges_and_btf();
// --no-fentry / --no-kprobe, also settable with NATBPF_NO_FENTRY=1 and NATBPF_NO_KPROBE=1.
void add_attach_flags(CLI::App* cmd, PlanRequest& request);
void apply_attach_env(PlanRequest& request);

// What a live run and `natbpf explain` of its recording share: the header a
// replay needs, and the printers, so both print the same.
nlohmann::json clash_record_header(uint64_t count, uint64_t interval_ns);
ClashOutput clash_printer(bool json);
// "report" (an --interval report) or "end" (the last one): what a replay prints.
nlohmann::json drops_report_record(const char* kind, double seconds, uint64_t lost);
void print_drops(const DropsReport& report, size_t top, bool json);
// The hooks of natbpf drops, and of natbpf clash (also drops --clash's).
inline constexpr std::array<const char*, 3> kDropsHooks = {"kfree_skb", "nf_hook_slow", "__nf_conntrack_confirm"};
inline constexpr std::array<const char*, 6> kClashHooks = {"kfree_skb",         "__nf_conntrack_confirm",
                                                           "nf_ct_resolve_clash", "nf_nat_setup_info",
                                                           "nf_conntrack_tuple_taken", "nf_conntrack_find_get"};
// drops --clash: the join's options (the clash hooks that attached) and its
// output, counted in the metrics; a replay uses the same.
ClashJoinOptions drops_clash_options(const std::set<std::string>& attached);
ClashOutput clash_metrics(DropMetrics& metrics);

// `natbpf explain FILE`: replays a trace, clash or drops recording and prints
// what the live run printed; a damaged recording is an error or counted, never
// an abort (tests/fuzz/fuzz_recording.cpp holds it to that).
Status explain_recording(const std::string& file, bool json, size_t top);

}  // namespace natbpf
