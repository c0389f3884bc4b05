#include "cli/job.h"

#include <malloc.h>
#include <unistd.h>

#include "cli/commands.h"
#include "probe/drop_reasons.h"
#include "probe/features.h"

namespace natbpf {

Job::Job(JobSpec spec)
    : spec_(std::move(spec)), live_world_([this] {
        return SourceCounts{sources_.lost(), sources_.malformed(), sources_.rejected()};
      }) {}

Job::~Job() {
  sources_.stop();
  if (!spec_.ready_file.empty() && armed_) unlink(spec_.ready_file.c_str());
  if (recorder_ && !armed_) {
    recording_world_.reset();
    recorder_.reset();
    unlink(spec_.record.c_str());  // a run that never began leaves no recording
  }
}

Status Job::prepare() {
  if (auto st = check_privileges_and_btf(); !st) return st;
  if (!spec_.record.empty()) {
    // Before anything is created in the kernel: a bad path leaves nothing behind.
    spec_.record_header["kernel"] = KernelFeatures().kernel_release();
    auto w = RecordingWriter::create(spec_.record, spec_.record_header);
    if (!w) return w.error();
    recorder_.emplace(std::move(*w));
  }
  auto ino = enter_netns(spec_.netns);
  if (!ino) return ino.error();
  netns_inode_ = *ino;
  KernelFeatures features;
  PlanRequest req = spec_.request;
  apply_attach_env(req);
  req.hooks = spec_.hooks;
  auto plan = make_plan(features, req);
  if (!plan) return plan.error();
  plan_ = std::move(*plan);
  remember_drop_reasons(drop_reasons_from(features.vmlinux_btf()));  // no second parse of vmlinux BTF
  features.release_btf();
  auto signals = StopSignals::install();
  if (!signals) return signals.error();
  signals_.emplace(std::move(*signals));
  if (spec_.preload_symbols) live_world_.preload(spec_.preload_drop_reasons);
  if (recorder_) {
    recorder_->write({{"t", "plan"}, {"summary", plan_.summary()}, {"hooks", attached_hooks()},
                      {"own_netns", live_world_.own_netns()}});
    recording_world_.emplace(live_world_, *recorder_);
  }
  return Ok{};
}

std::set<std::string> Job::attached_hooks() const {
  std::set<std::string> hooks;
  for (const auto& c : plan_.choices)
    if (c.variant) hooks.insert(c.hook);
  return hooks;
}

Status Job::add_bpf(const BpfFilter& filter, TimedSink sink, bool required, int read_rank, const std::string& kind,
                    const std::set<std::string>& only) {
  Plan plan = plan_;
  if (!only.empty())
    std::erase_if(plan.choices, [&only](const HookChoice& c) { return !only.count(c.hook); });
  auto bpf = std::make_unique<BpfSource>(
      plan, filter, [this, sink = std::move(sink)](BpfEvent&& ev) { sink(std::move(ev), last_recv_ns_); }, kind);
  bpf->set_tap([this, kind](std::span<const uint8_t> bytes, uint64_t ns) {
    last_recv_ns_ = ns;
    if (recorder_) recorder_->raw(kind.c_str(), bytes, ns);
  });
  return sources_.add(std::move(bpf), required, read_rank);
}

uint64_t Job::start_now() {
  uint64_t now = monotonic_ns();
  if (recorder_) recorder_->start(now);
  return now;
}

uint64_t Job::tick_now(bool final) {
  uint64_t now = monotonic_ns();
  if (recorder_) recorder_->tick(now, final);
  return now;
}

Status Job::run(LoopLimits limits, std::vector<Watch> extra) {
  // Setup parsed kernel BTF more than once (the plan, then libbpf per BPF
  // object) and freed it: give those pages back before the long run.
  malloc_trim(0);
  if (auto st = write_ready_file(spec_.ready_file); !st) return st;
  armed_ = true;
  auto watches = sources_.watches();
  watches.insert(watches.end(), extra.begin(), extra.end());
  auto stopped = run_loop(watches, *signals_, limits);
  if (!stopped) return stopped.error();
  return sources_.read_all();  // late events, before the final tick
}

Result<uint8_t> parse_proto(const std::string& text, bool allow_icmp) {
  if (text.empty()) return uint8_t{0};
  if (text == "tcp") return uint8_t{6};
  if (text == "udp") return uint8_t{17};
  if (text == "icmp" && allow_icmp) return uint8_t{1};
  return usage_error("unknown --proto '" + text + "'", allow_icmp ? "use tcp, udp or icmp" : "use tcp or udp");
}

}  // namespace natbpf
