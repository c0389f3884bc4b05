// natbpf clash: conntrack confirm clashes, one report per losing packet.
//
// Evidence, best first, as the attach plan allows:
//   fentry/kprobe: nf_ct_resolve_clash (loser, winner, outcome), __nf_conntrack_confirm
//                  (drops without a clash), nf_nat_setup_info + nf_conntrack_tuple_taken
//                  (range, flags, attempts, chosen tuple);
//   tracepoints:   skb:kfree_skb at nf_hook_slow, NETFILTER_DROP, with an unconfirmed
//                  conntrack entry (the confirm-drop signature), confirmed by the per-CPU
//                  insert_failed counter; winner by a ctnetlink lookup of the loser's reply
//                  tuple; range and rule from the ruleset; clash_resolve counter deltas.
#include <fstream>
#include <unistd.h>

#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "explain/clash.h"
#include "output/clash_render.h"
#include "probe/features.h"
#include "probe/kallsyms.h"
#include "sources/bpf.h"
#include "sources/ct_lookup.h"
#include "kernel/ct_stats.h"
#include "sources/iptables_rules.h"
#include "util/netns.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

constexpr uint32_t kNfNatRangeMapIps = 1 << 0, kNfNatRangeProtoSpecified = 1 << 1;

struct ClashOptions {
  std::string netns, proto, duration, interval = "10s", ready_file;
  uint64_t count = 0;
  bool json = false;
  PlanRequest request;
};

// Events of one skb, joined before they are explained.
struct Pending {
  uint64_t first_ns = 0;
  std::optional<SkbDropEvent> drop;
  std::optional<CtConfirmEvent> confirm;
  std::optional<CtClashEvent> clash;
};

std::optional<uint64_t> read_number(const char* path) {
  std::ifstream in(path);
  uint64_t v;
  if (in >> v) return v;
  return std::nullopt;
}

class ClashRun {
 public:
  ClashRun(const ClashOptions& opt, const Plan& plan, const Sources& sources)
      : opt_(opt), plan_(plan), sources_(sources), interval_ns_(0),
        hooked_confirm_(plan.has("nf_ct_resolve_clash") || plan.has("__nf_conntrack_confirm")),
        hooked_confirm_fn_(plan.has("__nf_conntrack_confirm")) {}

  Status init(std::chrono::milliseconds interval) {
    interval_ns_ = uint64_t(interval.count()) * 1000000ULL;
    auto stats = read_ct_stats();
    if (!stats) return stats.error();
    prev_cpu_ = *stats;
    summary_start_ = run_start_ = last_totals_ = CtStatsTotals::sum(*stats);
    last_summary_ns_ = monotonic_ns();
    return Ok{};
  }

  void on_event(BpfEvent&& ev) {
    uint64_t now = monotonic_ns();
    std::visit(
        [&](auto&& e) {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, SkbDropEvent>) {
            if (!is_confirm_drop_candidate(e) || already_explained(e.skb, e.ts_ns, e.ct ? e.ct->ptr : 0)) return;
            slot(e.skb, now, &Pending::drop).drop = e;
          } else if constexpr (std::is_same_v<T, CtConfirmEvent>) {
            if (already_explained(e.skb, e.ts_ns, e.loser.ptr)) return;
            slot(e.skb, now, &Pending::confirm).confirm = e;
          } else if constexpr (std::is_same_v<T, CtClashEvent>) {
            slot(e.skb, now, &Pending::clash).clash = e;
          } else if constexpr (std::is_same_v<T, NatSetupEvent>) {
            if (!e.snat) return;
            if (nat_by_ct_.size() > 8192) nat_by_ct_.clear();
            nat_by_ct_[e.ct.ptr] = e;
          }
        },
        std::move(ev));
  }

  // Every tick: counters, then the joined events, then the summary when due.
  void tick(bool final = false) {
    read_counters();
    uint64_t now = monotonic_ns();
    for (auto& p : retired_) finish(p);
    retired_.clear();
    for (auto it = pending_.begin(); it != pending_.end();) {
      // A kfree_skb drop alone waits longer where confirm/clash hooks are
      // attached: their records come from another ring buffer and carry
      // the winner and the outcome (seen late under kprobes on 6.12).
      // A clash record waits for its confirm record the same way: both are
      // written on one CPU, but a descheduled reader (or vCPU) can see the
      // first one a tick before the second.
      const Pending& p = it->second;
      bool incomplete = (!p.clash && !p.confirm && hooked_confirm_) || (p.clash && !p.confirm && hooked_confirm_fn_);
      uint64_t wait_ns = incomplete ? 300'000'000ULL : 30'000'000ULL;
      if (!final && now - p.first_ns < wait_ns) {
        ++it;
        continue;
      }
      finish(it->second);
      it = pending_.erase(it);
    }
    counter_only_records();
    if (final || now - last_summary_ns_ >= interval_ns_) {
      reconcile_resolved(final);
      emit_summary(final, now);
    }
  }

  bool done() const { return opt_.count && reports_ >= opt_.count; }

 private:
  // A record that comes after its packet was explained: the same skb and
  // the same losing conntrack entry within a second (both addresses are
  // reused, but not together that fast), or the same skb within 5 ms when
  // a record has no entry.
  bool already_explained(uint64_t skb, uint64_t ts_ns, uint64_t loser_ptr) {
    auto it = explained_.find(skb);
    if (it == explained_.end()) return false;
    uint64_t a = it->second.ts_ns, b = ts_ns, gap = a > b ? a - b : b - a;
    if (loser_ptr && it->second.loser_ptr == loser_ptr) return gap < 1'000'000'000ULL;
    return gap < 5'000'000ULL;
  }

  // The slot of an skb. A freed skb's address is soon reused: when the
  // slot already holds this kind of event it belongs to an earlier packet,
  // which is explained at the next tick, like every other, once the
  // counters that corroborate it have been read (and never from inside the
  // ring-buffer callback, which must stay cheap in a storm).
  template <typename Field>
  Pending& slot(uint64_t skb, uint64_t now, Field field) {
    auto& p = pending_[skb];
    if ((p.*field).has_value()) {
      retired_.push_back(std::move(p));
      p = Pending{};
    }
    if (!p.first_ns) p.first_ns = now;
    return p;
  }

  // skb:kfree_skb at nf_hook_slow with an unconfirmed conntrack entry: a
  // hook returned NF_DROP for a packet whose entry never made it into the
  // table. Whether that hook was conntrack confirm is decided later with the
  // insert_failed counter of the CPU (a filter rule dropping a new
  // connection looks the same otherwise).
  bool is_confirm_drop_candidate(const SkbDropEvent& e) {
    if (!e.ct) {
      if (ksyms_.function(e.location) == "nf_hook_slow") no_ct_drops_.push_back(e);
      return false;
    }
    if (e.ct->status & ips::kConfirmed) return false;
    return ksyms_.function(e.location) == "nf_hook_slow";
  }

  void read_counters() {
    auto stats = read_ct_stats();
    counters_read_ = static_cast<bool>(stats);
    if (!stats) return;
    for (const auto& c : *stats) {
      const CtCpuStats* before = nullptr;
      for (const auto& p : prev_cpu_)
        if (p.cpu == c.cpu) before = &p;
      auto d = [&](const std::optional<uint32_t>& now, const std::optional<uint32_t>& then) -> int64_t {
        return int64_t(now.value_or(0)) - int64_t(then.value_or(0));
      };
      if (!before) continue;
      insert_failed_credit_[c.cpu] += d(c.insert_failed, before->insert_failed);
      drop_only_credit_[c.cpu] += d(c.drop, before->drop) - d(c.insert_failed, before->insert_failed);
      chaintoolong_credit_[c.cpu] += d(c.chaintoolong, before->chaintoolong);
      int64_t res = d(c.clash_resolve, before->clash_resolve);
      if (res > 0) {
        clash_resolve_unseen_ += res;
        clash_resolve_total_ += res;
      }
      if (c.clash_resolve) has_clash_resolve_ = true;
    }
    prev_cpu_ = *stats;
    last_totals_ = CtStatsTotals::sum(*stats);
  }

  static std::string flow_key(const Tuple& t) { return t.str(); }
  static std::string flow_key(const Packet& p) {
    return flow_key(Tuple{p.saddr, p.daddr, p.sport, p.dport, p.l4proto});
  }

  // The per-CPU counters are read in natbpf's own namespace: under --netns
  // all, an event of another namespace never takes their credit.
  bool take_credit(std::map<uint32_t, int64_t>& credit, uint32_t cpu, uint32_t netns) {
    if (!own_netns(netns) || credit[cpu] <= 0) return false;
    credit[cpu]--;
    return true;
  }

  std::string location_text(const SkbDropEvent& d) {
    std::string s = "skb:kfree_skb (" + std::string(to_string(d.origin)) + ") at " + ksyms_.resolve(d.location);
    if (d.reason) s += ", reason NETFILTER_DROP";
    s += ", conntrack entry not confirmed";
    return s;
  }

  bool own_netns(uint32_t netns) const { return netns == 0 || netns == own_netns_; }

  // The NAT rules of a namespace, read again after 2 s.
  const std::vector<NatRule>& rules(uint32_t netns) {
    auto& c = rules_[netns];
    uint64_t now = monotonic_ns();
    if (!c.loaded_ns || now - c.loaded_ns > 2'000'000'000ULL) {
      c.value.clear();
      netns_.run_in(netns, [&] { c.value = load_nat_rules(); });
      c.loaded_ns = now;
    }
    return c.value;
  }

  // The conntrack table of a namespace, dumped again after 50 ms.
  const std::vector<CtNetlinkEntry>& table(uint32_t netns) {
    auto& c = tables_[netns];
    uint64_t now = monotonic_ns();
    if (!c.loaded_ns || now - c.loaded_ns > 50'000'000ULL) {
      c.value.clear();
      netns_.run_in(netns, [&] {
        if (auto d = ct_dump(0)) c.value = *d;
      });
      c.loaded_ns = now;
    }
    return c.value;
  }

  std::optional<CtNetlinkEntry> find_entry(uint32_t netns, const Tuple& t, TupleDir dir) {
    std::optional<CtNetlinkEntry> e;
    netns_.run_in(netns, [&] {
      if (auto r = ct_lookup(t, dir); r && *r) e = **r;
    });
    return e;
  }

  // nf_conntrack_count is per namespace; nf_conntrack_max is global.
  void read_table_size(ClashFacts& f) {
    netns_.run_in(f.netns, [&] {
      f.ct_count = read_number("/proc/sys/net/netfilter/nf_conntrack_count");
      f.ct_max = read_number("/proc/sys/net/netfilter/nf_conntrack_max");
    });
  }

  // Seconds since the entry was created: only with nf_conntrack_timestamp=1.
  static std::optional<uint64_t> age_s(const CtNetlinkEntry& e) {
    if (!e.start_ns) return std::nullopt;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    uint64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    if (now_ns < *e.start_ns) return std::nullopt;
    return (now_ns - *e.start_ns) / 1000000000ULL;
  }

  std::optional<WinnerFacts> lookup_winner(const CtEntry& loser) {
    auto fill = [&](const CtNetlinkEntry& e, const std::string& how) {
      return WinnerFacts{e.ct, how, e.tcp_state, age_s(e)};
    };
    // nf_conntrack_find_get matches either direction, so this finds an entry
    // holding the loser's reply tuple as its reply (SNAT collision) or as its
    // original (a reverse collision).
    if (auto e = find_entry(loser.netns, loser.reply, TupleDir::Reply))
      return fill(*e, "ctnetlink lookup of the loser's reply tuple");
    if (auto e = find_entry(loser.netns, loser.orig, TupleDir::Original))
      return fill(*e, "ctnetlink lookup of the loser's original tuple");
    return std::nullopt;
  }

  std::optional<NatFacts> nat_facts(const CtEntry& loser, std::optional<AllocationFacts>& alloc) {
    bool snat = loser.status & (ips::kSrcNat | ips::kSrcNatDone);
    const NatRule* rule = snat ? match_snat_rule(rules(loser.netns), loser) : nullptr;
    auto setup = nat_by_ct_.find(loser.ptr);
    if (!snat && setup == nat_by_ct_.end()) return std::nullopt;
    NatFacts n;
    if (setup != nat_by_ct_.end()) {
      const NatSetupEvent& s = setup->second;
      n.source = std::string("nf_nat_setup_info (") + to_string(s.origin) + ")";
      if (s.range.flags & kNfNatRangeMapIps) {
        n.min_addr = s.range.min_addr;
        n.max_addr = s.range.max_addr;
      }
      if (s.range.flags & kNfNatRangeProtoSpecified) {
        n.min_port = s.range.min_port;
        n.max_port = s.range.max_port;
      }
      std::string flags = s.range.flags_str();
      for (size_t a = 0; !flags.empty() && a != std::string::npos;) {
        size_t b = flags.find(',', a);
        n.flags.push_back(flags.substr(a, b == std::string::npos ? b : b - a));
        a = b == std::string::npos ? b : b + 1;
      }
      AllocationFacts al;
      al.origin = s.origin;
      al.before = s.before;
      al.chosen = Tuple{s.ct.reply.dst, s.ct.reply.src, s.ct.reply.dport, s.ct.reply.sport, s.ct.reply.proto};
      al.attempts = s.attempts;
      al.taken = s.taken;
      if (s.attempts) al.last_probe = s.last_probe;
      alloc = al;
    } else if (rule) {
      n.source = "ruleset (" + rule->backend + ")";
      n.min_addr = rule->min_addr;
      n.max_addr = rule->max_addr;
      n.min_port = rule->min_port;
      n.max_port = rule->max_port;
      if (rule->random) n.flags.push_back("random");
      if (rule->random_fully) n.flags.push_back("random-fully");
      if (rule->persistent) n.flags.push_back("persistent");
    } else {
      n.source = "conntrack status only (no matching rule found)";
    }
    if (rule) {
      n.kind = rule->kind;
      n.rule_text = rule->text;
      n.rule_where = rule->where;
      n.rule_backend = rule->backend;
    }
    if (n.kind == "masquerade" && !n.min_addr) n.min_addr = n.max_addr = loser.reply.dst;
    if (!n.min_port) {
      // nf_nat_l4proto_unique_tuple's default when the rule gives no ports.
      uint16_t sport = loser.orig.sport;
      if (sport < 512) n.min_port = 1, n.max_port = 511;
      else if (sport < 1024) n.min_port = 600, n.max_port = 1023;
      else n.min_port = 1024, n.max_port = 65535;
    }
    if (!n.min_addr) n.min_addr = n.max_addr = loser.reply.dst;
    return n;
  }

  // A netfilter drop of an unconfirmed entry that was not conntrack's.
  void count_unmatched_drop() {
    summary_.unmatched_drops++;
    run_summary_.unmatched_drops++;
  }

  void finish(Pending& p) {
    if (explained_.size() > 4096) explained_.clear();
    if (p.clash) explained_[p.clash->skb] = {p.clash->ts_ns, p.clash->loser.ptr};
    else if (p.confirm) explained_[p.confirm->skb] = {p.confirm->ts_ns, p.confirm->loser.ptr};
    else if (p.drop) explained_[p.drop->skb] = {p.drop->ts_ns, p.drop->ct ? p.drop->ct->ptr : 0};
    ClashFacts f;
    std::optional<CtEntry> loser;
    if (p.clash) {
      f.ts_ns = p.clash->ts_ns;
      f.cpu = p.clash->cpu;
      f.outcome = p.clash->resolved ? ClashOutcome::Resolved : ClashOutcome::Dropped;
      f.seen_by = std::string("nf_ct_resolve_clash (") + to_string(p.clash->origin) + ") returned " +
                  (p.clash->resolved ? "NF_ACCEPT" : "NF_DROP");
      loser = p.clash->loser;
      WinnerFacts w{p.clash->winner, std::string("nf_ct_resolve_clash (") + to_string(p.clash->origin) + ")", {}, {}};
      if (auto e = find_entry(p.clash->loser.netns, p.clash->winner.orig, TupleDir::Original)) {
        w.tcp_state = e->tcp_state;
        w.ct.id = e->ct.id;
        w.ct.timeout_s = e->ct.timeout_s;
        w.age_s = age_s(*e);
      }
      f.winner = w;
      if (f.outcome == ClashOutcome::Dropped) take_credit(insert_failed_credit_, f.cpu, p.clash->loser.netns);
      f.counter_confirms = true;
    } else if (p.confirm) {
      f.ts_ns = p.confirm->ts_ns;
      f.cpu = p.confirm->cpu;
      loser = p.confirm->loser;
      f.outcome = p.confirm->accepted ? ClashOutcome::Resolved : ClashOutcome::Dropped;
      f.seen_by = std::string("__nf_conntrack_confirm (") + to_string(p.confirm->origin) + ") returned " +
                  (p.confirm->accepted ? "NF_ACCEPT" : "NF_DROP");
      if (p.confirm->winner)
        f.winner = WinnerFacts{*p.confirm->winner, "the skb's entry after confirm (merged)", {}, {}};
      if (f.outcome == ClashOutcome::Dropped) take_credit(insert_failed_credit_, f.cpu, p.confirm->loser.netns);
      f.counter_confirms = true;
    } else if (p.drop) {
      f.ts_ns = p.drop->ts_ns;
      f.cpu = p.drop->cpu;
      loser = *p.drop->ct;
      f.outcome = ClashOutcome::Dropped;
      f.seen_by = location_text(*p.drop);
      f.counter_confirms = take_credit(insert_failed_credit_, f.cpu, p.drop->ct->netns);
      // In our own namespace the counter is read after the drop happened: no
      // insert_failed on its CPU means a filter rule dropped a new
      // connection. Said without a ctnetlink lookup, so a firewall dropping
      // a flood of new connections costs natbpf no netlink round trips.
      if (!f.counter_confirms && counters_read_ && own_netns(p.drop->ct->netns)) {
        count_unmatched_drop();
        return;
      }
    } else {
      return;
    }
    if (!loser) return;
    if (p.drop && loser->ptr == 0) loser = *p.drop->ct;
    f.netns = loser->netns;
    f.loser = loser;
    // A confirm drop without a clash (where nf_ct_resolve_clash is hooked),
    // or a counted insert failure without a winner: chaintoolong on the same
    // CPU says the hash chain was too long.
    bool looked_up = false;
    if (!p.clash && f.outcome == ClashOutcome::Dropped) {
      if (p.confirm && plan_.has("nf_ct_resolve_clash")) {
        f.chaintoolong_on_cpu = take_credit(chaintoolong_credit_, f.cpu, f.netns);
      } else if (!p.confirm && f.counter_confirms) {
        f.winner = lookup_winner(*loser);
        looked_up = true;
        if (!f.winner) f.chaintoolong_on_cpu = take_credit(chaintoolong_credit_, f.cpu, f.netns);
      }
    }
    if (!f.winner && !f.chaintoolong_on_cpu && !looked_up) f.winner = lookup_winner(*loser);
    // Only the kfree_skb path needs corroboration: a filter rule dropping the
    // first packet of a connection also frees it at nf_hook_slow unconfirmed.
    if (!p.clash && !p.confirm && !f.counter_confirms && !f.winner) {
      count_unmatched_drop();
      return;
    }
    if (p.drop && !p.clash && !p.confirm) {
      if (own_netns(f.netns))
        f.seen_by += f.counter_confirms ? "; insert_failed rose on cpu " + std::to_string(f.cpu)
                                        : "; insert_failed did not rise on cpu " + std::to_string(f.cpu);
      f.seen_by += "; loser tuples read from the packet's conntrack entry";
    }
    if (own_netns(f.netns)) f.counters = counters_since_report();
    else f.seen_by += "; conntrack counters are read in natbpf's own namespace only, not in netns " +
                      std::to_string(f.netns);
    std::optional<AllocationFacts> alloc;
    f.nat = nat_facts(*loser, alloc);
    f.alloc = alloc;
    if (f.nat && f.nat->min_addr && f.nat->min_port)
      f.range_used = count_range_usage(table(loser->netns), loser->reply.proto, loser->reply.src, loser->reply.sport,
                                       *f.nat->min_addr, *f.nat->max_addr, *f.nat->min_port,
                                       f.nat->max_port.value_or(*f.nat->min_port));
    read_table_size(f);
    f.repeat = seen_flows_[flow_key(loser->orig)]++;
    emit(diagnose(f));
  }

  // Drops and resolutions the kernel counted but no hook showed one by one.
  void counter_only_records() {
    if (!plan_.has("nf_ct_resolve_clash") && clash_resolve_unseen_ > 0) {
      ClashFacts f;
      f.ts_ns = monotonic_ns();
      f.outcome = ClashOutcome::Resolved;
      f.count = clash_resolve_unseen_;
      f.netns = current_netns_inode();
      f.counters = counters_since_report();
      f.seen_by = "ctnetlink statistics: clash_resolve +" + std::to_string(clash_resolve_unseen_) +
                  " (nf_ct_resolve_clash cannot be attached here)";
      emit(diagnose(f));
    }
    clash_resolve_unseen_ = 0;
    // Drops without a conntrack entry at nf_hook_slow while the drop counter
    // rose without insert_failed: conntrack could not create an entry.
    for (const auto& d : no_ct_drops_) {
      if (!take_credit(drop_only_credit_, d.cpu, d.pkt.netns)) continue;
      ClashFacts f;
      f.ts_ns = d.ts_ns;
      f.cpu = d.cpu;
      f.netns = d.pkt.netns;
      f.outcome = ClashOutcome::Dropped;
      f.counters = counters_since_report();
      f.seen_by = "skb:kfree_skb at " + ksyms_.resolve(d.location) + " without a conntrack entry; drop rose on cpu " +
                  std::to_string(d.cpu) + " without insert_failed";
      f.packet = d.pkt;
      f.repeat = seen_flows_[flow_key(d.pkt)]++;
      read_table_size(f);
      if (f.ct_count && f.ct_max && *f.ct_count >= *f.ct_max) emit(diagnose(f));
    }
    no_ct_drops_.clear();
  }

  // Where nf_ct_resolve_clash is hooked, resolved clashes come one by one;
  // the kernel may still count more than the hook reported (kretprobe
  // misses, ring buffer full). The difference is reported from the counter.
  // The kernel counts a resolution (clash_resolve) before the hook's record
  // is written, so a count read now may be ahead of the records. Between
  // summaries only resolutions counted by the previous summary, an interval
  // ago, are compared; at the end, with every record read and explained, all
  // of them. Resolutions still waiting in pending_ are not missing either.
  void reconcile_resolved(bool final) {
    uint64_t counted = final ? clash_resolve_total_ : clash_resolve_at_summary_;
    clash_resolve_at_summary_ = clash_resolve_total_;
    if (!plan_.has("nf_ct_resolve_clash")) return;
    auto resolved = [](const Pending& p) {
      return (p.clash && p.clash->resolved) || (!p.clash && p.confirm && p.confirm->accepted);
    };
    uint64_t in_flight = 0;
    for (const auto& [skb, p] : pending_) in_flight += resolved(p);
    for (const auto& p : retired_) in_flight += resolved(p);
    if (counted <= resolved_reported_ + in_flight) return;
    ClashFacts f;
    f.ts_ns = monotonic_ns();
    f.outcome = ClashOutcome::Resolved;
    f.count = counted - resolved_reported_ - in_flight;
    f.netns = current_netns_inode();
    f.counters = counters_since_report();
    f.seen_by = "ctnetlink statistics: clash_resolve rose " + std::to_string(f.count) +
                " more than nf_ct_resolve_clash reported (missed by the hook)";
    emit(diagnose(f));
  }

  // Per-packet records carry the counters that moved since the previous
  // record: the drop's own increment may have been read a tick earlier.
  CtStatsTotals counters_since_report() {
    CtStatsTotals d = last_totals_.delta_since(last_report_totals_ ? *last_report_totals_ : run_start_);
    last_report_totals_ = last_totals_;
    return d;
  }

  void emit(const ClashReport& r) {
    if (r.facts.outcome == ClashOutcome::Resolved) resolved_reported_ += r.facts.count;
    reports_++;
    summary_.add(r);
    run_summary_.add(r);
    if (opt_.json) std::cout << clash_to_json(r).dump() << "\n";
    else std::cout << clash_to_text(r, reports_) << "\n";
    std::cout.flush();
  }

  void emit_summary(bool final, uint64_t now) {
    ClashSummary& s = final ? run_summary_ : summary_;
    s.interval_ms = (now - (final ? run_start_ns_ : last_summary_ns_)) / 1000000ULL;
    s.counters = last_totals_.delta_since(final ? run_start_ : summary_start_);
    s.lost_events = sources_.lost();
    s.decode_errors = sources_.malformed();
    if (opt_.json) std::cout << summary_to_json(s, final).dump() << "\n";
    else std::cout << summary_to_text(s, final) << "\n";
    std::cout.flush();
    summary_ = ClashSummary{};
    summary_start_ = last_totals_;
    last_summary_ns_ = now;
  }

  const ClashOptions& opt_;
  const Plan& plan_;
  const Sources& sources_;
  uint64_t interval_ns_;
  bool hooked_confirm_, hooked_confirm_fn_;
  Kallsyms ksyms_;
  std::map<uint64_t, Pending> pending_;
  std::vector<Pending> retired_;
  bool counters_read_ = false;  // the per-CPU counters were read at this tick  // earlier packets of a reused skb address, explained at the next tick
  std::map<uint64_t, NatSetupEvent> nat_by_ct_;
  std::vector<SkbDropEvent> no_ct_drops_;
  std::vector<CtCpuStats> prev_cpu_;
  std::map<uint32_t, int64_t> insert_failed_credit_, drop_only_credit_, chaintoolong_credit_;
  uint64_t clash_resolve_unseen_ = 0, clash_resolve_total_ = 0, resolved_reported_ = 0;
  uint64_t clash_resolve_at_summary_ = 0;  // clash_resolve_total_ at the previous summary
  struct Explained {
    uint64_t ts_ns = 0, loser_ptr = 0;
  };
  std::map<uint64_t, Explained> explained_;  // skb -> the explained record
  bool has_clash_resolve_ = false;
  CtStatsTotals run_start_, summary_start_, last_totals_;
  std::optional<CtStatsTotals> last_report_totals_;
  uint64_t last_summary_ns_ = 0, run_start_ns_ = monotonic_ns();
  ClashSummary summary_, run_summary_;
  template <typename T>
  struct Cached {
    T value;
    uint64_t loaded_ns = 0;
  };
  NetnsIndex netns_;
  uint32_t own_netns_ = current_netns_inode();
  std::map<uint32_t, Cached<std::vector<NatRule>>> rules_;
  std::map<uint32_t, Cached<std::vector<CtNetlinkEntry>>> tables_;
  std::map<std::string, uint32_t> seen_flows_;
  uint64_t reports_ = 0;
};

Status run_clash(ClashOptions& opt) {
  uint8_t l4 = 0;
  if (opt.proto == "tcp") l4 = 6;
  else if (opt.proto == "udp") l4 = 17;
  else if (!opt.proto.empty()) return usage_error("bad --proto '" + opt.proto + "'", "use tcp or udp");
  std::optional<std::chrono::milliseconds> duration;
  if (!opt.duration.empty()) {
    auto d = parse_duration(opt.duration);
    if (!d) return d.error();
    duration = *d;
  }
  auto interval = parse_duration(opt.interval);
  if (!interval) return interval.error();
  if (interval->count() <= 0) return usage_error("--interval must be positive", "use e.g. 10s");
  if (auto s = check_privileges_and_btf(); !s) return s;

  BpfFilter filter;
  filter.l4proto = l4;
  filter.batch_wakeups = true;
  if (opt.netns != "all") {
    auto ino = enter_netns(opt.netns);
    if (!ino) return ino.error();
    filter.netns = *ino;
  }
  apply_attach_env(opt.request);
  opt.request.hooks = {"kfree_skb", "__nf_conntrack_confirm", "nf_ct_resolve_clash", "nf_nat_setup_info",
                       "nf_conntrack_tuple_taken"};
  KernelFeatures features;
  auto plan = make_plan(features, opt.request);
  if (!plan) return plan.error();
  auto signals = StopSignals::install();
  if (!signals) return signals.error();
  Sources sources;
  ClashRun run(opt, *plan, sources);
  auto to_run = [&run](BpfEvent&& ev) { run.on_event(std::move(ev)); };
  if (auto s = sources.add(std::make_unique<BpfSource>(*plan, filter, to_run), true); !s) return s;
  std::cerr << "natbpf clash: " << plan->summary() << "\n";
  if (auto s = run.init(*interval); !s) return s;
  if (!opt.ready_file.empty())
    if (auto s = write_ready_file(opt.ready_file); !s) return s;

  auto watches = sources.watches();
  LoopLimits limits;
  limits.duration = duration;
  limits.done = [&]() { return run.done(); };
  limits.on_tick = [&]() {
    (void)sources.read_all();  // wake-ups are batched: records are read on the tick too
    run.tick();
  };
  auto stopped = run_loop(watches, signals.value(), limits);
  if (!opt.ready_file.empty()) unlink(opt.ready_file.c_str());  // leave nothing behind
  if (!stopped) return stopped.error();
  if (auto s = sources.read_all(); !s) return s;
  run.tick(/*final=*/true);
  return Ok{};
}

}  // namespace

void register_clash_command(CLI::App& app, CommandContext& ctx) {
  auto* cmd = app.add_subcommand("clash", "explain conntrack insert clashes: SNAT range exhaustion, races, stale entries");
  static ClashOptions opt;
  cmd->add_option("--netns", opt.netns, "network namespace: name, PID, path, or all");
  cmd->add_option("--proto", opt.proto, "only tcp or udp");
  cmd->add_option("--duration", opt.duration, "stop after this long (e.g. 10s)");
  cmd->add_option("--count", opt.count, "stop after N clash reports");
  cmd->add_option("--interval", opt.interval, "summary interval (default 10s)");
  cmd->add_flag("--json", opt.json, "one JSON object per line");
  cmd->add_option("--ready-file", opt.ready_file, "create this file once every hook is attached");
  add_attach_flags(cmd, opt.request);
  cmd->callback([&ctx]() { ctx.status = run_clash(opt); });
}

}  // namespace natbpf
