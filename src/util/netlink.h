// Walking the netlink messages of a datagram that came from outside (a
// socket, a recording). libmnl's mnl_nlmsg_ok() compares (int)nlmsg_len with
// the bytes left, so a length above INT_MAX passes as negative and
// mnl_nlmsg_next() then steps gigabytes past the buffer. These checks use
// size_t throughout. Also the header of an nfnetlink request.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace natbpf {

// The header and all nlmsg_len bytes of the message lie within len bytes.
inline bool nlmsg_fits(const nlmsghdr* nlh, size_t len) {
  return len >= sizeof(nlmsghdr) && nlh->nlmsg_len >= sizeof(nlmsghdr) && nlh->nlmsg_len <= len;
}

// mnl_attr_parse(nlh, header_len, cb, data), but walking only the nlmsg_len
// bytes of the message: libmnl's walk ends at nlmsg_len rounded up to 4, so
// the attributes of a last message with an unaligned length (a recording's
// datagram, a fuzzer's) were read up to 3 bytes past the buffer. The caller
// has checked nlmsg_fits.
inline int parse_nlmsg_attrs(const nlmsghdr* nlh, size_t header_len, mnl_attr_cb_t cb, void* data) {
  size_t skip = MNL_ALIGN(header_len);
  if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + skip) return MNL_CB_OK;  // the header's padding is all there is
  size_t payload = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;  // the header's padding is all there is
  return mnl_attr_parse_payload(static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + skip, payload - skip, cb,
                                data);
}

// Calls fn(nlh) for each whole message of the datagram, in order, and stops
// at the first one that does not fit in what is left.
template <typename Fn>
void for_each_nlmsg(std::span<const uint8_t> datagram, Fn&& fn) {
  size_t off = 0;
  while (off < datagram.size()) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data() + off);
    if (!nlmsg_fits(nlh, datagram.size() - off)) return;
    fn(nlh);
    off += NLMSG_ALIGN(static_cast<size_t>(nlh->nlmsg_len));
  }
}

// An nfnetlink request at buf: the netlink header and nfgenmsg of message
// `type` of subsystem `subsys` (NFNL_SUBSYS_QUEUE, _ULOG) for resource
// res_id (a queue number, an NFLOG group), flags beside NLM_F_REQUEST.
nlmsghdr* put_nfnl_request(void* buf, uint8_t subsys, uint8_t type, uint16_t flags, uint8_t family, uint16_t res_id);
// Sends a request with NLM_F_ACK on nl and reads its ack; returns the
// errno the kernel answered (0: done), or of a failed send or receive.
int nfnl_request_ack(mnl_socket* nl, const nlmsghdr* nlh);
// Asks for a receive buffer of `bytes` on nl: SO_RCVBUFFORCE, which ignores
// net.core.rmem_max but needs CAP_NET_ADMIN, else SO_RCVBUF (capped by
// rmem_max). Returns 0, or the errno of SO_RCVBUF.
int set_receive_buffer(mnl_socket* nl, int bytes);

}  // namespace natbpf
