#include "sources/legacy_trace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <cstring>
#include <regex>
#include <sstream>

#include "sources/kept_setting.h"
#include "sources/legacy_tables.h"
#include "sources/packet_headers.h"
#include "util/libbpf_quiet.h"
#include "util/netlink.h"
#include "util/runtime.h"
#include "util/text.h"

namespace natbpf {
namespace {

// Sends one NFLOG config attribute; returns the errno of its ack (0: done).
int send_config(mnl_socket* nl, uint16_t res_id, uint8_t family, const void* attr_data, uint16_t attr_type,
                size_t attr_len) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = put_nfnl_request(buf, NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG, NLM_F_ACK, family, res_id);
  mnl_attr_put(nlh, attr_type, attr_len, attr_data);
  return nfnl_request_ack(nl, nlh);
}

}  // namespace

uint32_t legacy_trace_id(const Packet& p) {
  // No trace id in TRACE lines: the IP id, TCP sequence and source stay the
  // same while one skb crosses the tables (DNAT changes only the destination).
  uint32_t h = 2166136261u;
  auto mix = [&h](uint32_t v) { h = (h ^ v) * 16777619u; };
  mix(p.ip_id);
  mix(p.tcp_seq);
  mix(p.l4proto);
  mix(p.sport);
  for (int i = 0; i < 16; i++) mix(p.saddr.bytes[i]);
  return h ? h : 1;
}

std::string rule_comment(const std::string& save_line) {
  static const std::regex comment(R"re((?:^| )--comment (?:"([^"]*)"|(\S+)))re");
  std::smatch m;
  if (!std::regex_search(save_line, m, comment)) return "";
  return m[1].matched ? m[1].str() : m[2].str();
}

std::optional<TracePrefix> parse_trace_prefix(const std::string& prefix) {
  // The kernel's log prefixes are at most NF_LOG_PREFIXLEN (128) bytes; a
  // longer one (from a damaged recording) is no TRACE prefix. Parsed by
  // hand, not with std::regex: saved logs run to millions of lines.
  constexpr size_t kNfLogPrefixLen = 128;
  std::string_view p = prefix;
  if (p.size() >= kNfLogPrefixLen || p.substr(0, 7) != "TRACE: ") return std::nullopt;
  p.remove_prefix(7);
  if (!p.empty() && p.back() == ' ') p.remove_suffix(1);
  std::string_view part[4];
  for (int i = 0; i < 3; i++) {
    size_t colon = p.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    part[i] = p.substr(0, colon);
    p.remove_prefix(colon + 1);
  }
  part[3] = p;
  for (auto piece : part)
    if (piece.empty() || piece.find_first_of(": ") != std::string_view::npos) return std::nullopt;
  if (part[2] != "rule" && part[2] != "return" && part[2] != "policy") return std::nullopt;
  if (part[3].find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  auto number = parse_uint(std::string(part[3]), UINT32_MAX);
  if (!number) return std::nullopt;
  return TracePrefix{std::string(part[0]), std::string(part[1]), std::string(part[2]), *number};
}

std::vector<ChainInfo> parse_legacy_save(const std::string& save, const std::string& family) {
  Ruleset r;
  r.add_legacy_save(save, family);
  const auto& chains = r.chains();
  return {chains.begin(), chains.end()};
}

std::optional<NftVerdict> legacy_target_verdict(const std::string& rule, std::string* jump_target) {
  auto w = split_words(rule);
  for (size_t i = 0; i + 1 < w.size(); i++) {
    if (w[i] != "-j" && w[i] != "-g") continue;
    const std::string& t = w[i + 1];
    if (t == "DROP") return NftVerdict::Drop;
    if (t == "ACCEPT" || t == "DNAT" || t == "SNAT" || t == "MASQUERADE" || t == "REDIRECT" || t == "NETMAP")
      return NftVerdict::Accept;
    if (t == "RETURN") return NftVerdict::Return;
    if (t == "REJECT") return NftVerdict::Drop;
    if (t == "LOG" || t == "TRACE" || t == "MARK" || t == "CONNMARK" || t == "NFLOG" || t == "CT" || t == "NOTRACK")
      return NftVerdict::Continue;
    bool user_chain = std::all_of(t.begin(), t.end(), [](char c) { return !std::islower(static_cast<unsigned char>(c)); });
    if (jump_target) *jump_target = t;
    if (w[i] == "-g") return NftVerdict::Goto;
    return user_chain ? NftVerdict::Jump : NftVerdict::Continue;
  }
  return NftVerdict::Continue;  // no target: a counting rule
}

std::vector<std::vector<std::string>> legacy_match_args(const TraceMatch& m) {
  std::vector<std::string> base;
  if (m.saddr) base.insert(base.end(), {"-s", m.saddr->str()});
  if (m.daddr) base.insert(base.end(), {"-d", m.daddr->str()});
  std::vector<std::string> protos;
  if (m.l4proto) protos.push_back(*m.l4proto == 6 ? "tcp" : *m.l4proto == 17 ? "udp" : "icmp");
  else if (m.sport || m.dport) protos = {"tcp", "udp"};
  else return {base};
  std::vector<std::vector<std::string>> out;
  for (const auto& p : protos) {
    auto a = base;
    a.insert(a.end(), {"-p", p});
    if (m.sport) a.insert(a.end(), {"--sport", std::to_string(m.sport)});
    if (m.dport) a.insert(a.end(), {"--dport", std::to_string(m.dport)});
    out.push_back(a);
  }
  return out;
}

namespace {

// Deletes the raw rules of natbpf processes that died without cleaning up:
// they are only ever inserted in the raw table.
void delete_stale_trace_rules(const std::string& bin, const std::string& raw_save) {
  std::istringstream in(raw_save);
  for (std::string line; std::getline(in, line);) {
    auto pid = line.rfind("-A ", 0) == 0 ? natbpf_owner_pid(rule_comment(line)) : std::nullopt;
    if (!pid || *pid == getpid() || kill(*pid, 0) == 0) continue;
    std::vector<std::string> del = {bin, "-t", "raw", "-D"};
    auto w = split_words(line.substr(3));
    for (auto& x : w) {
      if (x.size() > 1 && x.front() == '"' && x.back() == '"') x = x.substr(1, x.size() - 2);
      del.push_back(x);
    }
    run_program(del);
  }
}

}  // namespace

std::vector<std::string> LegacyTrace::families_in_use(const TraceMatch& match) {
  std::vector<std::string> in_use;
  for (auto [family, bin] : {std::pair{"ip", "iptables-legacy"}, std::pair{"ip6", "ip6tables-legacy"}}) {
    // Only tables that exist: naming another would create it.
    auto tables = legacy_table_names(family);
    std::string raw_save;
    if (std::find(tables.begin(), tables.end(), "raw") != tables.end()) {
      auto [rc, save] = run_program({std::string(bin) + "-save", "-t", "raw"});
      if (rc != 0) continue;  // not installed
      raw_save = save;
      delete_stale_trace_rules(bin, raw_save);
    }
    if (!legacy_tables_have_rules(family, tables, raw_save)) continue;  // legacy tables not in use here
    if (match.l4proto == 1 && std::string(family) == "ip6") continue;
    in_use.push_back(family);
  }
  return in_use;
}

Result<LegacyTrace> LegacyTrace::start(const TraceMatch& match, const std::vector<std::string>& families,
                                       bool log_invalid) {
  LegacyTrace t;
  t.comment_ = std::string(kTraceTablePrefix) + std::to_string(getpid());
  std::vector<std::string> routed = families;
  if (log_invalid) {
    routed = {"ip"};
    if (!(match.l4proto == 1)) routed.push_back("ip6");
  }
  for (const auto& family : routed) {
    bool v6 = family == "ip6";
    bool traced = std::find(families.begin(), families.end(), family) != families.end();
    t.families_.push_back(Family{family, v6 ? "ip6tables-legacy" : "iptables-legacy", traced,
                                 KeptSetting(std::string("/proc/sys/net/netfilter/nf_log/") + (v6 ? "10" : "2"),
                                             "nf_log")});
  }

  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"cannot open an NFLOG socket (" + errno_name(errno) + ")", "run it as root"};
  t.nl_.reset(nl, mnl_socket_close);
  // nfnetlink_log sends each line in an skb of a page or more: the default
  // buffer (rmem_default) held a few dozen, and a reader a moment late (an
  // emulated VM) lost the lines of whole passes at the rate limit. Less
  // than asked (no CAP_NET_ADMIN) still works, as before.
  (void)set_receive_buffer(nl, 8 << 20);
  // Group 0 is where TRACE's nf_log messages go with the nfnetlink_log backend.
  nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_BIND};
  if (int e = send_config(nl, 0, AF_UNSPEC, &cmd, NFULA_CFG_CMD, sizeof(cmd)))
    return Error{"cannot bind NFLOG group 0 (" + errno_name(e) + ")",
                 "another NFLOG listener (ulogd?) holds it in this namespace; stop it while tracing"};
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(128);
  mode.copy_mode = NFULNL_COPY_PACKET;
  (void)send_config(nl, 0, AF_UNSPEC, &mode, NFULA_CFG_MODE, sizeof(mode));

  if (log_invalid) {
    // Conntrack logs INVALID packets of this protocol (255: all) through
    // nf_log, which now goes to NFLOG group 0.
    t.log_invalid_.emplace("/proc/sys/net/netfilter/nf_conntrack_log_invalid", "log_invalid");
    std::string proto = std::to_string(match.l4proto.value_or(255));
    if (KeptSetting::read_sysctl("/proc/sys/net/netfilter/nf_conntrack_log_invalid") == "255") proto = "255";
    if (auto st = t.log_invalid_->set(proto); !st)
      return Error{"cannot log conntrack's INVALID packets: " + st.error().message,
                   "is nf_conntrack loaded in this namespace?"};
  }
  auto matches = legacy_match_args(match);
  for (auto& f : t.families_) {
    if (auto st = f.nf_log.set("nfnetlink_log"); !st)
      return Error{"cannot route " + f.family + " nf_log to NFLOG: " + st.error().message,
                   "is nfnetlink_log available (modprobe nfnetlink_log)?"};
    if (!f.traced) continue;
    for (const char* chain : {"PREROUTING", "OUTPUT"}) for (const auto& m : matches) {
      if (f.family == "ip6" && m.size() >= 2 && m[m.size() - 1] == "icmp") continue;
      std::vector<std::string> args = {f.iptables, "-t", "raw", "-I", chain, "1"};
      args.insert(args.end(), m.begin(), m.end());
      if (!match.iif.empty() && std::string(chain) == "PREROUTING") args.insert(args.end(), {"-i", match.iif});
      if (!match.iif.empty() && std::string(chain) == "OUTPUT") continue;
      // No target and no limit: the packet is traced (nf_trace) by our
      // nftables marking rule, which ran before (its priority is lower), at
      // the one rate limit. ip_tables logs each rule a traced packet
      // matches, so this rule's line starts each pass of a traced packet of
      // the flow (a local packet's second, on lo, too; also one another
      // tracer marked before it) and of no other packet. A TRACE target
      // with a limiter of its own traced other packets than the marking
      // rule did, and missed passes of the packets it had.
      args.insert(args.end(), {"-m", "comment", "--comment", t.comment_});
      if (run_program(args).first != 0) {
        t.remove_rules();
        return Error{"cannot install the " + f.iptables + " rule that starts each traced packet's lines",
                     "is the xt_comment module available?"};
      }
    }
  }
  return t;
}

LegacyTrace::LegacyTrace(LegacyTrace&& o) noexcept
    : families_(std::move(o.families_)),
      log_invalid_(std::move(o.log_invalid_)),
      comment_(std::move(o.comment_)),
      nl_(std::move(o.nl_)),
      lost_(o.lost_) {
  o.families_.clear();
  o.log_invalid_.reset();
}

void LegacyTrace::remove_rules() {
  if (log_invalid_) log_invalid_->restore();
  for (auto& f : families_) {
    f.nf_log.restore();
    if (!f.traced) continue;
    auto [rc, save] = run_program({f.iptables + "-save", "-t", "raw"});
    std::istringstream in(save);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("-A ", 0) != 0 || rule_comment(line) != comment_) continue;
      std::vector<std::string> del = {f.iptables, "-t", "raw", "-D"};
      for (auto& x : split_words(line.substr(3))) {
        if (x.size() > 1 && x.front() == '"' && x.back() == '"') x = x.substr(1, x.size() - 2);
        del.push_back(x);
      }
      run_program(del);
    }
  }
}

LegacyTrace::~LegacyTrace() {
  if (!families_.empty() || log_invalid_) remove_rules();
}

int LegacyTrace::fd() const { return mnl_socket_get_fd(nl_.get()); }

std::vector<std::string> LegacyTrace::families() const {
  std::vector<std::string> out;
  for (const auto& f : families_)
    if (f.traced) out.push_back(f.family);
  return out;
}

Status LegacyTrace::drain(const HeldDatagrams::Parse& datagram_sink) {
  buf_.resize(1 << 16);
  for (;;) {
    sockaddr_nl from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd(), buf_.data(), buf_.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Ok{};
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        lost_++;
        continue;
      }
      return Error{"reading NFLOG failed (" + errno_name(errno) + ")", ""};
    }
    // Only the kernel speaks for nfnetlink_log: a datagram from a user
    // process (any port) is not a trace and is counted, never parsed.
    if (from_len < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0) {
      foreign_++;
      continue;
    }
    uint64_t now = monotonic_ns();
    datagram_sink(std::span<const uint8_t>(buf_.data(), static_cast<size_t>(n)), now);
  }
}

std::optional<std::string> parse_invalid_prefix(const std::string& prefix, uint8_t* proto) {
  constexpr size_t kNfLogPrefixLen = 128;
  if (prefix.size() >= kNfLogPrefixLen || prefix.rfind("nf_ct_", 0) != 0) return std::nullopt;
  size_t colon = prefix.find(": ");
  if (colon == std::string::npos) return std::nullopt;
  std::string name = prefix.substr(6, colon - 6);
  static const std::map<std::string, uint8_t> names = {{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58},
                                                       {"sctp", 132}, {"dccp", 33}, {"udplite", 136}, {"gre", 47}};
  uint8_t p = 0;
  if (name.rfind("proto_", 0) == 0 && name.size() > 6 && name.size() <= 9 &&
      std::all_of(name.begin() + 6, name.end(), [](unsigned char c) { return std::isdigit(c); })) {
    int v = std::stoi(name.substr(6));
    if (v > 255) return std::nullopt;
    p = static_cast<uint8_t>(v);
  } else if (auto it = names.find(name); it != names.end()) {
    p = it->second;
  } else {
    return std::nullopt;
  }
  std::string reason = prefix.substr(colon + 2);
  while (!reason.empty() && reason.back() == ' ') reason.pop_back();
  if (reason.empty()) return std::nullopt;
  if (proto) *proto = p;
  return reason;
}

void parse_nflog_datagram(std::span<const uint8_t> datagram, uint64_t recv_ns, const std::string& comment,
                          const LegacyRules& rules, const std::function<void(NftTraceEvent&&)>& sink,
                          const std::function<void(BpfEvent&&)>& invalid) {
  for_each_nlmsg(datagram, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) return;
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nfgenmsg)) return;
    const nlattr* tb[NFULA_MAX + 1] = {};
    parse_nlmsg_attrs(
        nlh, sizeof(nfgenmsg),
        [](const nlattr* a, void* data) {
          int type = mnl_attr_get_type(a);
          if (type > 0 && type <= NFULA_MAX) static_cast<const nlattr**>(data)[type] = a;
          return MNL_CB_OK;
        },
        tb);
    if (!tb[NFULA_PREFIX] || !tb[NFULA_PAYLOAD]) return;
    if (mnl_attr_validate(tb[NFULA_PREFIX], MNL_TYPE_NUL_STRING) < 0) return;
    std::string text = mnl_attr_get_str(tb[NFULA_PREFIX]);
    auto prefix = parse_trace_prefix(text);
    auto* data = static_cast<const uint8_t*>(mnl_attr_get_payload(tb[NFULA_PAYLOAD]));
    if (!prefix) {
      uint8_t proto = 0;
      auto reason = invalid ? parse_invalid_prefix(text, &proto) : std::nullopt;
      auto pkt = reason ? decode_ip_packet({data, mnl_attr_get_payload_len(tb[NFULA_PAYLOAD])}) : std::nullopt;
      if (!pkt) return;  // an ordinary NFLOG rule, not TRACE nor conntrack's INVALID log
      CtInvalidEvent ev;
      ev.ts_ns = recv_ns;
      ev.origin = Origin::Nflog;
      ev.protonum = proto;
      ev.pkt = *pkt;
      ev.reason = *reason;
      invalid(std::move(ev));
      return;
    }
    auto pkt = decode_ip_packet({data, mnl_attr_get_payload_len(tb[NFULA_PAYLOAD])});
    if (!pkt) return;
    auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    auto ev = legacy_trace_event(*prefix, nfg->nfgen_family, *pkt, comment, rules);  // NFPROTO_IPV4 / IPV6
    if (!ev) return;
    ev->recv_ns = recv_ns;
    for (auto [attr, field] : {std::pair{NFULA_IFINDEX_INDEV, &ev->iif}, std::pair{NFULA_IFINDEX_OUTDEV, &ev->oif}})
      if (tb[attr] && mnl_attr_get_payload_len(tb[attr]) == 4) *field = ntohl(mnl_attr_get_u32(tb[attr]));
    sink(std::move(*ev));
  });
}

std::optional<NftTraceEvent> legacy_trace_event(const TracePrefix& prefix, uint8_t family, const Packet& pkt,
                                                const std::string& comment, const LegacyRules& rules) {
  NftTraceEvent ev;
  ev.origin = Origin::Nflog;
  ev.family = family;
  ev.table = prefix.table;
  ev.chain = prefix.chain;
  ev.packet = pkt;
  ev.id = legacy_trace_id(pkt);
  const ChainInfo* chain = rules(ev.family, ev.table, ev.chain);
  // A chain holding only our raw rules is not part of the user's story.
  if (!comment.empty() && chain && !chain->rules.empty() &&
      std::all_of(chain->rules.begin(), chain->rules.end(),
                  [&](const RuleInfo& r) { return r.text.find(comment) != std::string::npos; }) &&
      prefix.type != "rule")
    return std::nullopt;
  // ip_tables reports any unconditional rule with a standard verdict
  // (e.g. a final "-j DROP") as the chain's "return"/"policy" tail, with
  // that rule's number: if the number names a real rule, it decided.
  bool real_rule = chain && prefix.number >= 1 && prefix.number <= chain->rules.size();
  if (real_rule) {
    const RuleInfo& r = chain->rules[prefix.number - 1];
    std::string target;
    ev.type = NftTraceType::Rule;
    ev.rule_handle = prefix.number;
    ev.verdict = legacy_target_verdict(r.text, &target);
    if (!target.empty()) ev.jump_target = target;
    ev.starts_packet = !comment.empty() && r.text.find(comment) != std::string::npos;
  } else if (prefix.type == "rule") {
    ev.type = NftTraceType::Rule;  // a rule the ruleset at hand does not have (a log without its save file)
    ev.rule_handle = prefix.number;
  } else if (prefix.type == "policy") {
    ev.type = NftTraceType::Policy;
    if (chain && chain->policy) ev.policy = *chain->policy == "drop" ? 0 : 1;
  } else {
    ev.type = NftTraceType::Return;  // the implicit return at a user chain's end
  }
  return ev;
}

std::optional<std::string> LegacyTraceSource::cannot_run() {
  families_ = LegacyTrace::families_in_use(match_);
  if (families_.empty() && !invalid_) return std::string(kLegacyNotInUse);
  return std::nullopt;
}

Status LegacyTraceSource::start() {
  auto t = LegacyTrace::start(match_, families_, bool(invalid_));
  if (!t) return t.error();
  trace_.emplace(std::move(*t));
  return Ok{};
}

Status LegacyTraceSource::read() {
  if (!trace_) return Ok{};
  HeldDatagrams::Parse parse = [this](std::span<const uint8_t> d, uint64_t recv_ns) { this->parse(d, recv_ns); };
  Status st = trace_->drain([this, &parse](std::span<const uint8_t> d, uint64_t recv_ns) { held_.hold(d, recv_ns, parse); });
  held_.release(false, parse);
  if (read_first_error_ && st) st = *read_first_error_;
  read_first_error_.reset();
  return st;
}

// A packet's nftables trace messages (our marking chain's first) were sent
// before its TRACE lines, so once these lines are in, so are they: they
// are read before the lines are parsed, also when a full hold is parsed
// mid-drain, or a line read between the two sockets' reads opens a story
// of its own (a burst of released packets did, every third run).
void LegacyTraceSource::set_read_first(std::function<Status()> read_first) {
  held_.set_before_parse([this, read_first = std::move(read_first)] {
    if (Status st = read_first(); !st && !read_first_error_) read_first_error_ = st.error();
  });
}

// Tapped when parsed, not when received: a recording then holds the lines
// after the trace messages read before them, as the live run joined them.
void LegacyTraceSource::parse(std::span<const uint8_t> datagram, uint64_t recv_ns) {
  if (tap_) tap_(datagram, recv_ns);
  parse_nflog_datagram(datagram, recv_ns, trace_->comment(), rules_, sink_, invalid_);
}

void LegacyTraceSource::set_rules_ready(std::function<bool()> rules_ready) {
  held_.set_ready(std::move(rules_ready));
}

void LegacyTraceSource::release(bool force) {
  if (trace_) held_.release(force, [this](std::span<const uint8_t> d, uint64_t ns) { parse(d, ns); });
}

}  // namespace natbpf
