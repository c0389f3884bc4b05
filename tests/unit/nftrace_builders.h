// Builders for the nftables trace unit tests: a trace message built with
// libmnl the way net/netfilter/nf_tables_trace.c builds it, and the IPv4,
// IPv6, TCP and UDP headers such a message copies.
#pragma once

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <cstdint>
#include <vector>

#include "sources/nftrace_message.h"

namespace natbpf {

// Attributes newer than Debian 12's uapi header (sent by kernel 6.18).
inline constexpr uint16_t kCtId = 18, kCtDirection = 19, kCtStatus = 20, kCtState = 21;

class TraceMsg {
 public:
  explicit TraceMsg(uint8_t family = NFPROTO_INET, uint16_t msg_type = NFT_MSG_TRACE) {
    nlh_ = mnl_nlmsg_put_header(buf_);
    nlh_->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg_type);
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(nfgenmsg)));
    nfg->nfgen_family = family;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
  }
  TraceMsg(const TraceMsg&) = delete;
  TraceMsg& operator=(const TraceMsg&) = delete;

  // The attributes every trace message carries, in the kernel's order.
  TraceMsg& basics(uint32_t type, uint32_t id = 0x1a2b3c4d, const char* table = "filter",
                   const char* chain = "allowed_dnats") {
    be32(NFTA_TRACE_NFPROTO, NFPROTO_IPV4);
    be32(NFTA_TRACE_TYPE, type);
    be32(NFTA_TRACE_ID, id);
    str(NFTA_TRACE_CHAIN, chain);
    str(NFTA_TRACE_TABLE, table);
    return *this;
  }
  TraceMsg& str(uint16_t type, const char* s) {
    mnl_attr_put_strz(nlh_, type, s);
    return *this;
  }
  TraceMsg& be32(uint16_t type, uint32_t v) {
    mnl_attr_put_u32(nlh_, type, htonl(v));
    return *this;
  }
  TraceMsg& be16(uint16_t type, uint16_t v) {
    mnl_attr_put_u16(nlh_, type, htons(v));
    return *this;
  }
  TraceMsg& be64(uint16_t type, uint64_t v) {
    mnl_attr_put_u64(nlh_, type, htobe64(v));
    return *this;
  }
  TraceMsg& u8(uint16_t type, uint8_t v) {
    mnl_attr_put_u8(nlh_, type, v);
    return *this;
  }
  TraceMsg& raw(uint16_t type, const std::vector<uint8_t>& bytes) {
    mnl_attr_put(nlh_, type, bytes.size(), bytes.data());
    return *this;
  }
  TraceMsg& verdict(int32_t code, const char* chain = nullptr) {
    nlattr* nest = mnl_attr_nest_start(nlh_, NFTA_TRACE_VERDICT);
    mnl_attr_put_u32(nlh_, NFTA_VERDICT_CODE, htonl(static_cast<uint32_t>(code)));
    if (chain) mnl_attr_put_strz(nlh_, NFTA_VERDICT_CHAIN, chain);
    mnl_attr_nest_end(nlh_, nest);
    return *this;
  }

  nlmsghdr* nlh() { return nlh_; }
  size_t len() const { return nlh_->nlmsg_len; }
  Result<NftTraceEvent> parse() const { return parse_nftrace_message(nlh_, nlh_->nlmsg_len); }

 private:
  alignas(nlmsghdr) char buf_[8192] = {};
  nlmsghdr* nlh_;
};

inline std::vector<uint8_t> ipv4_header(uint8_t proto, const char* src, const char* dst, uint16_t tot_len,
                                 uint16_t ip_id, uint16_t frag = 0x4000) {
  std::vector<uint8_t> h(20, 0);
  h[0] = 0x45;
  h[2] = tot_len >> 8, h[3] = tot_len & 0xff;
  h[4] = ip_id >> 8, h[5] = ip_id & 0xff;
  h[6] = frag >> 8, h[7] = frag & 0xff;
  h[8] = 64;
  h[9] = proto;
  inet_pton(AF_INET, src, &h[12]);
  inet_pton(AF_INET, dst, &h[16]);
  return h;
}

inline std::vector<uint8_t> ipv6_header(uint8_t nexthdr, const char* src, const char* dst, uint16_t payload_len) {
  std::vector<uint8_t> h(40, 0);
  h[0] = 0x60;
  h[4] = payload_len >> 8, h[5] = payload_len & 0xff;
  h[6] = nexthdr;
  h[7] = 64;
  inet_pton(AF_INET6, src, &h[8]);
  inet_pton(AF_INET6, dst, &h[24]);
  return h;
}

inline std::vector<uint8_t> tcp_header(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags) {
  std::vector<uint8_t> h(20, 0);
  h[0] = sport >> 8, h[1] = sport & 0xff;
  h[2] = dport >> 8, h[3] = dport & 0xff;
  h[4] = seq >> 24, h[5] = (seq >> 16) & 0xff, h[6] = (seq >> 8) & 0xff, h[7] = seq & 0xff;
  h[12] = 0x50;
  h[13] = flags;
  return h;
}

inline std::vector<uint8_t> udp_header(uint16_t sport, uint16_t dport, uint16_t len) {
  return {static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport), static_cast<uint8_t>(dport >> 8),
          static_cast<uint8_t>(dport),      static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0};
}

// One NFLOG packet message as nfnetlink_log sends iptables TRACE: the log
// prefix ("TRACE: raw:PREROUTING:rule:1 "), the input interface and the packet.
inline std::vector<uint8_t> nflog_message(const char* prefix, const std::vector<uint8_t>& packet) {
  alignas(nlmsghdr) char buf[4096] = {};
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = NFPROTO_IPV4;
  mnl_attr_put_u32(nlh, NFULA_IFINDEX_INDEV, htonl(2));
  mnl_attr_put(nlh, NFULA_PAYLOAD, packet.size(), packet.data());
  mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
  auto* p = reinterpret_cast<const uint8_t*>(buf);
  return std::vector<uint8_t>(p, p + nlh->nlmsg_len);
}

}  // namespace natbpf
