// Kernel values in words: the one place that turns netfilter families and
// hooks, IP protocols, conntrack TCP states and status bits, nftables
// verdicts and the origin of an event into the text natbpf prints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace natbpf {

// Which mechanism an event came from: shown to the user as evidence.
enum class Origin { Fentry, Kprobe, TpBtf, RawTp, Nftrace, Ctnetlink, Ruleset, Nflog };
const char* to_string(Origin origin);
// The attach type that saw a function return: records of return values come
// from the exit half of a pair ("fexit", "kretprobe"), whatever its origin.
const char* exit_name(Origin origin);

enum class NftVerdict { Accept, Drop, Queue, Stolen, Repeat, Stop, Continue, Break, Jump, Goto, Return, Unknown };
const char* to_string(NftVerdict verdict);

// NFPROTO_* number as nft names the family ("ip", "ip6", "inet", ...).
std::string family_name(uint8_t nfproto);
// The NFPROTO_* number of a family name family_name gives; nullopt for another.
std::optional<uint8_t> family_number(const std::string& name);
// NF_INET_* hook number -> "prerouting", "input", "forward", "output", "postrouting".
const char* nf_hook_name(uint8_t hook);
// "tcp", "udp", "icmp", "icmpv6", else "proto N".
std::string proto_name(uint8_t proto);

// enum tcp_conntrack: "SYN_SENT", "ESTABLISHED", ... as conntrack -L prints them.
const char* tcp_state_name(uint8_t state);
// TIME_WAIT, CLOSE, FIN_WAIT, CLOSE_WAIT, LAST_ACK: the connection is ending.
bool tcp_state_closing(uint8_t state);

// enum ip_conntrack_status bits: "CONFIRMED|SRC_NAT|...", "none" when no bit is set.
std::string status_names(uint64_t status);
// TCP flag letters as the text shows them: "S", "SA", "FA" (FSRPAUEC order).
std::string tcp_flag_names(uint8_t flags);

}  // namespace natbpf
