// Constants of nftables rules as nft 1.0.6 prints them (addresses,
// ports, protocols, marks, conntrack states, address types, verdicts), for
// nft_rule_text.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace natbpf::nft_values {

// What a register holds, as nft names it.
enum class Kind { Addr4, Addr6, Port, Proto, Nfproto, Mark, CtState, Int, AddrType, Iface, Const };

// A 32-bit value in host order, from the first 4 bytes (fewer: zero-padded).
uint32_t host_u32(const std::string& b);
// "0x00004000", as nft prints marks and masks.
std::string hex32(uint32_t v);
// "tcp", "udp", ... as nft names an IP protocol; nullptr for one it prints as a number.
const char* proto_name(uint8_t p);
// The conntrack states of a mask, as nft lists them ("established,related").
std::optional<std::string> ct_states(uint32_t mask);
// A constant of `kind` (an address: with "/prefix" when prefix >= 0, its
// missing bytes zero); nullopt when nft would print it otherwise.
std::optional<std::string> format(Kind kind, const std::string& b, int prefix = -1);
// "accept", "jump CHAIN", ...; nullopt for a code nft prints otherwise.
std::optional<std::string> verdict_text(int32_t code, const std::string& chain);
// The leading one-bits of a mask when it is a prefix (ones, then zeros); -1 otherwise.
int prefix_len(const std::string& mask);

// A set lookup's key as natbpf writes it ("192.168.70.10 . tcp . 22":
// addresses, protocol names or numbers, ports) in the bytes a set of
// key_type (nft's datatype ids, 6 bits per field of a concatenation) and
// key_len holds: each field of a concatenation padded to 4 bytes. nullopt
// when the key does not fit that type.
std::optional<std::string> set_key(const std::string& key, uint32_t key_type, uint32_t key_len);

}  // namespace natbpf::nft_values
