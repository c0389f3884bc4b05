// Sockets listening on a port in natbpf's current namespace, asked with
// sock_diag (inet_diag over NETLINK_SOCK_DIAG, as `ss` does), and the
// processes holding them (their /proc/PID/fd links name the socket inode).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sources/events.h"

namespace natbpf {

// TCP sockets in LISTEN and unconnected UDP sockets bound to port, IPv4 and
// IPv6; empty when sock_diag is unavailable.
std::vector<Listener> listening_sockets(uint8_t proto, uint16_t port);

// The listeners on port in /proc/net/{tcp,udp}{,6} text (the fallback where
// no sock_diag module answers), each with its socket inode.
std::vector<std::pair<Listener, uint32_t>> parse_proc_net(const std::string& text, uint8_t family, uint8_t proto,
                                                          uint16_t port);

}  // namespace natbpf
