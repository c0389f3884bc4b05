#include "sources/packet_queue.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "util/libbpf_quiet.h"
#include "util/netlink.h"

namespace natbpf {
namespace {

// Binds queue `number` on nl, copying no payload (only the id is used),
// failing open (a full queue lets packets through rather than dropping
// them) and taking GSO packets whole (else the kernel segments one before
// queueing it, and it goes on as several). Returns the kernel's errno (0: bound).
int bind_queue(mnl_socket* nl, uint16_t number) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = put_nfnl_request(buf.data(), NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG, NLM_F_ACK, AF_UNSPEC, number);
  nfqnl_msg_config_cmd cmd{NFQNL_CFG_CMD_BIND, 0, htons(AF_UNSPEC)};
  mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof(cmd), &cmd);
  nfqnl_msg_config_params params{htonl(0), NFQNL_COPY_META};
  mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof(params), &params);
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
  nlh->nlmsg_seq = 1;
  return nfnl_request_ack(nl, nlh);
}

}  // namespace

std::optional<uint32_t> highest_queued_id(std::span<const uint8_t> datagram, uint16_t queue) {
  std::optional<uint32_t> highest;
  for_each_nlmsg(datagram, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) return;
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return;
    auto* g = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    if (ntohs(g->res_id) != queue) return;
    const nlattr* hdr = nullptr;
    parse_nlmsg_attrs(
        nlh, sizeof(nfgenmsg),
        [](const nlattr* a, void* data) {
          if (mnl_attr_get_type(a) == NFQA_PACKET_HDR && mnl_attr_get_payload_len(a) >= sizeof(nfqnl_msg_packet_hdr))
            *static_cast<const nlattr**>(data) = a;
          return MNL_CB_OK;
        },
        &hdr);
    if (!hdr) return;
    nfqnl_msg_packet_hdr ph;
    std::memcpy(&ph, mnl_attr_get_payload(hdr), sizeof(ph));
    uint32_t id = ntohl(ph.packet_id);
    if (!highest || id > *highest) highest = id;
  });
  return highest;
}

Result<PacketQueue> PacketQueue::bind(uint16_t first, int tries) {
  PacketQueue q;
  q.nl_.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!q.nl_ || mnl_socket_bind(q.nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"NFQUEUE netlink socket: " + errno_name(errno), "run it as root (CAP_NET_ADMIN)"};
  int err = 0;
  for (int i = 0; i < tries; i++) {
    uint16_t number = static_cast<uint16_t>(first + i);
    err = bind_queue(q.nl_.get(), number);
    if (err == 0) {
      q.number_ = number;
      return q;
    }
    // A queue another socket holds: EPERM (nfqnl_recv_config checks the
    // owner first), EBUSY for one bound before. Anything else (no
    // nfnetlink_queue) is the same for every number.
    if (err != EPERM && err != EBUSY) break;
  }
  return Error{"cannot bind an NFQUEUE queue (" + errno_name(err) + ")", "is nfnetlink_queue available here?"};
}

int PacketQueue::fd() const { return mnl_socket_get_fd(nl_.get()); }

Result<std::optional<uint32_t>> PacketQueue::read() {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  std::optional<uint32_t> highest;
  for (;;) {
    ssize_t n = recv(fd(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    // ENOBUFS: messages were lost; the queue fails open, so the kernel let
    // those packets go on itself.
    if (n < 0 && errno == ENOBUFS) continue;
    if (n < 0 && errno == EAGAIN) return highest;
    if (n < 0) return Error{"NFQUEUE read: " + errno_name(errno), ""};
    auto id = highest_queued_id({buf.data(), static_cast<size_t>(n)}, number_);
    if (id && (!highest || *id > *highest)) highest = id;
  }
}

Status PacketQueue::let_go_through(uint32_t id, bool repeat) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  // A batch verdict: every packet of the queue with an id up to `id`.
  nlmsghdr* nlh = put_nfnl_request(buf.data(), NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT_BATCH, 0, AF_UNSPEC, number_);
  nfqnl_msg_verdict_hdr v{htonl(repeat ? NF_REPEAT : NF_ACCEPT), htonl(id)};
  mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof(v), &v);
  if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0)
    return Error{"NFQUEUE verdict: " + errno_name(errno), ""};
  return Ok{};
}

}  // namespace natbpf
