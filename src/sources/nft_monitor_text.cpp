#include "sources/nft_monitor_text.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <utility>

namespace natbpf {
namespace {

constexpr std::string_view kTraceId = "trace id ";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The words of a line: nft separates them by one space, a log may add more.
class Tokens {
 public:
  explicit Tokens(std::string_view s) : s_(s) {}
  std::string_view next() {
    skip_spaces();
    size_t end = pos_;
    while (end < s_.size() && !is_space(s_[end])) ++end;
    std::string_view word = s_.substr(pos_, end - pos_);
    pos_ = end;
    return word;
  }
  std::string_view peek() const {
    Tokens copy = *this;
    return copy.next();
  }
  std::string_view rest() {
    skip_spaces();
    return s_.substr(pos_);
  }
  bool done() {
    skip_spaces();
    return pos_ >= s_.size();
  }

 private:
  void skip_spaces() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

template <typename T>
std::optional<T> parse_uint(std::string_view s, int base) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Decimal, or hex with 0x as nft prints marks and bitmasks it has no name for.
template <typename T>
std::optional<T> parse_number(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return parse_uint<T>(s.substr(2), 16);
  return parse_uint<T>(s, 10);
}

// nft's family2str().
std::optional<uint8_t> family_from_name(std::string_view s) {
  if (s == "ip") return NFPROTO_IPV4;
  if (s == "ip6") return NFPROTO_IPV6;
  if (s == "inet") return NFPROTO_INET;
  if (s == "arp") return NFPROTO_ARP;
  if (s == "bridge") return NFPROTO_BRIDGE;
  if (s == "netdev") return NFPROTO_NETDEV;
  if (s == "unknown") return NFPROTO_UNSPEC;
  return std::nullopt;
}

struct Name {
  std::string_view name;
  uint32_t value;
};

template <size_t N>
std::optional<uint32_t> lookup(const Name (&table)[N], std::string_view s) {
  for (const Name& n : table)
    if (n.name == s) return n.value;
  return std::nullopt;
}

// /etc/protocols names nft prints for "ip protocol", "ip6 nexthdr", "meta l4proto".
constexpr Name kProtocols[] = {
    {"tcp", IPPROTO_TCP},          {"udp", IPPROTO_UDP},       {"icmp", IPPROTO_ICMP},
    {"ipv6-icmp", IPPROTO_ICMPV6}, {"icmpv6", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP},
    {"udplite", IPPROTO_UDPLITE},  {"dccp", IPPROTO_DCCP},     {"gre", IPPROTO_GRE},
    {"esp", IPPROTO_ESP},          {"ah", IPPROTO_AH},         {"igmp", IPPROTO_IGMP},
    {"comp", IPPROTO_COMP}};

// The words that start "HEADER FIELD VALUE" in a packet line. Knowing them
// keeps a value such as the "ip" of "ether type ip" from being read as a
// header; the transport ones also say the L4 protocol ("tcp dport 22").
enum class Header { None, Other, Ip, Ip6, Meta, Ct, Transport };

struct HeaderWord {
  Header kind = Header::None;
  uint8_t l4proto = 0;
};

constexpr Name kTransportHeaders[] = {
    {"tcp", IPPROTO_TCP},   {"udp", IPPROTO_UDP},   {"udplite", IPPROTO_UDPLITE}, {"sctp", IPPROTO_SCTP},
    {"dccp", IPPROTO_DCCP}, {"icmp", IPPROTO_ICMP}, {"icmpv6", IPPROTO_ICMPV6}};
constexpr std::string_view kOtherHeaders[] = {"ether", "vlan", "arp", "th",  "ah",
                                              "esp",   "comp", "gre", "igmp"};

HeaderWord header_word(std::string_view s) {
  // Most words of a packet line are values: a length and a letter reject them.
  if (s.size() < 2 || s.size() > 7 || s[0] < 'a' || s[0] > 'v') return {};
  if (s == "ip") return {Header::Ip};
  if (s == "ip6") return {Header::Ip6};
  if (s == "ct") return {Header::Ct};
  if (s == "meta") return {Header::Meta};
  if (auto proto = lookup(kTransportHeaders, s)) return {Header::Transport, static_cast<uint8_t>(*proto)};
  for (std::string_view other : kOtherHeaders)
    if (s == other) return {Header::Other};
  return {};
}

// nft's tcp_flag_type symbols.
constexpr Name kTcpFlags[] = {{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
                              {"ack", 0x10}, {"urg", 0x20}, {"ecn", 0x40}, {"cwr", 0x80}};

// nft's ct_state_tbl: NF_CT_STATE_INVALID_BIT, NF_CT_STATE_BIT(ctinfo), NF_CT_STATE_UNTRACKED_BIT.
constexpr Name kCtStates[] = {
    {"invalid", 1}, {"established", 1u << 1}, {"related", 1u << 2}, {"new", 1u << 3}, {"untracked", 1u << 6}};

// nft's ct_status_tbl (1.0.6 has the first seven, 1.1.x the rest), as enum ip_conntrack_status bits.
constexpr Name kCtStatus[] = {{"expected", 1u << 0},   {"seen-reply", 1u << 1},     {"assured", 1u << 2},
                              {"confirmed", 1u << 3},  {"snat", 1u << 4},           {"dnat", 1u << 5},
                              {"seq-adjust", 1u << 6}, {"snat-done", 1u << 7},      {"dnat-done", 1u << 8},
                              {"dying", 1u << 9},      {"fixed-timeout", 1u << 10}, {"clash", 1u << 12},
                              {"helper", 1u << 13},    {"offload", 1u << 14},       {"hw-offload", 1u << 15}};

constexpr Name kCtDirections[] = {{"original", 0}, {"reply", 1}};

// A symbol, or a number where nft had no symbol for the value.
template <size_t N>
std::optional<uint32_t> symbol_or_number(const Name (&table)[N], std::string_view s) {
  if (auto v = lookup(table, s)) return v;
  return parse_number<uint32_t>(s);
}

// "established,new" (nft joins the bits of a bitmask with ','; newer
// versions put " | " between flags, which read_value splits): nullopt when
// any part is unknown, an absent value rather than a partial one.
template <size_t N>
std::optional<uint32_t> parse_bits(const Name (&table)[N], std::string_view s) {
  uint32_t bits = 0;
  while (!s.empty()) {
    size_t end = s.find_first_of(",|");
    auto bit = symbol_or_number(table, s.substr(0, end));
    if (!bit) return std::nullopt;
    bits |= *bit;
    s = end == std::string_view::npos ? std::string_view{} : s.substr(end + 1);
  }
  return bits;
}

std::optional<Addr> parse_addr(std::string_view s, uint8_t family) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  Addr a;
  if (inet_pton(family == NFPROTO_IPV6 ? AF_INET6 : AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
  a.family = family;
  return a;
}

// A quoted name between its quotes; nullopt when a quote is missing (a cut line).
std::optional<std::string_view> unquote(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::nullopt;
  return s.substr(1, s.size() - 2);
}

// "22", or the quoted service name `nft -S` prints ("ssh").
std::optional<uint16_t> parse_port(std::string_view s, uint8_t l4proto) {
  if (auto port = parse_number<uint16_t>(s)) return port;
  auto name = unquote(s);
  if (!name) return std::nullopt;
  servent entry{}, *found = nullptr;
  char scratch[1024];
  const char* proto = l4proto == IPPROTO_UDP || l4proto == IPPROTO_UDPLITE ? "udp" : "tcp";
  getservbyname_r(std::string(*name).c_str(), proto, &entry, scratch, sizeof(scratch), &found);
  if (!found) return std::nullopt;
  return ntohs(static_cast<uint16_t>(found->s_port));
}

void read_interface(std::string_view value, std::string& name, std::optional<uint32_t>& index) {
  if (auto quoted = unquote(value))
    name = *quoted;
  else
    index = parse_number<uint32_t>(value);  // nft prints the index of an interface it cannot name
}

void read_ip_field(std::string_view field, std::string_view v, uint8_t family, Packet& p) {
  if (p.family == 0) p.family = family;
  if (p.family != family) return;  // an inner header of a tunnel: keep the outer one
  if (field == "saddr") p.saddr = parse_addr(v, family).value_or(p.saddr);
  if (field == "daddr") p.daddr = parse_addr(v, family).value_or(p.daddr);
  if (field == "id" && family == NFPROTO_IPV4) p.ip_id = parse_number<uint16_t>(v).value_or(p.ip_id);
  // Packet::len is the whole packet; ip6 length is the payload length.
  if (field == "length")
    if (auto len = parse_number<uint16_t>(v)) p.len = family == NFPROTO_IPV6 ? 40u + *len : *len;
  if (field == "protocol" || field == "nexthdr")
    if (auto proto = symbol_or_number(kProtocols, v); proto && *proto <= 0xff) p.l4proto = uint8_t(*proto);
}

void read_transport_field(uint8_t l4proto, std::string_view field, std::string_view v, Packet& p) {
  if (p.l4proto == 0) p.l4proto = l4proto;
  if (p.l4proto != l4proto) return;
  if (field == "sport") p.sport = parse_port(v, l4proto).value_or(p.sport);
  if (field == "dport") p.dport = parse_port(v, l4proto).value_or(p.dport);
  if (l4proto != IPPROTO_TCP) return;
  if (field == "sequence") p.tcp_seq = parse_number<uint32_t>(v).value_or(p.tcp_seq);
  if (field == "ackseq") p.tcp_ack = parse_number<uint32_t>(v).value_or(p.tcp_ack);
}

void read_ct_field(std::string_view field, std::string_view v, NftPacketLines& f) {
  if (field == "state") f.ct_state = parse_bits(kCtStates, v);
  if (field == "status") f.ct_status = parse_bits(kCtStatus, v);
  if (field == "id") f.ct_id = parse_number<uint32_t>(v);
  if (field == "direction")
    if (auto dir = symbol_or_number(kCtDirections, v); dir && *dir <= 1) f.ct_direction = uint8_t(*dir);
}

// The fields of a "packet:" or "conntrack:" line into f, as nft prints
// payload statements: "HEADER FIELD VALUE", "tcp flags == syn" for bitmasks.
// Unknown words are skipped one at a time.
void read_fields(std::string_view text, NftPacketLines& f) {
  Packet packet;  // family 0 until an IP header is seen
  Tokens t(text);
  while (!t.done()) {
    std::string_view word = t.next();
    if (word == "iif" || word == "oif") {
      read_interface(t.next(), word == "iif" ? f.iif_name : f.oif_name, word == "iif" ? f.iif : f.oif);
      continue;
    }
    HeaderWord header = header_word(word);
    if (header.kind == Header::None) continue;
    std::string_view field = t.next();
    std::string_view value = t.next();
    if (value == "==") value = t.next();  // must_print_eq_op(): bitmask values
    // "tcp flags == syn", "0x14", and "syn | ack" where a version spaces them.
    bool tcp_flags = header.l4proto == IPPROTO_TCP && field == "flags";
    uint32_t flags = 0;
    for (std::string_view part = value;; part = t.next()) {
      if (tcp_flags) flags |= parse_bits(kTcpFlags, part).value_or(0);
      if (t.peek() != "|") break;
      t.next();
    }
    switch (header.kind) {
      case Header::Ip: read_ip_field(field, value, NFPROTO_IPV4, packet); break;
      case Header::Ip6: read_ip_field(field, value, NFPROTO_IPV6, packet); break;
      case Header::Ct: read_ct_field(field, value, f); break;
      case Header::Meta:
        if (field == "mark") f.mark = parse_number<uint32_t>(value);
        break;
      case Header::Transport:
        read_transport_field(header.l4proto, field, value, packet);
        if (tcp_flags && packet.l4proto == IPPROTO_TCP) packet.tcp_flags = static_cast<uint8_t>(flags);
        break;
      case Header::Other:
      case Header::None: break;
    }
  }
  if (packet.family) f.packet = packet;
}

constexpr std::pair<std::string_view, NftVerdict> kVerdictWords[] = {
    {"accept", NftVerdict::Accept}, {"drop", NftVerdict::Drop},   {"continue", NftVerdict::Continue},
    {"return", NftVerdict::Return}, {"break", NftVerdict::Break}, {"queue", NftVerdict::Queue},
    {"stolen", NftVerdict::Stolen}, {"jump", NftVerdict::Jump},   {"goto", NftVerdict::Goto}};

// The verdict words of "(verdict V)" and "verdict V" (verdict_type_print()):
// false when there are none.
bool read_verdict(Tokens& t, NftTraceEvent& ev) {
  std::string_view word = t.next();
  if (word.empty()) return false;
  if (word == "unknown" && t.peek() == "verdict") {
    // "unknown verdict value 4": a code nft has no word for (NF_REPEAT, NF_STOP).
    t.next();
    t.next();
    auto code = parse_number<uint32_t>(t.next());
    if (!code) return false;
    ev.verdict_code = static_cast<int32_t>(*code);
    ev.verdict = nft_verdict_from_code(*ev.verdict_code);
    return true;
  }
  ev.verdict = NftVerdict::Unknown;  // a word of a newer nft
  for (auto [name, verdict] : kVerdictWords)
    if (word == name) ev.verdict = verdict;
  if (ev.verdict == NftVerdict::Jump || ev.verdict == NftVerdict::Goto)
    if (std::string_view target = t.next(); !target.empty()) ev.jump_target = std::string(target);
  return true;
}

// "RULE TEXT [# handle N] (verdict V)": the rule as nft printed it from its
// cache, " # handle N" added by -a (rule_print()).
bool read_rule(std::string_view text, NftTraceEvent& ev) {
  // The last one: a rule comment may hold " (verdict ".
  size_t at = text.rfind(" (verdict ");
  if (at == std::string_view::npos) return false;
  std::string_view verdict = text.substr(at + 10);
  size_t close = verdict.find(')');
  if (close == std::string_view::npos) return false;  // a cut line
  Tokens t(verdict.substr(0, close));
  if (!read_verdict(t, ev)) return false;
  std::string_view rule = trim(text.substr(0, at));
  if (size_t h = rule.rfind("# handle "); h != std::string_view::npos && (h == 0 || rule[h - 1] == ' ')) {
    if (auto handle = parse_uint<uint64_t>(rule.substr(h + 9), 10)) {
      ev.rule_handle = handle;
      rule = trim(rule.substr(0, h));
    }
  }
  ev.rule_text = std::string(rule);
  ev.type = NftTraceType::Rule;
  return true;
}

// "V [meta mark M]" after "verdict " (NFT_TRACETYPE_RETURN: a chain's end)
// or "accept|drop [meta mark M]" after "policy " (trace_print_verdict(),
// trace_print_policy(), trace_print_expr()).
bool read_chain_end(std::string_view text, NftTraceType type, NftTraceEvent& ev) {
  Tokens t(text);
  if (!read_verdict(t, ev)) return false;
  if (type == NftTraceType::Policy) {
    // NFTA_TRACE_POLICY is the chain's policy (NF_ACCEPT or NF_DROP), not a verdict.
    auto code = std::exchange(ev.verdict_code, std::nullopt);
    switch (*std::exchange(ev.verdict, std::nullopt)) {
      case NftVerdict::Accept: ev.policy = NF_ACCEPT; break;
      case NftVerdict::Drop: ev.policy = NF_DROP; break;
      default:
        if (!code) return false;
        ev.policy = static_cast<uint32_t>(*code);
    }
  }
  NftPacketLines trailing;
  read_fields(t.rest(), trailing);
  ev.mark = trailing.mark;
  ev.type = type;
  return true;
}

struct TraceHeader {
  std::string_view prefix, table, chain, rest;
  uint32_t id = 0;
  uint8_t family = 0;
};

// "trace id ID FAMILY TABLE CHAIN REST" anywhere in the line
// (trace_print_hdr()); nullopt when it is not all there.
std::optional<TraceHeader> read_header(std::string_view line, size_t at) {
  TraceHeader h;
  h.prefix = trim(line.substr(0, at));
  Tokens t(line.substr(at + kTraceId.size()));
  std::string_view id = t.next();
  // nft prints %08x; published examples shorten it.
  auto value = id.size() <= 8 ? parse_uint<uint32_t>(id, 16) : std::nullopt;
  auto family = family_from_name(t.next());
  if (!value || !family) return std::nullopt;
  h.id = *value;
  h.family = *family;
  h.table = t.next();
  h.chain = t.next();
  h.rest = trim(t.rest());
  if (h.table.empty() || h.chain.empty() || h.rest.empty()) return std::nullopt;
  return h;
}

}  // namespace

bool NftMonitorTextParser::looks_like(std::string_view line) {
  size_t at = line.find(kTraceId);
  return at != std::string_view::npos && read_header(line, at);
}

NftPacketLines& NftMonitorTextParser::pending_for(uint32_t id) {
  if (auto it = slot_of_.find(id); it != slot_of_.end()) return slots_[it->second].pending;
  size_t index = slots_.size();
  if (index < kMaxPending) {
    slots_.emplace_back();
  } else {
    index = next_slot_;  // the oldest
    next_slot_ = (next_slot_ + 1) % kMaxPending;
    if (slots_[index].live) {
      slot_of_.erase(slots_[index].id);
      ++evicted_;
    }
  }
  Slot& slot = slots_[index];
  slot.id = id;
  slot.live = true;
  slot.pending = NftPacketLines{};
  slot_of_[id] = index;
  return slot.pending;
}

void NftMonitorTextParser::attach_pending(uint32_t id, Parsed& out) {
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return;
  Slot& slot = slots_[it->second];
  slot_of_.erase(it);
  slot.live = false;
  NftPacketLines& p = slot.pending;
  NftTraceEvent& ev = out.ev;
  ev.packet = std::move(p.packet);
  ev.iif = p.iif;
  ev.oif = p.oif;
  if (!ev.mark) ev.mark = p.mark;
  ev.ct_id = p.ct_id;
  ev.ct_status = p.ct_status;
  ev.ct_state = p.ct_state;
  ev.ct_direction = p.ct_direction;
  out.iif_name = std::move(p.iif_name);
  out.oif_name = std::move(p.oif_name);
  if (ev.packet) {
    ev.packet->ifindex = ev.iif.value_or(ev.oif.value_or(0));
    if (ev.family == NFPROTO_INET) ev.nfproto = ev.packet->family;  // NFTA_TRACE_NFPROTO: the hook's family
  }
  if (ev.family == NFPROTO_IPV4 || ev.family == NFPROTO_IPV6) ev.nfproto = ev.family;
}

std::optional<NftMonitorTextParser::Parsed> NftMonitorTextParser::feed(std::string_view line) {
  ++lines_;
  size_t at = line.find(kTraceId);
  if (at == std::string_view::npos) return std::nullopt;
  auto h = read_header(line, at);
  if (!h) {
    ++malformed_;
    return std::nullopt;
  }

  if (h->rest.starts_with("conntrack:")) {
    // The first line of a message (nftables 1.1.4+ trace_print_packet()).
    NftPacketLines& p = pending_for(h->id);
    p = NftPacketLines{};
    read_fields(h->rest.substr(10), p);
    return std::nullopt;
  }
  if (h->rest.starts_with("packet:")) {
    NftPacketLines& p = pending_for(h->id);
    p = NftPacketLines{
        .ct_id = p.ct_id, .ct_status = p.ct_status, .ct_state = p.ct_state, .ct_direction = p.ct_direction};
    read_fields(h->rest.substr(7), p);
    return std::nullopt;
  }

  Parsed out;
  NftTraceEvent& ev = out.ev;
  ev.id = h->id;
  ev.family = h->family;
  bool ok = false;
  if (h->rest.starts_with("rule ")) {
    ok = read_rule(h->rest.substr(5), ev);
  } else if (h->rest.starts_with("unknown rule handle ")) {
    // The rule was added after nft read the ruleset: no text, only the handle.
    std::string_view text = h->rest.substr(20);
    size_t end = text.find(' ');
    ev.rule_handle = parse_uint<uint64_t>(text.substr(0, end), 10);
    ok = ev.rule_handle && end != std::string_view::npos && read_rule(text.substr(end), ev);
  } else if (h->rest.starts_with("verdict ")) {
    ok = read_chain_end(h->rest.substr(8), NftTraceType::Return, ev);
  } else if (h->rest.starts_with("policy ")) {
    ok = read_chain_end(h->rest.substr(7), NftTraceType::Policy, ev);
  }
  if (!ok) {
    ++malformed_;
    return std::nullopt;
  }
  ev.table = std::string(h->table);
  ev.chain = std::string(h->chain);
  out.prefix = std::string(h->prefix);
  out.line = lines_;
  attach_pending(h->id, out);
  return out;
}

}  // namespace natbpf
