#include "sources/events.h"

#include <arpa/inet.h>

#include <cstring>

namespace natbpf {

const char* to_string(Origin origin) {
  switch (origin) {
    case Origin::Fentry: return "fentry";
    case Origin::Kprobe: return "kprobe";
    case Origin::TpBtf: return "tp_btf";
    case Origin::RawTp: return "raw_tp";
    case Origin::Nftrace: return "nftrace";
    case Origin::Ctnetlink: return "ctnetlink";
    case Origin::Ruleset: return "ruleset";
    case Origin::Nflog: return "nflog";
  }
  return "?";
}

std::string Addr::str() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == 2) inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf));
  else if (family == 10) inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<Addr> Addr::parse(const std::string& text) {
  Addr a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.family = 2;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.family = 10;
    return a;
  }
  return std::nullopt;
}

std::string proto_name(uint8_t p) {
  switch (p) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    default: return "proto " + std::to_string(p);
  }
}

std::string endpoint(const Addr& a, uint16_t port) {
  return (a.family == 10 ? "[" + a.str() + "]" : a.str()) + ":" + std::to_string(port);
}

const char* nf_hook_name(uint8_t hook) {
  static const char* names[] = {"prerouting", "input", "forward", "output", "postrouting"};
  return hook < 5 ? names[hook] : "?";
}

namespace {

std::string endpoint(const Addr& a, uint16_t port, bool has_ports) { return has_ports ? endpoint(a, port) : a.str(); }

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132 || proto == 136; }

}  // namespace

std::string Tuple::str() const {
  bool p = has_ports(proto);
  return proto_name(proto) + " " + endpoint(src, sport, p) + " -> " + endpoint(dst, dport, p);
}

std::string Packet::str() const {
  bool p = has_ports(l4proto);
  std::string s = proto_name(l4proto) + " " + endpoint(saddr, sport, p) + " -> " + endpoint(daddr, dport, p);
  if (l4proto == 6) {
    static const char names[] = "FSRPAUEC";
    std::string f;
    for (int i = 0; i < 8; i++)
      if (tcp_flags & (1 << i)) f += names[i];
    s += " [" + f + "]";
  }
  return s;
}

std::string status_names(uint64_t status) {
  static const char* names[] = {"EXPECTED", "SEEN_REPLY", "ASSURED",  "CONFIRMED", "SRC_NAT",  "DST_NAT",
                                "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
                                "TEMPLATE", "NAT_CLASH", "HELPER", "OFFLOAD", "HW_OFFLOAD"};
  std::string s;
  for (int i = 0; i < 16; i++)
    if (status & (1ULL << i)) s += (s.empty() ? "" : "|") + std::string(names[i]);
  return s.empty() ? "none" : s;
}

std::string NatRange::flags_str() const {
  static const std::pair<uint32_t, const char*> names[] = {
      {1 << 2, "random"}, {1 << 3, "persistent"}, {1 << 4, "random-fully"}, {1 << 5, "offset"}, {1 << 6, "netmap"}};
  std::string s;
  for (auto [bit, name] : names)
    if (flags & bit) s += (s.empty() ? "" : ",") + std::string(name);
  return s;
}

}  // namespace natbpf
