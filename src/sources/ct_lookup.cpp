#include "sources/ct_lookup.h"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

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

// Attribute table for one nesting level: unknown types are skipped, known
// ones are kept only if their payload has the expected length.
template <int Max>
struct AttrTable {
  const nlattr* tb[Max + 1] = {};
  const nlattr* get(int type) const { return type > 0 && type <= Max ? tb[type] : nullptr; }
};

template <int Max>
int collect(const nlattr* attr, void* data) {
  auto* t = static_cast<AttrTable<Max>*>(data);
  int type = mnl_attr_get_type(attr);
  if (type > 0 && type <= Max) t->tb[type] = attr;
  return MNL_CB_OK;
}

template <int Max>
bool parse_nested(const nlattr* nest, AttrTable<Max>& out) {
  return mnl_attr_parse_nested(nest, collect<Max>, &out) >= 0;
}

std::optional<uint32_t> be32(const nlattr* a) {
  if (!a || mnl_attr_get_payload_len(a) != 4) return std::nullopt;
  return ntohl(mnl_attr_get_u32(a));
}

std::optional<uint16_t> be16(const nlattr* a) {
  if (!a || mnl_attr_get_payload_len(a) != 2) return std::nullopt;
  return ntohs(mnl_attr_get_u16(a));
}

std::optional<uint8_t> u8(const nlattr* a) {
  if (!a || mnl_attr_get_payload_len(a) != 1) return std::nullopt;
  return mnl_attr_get_u8(a);
}

bool read_addr(const nlattr* a, uint8_t family, Addr& out) {
  size_t n = family == AF_INET ? 4 : 16;
  if (!a || mnl_attr_get_payload_len(a) != n) return false;
  out.family = family;
  out.bytes.fill(0);
  std::memcpy(out.bytes.data(), mnl_attr_get_payload(a), n);
  return true;
}

std::optional<Tuple> parse_tuple(const nlattr* nest) {
  AttrTable<CTA_TUPLE_MAX> t;
  if (!nest || !parse_nested(nest, t)) return std::nullopt;
  AttrTable<CTA_IP_MAX> ip;
  AttrTable<CTA_PROTO_MAX> proto;
  if (!t.get(CTA_TUPLE_IP) || !parse_nested(t.get(CTA_TUPLE_IP), ip)) return std::nullopt;
  if (!t.get(CTA_TUPLE_PROTO) || !parse_nested(t.get(CTA_TUPLE_PROTO), proto)) return std::nullopt;
  Tuple out;
  if (ip.get(CTA_IP_V4_SRC)) {
    if (!read_addr(ip.get(CTA_IP_V4_SRC), AF_INET, out.src) || !read_addr(ip.get(CTA_IP_V4_DST), AF_INET, out.dst))
      return std::nullopt;
  } else if (ip.get(CTA_IP_V6_SRC)) {
    if (!read_addr(ip.get(CTA_IP_V6_SRC), AF_INET6, out.src) ||
        !read_addr(ip.get(CTA_IP_V6_DST), AF_INET6, out.dst))
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  auto num = u8(proto.get(CTA_PROTO_NUM));
  if (!num) return std::nullopt;
  out.proto = *num;
  out.sport = be16(proto.get(CTA_PROTO_SRC_PORT)).value_or(0);
  out.dport = be16(proto.get(CTA_PROTO_DST_PORT)).value_or(0);
  return out;
}

void put_tuple(nlmsghdr* nlh, int type, const Tuple& t) {
  nlattr* nest = mnl_attr_nest_start(nlh, type);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  if (t.src.family == AF_INET) {
    uint32_t s, d;
    std::memcpy(&s, t.src.bytes.data(), 4);
    std::memcpy(&d, t.dst.bytes.data(), 4);
    mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, s);
    mnl_attr_put_u32(nlh, CTA_IP_V4_DST, d);
  } else {
    mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, t.src.bytes.data());
    mnl_attr_put(nlh, CTA_IP_V6_DST, 16, t.dst.bytes.data());
  }
  mnl_attr_nest_end(nlh, ip);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t.proto);
  if (t.proto == IPPROTO_TCP || t.proto == IPPROTO_UDP || t.proto == IPPROTO_UDPLITE || t.proto == IPPROTO_SCTP ||
      t.proto == IPPROTO_DCCP) {
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.sport));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dport));
  }
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, nest);
}

nlmsghdr* put_header(char* buf, uint8_t msg, uint16_t flags, uint8_t family, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

struct Collected {
  std::vector<CtNetlinkEntry> entries;
  const RangeQuery* filter = nullptr;  // a filtered dump: every entry must match it
  bool unfiltered = false;             // an entry did not: the kernel ignored CTA_FILTER
};

int on_entry(const nlmsghdr* m, void* data) {
  auto* c = static_cast<Collected*>(data);
  auto e = parse_ct_message(m, m->nlmsg_len);
  if (!e) return MNL_CB_OK;
  const RangeQuery* f = c->filter;
  if (f && (e->ct.reply.proto != f->proto || !(e->ct.reply.src == f->dst) || e->ct.reply.sport != f->dport)) {
    c->unfiltered = true;  // stop reading: closing the socket ends the dump
    return MNL_CB_ERROR;
  }
  c->entries.push_back(std::move(*e));
  return MNL_CB_OK;
}

// One ctnetlink socket for several requests (a range's lookups).
class CtSocket {
 public:
  Result<bool> open() {
    nl_.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!nl_) return Error{"ctnetlink socket: " + errno_name(errno), "the kernel needs CONFIG_NF_CT_NETLINK"};
    if (mnl_socket_bind(nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
      return Error{"ctnetlink bind: " + errno_name(errno), ""};
    return true;
  }

  // Sends one request and collects IPCTNL_MSG_CT_NEW replies until the ack
  // or the end of the dump. errno ENOENT comes back as an Error with
  // exit_code 0 so the caller can tell "no such entry" from a failure.
  Result<bool> transact(nlmsghdr* nlh, Collected& out) {
    if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0)
      return Error{"ctnetlink request: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};
    unsigned portid = mnl_socket_get_portid(nl_.get());
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
      if (n < 0) return Error{"ctnetlink reply: " + errno_name(errno), ""};
      int r = mnl_cb_run(buf_.data(), n, nlh->nlmsg_seq, portid, on_entry, &out);
      if (r < 0) {
        if (out.unfiltered) return Error{"ctnetlink: the kernel ignored the dump filter", "needs Linux 5.8"};
        if (errno == ENOENT) return Error{"no such conntrack entry", "", 0};
        return Error{"ctnetlink: " + errno_name(errno), "is conntrack enabled in this kernel?"};
      }
      if (r == MNL_CB_STOP) return true;
    }
  }

 private:
  MnlSocket nl_;
  std::vector<char> buf_ = std::vector<char>(32768);  // MNL_SOCKET_DUMP_SIZE, absent from older libmnl
};

Result<Collected> transact(nlmsghdr* nlh) {
  CtSocket s;
  if (auto r = s.open(); !r) return r.error();
  Collected out;
  if (auto r = s.transact(nlh, out); !r) return r.error();
  return out;
}

bool addr_in(const Addr& a, const Addr& lo, const Addr& hi) {
  if (a.family != lo.family) return false;
  size_t n = a.family == AF_INET ? 4 : 16;
  return std::memcmp(a.bytes.data(), lo.bytes.data(), n) >= 0 && std::memcmp(a.bytes.data(), hi.bytes.data(), n) <= 0;
}

}  // namespace

std::optional<CtNetlinkEntry> parse_ct_message(const nlmsghdr* nlh, size_t len) {
  if (!nlmsg_fits(nlh, len)) return std::nullopt;
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK || (nlh->nlmsg_type & 0xff) != IPCTNL_MSG_CT_NEW)
    return std::nullopt;
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return std::nullopt;
  AttrTable<CTA_MAX> tb;
  if (parse_nlmsg_attrs(nlh, sizeof(nfgenmsg), collect<CTA_MAX>, &tb) < 0) return std::nullopt;
  auto orig = parse_tuple(tb.get(CTA_TUPLE_ORIG));
  auto reply = parse_tuple(tb.get(CTA_TUPLE_REPLY));
  if (!orig || !reply) return std::nullopt;
  CtNetlinkEntry e;
  e.ct.orig = *orig;
  e.ct.reply = *reply;
  e.ct.status = be32(tb.get(CTA_STATUS)).value_or(0);
  e.ct.id = be32(tb.get(CTA_ID));
  e.ct.timeout_s = be32(tb.get(CTA_TIMEOUT));
  e.ct.mark = be32(tb.get(CTA_MARK)).value_or(0);
  if (const nlattr* pi = tb.get(CTA_PROTOINFO)) {
    AttrTable<CTA_PROTOINFO_MAX> p;
    AttrTable<CTA_PROTOINFO_TCP_MAX> tcp;
    if (parse_nested(pi, p) && p.get(CTA_PROTOINFO_TCP) && parse_nested(p.get(CTA_PROTOINFO_TCP), tcp))
      e.tcp_state = u8(tcp.get(CTA_PROTOINFO_TCP_STATE));
  }
  if (const nlattr* ts = tb.get(CTA_TIMESTAMP)) {
    AttrTable<CTA_TIMESTAMP_MAX> t;
    if (parse_nested(ts, t) && t.get(CTA_TIMESTAMP_START) && mnl_attr_get_payload_len(t.get(CTA_TIMESTAMP_START)) == 8)
      e.start_ns = be64toh(mnl_attr_get_u64(t.get(CTA_TIMESTAMP_START)));
  }
  return e;
}

nlmsghdr* build_ct_get(char* buf, const Tuple& tuple, TupleDir dir, uint32_t seq) {
  nlmsghdr* nlh = put_header(buf, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_ACK, tuple.src.family, seq);
  put_tuple(nlh, dir == TupleDir::Original ? CTA_TUPLE_ORIG : CTA_TUPLE_REPLY, tuple);
  return nlh;
}

Result<std::optional<CtNetlinkEntry>> ct_lookup(const Tuple& tuple, TupleDir dir) {
  if (tuple.src.family != AF_INET && tuple.src.family != AF_INET6)
    return Error{"conntrack lookup: tuple without an address family", ""};
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  static uint32_t seq = 1000;
  nlmsghdr* nlh = build_ct_get(buf.data(), tuple, dir, ++seq);
  auto r = transact(nlh);
  if (!r) {
    if (r.error().exit_code == 0) return std::optional<CtNetlinkEntry>{};
    return r.error();
  }
  if (r->entries.empty()) return std::optional<CtNetlinkEntry>{};
  return std::optional<CtNetlinkEntry>{r->entries.front()};
}

namespace {

// The address one past a (big-endian bytes); false on overflow.
bool next_addr(Addr& a) {
  size_t n = a.family == AF_INET ? 4 : 16;
  for (size_t i = n; i-- > 0;)
    if (++a.bytes[i] != 0) return true;
  return false;
}

// The addresses in [lo, hi], when they fit in 32 bits of difference.
std::optional<uint64_t> addr_count(const Addr& lo, const Addr& hi) {
  if (lo.family != hi.family || (lo.family != AF_INET && lo.family != AF_INET6)) return std::nullopt;
  size_t n = lo.family == AF_INET ? 4 : 16;
  if (std::memcmp(lo.bytes.data(), hi.bytes.data(), n) > 0) return 0;
  for (size_t i = 0; i + 4 < n; i++)
    if (lo.bytes[i] != hi.bytes[i]) return std::nullopt;
  auto low32 = [&](const Addr& a) {
    uint32_t v;
    std::memcpy(&v, a.bytes.data() + n - 4, 4);
    return uint64_t{ntohl(v)};
  };
  return low32(hi) - low32(lo) + 1;
}

// One GET per reply tuple of the range, on one socket.
Result<RangeUsage> count_by_lookups(const RangeQuery& q, uint64_t tuples) {
  CtSocket s;
  if (auto r = s.open(); !r) return r.error();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  static uint32_t seq = 9000;
  uint64_t used = 0;
  Tuple t{.src = q.dst, .dst = q.min_addr, .sport = q.dport, .dport = 0, .proto = q.proto};
  for (bool more = true; more; more = !(t.dst == q.max_addr) && next_addr(t.dst)) {
    for (uint32_t port = q.min_port; port <= q.max_port; port++) {
      t.dport = static_cast<uint16_t>(port);
      Collected out;
      auto r = s.transact(build_ct_get(buf.data(), t, TupleDir::Reply, ++seq), out);
      if (!r && r.error().exit_code != 0) return r.error();
      // The kernel matches either direction: count only a REPLY tuple.
      for (const auto& e : out.entries) used += q.counts(e.ct.reply);
    }
  }
  return RangeUsage{used, std::to_string(tuples) + " tuple lookups"};
}

}  // namespace

std::optional<uint64_t> RangeQuery::tuples() const {
  auto addrs = addr_count(min_addr, max_addr);
  if (!addrs || max_port < min_port) return addrs ? std::optional<uint64_t>{0} : std::nullopt;
  uint64_t n = *addrs * (uint64_t{max_port} - min_port + 1);
  return n >> 32 ? std::nullopt : std::optional<uint64_t>{n};
}

bool RangeQuery::counts(const Tuple& r) const {
  return r.proto == proto && r.src == dst && r.sport == dport && addr_in(r.dst, min_addr, max_addr) &&
         r.dport >= min_port && r.dport <= max_port;
}

// The kernel's filter flags (net/netfilter/nf_internals.h, CTA_FILTER_F_*,
// stable since 5.8): reply source address, protocol number, source port.
// The address is left to us for IPv6: 6.1's ctnetlink_filter_match_tuple
// tests !ipv6_addr_cmp, i.e. rejects the matching address.
nlmsghdr* build_ct_range_dump(char* buf, const RangeQuery& q, uint32_t seq) {
  constexpr uint32_t kIpSrc = 1 << 0, kProtoNum = 1 << 3, kProtoSrcPort = 1 << 4;
  nlmsghdr* nlh = put_header(buf, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, q.dst.family, seq);
  put_tuple(nlh, CTA_TUPLE_REPLY, Tuple{.src = q.dst, .dst = q.min_addr, .sport = q.dport, .dport = q.min_port, .proto = q.proto});
  nlattr* filter = mnl_attr_nest_start(nlh, CTA_FILTER);
  uint32_t flags = kProtoNum | kProtoSrcPort | (q.dst.family == AF_INET ? kIpSrc : 0);
  mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, flags);
  mnl_attr_nest_end(nlh, filter);
  return nlh;
}

Result<RangeUsage> ct_range_usage(const RangeQuery& q) {
  if (q.dst.family != AF_INET && q.dst.family != AF_INET6) return Error{"range usage: no address family", ""};
  auto tuples = q.tuples();
  if (tuples && *tuples <= kRangeLookupMax) return count_by_lookups(q, *tuples);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  static uint32_t seq = 5000;
  CtSocket s;
  if (auto r = s.open(); !r) return r.error();
  Collected out;
  out.filter = &q;
  if (auto r = s.transact(build_ct_range_dump(buf.data(), q, ++seq), out); !r) {
    if (r.error().exit_code == 0) return RangeUsage{0, "dump filtered in the kernel: 0 entries sent"};
    return r.error();
  }
  return RangeUsage{count_range_usage(out.entries, q),
                    "dump filtered in the kernel: " + std::to_string(out.entries.size()) + " entries sent"};
}

Result<std::vector<CtNetlinkEntry>> ct_dump(uint8_t family) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  static uint32_t seq = 7000;
  auto r = transact(put_header(buf.data(), IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family, ++seq));
  if (!r) {
    if (r.error().exit_code == 0) return std::vector<CtNetlinkEntry>{};
    return r.error();
  }
  return std::move(r->entries);
}

size_t count_range_usage(const std::vector<CtNetlinkEntry>& entries, const RangeQuery& q) {
  size_t n = 0;
  for (const auto& e : entries) n += q.counts(e.ct.reply);
  return n;
}

}  // namespace natbpf
