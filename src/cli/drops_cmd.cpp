// natbpf drops: a bounded run that ranks every netfilter drop on the host by
// its cause, across network namespaces. The counting lives in
// explain/drops (DropsRun); this file wires flags, the job and the renderer.
#include <iostream>

#include "cli/commands.h"
#include "cli/job.h"
#include "explain/drops.h"
#include "output/drops_render.h"

namespace natbpf {
namespace {

struct DropsOptions {
  std::string duration = "10s", ready_file, record, netns;
  bool json = false;
  size_t top = 10;
  PlanRequest request;
};

Status run_drops(const DropsOptions& o) {
  auto duration = parse_duration(o.duration);
  if (!duration) return duration.error();
  if (o.top == 0) return usage_error("--top must be at least 1", "e.g. --top 10");
  JobSpec spec;
  spec.hooks = {"kfree_skb", "nf_hook_slow", "__nf_conntrack_confirm"};
  spec.request = o.request;
  spec.ready_file = o.ready_file;
  spec.record = o.record;
  spec.record_header = {{"command", "drops"}};
  spec.netns = o.netns;
  spec.preload_drop_reasons = true;
  Job job(std::move(spec));
  if (auto st = job.prepare(); !st) return st;
  uint32_t only = o.netns.empty() ? 0 : job.netns_inode();
  if (auto* rec = job.recorder()) rec->write({{"t", "drops"}, {"only_netns", only}});
  if (!job.plan().has("kfree_skb"))
    return Error{"cannot see drops: skb:kfree_skb does not attach here", "run `natbpf probe` for the reason"};
  DropsRun run(job.world(), only);
  BpfFilter all;
  all.netns = only;
  all.batch_wakeups = true;  // a drop storm must not wake us per packet; read every tick
  auto to_run = [&run](BpfEvent&& ev, uint64_t) { run.add(ev); };
  if (auto st = job.add_bpf(all, to_run, /*required=*/true); !st) return st;
  job.start_now();
  run.start();  // counters from the moment the drops are watched
  if (!o.json)
    std::cerr << "natbpf: counting netfilter drops for " << o.duration << "; " << job.plan().summary() << "\n";
  uint64_t start = monotonic_ns();
  LoopLimits limits;
  limits.duration = *duration;
  limits.on_tick = [&] { (void)job.sources().read_all(); };
  if (auto st = job.run(limits); !st) return st;
  double seconds = double(monotonic_ns() - start) / 1e9;
  uint64_t lost = job.sources().lost();
  if (auto* rec = job.recorder()) rec->write(drops_end_record(seconds, lost));
  print_drops(run.finish(seconds, lost, job.plan().summary()), o.top, o.json);
  return Ok{};
}

}  // namespace

nlohmann::json drops_end_record(double seconds, uint64_t lost) {
  return {{"t", "end"}, {"seconds", seconds}, {"lost", lost}};
}

void print_drops(const DropsReport& report, size_t top, bool json) {
  std::cout << (json ? drops_to_json_lines(report, top) : drops_to_text(report, top)) << std::flush;
}

void register_drops_command(CLI::App& app, CommandContext& ctx) {
  static DropsOptions o;
  auto* cmd = app.add_subcommand("drops", "bounded run: rank every netfilter drop on the host by its cause");
  cmd->add_option("--duration", o.duration, "how long to count (default 10s)");
  cmd->add_option("--top", o.top, "show this many causes (default 10)");
  cmd->add_option("--netns", o.netns, "only this network namespace: name (ip netns), PID or path (default: all)");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per cause, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once counting has started");
  cmd->add_option("--record", o.record, "also write the raw inputs to this file, for `natbpf explain FILE`");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() { ctx.status = run_drops(o); });
}

}  // namespace natbpf
