// Conntrack confirm clashes: the facts natbpf gathered about one losing
// packet (from BPF, ctnetlink and the ruleset) and the diagnosis in words.
// diagnose() is a pure function of ClashFacts, so the unit tests drive it
// with fixture facts and no kernel.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "explain/fix.h"
#include "kernel/ct_stats.h"
#include "sources/events.h"

namespace natbpf {

enum class ClashOutcome { Dropped, Resolved };
const char* to_string(ClashOutcome outcome);

enum class ClashCause {
  RangeExhausted,  // every tuple of the SNAT range towards this destination is in use
  NatPortRace,     // two connections got the same NAT mapping at once (unconfirmed entries are invisible)
  SameTupleRace,   // two packets of one flow created entries on two CPUs (UDP DNS A/AAAA)
  StaleEntry,      // the tuple is held by an entry that is closing or dead
  TableFull,       // nf_conntrack_max reached: new entries cannot be created
  ChainTooLong,    // the hash chain was too long to insert (chaintoolong)
  Unknown,
};
const char* to_string(ClashCause cause);  // "range_exhausted", ...

// The NAT that produced the loser's tuple.
struct NatFacts {
  std::string kind = "snat";        // "snat", "masquerade", "dnat"
  std::string source;               // "nf_nat_setup_info (fentry)", "ruleset"
  std::optional<Addr> min_addr, max_addr;  // absent for masquerade without a fentry: the interface address
  std::optional<uint16_t> min_port, max_port;
  std::vector<std::string> flags;   // "random", "random-fully", "persistent"
  std::optional<std::string> rule_text, rule_where, rule_backend;
  // Where the rule is, to replace it: chain, nft "family table" ("" for
  // iptables), rule number (iptables) or handle (nft); family 2/10, 0 inet.
  std::string rule_chain, rule_table;
  uint64_t rule_number = 0;
  uint8_t rule_family = 0;

  // Number of (address, port) pairs in the range; nullopt when unknown.
  std::optional<uint64_t> capacity() const;
  uint64_t addresses() const;
  std::optional<uint32_t> ports() const;
  std::string range_str() const;    // "127.0.0.1:40000-40000"
};

// nf_nat_setup_info + nf_conntrack_tuple_taken for the loser (fentry/kprobe kernels).
struct AllocationFacts {
  Origin origin = Origin::Fentry;
  Tuple before;      // ORIGINAL tuple when setup started
  Tuple chosen;      // the mapping that was kept: invert(reply)
  uint32_t attempts = 0, taken = 0;
  std::optional<Tuple> last_probe;  // the reply tuple probed last
  // Every kind of probe the search makes was hooked (nf_conntrack_tuple_taken
  // and, for 6.5+'s try-harder path, nf_conntrack_find_get): without that,
  // attempts are not observed rather than 0.
  bool observed = true;
};

struct WinnerFacts {
  CtEntry ct;
  std::string found_by;                 // "ctnetlink lookup of the loser's reply tuple", "nf_ct_resolve_clash (fentry)"
  std::optional<uint8_t> tcp_state;     // enum tcp_conntrack
  std::optional<uint64_t> age_s;        // only with nf_conntrack_timestamp
};

struct ClashFacts {
  uint64_t ts_ns = 0;
  uint32_t cpu = 0;
  uint32_t netns = 0;                   // inode; 0 when the record did not carry it
  std::string netns_name;               // as drops names it: under ip netns, else "netns:<inode>"
  ClashOutcome outcome = ClashOutcome::Dropped;
  std::string seen_by;                  // how the drop or resolution was seen
  std::optional<CtEntry> loser;         // absent for counter-only records
  std::optional<WinnerFacts> winner;
  std::optional<NatFacts> nat;
  std::optional<AllocationFacts> alloc;
  std::optional<uint64_t> range_used;   // entries using the range towards loser's destination
  std::string range_counted_by;         // "4 tuple lookups", "dump filtered in the kernel: 3 entries sent"
  std::optional<CtStatsTotals> counters;  // ctnetlink deltas over the interval of the event
  bool counter_confirms = false;        // insert_failed rose on the event's CPU
  bool chaintoolong_on_cpu = false;     // chaintoolong rose on a CPU's counter for this event (and no clash ran)
  uint32_t chaintoolong_cpu = 0;        // that CPU: the event's own, or another with unclaimed rises
  bool confirm_without_clash = false;   // confirm dropped it and the hooked nf_ct_resolve_clash did not run
  std::optional<Packet> packet;         // the dropped packet, when it had no conntrack entry
  std::optional<uint64_t> ct_count, ct_max, ct_buckets;
  uint64_t count = 1;                   // >1 for counter-only records
  uint32_t repeat = 0;                  // earlier clashes of the same loser ORIGINAL tuple (retransmissions)
};

struct ClashReport {
  ClashFacts facts;
  ClashCause cause = ClashCause::Unknown;
  std::string explanation;
  std::optional<Fix> fix;
  std::vector<std::string> evidence;  // what each conclusion rests on
};

ClashReport diagnose(const ClashFacts& facts);

// The command that widens an exhausted SNAT/masquerade range to twice the
// connections seen (the entries using it and the loser): `iptables-nft -t nat
// -R CHAIN N ...` / `nft replace rule ... handle N ...`; nullopt when the rule,
// its place or the usage is unknown. netns: as the user named it.
std::optional<Fix> widen_range_fix(const NatFacts& nat, uint64_t used, const std::string& netns);

// Counts for the periodic summary.
struct ClashSummary {
  uint64_t interval_ms = 0;
  std::map<std::string, uint64_t> by_cause_outcome;  // "range_exhausted/dropped" -> n
  uint64_t dropped = 0, resolved = 0;
  std::optional<CtStatsTotals> counters;  // deltas over the interval
  uint64_t lost_events = 0;               // ring-buffer reservations that failed (since start)
  uint64_t decode_errors = 0;
  uint64_t unmatched_drops = 0;           // netfilter drops of unconfirmed entries that were not conntrack's
  void add(const ClashReport& r);
};

}  // namespace natbpf
