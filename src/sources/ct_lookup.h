// Conntrack entries over ctnetlink: one entry looked up by a tuple
// (IPCTNL_MSG_CT_GET with CTA_TUPLE_ORIG or CTA_TUPLE_REPLY), or the whole
// table of the calling thread's network namespace (a dump). Used by `clash`
// to find the entry that won a confirm race (the loser's REPLY tuple is the
// one that collides after SNAT) and to count how much of a NAT range is used.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <optional>
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

// Every entry of one family (2 or 10; 0 for both).
Result<std::vector<CtNetlinkEntry>> ct_dump(uint8_t family = 0);

// Entries whose REPLY tuple has source dst:dport (the server side) and whose
// REPLY destination (the NAT mapping for SNAT) lies in [min_addr, max_addr] x
// [min_port, max_port]: how much of a SNAT range one destination uses.
size_t count_range_usage(const std::vector<CtNetlinkEntry>& entries, uint8_t proto, const Addr& dst, uint16_t dport,
                         const Addr& min_addr, const Addr& max_addr, uint16_t min_port, uint16_t max_port);

// Parses one IPCTNL_MSG_CT_NEW message (a GET reply or a dump part); exposed
// for unit tests. Returns nullopt when the message is not a conntrack entry
// or its tuples are malformed.
std::optional<CtNetlinkEntry> parse_ct_message(const nlmsghdr* nlh, size_t len);

// Builds the request ct_lookup sends into buf (at least MNL_SOCKET_BUFFER_SIZE
// bytes); exposed so unit tests can parse it back.
nlmsghdr* build_ct_get(char* buf, const Tuple& tuple, TupleDir dir, uint32_t seq);

}  // namespace natbpf
