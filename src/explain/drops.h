// Drop attribution: every netfilter drop of a bounded run, grouped by cause
// and ranked. Causes come from where the kernel freed the packet (kfree_skb
// location and reason), the hook (nf_hook_slow, where it attaches), the
// conntrack entry the packet carried, and conntrack confirm failures; rule
// counters of the namespace name the nftables rules that dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sources/events.h"
#include "world/world.h"

namespace natbpf {

// A rule whose counter rose during the run.
struct RuleHit {
  std::string where;  // "iptables-legacy -t filter KUBE-FIREWALL rule 1"
  std::string text;   // "-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP"
  uint64_t count = 0;
};

// Where the mark a dropping rule matched was set: the MARK rule whose
// counter rose, and the jumps that led there (nearest first), so the story
// reads "set in KUBE-MARK-DROP, reached from KUBE-XLB-... (its comment)".
struct MarkOrigin {
  std::string mark;      // "0x8000/0x8000", as the dropping rule matches it
  std::string matched_by;  // the dropping rule's where
  RuleHit set_by;
  std::vector<RuleHit> via;
};

struct DropCause {
  std::string cause;     // "nftables rule or chain policy drop", ...
  std::string where;     // "nft_do_chain", "nf_hook_slow at postrouting"
  uint32_t netns = 0;
  std::string netns_name;
  uint64_t count = 0;
  std::map<std::string, uint64_t> flows;  // "tcp -> 192.168.70.10:22" -> count
  std::vector<std::string> evidence;
  std::vector<std::pair<std::string, uint64_t>> rules;  // drop rules whose counters rose
  std::vector<MarkOrigin> mark_origins;                 // of the marks those rules matched
  // A conntrack cause that only the namespace's insert_failed counter can
  // confirm (an unconfirmed entry at nf_hook_slow, no confirm hook record).
  bool needs_insert_failed = false;
};

class DropAggregator {
 public:
  // symbol: kernel address -> "fn+0xoff"; reason: value -> name.
  DropAggregator(std::function<std::string(uint64_t)> symbol, std::function<std::string(uint32_t)> reason);
  void add(const BpfEvent& ev);
  // Causes, most frequent first.
  std::vector<DropCause> ranked() const;
  uint64_t total() const { return total_; }

 private:
  std::function<std::string(uint64_t)> symbol_;
  std::function<std::string(uint32_t)> reason_;
  std::map<uint64_t, uint8_t> hook_by_skb_;        // from nf_hook_slow exits
  std::map<uint64_t, bool> confirm_failed_skb_;    // from __nf_conntrack_confirm
  std::map<std::string, DropCause> causes_;
  std::deque<SkbDropEvent> pending_;
  uint64_t total_ = 0;
  void account(const SkbDropEvent& d);
 public:
  // Accounts drops whose hook/confirm events may have arrived after them.
  void finish();
};

// What a drops run found: causes ranked, conntrack counter deltas per namespace.
struct DropsReport {
  double seconds = 0;
  uint64_t drops = 0, lost = 0;
  std::string plan_summary;
  std::vector<DropCause> causes;                                 // ranked
  std::vector<std::pair<std::string, CtStatsTotals>> conntrack;  // per namespace, deltas
};

// One drops run against a world: the namespaces and their counters when it
// starts, the drops as they come, the counters again at the end, and the
// nftables drop rules whose counters rose named beside the drops they explain.
class DropsRun {
 public:
  // only_netns: report that namespace alone (0: every namespace).
  explicit DropsRun(World& world, uint32_t only_netns = 0);
  void start();  // the counters the run is measured from
  void add(const BpfEvent& ev) { agg_.add(ev); }
  DropsReport finish(double seconds, uint64_t lost, std::string plan_summary);

 private:
  void attribute(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after) const;

  World& world_;
  uint32_t only_netns_;
  DropAggregator agg_;
  std::vector<NamedNetns> namespaces_;
  std::vector<NetnsSnapshot> before_;
};

}  // namespace natbpf
