// nftables trace events (`meta nftrace set 1`) read from the NFNLGRP_NFTRACE
// netlink group: the same messages `nft monitor trace` prints. Attributes are
// parsed here with libmnl, not with libnftnl's trace parser, because that one
// may exit() on a malformed message and reports an absent verdict as 0 (drop).
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sources/events.h"
#include "sources/source.h"
#include "util/names.h"
#include "util/result.h"

struct mnl_socket;

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

// Decodes a whole IP packet (network header first), e.g. an NFLOG payload.
std::optional<Packet> decode_ip_packet(std::span<const uint8_t> data);

// One line in the spirit of `nft monitor trace`, for debugging:
// "trace id 1a2b3c4d inet filter allowed_dnats rule handle 7 verdict drop".
std::string format_nftrace_line(const NftTraceEvent& event);

// Every nftables trace message of one netlink datagram, as received at
// recv_ns; a bad message is reported to on_error and skipped. Used by the
// listener and to replay a recording.
void parse_nftrace_datagram(std::span<const uint8_t> datagram, uint64_t recv_ns,
                            const std::function<void(NftTraceEvent&&)>& sink,
                            const std::function<void(std::string)>& on_error);

// A NETLINK_NETFILTER socket joined to NFNLGRP_NFTRACE in the network
// namespace of the thread that called open(). The kernel only builds trace
// messages while such a listener exists (nfnetlink_has_listeners).
class NftraceListener {
 public:
  // Asks for rcvbuf_bytes with SO_RCVBUFFORCE, falling back to SO_RCVBUF
  // (capped by net.core.rmem_max) without CAP_NET_ADMIN.
  static Result<NftraceListener> open(int rcvbuf_bytes = 8 << 20);

  NftraceListener(NftraceListener&&) noexcept = default;
  NftraceListener& operator=(NftraceListener&&) noexcept = default;
  NftraceListener(const NftraceListener&) = delete;
  NftraceListener& operator=(const NftraceListener&) = delete;
  ~NftraceListener() = default;

  int fd() const;

  // Reads everything queued without blocking and passes each good event to
  // sink. Bad messages are counted, not fatal. ENOBUFS means the kernel
  // dropped messages: counted in lost_overruns() and reading goes on.
  Status drain(const std::function<void(NftTraceEvent&&)>& sink);
  void set_tap(RawTap tap) { tap_ = std::move(tap); }

  uint64_t lost_overruns() const { return lost_overruns_; }
  uint64_t parse_errors() const { return parse_errors_; }
  std::string last_parse_error() const { return last_parse_error_; }

 private:
  struct SocketCloser {
    void operator()(mnl_socket* socket) const;
  };

  explicit NftraceListener(mnl_socket* socket);
  void note_parse_error(std::string message);

  std::unique_ptr<mnl_socket, SocketCloser> socket_;
  std::vector<uint8_t> buffer_;
  RawTap tap_;
  uint64_t lost_overruns_ = 0;
  uint64_t parse_errors_ = 0;
  std::string last_parse_error_;
};

// The nftables trace stream as a source.
class NftraceSource : public Source {
 public:
  explicit NftraceSource(std::function<void(NftTraceEvent&&)> sink) : sink_(std::move(sink)) {}
  std::string name() const override { return "nftables trace"; }
  std::optional<std::string> cannot_run() override { return std::nullopt; }  // open() says why
  Status start() override;
  void stop() override { listener_.reset(); }
  int fd() const override { return listener_ ? listener_->fd() : -1; }
  Status read() override { return listener_ ? listener_->drain(sink_) : Status(Ok{}); }
  uint64_t lost() const override { return listener_ ? listener_->lost_overruns() : 0; }
  uint64_t malformed() const override { return listener_ ? listener_->parse_errors() : 0; }
  bool set_tap(RawTap tap) override {
    tap_ = std::move(tap);
    return true;
  }

 private:
  std::function<void(NftTraceEvent&&)> sink_;
  std::optional<NftraceListener> listener_;
  RawTap tap_;
};

}  // namespace natbpf
