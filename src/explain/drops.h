// Drop attribution: every drop of a run, counted in the kernel by key
// (namespace, family, hook, reason, location, protocol, port, conntrack
// state) and grouped here by cause. Netfilter drops are ranked with the
// rules whose counters rose and where their marks were set; drops outside
// netfilter (no socket, rp_filter, no route, checksum ...) are listed in
// their own section, with the kernel's reason. Example packets (one per key
// and second) name the flows.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
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

inline constexpr const char* kLayerNetfilter = "netfilter";
inline constexpr const char* kLayerOutside = "outside netfilter";

// What a drop's key alone says: its layer, cause and evidence.
// How much of each risen rule counter the causes of a namespace have taken
// (explain/drop_rules).
using RuleBudget = std::map<std::string, uint64_t>;

struct KeyCause {
  std::string layer;     // kLayerNetfilter or kLayerOutside
  std::string cause;     // "nftables rule or chain policy drop", "NO_SOCKET: ..."
  std::string function;  // where kfree_skb was called: "nf_hook_slow"
  std::vector<std::string> evidence;
  std::string fix;       // a command or setting, when the reason has one
  // A conntrack cause that only the namespace's insert_failed counter can
  // confirm (an unconfirmed NATed entry at nf_hook_slow, no confirm failure).
  bool needs_insert_failed = false;
};

// fn: the function kfree_skb was called from; reason: the kernel's name of
// key.reason ("NETFILTER_DROP"), "" without reasons.
KeyCause classify_drop(const DropKey& key, const std::string& fn, const std::string& reason);

// A drop rule whose counter rose, and how many of the cause's drops it
// took. where is how text and JSON name it; the parts are for metrics labels.
struct DropRuleShare {
  std::string where;  // "ip kube input: rule \"... drop\" (handle 5)", "iptables-legacy -t filter KUBE-FIREWALL rule 1: -A ..."
  uint64_t count = 0;
  std::string family, table, chain;  // "ip", "kube", "input"; iptables: "ip"/"ip6", "filter", "KUBE-FIREWALL"
  std::string text;                  // the rule alone: nft rule text or the iptables-save line
};

struct DropCause {
  std::string layer;
  std::string cause;     // "nftables rule or chain policy drop", ...
  std::string where;     // "nft_do_chain", "nf_hook_slow at postrouting"
  uint32_t netns = 0;
  std::string netns_name;
  uint64_t count = 0;
  std::map<std::string, uint64_t> flows;  // "tcp -> 192.168.70.10:22" -> count
  std::vector<std::string> examples;      // packets seen, at most kExamplesPerCause
  std::vector<std::string> evidence;
  std::string fix;
  std::vector<DropRuleShare> rules;                     // drop rules whose counters rose
  std::vector<MarkOrigin> mark_origins;                 // of the marks those rules matched
  bool needs_insert_failed = false;
  std::set<uint16_t> ports;  // destination ports of its packets, before and after DNAT
  std::set<std::string> reasons;   // the kernel's drop reasons of its packets ("NETFILTER_DROP")
  std::set<std::string> families;  // "ip", "ip6" (of its packets)
};

inline constexpr size_t kExamplesPerCause = 3;

// What a drops run found in one report: causes ranked (netfilter and
// outside netfilter together, each with its layer), conntrack counter
// deltas per namespace, and what could not be kept.
struct DropsReport {
  double seconds = 0;
  uint64_t drops = 0;          // every drop counted, outside netfilter too
  uint64_t netfilter_drops = 0;
  uint64_t lost = 0;           // ring-buffer records lost (examples and hook records)
  uint64_t examples_lost = 0;  // example packets the ring buffer had no room for
  uint64_t unkeyed = 0;        // drops counted while the key map was full
  bool counted = false;        // the kernel's counts were read (false: nothing to report)
  std::string plan_summary;
  std::vector<DropCause> causes;                                 // ranked
  std::vector<std::pair<std::string, CtStatsTotals>> conntrack;  // per namespace, deltas
};

// One drops run against a world: the namespaces and their rule counters
// when it starts, the kernel's counts and examples as they come, and a
// report of what was counted since the previous report (or the start).
class DropsRun {
 public:
  // only_netns: report that namespace alone (0: every namespace).
  explicit DropsRun(World& world, uint32_t only_netns = 0);
  void start();  // the rule and conntrack counters the run is measured from
  void add(const BpfEvent& ev);  // DropExampleEvent and DropCountsEvent
  // The drops counted since the previous report; the next one starts here.
  DropsReport report(double seconds, uint64_t lost, std::string plan_summary);

 private:
  using Counts = std::map<DropKey, uint64_t>;
  void add_counts(const DropCountsEvent& ev);
  void count_key(const DropKey& key, uint64_t n, std::map<std::string, DropCause>& causes, DropsReport& r) const;
  void attribute_all(DropsReport& r);
  void follow_namespaces();
  std::string flow(const DropKey& key) const;
  void attribute(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after, RuleBudget& budget) const;

  World& world_;
  uint32_t only_netns_;
  std::vector<NamedNetns> namespaces_;
  std::vector<NetnsSnapshot> before_;
  // Count snapshots: the one being assembled, the newest, and the one the
  // next report is measured from.
  Counts assembling_;
  uint32_t assembling_seq_ = 0;
  std::optional<Counts> latest_, from_;
  uint64_t latest_unkeyed_ = 0, latest_examples_lost_ = 0, from_unkeyed_ = 0, from_examples_lost_ = 0;
  uint64_t from_lost_ = 0;
  std::map<DropKey, std::vector<DropExampleEvent>> examples_;  // by key without hook, newest last
};

}  // namespace natbpf
