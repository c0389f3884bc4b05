#include "sources/packet_headers.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace natbpf {
namespace {

uint16_t read16(std::span<const uint8_t> b, size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }

uint32_t read32(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint32_t>(b[off]) << 24 | static_cast<uint32_t>(b[off + 1]) << 16 |
         static_cast<uint32_t>(b[off + 2]) << 8 | b[off + 3];
}

Addr addr_from(std::span<const uint8_t> b, size_t off, uint8_t family) {
  Addr a;
  a.family = family;
  std::memcpy(a.bytes.data(), b.data() + off, family == AF_INET ? 4 : 16);
  return a;
}

bool has_port_header(uint8_t l4proto) {
  return l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP || l4proto == IPPROTO_UDPLITE ||
         l4proto == IPPROTO_SCTP || l4proto == IPPROTO_DCCP;
}

// The kernel copies at most 20 transport bytes (NFT_TRACETYPE_TRANSPORT_HSIZE),
// fewer when the packet is shorter: read only what is there.
void decode_transport(std::span<const uint8_t> th, Packet& p) {
  if (!has_port_header(p.l4proto) || th.size() < 4) return;
  p.sport = read16(th, 0);
  p.dport = read16(th, 2);
  if (p.l4proto != IPPROTO_TCP) return;
  if (th.size() >= 8) p.tcp_seq = read32(th, 4);
  if (th.size() >= 12) p.tcp_ack = read32(th, 8);
  if (th.size() >= 14) p.tcp_flags = th[13];
}

}  // namespace

std::optional<Packet> decode_ipv4(std::span<const uint8_t> nh, std::span<const uint8_t> th) {
  if (nh.size() < 20 || (nh[0] & 0x0f) < 5) return std::nullopt;
  Packet p;
  p.family = AF_INET;
  p.len = read16(nh, 2);
  p.ip_id = read16(nh, 4);
  p.l4proto = nh[9];
  p.saddr = addr_from(nh, 12, AF_INET);
  p.daddr = addr_from(nh, 16, AF_INET);
  // A non-first fragment still gets a "transport header" dumped
  // (nft_set_pktinfo_ipv4 sets thoff for every fragment), but it is payload.
  bool first_fragment = (read16(nh, 6) & 0x1fff) == 0;
  if (first_fragment) decode_transport(th, p);
  return p;
}

std::optional<Packet> decode_ipv6(std::span<const uint8_t> nh, std::span<const uint8_t> th) {
  if (nh.size() < 40) return std::nullopt;
  Packet p;
  p.family = AF_INET6;
  p.len = 40u + read16(nh, 4);
  // The network header is capped at 40 bytes (NFT_TRACETYPE_NETWORK_HSIZE), so
  // extension headers are never included: with one present, nexthdr is the
  // extension and the transport bytes cannot be interpreted.
  p.l4proto = nh[6];
  p.saddr = addr_from(nh, 8, AF_INET6);
  p.daddr = addr_from(nh, 24, AF_INET6);
  decode_transport(th, p);
  return p;
}

std::optional<Packet> decode_ip_packet(std::span<const uint8_t> data) {
  if (data.empty()) return std::nullopt;
  if ((data[0] >> 4) == 4) {
    size_t ihl = size_t(data[0] & 0x0f) * 4;
    if (ihl < 20 || data.size() < ihl) return std::nullopt;
    return decode_ipv4(data.first(ihl), data.subspan(ihl));
  }
  if ((data[0] >> 4) == 6) {
    if (data.size() < 40) return std::nullopt;
    return decode_ipv6(data.first(40), data.subspan(40));
  }
  return std::nullopt;
}

}  // namespace natbpf
