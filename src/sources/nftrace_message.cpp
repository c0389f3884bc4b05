#include "sources/nftrace_message.h"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <span>

#include "sources/packet_headers.h"

namespace natbpf {
namespace {

// Conntrack attributes filled by nf_trace_fill_ct_info() in newer kernels
// (6.18 sends them); Debian 12's uapi header stops at NFTA_TRACE_PAD (17).
constexpr uint16_t kTraceCtId = 18;         // be32, same value as ctnetlink CTA_ID
constexpr uint16_t kTraceCtDirection = 19;  // u8
constexpr uint16_t kTraceCtStatus = 20;     // be32, enum ip_conntrack_status
constexpr uint16_t kTraceCtState = 21;      // be32, NF_CT_STATE_BIT mask
constexpr uint16_t kTraceAttrMax = kTraceCtState;
static_assert(NFTA_TRACE_PAD == 17, "nf_tables trace attribute numbering changed");

enum class AttrKind { Skip, String, U8, U16, U32, U64, Nested, Binary };

struct AttrSpec {
  const char* name;
  AttrKind kind;
};

AttrSpec trace_attr_spec(uint16_t type) {
  switch (type) {
    case NFTA_TRACE_TABLE: return {"NFTA_TRACE_TABLE", AttrKind::String};
    case NFTA_TRACE_CHAIN: return {"NFTA_TRACE_CHAIN", AttrKind::String};
    case NFTA_TRACE_RULE_HANDLE: return {"NFTA_TRACE_RULE_HANDLE", AttrKind::U64};
    case NFTA_TRACE_TYPE: return {"NFTA_TRACE_TYPE", AttrKind::U32};
    case NFTA_TRACE_VERDICT: return {"NFTA_TRACE_VERDICT", AttrKind::Nested};
    case NFTA_TRACE_ID: return {"NFTA_TRACE_ID", AttrKind::U32};
    case NFTA_TRACE_LL_HEADER: return {"NFTA_TRACE_LL_HEADER", AttrKind::Binary};
    case NFTA_TRACE_NETWORK_HEADER: return {"NFTA_TRACE_NETWORK_HEADER", AttrKind::Binary};
    case NFTA_TRACE_TRANSPORT_HEADER: return {"NFTA_TRACE_TRANSPORT_HEADER", AttrKind::Binary};
    case NFTA_TRACE_IIF: return {"NFTA_TRACE_IIF", AttrKind::U32};
    case NFTA_TRACE_IIFTYPE: return {"NFTA_TRACE_IIFTYPE", AttrKind::U16};
    case NFTA_TRACE_OIF: return {"NFTA_TRACE_OIF", AttrKind::U32};
    case NFTA_TRACE_OIFTYPE: return {"NFTA_TRACE_OIFTYPE", AttrKind::U16};
    case NFTA_TRACE_MARK: return {"NFTA_TRACE_MARK", AttrKind::U32};
    case NFTA_TRACE_NFPROTO: return {"NFTA_TRACE_NFPROTO", AttrKind::U32};
    case NFTA_TRACE_POLICY: return {"NFTA_TRACE_POLICY", AttrKind::U32};
    case kTraceCtId: return {"NFTA_TRACE_CT_ID", AttrKind::U32};
    case kTraceCtDirection: return {"NFTA_TRACE_CT_DIRECTION", AttrKind::U8};
    case kTraceCtStatus: return {"NFTA_TRACE_CT_STATUS", AttrKind::U32};
    case kTraceCtState: return {"NFTA_TRACE_CT_STATE", AttrKind::U32};
    default: return {"", AttrKind::Skip};  // NFTA_TRACE_PAD and newer attributes
  }
}

AttrSpec verdict_attr_spec(uint16_t type) {
  switch (type) {
    case NFTA_VERDICT_CODE: return {"NFTA_VERDICT_CODE", AttrKind::U32};
    case NFTA_VERDICT_CHAIN: return {"NFTA_VERDICT_CHAIN", AttrKind::String};
    case NFTA_VERDICT_CHAIN_ID: return {"NFTA_VERDICT_CHAIN_ID", AttrKind::U32};
    default: return {"", AttrKind::Skip};
  }
}

Error invalid(std::string what) {
  return Error{"malformed nftables trace message: " + what,
               "the kernel sent a trace format natbpf does not understand; please report it with `natbpf probe`"};
}

Status check_length(const AttrSpec& spec, const nlattr* attr) {
  size_t len = mnl_attr_get_payload_len(attr);
  size_t want = 0;
  switch (spec.kind) {
    case AttrKind::U8: want = 1; break;
    case AttrKind::U16: want = 2; break;
    case AttrKind::U32: want = 4; break;
    case AttrKind::U64: want = 8; break;
    case AttrKind::String:
      if (len == 0) return invalid(std::string(spec.name) + " is empty");
      return Ok{};
    case AttrKind::Nested:
    case AttrKind::Binary:
    case AttrKind::Skip: return Ok{};
  }
  if (len != want)
    return invalid(std::string(spec.name) + " has " + std::to_string(len) + " bytes, expected " +
                   std::to_string(want));
  return Ok{};
}

// Indexes the attributes in [data, data+len) by type after checking every
// header and length. mnl_attr_parse() is not used because it silently stops
// at an attribute that runs past the end, which would hide a truncation.
template <size_t N>
Status collect_attrs(const uint8_t* data, size_t len, AttrSpec (*spec_of)(uint16_t),
                     std::array<const nlattr*, N>& tb) {
  size_t off = 0;
  while (off < len) {
    if (len - off < sizeof(nlattr))
      return invalid(std::to_string(len - off) + " stray bytes after the last attribute");
    const auto* attr = reinterpret_cast<const nlattr*>(data + off);
    if (attr->nla_len < sizeof(nlattr) || attr->nla_len > len - off)
      return invalid("attribute type " + std::to_string(mnl_attr_get_type(attr)) + " claims " +
                     std::to_string(attr->nla_len) + " bytes, " + std::to_string(len - off) + " left");
    uint16_t type = mnl_attr_get_type(attr);
    AttrSpec spec = spec_of(type);
    if (spec.kind != AttrKind::Skip && type < N) {
      if (Status s = check_length(spec, attr); !s) return s.error();
      tb[type] = attr;
    }
    off += MNL_ALIGN(attr->nla_len);
  }
  return Ok{};
}

const uint8_t* payload(const nlattr* attr) { return static_cast<const uint8_t*>(mnl_attr_get_payload(attr)); }

uint32_t get_be32(const nlattr* attr) {
  uint32_t v;
  std::memcpy(&v, payload(attr), sizeof(v));
  return ntohl(v);
}

uint16_t get_be16(const nlattr* attr) {
  uint16_t v;
  std::memcpy(&v, payload(attr), sizeof(v));
  return ntohs(v);
}

uint64_t get_be64(const nlattr* attr) {
  uint64_t v;
  std::memcpy(&v, payload(attr), sizeof(v));
  return be64toh(v);
}

std::string get_string(const nlattr* attr) {
  const char* s = static_cast<const char*>(mnl_attr_get_payload(attr));
  return std::string(s, strnlen(s, mnl_attr_get_payload_len(attr)));
}

std::vector<uint8_t> get_bytes(const nlattr* attr) {
  const uint8_t* p = payload(attr);
  return std::vector<uint8_t>(p, p + mnl_attr_get_payload_len(attr));
}

std::optional<uint32_t> opt_be32(const nlattr* attr) {
  if (!attr) return std::nullopt;
  return get_be32(attr);
}

std::optional<uint16_t> opt_be16(const nlattr* attr) {
  if (!attr) return std::nullopt;
  return get_be16(attr);
}

std::optional<Packet> decode_packet(const NftTraceEvent& ev) {
  std::span<const uint8_t> nh(ev.network_header), th(ev.transport_header);
  if (nh.empty()) return std::nullopt;
  std::optional<Packet> p;
  switch (nh[0] >> 4) {
    case 4: p = decode_ipv4(nh, th); break;
    case 6: p = decode_ipv6(nh, th); break;
    default: return std::nullopt;  // e.g. ARP in a bridge or netdev table
  }
  if (p) p->ifindex = ev.iif.value_or(ev.oif.value_or(0));
  return p;
}

Status parse_verdict(const nlattr* nest, NftTraceEvent& ev) {
  std::array<const nlattr*, NFTA_VERDICT_MAX + 1> vb{};
  if (Status s = collect_attrs(payload(nest), mnl_attr_get_payload_len(nest), verdict_attr_spec, vb); !s)
    return s.error();
  // A verdict nest without a code says nothing about the packet's fate.
  if (vb[NFTA_VERDICT_CODE]) {
    auto code = static_cast<int32_t>(get_be32(vb[NFTA_VERDICT_CODE]));
    ev.verdict_code = code;
    ev.verdict = nft_verdict_from_code(code);
  }
  if (vb[NFTA_VERDICT_CHAIN]) ev.jump_target = get_string(vb[NFTA_VERDICT_CHAIN]);
  return Ok{};
}

NftTraceType trace_type(uint32_t t) {
  switch (t) {
    case NFT_TRACETYPE_POLICY: return NftTraceType::Policy;
    case NFT_TRACETYPE_RETURN: return NftTraceType::Return;
    case NFT_TRACETYPE_RULE: return NftTraceType::Rule;
    default: return NftTraceType::Unknown;
  }
}

std::string verdict_text(NftVerdict v, int32_t code) {
  if (v == NftVerdict::Unknown) return "unknown (" + std::to_string(code) + ")";
  return to_string(v);
}

std::string hex(uint32_t value, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%0*x", width, value);
  return buf;
}

}  // namespace

NftVerdict nft_verdict_from_code(int32_t code) {
  // NFT_* codes first: NF_QUEUE_NR() of a queue number >= 32768 is negative
  // as int32, so "negative means NFT_*" would misread it.
  switch (code) {
    case NFT_CONTINUE: return NftVerdict::Continue;
    case NFT_BREAK: return NftVerdict::Break;
    case NFT_JUMP: return NftVerdict::Jump;
    case NFT_GOTO: return NftVerdict::Goto;
    case NFT_RETURN: return NftVerdict::Return;
    default: break;
  }
  switch (static_cast<uint32_t>(code) & NF_VERDICT_MASK) {
    case NF_DROP: return NftVerdict::Drop;  // NF_DROP_ERR() keeps an errno in the upper bits
    case NF_ACCEPT: return NftVerdict::Accept;
    case NF_STOLEN: return NftVerdict::Stolen;
    case NF_QUEUE: return NftVerdict::Queue;  // queue number in the upper bits
    case NF_REPEAT: return NftVerdict::Repeat;
    case NF_STOP: return NftVerdict::Stop;
    default: return NftVerdict::Unknown;
  }
}

std::optional<NftVerdict> NftTraceEvent::effective_verdict() const {
  if (type == NftTraceType::Policy) {
    if (!policy) return std::nullopt;
    return nft_verdict_from_code(static_cast<int32_t>(*policy));
  }
  return verdict;
}

Result<NftTraceEvent> parse_nftrace_message(const nlmsghdr* nlh, size_t len) {
  if (!nlh || len < sizeof(nlmsghdr)) return invalid(std::to_string(len) + " bytes, shorter than a netlink header");
  if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > len)
    return invalid("netlink length " + std::to_string(nlh->nlmsg_len) + " with " + std::to_string(len) +
                   " bytes received");
  constexpr uint16_t kTraceMsg = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;
  if (nlh->nlmsg_type != kTraceMsg)
    return invalid("message type 0x" + hex(nlh->nlmsg_type, 4) + " is not NFT_MSG_TRACE");
  size_t payload_len = mnl_nlmsg_get_payload_len(nlh);
  if (payload_len < MNL_ALIGN(sizeof(nfgenmsg))) return invalid("no nfgenmsg header");

  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  const auto* attrs = static_cast<const uint8_t*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  size_t attrs_len = payload_len - MNL_ALIGN(sizeof(nfgenmsg));

  std::array<const nlattr*, kTraceAttrMax + 1> tb{};
  if (Status s = collect_attrs(attrs, attrs_len, trace_attr_spec, tb); !s) return s.error();
  for (uint16_t required : {NFTA_TRACE_TABLE, NFTA_TRACE_CHAIN, NFTA_TRACE_ID, NFTA_TRACE_TYPE})
    if (!tb[required]) return invalid(std::string("no ") + trace_attr_spec(required).name);

  NftTraceEvent ev;
  ev.family = nfg->nfgen_family;
  // The kernel uses nla_put_u32 (host order) for the id; libnftnl applies
  // ntohl and nft prints that, so do the same for ids to match.
  ev.id = get_be32(tb[NFTA_TRACE_ID]);
  ev.type = trace_type(get_be32(tb[NFTA_TRACE_TYPE]));
  ev.table = get_string(tb[NFTA_TRACE_TABLE]);
  ev.chain = get_string(tb[NFTA_TRACE_CHAIN]);
  // nftables refuses empty table and chain names: such a message is damaged.
  if (ev.table.empty() || ev.chain.empty()) return invalid("an empty table or chain name");
  if (tb[NFTA_TRACE_RULE_HANDLE]) ev.rule_handle = get_be64(tb[NFTA_TRACE_RULE_HANDLE]);
  if (tb[NFTA_TRACE_VERDICT])
    if (Status s = parse_verdict(tb[NFTA_TRACE_VERDICT], ev); !s) return s.error();
  ev.policy = opt_be32(tb[NFTA_TRACE_POLICY]);
  ev.nfproto = opt_be32(tb[NFTA_TRACE_NFPROTO]);
  ev.iif = opt_be32(tb[NFTA_TRACE_IIF]);
  ev.oif = opt_be32(tb[NFTA_TRACE_OIF]);
  ev.iiftype = opt_be16(tb[NFTA_TRACE_IIFTYPE]);
  ev.oiftype = opt_be16(tb[NFTA_TRACE_OIFTYPE]);
  ev.mark = opt_be32(tb[NFTA_TRACE_MARK]);
  if (tb[NFTA_TRACE_LL_HEADER]) ev.ll_header = get_bytes(tb[NFTA_TRACE_LL_HEADER]);
  if (tb[NFTA_TRACE_NETWORK_HEADER]) ev.network_header = get_bytes(tb[NFTA_TRACE_NETWORK_HEADER]);
  if (tb[NFTA_TRACE_TRANSPORT_HEADER]) ev.transport_header = get_bytes(tb[NFTA_TRACE_TRANSPORT_HEADER]);
  // CT_ID is put raw like ctnetlink's CTA_ID; ntohl gives what conntrack -L shows.
  ev.ct_id = opt_be32(tb[kTraceCtId]);
  ev.ct_status = opt_be32(tb[kTraceCtStatus]);
  ev.ct_state = opt_be32(tb[kTraceCtState]);
  if (tb[kTraceCtDirection]) ev.ct_direction = *payload(tb[kTraceCtDirection]);
  ev.packet = decode_packet(ev);
  return ev;
}

std::string format_nftrace_line(const NftTraceEvent& ev) {
  std::string s = "trace id " + hex(ev.id, 8) + " " + family_name(ev.family) + " " + ev.table + " " + ev.chain;
  switch (ev.type) {
    case NftTraceType::Policy:
      s += " policy ";
      s += ev.policy ? verdict_text(nft_verdict_from_code(static_cast<int32_t>(*ev.policy)),
                                    static_cast<int32_t>(*ev.policy))
                     : "(none)";
      break;
    case NftTraceType::Rule:
    case NftTraceType::Return:
    case NftTraceType::Unknown:
      if (ev.type == NftTraceType::Unknown) s += " type unknown";
      if (ev.rule_handle) s += " rule handle " + std::to_string(*ev.rule_handle);
      if (ev.verdict) {
        s += " verdict " + verdict_text(*ev.verdict, ev.verdict_code.value_or(0));
        if (ev.jump_target) s += " " + *ev.jump_target;
      } else {
        s += " (no verdict)";
      }
      break;
  }
  if (ev.mark) s += " meta mark 0x" + hex(*ev.mark, 8);
  if (ev.iif) s += " iif " + std::to_string(*ev.iif);
  if (ev.oif) s += " oif " + std::to_string(*ev.oif);
  if (ev.packet) s += " packet: " + ev.packet->str();
  if (ev.ct_id) s += " ct id " + std::to_string(*ev.ct_id);
  return s;
}

void parse_nftrace_datagram(std::span<const uint8_t> datagram, uint64_t recv_ns,
                            const std::function<void(NftTraceEvent&&)>& sink,
                            const std::function<void(std::string)>& on_error) {
  const uint8_t* data = datagram.data();
  size_t len = datagram.size(), off = 0;
  while (off < len) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(data + off);
    size_t left = len - off;
    if (left < sizeof(nlmsghdr) || nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > left) {
      on_error("malformed nftables trace message: truncated netlink header in a " + std::to_string(len) +
               "-byte datagram");
      return;
    }
    auto ev = parse_nftrace_message(nlh, nlh->nlmsg_len);
    if (ev) {
      ev->recv_ns = recv_ns;
      sink(std::move(*ev));
    } else {
      on_error(ev.error().message);
    }
    off += NLMSG_ALIGN(nlh->nlmsg_len);
  }
}

}  // namespace natbpf
