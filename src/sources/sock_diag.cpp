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
#include <memory>
#include <string>

#include "util/netlink.h"

namespace natbpf {
namespace {

constexpr uint32_t kTcpListen = 10;  // TCP_LISTEN in the kernel's tcp_states.h
constexpr uint32_t kTcpClose = 7;    // an unconnected UDP socket's state

struct Found {
  Listener listener;
  uint32_t inode = 0;
};

void dump(mnl_socket* nl, uint8_t family, uint8_t proto, uint16_t port, std::vector<Found>& out) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = static_cast<uint32_t>(family);
  auto* req = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = family;
  req->sdiag_protocol = proto;
  req->idiag_states = 1u << (proto == IPPROTO_TCP ? kTcpListen : kTcpClose);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
    if (n <= 0) return;
    bool done = false;
    for_each_nlmsg({reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n)}, [&](const nlmsghdr* m) {
      if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) {
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
      std::string host = family == AF_INET6 ? "[" + std::string(text) + "]" : std::string(text);
      out.push_back({Listener{host + ":" + std::to_string(port), 0, ""}, d->idiag_inode});
    });
    if (done) return;
  }
}

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
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return out;
  std::vector<Found> found;
  for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}}) dump(nl.get(), family, proto, port, found);
  find_owners(found);
  for (auto& f : found) out.push_back(std::move(f.listener));
  return out;
}

}  // namespace natbpf
