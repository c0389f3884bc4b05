// One story per packet: nftables trace events and BPF events joined into
// the path a packet took, what NAT and conntrack did, and where it ended.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "explain/fix.h"
#include "sources/events.h"
#include "sources/nftrace_message.h"

namespace natbpf {

// One nftables decision on the packet.
struct Step {
  uint8_t family = 0;  // NFPROTO of the table
  std::string table, chain;
  std::string hook;  // of the base chain this ran under, when known
  std::optional<uint64_t> handle;
  std::string rule;  // rule text, filled by the explainer
  std::string syntax = "nft";  // "iptables" for iptables-nft rules, shown as iptables-save lines
  NftTraceType type = NftTraceType::Rule;
  std::optional<NftVerdict> verdict;
  std::optional<std::string> target;  // jump/goto chain
  std::optional<Packet> packet;       // headers when this step dumped them
  std::optional<uint32_t> iif, oif;
  Origin origin = Origin::Nftrace;
  std::string log_ref;  // "kern.log:351" when told from a saved log

  std::string verdict_str() const;  // "accept", "jump allowed_dnats", "policy drop"
  void append_verdict(std::string& out) const;  // the same, appended (no temporary per step)
};

struct NatChange {
  std::string kind;  // "dnat", "snat", "masquerade", "redirect"
  std::string from, to;
  std::string rule;
  std::optional<uint64_t> handle;
  std::string table_chain;  // "inet nat prerouting"
  std::string evidence;     // "nftrace headers", "conntrack entry (kfree_skb)"
};

struct DropPoint {
  std::string family, table, chain, rule;
  std::optional<uint64_t> handle;
  std::string hook;
  std::string cause;     // "rule drop", "chain policy drop", "conntrack insert failed", ...
  std::string location;  // "nft_do_chain+0x3e8"
  std::string reason;    // "NETFILTER_DROP"
  std::vector<std::string> evidence;
};

struct NearMiss {
  uint64_t handle = 0;
  std::string rule;
  std::string why;  // "192.168.70.10 . 22 is not in set inet filter allow_in", or "did not match"
  // A set lookup this packet failed: "inet filter allow_in", "192.168.70.10 . 22";
  // only_lookup: the rule accepts, and its other matches hold for the packet.
  std::string set, key;
  bool only_lookup = false;
};

// Where a mark a step matched was set, earlier in the same story.
struct StepMarkOrigin {
  std::string mark;        // "0x8000/0x8000"; "ct 0x1" for a conntrack mark
  std::string matched_by;  // the rule that matched it
  std::string set_by;      // the rule that set it
  std::string set_in;      // "ip nat KUBE-MARK-DROP"
  std::string reached_by;  // the jump that led to set_in ("" when none was traced)
  std::string comment;     // of the jump, else of the setting rule
};

// Why conntrack called the packet INVALID: its own log line, or an
// inference from facts natbpf has (then `inferred` and the facts in evidence).
struct CtInvalid {
  std::string reason;
  std::string evidence;
  bool inferred = false;
};

enum class Fate { Unknown, Dropped, Forwarded, Local, Sent };

struct Journey {
  uint64_t number = 0;  // 1, 2, ... in print order
  uint32_t trace_id = 0;
  uint64_t first_ns = 0, last_ns = 0;
  // The earliest the kernel can have sent the first trace event: when the
  // sources were last drained before it was received (first_ns is when a
  // possibly late reader got it). BPF records, stamped by the kernel, are
  // compared with this, so a stalled reader does not split a packet in two.
  uint64_t sent_after_ns = 0;
  Packet packet;  // as first seen
  std::string iif_name, oif_name;
  std::vector<Step> steps;
  std::vector<NatChange> nat;
  std::optional<Packet> final_packet;  // headers at the last hook (after SNAT)
  // Conntrack as nftrace reports it (6.16+ kernels send these attributes).
  std::optional<uint32_t> ct_id, ct_state, ct_status;
  std::vector<BpfEvent> bpf;           // BPF events joined to this packet
  Fate fate = Fate::Unknown;
  std::optional<DropPoint> drop;
  std::vector<NearMiss> near_misses;
  std::vector<StepMarkOrigin> mark_origins;
  std::optional<CtInvalid> invalid;
  std::vector<Listener> listeners;    // port collisions: listening on the original destination
  std::optional<Fix> fix;
  std::string explanation;
  std::optional<uint64_t> repeat_of;  // number of the first journey of the same flow and path
  uint32_t repeats = 0;               // on the first journey: how many followed
  bool fate_seen = false;
  bool has_lines = false;             // an iptables-legacy TRACE line joined it
  bool marked = false;                // natbpf's own marking rule traced it (not another tracer's rule)
  // The trace id read in BPF named this pass, and every record with an skb
  // joined by it (records without one, like a NAT setup, join by conntrack).
  bool joined_by_trace_id = false;
  bool joined_by_headers = false;     // a record with an skb matched by headers and time
  bool from_log = false;              // told from a saved log (explain --log), not seen live

  bool finished() const;

  std::vector<Packet> packets() const;  // every header snapshot, in order
};

// Joins events into journeys. Journeys are complete when no event arrived
// for `idle_ns` (the kernel sends a packet's trace events within
// microseconds; BPF drops within the same softirq).
class JourneyBuilder {
 public:
  JourneyBuilder(std::string own_table, uint64_t idle_ns = 300'000'000ULL);

  void add(NftTraceEvent&& ev);
  void add(BpfEvent&& ev);
  // Moves complete journeys (all of them when `all`) to the sink, oldest first.
  void flush(uint64_t now_ns, bool all, const std::function<void(Journey&&)>& sink);

  // Interface names by index (the namespace's own by default; a recording's on replay).
  std::function<std::string(uint32_t)> ifname;

  // A saved log: its reader already grouped the lines into packets (one
  // trace id each) and every packet is the user's own; log time may be
  // coarse (syslog has whole seconds), so a packet stays open longer.
  void for_saved_log(uint64_t idle_ns) {
    ids_are_packets_ = true;
    idle_ns_ = idle_ns;
  }

  // Stories of packets another tracer marked (a user's nftrace rule, another
  // natbpf run), left out. A pass of the flow that meets our marking chain
  // already traced (its flow rule reports it) is told: a local packet's
  // second pass, whoever marked its first.
  uint64_t foreign() const { return foreign_; }

 private:
  uint64_t foreign_ = 0;
  bool ids_are_packets_ = false;
  uint64_t drained_ns_ = 0;  // the last flush: every source had been read up to it
  Journey& journey_for(const NftTraceEvent& ev);
  Journey* story_for_line(const NftTraceEvent& ev);
  std::string ifname_of(uint32_t index) const;
  // strict: not to a story whose packet it is likely not (other_packet).
  bool attach(const BpfEvent& ev, bool strict = true);
  bool of_known_pass(uint64_t skb, uint64_t ts) const;
  static constexpr uint64_t kKnownPassWaitNs = 3'000'000'000ULL;

  std::string own_table_;
  uint64_t idle_ns_;
  std::deque<Journey> open_;
  std::unordered_map<uint32_t, size_t> by_id_;  // trace id -> index in open_ (rebuilt on flush)
  std::vector<BpfEvent> orphans_;  // BPF events not (yet) joined to a journey
  struct SkbTraceId {
    uint32_t trace_id = 0;
    uint64_t ts_ns = 0;  // when __nft_trace_packet saw it
  };
  std::map<uint64_t, SkbTraceId> id_by_skb_;  // from __nft_trace_packet: skb -> its latest pass
  std::set<uint32_t> ids_seen_;               // trace ids __nft_trace_packet reported
};

bool same_flow(const Packet& a, const Packet& b);

// Base chains' hooks, from the ruleset: (family, table, chain) -> hook.
using HookOf = std::function<std::optional<std::string>(const std::string&, const std::string&, const std::string&)>;
// Names each step's hook: that of the base chain it ran under (the last
// base chain before it). Done when the story is told, not as its events
// arrive: the ruleset that knows the hooks may still be being read then,
// and the loop that reads the events must not wait for it.
void assign_hooks(Journey& j, const HookOf& hook_of);

}  // namespace natbpf
