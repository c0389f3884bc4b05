#include "journey/clash_join.h"
#include "journey/nat_facts.h"

#include <type_traits>
#include <variant>

namespace natbpf {
namespace {

std::string flow_key(const Tuple& t) { return t.str(); }
std::string flow_key(const Packet& p) { return flow_key(Tuple{p.saddr, p.daddr, p.sport, p.dport, p.l4proto}); }

std::string location_text(const SkbDropEvent& d, const std::string& where) {
  return "skb:kfree_skb (" + std::string(to_string(d.origin)) + ") at " + where +
         (d.reason ? ", reason NETFILTER_DROP" : "") + ", conntrack entry not confirmed";
}

}  // namespace

ClashJoin::ClashJoin(ClashJoinOptions opt, World& world, ClashOutput out)
    : opt_(std::move(opt)), world_(world), out_(std::move(out)), own_netns_(world.own_netns()),
      hooked_confirm_(hooked("nf_ct_resolve_clash") || hooked("__nf_conntrack_confirm")),
      hooked_confirm_fn_(hooked("__nf_conntrack_confirm")) {}

bool ClashJoin::start(uint64_t now_ns) {
  auto stats = world_.ct_stats();
  if (!stats) return false;
  prev_cpu_ = *stats;
  summary_start_ = run_start_ = last_totals_ = CtStatsTotals::sum(*stats);
  last_summary_ns_ = run_start_ns_ = now_ns;
  return true;
}

void ClashJoin::on_event(BpfEvent&& ev, uint64_t now) {
  std::visit(
      [&](auto&& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, SkbDropEvent>) {
          if (!is_confirm_drop_candidate(e) || already_explained(e.skb, e.ts_ns, e.ct ? e.ct->ptr : 0)) return;
          slot(e.skb, e.ct->ptr, now, &Pending::drop).drop = e;
        } else if constexpr (std::is_same_v<T, CtConfirmEvent>) {
          if (already_explained(e.skb, e.ts_ns, e.loser.ptr)) return;
          slot(e.skb, e.loser.ptr, now, &Pending::confirm).confirm = e;
        } else if constexpr (std::is_same_v<T, CtClashEvent>) {
          slot(e.skb, e.loser.ptr, now, &Pending::clash).clash = e;
        } else if constexpr (std::is_same_v<T, NatSetupEvent>) {
          if (!e.snat) return;
          if (nat_by_ct_.size() > 8192) nat_by_ct_.clear();
          nat_by_ct_[e.ct.ptr] = e;
        }
      },
      std::move(ev));
}

void ClashJoin::tick(uint64_t now, bool final) {
  tick_ns_ = now;
  read_counters();
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
  counter_only_records(now);
  if (final || now - last_summary_ns_ >= opt_.interval_ns) {
    reconcile_resolved(now, final);
    emit_summary(final, now);
  }
}

// A record that comes after its packet was explained: the same skb and
// the same losing conntrack entry within a second (both addresses are
// reused, but not together that fast; another entry is another packet),
// or the same skb within 5 ms when a record has no entry.
bool ClashJoin::already_explained(uint64_t skb, uint64_t ts_ns, uint64_t loser_ptr) {
  auto it = explained_.find(skb);
  if (it == explained_.end()) return false;
  uint64_t a = it->second.ts_ns, b = ts_ns, gap = a > b ? a - b : b - a;
  if (loser_ptr && it->second.loser_ptr) return loser_ptr == it->second.loser_ptr && gap < 1'000'000'000ULL;
  return gap < 5'000'000ULL;
}

// The slot of an skb. A freed skb's address is soon reused: a slot holding
// this kind of record, or one of another conntrack entry (two ring buffers
// bring a packet's records, naming one entry, in any order), is an earlier
// packet's, explained at the next tick (a late record of it goes back to it).
template <typename Field>
ClashJoin::Pending& ClashJoin::slot(uint64_t skb, uint64_t ct, uint64_t now, Field field) {
  auto& p = pending_[skb];
  if ((p.*field).has_value() || (ct && p.ct_ptr() && p.ct_ptr() != ct)) {
    for (auto& r : retired_)
      if (ct && r.ct_ptr() == ct && r.skb() == skb && !(r.*field)) return r;
    retired_.push_back(std::exchange(p, Pending{}));
  }
  if (!p.first_ns) p.first_ns = now;
  return p;
}

// skb:kfree_skb at nf_hook_slow with an unconfirmed conntrack entry: a
// hook returned NF_DROP for a packet whose entry never made it into the
// table. Whether that hook was conntrack confirm is decided later with the
// insert_failed counter of the CPU (a filter rule dropping a new
// connection looks the same otherwise).
bool ClashJoin::is_confirm_drop_candidate(const SkbDropEvent& e) {
  bool at_hook_slow = symbol_function(world_.symbol(e.location)) == "nf_hook_slow";
  if (!e.ct) {
    if (at_hook_slow) no_ct_drops_.push_back(e);
    return false;
  }
  if (e.ct->status & ips::kConfirmed) return false;
  return at_hook_slow;
}

void ClashJoin::read_counters() {
  auto stats = world_.ct_stats();
  counters_read_ = stats.has_value();
  if (!stats) return;
  auto d = [](const std::optional<uint32_t>& now, const std::optional<uint32_t>& then) -> int64_t {
    return int64_t(now.value_or(0)) - int64_t(then.value_or(0));
  };
  for (const auto& c : *stats) {
    const CtCpuStats* before = nullptr;
    for (const auto& p : prev_cpu_)
      if (p.cpu == c.cpu) before = &p;
    if (!before) continue;
    insert_failed_credit_[c.cpu] += d(c.insert_failed, before->insert_failed);
    drop_only_credit_[c.cpu] += d(c.drop, before->drop) - d(c.insert_failed, before->insert_failed);
    chaintoolong_credit_[c.cpu] += d(c.chaintoolong, before->chaintoolong);
    int64_t res = d(c.clash_resolve, before->clash_resolve);
    if (res > 0) {
      clash_resolve_unseen_ += res;
      clash_resolve_total_ += res;
    }
  }
  prev_cpu_ = *stats;
  last_totals_ = CtStatsTotals::sum(*stats);
}

// The per-CPU counters are read in natbpf's own namespace: under --netns
// all, an event of another namespace never takes their credit.
bool ClashJoin::take_credit(std::map<uint32_t, int64_t>& credit, uint32_t cpu, uint32_t netns) {
  if (!own_netns(netns) || credit[cpu] <= 0) return false;
  credit[cpu]--;
  return true;
}

// Credit from whichever CPU has some, for a record whose own CPU has none.
bool ClashJoin::take_any_credit(std::map<uint32_t, int64_t>& credit, uint32_t netns, uint32_t& cpu) {
  for (auto& [c, n] : credit)
    if (n > 0 && take_credit(credit, c, netns)) {
      cpu = c;
      return true;
    }
  return false;
}

// The NAT rules of a namespace, asked again after 2 s.
const std::vector<NatRule>& ClashJoin::rules(uint32_t netns) {
  auto& c = rules_[netns];
  if (!c.loaded_ns || tick_ns_ - c.loaded_ns > 2'000'000'000ULL) {
    c.value = world_.nat_rules(netns);
    c.loaded_ns = tick_ns_;
  }
  return c.value;
}

// How much of a range a destination uses, asked again after 50 ms: a burst
// of clashes on one range costs one count.
const RangeUsage& ClashJoin::range_usage(uint32_t netns, const RangeQuery& q) {
  std::string key = std::to_string(netns) + " " + std::to_string(q.proto) + " " + endpoint(q.dst, q.dport) + " " +
                    endpoint(q.min_addr, q.min_port) + " " + endpoint(q.max_addr, q.max_port);
  auto& c = usage_[key];
  if (!c.loaded_ns || tick_ns_ - c.loaded_ns > 50'000'000ULL) {
    c.value = world_.ct_range_usage(netns, q);
    c.loaded_ns = tick_ns_;
  }
  return c.value;
}

// Seconds since the entry was created: only with nf_conntrack_timestamp=1.
std::optional<uint64_t> ClashJoin::age_s(const CtNetlinkEntry& e) {
  if (!e.start_ns) return std::nullopt;
  uint64_t now_ns = world_.realtime_ns();
  if (now_ns < *e.start_ns) return std::nullopt;
  return (now_ns - *e.start_ns) / 1000000000ULL;
}

std::optional<WinnerFacts> ClashJoin::lookup_winner(const CtEntry& loser) {
  auto fill = [&](const CtNetlinkEntry& e, const std::string& how) {
    return WinnerFacts{e.ct, how, e.tcp_state, age_s(e)};
  };
  // nf_conntrack_find_get matches either direction, so this finds an entry
  // holding the loser's reply tuple as its reply (SNAT collision) or as its
  // original (a reverse collision).
  if (auto e = world_.ct_find(loser.netns, loser.reply, TupleDir::Reply))
    return fill(*e, "ctnetlink lookup of the loser's reply tuple");
  if (auto e = world_.ct_find(loser.netns, loser.orig, TupleDir::Original))
    return fill(*e, "ctnetlink lookup of the loser's original tuple");
  return std::nullopt;
}

std::optional<NatFacts> ClashJoin::nat_facts(const CtEntry& loser, std::optional<AllocationFacts>& alloc) {
  bool snat = loser.status & (ips::kSrcNat | ips::kSrcNatDone);
  const NatRule* rule = snat ? match_snat_rule(rules(loser.netns), loser) : nullptr;
  auto setup = nat_by_ct_.find(loser.ptr);
  if (!snat && setup == nat_by_ct_.end()) return std::nullopt;
  NatFacts n;
  if (setup != nat_by_ct_.end())
    setup_facts(setup->second, hooked("nf_conntrack_tuple_taken") && hooked("nf_conntrack_find_get"), n, alloc);
  else if (rule) rule_range(*rule, n);
  else n.source = "conntrack status only (no matching rule found)";
  if (rule) {
    n.kind = rule->kind;
    n.rule_text = rule->text;
    n.rule_where = rule->where;
    n.rule_backend = rule->backend;
    n.rule_chain = rule->chain;
    n.rule_table = rule->table;
    n.rule_number = rule->number;
    n.rule_family = rule->family;
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
void ClashJoin::count_unmatched_drop() {
  summary_.unmatched_drops++;
  run_summary_.unmatched_drops++;
}

void ClashJoin::finish(Pending& p) {
  if (explained_.size() > 4096) explained_.clear();
  if (p.clash) explained_[p.clash->skb] = {p.clash->ts_ns, p.clash->loser.ptr};
  else if (p.confirm) explained_[p.confirm->skb] = {p.confirm->ts_ns, p.confirm->loser.ptr};
  else if (p.drop) explained_[p.drop->skb] = {p.drop->ts_ns, p.drop->ct ? p.drop->ct->ptr : 0};
  ClashFacts f;
  std::optional<CtEntry> loser;
  if (p.clash) loser = facts_of_clash(*p.clash, f);
  else if (p.confirm) loser = facts_of_confirm(*p.confirm, f);
  else if (p.drop) loser = facts_of_drop(*p.drop, f);
  if (!loser) return;
  if (p.drop && loser->ptr == 0) loser = *p.drop->ct;
  f.netns = loser->netns;
  f.loser = loser;
  if (!find_winner(p, *loser, f)) {
    count_unmatched_drop();
    return;
  }
  complete(p, *loser, f);
  emit(diagnose(f));
}

// What every hook record gives: when, on which CPU, the outcome the hook
// returned, and for a drop the insert_failed credit it takes (the hook
// itself is the evidence, the counter is not needed to corroborate it).
void ClashJoin::hook_facts(const EventBase& e, bool accepted, const std::string& hook, uint32_t netns, ClashFacts& f) {
  f.ts_ns = e.ts_ns;
  f.cpu = e.cpu;
  f.outcome = accepted ? ClashOutcome::Resolved : ClashOutcome::Dropped;
  f.seen_by = hook + " returned " + (accepted ? "NF_ACCEPT" : "NF_DROP");
  if (!accepted) take_credit(insert_failed_credit_, f.cpu, netns);
  f.counter_confirms = true;
}

std::optional<CtEntry> ClashJoin::facts_of_clash(const CtClashEvent& c, ClashFacts& f) {
  std::string hook = std::string("nf_ct_resolve_clash (") + exit_name(c.origin) + ")";
  hook_facts(c, c.resolved, hook, c.loser.netns, f);
  WinnerFacts w{c.winner, hook, {}, {}};
  if (auto e = world_.ct_find(c.loser.netns, c.winner.orig, TupleDir::Original)) {
    w.tcp_state = e->tcp_state;
    w.ct.id = e->ct.id;
    w.ct.timeout_s = e->ct.timeout_s;
    w.age_s = age_s(*e);
  }
  f.winner = w;
  return c.loser;
}

std::optional<CtEntry> ClashJoin::facts_of_confirm(const CtConfirmEvent& c, ClashFacts& f) {
  hook_facts(c, c.accepted, std::string("__nf_conntrack_confirm (") + exit_name(c.origin) + ")", c.loser.netns, f);
  if (c.winner) f.winner = WinnerFacts{*c.winner, "the skb's entry after confirm (merged)", {}, {}};
  return c.loser;
}

std::optional<CtEntry> ClashJoin::facts_of_drop(const SkbDropEvent& d, ClashFacts& f) {
  f.ts_ns = d.ts_ns;
  f.cpu = d.cpu;
  f.outcome = ClashOutcome::Dropped;
  f.seen_by = location_text(d, world_.symbol(d.location));
  f.counter_confirms = take_credit(insert_failed_credit_, f.cpu, d.ct->netns);
  // In our own namespace the counter is read after the drop happened: no
  // insert_failed on its CPU means a filter rule dropped a new
  // connection. Said without a ctnetlink lookup, so a firewall dropping
  // a flood of new connections costs natbpf no netlink round trips.
  if (!f.counter_confirms && counters_read_ && own_netns(d.ct->netns)) {
    count_unmatched_drop();
    return std::nullopt;
  }
  return *d.ct;
}

// The entry that won, or the chaintoolong credit that explains a drop
// without one. False when a kfree_skb drop has neither a counter nor a
// winner to rest on: then it was not conntrack's.
bool ClashJoin::find_winner(const Pending& p, const CtEntry& loser, ClashFacts& f) {
  // A confirm drop without a clash (where nf_ct_resolve_clash is hooked),
  // or a counted insert failure without a winner: chaintoolong on the same
  // CPU says the hash chain was too long.
  bool looked_up = false;
  f.chaintoolong_cpu = f.cpu;
  if (!p.clash && f.outcome == ClashOutcome::Dropped) {
    if (p.confirm && hooked("nf_ct_resolve_clash")) {
      // The hooked nf_ct_resolve_clash saw no clash: an entry with the loser's tuple
      // now came later (a reused port). The counter may have risen on another CPU.
      f.chaintoolong_on_cpu = take_credit(chaintoolong_credit_, f.cpu, f.netns) ||
                              take_any_credit(chaintoolong_credit_, f.netns, f.chaintoolong_cpu);
      looked_up = f.confirm_without_clash = true;
    } else if (!p.confirm && f.counter_confirms) {
      f.winner = lookup_winner(loser);
      looked_up = true;
      if (!f.winner) f.chaintoolong_on_cpu = take_credit(chaintoolong_credit_, f.cpu, f.netns);
    }
  }
  if (!f.winner && !f.chaintoolong_on_cpu && !looked_up) f.winner = lookup_winner(loser);
  // Only the kfree_skb path needs corroboration: a filter rule dropping the
  // first packet of a connection also frees it at nf_hook_slow unconfirmed.
  return p.clash || p.confirm || f.counter_confirms || f.winner;
}

// Evidence notes, counters, NAT range and usage, table size, repeats.
void ClashJoin::complete(const Pending& p, const CtEntry& loser, ClashFacts& f) {
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
  f.nat = nat_facts(loser, alloc);
  f.alloc = alloc;
  if (f.nat && f.nat->min_addr && f.nat->min_port) {
    RangeQuery q{loser.reply.proto,  loser.reply.src, loser.reply.sport, *f.nat->min_addr, *f.nat->max_addr,
                 *f.nat->min_port, f.nat->max_port.value_or(*f.nat->min_port)};
    const RangeUsage& u = range_usage(loser.netns, q);
    f.range_used = u.used;
    f.range_counted_by = u.how;
  }
  TableSize size = world_.table_size(f.netns);
  f.ct_count = size.count;
  f.ct_max = size.max;
  f.ct_buckets = size.buckets;
  f.repeat = seen_flows_[flow_key(loser.orig)]++;
}

// Drops and resolutions the kernel counted but no hook showed one by one.
void ClashJoin::counter_only_records(uint64_t now) {
  if (!hooked("nf_ct_resolve_clash") && clash_resolve_unseen_ > 0) {
    ClashFacts f;
    f.ts_ns = now;
    f.outcome = ClashOutcome::Resolved;
    f.count = clash_resolve_unseen_;
    f.netns = own_netns_;
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
    f.seen_by = "skb:kfree_skb at " + world_.symbol(d.location) + " without a conntrack entry; drop rose on cpu " +
                std::to_string(d.cpu) + " without insert_failed";
    f.packet = d.pkt;
    f.repeat = seen_flows_[flow_key(d.pkt)]++;
    TableSize size = world_.table_size(f.netns);
    f.ct_count = size.count;
    f.ct_max = size.max;
    f.ct_buckets = size.buckets;
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
void ClashJoin::reconcile_resolved(uint64_t now, bool final) {
  uint64_t counted = final ? clash_resolve_total_ : clash_resolve_at_summary_;
  clash_resolve_at_summary_ = clash_resolve_total_;
  if (!hooked("nf_ct_resolve_clash")) return;
  auto resolved = [](const Pending& p) {
    return (p.clash && p.clash->resolved) || (!p.clash && p.confirm && p.confirm->accepted);
  };
  uint64_t in_flight = 0;
  for (const auto& [skb, p] : pending_) in_flight += resolved(p);
  for (const auto& p : retired_) in_flight += resolved(p);
  if (counted <= resolved_reported_ + in_flight) return;
  ClashFacts f;
  f.ts_ns = now;
  f.outcome = ClashOutcome::Resolved;
  f.count = counted - resolved_reported_ - in_flight;
  f.netns = own_netns_;
  f.counters = counters_since_report();
  f.seen_by = "ctnetlink statistics: clash_resolve rose " + std::to_string(f.count) +
              " more than nf_ct_resolve_clash reported (missed by the hook)";
  emit(diagnose(f));
}

// Per-packet records carry the counters that moved since the previous
// record: the drop's own increment may have been read a tick earlier.
CtStatsTotals ClashJoin::counters_since_report() {
  CtStatsTotals d = last_totals_.delta_since(last_report_totals_ ? *last_report_totals_ : run_start_);
  last_report_totals_ = last_totals_;
  return d;
}

// A namespace's name as drops gives it: under ip netns (natbpf's own is
// "(natbpf's namespace)" unless it has one), else "netns:<inode>". The world
// is asked once per inode met, not per record: namespaces may appear during
// the run, and a replay meets the same inodes in the same order.
const std::string& ClashJoin::netns_name(uint32_t inode) {
  auto it = netns_names_.find(inode);
  if (it != netns_names_.end()) return it->second;
  std::map<uint32_t, std::string> now;
  for (const auto& ns : world_.namespaces()) now[ns.inode] = ns.name;  // own first: a name under ip netns wins
  for (auto& [ino, name] : now) netns_names_.emplace(ino, std::move(name));
  return netns_names_.emplace(inode, "netns:" + std::to_string(inode)).first->second;
}

void ClashJoin::emit(ClashReport r) {
  if (r.facts.netns) r.facts.netns_name = netns_name(r.facts.netns);
  // A fix runs where the clash happened: natbpf's own namespace, or one it can name.
  if (r.fix && !r.fix->host && r.facts.netns_name.rfind("netns:", 0) == 0) r.fix.reset();
  if (r.fix && !r.fix->host && r.facts.netns_name != kOwnNetnsName) r.fix->netns = r.facts.netns_name;
  if (r.facts.outcome == ClashOutcome::Resolved) resolved_reported_ += r.facts.count;
  reports_++;
  summary_.add(r);
  run_summary_.add(r);
  out_.report(r, reports_);
}

void ClashJoin::emit_summary(bool final, uint64_t now) {
  SourceCounts counts = world_.source_counts();
  // Drops the kernel rejected before any record (no conntrack counter rose
  // for them) were not conntrack's either.
  uint64_t rejected = counts.rejected > rejected_counted_ ? counts.rejected - rejected_counted_ : 0;
  rejected_counted_ += rejected;
  summary_.unmatched_drops += rejected;
  run_summary_.unmatched_drops += rejected;
  ClashSummary& s = final ? run_summary_ : summary_;
  s.interval_ms = (now - (final ? run_start_ns_ : last_summary_ns_)) / 1000000ULL;
  s.counters = last_totals_.delta_since(final ? run_start_ : summary_start_);
  s.lost_events = counts.lost;
  s.decode_errors = counts.malformed;
  out_.summary(s, final);
  summary_ = ClashSummary{};
  summary_start_ = last_totals_;
  last_summary_ns_ = now;
}

}  // namespace natbpf
