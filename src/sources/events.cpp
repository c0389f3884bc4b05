#include "sources/events.h"

#include <arpa/inet.h>

#include <cstring>

namespace natbpf {

std::string Addr::str() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == 2) {
    // Dotted quad by hand: inet_ntop formats through sprintf, and a saved
    // log's stories print addresses millions of times. Same text.
    char* p = buf;
    for (size_t i = 0; i < 4; i++) {
      unsigned v = bytes[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      *p++ = i < 3 ? '.' : '\0';
    }
    return std::string(buf, p - buf - 1);
  }
  if (family == 10) inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
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

std::string endpoint(const Addr& a, uint16_t port) {
  std::string s;
  if (a.family == 10) s += '[';
  s += a.str();
  if (a.family == 10) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

namespace {

std::string endpoint(const Addr& a, uint16_t port, bool has_ports) { return has_ports ? endpoint(a, port) : a.str(); }

}  // namespace

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132 || proto == 136; }

std::string Tuple::str() const {
  bool p = has_ports(proto);
  return proto_name(proto) + " " + endpoint(src, sport, p) + " -> " + endpoint(dst, dport, p);
}

std::string Packet::str() const {
  bool p = has_ports(l4proto);
  std::string s = proto_name(l4proto) + " " + endpoint(saddr, sport, p) + " -> " + endpoint(daddr, dport, p);
  if (l4proto == 6) s += " [" + tcp_flag_names(tcp_flags) + "]";
  return s;
}

std::vector<std::string> NatRange::flag_names() const {
  static const std::pair<uint32_t, const char*> names[] = {
      {1 << 2, "random"}, {1 << 3, "persistent"}, {1 << 4, "random-fully"}, {1 << 5, "offset"}, {1 << 6, "netmap"}};
  std::vector<std::string> out;
  for (auto [bit, name] : names)
    if (flags & bit) out.push_back(name);
  return out;
}

std::string NatRange::flags_str() const {
  std::string s;
  for (const auto& name : flag_names()) s += (s.empty() ? "" : ",") + name;
  return s;
}

}  // namespace natbpf
