#include "journey/journey.h"

#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>

#include "sources/ruleset.h"
#include "sources/trace_table.h"
#include "util/names.h"

namespace natbpf {

std::string Step::verdict_str() const {
  std::string v;
  append_verdict(v);
  return v;
}

void Step::append_verdict(std::string& out) const {
  if (type == NftTraceType::Policy) {
    out += "policy ";
    out += verdict ? to_string(*verdict) : "?";
  } else if (!verdict) {
    out += "continue";
  } else {
    out += to_string(*verdict);
    if (target) {
      out += ' ';
      out += *target;
    }
  }
}

bool same_flow(const Packet& a, const Packet& b) {
  return a.family == b.family && a.l4proto == b.l4proto && a.saddr == b.saddr && a.daddr == b.daddr &&
         a.sport == b.sport && a.dport == b.dport;
}

void assign_hooks(Journey& j, const HookOf& hook_of) {
  std::string current;
  for (auto& s : j.steps) {
    if (auto h = hook_of(family_name(s.family), s.table, s.chain)) current = *h;
    s.hook = current;
  }
}

std::vector<Packet> Journey::packets() const {
  std::vector<Packet> out;
  if (packet.family) out.push_back(packet);
  for (const auto& s : steps)
    if (s.packet) out.push_back(*s.packet);
  if (final_packet) out.push_back(*final_packet);
  return out;
}

bool Journey::finished() const {
  if (fate_seen) return true;
  return !steps.empty() && steps.back().verdict == NftVerdict::Drop;
}

namespace {

std::string system_ifname(uint32_t index) {
  char buf[IF_NAMESIZE] = {};
  if (index && if_indextoname(index, buf)) return buf;
  return index ? "if" + std::to_string(index) : "";
}

bool tuple_is_packet(const Tuple& t, const Packet& p) {
  return t.proto == p.l4proto && t.src == p.saddr && t.dst == p.daddr && t.sport == p.sport && t.dport == p.dport;
}

// The packet and conntrack entry a BPF event speaks about.
struct Subject {
  std::optional<Packet> pkt;
  std::optional<CtEntry> ct;
  uint64_t ts = 0;
  uint64_t skb = 0;
};

Subject subject(const BpfEvent& ev) {
  return std::visit(
      [](const auto& e) -> Subject {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, SkbDropEvent>) return {e.pkt, e.ct, e.ts_ns, e.skb};
        else if constexpr (std::is_same_v<T, CtConfirmEvent>) return {e.pkt, e.loser, e.ts_ns, e.skb};
        else if constexpr (std::is_same_v<T, CtClashEvent>) return {std::nullopt, e.loser, e.ts_ns, e.skb};
        else if constexpr (std::is_same_v<T, NatSetupEvent>) return {std::nullopt, e.ct, e.ts_ns, 0};
        else if constexpr (std::is_same_v<T, NftTraceIdEvent>) return {std::nullopt, std::nullopt, e.ts_ns, e.skb};
        else if constexpr (std::is_same_v<T, DropExampleEvent>) return {e.pkt, e.ct, e.ts_ns, e.skb};
        else if constexpr (std::is_same_v<T, DropCountsEvent>) return {std::nullopt, std::nullopt, e.ts_ns, 0};
        else if constexpr (std::is_same_v<T, CtInvalidEvent>) return {e.pkt, std::nullopt, e.ts_ns, e.skb};
        else return {std::nullopt, std::nullopt, e.ts_ns, e.skb};
      },
      ev);
}

// Whether the record is likely of another packet than the story's, whatever
// the times say (a reader that stalled receives a flow's retransmissions
// together, each after all of their records): a packet is freed once, so a
// story that holds a kfree_skb record takes no second one; and IPv4 numbers
// every packet it sends (a TCP retransmission too), which NAT leaves alone,
// so another IP ID is another packet (an ID of 0, as a source that did not
// read it has, says nothing). A preference, not a proof: the segments of a
// traced GSO packet, or IP fragments, are freed one by one with IDs of their
// own; a record no story takes otherwise joins as before (attach, !strict).
bool other_packet(const Journey& j, const BpfEvent& ev, const Subject& s) {
  if (std::holds_alternative<SkbDropEvent>(ev))
    for (const auto& b : j.bpf)
      if (std::holds_alternative<SkbDropEvent>(b)) return true;
  const Packet& p = j.packet;
  return s.pkt && p.family == AF_INET && s.pkt->family == AF_INET && p.ip_id && s.pkt->ip_id &&
         p.ip_id != s.pkt->ip_id;
}

bool matches(const Journey& j, const BpfEvent& ev, const Subject& s, uint64_t window_ns, bool strict) {
  if (s.ts + 50'000'000ULL < j.sent_after_ns || s.ts > j.last_ns + window_ns) return false;
  if (strict && other_packet(j, ev, s)) return false;
  // Same skb as an event already joined (nf_hook_slow's exit after kfree_skb).
  if (s.skb) {
    for (const auto& b : j.bpf)
      if (subject(b).skb == s.skb) return true;
  }
  for (const auto& p : j.packets()) {
    if (s.pkt && same_flow(p, *s.pkt)) return true;
    if (s.ct && tuple_is_packet(s.ct->orig, p)) return true;
  }
  return false;
}

}  // namespace

JourneyBuilder::JourneyBuilder(std::string own_table, uint64_t idle_ns)
    : own_table_(std::move(own_table)), idle_ns_(idle_ns) {}

std::string JourneyBuilder::ifname_of(uint32_t index) const { return ifname ? ifname(index) : system_ifname(index); }

// iptables TRACE lines carry no trace id; the packet our nftables marking
// chain already reported is the same skb: same source, IP id and sequence,
// received close to it, or since the last drain as it was (a reader
// stalled between two lines of one packet received them far apart). The
// lines come through another socket, often after the story's last message
// (our fate chain's, at the last hook), so a story that went on still
// takes them; one that a rule dropped takes no more. Packets with the same
// headers (a local packet's two passes, or UDP with IP id 0): the line of
// our raw rule starts the oldest story that has no line yet; any other
// goes on in the newest that has, else starts the oldest.
Journey* JourneyBuilder::story_for_line(const NftTraceEvent& ev) {
  const Packet& p = *ev.packet;
  Journey *with_lines = nullptr, *without = nullptr;
  for (auto it = open_.rbegin(); it != open_.rend(); ++it) {
    const Packet& q = it->packet;
    bool close = ev.recv_ns <= it->last_ns + idle_ns_ || (drained_ns_ && it->last_ns > drained_ns_);
    bool dropped = !it->steps.empty() && it->steps.back().verdict == NftVerdict::Drop;
    if (!q.family || q.saddr != p.saddr || q.sport != p.sport || q.l4proto != p.l4proto || q.ip_id != p.ip_id ||
        q.tcp_seq != p.tcp_seq || !close || dropped)
      continue;
    if (!it->has_lines) without = &*it;  // the oldest, in the end
    else if (!with_lines) with_lines = &*it;
  }
  if (ev.starts_packet || !with_lines) return without;
  return with_lines;
}

Journey& JourneyBuilder::journey_for(const NftTraceEvent& ev) {
  if (ids_are_packets_) {
    if (auto it = by_id_.find(ev.id); it != by_id_.end()) return open_[it->second];
  } else if (ev.origin == Origin::Nflog && ev.packet) {
    if (Journey* j = story_for_line(ev)) return *j;
  }
  auto it = by_id_.find(ev.id);
  if (it != by_id_.end()) {
    Journey& j = open_[it->second];
    // Trace ids repeat (same skb address, hash and iif for a retransmission).
    // Our marking chains run first for every traced packet, so an event there
    // starts a new packet; elsewhere only a finished journey does.
    bool starts_packet =
        ev.starts_packet || (ev.table == own_table_ && !TraceTable::is_fate_chain(ev.chain) && ev.packet);
    if (starts_packet ? j.steps.empty() && !j.fate_seen : !j.finished()) return j;
    if (!starts_packet && ev.table == own_table_) return j;  // late fate event of this packet
  }
  Journey j;
  j.trace_id = ev.id;
  j.first_ns = j.last_ns = ev.recv_ns;
  j.sent_after_ns = drained_ns_ && drained_ns_ <= ev.recv_ns ? drained_ns_ : ev.recv_ns;
  open_.push_back(std::move(j));
  by_id_[ev.id] = open_.size() - 1;
  return open_.back();
}

void JourneyBuilder::add(NftTraceEvent&& ev) {
  Journey& j = journey_for(ev);
  j.last_ns = std::max(j.last_ns, ev.recv_ns);
  if (ev.origin == Origin::Nflog) j.has_lines = true;
  if (!j.packet.family && ev.packet) {
    j.packet = *ev.packet;
    if (ev.iif) j.iif_name = ifname_of(*ev.iif);
  }
  if (ev.ct_id) j.ct_id = ev.ct_id;
  if (ev.ct_state) j.ct_state = ev.ct_state;
  if (ev.ct_status) j.ct_status = ev.ct_status;
  if (ev.starts_packet) {  // our raw rule: it only marks the packet
    j.marked = true;
    return;
  }
  if (ev.table == own_table_) {
    // Our marking rule (a rule event, not a chain policy that a packet some
    // other tracer marked earlier also meets) makes the packet ours.
    if (!TraceTable::is_fate_chain(ev.chain) && ev.rule_handle) j.marked = true;
    if (TraceTable::is_fate_chain(ev.chain)) {
      j.fate_seen = true;
      j.fate = ev.chain == "fate_in" ? Fate::Local : (j.iif_name.empty() ? Fate::Sent : Fate::Forwarded);
      if (ev.oif) j.oif_name = ifname_of(*ev.oif);
      if (ev.packet) j.final_packet = ev.packet;
    }
    return;  // our own marking chains are not part of the story
  }
  // The kernel reports running off the end of a chain as a Return with verdict
  // continue and no rule: the caller's next rule follows, nothing to show.
  if (ev.type == NftTraceType::Return && !ev.rule_handle) return;
  // The event ends here: its texts move into the step.
  Step s;
  s.family = ev.family;
  s.table = std::move(ev.table);
  s.chain = std::move(ev.chain);
  s.handle = ev.rule_handle;
  s.type = ev.type;
  s.verdict = ev.type == NftTraceType::Policy && ev.policy ? std::optional(nft_verdict_from_code(*ev.policy))
                                                          : ev.verdict;
  s.target = std::move(ev.jump_target);
  s.packet = ev.packet;
  s.iif = ev.iif;
  s.oif = ev.oif;
  s.origin = ev.origin;
  s.rule = std::move(ev.rule_text);
  s.log_ref = std::move(ev.log_ref);
  if (!s.log_ref.empty()) j.from_log = true;
  if (ev.origin == Origin::Nflog) s.syntax = "iptables";
  if (ev.oif && j.oif_name.empty()) j.oif_name = ifname_of(*ev.oif);
  // A story has a step per chain and per matching rule, often a dozen or
  // more: grown once or twice, not from one step up (a saved log has millions).
  if (j.steps.empty()) j.steps.reserve(16);
  j.steps.push_back(std::move(s));
}

// Whether the record is of the very pass __nft_trace_packet reported for
// its skb (written just before it, kernel time).
bool JourneyBuilder::of_known_pass(uint64_t skb, uint64_t ts) const {
  auto it = id_by_skb_.find(skb);
  return skb && it != id_by_skb_.end() && ts >= it->second.ts_ns && ts - it->second.ts_ns < 50'000'000ULL;
}

bool JourneyBuilder::attach(const BpfEvent& ev, bool strict) {
  Subject s = subject(ev);
  // Exact: the trace id read in BPF for this skb names the journey.
  if (auto it = id_by_skb_.find(s.skb); s.skb && it != id_by_skb_.end()) {
    const SkbTraceId& pass = it->second;
    bool this_pass = of_known_pass(s.skb, s.ts);
    for (auto j = open_.rbegin(); j != open_.rend(); ++j) {
      if (j->trace_id != pass.trace_id) continue;
      // This pass's story was received after the kernel traced it, however
      // late a slow reader got to it; an older story with the same id was
      // received before.
      bool fits = this_pass ? j->first_ns + 50'000'000ULL >= pass.ts_ns
                            : s.ts + 50'000'000ULL >= j->sent_after_ns && s.ts <= j->last_ns + idle_ns_;
      if (!fits || (strict && other_packet(*j, ev, s))) continue;
      j->bpf.push_back(ev);
      j->last_ns = std::max(j->last_ns, s.ts);
      j->joined_by_trace_id = true;
      return true;
    }
    // The trace id of this very packet pass is known, but its story has not
    // been read yet (trace messages and ring-buffer records come through
    // different sockets): wait for it instead of guessing by headers, which
    // would pick an earlier pass of the same packet (loopback output/input).
    if (this_pass) return false;
  }
  for (auto it = open_.rbegin(); it != open_.rend(); ++it) {
    if (matches(*it, ev, s, idle_ns_, strict)) {
      it->bpf.push_back(ev);
      it->last_ns = std::max(it->last_ns, s.ts);
      if (s.skb) it->joined_by_headers = true;
      return true;
    }
  }
  return false;
}

void JourneyBuilder::add(BpfEvent&& ev) {
  if (auto* t = std::get_if<NftTraceIdEvent>(&ev)) {
    // skb addresses are reused: the newest pass wins; keep the map small.
    if (id_by_skb_.size() > 65536) id_by_skb_.clear();
    if (ids_seen_.size() > 65536) ids_seen_.clear();
    id_by_skb_[t->skb] = SkbTraceId{t->trace_id, t->ts_ns};
    ids_seen_.insert(t->trace_id);
    return;
  }
  if (!attach(ev)) orphans_.push_back(std::move(ev));
}

void JourneyBuilder::flush(uint64_t now_ns, bool all, const std::function<void(Journey&&)>& sink) {
  // The callers drain every source before a flush (a replay flushes where
  // the live run did): what is received from now on was sent after now_ns.
  drained_ns_ = std::max(drained_ns_, all ? 0 : now_ns);
  // BPF events often arrive before the trace events of the same packet.
  std::vector<BpfEvent> still;
  for (auto& ev : orphans_)
    if (!attach(ev)) still.push_back(std::move(ev));
  orphans_.clear();
  // Events nothing joined become BPF-only journeys once they are old enough.
  for (auto& ev : still) {
    Subject s = subject(ev);
    // A record whose pass the trace-id hook reported waits longer for its
    // story: the trace messages come through another socket, and a loaded
    // (or emulated) machine reads them late.
    uint64_t wait = of_known_pass(s.skb, s.ts) ? kKnownPassWaitNs : idle_ns_;
    if (!all && s.ts + wait > now_ns) {
      orphans_.push_back(std::move(ev));
      continue;
    }
    // No story of its own came: the story of another part of the same
    // packet (a GSO segment, a fragment) may still take it.
    if (attach(ev, /*strict=*/false)) continue;
    if (std::holds_alternative<HookDropEvent>(ev)) continue;  // no packet to tell about
    Journey j;
    j.first_ns = j.last_ns = j.sent_after_ns = s.ts;
    if (s.pkt) j.packet = *s.pkt;
    else if (s.ct) {
      j.packet.family = static_cast<uint8_t>(s.ct->orig.src.family);
      j.packet.l4proto = s.ct->orig.proto;
      j.packet.saddr = s.ct->orig.src;
      j.packet.daddr = s.ct->orig.dst;
      j.packet.sport = s.ct->orig.sport;
      j.packet.dport = s.ct->orig.dport;
    }
    j.bpf.push_back(std::move(ev));
    open_.push_back(std::move(j));
  }
  std::deque<Journey> keep;
  auto older = [](const Journey& a, const Journey& b) { return a.first_ns < b.first_ns; };
  // Usually in order already: stable_sort would still move every journey twice.
  if (!std::is_sorted(open_.begin(), open_.end(), older)) std::stable_sort(open_.begin(), open_.end(), older);
  for (auto& j : open_) {
    if (!all && j.last_ns + idle_ns_ > now_ns) keep.push_back(std::move(j));
    else if (j.trace_id && !j.marked && !ids_are_packets_) foreign_++;  // traced by a user rule or another run: not ours
    else {
      bool id_seen = j.trace_id && ids_seen_.count(j.trace_id);
      j.joined_by_trace_id = (j.joined_by_trace_id || id_seen) && !j.joined_by_headers;
      sink(std::move(j));
    }
  }
  open_ = std::move(keep);
  by_id_.clear();
  for (size_t i = 0; i < open_.size(); i++) by_id_[open_[i].trace_id] = i;
}

}  // namespace natbpf
