#include "util/names.h"

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

const char* exit_name(Origin origin) {
  switch (origin) {
    case Origin::Fentry: return "fexit";
    case Origin::Kprobe: return "kretprobe";
    default: return to_string(origin);
  }
}

const char* to_string(NftVerdict verdict) {
  switch (verdict) {
    case NftVerdict::Accept: return "accept";
    case NftVerdict::Drop: return "drop";
    case NftVerdict::Queue: return "queue";
    case NftVerdict::Stolen: return "stolen";
    case NftVerdict::Repeat: return "repeat";
    case NftVerdict::Stop: return "stop";
    case NftVerdict::Continue: return "continue";
    case NftVerdict::Break: return "break";
    case NftVerdict::Jump: return "jump";
    case NftVerdict::Goto: return "goto";
    case NftVerdict::Return: return "return";
    case NftVerdict::Unknown: return "unknown";
  }
  return "unknown";
}

std::string family_name(uint8_t nfproto) {
  switch (nfproto) {
    case 1: return "inet";
    case 2: return "ip";
    case 3: return "arp";
    case 5: return "netdev";
    case 7: return "bridge";
    case 10: return "ip6";
  }
  return "family" + std::to_string(nfproto);
}

std::optional<uint8_t> family_number(const std::string& name) {
  for (uint8_t n : {1, 2, 3, 5, 7, 10})
    if (family_name(n) == name) return n;
  return std::nullopt;
}

const char* nf_hook_name(uint8_t hook) {
  static const char* names[] = {"prerouting", "input", "forward", "output", "postrouting"};
  return hook < 5 ? names[hook] : "?";
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

const char* tcp_state_name(uint8_t s) {
  static const char* names[] = {"NONE",     "SYN_SENT",  "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                                "LAST_ACK", "TIME_WAIT", "CLOSE",    "SYN_SENT2"};
  return s < sizeof(names) / sizeof(names[0]) ? names[s] : "UNKNOWN";
}

bool tcp_state_closing(uint8_t s) { return s >= 4 && s <= 8; }

std::string status_names(uint64_t status) {
  static const char* names[] = {"EXPECTED", "SEEN_REPLY", "ASSURED",  "CONFIRMED", "SRC_NAT",  "DST_NAT",
                                "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
                                "TEMPLATE", "NAT_CLASH", "HELPER", "OFFLOAD", "HW_OFFLOAD"};
  std::string s;
  for (int i = 0; i < 16; i++) {
    if (!(status & (1ULL << i))) continue;
    if (!s.empty()) s += '|';
    s += names[i];
  }
  return s.empty() ? "none" : s;
}

std::string tcp_flag_names(uint8_t flags) {
  static const char letters[] = "FSRPAUEC";
  std::string f;
  for (int i = 0; i < 8; i++)
    if (flags & (1 << i)) f += letters[i];
  return f;
}

}  // namespace natbpf
