#include "sources/nft_values.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <vector>

namespace natbpf::nft_values {
namespace {

const char* addr_type(uint32_t t) {
  static const char* const names[] = {"unspec",    "unicast",   "local",       "broadcast", "anycast",
                                      "multicast", "blackhole", "unreachable", "prohibit"};
  return t < std::size(names) ? names[t] : nullptr;
}

}  // namespace

uint32_t host_u32(const std::string& b) {
  uint32_t v = 0;
  std::memcpy(&v, b.data(), std::min<size_t>(4, b.size()));
  return v;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

const char* proto_name(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "ipv6-icmp";
    case IPPROTO_SCTP: return "sctp";
    case IPPROTO_DCCP: return "dccp";
    case IPPROTO_UDPLITE: return "udplite";
    case IPPROTO_GRE: return "gre";
    case IPPROTO_ESP: return "esp";
    case IPPROTO_AH: return "ah";
    default: return nullptr;
  }
}

std::optional<std::string> ct_states(uint32_t mask) {
  static const std::array<std::pair<uint32_t, const char*>, 5> names = {
      {{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}};
  std::string out;
  for (auto [bit, name] : names)
    if (mask & bit) {
      if (!out.empty()) out += ',';
      out += name;
      mask &= ~bit;
    }
  if (mask || out.empty()) return std::nullopt;
  return out;
}


std::optional<std::string> format(Kind kind, const std::string& b, int prefix) {
  char buf[INET6_ADDRSTRLEN];
  switch (kind) {
    case Kind::Addr4:
    case Kind::Addr6: {
      bool v4 = kind == Kind::Addr4;
      std::string addr = b;
      if (prefix >= 0) addr.resize(v4 ? 4 : 16, '\0');  // the bytes a prefix's shorter load left out
      if (addr.size() != (v4 ? 4u : 16u) || !inet_ntop(v4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf)))
        return std::nullopt;
      std::string out = buf;
      if (prefix >= 0) {
        if (prefix >= (v4 ? 32 : 128)) return std::nullopt;  // nft prints no mask that keeps every bit
        out += '/';
        out += std::to_string(prefix);
      }
      return out;
    }
    case Kind::Port:
      if (b.size() != 2) return std::nullopt;
      return std::to_string(uint8_t(b[0]) << 8 | uint8_t(b[1]));
    case Kind::Proto:
      if (b.size() != 1 || !proto_name(uint8_t(b[0]))) return std::nullopt;
      return proto_name(uint8_t(b[0]));
    case Kind::Nfproto:
      if (b.size() != 1 || (b[0] != NFPROTO_IPV4 && b[0] != NFPROTO_IPV6)) return std::nullopt;
      return b[0] == NFPROTO_IPV4 ? "ipv4" : "ipv6";
    case Kind::Mark:
      if (b.size() != 4) return std::nullopt;
      return hex32(host_u32(b));
    case Kind::Int:
      if (b.size() != 4) return std::nullopt;
      return std::to_string(host_u32(b));
    case Kind::AddrType:
      if (b.size() != 4 || !addr_type(host_u32(b))) return std::nullopt;
      return addr_type(host_u32(b));
    case Kind::Iface: {
      // Shorter, or without a NUL: a wildcard ("eth*"); nft also escapes a name ending in '*'.
      if (b.size() != 16 || b.find('\0') == std::string::npos) return std::nullopt;
      std::string name(b.c_str());
      if (name.empty() || name.back() == '*') return std::nullopt;
      return "\"" + name + "\"";
    }
    default: return std::nullopt;
  }
}

std::optional<std::string> verdict_text(int32_t code, const std::string& chain) {
  switch (code) {
    case NF_ACCEPT: return "accept";
    case NF_DROP: return "drop";
    case NFT_CONTINUE: return "continue";
    case NFT_RETURN: return "return";
    case NFT_JUMP: return chain.empty() ? std::nullopt : std::optional<std::string>("jump " + chain);
    case NFT_GOTO: return chain.empty() ? std::nullopt : std::optional<std::string>("goto " + chain);
    default: return std::nullopt;
  }
}

int prefix_len(const std::string& mask) {
  int n = 0;
  bool zeros = false;
  for (unsigned char c : mask)
    for (int bit = 7; bit >= 0; bit--) {
      bool one = c >> bit & 1;
      if (one && zeros) return -1;
      if (one) n++;
      else zeros = true;
    }
  return n;
}

std::optional<std::string> set_key(const std::string& key, uint32_t key_type, uint32_t key_len) {
  // nft's datatype ids (src/datatype.h: TYPE_IPADDR, ...) and TYPE_BITS.
  constexpr uint32_t kIpv4 = 7, kIpv6 = 8, kProto = 12, kService = 13, kBits = 6;
  std::vector<std::string> fields;
  for (size_t at = 0;;) {
    size_t dot = key.find(" . ", at);
    fields.push_back(key.substr(at, dot == std::string::npos ? std::string::npos : dot - at));
    if (dot == std::string::npos) break;
    at = dot + 3;
  }
  if (fields.size() > 5 || (key_type >> (kBits * fields.size())) != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < fields.size(); i++) {
    uint32_t type = key_type >> (kBits * (fields.size() - 1 - i)) & ((1u << kBits) - 1);
    const std::string& f = fields[i];
    std::string bytes;
    if (type == kIpv4 || type == kIpv6) {
      std::array<unsigned char, 16> a{};
      if (inet_pton(type == kIpv4 ? AF_INET : AF_INET6, f.c_str(), a.data()) != 1) return std::nullopt;
      bytes.assign(reinterpret_cast<const char*>(a.data()), type == kIpv4 ? 4 : 16);
    } else if (type == kProto) {
      std::optional<uint8_t> p;
      for (unsigned v = 0; v < 256 && !p; v++)
        if (const char* name = proto_name(uint8_t(v)); name && f == name) p = uint8_t(v);
      if (!p && !f.empty() && f.size() <= 3 && std::all_of(f.begin(), f.end(), ::isdigit) && std::stoul(f) < 256)
        p = uint8_t(std::stoul(f));
      if (!p) return std::nullopt;
      bytes.assign(1, char(*p));
    } else if (type == kService) {
      if (f.empty() || f.size() > 5 || !std::all_of(f.begin(), f.end(), ::isdigit) || std::stoul(f) > 65535)
        return std::nullopt;
      uint16_t port = htons(uint16_t(std::stoul(f)));
      bytes.assign(reinterpret_cast<const char*>(&port), 2);
    } else {
      return std::nullopt;
    }
    if (fields.size() > 1) bytes.resize((bytes.size() + 3) / 4 * 4, '\0');
    out += bytes;
  }
  if (out.size() != key_len) return std::nullopt;
  return out;
}

}  // namespace natbpf::nft_values
