#include "kernel/ct_stats.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "util/libbpf_quiet.h"
#include "util/netlink.h"

namespace natbpf {
namespace {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

int collect_attr(const nlattr* attr, void* data) {
  auto* tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(attr);
  if (type <= 0 || type > CTA_STATS_MAX) return MNL_CB_OK;  // unknown: skip
  if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_OK;
  tb[type] = attr;
  return MNL_CB_OK;
}

std::optional<uint32_t> u32_attr(const nlattr* const* tb, int type) {
  if (!tb[type]) return std::nullopt;
  return ntohl(mnl_attr_get_u32(tb[type]));
}

}  // namespace

std::optional<CtCpuStats> parse_ct_stats_message(const void* buf, size_t len) {
  auto* nlh = static_cast<const nlmsghdr*>(buf);
  if (!nlmsg_fits(nlh, len)) return std::nullopt;
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return std::nullopt;
  const nlattr* tb[CTA_STATS_MAX + 1] = {};
  if (parse_nlmsg_attrs(nlh, sizeof(nfgenmsg), collect_attr, tb) < 0) return std::nullopt;
  auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  CtCpuStats s;
  s.cpu = ntohs(nfg->res_id);
  s.found = u32_attr(tb, CTA_STATS_FOUND);
  s.invalid = u32_attr(tb, CTA_STATS_INVALID);
  s.insert = u32_attr(tb, CTA_STATS_INSERT);
  s.insert_failed = u32_attr(tb, CTA_STATS_INSERT_FAILED);
  s.drop = u32_attr(tb, CTA_STATS_DROP);
  s.early_drop = u32_attr(tb, CTA_STATS_EARLY_DROP);
  s.error = u32_attr(tb, CTA_STATS_ERROR);
  s.search_restart = u32_attr(tb, CTA_STATS_SEARCH_RESTART);
  s.clash_resolve = u32_attr(tb, CTA_STATS_CLASH_RESOLVE);
  s.chaintoolong = u32_attr(tb, CTA_STATS_CHAIN_TOOLONG);
  return s;
}

Result<std::vector<CtCpuStats>> read_ct_stats() {
  MnlSocket nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl) return Error{"ctnetlink socket: " + errno_name(errno), "the kernel needs CONFIG_NF_CT_NETLINK"};
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"ctnetlink bind: " + errno_name(errno), ""};

  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return Error{"ctnetlink stats request: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};

  std::vector<CtCpuStats> out;
  unsigned portid = mnl_socket_get_portid(nl.get());
  auto cb = [](const nlmsghdr* m, void* data) -> int {
    auto* v = static_cast<std::vector<CtCpuStats>*>(data);
    if (auto s = parse_ct_stats_message(m, m->nlmsg_len)) v->push_back(*s);
    return MNL_CB_OK;
  };
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), buf, sizeof(buf));
    if (n < 0) return Error{"ctnetlink stats reply: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};
    int r = mnl_cb_run(buf, n, 1, portid, cb, &out);
    if (r < 0) return Error{"ctnetlink stats: " + errno_name(errno), "is conntrack enabled in this kernel?"};
    if (r == MNL_CB_STOP) break;
  }
  return out;
}

CtStatsTotals CtStatsTotals::sum(const std::vector<CtCpuStats>& cpus) {
  CtStatsTotals t;
  for (const auto& c : cpus) {
    t.found += c.found.value_or(0);
    t.invalid += c.invalid.value_or(0);
    t.insert_failed += c.insert_failed.value_or(0);
    t.drop += c.drop.value_or(0);
    t.early_drop += c.early_drop.value_or(0);
    t.error += c.error.value_or(0);
    t.clash_resolve += c.clash_resolve.value_or(0);
    t.chaintoolong += c.chaintoolong.value_or(0);
    t.has_clash_resolve |= c.clash_resolve.has_value();
    t.has_chaintoolong |= c.chaintoolong.has_value();
  }
  return t;
}

CtStatsTotals CtStatsTotals::delta_since(const CtStatsTotals& e) const {
  CtStatsTotals d = *this;
  d.found -= e.found;
  d.invalid -= e.invalid;
  d.insert_failed -= e.insert_failed;
  d.drop -= e.drop;
  d.early_drop -= e.early_drop;
  d.error -= e.error;
  d.clash_resolve -= e.clash_resolve;
  d.chaintoolong -= e.chaintoolong;
  return d;
}

}  // namespace natbpf
