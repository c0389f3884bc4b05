#include "explain/drops.h"

#include <algorithm>

#include "explain/drop_rules.h"

namespace natbpf {
namespace {

const char* const kInsertFailedCandidate =
    "conntrack insert failed at confirm (NATed entry never confirmed: clash or SNAT exhaustion)";

std::string flow(const Packet& p) {
  std::string proto = proto_name(p.l4proto);
  std::string dst = p.daddr.family == 10 ? "[" + p.daddr.str() + "]" : p.daddr.str();
  bool ports = p.l4proto == 6 || p.l4proto == 17;
  return proto + " -> " + dst + (ports ? ":" + std::to_string(p.dport) : "");
}

}  // namespace

DropAggregator::DropAggregator(std::function<std::string(uint64_t)> symbol, std::function<std::string(uint32_t)> reason)
    : symbol_(std::move(symbol)), reason_(std::move(reason)) {}

void DropAggregator::add(const BpfEvent& ev) {
  if (auto* h = std::get_if<HookDropEvent>(&ev)) hook_by_skb_[h->skb] = h->hook;
  if (auto* c = std::get_if<CtConfirmEvent>(&ev); c && !c->accepted) confirm_failed_skb_[c->skb] = true;
  if (auto* d = std::get_if<SkbDropEvent>(&ev)) pending_.push_back(*d);
  // nf_hook_slow's exit and the confirm exit follow kfree_skb closely; keep a
  // short backlog so they can be joined before a drop is accounted.
  if (pending_.size() > 256) {
    account(pending_.front());
    pending_.pop_front();
  }
}

void DropAggregator::finish() {
  for (const auto& d : pending_) account(d);
  pending_.clear();
}

void DropAggregator::account(const SkbDropEvent& d) {
  std::string where = symbol_ ? symbol_(d.location) : "";
  std::string fn = where.substr(0, where.find('+'));
  std::string reason = d.reason ? reason_(*d.reason) : "";
  // Joined once, then forgotten: skb addresses are reused.
  std::optional<uint8_t> hook;
  if (auto it = hook_by_skb_.find(d.skb); it != hook_by_skb_.end()) {
    hook = it->second;
    hook_by_skb_.erase(it);
  }
  bool confirm_failed = confirm_failed_skb_.erase(d.skb) > 0;
  bool unconfirmed = d.ct && !(d.ct->status & ips::kConfirmed);

  std::string cause;
  std::vector<std::string> evidence{"kfree_skb" + (reason.empty() ? "" : " " + reason) + " at " + fn};
  if (fn == "nft_do_chain") {
    cause = "nftables rule or chain policy drop";
  } else if (fn == "nf_hook_slow") {
    if (confirm_failed) {
      cause = "conntrack insert failed at confirm (clash with an existing entry)";
      evidence.push_back("__nf_conntrack_confirm returned NF_DROP");
    } else if (unconfirmed && d.ct && (d.ct->status & (ips::kSrcNatDone | ips::kDstNatDone)) &&
               (!hook || *hook == 1 || *hook == 4)) {
      // Also what a filter rule dropping the first packet of a connection
      // looks like: only insert_failed rising can make it conntrack's.
      cause = kInsertFailedCandidate;
      evidence.push_back("unconfirmed conntrack entry on the dropped packet");
    } else {
      cause = "iptables-legacy, conntrack or NAT hook returned NF_DROP";
    }
  } else if (fn == "nf_queue" || fn == "nf_reinject") {
    cause = "NFQUEUE: no listener, queue full or userspace verdict drop";
  } else {
    cause = "netfilter drop in " + (fn.empty() ? std::string("unknown function") : fn);
  }
  uint32_t netns = d.pkt.netns ? d.pkt.netns : (d.ct ? d.ct->netns : 0);
  // One bucket per cause and function: the hook is known only for drops
  // whose nf_hook_slow exit was seen, so it is collected, not keyed on.
  std::string key = std::to_string(netns) + "|" + cause + "|" + fn;
  DropCause& c = causes_[key];
  if (c.count == 0) {
    c.cause = cause;
    c.needs_insert_failed = cause == kInsertFailedCandidate;
    c.where = fn;
    c.netns = netns;
    c.evidence = evidence;
  }
  if (hook && c.where.find(nf_hook_name(*hook)) == std::string::npos) {
    c.where += (c.where.find(" at ") == std::string::npos ? " at " : ", ") + std::string(nf_hook_name(*hook));
    if (std::find(c.evidence.begin(), c.evidence.end(), "nf_hook_slow exit") == c.evidence.end())
      c.evidence.push_back("nf_hook_slow exit");
  }
  c.count++;
  c.flows[flow(d.pkt)]++;
  total_++;
}

std::vector<DropCause> DropAggregator::ranked() const {
  std::vector<DropCause> out;
  for (const auto& [k, c] : causes_) out.push_back(c);
  std::stable_sort(out.begin(), out.end(), [](const DropCause& a, const DropCause& b) { return a.count > b.count; });
  return out;
}

DropsRun::DropsRun(World& world, uint32_t only_netns)
    : world_(world),
      only_netns_(only_netns),
      agg_([this](uint64_t a) { return world_.symbol(a); }, [this](uint32_t r) { return world_.drop_reason(r); }) {}

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

DropsReport DropsRun::finish(double seconds, uint64_t lost, std::string plan_summary) {
  agg_.finish();
  DropsReport report{seconds, agg_.total(), lost, std::move(plan_summary), agg_.ranked(), {}};
  std::map<uint32_t, size_t> index;
  std::vector<NetnsSnapshot> after;
  for (size_t i = 0; i < namespaces_.size(); i++) {
    index[namespaces_[i].inode] = i;
    after.push_back(world_.snapshot(namespaces_[i]));
  }
  std::erase_if(report.causes, [this](const DropCause& c) { return only_netns_ && c.netns != only_netns_; });
  for (auto& c : report.causes) {
    auto it = index.find(c.netns);
    c.netns_name = it == index.end() ? "netns:" + std::to_string(c.netns) : namespaces_[it->second].name;
    if (it != index.end()) attribute(c, before_[it->second], after[it->second]);
  }
  for (size_t i = 0; i < namespaces_.size(); i++)
    if (before_[i].ct && after[i].ct)
      report.conntrack.push_back({namespaces_[i].name, after[i].ct->delta_since(*before_[i].ct)});
  return report;
}

// The evidence the counters of the cause's namespace give: insert_failed
// for a conntrack candidate, the drop rules whose counters rose, and where
// the marks those rules matched were set.
void DropsRun::attribute(DropCause& c, const NetnsSnapshot& before, const NetnsSnapshot& after) const {
  if (c.needs_insert_failed) confirm_by_insert_failed(c, before, after);
  name_drop_rules(c, before, after);
}

}  // namespace natbpf
