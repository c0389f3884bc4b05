// One nftables trace message (`meta nftrace set 1`, NFT_MSG_TRACE) as a typed
// event: the same messages `nft monitor trace` prints, parsed from bytes
// without a socket, so the live listener (sources/nftrace.h), a replayed
// recording and the unit tests share one parser. Attributes are parsed here
// with libmnl, not with libnftnl's trace parser, because that one may exit()
// on a malformed message and reports an absent verdict as 0 (drop). The
// packet headers the message carries are decoded by sources/packet_headers.h.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sources/events.h"
#include "util/names.h"
#include "util/result.h"

namespace natbpf {

// NF_* (low byte, upper bits carry queue number or errno) and NFT_* codes.
NftVerdict nft_verdict_from_code(int32_t code);

enum class NftTraceType { Policy = 1, Return = 2, Rule = 3, Unknown = 0 };

struct NftTraceEvent {
  uint64_t recv_ns = 0;  // CLOCK_MONOTONIC when received (set by the listener; the parser leaves 0)
  uint32_t id = 0;       // NFTA_TRACE_ID as `nft monitor trace` prints it (%08x)
  uint8_t family = 0;    // nfgenmsg.nfgen_family: NFPROTO_INET 1, IPV4 2, ARP 3, NETDEV 5, BRIDGE 7, IPV6 10
  NftTraceType type = NftTraceType::Unknown;
  std::string table, chain;
  std::optional<uint64_t> rule_handle;
  // The rule as a saved `nft monitor trace` line printed it (a log has no
  // ruleset to look the handle up in); empty from the kernel.
  std::string rule_text;
  // Where a saved log said it: "kern.log:351" (explain --log); empty live.
  std::string log_ref;
  std::optional<NftVerdict> verdict;         // absent attribute => nullopt, never Drop
  std::optional<int32_t> verdict_code;       // raw NFTA_VERDICT_CODE (queue number / errno in upper bits)
  std::optional<std::string> jump_target;    // NFTA_VERDICT_CHAIN
  std::optional<uint32_t> policy;            // NFTA_TRACE_POLICY (NF_ACCEPT/NF_DROP)
  std::optional<uint32_t> nfproto;           // NFTA_TRACE_NFPROTO: the real L3 protocol in inet tables
  std::optional<uint32_t> iif, oif;
  std::optional<uint16_t> iiftype, oiftype;  // ARPHRD_*
  std::optional<uint32_t> mark;              // the kernel omits a zero mark
  std::vector<uint8_t> ll_header, network_header, transport_header;  // raw, at most 20/40/20 bytes
  std::optional<Packet> packet;              // decoded from network+transport headers when possible
  // Conntrack state of the packet (newer kernels, e.g. 6.18). ct_id is in the byte order
  // `conntrack -L` prints (like ctnetlink CTA_ID); ct_state is the NF_CT_STATE_BIT mask.
  std::optional<uint32_t> ct_id, ct_status, ct_state;
  std::optional<uint8_t> ct_direction;       // IP_CT_DIR_ORIGINAL 0, IP_CT_DIR_REPLY 1
  // Set by sources without trace ids (iptables-legacy TRACE via NFLOG): this
  // event is the first one of a new packet.
  bool starts_packet = false;
  Origin origin = Origin::Nftrace;

  // What decided the packet here: the chain policy for Policy events, else the verdict.
  std::optional<NftVerdict> effective_verdict() const;
};

// Parses one netlink message of at most len bytes. Returns an Error (never
// throws, never exits) for a message that is not NFT_MSG_TRACE, attributes
// that are truncated or have the wrong length for their type, and missing
// TABLE, CHAIN, ID or TYPE. Unknown attribute types are skipped.
Result<NftTraceEvent> parse_nftrace_message(const nlmsghdr* nlh, size_t len);

// One line in the spirit of `nft monitor trace`, for debugging:
// "trace id 1a2b3c4d inet filter allowed_dnats rule handle 7 verdict drop".
std::string format_nftrace_line(const NftTraceEvent& event);

// Every nftables trace message of one netlink datagram, as received at
// recv_ns; a bad message is reported to on_error and skipped. Used by the
// listener and to replay a recording.
void parse_nftrace_datagram(std::span<const uint8_t> datagram, uint64_t recv_ns,
                            const std::function<void(NftTraceEvent&&)>& sink,
                            const std::function<void(std::string)>& on_error);

}  // namespace natbpf
