// natbpf drops: ranks every drop on the host by its cause, across network
// namespaces: netfilter's with their rules, the rest with the kernel's drop
// reason. The kernel counts (sources/bpf, count_drops); attribution lives in
// explain/drops (DropsRun); this file wires flags, the job and the renderer.
#include <algorithm>
#include <iostream>

#include "cli/commands.h"
#include "cli/job.h"
#include "explain/drops.h"
#include "journey/clash_join.h"
#include "output/drops_render.h"
#include "output/metrics.h"
#include "output/metrics_server.h"

namespace natbpf {
namespace {

constexpr const char* kDefaultDuration = "10s";

struct DropsOptions {
  std::string duration, interval, ready_file, record, netns, prometheus;
  bool json = false, clash = false;
  size_t top = 10, max_series = kDefaultMaxDropSeries;
  PlanRequest request;
};

// The options as the run uses them, or the usage error.
struct DropsTiming {
  std::optional<std::chrono::milliseconds> duration;  // none: until stopped (an exporter)
  std::optional<uint64_t> interval_ns;
};

Result<DropsTiming> check_options(const DropsOptions& o) {
  DropsTiming t;
  // An exporter counts until it is stopped, unless told how long.
  if (!o.duration.empty() || o.prometheus.empty()) {
    auto d = parse_duration(o.duration.empty() ? kDefaultDuration : o.duration);
    if (!d) return d.error();
    t.duration = *d;
  }
  if (!o.prometheus.empty()) {
    if (auto listen = parse_listen_address(o.prometheus); !listen) return listen.error();
    if (o.max_series < 2) return usage_error("--metrics-max-series must be at least 2", "e.g. --metrics-max-series 1000");
  } else if (o.clash) {
    return usage_error("--clash counts conntrack clashes for the metrics", "use it with --prometheus ADDR:PORT");
  }
  if (o.top == 0) return usage_error("--top must be at least 1", "e.g. --top 10");
  if (!o.interval.empty()) {
    auto interval = parse_duration(o.interval);
    if (!interval) return interval.error();
    if (*interval < std::chrono::milliseconds(100))
      return usage_error("--interval must be at least 100ms", "e.g. --interval 5s");
    t.interval_ns = uint64_t(interval->count()) * 1'000'000ULL;
  }
  return t;
}

JobSpec drops_job_spec(const DropsOptions& o) {
  JobSpec spec;
  spec.hooks = {kDropsHooks.begin(), kDropsHooks.end()};
  for (const char* h : kClashHooks)
    if (o.clash && std::find(spec.hooks.begin(), spec.hooks.end(), h) == spec.hooks.end()) spec.hooks.push_back(h);
  spec.request = o.request;
  spec.ready_file = o.ready_file;
  spec.record = o.record;
  spec.record_header = {{"command", "drops"}};
  spec.netns = o.netns;
  spec.preload_drop_reasons = true;
  return spec;
}

// drops --clash: natbpf clash's join in a second BPF session (its records
// are per event, not counted), its reports counted in the metrics.
Status add_clash_session(Job& job, uint32_t only, DropMetrics& metrics, std::optional<ClashJoin>& clash) {
  metrics.enable_clashes();
  clash.emplace(drops_clash_options(job.attached_hooks()), job.world(), clash_metrics(metrics));
  BpfFilter f;
  f.netns = only;
  f.batch_wakeups = true;
  f.clash_only = true;
  auto to_join = [&clash](BpfEvent&& ev, uint64_t ns) { clash->on_event(std::move(ev), ns); };
  return job.add_bpf(f, to_join, /*required=*/true, 0, "bpf-clash", {kClashHooks.begin(), kClashHooks.end()});
}

// A scrape wakes the loop: answered now, not on the next tick.
std::vector<Watch> scrape_wakeup(MetricsServer* server, std::function<void()> refresh) {
  if (!server) return {};
  return {{server->wake_fd(), [server, refresh = std::move(refresh)]() -> Status {
             server->consume_wake();
             if (server->wanted()) refresh();
             return Ok{};
           }}};
}

Status run_drops(const DropsOptions& o) {
  auto timing = check_options(o);
  if (!timing) return timing.error();
  // Plain copies: lambdas below use them (clang 14 cannot capture structured bindings).
  std::optional<std::chrono::milliseconds> duration = timing->duration;
  std::optional<uint64_t> interval_ns = timing->interval_ns;
  // Listening in natbpf's own namespace, before --netns moves it, and
  // failing (a port in use) before anything is attached.
  DropMetrics metrics(build_info(), o.max_series);
  std::unique_ptr<MetricsServer> server;
  if (!o.prometheus.empty()) {
    auto started = MetricsServer::start(o.prometheus, metrics.render());
    if (!started) return started.error();
    server = std::move(*started);
  }
  Job job(drops_job_spec(o));
  if (auto st = job.prepare(); !st) return st;
  uint32_t only = o.netns.empty() ? 0 : job.netns_inode();
  if (auto* rec = job.recorder()) rec->write({{"t", "drops"}, {"only_netns", only}, {"clash", o.clash}});
  if (!job.plan().has("kfree_skb"))
    return Error{"cannot see drops: skb:kfree_skb does not attach here", "run `natbpf probe` for the reason"};
  DropsRun run(job.world(), only);
  BpfFilter all;
  all.netns = only;
  all.batch_wakeups = true;  // examples only, read every tick
  all.count_drops = true;
  auto to_run = [&run](BpfEvent&& ev, uint64_t) { run.add(ev); };
  if (auto st = job.add_bpf(all, to_run, /*required=*/true, 0, "bpf", {kDropsHooks.begin(), kDropsHooks.end()}); !st)
    return st;
  auto* bpf = dynamic_cast<BpfSource*>(job.sources().find("bpf"));
  if (!bpf) return Error{"the BPF source did not start", "run `natbpf probe` for the reason"};
  std::optional<ClashJoin> clash;
  if (o.clash)
    if (auto st = add_clash_session(job, only, metrics, clash); !st) return st;
  // The counts the run is measured from, then the rule counters: recorded
  // in this order, a replay asks start's questions after its answers.
  if (auto st = bpf->emit_drop_counts(); !st) return st;
  uint64_t started = job.start_now();
  run.start();
  if (clash && !clash->start(started))
    return Error{"cannot read the conntrack statistics over ctnetlink", "is nf_conntrack available? run `natbpf probe`"};
  if (!o.json)
    std::cerr << "natbpf: counting drops " << (duration ? "for " + (o.duration.empty() ? std::string(kDefaultDuration) : o.duration) : "until stopped")
              << (interval_ns ? ", a report every " + o.interval : std::string())
              << (server ? ", metrics on http://" + o.prometheus + "/metrics" : std::string()) << "; "
              << job.plan().summary() << "\n";
  uint64_t start = monotonic_ns(), last_report = start;
  // Each report covers the drops since the previous one; recorded first so
  // a replay makes the same reports. A scrape's report only refreshes the
  // metrics; the others are printed too.
  auto report = [&](uint64_t now, const char* record_kind) -> Status {
    if (auto st = job.sources().read_all(); !st) return st;
    if (auto st = bpf->emit_drop_counts(); !st) return st;
    double seconds = double(now - last_report) / 1e9;
    uint64_t lost = job.sources().lost();
    if (auto* rec = job.recorder()) rec->write(drops_report_record(record_kind, seconds, lost));
    DropsReport r = run.report(seconds, lost, job.plan().summary());
    metrics.add(r);
    if (server) server->publish(metrics.render());
    if (std::string_view(record_kind) != "scrape") print_drops(r, o.top, o.json);
    last_report = now;
    return Ok{};
  };
  LoopLimits limits;
  limits.duration = duration;
  limits.on_tick = [&] {
    (void)job.sources().read_all();
    if (clash) clash->tick(job.tick_now(false));
    uint64_t now = monotonic_ns();
    if (interval_ns && now - last_report >= *interval_ns) (void)report(now, "report");
    else if (server && server->wanted()) (void)report(now, "scrape");
  };
  if (auto st = job.run(limits, scrape_wakeup(server.get(), [&] { (void)report(monotonic_ns(), "scrape"); })); !st)
    return st;
  if (clash) clash->tick(job.tick_now(true), /*final=*/true);
  return report(monotonic_ns(), "end");
}

}  // namespace

ClashJoinOptions drops_clash_options(const std::set<std::string>& attached) {
  std::set<std::string> hooks;
  for (const char* h : kClashHooks)
    if (attached.count(h)) hooks.insert(h);
  // No summaries are printed: a long interval keeps the join from making them.
  return ClashJoinOptions{0, 3600'000'000'000ULL, hooks};
}

ClashOutput clash_metrics(DropMetrics& metrics) {
  ClashOutput out;
  out.report = [&metrics](const ClashReport& r, uint64_t) { metrics.add_clash(r); };
  out.summary = [](const ClashSummary&, bool) {};
  return out;
}

nlohmann::json drops_report_record(const char* kind, double seconds, uint64_t lost) {
  return {{"t", kind}, {"seconds", seconds}, {"lost", lost}};
}

void print_drops(const DropsReport& report, size_t top, bool json) {
  std::cout << (json ? drops_to_json_lines(report, top) : drops_to_text(report, top)) << std::flush;
}

void register_drops_command(CLI::App& app, CommandContext& ctx) {
  static DropsOptions o;
  auto* cmd = app.add_subcommand("drops", "rank every drop on the host by its cause: netfilter's rules, and what is not the firewall");
  cmd->add_option("--duration", o.duration, "how long to count (default 10s; with --prometheus, until SIGINT/SIGTERM)")
      ->type_name("DURATION");
  cmd->add_option("--interval", o.interval, "also print a report every D (each covers the drops since the previous one)")
      ->type_name("DURATION");
  cmd->add_option("--top", o.top, "show this many causes (default 10)")->type_name("N");
  cmd->add_option("--netns", o.netns, "only this network namespace: name (ip netns), PID or path (default: all)")
      ->type_name("NETNS");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per cause, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once counting has started")->type_name("FILE");
  cmd->add_option("--record", o.record, "also write the raw inputs to this file, for `natbpf explain FILE`")
      ->type_name("FILE");
  cmd->add_option("--prometheus", o.prometheus,
                  "serve the counts as Prometheus metrics on http://ADDR:PORT/metrics (e.g. 0.0.0.0:9477) until stopped")
      ->type_name("ADDR:PORT");
  cmd->add_flag("--clash", o.clash,
                "with --prometheus: also explain conntrack clashes (as natbpf clash) and count them in natbpf_clashes_total");
  cmd->add_option("--metrics-max-series", o.max_series,
                  "at most this many natbpf_drops_total series; the rest are added to one overflow series (default 1000)")
      ->type_name("N");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() { ctx.status = run_drops(o); });
}

}  // namespace natbpf
