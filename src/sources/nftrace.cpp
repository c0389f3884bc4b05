#include "sources/nftrace.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>

#include <cerrno>

#include "util/libbpf_quiet.h"
#include "util/netlink.h"
#include "util/runtime.h"

namespace natbpf {

void NftraceListener::SocketCloser::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

NftraceListener::NftraceListener(mnl_socket* socket) : socket_(socket), buffer_(64 * 1024) {}

int NftraceListener::fd() const { return socket_ ? mnl_socket_get_fd(socket_.get()) : -1; }

Result<NftraceListener> NftraceListener::open(int rcvbuf_bytes) {
  mnl_socket* raw = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (!raw) return Error{"nftrace netlink socket: " + errno_name(errno), "the kernel needs CONFIG_NETFILTER_NETLINK"};
  NftraceListener listener(raw);
  if (mnl_socket_bind(raw, 0, MNL_SOCKET_AUTOPID) < 0) return Error{"nftrace netlink bind: " + errno_name(errno), ""};
  int group = NFNLGRP_NFTRACE;
  if (mnl_socket_setsockopt(raw, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
    return Error{"joining the nftables trace group: " + errno_name(errno), "needs CAP_NET_ADMIN: run as root", 2};
  if (rcvbuf_bytes > 0)
    if (int err = set_receive_buffer(raw, rcvbuf_bytes))
      return Error{"nftrace receive buffer: " + errno_name(err), ""};
  return listener;
}

void NftraceListener::note_parse_error(std::string message) {
  ++parse_errors_;
  last_parse_error_ = std::move(message);
}

Status NftraceListener::drain(const std::function<void(NftTraceEvent&&)>& sink) {
  if (!socket_) return Error{"nftrace listener used after move", ""};
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = recvmsg(fd(), &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Ok{};
      if (errno == ENOBUFS) {  // the socket buffer overflowed: messages were dropped
        ++lost_overruns_;
        continue;
      }
      return Error{"reading nftables trace messages: " + errno_name(errno), ""};
    }
    uint64_t now = monotonic_ns();
    if (msg.msg_flags & MSG_TRUNC) {
      note_parse_error("nftables trace datagram larger than " + std::to_string(buffer_.size()) + " bytes");
      continue;
    }
    if (from.nl_pid != 0) {  // only the kernel may speak on this group
      note_parse_error("nftables trace message from port " + std::to_string(from.nl_pid) + ", not the kernel");
      continue;
    }
    std::span<const uint8_t> datagram(buffer_.data(), static_cast<size_t>(n));
    if (tap_) tap_(datagram, now);
    parse_nftrace_datagram(datagram, now, sink, [this](std::string m) { note_parse_error(std::move(m)); });
  }
}

Status NftraceSource::start() {
  auto l = NftraceListener::open();
  if (!l) return l.error();
  listener_.emplace(std::move(*l));
  if (tap_) listener_->set_tap(tap_);
  return Ok{};
}

}  // namespace natbpf
