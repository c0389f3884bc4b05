// The clash join: BPF records of conntrack confirm, clash resolution, NAT
// setup and drops, joined per skb, corroborated by the per-CPU conntrack
// counters, completed with what the world says (the winner entry, NAT rules,
// how much of the range is used, the table size) and handed to diagnose().
//
// Evidence, best first, as the attach plan allows:
//   fentry/kprobe: nf_ct_resolve_clash (loser, winner, outcome), __nf_conntrack_confirm
//                  (drops without a clash), nf_nat_setup_info + nf_conntrack_tuple_taken
//                  (range, flags, attempts, chosen tuple);
//   tracepoints:   skb:kfree_skb at nf_hook_slow, NETFILTER_DROP, with an unconfirmed
//                  conntrack entry (the confirm-drop signature), confirmed by the per-CPU
//                  insert_failed counter; winner by a ctnetlink lookup of the loser's reply
//                  tuple; range and rule from the ruleset; clash_resolve counter deltas.
//
// Time comes from the caller (the moment a record was read, the tick), and
// every question goes to the World, so a recording replays exactly.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "explain/clash.h"
#include "world/world.h"

namespace natbpf {

struct ClashJoinOptions {
  uint64_t count = 0;        // stop after this many reports (0: no limit)
  uint64_t interval_ns = 0;  // between summaries
  std::set<std::string> hooks;  // the hooks the attach plan attached
};

struct ClashOutput {
  std::function<void(const ClashReport&, uint64_t number)> report;
  std::function<void(const ClashSummary&, bool final)> summary;
};

class ClashJoin {
 public:
  ClashJoin(ClashJoinOptions opt, World& world, ClashOutput out);

  // Reads the counters the run starts from; false when they cannot be read.
  bool start(uint64_t now_ns);
  void on_event(BpfEvent&& ev, uint64_t now_ns);
  // Every tick: counters, then the joined events, then the summary when due.
  void tick(uint64_t now_ns, bool final = false);
  bool done() const { return opt_.count && reports_ >= opt_.count; }

 private:
  // Events of one skb, joined before they are explained.
  struct Pending {
    uint64_t first_ns = 0;
    std::optional<SkbDropEvent> drop;
    std::optional<CtConfirmEvent> confirm;
    std::optional<CtClashEvent> clash;
    uint64_t ct_ptr() const {  // the losing entry of what it holds (0: not known)
      if (clash) return clash->loser.ptr;
      if (confirm) return confirm->loser.ptr;
      return drop && drop->ct ? drop->ct->ptr : 0;
    }
    uint64_t skb() const { return clash ? clash->skb : confirm ? confirm->skb : drop ? drop->skb : 0; }
  };
  struct Explained {
    uint64_t ts_ns = 0, loser_ptr = 0;
  };
  template <typename T>
  struct Cached {
    T value;
    uint64_t loaded_ns = 0;
  };

  bool hooked(const char* hook) const { return opt_.hooks.count(hook) > 0; }
  bool already_explained(uint64_t skb, uint64_t ts_ns, uint64_t loser_ptr);
  template <typename Field>
  Pending& slot(uint64_t skb, uint64_t ct, uint64_t now, Field field);
  bool is_confirm_drop_candidate(const SkbDropEvent& e);
  void read_counters();
  bool take_credit(std::map<uint32_t, int64_t>& credit, uint32_t cpu, uint32_t netns);
  bool take_any_credit(std::map<uint32_t, int64_t>& credit, uint32_t netns, uint32_t& cpu);
  bool own_netns(uint32_t netns) const { return netns == 0 || netns == own_netns_; }
  const std::vector<NatRule>& rules(uint32_t netns);
  const RangeUsage& range_usage(uint32_t netns, const RangeQuery& q);
  std::optional<uint64_t> age_s(const CtNetlinkEntry& e);
  std::optional<WinnerFacts> lookup_winner(const CtEntry& loser);
  std::optional<NatFacts> nat_facts(const CtEntry& loser, std::optional<AllocationFacts>& alloc);

  void finish(Pending& p);
  void hook_facts(const EventBase& e, bool accepted, const std::string& hook, uint32_t netns, ClashFacts& f);
  std::optional<CtEntry> facts_of_clash(const CtClashEvent& c, ClashFacts& f);
  std::optional<CtEntry> facts_of_confirm(const CtConfirmEvent& c, ClashFacts& f);
  std::optional<CtEntry> facts_of_drop(const SkbDropEvent& d, ClashFacts& f);
  bool find_winner(const Pending& p, const CtEntry& loser, ClashFacts& f);
  void complete(const Pending& p, const CtEntry& loser, ClashFacts& f);

  void counter_only_records(uint64_t now);
  void reconcile_resolved(uint64_t now, bool final);
  CtStatsTotals counters_since_report();
  void count_unmatched_drop();
  const std::string& netns_name(uint32_t inode);
  void emit(ClashReport r);
  void emit_summary(bool final, uint64_t now);

  ClashJoinOptions opt_;
  World& world_;
  ClashOutput out_;
  uint32_t own_netns_;
  bool hooked_confirm_, hooked_confirm_fn_;
  std::map<uint64_t, Pending> pending_;
  std::vector<Pending> retired_;  // earlier packets of a reused skb address, explained at the next tick
  bool counters_read_ = false;    // the per-CPU counters were read at this tick
  std::map<uint64_t, NatSetupEvent> nat_by_ct_;
  std::vector<SkbDropEvent> no_ct_drops_;
  std::vector<CtCpuStats> prev_cpu_;
  std::map<uint32_t, int64_t> insert_failed_credit_, drop_only_credit_, chaintoolong_credit_;
  uint64_t clash_resolve_unseen_ = 0, clash_resolve_total_ = 0, resolved_reported_ = 0;
  uint64_t clash_resolve_at_summary_ = 0;  // clash_resolve_total_ at the previous summary
  uint64_t rejected_counted_ = 0;          // the kernel's rejected drops already in the summaries
  std::map<uint64_t, Explained> explained_;  // skb -> the explained record
  CtStatsTotals run_start_, summary_start_, last_totals_;
  std::optional<CtStatsTotals> last_report_totals_;
  uint64_t last_summary_ns_ = 0, run_start_ns_ = 0;
  uint64_t tick_ns_ = 0;  // the current tick's time: caches of world answers age by it
  ClashSummary summary_, run_summary_;
  std::map<uint32_t, Cached<std::vector<NatRule>>> rules_;
  std::map<std::string, Cached<RangeUsage>> usage_;  // by netns and query
  std::map<std::string, uint32_t> seen_flows_;
  std::map<uint32_t, std::string> netns_names_;  // inode -> name, for every inode met
  uint64_t reports_ = 0;
};

}  // namespace natbpf
