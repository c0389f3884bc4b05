#include "sources/trace_table.h"

#include <net/if.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <tuple>
#include <vector>

#include "sources/nft_netlink.h"
#include "sources/trace_hold.h"
#include "util/libbpf_quiet.h"
#include "util/netlink.h"
#include "util/text.h"

namespace natbpf {

Result<std::string> parse_rate(const std::string& text) {
  static const std::regex re(R"(^([1-9][0-9]{0,8})/(second|minute|hour|day)$)");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    return usage_error("bad --rate '" + text + "'", "use N/second, N/minute, N/hour or N/day, e.g. 10/second");
  return text;
}

// The kernel evaluates this for every packet of the namespace, and stops at
// the first selector that fails: the port comes first (a load and a compare;
// a packet without a transport header fails it too), the protocol set (a set
// lookup) only for packets that have the port. On a flood to another port
// that halves what the marking chain costs (docs/benchmarks.md, trace rows).
std::string trace_match_expression(const TraceMatch& m) {
  std::ostringstream e;
  auto addr = [&](const Addr& a, const char* dir) {
    e << (a.family == 10 ? "ip6 " : "ip ") << dir << " " << a.str() << " ";
  };
  if (m.dport) e << "th dport " << m.dport << " ";
  if (m.sport) e << "th sport " << m.sport << " ";
  if (m.l4proto == 1) e << "meta l4proto { icmp, ipv6-icmp } ";
  else if (m.l4proto) e << "meta l4proto " << (*m.l4proto == 6 ? "tcp" : "udp") << " ";
  else if (m.sport || m.dport) e << "meta l4proto { tcp, udp, sctp, dccp } ";
  if (m.daddr) addr(*m.daddr, "daddr");
  if (m.saddr) addr(*m.saddr, "saddr");
  if (!m.iif.empty()) e << "iifname \"" << m.iif << "\" ";
  std::string s = e.str();
  if (!s.empty()) s.pop_back();
  return s;
}

namespace {

// Deletes natbpf tables left by processes that no longer exist (kernels
// without the owner flag, after a SIGKILL). The names come from a table dump,
// not `list tables`: that would read the whole ruleset before natbpf is ready.
void remove_stale_tables() {
  auto names = nft_table_names(NFPROTO_INET);
  if (!names) return;
  for (const auto& name : *names) {
    // "natbpf_<pid>" exactly: a user's table is never touched.
    auto pid = natbpf_owner_pid(name);
    // Ours cannot exist yet: one by our pid is a dead process's (pid reuse,
    // often pid 1 in a container).
    if (!pid || (*pid != getpid() && kill(*pid, 0) == 0)) continue;
    (void)nft_delete_table(NFPROTO_INET, name);
  }
}

void add_expr(nftnl_rule* r, const char* name, const std::function<void(nftnl_expr*)>& fill) {
  nftnl_expr* e = nftnl_expr_alloc(name);
  fill(e);
  nftnl_rule_add_expr(r, e);
}

void cmp_eq(nftnl_rule* r, const void* data, uint32_t len) {
  add_expr(r, "cmp", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  });
}

void meta_load(nftnl_rule* r, uint32_t key) {
  add_expr(r, "meta", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  });
}

void payload_load(nftnl_rule* r, uint32_t base, uint32_t offset, uint32_t len) {
  add_expr(r, "payload", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  });
}

// The seconds of nft's rate units ("10/second": parse_rate checked it).
uint64_t rate_unit_seconds(const std::string& unit) {
  return unit == "minute" ? 60 : unit == "hour" ? 3600 : unit == "day" ? 86400 : 1;
}

// The protocols of the match's set, if it needs one: "meta l4proto { ... }".
std::vector<uint8_t> match_protocols(const TraceMatch& m) {
  if (m.l4proto == 1) return {IPPROTO_ICMP, IPPROTO_ICMPV6};
  if (!m.l4proto && (m.sport || m.dport)) return {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_DCCP};
  return {};
}

constexpr const char* kAnonymousSet = "__set%d";  // the kernel numbers it

// An anonymous constant set of protocols, found by the rule's lookup by set_id.
void add_protocol_set(NftBatch& b, const std::string& table, const std::vector<uint8_t>& protos, uint32_t set_id) {
  std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, kAnonymousSet);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, set_id);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, 12);  // nft's inet_proto, so `nft list` names them
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, 1);
  nlmsghdr* nlh = b.message(NFT_MSG_NEWSET, NLM_F_CREATE);
  nftnl_set_nlmsg_build_payload(nlh, set.get());
  b.put(nlh);
  for (uint8_t p : protos) {
    nftnl_set_elem* el = nftnl_set_elem_alloc();
    nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, &p, 1);
    nftnl_set_elem_add(set.get(), el);
  }
  nlh = b.message(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
  nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
  b.put(nlh);
}

// The expressions of trace_match_expression(m), in its order.
void add_selectors(nftnl_rule* r, const TraceMatch& m, bool protocol_set, uint32_t set_id) {
  // "th dport N": the transport header's bytes, whatever the protocol.
  for (auto [port, offset] : {std::pair{m.dport, 2u}, std::pair{m.sport, 0u}}) {
    if (!port) continue;
    uint16_t be = htons(port);
    payload_load(r, NFT_PAYLOAD_TRANSPORT_HEADER, offset, 2);
    cmp_eq(r, &be, 2);
  }
  if (protocol_set) {
    meta_load(r, NFT_META_L4PROTO);
    add_expr(r, "lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, kAnonymousSet);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    });
  } else if (m.l4proto) {
    meta_load(r, NFT_META_L4PROTO);
    cmp_eq(r, &*m.l4proto, 1);
  }
  // "ip daddr A" in an inet table: the network protocol first (nft's dependency).
  std::optional<uint8_t> nfproto;
  for (auto [addr, v4, v6] : {std::tuple{&m.daddr, 16u, 24u}, std::tuple{&m.saddr, 12u, 8u}}) {
    if (!*addr) continue;
    const Addr& a = **addr;
    bool is6 = a.family == AF_INET6;
    uint8_t want = is6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    if (nfproto != want) {
      meta_load(r, NFT_META_NFPROTO);
      cmp_eq(r, &want, 1);
      nfproto = want;
    }
    payload_load(r, NFT_PAYLOAD_NETWORK_HEADER, is6 ? v6 : v4, is6 ? 16 : 4);
    cmp_eq(r, a.bytes.data(), is6 ? 16 : 4);
  }
  if (!m.iif.empty()) {
    char name[IFNAMSIZ] = {};
    std::memcpy(name, m.iif.data(), std::min(m.iif.size(), sizeof(name) - 1));
    meta_load(r, NFT_META_IIFNAME);
    cmp_eq(r, name, sizeof(name));
  }
}

void add_action(nftnl_rule* r, const MarkAction& a) {
  if (a.hold == TraceTable::Hold::NftQueue) {
    add_expr(r, "queue", [&](nftnl_expr* e) {
      nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, a.queue);
      nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, 1);
      nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, NFT_QUEUE_FLAG_BYPASS);
    });
    return;
  }
  if (a.hold == TraceTable::Hold::XtQueue) {
    add_expr(r, "target", [&](nftnl_expr* e) {
      // libnftnl keeps (and frees) the info it is given: a malloc'd copy.
      auto* info = static_cast<xt_NFQ_info_v3*>(calloc(1, XT_ALIGN(sizeof(xt_NFQ_info_v3))));
      info->queuenum = a.queue;
      info->queues_total = 1;
      info->flags = NFQ_FLAG_BYPASS;
      nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
      nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
      nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, XT_ALIGN(sizeof(xt_NFQ_info_v3)));
    });
    return;
  }
  uint8_t one = 1;
  add_expr(r, "immediate", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &one, 1);
  });
  add_expr(r, "meta", [&](nftnl_expr* e) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_NFTRACE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
  });
}

// Adds to the batch, in chain `chain`, the rule "<trace_match_expression(m)>",
// followed by "limit rate <m.rate> <action>" when action is given; a set of
// protocols is an anonymous set of its own (the next set_id), bound to it.
void add_flow_rule(NftBatch& b, const std::string& table, const char* chain, const TraceMatch& m,
                   const MarkAction* action, uint32_t& set_id) {
  auto protos = match_protocols(m);
  uint32_t id = set_id++;
  if (!protos.empty()) add_protocol_set(b, table, protos, id);
  std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  add_selectors(r.get(), m, !protos.empty(), id);
  if (action) {
    size_t slash = m.rate.find('/');
    add_expr(r.get(), "limit", [&](nftnl_expr* e) {
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, std::stoull(m.rate.substr(0, slash)));
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, rate_unit_seconds(m.rate.substr(slash + 1)));
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, 5);  // nft's default for a packet rate
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, 0);
    });
    add_action(r.get(), *action);
  }
  nlmsghdr* nlh = b.message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  b.put(nlh);
}

// The rules of a marking chain. Tracing: "<match>", then "<match> limit
// rate <rate> meta nftrace set 1". The first does nothing; it is there for
// packets traced already (a local packet's second pass, on lo, keeps the
// mark of its first), which the kernel reports meeting it: the pass is
// then ours also when the second rule's limit, which counts every packet
// of the flow, does not mark it again. Holding: "<match> limit rate <rate>
// queue", and nothing is traced.
void add_mark_rules(NftBatch& b, const std::string& table, const char* chain, const TraceMatch& m,
                    const MarkAction& action, uint32_t& set_id) {
  if (action.hold == TraceTable::Hold::None) add_flow_rule(b, table, chain, m, nullptr, set_id);
  add_flow_rule(b, table, chain, m, &action, set_id);
}

// The marking chains: not mark_out with --iif (no output packet has one).
std::vector<const char*> mark_chains(const TraceMatch& m) {
  if (m.iif.empty()) return {"mark_pre", "mark_out"};
  return {"mark_pre"};
}

// The table, in one batch on nl (which owns it with the owner flag):
//   mark_pre  prerouting  -200000  add_mark_rules: <match> limit rate <rate> <action>
//   mark_out  output      -200000  the same (not with --iif)
//   fate_out  postrouting INT_MAX  empty: a traced packet that reaches it
//   fate_in   input       INT_MAX  left through an interface or was delivered
// Before conntrack (-200) and everything else, so the whole path is traced.
// The fate chains are empty on purpose: the policy verdict of a traced
// packet is reported with its headers and oif. Returns the errno of the
// first refused message.
int add_trace_table(mnl_socket* nl, const std::string& name, const TraceMatch& m, const MarkAction& action,
                    bool owner) {
  NftBatch b(NFPROTO_INET);
  std::unique_ptr<nftnl_table, TableFree> table(nftnl_table_alloc());
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, name.c_str());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FLAGS, owner ? NFT_TABLE_F_OWNER : 0);
  nlmsghdr* nlh = b.message(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
  nftnl_table_nlmsg_build_payload(nlh, table.get());
  b.put(nlh);
  struct Base {
    const char* name;
    uint32_t hook;
    int32_t prio;
  };
  std::vector<Base> chains;
  for (const char* c : mark_chains(m))
    chains.push_back({c, std::string(c) == "mark_pre" ? NF_INET_PRE_ROUTING : NF_INET_LOCAL_OUT, -200000});
  chains.push_back({"fate_out", NF_INET_POST_ROUTING, INT32_MAX});
  chains.push_back({"fate_in", NF_INET_LOCAL_IN, INT32_MAX});
  for (const auto& c : chains) {
    std::unique_ptr<nftnl_chain, ChainFree> chain(nftnl_chain_alloc());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, name.c_str());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, c.name);
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, c.hook);
    nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, c.prio);
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nlh = b.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    nftnl_chain_nlmsg_build_payload(nlh, chain.get());
    b.put(nlh);
  }
  uint32_t set_id = 1;
  for (const char* c : mark_chains(m)) add_mark_rules(b, name, c, m, action, set_id);
  return b.commit(nl);
}

}  // namespace

int replace_mark_rules(mnl_socket* nl, const std::string& name, const TraceMatch& m,
                       const std::optional<MarkAction>& action) {
  NftBatch b(NFPROTO_INET);
  uint32_t set_id = 1;
  for (const char* c : mark_chains(m)) {
    std::unique_ptr<nftnl_rule, RuleFree> all(nftnl_rule_alloc());
    nftnl_rule_set_str(all.get(), NFTNL_RULE_TABLE, name.c_str());
    nftnl_rule_set_str(all.get(), NFTNL_RULE_CHAIN, c);
    nftnl_rule_set_u32(all.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nlmsghdr* nlh = b.message(NFT_MSG_DELRULE, 0);  // no handle: every rule of the chain
    nftnl_rule_nlmsg_build_payload(nlh, all.get());
    b.put(nlh);
    if (action) add_mark_rules(b, name, c, m, *action, set_id);
  }
  return b.commit(nl);
}

// natbpf's queues: the first free number from here (a queue another
// process holds is never taken: binding it fails).
constexpr uint16_t kFirstQueue = 61000;
constexpr int kQueueTries = 64;

Result<TraceTable> TraceTable::create(const TraceMatch& match, bool hold) {
  remove_stale_tables();
  TraceTable t;
  t.name_ = std::string(kTraceTablePrefix) + std::to_string(getpid());
  std::optional<PacketQueue> queue;
  std::vector<MarkAction> actions;
  if (hold) {
    auto bound = PacketQueue::bind(kFirstQueue, kQueueTries);
    if (bound) {
      actions = {{Hold::NftQueue, bound->number()}, {Hold::XtQueue, bound->number()}};
      queue.emplace(std::move(*bound));
    } else {
      t.no_hold_reason_ = bound.error().message;
    }
  }
  actions.push_back({});  // tracing from the start
  // Built with libnftnl on a socket of our own, not with libnftables: 1.0.6
  // fills its cache with every table's chains and sets to evaluate a rule
  // or the owner flag (on a node of 100000 iptables-nft rules, 28 MB and
  // 0.13 s), and the owner flag needs the table's socket to make its chains.
  for (bool owner : {true, false}) {
    int err = 0;
    std::string refused;  // the queue expressions this kernel refused, and why
    for (const auto& action : actions) {
      auto nl = open_nft_socket();
      if (!nl) return Error{"cannot open an nftables socket: " + nl.error().message, "run it as root (CAP_NET_ADMIN)"};
      err = add_trace_table(nl->get(), t.name_, match, action, owner);
      if (err == 0) {
        t.nl_ = std::move(*nl);
        t.owner_ = owner;
        if (action.hold == Hold::None) {
          if (queue) t.no_hold_reason_ = "nftables refused to queue a packet (" + refused + ")";
          return t;
        }
        t.holder_ = std::make_unique<Holder>(t.nl_, t.name_, match, action.hold, std::move(*queue));
        if (auto st = t.holder_->start(); !st) return st.error();
        return t;
      }
      // A batch whose replies could not be read may still have been applied:
      // without the owner flag nothing else would remove that table.
      if (!owner) (void)nft_delete_table(NFPROTO_INET, t.name_);
      if (action.hold != Hold::None)
        refused += std::string(refused.empty() ? "" : ", ") + (action.hold == Hold::NftQueue ? "queue: " : "xt NFQUEUE: ") +
                   errno_name(err);
    }
    // Kernels before 5.12 reject the owner flag: fall back to delete-on-exit.
    if (!owner || (err != EOPNOTSUPP && err != EINVAL))
      return Error{"cannot create the trace table (" + errno_name(err) + ")",
                   "is nf_tables available here (modprobe nf_tables)?"};
  }
  return Error{"cannot create the trace table", "is nf_tables available here (modprobe nf_tables)?"};
}

TraceTable::TraceTable(TraceTable&& o) noexcept
    : nl_(std::move(o.nl_)),
      name_(std::move(o.name_)),
      owner_(o.owner_),
      no_hold_reason_(std::move(o.no_hold_reason_)),
      holder_(std::move(o.holder_)) {
  o.name_.clear();
}

TraceTable::Hold TraceTable::hold() const { return holder_ ? holder_->hold() : Hold::None; }

uint16_t TraceTable::queue_number() const { return holder_ ? holder_->number() : 0; }

bool TraceTable::armed() const { return !holder_ || holder_->armed(); }

uint64_t TraceTable::last_held_ns() const { return holder_ ? holder_->last_held_ns() : 0; }

std::optional<Error> TraceTable::failure() const { return holder_ ? holder_->failure() : std::nullopt; }

uint32_t TraceTable::follow_own_changes(uint32_t g) const { return holder_ ? holder_->follow(g) : g; }

Status TraceTable::disarm(const std::function<bool()>& quiet) { return holder_ ? holder_->disarm(quiet) : Status(Ok{}); }

void TraceTable::set_arming(std::function<Status()> arm, std::function<void()> idle) {
  if (holder_) holder_->set_arming(std::move(arm), std::move(idle));
}

TraceTable::~TraceTable() {
  holder_.reset();  // first: it needs the table
  // With the owner flag closing nl_ removes the table, and the kernel
  // refuses a delete from any other socket (EPERM): only a table without
  // it is deleted here.
  if (!nl_ || name_.empty() || owner_) return;
  (void)nft_delete_table(NFPROTO_INET, name_);
}

}  // namespace natbpf
