#include "explain/drops.h"

#include <algorithm>
#include <set>

#include "explain/drop_rules.h"

namespace natbpf {
namespace {

const char* const kInsertFailedCandidate =
    "conntrack insert failed at confirm (NATed entry never confirmed: clash or SNAT exhaustion)";

// Functions of the netfilter core that free a packet they dropped; on
// kernels without drop reasons the location alone tells the layer.
bool netfilter_function(const std::string& fn) {
  static const std::set<std::string> exact{"nf_hook_slow", "nft_do_chain", "nf_queue", "nf_reinject",
                                           "ipt_do_table", "ip6t_do_table", "nf_hook_slow_list"};
  return exact.count(fn) > 0;
}

// The kernel's drop reasons outside netfilter that an on-call engineer
// meets most, in words, with what to check or type.
struct ReasonText {
  const char* words;
  const char* fix;
};

const std::map<std::string, ReasonText>& reason_texts() {
  static const std::map<std::string, ReasonText> texts{
      {"NO_SOCKET", {"nothing listens on the destination port (or the socket is bound elsewhere)",
                     "check the service: ss -lntup 'sport = :PORT' in the receiving namespace"}},
      {"IP_RPFILTER", {"the reverse-path filter rejected the source address",
                       "sysctl net.ipv4.conf.IFACE.rp_filter=2 (loose), or fix the route back to the source"}},
      {"IP_NOROUTE", {"no route to the destination", "ip route get DEST in the namespace"}},
      {"IP_INADDRERRORS", {"bad destination address (not local, not routable)", ""}},
      {"IP_INNOROUTES", {"no input route for the packet", "ip route get DEST from SRC iif IFACE"}},
      {"IP_CSUM", {"bad IP header checksum", ""}},
      {"IP_INHDR", {"bad IP header", ""}},
      {"TCP_CSUM", {"bad TCP checksum", "check checksum offload on the sending side: ethtool -k IFACE"}},
      {"UDP_CSUM", {"bad UDP checksum", "check checksum offload on the sending side: ethtool -k IFACE"}},
      {"ICMP_CSUM", {"bad ICMP checksum", ""}},
      {"PKT_TOO_SMALL", {"packet shorter than its headers", ""}},
      {"OTHERHOST", {"not addressed to this host (another MAC address)", ""}},
      {"SOCKET_FILTER", {"a socket filter (BPF) on the receiving socket dropped it", ""}},
      {"SOCKET_RCVBUFF", {"the receiving socket's buffer was full", "raise net.core.rmem_max / SO_RCVBUF, or read faster"}},
      {"PROTO_MEM", {"the protocol's memory limit was reached", "check net.ipv4.udp_mem / tcp_mem"}},
      {"NEIGH_FAILED", {"neighbour (ARP/NDP) resolution failed", "ip neigh show; check the next hop answers"}},
      {"QDISC_DROP", {"the queueing discipline dropped it (queue full)", "tc -s qdisc show dev IFACE"}},
      {"XFRM_POLICY", {"an IPsec (xfrm) policy dropped it", "ip xfrm policy"}},
      {"NOT_SPECIFIED", {"freed without a reason (kfree_skb)", ""}},
  };
  return texts;
}

std::string hook_suffix(const DropKey& k) {
  return k.hook ? std::string(" at ") + nf_hook_name(*k.hook) : "";
}

// "tcp 10.0.0.1:4000 -> 10.0.0.2:52000 [S]", with the original destination
// when conntrack saw the packet before DNAT changed it.
std::string example_text(const DropExampleEvent& e) {
  std::string s = e.pkt.family ? e.pkt.str() : "not an IP packet (" + std::to_string(e.pkt.len) + " bytes)";
  if (e.ct && (e.ct->orig.dst != e.pkt.daddr || e.ct->orig.dport != e.pkt.dport) && e.ct->orig.dst.family)
    s += " (conntrack original: " + e.ct->orig.str() + ")";
  return s;
}

}  // namespace

KeyCause classify_drop(const DropKey& key, const std::string& fn, const std::string& reason) {
  KeyCause k;
  k.function = fn.empty() ? "unknown function" : fn;
  bool netfilter = key.reason ? reason == "NETFILTER_DROP" : netfilter_function(fn);
  k.evidence.push_back("kfree_skb" + (reason.empty() ? "" : " " + reason) + " at " + k.function +
                       ", counted in the kernel");
  if (!netfilter) {
    k.layer = kLayerOutside;
    auto it = reason_texts().find(reason);
    if (it != reason_texts().end()) {
      k.cause = reason + ": " + it->second.words;
      k.fix = it->second.fix;
    } else {
      k.cause = reason.empty() ? "dropped outside netfilter (this kernel gives no drop reasons)" : reason;
    }
    return k;
  }
  k.layer = kLayerNetfilter;
  if (key.hook) k.evidence.push_back(std::string("nf_hook_slow exit at ") + nf_hook_name(*key.hook));
  if (fn == "nft_do_chain") {
    k.cause = "nftables rule or chain policy drop";
  } else if (fn == "nf_hook_slow") {
    bool confirm_hook = !key.hook || *key.hook == 1 || *key.hook == 4;  // input, postrouting
    if (key.confirm_failed) {
      k.cause = "conntrack insert failed at confirm (clash with an existing entry)";
      k.evidence.push_back("__nf_conntrack_confirm returned NF_DROP for the packet");
    } else if (key.has_ct && !key.ct_confirmed && key.ct_nat && confirm_hook) {
      // Also what a filter rule dropping the first packet of a connection
      // looks like: only insert_failed rising can make it conntrack's.
      k.cause = kInsertFailedCandidate;
      k.needs_insert_failed = true;
      k.evidence.push_back("unconfirmed conntrack entry on the dropped packet");
    } else {
      k.cause = "iptables-legacy, conntrack or NAT hook returned NF_DROP";
    }
  } else if (fn == "nf_queue" || fn == "nf_reinject") {
    k.cause = "NFQUEUE: no listener, queue full or userspace verdict drop";
  } else {
    k.cause = "netfilter drop in " + k.function;
  }
  return k;
}

DropsRun::DropsRun(World& world, uint32_t only_netns) : world_(world), only_netns_(only_netns) {}

void DropsRun::start() {
  namespaces_ = world_.namespaces();
  if (only_netns_) {
    // natbpf runs inside that namespace then: it is listed as natbpf's own
    // and, when it has one, under its name, which is kept.
    std::vector<NamedNetns> only;
    for (auto& ns : namespaces_)
      if (ns.inode == only_netns_) only = {ns};
    namespaces_ = std::move(only);
  }
  for (const auto& ns : namespaces_) before_.push_back(world_.snapshot(ns));
}

void DropsRun::add(const BpfEvent& ev) {
  if (const auto* c = std::get_if<DropCountsEvent>(&ev)) add_counts(*c);
  if (const auto* e = std::get_if<DropExampleEvent>(&ev)) {
    // Bounded: a port scan makes many keys; their flows then read "*".
    if (examples_.size() > 16384) examples_.clear();
    auto& list = examples_[e->key.without_hook()];
    list.push_back(*e);
    if (list.size() > kExamplesPerCause) list.erase(list.begin());
  }
}

void DropsRun::add_counts(const DropCountsEvent& ev) {
  if (ev.seq != assembling_seq_) assembling_.clear();
  assembling_seq_ = ev.seq;
  for (const auto& [key, n] : ev.rows) assembling_[key] += n;
  if (!ev.last) return;
  latest_ = std::move(assembling_);
  assembling_.clear();
  latest_unkeyed_ = ev.unkeyed;
  latest_examples_lost_ = ev.examples_lost;
  if (!from_) {
    // The first snapshot is where the run starts counting.
    from_ = latest_;
    from_unkeyed_ = latest_unkeyed_;
    from_examples_lost_ = latest_examples_lost_;
  }
}

// "tcp -> 10.0.0.2:52000": the destination of the key's examples, "*" when
// they went to several addresses or none was sent.
std::string DropsRun::flow(const DropKey& key) const {
  if (key.family == 0) return "not IP";
  std::set<std::string> dsts;
  if (auto it = examples_.find(key.without_hook()); it != examples_.end())
    for (const auto& e : it->second) dsts.insert(e.pkt.daddr.str());
  std::string dst = dsts.size() == 1 ? *dsts.begin() : "*";
  if (key.family == 10 && dst != "*") dst = "[" + dst + "]";
  bool ports = key.l4proto == 6 || key.l4proto == 17 || key.l4proto == 132;
  return proto_name(key.l4proto) + " -> " + dst + (ports ? ":" + std::to_string(key.dport) : "");
}

DropsReport DropsRun::report(double seconds, uint64_t lost, std::string plan_summary) {
  DropsReport r;
  r.seconds = seconds;
  r.plan_summary = std::move(plan_summary);
  r.lost = lost - std::min(lost, from_lost_);
  from_lost_ = lost;
  std::map<std::string, DropCause> causes;
  if (latest_ && from_) {
    r.counted = true;
    r.unkeyed = latest_unkeyed_ - std::min(latest_unkeyed_, from_unkeyed_);
    r.examples_lost = latest_examples_lost_ - std::min(latest_examples_lost_, from_examples_lost_);
    r.drops = r.unkeyed;
    for (const auto& [key, total] : *latest_) {
      auto was = from_->find(key);
      uint64_t n = total - std::min(total, was == from_->end() ? 0 : was->second);
      if (n == 0 || (only_netns_ && key.netns != only_netns_)) continue;
      count_key(key, n, causes, r);
    }
    from_ = latest_;
    from_unkeyed_ = latest_unkeyed_;
    from_examples_lost_ = latest_examples_lost_;
  }
  for (auto& [k, c] : causes) {
    // A fix names the port when the cause has only one.
    if (auto at = c.fix.find("PORT"); at != std::string::npos && c.flows.size() == 1) {
      auto colon = c.flows.begin()->first.rfind(':');
      if (colon != std::string::npos) c.fix.replace(at, 4, c.flows.begin()->first.substr(colon + 1));
    }
    r.causes.push_back(std::move(c));
  }
  std::stable_sort(r.causes.begin(), r.causes.end(),
                   [](const DropCause& a, const DropCause& b) { return a.count > b.count; });
  attribute_all(r);
  return r;
}

// n drops of key into its cause: one row per namespace, layer, cause and
// function; the hooks seen are collected into where.
void DropsRun::count_key(const DropKey& key, uint64_t n, std::map<std::string, DropCause>& causes,
                         DropsReport& r) const {
  std::string where = world_.symbol(key.location);
  std::string fn = where.substr(0, where.find('+'));
  KeyCause kc = classify_drop(key, fn, key.reason ? world_.drop_reason(*key.reason) : "");
  DropCause& c = causes[std::to_string(key.netns) + "|" + kc.layer + "|" + kc.cause + "|" + kc.function];
  if (c.count == 0) {
    c.layer = kc.layer;
    c.cause = kc.cause;
    c.where = kc.function;
    c.netns = key.netns;
    c.evidence = kc.evidence;
    c.fix = kc.fix;
    c.needs_insert_failed = kc.needs_insert_failed;
  }
  std::string hook = hook_suffix(key);
  if (!hook.empty() && c.where.find(hook.substr(4)) == std::string::npos)
    c.where += (c.where.find(" at ") == std::string::npos ? hook : ", " + hook.substr(4));
  for (const auto& e : kc.evidence)
    if (std::find(c.evidence.begin(), c.evidence.end(), e) == c.evidence.end()) c.evidence.push_back(e);
  c.count += n;
  if (key.reason) c.reasons.insert(world_.drop_reason(*key.reason));
  if (key.family == 2 || key.family == 10) c.families.insert(key.family == 2 ? "ip" : "ip6");
  c.flows[flow(key)] += n;
  if (key.l4proto == 6 || key.l4proto == 17 || key.l4proto == 132) c.ports.insert(key.dport);
  if (auto it = examples_.find(key.without_hook()); it != examples_.end())
    for (const auto& e : it->second) {
      if (c.examples.size() < kExamplesPerCause) c.examples.push_back(example_text(e));
      if (e.ct) c.ports.insert(e.ct->orig.dport);
    }
  r.drops += n;
  if (kc.layer == kLayerNetfilter) r.netfilter_drops += n;
}

// Names and rule counters of each cause's namespace, then this report's
// conntrack counter deltas; the next report is measured from here.
void DropsRun::attribute_all(DropsReport& r) {
  if (!only_netns_) follow_namespaces();
  std::map<uint32_t, size_t> index;
  std::vector<NetnsSnapshot> after;
  for (size_t i = 0; i < namespaces_.size(); i++) {
    index[namespaces_[i].inode] = i;
    after.push_back(world_.snapshot(namespaces_[i]));
  }
  // Rules are given to nft_do_chain causes first (nftables drops are
  // freed there since 6.7), then to the larger causes.
  std::map<uint32_t, RuleBudget> budgets;
  std::vector<DropCause*> order;
  for (auto& c : r.causes) order.push_back(&c);
  std::stable_partition(order.begin(), order.end(),
                        [](const DropCause* c) { return c->where.rfind("nft_do_chain", 0) == 0; });
  for (auto* c : order) {
    auto it = index.find(c->netns);
    c->netns_name = it == index.end() ? "netns:" + std::to_string(c->netns) : namespaces_[it->second].name;
    if (it != index.end() && c->layer == kLayerNetfilter)
      attribute(*c, before_[it->second], after[it->second], budgets[c->netns]);
  }
  for (size_t i = 0; i < namespaces_.size(); i++)
    if (before_[i].ct && after[i].ct)
      r.conntrack.push_back({namespaces_[i].name, after[i].ct->delta_since(*before_[i].ct)});
  before_ = std::move(after);
}

// The evidence the counters of the cause's namespace give: insert_failed
// for a conntrack candidate, the drop rules whose counters rose, and where
// the marks those rules matched were set.
void DropsRun::attribute(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after,
                         RuleBudget& budget) const {
  if (c.needs_insert_failed) confirm_by_insert_failed(c, before, after);
  name_drop_rules(c, before, after, budget);
}

// A long run (natbpf drops --prometheus) sees pods come and go: namespaces
// created since the last report are measured from zero, since every counter
// in them started after the run did; deleted ones are forgotten.
void DropsRun::follow_namespaces() {
  std::map<uint32_t, size_t> known;
  for (size_t i = 0; i < namespaces_.size(); i++) known[namespaces_[i].inode] = i;
  std::vector<NamedNetns> now = world_.namespaces();
  std::vector<NetnsSnapshot> before;
  for (const auto& ns : now) {
    auto it = known.find(ns.inode);
    if (it != known.end()) {
      before.push_back(std::move(before_[it->second]));
      continue;
    }
    NetnsSnapshot fresh;
    fresh.ct = CtStatsTotals{};
    before.push_back(std::move(fresh));
  }
  namespaces_ = std::move(now);
  before_ = std::move(before);
}

}  // namespace natbpf
