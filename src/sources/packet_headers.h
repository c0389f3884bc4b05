// IPv4/IPv6 network and transport headers -> Packet. Used for the header
// copies in an nftables trace message (NFTA_TRACE_NETWORK_HEADER and
// NFTA_TRACE_TRANSPORT_HEADER, capped by the kernel at 40 and 20 bytes) and
// for whole packets such as NFLOG payloads. Only the bytes that are there are
// read; what cannot be decoded is nullopt, never a guess.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "sources/events.h"

namespace natbpf {

// network holds the IPv4 header (options included), transport what follows it.
std::optional<Packet> decode_ipv4(std::span<const uint8_t> network, std::span<const uint8_t> transport);

// network holds the 40-byte fixed IPv6 header, transport what follows it.
std::optional<Packet> decode_ipv6(std::span<const uint8_t> network, std::span<const uint8_t> transport);

// Decodes a whole IP packet (network header first), e.g. an NFLOG payload.
std::optional<Packet> decode_ip_packet(std::span<const uint8_t> data);

}  // namespace natbpf
