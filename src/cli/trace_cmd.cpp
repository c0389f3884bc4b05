// natbpf trace: one story per packet of the flow the user names. The
// stories are journey/trace_stories; what they ask the system is
// world/trace_world; this file wires flags, the job and the sources.
#include <malloc.h>
#include <net/if.h>
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/job.h"
#include "journey/trace_stories.h"
#include "output/trace_render.h"
#include "sources/legacy_trace.h"
#include "sources/nftrace.h"
#include "sources/trace_table.h"
#include "world/trace_world.h"

namespace natbpf {
namespace {

struct TraceOptions {
  int dport = -1, sport = -1;  // -1: not given
  std::string saddr, daddr, proto, iif, netns, rate = "10/second", duration, ready_file, record;
  uint64_t count = 0;
  bool json = false, no_hold = false;
  std::vector<std::string> hooks;
  PlanRequest request;
};

Result<std::optional<Addr>> parse_addr(const std::string& text, const char* flag) {
  if (text.empty()) return std::optional<Addr>{};
  auto a = Addr::parse(text);
  if (!a) return usage_error(std::string("malformed address for ") + flag + ": '" + text + "'",
                             "give an IPv4 or IPv6 address, e.g. 10.1.2.3");
  return std::optional<Addr>(*a);
}

Status validate_port(int port, const char* flag) {
  if (port == -1) return Ok{};
  if (port <= 0 || port > 65535)
    return usage_error(std::string(flag) + " " + std::to_string(port) + " is out of range", "give a port from 1 to 65535");
  return Ok{};
}

Result<TraceMatch> parse_match(const TraceOptions& o) {
  TraceMatch match;
  auto proto = parse_proto(o.proto, /*allow_icmp=*/true);
  if (!proto) return proto.error();
  if (*proto) match.l4proto = *proto;
  for (auto [port, flag] : {std::pair{o.dport, "--dport"}, std::pair{o.sport, "--sport"}})
    if (auto st = validate_port(port, flag); !st) return st.error();
  match.dport = static_cast<uint16_t>(std::max(o.dport, 0));
  match.sport = static_cast<uint16_t>(std::max(o.sport, 0));
  auto saddr = parse_addr(o.saddr, "--saddr");
  if (!saddr) return saddr.error();
  auto daddr = parse_addr(o.daddr, "--daddr");
  if (!daddr) return daddr.error();
  // One packet is IPv4 or IPv6: a rule asking for both never matches.
  if (*saddr && *daddr && (*saddr)->family != (*daddr)->family)
    return usage_error("--saddr " + o.saddr + " and --daddr " + o.daddr + " are of different families",
                       "give both as IPv4 addresses or both as IPv6 addresses");
  match.saddr = *saddr;
  match.daddr = *daddr;
  auto rate = parse_rate(o.rate);
  if (!rate) return rate.error();
  match.rate = *rate;
  match.iif = o.iif;
  return match;
}

// Everything the trace loop owns; destroyed (tables deleted, links
// detached, a recording of a run that never began removed) on every exit path.
class TraceRun {
 public:
  explicit TraceRun(const TraceOptions& o) : opt_(o) {}

  Status run() {
    // One malloc arena: the ruleset worker and the kallsyms reader build
    // big results that the loop keeps, and what they free is then reused by
    // the loop instead of staying in their own arenas (7 MB of peak RSS on
    // 20000 iptables-legacy rules).
    mallopt(M_ARENA_MAX, 1);
    auto match = parse_match(opt_);
    if (!match) return match.error();
    LoopLimits limits;
    if (!opt_.duration.empty()) {
      auto d = parse_duration(opt_.duration);
      if (!d) return d.error();
      limits.duration = *d;
    }
    JobSpec spec;
    spec.netns = opt_.netns;
    spec.hooks = {"kfree_skb",         "nf_hook_slow",       "__nf_conntrack_confirm",
                  "nf_nat_setup_info", "__nft_trace_packet", "nf_l4proto_log_invalid"};
    spec.request = opt_.request;
    for (const auto& h : opt_.hooks) spec.request.required.insert(h);
    spec.ready_file = opt_.ready_file;
    spec.record = opt_.record;
    spec.preload_symbols = false;  // the trace world reads its own
    spec.record_header = {{"command", "trace"},
                          {"match", trace_match_expression(*match)},
                          {"netns", opt_.netns},
                          {"count", opt_.count}};
    job_.emplace(std::move(spec));
    if (auto st = job_->prepare(); !st) return st;
    if (!opt_.iif.empty() && if_nametoindex(opt_.iif.c_str()) == 0)
      return usage_error("unknown interface --iif " + opt_.iif + (opt_.netns.empty() ? "" : " in netns " + opt_.netns),
                         "list them with `ip link`" + std::string(opt_.netns.empty() ? "" : " -n " + opt_.netns));
    if (auto st = add_sources(*match); !st) return st;
    announce(*match);
    limits.on_tick = [this] {
      world_->poll();
      flush(false);
      quiet_disarm();
    };
    limits.done = [this] { return stories_->done() || table_->failure(); };
    // The sources are drained once before the loop: a trace message read
    // later was sent after this, even if the loop stalls before its first tick.
    flush(false);
    Status ran = job_->run(limits);
    flush(true);
    finish();
    if (auto failed = table_->failure(); failed && ran) return *failed;
    return ran;
  }

 private:
  // Sources: BPF adds what nftrace cannot see but is not needed for a
  // story; the nftables trace stream is; iptables-legacy TRACE only runs
  // where legacy tables have rules. Trace and NFLOG events open the
  // stories and BPF records attach to them, so when all have events
  // waiting they are read in that order (ranks 0, 1, 2; TRACE lines are
  // parsed after the nftables trace messages read after them, and not
  // before the first snapshot is in; BPF records wait for their stories
  // anyway); BPF starts first,
  // its filter following the user's flow also after DNAT (the programs
  // match the conntrack entry's original tuple too).
  Status add_sources(const TraceMatch& match) {
    auto to_stories = [this](auto&& ev) { stories_->add(std::move(ev)); };
    auto traced = [this](NftTraceEvent&& ev) {
      last_traced_ns_ = monotonic_ns();
      stories_->add(std::move(ev));
    };
    BpfFilter filter{match.l4proto.value_or(0), match.sport, match.dport, match.saddr, match.daddr,
                     job_->netns_inode(), true};
    // Stories are told of the packets the marking rule traced: a drop of any
    // other skb is rejected on its nf_trace bit before its headers are read.
    filter.traced_only = true;
    auto bpf_sink = [this](BpfEvent&& ev, uint64_t) { stories_->add(std::move(ev)); };
    if (auto st = job_->add_bpf(filter, bpf_sink, false, /*read_rank=*/2); !st) return st;
    auto world = LiveTraceWorld::create(job_->recorder());
    if (!world) return world.error();
    world_.emplace(std::move(*world));
    auto nftrace = std::make_unique<NftraceSource>(traced);
    NftraceSource* nftrace_source = nftrace.get();
    tap(*nftrace, "nftrace");
    if (auto st = job_->sources().add(std::move(nftrace), true, /*read_rank=*/0); !st) return st;
    auto table = TraceTable::create(match, !opt_.no_hold);
    if (!table) return table.error();
    table_.emplace(std::move(*table));
    // While nothing is traced the programs have nothing to see (they follow
    // nf_trace), and fexit/kprobes on nf_hook_slow cost every packet of the
    // host: attached only while tracing is on. The job outlives the table.
    if (auto* bpf = static_cast<BpfSource*>(job_->sources().find("bpf")); bpf && table_->hold() != TraceTable::Hold::None) {
      table_->set_arming([bpf] { return bpf->attach(); }, [bpf] { bpf->detach(); });
      bpf_arms_ = true;
    }
    world_->set_own_changes([this](uint32_t g) { return table_->follow_own_changes(g); });
    // Conntrack's INVALID reasons: read by the kprobe where it attached;
    // else its log, routed to NFLOG for the run.
    std::function<void(BpfEvent&&)> invalid_log;
    if (!job_->plan().enables("ct_invalid_kprobe")) invalid_log = [this](BpfEvent&& ev) { stories_->add(std::move(ev)); };
    auto legacy = std::make_unique<LegacyTraceSource>(
        match,
        [this](uint8_t f, const std::string& t, const std::string& c) {
          return world_->installed_ruleset().chain(family_name(f), t, c);
        },
        to_stories, invalid_log);
    tap(*legacy, "nflog");
    legacy_name_ = legacy->name();
    if (auto st = job_->sources().add(std::move(legacy), false, /*read_rank=*/1); !st) return st;
    legacy_ = static_cast<LegacyTraceSource*>(job_->sources().find(legacy_name_));  // null when skipped
    if (legacy_) {
      legacy_->set_read_first([nftrace_source] { return nftrace_source->read(); });
      world_->set_legacy_families([this] { return legacy_->families(); });
      // TRACE lines wait for the first snapshot, read on a worker, without holding up the loop.
      legacy_->set_rules_ready([this] {
        world_->poll();
        return world_->first_read_done();
      });
    }
    world_->start_reading();  // now that our trace table and raw rules are in
    if (auto* rec = job_->recorder()) {
      nlohmann::json names;
      for (const auto& [code, name] : world_->drop_reasons()) names[std::to_string(code)] = name;
      rec->write({{"t", "setup"},
                  {"own_table", table_->name()},
                  {"hold", hold_text()},
                  {"legacy_comment", legacy_ ? legacy_->comment() : ""},
                  {"plan", job_->plan().summary()},
                  {"drop_reasons", names}});
    }
    StoryWorld story_world = world_->story_world();
    story_world.netns = opt_.netns;
    stories_.emplace(table_->name(), opt_.count,
                     opt_.json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO)),
                     std::move(story_world));
    return Ok{};
  }

  void tap(Source& source, const char* kind) {
    if (RecordingWriter* rec = job_->recorder())
      source.set_tap([rec, kind](std::span<const uint8_t> b, uint64_t ns) { rec->raw(kind, b, ns); });
  }

  void announce(const TraceMatch& match) {
    if (!opt_.json) {
      std::string what = trace_match_expression(match);
      std::cerr << "natbpf: tracing " << (what.empty() ? "all packets" : what) << " (rate " << match.rate << ")"
                << (opt_.netns.empty() ? "" : " in netns " + opt_.netns) << "; " << job_->plan().summary() << "\n";
    }
    // A degraded run says so on stderr also with --json: a failed
    // iptables-legacy TRACE (NFLOG group busy, rule not installed) too; only
    // legacy tables being unused is the normal case.
    std::cerr << "natbpf: " << hold_text() << "\n";
    for (const auto& why : job_->sources().skipped())
      if (why.find(kLegacyNotInUse) == std::string::npos) std::cerr << "natbpf: not used: " << why << "\n";
  }

  std::string hold_text() const {
    if (table_->hold() != TraceTable::Hold::None)
      return "nftables tracing turns on at the first matching packet, held in NFQUEUE " +
             std::to_string(table_->queue_number()) + " until it is on (" +
             (table_->hold() == TraceTable::Hold::NftQueue ? "nft queue" : "xt NFQUEUE") + ")" +
             (bpf_arms_ ? "; the BPF programs are attached while it is on" : "");
    return "nftables tracing is on from the start, for every nftables chain of the host" +
           (opt_.no_hold ? std::string(" (--no-hold)") : " (" + table_->no_hold_reason() + ")");
  }

  // Tracing goes off again once the flow was quiet for a while: a packet
  // matching after that is held and turns it on again.
  void quiet_disarm() {
    constexpr uint64_t kQuietNs = 5'000'000'000;
    if (table_->hold() == TraceTable::Hold::None || !table_->armed()) return;
    // Asked under the hold's lock: the thread that armed (for a packet
    // held just now) has stamped its release by then, so every stamp is
    // before now. Asked before, it turned tracing off the moment it came on.
    auto quiet = [this] {
      uint64_t now = monotonic_ns();
      auto recent = [now](uint64_t t) { return t && now - t < kQuietNs; };
      return !recent(last_traced_ns_) && !recent(table_->last_held_ns()) && !recent(disarm_failed_ns_);
    };
    if (auto st = table_->disarm(quiet); !st) {
      std::cerr << "natbpf: " << st.error().message << "; tracing stays on\n";
      disarm_failed_ns_ = monotonic_ns();  // asked again after the next quiet while
    }
  }

  void flush(bool all) {
    // Drain every source first: a story's BPF records (the trace id of its
    // pass) are written before its trace messages, but a loaded reader may
    // not have read them yet, and a story told without them joins worse.
    (void)job_->sources().read_all();
    // Held TRACE lines are parsed once the rules are in, after the nftables
    // trace messages of their packets (read above): those open the stories
    // the lines join. While some are held the sources are not drained.
    if (legacy_) legacy_->release(all);
    if (legacy_ && legacy_->holding()) return;
    uint64_t now = monotonic_ns();
    if (auto* rec = job_->recorder()) rec->write({{"t", "flush"}, {"ns", now}, {"all", all}});
    stories_->flush(now, all);
  }

  void finish() {
    TraceCounters& counters = stories_->counters();
    for (const std::string& name : {std::string("nftables trace"), legacy_name_})
      if (const Source* src = job_->sources().find(name)) {
        counters.nftrace_lost += src->lost();
        counters.nftrace_parse_errors += src->malformed();
      }
    if (const Source* bpf = job_->sources().find("bpf")) {
      counters.bpf_lost = bpf->lost();
      counters.bpf_decode_errors = bpf->malformed();
    }
    if (auto* rec = job_->recorder())
      rec->write({{"t", "end"},
                  {"lost", {{"nftrace", counters.nftrace_lost}, {"bpf", counters.bpf_lost}}},
                  {"parse_errors", counters.nftrace_parse_errors + counters.bpf_decode_errors}});
    stories_->print_summary(job_->plan().summary());
  }

  TraceOptions opt_;
  std::optional<Job> job_;  // last to go: its sources feed what follows
  std::optional<LiveTraceWorld> world_;
  std::optional<TraceTable> table_;
  uint64_t last_traced_ns_ = 0;     // an nftables trace message was read
  uint64_t disarm_failed_ns_ = 0;
  bool bpf_arms_ = false;           // the BPF programs are attached only while tracing is on
  LegacyTraceSource* legacy_ = nullptr;
  std::string legacy_name_;  // in the job's sources when iptables-legacy is traced
  std::optional<TraceStories> stories_;
};

}  // namespace

void register_trace_command(CLI::App& app, CommandContext& ctx) {
  static TraceOptions o;
  auto* cmd = app.add_subcommand("trace", "follow the packets of one flow: rules, NAT, conntrack and the drop point");
  cmd->add_option("--dport", o.dport, "destination port (before DNAT), 1-65535")->type_name("PORT");
  cmd->add_option("--sport", o.sport, "source port, 1-65535")->type_name("PORT");
  cmd->add_option("--saddr", o.saddr, "source address (IPv4 or IPv6)")->type_name("ADDR");
  cmd->add_option("--daddr", o.daddr, "destination address (before DNAT)")->type_name("ADDR");
  cmd->add_option("--proto", o.proto, "tcp, udp or icmp")->type_name("tcp|udp|icmp");
  cmd->add_option("--iif", o.iif, "input interface")->type_name("IFNAME");
  cmd->add_option("--netns", o.netns, "network namespace: name (ip netns), PID or path")->type_name("NETNS");
  cmd->add_option("--rate", o.rate, "trace at most this many packets (nft limit rate), default 10/second")->type_name("RATE");
  cmd->add_option("--count", o.count, "stop after this many packets")->type_name("N");
  cmd->add_option("--duration", o.duration, "stop after this long (e.g. 10s)")->type_name("DURATION");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per packet, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once tracing is armed")->type_name("FILE");
  cmd->add_option("--record", o.record, "also write the raw inputs to this file, for `natbpf explain FILE`")->type_name("FILE");
  cmd->add_flag("--no-hold", o.no_hold,
                 "never hold a packet: nftables tracing on from the start (costs every nftables chain of the host)");
  cmd->add_option("--hook", o.hooks, "require this BPF hook (error if it cannot attach)")->type_name("HOOK");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() {
    TraceRun run(o);
    ctx.status = run.run();
  });
}

}  // namespace natbpf
