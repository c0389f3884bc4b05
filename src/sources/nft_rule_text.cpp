#include "sources/nft_rule_text.h"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

#include "sources/nft_values.h"

namespace natbpf {
namespace {

using namespace nft_values;

// What a register holds, as nft prints it.
struct Value {
  std::string text;  // "ip daddr", "meta mark & 0x00004000", "numgen random mod 2"
  Kind kind = Kind::Const;
  uint32_t len = 0;      // bytes
  int prefix = -1;       // an address masked to this many leading bits
  bool binop = false;    // text is an expression nft prints "==" after
  uint32_t ct_mask = 0;  // ct state & mask
  std::string bytes;     // of a constant
};

constexpr int kSlots = 16;  // 32-bit registers

int slot_of(uint32_t reg) {
  if (reg >= NFT_REG32_00 && reg <= NFT_REG32_15) return int(reg - NFT_REG32_00);
  if (reg >= NFT_REG_1 && reg <= NFT_REG_4) return int(reg - NFT_REG_1) * 4;
  return -1;
}

uint32_t slots_for(uint32_t len) { return (len + 3) / 4; }

std::string bytes_of(const nftnl_expr* e, uint16_t attr) {
  uint32_t len = 0;
  const void* p = nftnl_expr_get(e, attr, &len);
  return p ? std::string(static_cast<const char*>(p), len) : std::string();
}

// Prints one rule: the registers' contents, the words printed so far.
class Printer {
 public:
  Printer(uint32_t family, const NftSets& sets) : family_(family), sets_(sets) {
    if (family == NFPROTO_IPV4) net_ = Kind::Addr4;
    if (family == NFPROTO_IPV6) net_ = Kind::Addr6;
  }

  bool add(const nftnl_expr* e, const nftnl_expr* next);
  std::optional<std::string> finish(const nftnl_rule* r);

 private:
  bool payload(const nftnl_expr* e);
  bool meta(const nftnl_expr* e);
  bool cmp(const nftnl_expr* e, const nftnl_expr* next);
  bool bitwise(const nftnl_expr* e);
  bool lookup(const nftnl_expr* e);
  bool immediate(const nftnl_expr* e);
  bool nat(const nftnl_expr* e);
  bool put(uint32_t reg, Value v);
  std::optional<Value> take(uint32_t reg);
  std::optional<std::string> key_text(int slot, uint32_t key_len, Kind* kind);
  std::optional<std::string> anon_elements(const NftSetInfo& set, Kind kind, bool vmap);

  uint32_t family_;
  const NftSets& sets_;
  std::optional<Kind> net_;       // the network header's layout (an inet table: from meta nfproto)
  std::string l4name_ = "th";     // "tcp" after a hidden meta l4proto tcp, for the rest of the rule
  bool l4_printed_ = false;       // a "meta l4proto X" match was printed: nft names later ports by it
  std::array<std::optional<Value>, kSlots> regs_;
  std::vector<std::string> words_;
};

bool Printer::put(uint32_t reg, Value v) {
  int s = slot_of(reg);
  if (s < 0 || s + int(slots_for(v.len)) > kSlots) return false;
  regs_[s] = std::move(v);
  return true;
}

std::optional<Value> Printer::take(uint32_t reg) {
  int s = slot_of(reg);
  if (s < 0 || !regs_[s]) return std::nullopt;
  return std::exchange(regs_[s], std::nullopt);
}

bool Printer::payload(const nftnl_expr* e) {
  if (!nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_DREG)) return false;  // a payload write
  uint32_t base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
  uint32_t off = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
  uint32_t len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
  Value v;
  v.len = len;
  // An address prefix of whole bytes is a shorter load ("ip daddr 10.0.0.0/8": 1 byte).
  if (base == NFT_PAYLOAD_NETWORK_HEADER && net_ == Kind::Addr4 && len >= 1 && len <= 4 && (off == 12 || off == 16)) {
    v = {off == 12 ? "ip saddr" : "ip daddr", Kind::Addr4, len, len < 4 ? int(len) * 8 : -1};
  } else if (base == NFT_PAYLOAD_NETWORK_HEADER && net_ == Kind::Addr6 && len >= 1 && len <= 16 &&
             (off == 8 || off == 24)) {
    v = {off == 8 ? "ip6 saddr" : "ip6 daddr", Kind::Addr6, len, len < 16 ? int(len) * 8 : -1};
  } else if (base == NFT_PAYLOAD_TRANSPORT_HEADER && len == 2 && (off == 0 || off == 2) &&
             !(l4name_ == "th" && l4_printed_)) {
    v = {l4name_ + (off == 0 ? " sport" : " dport"), Kind::Port, 2};
  } else {
    return false;
  }
  return put(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG), std::move(v));
}

bool Printer::meta(const nftnl_expr* e) {
  uint32_t key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
  if (nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG)) {  // meta ... set
    auto v = take(nftnl_expr_get_u32(e, NFTNL_EXPR_META_SREG));
    if (!v) return false;
    if (key == NFT_META_MARK && v->kind == Kind::Mark && v->binop) {
      words_.push_back("meta mark set " + v->text);
    } else if (key == NFT_META_MARK && v->kind == Kind::Const && v->bytes.size() == 4) {
      words_.push_back("meta mark set " + hex32(host_u32(v->bytes)));
    } else if (key == NFT_META_NFTRACE && v->kind == Kind::Const && v->bytes.size() == 1) {
      words_.push_back("meta nftrace set " + std::to_string(uint8_t(v->bytes[0])));
    } else {
      return false;
    }
    return true;
  }
  Value v;
  switch (key) {
    case NFT_META_L4PROTO: v = {"meta l4proto", Kind::Proto, 1}; break;
    case NFT_META_NFPROTO: v = {"meta nfproto", Kind::Nfproto, 1}; break;
    case NFT_META_MARK: v = {"meta mark", Kind::Mark, 4}; break;
    case NFT_META_IIFNAME: v = {"iifname", Kind::Iface, 16}; break;
    case NFT_META_OIFNAME: v = {"oifname", Kind::Iface, 16}; break;
    default: return false;
  }
  return put(nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG), std::move(v));
}

// nft hides the dependencies it adds itself: "meta nfproto ipv4" before an
// ip header field in an inet table, "meta l4proto tcp" before a port (then
// "tcp dport", not "th dport").
bool Printer::cmp(const nftnl_expr* e, const nftnl_expr* next) {
  auto v = take(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG));
  if (!v) return false;
  uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
  std::string data = bytes_of(e, NFTNL_EXPR_CMP_DATA);
  const char* next_name = next ? nftnl_expr_get_str(next, NFTNL_EXPR_NAME) : nullptr;
  bool next_payload = next_name && std::strcmp(next_name, "payload") == 0;
  uint32_t next_base = next_payload ? nftnl_expr_get_u32(next, NFTNL_EXPR_PAYLOAD_BASE) : 0;
  if (v->kind == Kind::CtState) {
    auto states = ct_states(v->ct_mask);
    if (op != NFT_CMP_NEQ || data.find_first_not_of('\0') != std::string::npos || !states) return false;
    words_.push_back("ct state " + *states);
    return true;
  }
  if (v->kind == Kind::Nfproto) {
    // Hidden before an ip header field of an inet table; elsewhere nft
    // hides it in cases this does not follow, so refuse.
    if (op != NFT_CMP_EQ || next_base != NFT_PAYLOAD_NETWORK_HEADER || family_ != NFPROTO_INET || data.size() != 1 ||
        (data[0] != NFPROTO_IPV4 && data[0] != NFPROTO_IPV6))
      return false;
    net_ = data[0] == NFPROTO_IPV4 ? Kind::Addr4 : Kind::Addr6;
    return true;
  }
  uint8_t proto = data.size() == 1 ? uint8_t(data[0]) : 0;
  if (op == NFT_CMP_EQ && v->kind == Kind::Proto && v->text == "meta l4proto" && next_base == NFT_PAYLOAD_TRANSPORT_HEADER &&
      (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP || proto == IPPROTO_DCCP ||
       proto == IPPROTO_UDPLITE)) {
    l4name_ = proto_name(proto);
    return true;
  }
  if (v->kind == Kind::Proto && v->text == "meta l4proto" && op == NFT_CMP_EQ) l4_printed_ = true;
  if (v->prefix >= 0 && op != NFT_CMP_EQ && op != NFT_CMP_NEQ) return false;
  auto value = format(v->kind, data, v->prefix);
  if (!value) return false;
  const char* ops[] = {"", "!= ", "< ", "<= ", "> ", ">= "};  // enum nft_cmp_ops order
  if (op > NFT_CMP_GTE) return false;
  std::string sym = op == NFT_CMP_EQ && v->binop ? "== " : ops[op];
  words_.push_back(v->text + " " + sym + *value);
  return true;
}

bool Printer::bitwise(const nftnl_expr* e) {
  if (nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) && nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) != NFT_BITWISE_BOOL)
    return false;  // a shift
  auto v = take(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG));
  std::string mask = bytes_of(e, NFTNL_EXPR_BITWISE_MASK), x = bytes_of(e, NFTNL_EXPR_BITWISE_XOR);
  if (!v || v->binop || mask.size() != v->len || x.size() != v->len) return false;
  bool no_xor = x.find_first_not_of('\0') == std::string::npos;
  if ((v->kind == Kind::Addr4 || v->kind == Kind::Addr6) && no_xor) {
    v->prefix = prefix_len(mask);
    if (v->prefix < 0) return false;
  } else if (v->kind == Kind::CtState && no_xor && mask.size() == 4) {
    v->ct_mask = host_u32(mask);
  } else if (v->kind == Kind::Mark && mask.size() == 4) {
    uint32_t m = host_u32(mask), xr = host_u32(x);
    if (xr == 0) v->text += " & " + hex32(m);
    else if (m == ~xr) v->text += " | " + hex32(xr);
    else if (m == 0xffffffff) v->text += " ^ " + hex32(xr);
    else return false;
    v->binop = true;
  } else {
    return false;
  }
  return put(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG), std::move(*v));
}

// The fields of a lookup's key: the registers from `slot` on, a field
// each, that fill the set's key (a concatenation's fields are padded to 4
// bytes); the registers are consumed.
std::optional<std::string> Printer::key_text(int slot, uint32_t key_len, Kind* kind) {
  std::string out;
  uint32_t got = 0;
  int fields = 0;
  while (got < key_len) {
    if (slot < 0 || slot >= kSlots || !regs_[slot] || regs_[slot]->binop) return std::nullopt;
    Value v = *std::exchange(regs_[slot], std::nullopt);
    if (v.prefix >= 0 || v.kind == Kind::CtState || v.kind == Kind::Const) return std::nullopt;
    if (!out.empty()) out += " . ";
    out += v.text;
    *kind = v.kind;
    fields++;
    got += slots_for(v.len) * 4;
    slot += int(slots_for(v.len));
  }
  if (got != key_len && !(fields == 1 && slots_for(key_len) * 4 == got)) return std::nullopt;
  if (fields > 1) *kind = Kind::Const;  // a concatenation: its elements are not printed here
  return out;
}

// An anonymous set's elements, in the order nft prints them (by key).
std::optional<std::string> Printer::anon_elements(const NftSetInfo& set, Kind kind, bool vmap) {
  // nft sorts elements by their whole value; interface names and IPv6
  // addresses (longer than the sort key here) are refused.
  if (set.flags & NFT_SET_INTERVAL || kind == Kind::Const || kind == Kind::Iface || kind == Kind::Addr6 ||
      set.elements.empty())
    return std::nullopt;
  if (std::any_of(set.elements.begin(), set.elements.end(), [](const auto& el) { return el.extras; }))
    return std::nullopt;
  auto elems = set.elements;
  auto key = [kind](const std::string& b) -> uint64_t {
    if (kind == Kind::Int || kind == Kind::Mark || kind == Kind::AddrType) return host_u32(b);
    uint64_t v = 0;
    for (unsigned char c : b.substr(0, 8)) v = v << 8 | c;
    return v;
  };
  std::sort(elems.begin(), elems.end(), [&](const auto& a, const auto& b) { return key(a.key) < key(b.key); });
  std::string out = "{ ";
  for (size_t i = 0; i < elems.size(); i++) {
    auto k = format(kind, elems[i].key);
    if (!k || vmap != elems[i].verdict.has_value()) return std::nullopt;
    if (i) out += ", ";
    out += *k;
    if (vmap) {
      auto verdict = verdict_text(*elems[i].verdict, elems[i].chain);
      if (!verdict) return std::nullopt;
      out += " : " + *verdict;
    }
  }
  return out + " }";
}

bool Printer::lookup(const nftnl_expr* e) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
  auto set = name ? sets_.find(name) : sets_.end();
  if (set == sets_.end()) return false;
  bool vmap = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG);
  if (vmap && nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) != NFT_REG_VERDICT) return false;  // a data map
  uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) : 0;
  if (flags & ~uint32_t(NFT_LOOKUP_F_INV) || (vmap && flags)) return false;
  Kind kind = Kind::Const;
  auto key = key_text(slot_of(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG)), set->second.key_len, &kind);
  if (!key) return false;
  std::string what;
  if (set->second.flags & NFT_SET_ANONYMOUS) {
    auto elems = anon_elements(set->second, kind, vmap);
    if (!elems) return false;
    what = *elems;
  } else {
    what = "@" + set->first;
  }
  words_.push_back(*key + (vmap ? " vmap " : flags ? " != " : " ") + what);
  return true;
}

bool Printer::immediate(const nftnl_expr* e) {
  if (!nftnl_expr_is_set(e, NFTNL_EXPR_IMM_DREG)) return false;  // absent is not the verdict register
  uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);
  if (dreg == NFT_REG_VERDICT) {
    if (!nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT)) return false;  // absent is not NF_DROP
    const char* chain = nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN);
    auto v = verdict_text(int32_t(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT)), chain ? chain : "");
    if (!v) return false;
    words_.push_back(*v);
    return true;
  }
  Value v;
  v.bytes = bytes_of(e, NFTNL_EXPR_IMM_DATA);
  v.len = uint32_t(v.bytes.size());
  return !v.bytes.empty() && put(dreg, std::move(v));
}

// "dnat to 10.244.0.1:8080" ("dnat ip to" in an inet table), one address
// and port from constants, no flags nft would print.
bool Printer::nat(const nftnl_expr* e) {
  if (!nftnl_expr_is_set(e, NFTNL_EXPR_NAT_TYPE) || !nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FAMILY)) return false;
  uint32_t type = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE);
  uint32_t nat_family = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
  uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS) : 0;
  if (flags & ~uint32_t(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)) return false;
  if (nat_family != NFPROTO_IPV4 && nat_family != NFPROTO_IPV6) return false;
  if (family_ != NFPROTO_INET && nat_family != family_) return false;
  auto reg = [e](uint16_t min, uint16_t max) -> std::optional<uint32_t> {
    if (!nftnl_expr_is_set(e, min)) return std::nullopt;
    uint32_t r = nftnl_expr_get_u32(e, min);
    if (nftnl_expr_is_set(e, max) && nftnl_expr_get_u32(e, max) != r) return 0;  // a range
    return r;
  };
  auto addr_reg = reg(NFTNL_EXPR_NAT_REG_ADDR_MIN, NFTNL_EXPR_NAT_REG_ADDR_MAX);
  auto port_reg = reg(NFTNL_EXPR_NAT_REG_PROTO_MIN, NFTNL_EXPR_NAT_REG_PROTO_MAX);
  if (!addr_reg || *addr_reg == 0 || (port_reg && *port_reg == 0)) return false;
  bool v4 = nat_family == NFPROTO_IPV4;
  auto addr = take(*addr_reg);
  auto a = addr && addr->kind == Kind::Const ? format(v4 ? Kind::Addr4 : Kind::Addr6, addr->bytes) : std::nullopt;
  if (!a) return false;
  std::string to = *a;
  if (port_reg) {
    auto port = take(*port_reg);
    auto p = port && port->kind == Kind::Const ? format(Kind::Port, port->bytes) : std::nullopt;
    if (!p) return false;
    to = (v4 ? to : "[" + to + "]") + ":" + *p;
  }
  std::string what = type == NFT_NAT_SNAT ? "snat" : type == NFT_NAT_DNAT ? "dnat" : "";
  if (what.empty()) return false;
  if (family_ == NFPROTO_INET) what += v4 ? " ip" : " ip6";
  words_.push_back(what + " to " + to);
  return true;
}

// One expression; `next` is the one after it (nullptr at the end).
bool Printer::add(const nftnl_expr* e, const nftnl_expr* next) {
  std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (name == "payload") return payload(e);
  if (name == "meta") return meta(e);
  if (name == "cmp") return cmp(e, next);
  if (name == "bitwise") return bitwise(e);
  if (name == "lookup") return lookup(e);
  if (name == "immediate") return immediate(e);
  if (name == "nat") return nat(e);
  if (name == "counter") {
    words_.push_back("counter");  // stateless: without its values
    return true;
  }
  if (name == "ct") {
    if (nftnl_expr_is_set(e, NFTNL_EXPR_CT_SREG) || nftnl_expr_is_set(e, NFTNL_EXPR_CT_DIR)) return false;
    uint32_t key = nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY);
    if (key == NFT_CT_STATE) return put(nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG), {"ct state", Kind::CtState, 4});
    if (key == NFT_CT_MARK) return put(nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG), {"ct mark", Kind::Mark, 4});
    return false;
  }
  if (name == "numgen") {
    uint32_t type = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_TYPE);
    uint32_t offset = nftnl_expr_is_set(e, NFTNL_EXPR_NG_OFFSET) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NG_OFFSET) : 0;
    if (type != NFT_NG_RANDOM && type != NFT_NG_INCREMENTAL) return false;
    std::string text = std::string("numgen ") + (type == NFT_NG_RANDOM ? "random" : "inc") + " mod " +
                       std::to_string(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_MODULUS));
    if (offset) text += " offset " + std::to_string(offset);
    return put(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_DREG), {text, Kind::Int, 4});
  }
  if (name == "fib") {
    uint32_t flags = nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_FLAGS);
    if (nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_RESULT) != NFT_FIB_RESULT_ADDRTYPE) return false;
    std::string text = flags == NFTA_FIB_F_SADDR ? "fib saddr type" : flags == NFTA_FIB_F_DADDR ? "fib daddr type" : "";
    if (text.empty()) return false;
    return put(nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_DREG), {text, Kind::AddrType, 4});
  }
  if (name == "reject") {
    uint32_t type = nftnl_expr_get_u32(e, NFTNL_EXPR_REJECT_TYPE), code = nftnl_expr_get_u8(e, NFTNL_EXPR_REJECT_CODE);
    bool plain = (family_ == NFPROTO_IPV4 && type == NFT_REJECT_ICMP_UNREACH && code == 3) ||
                 (family_ == NFPROTO_IPV6 && type == NFT_REJECT_ICMP_UNREACH && code == 4) ||
                 (family_ == NFPROTO_INET && type == NFT_REJECT_ICMPX_UNREACH && code == NFT_REJECT_ICMPX_PORT_UNREACH);
    if (!plain) return false;
    words_.push_back("reject");
    return true;
  }
  if (name == "masq") {
    if (nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_REG_PROTO_MIN)) return false;
    uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_MASQ_FLAGS) : 0;
    const char* flag = flags == 0                                ? ""
                       : flags == NF_NAT_RANGE_PROTO_RANDOM       ? " random"
                       : flags == NF_NAT_RANGE_PERSISTENT         ? " persistent"
                       : flags == NF_NAT_RANGE_PROTO_RANDOM_FULLY ? " fully-random"
                                                                  : nullptr;
    if (!flag) return false;
    words_.push_back(std::string("masquerade") + flag);
    return true;
  }
  return false;
}

std::optional<std::string> Printer::finish(const nftnl_rule* r) {
  // A register loaded and never used: something this does not read right.
  if (words_.empty() || std::any_of(regs_.begin(), regs_.end(), [](const auto& v) { return v.has_value(); }))
    return std::nullopt;
  std::string out;
  for (const auto& w : words_) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  uint32_t len = 0;
  const auto* ud = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
  bool commented = false;
  for (uint32_t i = 0; ud && i + 2 <= len && i + 2 + ud[i + 1] <= len; i += 2 + ud[i + 1]) {
    if (ud[i] != NFTNL_UDATA_RULE_COMMENT) continue;
    std::string comment(reinterpret_cast<const char*>(ud + i + 2), ud[i + 1]);
    // nft keeps the last of several, and refuses one without its NUL.
    if (commented || comment.empty() || comment.back() != '\0') return std::nullopt;
    comment.pop_back();
    if (comment.find('"') != std::string::npos || comment.find('\0') != std::string::npos) return std::nullopt;
    out += " comment \"" + comment + "\"";
    commented = true;
  }
  return out;
}

std::vector<const nftnl_expr*> expressions(const nftnl_rule* r) {
  std::vector<const nftnl_expr*> out;
  nftnl_expr_foreach(const_cast<nftnl_rule*>(r),
                     [](nftnl_expr* e, void* data) {
                       static_cast<std::vector<const nftnl_expr*>*>(data)->push_back(e);
                       return 0;
                     },
                     &out);
  return out;
}

}  // namespace

std::optional<std::string> nft_rule_text(const nftnl_rule* r, uint32_t family, const NftSets& sets) {
  Printer p(family, sets);
  auto exprs = expressions(r);
  for (size_t i = 0; i < exprs.size(); i++)
    if (!p.add(exprs[i], i + 1 < exprs.size() ? exprs[i + 1] : nullptr)) return std::nullopt;
  return p.finish(r);
}

std::vector<std::string> nft_rule_set_names(const nftnl_rule* r) {
  std::vector<std::string> out;
  for (const nftnl_expr* e : expressions(r)) {
    const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    if (name && std::strcmp(name, "lookup") == 0)
      if (const char* set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)) out.push_back(set);
  }
  return out;
}

}  // namespace natbpf
