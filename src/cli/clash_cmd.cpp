// natbpf clash: conntrack confirm clashes, one report per losing packet.
// The join lives in journey/clash_join; this file wires flags, the job and
// the renderers.
#include <iostream>

#include "cli/commands.h"
#include "cli/job.h"
#include "journey/clash_join.h"
#include "output/clash_render.h"

namespace natbpf {
namespace {

struct ClashOptions {
  std::string netns, proto, duration, interval = "10s", ready_file, record;
  uint64_t count = 0;
  bool json = false;
  PlanRequest request;
};

Status run_clash(const ClashOptions& opt) {
  auto l4 = parse_proto(opt.proto, /*allow_icmp=*/false);
  if (!l4) return l4.error();
  LoopLimits limits;
  if (!opt.duration.empty()) {
    auto d = parse_duration(opt.duration);
    if (!d) return d.error();
    limits.duration = *d;
  }
  auto interval = parse_duration(opt.interval);
  if (!interval) return interval.error();
  if (interval->count() <= 0) return usage_error("--interval must be positive", "use e.g. 10s");

  JobSpec spec;
  spec.netns = opt.netns == "all" ? "" : opt.netns;
  spec.hooks = {kClashHooks.begin(), kClashHooks.end()};
  spec.request = opt.request;
  spec.ready_file = opt.ready_file;
  spec.record = opt.record;
  spec.record_header = clash_record_header(opt.count, uint64_t(interval->count()) * 1000000ULL);
  Job job(std::move(spec));
  if (auto st = job.prepare(); !st) return st;

  ClashJoinOptions jo{opt.count, uint64_t(interval->count()) * 1000000ULL, job.attached_hooks()};
  ClashJoin join(jo, job.world(), clash_printer(opt.json));
  BpfFilter filter;
  filter.l4proto = *l4;
  filter.batch_wakeups = true;
  filter.clash_only = true;
  if (opt.netns != "all") filter.netns = job.netns_inode();
  auto to_join = [&join](BpfEvent&& ev, uint64_t ns) { join.on_event(std::move(ev), ns); };
  if (auto st = job.add_bpf(filter, to_join, /*required=*/true); !st) return st;
  std::cerr << "natbpf clash: " << job.plan().summary() << "\n";
  if (!join.start(job.start_now()))
    return Error{"cannot read the conntrack statistics over ctnetlink", "is nf_conntrack available? run `natbpf probe`"};

  limits.done = [&] { return join.done(); };
  limits.on_tick = [&] {
    (void)job.sources().read_all();  // wake-ups are batched: records are read on the tick too
    join.tick(job.tick_now(false));
  };
  if (auto st = job.run(limits); !st) return st;
  join.tick(job.tick_now(true), /*final=*/true);
  return Ok{};
}

}  // namespace

nlohmann::json clash_record_header(uint64_t count, uint64_t interval_ns) {
  return {{"command", "clash"}, {"count", count}, {"interval_ns", interval_ns}};
}

ClashOutput clash_printer(bool json) {
  ClashOutput out;
  out.report = [json](const ClashReport& r, uint64_t number) {
    if (json) std::cout << clash_to_json(r).dump() << "\n";
    else std::cout << clash_to_text(r, number) << "\n";
    std::cout.flush();
  };
  out.summary = [json](const ClashSummary& s, bool final) {
    if (json) std::cout << summary_to_json(s, final).dump() << "\n";
    else std::cout << summary_to_text(s, final) << "\n";
    std::cout.flush();
  };
  return out;
}

void register_clash_command(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("clash", "explain conntrack insert clashes: SNAT range exhaustion, races, stale entries");
  static ClashOptions opt;
  cmd->add_option("--netns", opt.netns, "network namespace: name, PID, path, or all")->type_name("NETNS");
  cmd->add_option("--proto", opt.proto, "only tcp or udp")->type_name("tcp|udp");
  cmd->add_option("--duration", opt.duration, "stop after this long (e.g. 10s)")->type_name("DURATION");
  cmd->add_option("--count", opt.count, "stop after N clash reports")->type_name("N");
  cmd->add_option("--interval", opt.interval, "summary interval (default 10s)")->type_name("DURATION");
  cmd->add_flag("--json", opt.json, "one JSON object per line");
  cmd->add_option("--ready-file", opt.ready_file, "create this file once every hook is attached")->type_name("FILE");
  cmd->add_option("--record", opt.record, "also write the raw inputs to this file, for `natbpf explain FILE`")->type_name("FILE");
  add_attach_flags(cmd, opt.request);
  cmd->callback([&ctx]() { ctx.status = run_clash(opt); });
}

}  // namespace natbpf
