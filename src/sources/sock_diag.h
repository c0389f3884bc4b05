// Sockets listening on a port in natbpf's current namespace, asked with
// sock_diag (inet_diag over NETLINK_SOCK_DIAG, as `ss` does), and the
// processes holding them (their /proc/PID/fd links name the socket inode).
#pragma once

#include <cstdint>
#include <vector>

#include "sources/events.h"

namespace natbpf {

// TCP sockets in LISTEN and unconnected UDP sockets bound to port, IPv4 and
// IPv6; empty when sock_diag is unavailable.
std::vector<Listener> listening_sockets(uint8_t proto, uint16_t port);

}  // namespace natbpf
