// natbpf trace: one story per packet of the flow the user names.
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "explain/trace_explain.h"
#include "journey/journey.h"
#include "output/trace_render.h"
#include "probe/drop_reasons.h"
#include "probe/kallsyms.h"
#include "probe/loader.h"
#include "sources/bpf.h"
#include "sources/legacy_trace.h"
#include "sources/nft.h"
#include "sources/nftrace.h"
#include "sources/ruleset.h"
#include "sources/trace_table.h"
#include "util/runtime.h"

namespace natbpf {
namespace {


struct TraceOptions {
  int dport = -1, sport = -1;  // -1: not given
  std::string saddr, daddr, proto, iif, netns, rate = "10/second", duration, ready_file;
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

  Status run() {
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
    // where legacy tables have rules.
    auto to_builder = [this](auto&& ev) { builder_->add(std::move(ev)); };
    BpfFilter filter{match.l4proto.value_or(0), match.sport, match.dport, match.saddr, match.daddr, *netns, true};
    if (auto st = sources_.add(std::make_unique<BpfSource>(plan_, filter, to_builder), false); !st) return st;

    auto nft = NftContext::create();
    if (!nft) return nft.error();
    nft_.emplace(std::move(*nft));
    if (auto st = refresh_ruleset(); !st) return st;
    if (auto st = sources_.add(std::make_unique<NftraceSource>(to_builder), true); !st) return st;
    auto table = TraceTable::create(match);
    if (!table) return table.error();
    table_.emplace(std::move(*table));
    auto legacy = std::make_unique<LegacyTraceSource>(
        match,
        [this](uint8_t f, const std::string& t, const std::string& c) { return ruleset_.chain(family_name(f), t, c); },
        to_builder);
    std::string legacy_name = legacy->name();
    if (auto st = sources_.add(std::move(legacy), false); !st) return st;
    legacy_ = static_cast<LegacyTraceSource*>(sources_.find(legacy_name));  // null when skipped
    if (legacy_) {
      if (auto st = refresh_ruleset(); !st) return st;  // now with our TRACE rules
    }

    builder_.emplace(table_->name());
    builder_->hook_of = [this](const std::string& f, const std::string& t, const std::string& c) {
      const ChainInfo* ch = ruleset_.chain(f, t, c);
      return ch ? ch->hook : std::nullopt;
    };
    drop_reasons_ = load_drop_reasons();
    renderer_ = opt_.json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO));

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

    auto watches = sources_.watches();
    limits.on_tick = [this] { flush(false); };
    limits.done = [this] { return opt_.count && counters_.packets >= opt_.count; };
    auto stopped = run_loop(watches, *signals, limits);
    // Late events of the last packets: drain once more before the final flush.
    (void)sources_.read_all();
    flush(true);
    for (const char* name : {"nftables trace", "iptables-legacy TRACE"})
      if (const Source* src = sources_.find(name)) {
        counters_.nftrace_lost += src->lost();
        counters_.nftrace_parse_errors += src->malformed();
      }
    if (const Source* bpf = sources_.find("bpf")) {
      counters_.bpf_lost = bpf->lost();
      counters_.bpf_decode_errors = bpf->malformed();
    }
    std::cout << renderer_->summary(counters_, plan_.summary()) << std::flush;
    if (!opt_.ready_file.empty()) unlink(opt_.ready_file.c_str());
    if (!stopped) return stopped.error();
    return Ok{};
  }

 private:
  Status refresh_ruleset() {
    // The generation first: a change while the ruleset is listed is then
    // caught at the next packet.
    auto gen = nft_generation();
    ruleset_gen_ = gen ? *gen : 0;
    ruleset_ns_ = monotonic_ns();
    auto text = nft_->run("list ruleset");
    if (!text) return Error{"cannot read the nftables ruleset: " + text.error().message, "is nf_tables available?"};
    ruleset_ = Ruleset::parse(*text);
    for (auto [family, save] : {std::pair{"ip", "iptables-nft-save"}, std::pair{"ip6", "ip6tables-nft-save"}}) {
      if (ruleset_.has_xtables_tables(family)) ruleset_.add_iptables_syntax(family, run_program({save}).second);
    }
    if (legacy_) {
      for (const auto& family : legacy_->families())
        ruleset_.add_chains(parse_legacy_save(
            run_program({family == "ip" ? "iptables-legacy-save" : "ip6tables-legacy-save"}).second, family));
    }
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
    builder_->flush(monotonic_ns(), all, [this](Journey&& j) { emit(std::move(j)); });
  }

  void emit(Journey&& j) {
    if (opt_.count && counters_.packets >= opt_.count) return;
    ensure_rules_known(j);
    ExplainContext ctx;
    ctx.ruleset = &ruleset_;
    ctx.set_has = [this](const std::string& f, const std::string& t, const std::string& s, const std::string& k) {
      return set_has(f, t, s, k);
    };
    ctx.symbol = [this](uint64_t a) { return kallsyms_.resolve(a); };
    ctx.drop_reason = [this](uint32_t r) {
      auto it = drop_reasons_.find(r);
      return it == drop_reasons_.end() ? "reason " + std::to_string(r) : it->second;
    };
    explain_journey(j, ctx);
    j.number = ++counters_.packets;
    std::string sig = path_signature(j);
    if (auto it = first_of_path_.find(sig); it != first_of_path_.end()) {
      j.repeat_of = it->second;
      counters_.retransmissions++;
    } else {
      first_of_path_[sig] = j.number;
    }
    if (j.drop) {
      counters_.dropped++;
      counters_.drop_points[drop_point_str(*j.drop)]++;
    } else if (j.fate == Fate::Unknown) {
      counters_.unknown++;
    } else {
      counters_.accepted++;
    }
    std::cout << renderer_->packet(j) << std::flush;
  }

  // Same flow, TCP flags, decisions and end: a retransmission (or the next
  // packet of a flow taking the same path), shown in one line.
  static std::string path_signature(const Journey& j) {
    const Packet& p = j.packet;
    std::string s = std::to_string(p.l4proto) + "/" + std::to_string(p.tcp_flags) + "/" + p.saddr.str() + ":" + std::to_string(p.sport) + ">" + p.daddr.str() +
                    ":" + std::to_string(p.dport) + "|";
    for (const auto& st : j.steps)
      s += st.table + "/" + st.chain + "/" + (st.handle ? std::to_string(*st.handle) : "-") + "/" + st.verdict_str() + ";";
    s += j.drop ? drop_point_str(*j.drop) : std::to_string(static_cast<int>(j.fate));
    return s;
  }

  TraceOptions opt_;
  Plan plan_;
  Sources sources_;
  LegacyTraceSource* legacy_ = nullptr;  // in sources_ when iptables-legacy is traced
  std::optional<NftContext> nft_;
  std::optional<TraceTable> table_;
  std::optional<JourneyBuilder> builder_;
  Ruleset ruleset_;
  uint32_t ruleset_gen_ = 0;  // nftables generation of the snapshot
  uint64_t ruleset_ns_ = 0;   // when it was taken
  Kallsyms kallsyms_;
  std::map<uint32_t, std::string> drop_reasons_;
  std::unique_ptr<TraceRenderer> renderer_;
  TraceCounters counters_;
  std::map<std::string, uint64_t> first_of_path_;
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
  cmd->add_option("--hook", o.hooks, "require this BPF hook (error if it cannot attach)");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() {
    TraceRun run(o);
    ctx.status = run.run();
  });
}

}  // namespace natbpf
