// Typed events: what sources produce after validating raw records and
// netlink messages. Anything the kernel may not give is std::optional.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "util/names.h"

namespace natbpf {

struct Addr {
  uint8_t family = 0;  // 2 (IPv4) or 10 (IPv6), 0 unknown
  std::array<uint8_t, 16> bytes{};

  std::string str() const;
  bool operator==(const Addr&) const = default;
  static std::optional<Addr> parse(const std::string& text);
};

// "10.1.2.3:22", "[fd00::1]:53".
std::string endpoint(const Addr& a, uint16_t port);
// TCP, UDP, SCTP and UDP-Lite have ports; ICMP and the rest do not.
bool has_ports(uint8_t proto);

struct Tuple {
  Addr src, dst;
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;
  bool operator==(const Tuple&) const = default;
  std::string str() const;  // "tcp 10.2.1.2:38484 -> 10.1.2.3:1222"
};

// enum ip_conntrack_status bits used in explanations (uapi, stable 5.4-6.18).
namespace ips {
inline constexpr uint64_t kSeenReply = 1u << 1, kAssured = 1u << 2, kConfirmed = 1u << 3, kSrcNat = 1u << 4,
                          kDstNat = 1u << 5, kSrcNatDone = 1u << 7, kDstNatDone = 1u << 8, kDying = 1u << 9,
                          kNatClash = 1u << 12;
}  // namespace ips

struct CtEntry {
  uint64_t ptr = 0;  // kernel address (BPF) or 0
  std::optional<uint32_t> id;  // ctnetlink id
  Tuple orig, reply;
  uint64_t status = 0;
  uint32_t mark = 0;
  uint32_t netns = 0;
  std::optional<uint32_t> timeout_s;
};

struct Packet {
  uint8_t family = 0, l4proto = 0, tcp_flags = 0;
  Addr saddr, daddr;
  uint16_t sport = 0, dport = 0;
  uint32_t tcp_seq = 0;
  uint32_t tcp_ack = 0;  // acknowledgment number, where the headers were seen (nftrace, NFLOG)
  uint16_t ip_id = 0;
  uint32_t ifindex = 0, netns = 0, len = 0;

  std::string str() const;  // "tcp 10.2.1.2:38484 -> 10.1.2.3:1222 [S]"
};

struct EventBase {
  uint64_t ts_ns = 0;  // CLOCK_MONOTONIC
  uint32_t cpu = 0;
  Origin origin = Origin::TpBtf;
};

struct HookDropEvent : EventBase {
  uint64_t skb = 0;
  int32_t ret = 0;
  uint8_t hook = 0, pf = 0;
  uint16_t num_hook_entries = 0;
  uint32_t in_ifindex = 0, out_ifindex = 0, netns = 0;
};

struct SkbDropEvent : EventBase {
  uint64_t skb = 0;
  uint64_t location = 0;
  std::optional<uint32_t> reason;
  Packet pkt;
  std::optional<CtEntry> ct;
};

struct CtConfirmEvent : EventBase {
  uint64_t skb = 0;
  Packet pkt;
  CtEntry loser;
  std::optional<CtEntry> winner;  // when merged into an existing entry
  bool accepted = false;
  bool nat_clash = false;
};

struct CtClashEvent : EventBase {
  uint64_t skb = 0;
  CtEntry loser, winner;
  bool resolved = false;
};

struct NatRange {
  uint32_t flags = 0;  // NF_NAT_RANGE_*
  Addr min_addr, max_addr;
  uint16_t min_port = 0, max_port = 0;
  std::vector<std::string> flag_names() const;  // {"random-fully", "persistent"}
  std::string flags_str() const;  // "random-fully,persistent"
};

struct NatSetupEvent : EventBase {
  CtEntry ct;
  Tuple before;
  NatRange range;
  bool snat = true;  // maniptype SRC
  bool accepted = true;
  uint32_t attempts = 0, taken = 0;
  Tuple last_probe;
};

// The nftrace id (as nft prints it) of one traced pass of an skb.
struct NftTraceIdEvent : EventBase {
  uint64_t skb = 0;
  uint32_t trace_id = 0;
};

// natbpf drops' in-kernel count key (bpf/natbpf_events.h nb_drop_key).
struct DropKey {
  uint64_t location = 0;  // kfree_skb caller
  uint32_t netns = 0;
  std::optional<uint32_t> reason;  // absent on kernels without drop reasons
  uint16_t dport = 0;
  uint8_t family = 0, l4proto = 0;
  std::optional<uint8_t> hook;  // NF_INET_*, when nf_hook_slow's exit counted it
  bool has_ct = false, ct_confirmed = false, ct_nat = false, confirm_failed = false;

  auto operator<=>(const DropKey&) const = default;
  bool operator==(const DropKey&) const = default;
  // The same key before nf_hook_slow's exit added the hook (examples are keyed so).
  DropKey without_hook() const {
    DropKey k = *this;
    k.hook.reset();
    return k;
  }
};

// One dropped packet of a counted key (at most one per key, CPU and second).
struct DropExampleEvent : EventBase {
  DropKey key;
  uint64_t skb = 0;
  Packet pkt;
  std::optional<CtEntry> ct;
};

// A snapshot of the in-kernel counts (one record of it; last ends it).
struct DropCountsEvent : EventBase {
  uint32_t seq = 0;
  bool last = false;
  uint64_t unkeyed = 0, examples_lost = 0;
  std::vector<std::pair<DropKey, uint64_t>> rows;  // counts since the programs were loaded
};

// A local socket listening on a port (inet_diag), and the process holding it.
struct Listener {
  std::string address;  // "0.0.0.0:52000", "[::]:52000"
  uint32_t pid = 0;     // 0 when no visible process holds it
  std::string comm;
};

// Conntrack called a packet INVALID and said why (nf_l4proto_log_invalid's
// message): from its nf_log line over NFLOG, where natbpf routed it there.
struct CtInvalidEvent : EventBase {
  uint64_t skb = 0;  // 0 when it came over NFLOG
  uint8_t protonum = 0;
  Packet pkt;
  std::string reason;  // "invalid tcp flag combination"
};

using BpfEvent = std::variant<HookDropEvent, SkbDropEvent, CtConfirmEvent, CtClashEvent, NatSetupEvent,
                              NftTraceIdEvent, DropExampleEvent, DropCountsEvent, CtInvalidEvent>;

}  // namespace natbpf
