// Saved `nft monitor trace` text as the same typed events the live nftables
// trace source gives (sources/nftrace_message.h), for `natbpf explain --log`.
//
// nft prints each kernel trace message as up to three lines, all starting
// "trace id ID FAMILY TABLE CHAIN ": first "conntrack: ct ..." (nftables
// 1.1.4+, kernels that send NFTA_TRACE_CT_*), then "packet: iif ..." when the
// message carries packet headers (the kernel dumps them once per base chain,
// nf_trace_fill_pkt_info), then the event itself: "rule TEXT (verdict V)",
// "unknown rule handle N (verdict V)" (a rule newer than nft's cache),
// "verdict V" (a chain's end; kernel 6.18 sends none at base chain ends) or
// "policy accept|drop", the last two with "meta mark 0x..." when the packet
// has a mark. So the conntrack and packet lines of an id are kept pending and
// given to that id's next event line. Grammar: nftables 1.0.6 src/netlink.c
// netlink_events_trace_cb() and trace_print_*(), src/trace.c in 1.1.x;
// checked against real 1.0.6 output (tests/unit/fixtures, whose capture
// script makes them). nft 1.0.6 prints traces as text even with -j.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sources/events.h"
#include "sources/nftrace_message.h"

namespace natbpf {

// What the conntrack and packet lines of one trace message said: the
// headers and conntrack state the kernel sent with it.
struct NftPacketLines {
  std::optional<Packet> packet;  // absent when no IP header was printed (ARP)
  std::string iif_name, oif_name;
  std::optional<uint32_t> iif, oif, mark;  // iif/oif where nft printed an index, not a name
  std::optional<uint32_t> ct_id, ct_status, ct_state;
  std::optional<uint8_t> ct_direction;
};

// One event line, with what the text holds that NftTraceEvent does not.
struct NftMonitorTextEvent {
  // recv_ns 0, origin Nftrace; rule_text without " # handle N" (that goes to
  // rule_handle); iif/oif only where nft printed an index, not a name.
  NftTraceEvent ev;
  std::string iif_name, oif_name;  // from the packet line: iif "eth0"
  std::string prefix;              // text before "trace id " (a timestamp, a syslog header), trimmed
  uint64_t line = 0;               // 1-based number of this line among those fed
};

class NftMonitorTextParser {
 public:
  using Parsed = NftMonitorTextEvent;
  // Conntrack and packet lines waiting for their event line: the oldest is
  // dropped beyond this many (a packet line whose event never came, e.g. a
  // rule message without a handle, which nft does not print).
  static constexpr size_t kMaxPending = 4096;

  // One line without its newline. An event for rule, unknown rule, verdict
  // and policy lines; nothing for packet and conntrack lines (kept for the
  // event), blank lines and lines without "trace id " (not counted); nothing
  // for a trace line that cannot be read (counted in malformed()). Unknown
  // fields and trailing text are skipped; an unknown verdict word gives
  // NftVerdict::Unknown.
  std::optional<Parsed> feed(std::string_view line);

  // Whether a line is a `nft monitor trace` line ("trace id HEX FAMILY TABLE
  // CHAIN ..." anywhere in it), to recognise the format of a log.
  static bool looks_like(std::string_view line);

  uint64_t lines() const { return lines_; }
  uint64_t malformed() const { return malformed_; }
  // Pending packet or conntrack lines dropped because of kMaxPending.
  uint64_t evicted() const { return evicted_; }

 private:
  struct Slot {
    uint32_t id = 0;
    bool live = false;
    NftPacketLines pending;
  };

  NftPacketLines& pending_for(uint32_t id);
  void attach_pending(uint32_t id, Parsed& out);

  std::vector<Slot> slots_;                       // grows to kMaxPending, then a ring
  size_t next_slot_ = 0;                          // once full, the oldest slot, reused next
  std::unordered_map<uint32_t, size_t> slot_of_;  // trace id -> live slot
  uint64_t lines_ = 0, malformed_ = 0, evicted_ = 0;
};

}  // namespace natbpf
