#include "util/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <linux/netfilter/nfnetlink.h>

namespace natbpf {

nlmsghdr* put_nfnl_request(void* buf, uint8_t subsys, uint8_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>((subsys << 8) | type);
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
  return nlh;
}

int nfnl_request_ack(mnl_socket* nl, const nlmsghdr* nlh) {
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return errno;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
  if (n < 0) return errno;
  return mnl_cb_run(buf, n, nlh->nlmsg_seq, mnl_socket_get_portid(nl), nullptr, nullptr) < 0 ? errno : 0;
}

int set_receive_buffer(mnl_socket* nl, int bytes) {
  int fd = mnl_socket_get_fd(nl);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) == 0 ? 0 : errno;
}

}  // namespace natbpf
