#include "sources/sock_diag.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <memory>
#include <string>

#include "util/netlink.h"

namespace natbpf {
namespace {

constexpr uint32_t kTcpListen = 10;  // TCP_LISTEN in the kernel's tcp_states.h
constexpr uint32_t kTcpClose = 7;    // an unconnected UDP socket's state

// "10.0.0.1:80", "[::1]:80" (appended piece by piece: GCC 12 at -O3 warns
// falsely about "[" + std::string).
std::string address_text(uint8_t family, const char* addr, uint16_t port) {
  std::string s;
  if (family == AF_INET6) s += '[';
  s += addr;
  if (family == AF_INET6) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

struct Found {
  Listener listener;
  uint32_t inode = 0;
};

// Returns whether the kernel answered the dump (false: no sock_diag handler
// for the protocol, e.g. tcp_diag not loaded).
bool dump(mnl_socket* nl, uint8_t family, uint8_t proto, uint16_t port, std::vector<Found>& out) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = static_cast<uint32_t>(family);
  auto* req = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = family;
  req->sdiag_protocol = proto;
  req->idiag_states = 1u << (proto == IPPROTO_TCP ? kTcpListen : kTcpClose);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return false;
  bool answered = true;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
    if (n <= 0) return false;
    bool done = false;
    for_each_nlmsg({reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n)}, [&](const nlmsghdr* m) {
      if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) {
        if (m->nlmsg_type == NLMSG_ERROR) answered = false;
        done = true;
        return;
      }
      if (m->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(m) < sizeof(inet_diag_msg)) return;
      auto* d = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(m));
      if (ntohs(d->id.idiag_sport) != port) return;
      // A UDP socket that connect()ed has a peer: it does not receive
      // datagrams addressed to the port from anyone.
      if (proto == IPPROTO_UDP && d->id.idiag_dport != 0) return;
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(family, d->id.idiag_src, text, sizeof(text));
      out.push_back({Listener{address_text(family, text, port), 0, ""}, d->idiag_inode});
    });
    if (done) return answered;
  }
}

// The same from /proc/net/{tcp,udp}{,6} ("0100007F:1F90 ... 0A ... inode"),
// where no sock_diag module answers.
void from_proc(uint8_t family, uint8_t proto, uint16_t port, std::vector<Found>& out) {
  std::string path = std::string("/proc/net/") + (proto == IPPROTO_TCP ? "tcp" : "udp") + (family == AF_INET6 ? "6" : "");
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  for (auto& [l, inode] : parse_proc_net(text.str(), family, proto, port)) out.push_back({l, inode});
}

}  // namespace

std::vector<std::pair<Listener, uint32_t>> parse_proc_net(const std::string& text, uint8_t family, uint8_t proto,
                                                          uint16_t port) {
  std::vector<std::pair<Listener, uint32_t>> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  const char* want_state = proto == IPPROTO_TCP ? "0A" : "07";
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
    if (!(f >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
    size_t colon = local.find(':');
    if (colon == std::string::npos || st != want_state) continue;
    if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
    if (proto == IPPROTO_UDP && remote.substr(remote.find(':') + 1) != "0000") continue;  // connected
    std::string hex = local.substr(0, colon);
    uint8_t bytes[16] = {};
    size_t words = hex.size() / 8;
    if (words != (family == AF_INET6 ? 4u : 1u)) continue;
    for (size_t w = 0; w < words; w++) {
      uint32_t v = static_cast<uint32_t>(std::strtoul(hex.substr(w * 8, 8).c_str(), nullptr, 16));
      std::memcpy(bytes + w * 4, &v, 4);  // the kernel printed each 32-bit word in host order
    }
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, bytes, text, sizeof(text));
    out.push_back({Listener{address_text(family, text, port), 0, ""},
                   static_cast<uint32_t>(std::strtoul(inode.c_str(), nullptr, 10))});
  }
  return out;
}

namespace {

// socket inode -> (pid, comm) for the inodes asked, from /proc/*/fd.
void find_owners(std::vector<Found>& found) {
  std::map<uint32_t, Found*> want;
  for (auto& f : found)
    if (f.inode) want[f.inode] = &f;
  if (want.empty()) return;
  std::unique_ptr<DIR, int (*)(DIR*)> proc(opendir("/proc"), closedir);
  if (!proc) return;
  size_t left = want.size();
  while (dirent* p = readdir(proc.get())) {
    if (left == 0) break;
    char* end = nullptr;
    unsigned long pid = std::strtoul(p->d_name, &end, 10);
    if (!pid || *end) continue;
    std::string fd_dir = "/proc/" + std::string(p->d_name) + "/fd";
    std::unique_ptr<DIR, int (*)(DIR*)> fds(opendir(fd_dir.c_str()), closedir);
    if (!fds) continue;
    while (dirent* f = readdir(fds.get())) {
      char link[64] = {};
      std::string path = fd_dir + "/" + f->d_name;
      ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
      if (n <= 9 || std::strncmp(link, "socket:[", 8) != 0) continue;
      auto it = want.find(static_cast<uint32_t>(std::strtoul(link + 8, nullptr, 10)));
      if (it == want.end() || it->second->listener.pid) continue;
      it->second->listener.pid = static_cast<uint32_t>(pid);
      std::ifstream comm("/proc/" + std::string(p->d_name) + "/comm");
      std::getline(comm, it->second->listener.comm);
      left--;
    }
  }
}

}  // namespace

std::vector<Listener> listening_sockets(uint8_t proto, uint16_t port) {
  std::vector<Listener> out;
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return out;
  std::unique_ptr<mnl_socket, int (*)(mnl_socket*)> nl(mnl_socket_open(NETLINK_SOCK_DIAG), mnl_socket_close);
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    std::vector<Found> found;
    for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}}) from_proc(family, proto, port, found);
    find_owners(found);
    for (auto& f : found) out.push_back(std::move(f.listener));
    return out;
  }
  std::vector<Found> found;
  for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}})
    if (!dump(nl.get(), family, proto, port, found)) from_proc(family, proto, port, found);
  find_owners(found);
  for (auto& f : found) out.push_back(std::move(f.listener));
  return out;
}

}  // namespace natbpf
