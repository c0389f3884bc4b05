#include "util/netlink.h"

#include <arpa/inet.h>
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

}  // namespace natbpf
