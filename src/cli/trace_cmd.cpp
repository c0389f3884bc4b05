// natbpf trace: one story per packet of the flow the user names.
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/trace_stories.h"
#include "explain/trace_explain.h"
#include "journey/journey.h"
#include "output/trace_render.h"
#include "probe/drop_reasons.h"
#include "probe/features.h"
#include "probe/kallsyms.h"
#include "sources/bpf.h"
#include "sources/legacy_trace.h"
#include "sources/nft.h"
#include "sources/nftrace.h"
#include "sources/recording.h"
#include "sources/ruleset.h"
#include "sources/trace_table.h"
#include "util/runtime.h"

namespace natbpf {
namespace {


struct TraceOptions {
  int dport = -1, sport = -1;  // -1: not given
  std::string saddr, daddr, proto, iif, netns, rate = "10/second", duration, ready_file, record;
  uint64_t count = 0;
  bool json = false;
  std::vector<std::string> hooks;
  PlanRequest request;
};

Result<uint8_t> parse_proto(const std::string& p) {
  if (p.empty()) return uint8_t{0};
  if (p == "tcp") return uint8_t{6};
  if (p == "udp") return uint8_t{17};
  if (p == "icmp") return uint8_t{1};
  return usage_error("unknown --proto '" + p + "'", "use tcp, udp or icmp");
}

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

// Everything the trace loop owns; destroyed (tables deleted, links
// detached) on every exit path.
class TraceRun {
 public:
  TraceRun(const TraceOptions& o) : opt_(o) {}

  // A run that fails before tracing began leaves no recording behind.
  Status run() {
    Status st = trace();
    if (!st && recorder_ && !armed_) {
      recorder_.reset();
      unlink(opt_.record.c_str());
    }
    return st;
  }

 private:
  Status trace() {
    TraceMatch match;
    auto proto = parse_proto(opt_.proto);
    if (!proto) return proto.error();
    if (*proto) match.l4proto = *proto;
    for (auto [port, flag] : {std::pair{opt_.dport, "--dport"}, std::pair{opt_.sport, "--sport"}})
      if (auto st = validate_port(port, flag); !st) return st;
    match.dport = static_cast<uint16_t>(std::max(opt_.dport, 0));
    match.sport = static_cast<uint16_t>(std::max(opt_.sport, 0));
    auto saddr = parse_addr(opt_.saddr, "--saddr");
    if (!saddr) return saddr.error();
    auto daddr = parse_addr(opt_.daddr, "--daddr");
    if (!daddr) return daddr.error();
    match.saddr = *saddr;
    match.daddr = *daddr;
    auto rate = parse_rate(opt_.rate);
    if (!rate) return rate.error();
    match.rate = *rate;
    match.iif = opt_.iif;
    LoopLimits limits;
    if (!opt_.duration.empty()) {
      auto d = parse_duration(opt_.duration);
      if (!d) return d.error();
      limits.duration = *d;
    }
    if (auto st = check_privileges_and_btf(); !st) return st;
    if (!opt_.record.empty()) {
      // Before anything is created in the kernel: a bad path leaves nothing behind.
      auto w = RecordingWriter::create(opt_.record, {{"command", "trace"},
                                                     {"kernel", KernelFeatures().kernel_release()},
                                                     {"match", trace_match_expression(match)},
                                                     {"netns", opt_.netns},
                                                     {"count", opt_.count}});
      if (!w) return w.error();
      recorder_.emplace(std::move(*w));
    }
    auto netns = enter_netns(opt_.netns);
    if (!netns) return netns.error();
    if (!opt_.iif.empty() && if_nametoindex(opt_.iif.c_str()) == 0)
      return usage_error("unknown interface --iif " + opt_.iif + (opt_.netns.empty() ? "" : " in netns " + opt_.netns),
                         "list them with `ip link`" + std::string(opt_.netns.empty() ? "" : " -n " + opt_.netns));

    auto signals = StopSignals::install();
    if (!signals) return signals.error();

    // BPF first: its filter follows the user's flow, also after DNAT (the
    // programs match the conntrack entry's original tuple too).
    KernelFeatures features;
    PlanRequest req = opt_.request;
    apply_attach_env(req);
    req.hooks = {"kfree_skb", "nf_hook_slow", "__nf_conntrack_confirm", "nf_nat_setup_info", "__nft_trace_packet"};
    for (const auto& h : opt_.hooks) req.required.insert(h);
    auto plan = make_plan(features, req);
    if (!plan) return plan.error();
    plan_ = *plan;
    // Sources: BPF adds what nftrace cannot see but is not needed for a
    // story; the nftables trace stream is; iptables-legacy TRACE only runs
    // where legacy tables have rules. Trace and NFLOG events open the
    // stories and BPF records attach to them, so when all have events
    // waiting they are read in that order (ranks 0, 1, 2); BPF starts first.
    auto to_builder = [this](auto&& ev) { stories_->add(std::move(ev)); };
    BpfFilter filter{match.l4proto.value_or(0), match.sport, match.dport, match.saddr, match.daddr, *netns, true};
    auto bpf = std::make_unique<BpfSource>(plan_, filter, to_builder);
    if (recorder_) bpf->set_tap([this](std::span<const uint8_t> b, uint64_t ns) { recorder_->raw("bpf", b, ns); });
    if (auto st = sources_.add(std::move(bpf), false, /*read_rank=*/2); !st) return st;

    auto nft = NftContext::create();
    if (!nft) return nft.error();
    nft_.emplace(std::move(*nft));
    if (auto st = refresh_ruleset(); !st) return st;
    auto nftrace = std::make_unique<NftraceSource>(to_builder);
    if (recorder_)
      nftrace->set_tap([this](std::span<const uint8_t> b, uint64_t ns) { recorder_->raw("nftrace", b, ns); });
    if (auto st = sources_.add(std::move(nftrace), true, /*read_rank=*/0); !st) return st;
    auto table = TraceTable::create(match);
    if (!table) return table.error();
    table_.emplace(std::move(*table));
    auto legacy = std::make_unique<LegacyTraceSource>(
        match,
        [this](uint8_t f, const std::string& t, const std::string& c) { return ruleset_.chain(family_name(f), t, c); },
        to_builder);
    if (recorder_)
      legacy->set_tap([this](std::span<const uint8_t> b, uint64_t ns) { recorder_->raw("nflog", b, ns); });
    std::string legacy_name = legacy->name();
    if (auto st = sources_.add(std::move(legacy), false, /*read_rank=*/1); !st) return st;
    legacy_ = static_cast<LegacyTraceSource*>(sources_.find(legacy_name));  // null when skipped
    if (legacy_) {
      if (auto st = refresh_ruleset(); !st) return st;  // now with our TRACE rules
    }

    drop_reasons_ = load_drop_reasons();
    if (recorder_) {
      nlohmann::json names;
      for (const auto& [code, name] : drop_reasons_) names[std::to_string(code)] = name;
      recorder_->write({{"t", "setup"},
                        {"own_table", table_->name()},
                        {"legacy_comment", legacy_ ? legacy_->comment() : ""},
                        {"plan", plan_.summary()},
                        {"drop_reasons", names}});
    }
    stories_.emplace(table_->name(), opt_.count,
                     opt_.json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO)), live_world());

    if (!opt_.json) {
      std::string what = trace_match_expression(match);
      std::cerr << "natbpf: tracing " << (what.empty() ? "all packets" : what) << " (rate " << match.rate << ")"
                << (opt_.netns.empty() ? "" : " in netns " + opt_.netns) << "; " << plan_.summary() << "\n";
    }
    // A degraded run says so on stderr also with --json (where iptables-legacy
    // not being in use is the normal case, not a degradation).
    for (const auto& why : sources_.skipped())
      if (why.rfind("iptables-legacy", 0) != 0) std::cerr << "natbpf: not used: " << why << "\n";
    if (auto st = write_ready_file(opt_.ready_file); !st) return st;
    armed_ = true;

    auto watches = sources_.watches();
    limits.on_tick = [this] { flush(false); };
    limits.done = [this] { return stories_->done(); };
    auto stopped = run_loop(watches, *signals, limits);
    // Late events of the last packets: drain once more before the final flush.
    (void)sources_.read_all();
    flush(true);
    TraceCounters& counters = stories_->counters();
    for (const char* name : {"nftables trace", "iptables-legacy TRACE"})
      if (const Source* src = sources_.find(name)) {
        counters.nftrace_lost += src->lost();
        counters.nftrace_parse_errors += src->malformed();
      }
    if (const Source* bpf = sources_.find("bpf")) {
      counters.bpf_lost = bpf->lost();
      counters.bpf_decode_errors = bpf->malformed();
    }
    if (recorder_)
      recorder_->write({{"t", "end"},
                        {"lost", {{"nftrace", counters.nftrace_lost}, {"bpf", counters.bpf_lost}}},
                        {"parse_errors", counters.nftrace_parse_errors + counters.bpf_decode_errors}});
    stories_->print_summary(plan_.summary());
    if (!opt_.ready_file.empty()) unlink(opt_.ready_file.c_str());
    if (!stopped) return stopped.error();
    return Ok{};
  }

  Status refresh_ruleset() {
    // The generation first: a change while the ruleset is listed is then
    // caught at the next packet.
    auto gen = nft_generation();
    ruleset_gen_ = gen ? *gen : 0;
    ruleset_ns_ = monotonic_ns();
    auto text = nft_->run("list ruleset");
    if (!text) return Error{"cannot read the nftables ruleset: " + text.error().message, "is nf_tables available?"};
    RulesetTexts texts;
    texts.nft = *text;
    ruleset_ = Ruleset::parse(*text);
    for (auto [family, save] : {std::pair{"ip", "iptables-nft-save"}, std::pair{"ip6", "ip6tables-nft-save"}}) {
      if (ruleset_.has_xtables_tables(family)) texts.iptables_nft[family] = run_program({save}).second;
    }
    if (legacy_) {
      for (const auto& family : legacy_->families())
        texts.iptables_legacy[family] =
            run_program({family == "ip" ? "iptables-legacy-save" : "ip6tables-legacy-save"}).second;
    }
    ruleset_ = texts.build();
    if (recorder_) recorder_->write(texts.to_json());
    return Ok{};
  }

  // The snapshot is stale when the nftables generation moved (a rule added,
  // deleted or replaced anywhere, also in chains this packet only passed:
  // their near misses would be wrong) or a traced rule is not in it.
  // iptables-legacy has no generation and numbers its rules by position:
  // while legacy steps are traced its rules are read again at most once a
  // second.
  void ensure_rules_known(const Journey& j) {
    bool stale = false;
    if (auto g = nft_generation(); g && *g != ruleset_gen_) stale = true;
    for (const auto& s : j.steps) {
      if (s.handle && !ruleset_.rule(family_name(s.family), s.table, s.chain, *s.handle)) stale = true;
      if (s.origin == Origin::Nflog && monotonic_ns() - ruleset_ns_ > 1'000'000'000ULL) stale = true;
    }
    if (stale) (void)refresh_ruleset();
  }

  std::optional<bool> set_has(const std::string& family, const std::string& table, const std::string& set,
                              const std::string& key) {
    auto r = nft_->run("get element " + family + " " + table + " " + set + " { " + key + " }");
    if (r) return true;
    const std::string& m = r.error().message;
    if (m.find("No such file or directory") != std::string::npos || m.find("does not exist") != std::string::npos)
      return false;
    return std::nullopt;
  }

  void flush(bool all) {
    uint64_t now = monotonic_ns();
    if (recorder_) recorder_->write({{"t", "flush"}, {"ns", now}, {"all", all}});
    stories_->flush(now, all);
  }

  // What explaining asks of the running system; answers are recorded too.
  StoryWorld live_world() {
    StoryWorld w;
    w.before_explain = [this](const Journey& j) { ensure_rules_known(j); };
    w.ruleset = [this]() -> const Ruleset& { return ruleset_; };
    w.set_has = [this](const std::string& f, const std::string& t, const std::string& set, const std::string& k) {
      auto has = set_has(f, t, set, k);
      if (recorder_)
        recorder_->write({{"t", "set"}, {"family", f}, {"table", t}, {"set", set}, {"key", k},
                          {"has", has ? nlohmann::json(*has) : nlohmann::json(nullptr)}});
      return has;
    };
    w.symbol = [this](uint64_t a) {
      std::string name = kallsyms_.resolve(a);
      if (recorder_) recorder_->write({{"t", "symbol"}, {"addr", a}, {"name", name}});
      return name;
    };
    w.drop_reason = [this](uint32_t r) { return drop_reason_name(drop_reasons_, r); };
    w.ifname = [this](uint32_t index) {
      char buf[IF_NAMESIZE] = {};
      std::string name = index && if_indextoname(index, buf) ? buf : "if" + std::to_string(index);
      if (recorder_) recorder_->write({{"t", "ifname"}, {"index", index}, {"name", name}});
      return name;
    };
    return w;
  }

  TraceOptions opt_;
  Plan plan_;
  Sources sources_;
  LegacyTraceSource* legacy_ = nullptr;  // in sources_ when iptables-legacy is traced
  std::optional<NftContext> nft_;
  std::optional<TraceTable> table_;
  std::optional<RecordingWriter> recorder_;
  bool armed_ = false;  // tracing began (the ready file was written)
  std::optional<TraceStories> stories_;
  Ruleset ruleset_;
  uint32_t ruleset_gen_ = 0;  // nftables generation of the snapshot
  uint64_t ruleset_ns_ = 0;   // when it was taken
  Kallsyms kallsyms_;
  std::map<uint32_t, std::string> drop_reasons_;
};

}  // namespace

void register_trace_command(CLI::App& app, CommandContext& ctx) {
  static TraceOptions o;
  auto* cmd = app.add_subcommand("trace", "follow the packets of one flow: rules, NAT, conntrack and the drop point");
  cmd->add_option("--dport", o.dport, "destination port (before DNAT), 1-65535");
  cmd->add_option("--sport", o.sport, "source port, 1-65535");
  cmd->add_option("--saddr", o.saddr, "source address (IPv4 or IPv6)");
  cmd->add_option("--daddr", o.daddr, "destination address (before DNAT)");
  cmd->add_option("--proto", o.proto, "tcp, udp or icmp");
  cmd->add_option("--iif", o.iif, "input interface");
  cmd->add_option("--netns", o.netns, "network namespace: name (ip netns), PID or path");
  cmd->add_option("--rate", o.rate, "trace at most this many packets (nft limit rate), default 10/second");
  cmd->add_option("--count", o.count, "stop after this many packets");
  cmd->add_option("--duration", o.duration, "stop after this long (e.g. 10s)");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per packet, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once tracing is armed");
  cmd->add_option("--record", o.record, "also write the raw inputs to this file, for `natbpf explain FILE`");
  cmd->add_option("--hook", o.hooks, "require this BPF hook (error if it cannot attach)");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() {
    TraceRun run(o);
    ctx.status = run.run();
  });
}

}  // namespace natbpf
