// Conntrack entries over ctnetlink: one entry looked up by a tuple
// (IPCTNL_MSG_CT_GET with CTA_TUPLE_ORIG or CTA_TUPLE_REPLY), or the entries
// of one destination, filtered in the kernel, in the calling thread's network
// namespace. Used by `clash` to find the entry that won a confirm race (the
// loser's REPLY tuple is the one that collides after SNAT) and to count how
// much of a NAT range is used. The table is never dumped whole: with 200k
// entries that is half a second and tens of MB per report.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sources/events.h"
#include "util/result.h"

namespace natbpf {

// What ctnetlink says about an entry beyond CtEntry.
struct CtNetlinkEntry {
  CtEntry ct;                          // ct.id and ct.timeout_s are set when the kernel sent them
  std::optional<uint8_t> tcp_state;    // enum tcp_conntrack (CTA_PROTOINFO_TCP_STATE)
  std::optional<uint64_t> start_ns;    // CTA_TIMESTAMP_START (only with nf_conntrack_timestamp=1), CLOCK_REALTIME
};

enum class TupleDir { Original, Reply };

// The entry holding `tuple` in direction `dir`, or nullopt when there is none
// (ENOENT). Runs in the calling thread's network namespace.
Result<std::optional<CtNetlinkEntry>> ct_lookup(const Tuple& tuple, TupleDir dir);

// How much of a SNAT range one destination uses: the entries whose REPLY
// tuple has source dst:dport (the server side) and whose REPLY destination
// (the NAT mapping for SNAT) lies in [min_addr, max_addr] x [min_port, max_port].
struct RangeQuery {
  uint8_t proto = 0;
  Addr dst;
  uint16_t dport = 0;
  Addr min_addr, max_addr;
  uint16_t min_port = 0, max_port = 0;
  // Reply tuples in the range (addresses x ports); nullopt past 2^32.
  std::optional<uint64_t> tuples() const;
  // The REPLY tuple this query counts.
  bool counts(const Tuple& reply) const;
};

struct RangeUsage {
  std::optional<uint64_t> used;  // nullopt: could not be counted
  std::string how;               // "4 tuple lookups", "dump filtered in the kernel: 3 entries sent"
};

// Ranges of at most this many tuples are counted by one lookup per tuple
// (about 11 us each whatever the table's size: 45 ms at most); larger ones
// by a dump the kernel filters on the reply source (CTA_FILTER, Linux 5.8),
// so only the destination's entries cross netlink, but the kernel still
// walks the whole table (77 ms at 200k entries; bench/conntrack_scale.sh).
inline constexpr uint64_t kRangeLookupMax = 4096;
Result<RangeUsage> ct_range_usage(const RangeQuery& q);

size_t count_range_usage(const std::vector<CtNetlinkEntry>& entries, const RangeQuery& q);

// Every entry of one family (2 or 10; 0 for both): what clash read per report
// before ct_range_usage, kept as bench/ct_range's baseline.
Result<std::vector<CtNetlinkEntry>> ct_dump(uint8_t family = 0);

// Parses one IPCTNL_MSG_CT_NEW message (a GET reply or a dump part); exposed
// for unit tests. Returns nullopt when the message is not a conntrack entry
// or its tuples are malformed.
std::optional<CtNetlinkEntry> parse_ct_message(const nlmsghdr* nlh, size_t len);

// Builds the request ct_lookup sends into buf (at least MNL_SOCKET_BUFFER_SIZE
// bytes); exposed so unit tests can parse it back.
nlmsghdr* build_ct_get(char* buf, const Tuple& tuple, TupleDir dir, uint32_t seq);
// The filtered dump ct_range_usage sends for a large range.
nlmsghdr* build_ct_range_dump(char* buf, const RangeQuery& q, uint32_t seq);

}  // namespace natbpf
