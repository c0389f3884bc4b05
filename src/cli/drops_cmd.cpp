// natbpf drops: ranks every drop on the host by its cause, across network
// namespaces: netfilter's with their rules, the rest with the kernel's drop
// reason. The kernel counts (sources/bpf, count_drops); attribution lives in
// explain/drops (DropsRun); this file wires flags, the job and the renderer.
#include <iostream>

#include "cli/commands.h"
#include "cli/job.h"
#include "explain/drops.h"
#include "output/drops_render.h"

namespace natbpf {
namespace {

struct DropsOptions {
  std::string duration = "10s", interval, ready_file, record, netns;
  bool json = false;
  size_t top = 10;
  PlanRequest request;
};

Status run_drops(const DropsOptions& o) {
  auto duration = parse_duration(o.duration);
  if (!duration) return duration.error();
  if (o.top == 0) return usage_error("--top must be at least 1", "e.g. --top 10");
  std::optional<uint64_t> interval_ns;
  if (!o.interval.empty()) {
    auto interval = parse_duration(o.interval);
    if (!interval) return interval.error();
    if (*interval < std::chrono::milliseconds(100))
      return usage_error("--interval must be at least 100ms", "e.g. --interval 5s");
    interval_ns = uint64_t(interval->count()) * 1'000'000ULL;
  }
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
  all.batch_wakeups = true;  // examples only, read every tick
  all.count_drops = true;
  auto to_run = [&run](BpfEvent&& ev, uint64_t) { run.add(ev); };
  if (auto st = job.add_bpf(all, to_run, /*required=*/true); !st) return st;
  auto* bpf = dynamic_cast<BpfSource*>(job.sources().find("bpf"));
  if (!bpf) return Error{"the BPF source did not start", "run `natbpf probe` for the reason"};
  // The counts the run is measured from, then the rule counters: recorded
  // in this order, a replay asks start's questions after its answers.
  if (auto st = bpf->emit_drop_counts(); !st) return st;
  job.start_now();
  run.start();
  if (!o.json)
    std::cerr << "natbpf: counting drops for " << o.duration
              << (interval_ns ? ", a report every " + o.interval : std::string()) << "; " << job.plan().summary()
              << "\n";
  uint64_t start = monotonic_ns(), last_report = start;
  // Each report covers the drops since the previous one; recorded first so
  // a replay prints the same reports.
  auto report = [&](uint64_t now, const char* record_kind) -> Status {
    if (auto st = job.sources().read_all(); !st) return st;
    if (auto st = bpf->emit_drop_counts(); !st) return st;
    double seconds = double(now - last_report) / 1e9;
    uint64_t lost = job.sources().lost();
    if (auto* rec = job.recorder()) rec->write(drops_report_record(record_kind, seconds, lost));
    print_drops(run.report(seconds, lost, job.plan().summary()), o.top, o.json);
    last_report = now;
    return Ok{};
  };
  LoopLimits limits;
  limits.duration = *duration;
  limits.on_tick = [&] {
    (void)job.sources().read_all();
    uint64_t now = monotonic_ns();
    if (interval_ns && now - last_report >= *interval_ns) (void)report(now, "report");
  };
  if (auto st = job.run(limits); !st) return st;
  return report(monotonic_ns(), "end");
  return Ok{};
}

}  // namespace

nlohmann::json drops_report_record(const char* kind, double seconds, uint64_t lost) {
  return {{"t", kind}, {"seconds", seconds}, {"lost", lost}};
}

void print_drops(const DropsReport& report, size_t top, bool json) {
  std::cout << (json ? drops_to_json_lines(report, top) : drops_to_text(report, top)) << std::flush;
}

void register_drops_command(CLI::App& app, CommandContext& ctx) {
  static DropsOptions o;
  auto* cmd = app.add_subcommand("drops", "rank every drop on the host by its cause: netfilter's rules, and what is not the firewall");
  cmd->add_option("--duration", o.duration, "how long to count (default 10s)")->type_name("DURATION");
  cmd->add_option("--interval", o.interval, "also print a report every D (each covers the drops since the previous one)")->type_name("DURATION");
  cmd->add_option("--top", o.top, "show this many causes (default 10)")->type_name("N");
  cmd->add_option("--netns", o.netns, "only this network namespace: name (ip netns), PID or path (default: all)")->type_name("NETNS");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per cause, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once counting has started")->type_name("FILE");
  cmd->add_option("--record", o.record, "also write the raw inputs to this file, for `natbpf explain FILE`")->type_name("FILE");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() { ctx.status = run_drops(o); });
}

}  // namespace natbpf
