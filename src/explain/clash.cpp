#include "explain/clash.h"

#include <cstring>

#include "util/names.h"

namespace natbpf {
namespace {

// "127.0.0.1:38484 → 127.0.0.1:8080"
std::string flow(const Tuple& t) { return endpoint(t.src, t.sport) + " → " + endpoint(t.dst, t.dport); }

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

uint64_t addr_span(const Addr& lo, const Addr& hi) {
  // Only the low 32 bits matter for any range a NAT rule would use.
  auto low32 = [](const Addr& a) {
    size_t off = a.family == 2 ? 0 : 12;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = (v << 8) | a.bytes[off + i];
    return v;
  };
  uint32_t a = low32(lo), b = low32(hi);
  return b >= a ? uint64_t(b - a) + 1 : 1;
}

std::string counters_str(const CtStatsTotals& d) {
  std::string s = "insert_failed +" + std::to_string(d.insert_failed) + ", drop +" + std::to_string(d.drop);
  if (d.has_clash_resolve) s += ", clash_resolve +" + std::to_string(d.clash_resolve);
  if (d.has_chaintoolong) s += ", chaintoolong +" + std::to_string(d.chaintoolong);
  if (d.early_drop) s += ", early_drop +" + std::to_string(d.early_drop);
  return s;
}

bool loser_snat(const CtEntry& c) { return c.status & (ips::kSrcNat | ips::kSrcNatDone); }

}  // namespace

const char* to_string(ClashOutcome o) { return o == ClashOutcome::Dropped ? "dropped" : "resolved"; }

const char* to_string(ClashCause c) {
  switch (c) {
    case ClashCause::RangeExhausted: return "range_exhausted";
    case ClashCause::NatPortRace: return "nat_port_race";
    case ClashCause::SameTupleRace: return "same_tuple_race";
    case ClashCause::StaleEntry: return "stale_entry";
    case ClashCause::TableFull: return "table_full";
    case ClashCause::ChainTooLong: return "chain_too_long";
    case ClashCause::Unknown: return "unknown";
  }
  return "unknown";
}

uint64_t NatFacts::addresses() const {
  if (!min_addr || !max_addr) return 1;  // masquerade: the one interface address
  return addr_span(*min_addr, *max_addr);
}

std::optional<uint32_t> NatFacts::ports() const {
  if (!min_port) return std::nullopt;
  uint16_t hi = max_port.value_or(*min_port);
  return hi >= *min_port ? uint32_t(hi - *min_port) + 1 : uint32_t(*min_port - hi) + 1;
}

std::optional<uint64_t> NatFacts::capacity() const {
  auto p = ports();
  if (!p) return std::nullopt;
  return addresses() * *p;
}

// Appended piece by piece: GCC 12 at -O2 reports a false -Wrestrict for
// "literal" + std::string (operator+ inserting at the front; GCC bug 105329).
std::string NatFacts::range_str() const {
  std::string s;
  auto add_addr = [&s](const Addr& x) {
    if (x.family == 10) s += '[';
    s += x.str();
    if (x.family == 10) s += ']';
  };
  if (min_addr) {
    add_addr(*min_addr);
    if (max_addr && !(*max_addr == *min_addr)) {
      s += '-';
      add_addr(*max_addr);
    }
  } else if (kind == "masquerade") {
    s = "(interface address)";
  }
  if (min_port) {
    s += ':';
    s += std::to_string(*min_port);
    s += '-';
    s += std::to_string(max_port.value_or(*min_port));
  }
  return s;
}

namespace {

// nf_conntrack_max is one host-wide limit (writable in the host's namespace only).
Fix table_full_fix(uint64_t max) {
  return Fix{"sysctl -w net.netfilter.nf_conntrack_max=" + std::to_string(std::max<uint64_t>(max, 1) * 2),
             "the table was full at " + std::to_string(max) + " entries; twice that lets new connections in (memory: "
             "about 300 bytes per entry)",
             "", true};
}

// nf_conntrack_buckets is host-wide too: twice as many buckets as now (at
// least one per entry), rounded to a power of two as the kernel sizes it.
std::optional<Fix> buckets_fix(const ClashFacts& f) {
  if (!f.ct_buckets || !*f.ct_buckets) return std::nullopt;
  uint64_t want = std::max<uint64_t>(*f.ct_buckets * 2, f.ct_count.value_or(0));
  uint64_t n = 1;
  while (n < want) n <<= 1;
  return Fix{"sysctl -w net.netfilter.nf_conntrack_buckets=" + std::to_string(n),
             "hash chains grew past conntrack's limit with " + std::to_string(*f.ct_buckets) + " buckets" +
                 (f.ct_count ? " for " + std::to_string(*f.ct_count) + " entries" : "") +
                 "; more buckets shorten them",
             "", true};
}

// Counter-only records: the kernel resolved or refused entries natbpf
// could not see one by one.
void diagnose_counter_only(const ClashFacts& f, ClashReport& r) {
  auto& ev = r.evidence;
  if (f.outcome == ClashOutcome::Resolved) {
    r.cause = ClashCause::SameTupleRace;
    r.explanation = plural(f.count, "clash was", "clashes were") +
                    " resolved by the kernel (packets of one flow created conntrack entries on two CPUs at "
                    "once; the later one was merged or inserted reply-only, no packet was lost); without "
                    "fentry/kprobes on nf_ct_resolve_clash the tuples are not visible, only the clash_resolve "
                    "counter";
    ev.push_back("clash_resolve counter");
  } else if (f.ct_count && f.ct_max && *f.ct_count >= *f.ct_max) {
    r.cause = ClashCause::TableFull;
    r.explanation = "the conntrack table is full (" + std::to_string(*f.ct_count) + "/" +
                    std::to_string(*f.ct_max) + " entries): new connections are dropped before they get an "
                    "entry" +
                    (f.packet ? " (this one: " + flow(Tuple{f.packet->saddr, f.packet->daddr, f.packet->sport,
                                                             f.packet->dport, f.packet->l4proto}) + ")"
                              : std::string()) +
                    "; raise net.netfilter.nf_conntrack_max or shorten timeouts";
    ev.push_back("nf_conntrack_count >= nf_conntrack_max");
    r.fix = table_full_fix(*f.ct_max);
  } else if (f.counters && f.counters->chaintoolong) {
    r.cause = ClashCause::ChainTooLong;
    r.explanation = "conntrack refused to insert " + plural(f.counters->chaintoolong, "entry", "entries") +
                    " because a hash chain was too long (chaintoolong); raise net.netfilter.nf_conntrack_buckets";
    ev.push_back("chaintoolong counter");
    r.fix = buckets_fix(f);
  } else {
    r.cause = ClashCause::Unknown;
    r.explanation = plural(f.count, "conntrack insert failed", "conntrack inserts failed") +
                    " without a drop natbpf could attribute";
  }
}

// What each fact about the loser rests on.
void loser_evidence(const ClashFacts& f, ClashReport& r) {
  auto& ev = r.evidence;
  const CtEntry& loser = *f.loser;
  std::string dest = endpoint(loser.orig.dst, loser.orig.dport);
  if (f.winner) {
    ev.push_back("winner: " + f.winner->found_by);
  }
  if (f.nat) {
    std::string src = "NAT range: " + f.nat->source;
    if (f.nat->rule_where) src += "; rule: " + *f.nat->rule_where;
    ev.push_back(src);
  }
  if (f.alloc && f.alloc->observed)
    ev.push_back("allocation: nf_nat_setup_info + nf_conntrack_tuple_taken + nf_conntrack_find_get (" +
                 std::string(exit_name(f.alloc->origin)) + "): " + std::to_string(f.alloc->attempts) + " attempts, " +
                 std::to_string(f.alloc->taken) + " taken");
  else if (f.alloc)
    ev.push_back("allocation: nf_nat_setup_info (" + std::string(exit_name(f.alloc->origin)) +
                 "): the port search's probes are not observed on this kernel");
  if (f.range_used && f.nat && f.nat->capacity())
    ev.push_back("range usage: ctnetlink, " + f.range_counted_by + ": " + std::to_string(*f.range_used) + " of " +
                 std::to_string(*f.nat->capacity()) + " tuples towards " + dest + " in use");
}

// A dropped loser with a winner: which kind of collision it was.
void diagnose_winner(const ClashFacts& f, ClashReport& r) {
  auto& ev = r.evidence;
  const CtEntry& loser = *f.loser;
  std::string dest = endpoint(loser.orig.dst, loser.orig.dport);
  const WinnerFacts& w = *f.winner;
  std::string winner_flow = flow(w.ct.orig);
  if (w.ct.orig == loser.orig) {
    r.cause = ClashCause::SameTupleRace;
    r.explanation = "two packets of " + flow(loser.orig) +
                    " created conntrack entries on two CPUs at once and the kernel could not merge them (" +
                    (loser.orig.proto == 6 ? "TCP has no clash resolution" : "their NAT mappings differ") +
                    "); the later packet was dropped at conntrack confirm and must be retransmitted";
    return;
  }
  if (w.tcp_state && tcp_state_closing(*w.tcp_state)) {
    r.cause = ClashCause::StaleEntry;
    r.explanation = "the tuple is still held by " + winner_flow + ", a connection in " +
                    tcp_state_name(*w.tcp_state) + "; new connection " + flow(loser.orig) +
                    " got the same mapping and was dropped at conntrack confirm; lower "
                    "nf_conntrack_tcp_timeout_" + std::string(*w.tcp_state == 7 ? "time_wait" : "close") +
                    " or widen the SNAT range";
    ev.push_back("winner state " + std::string(tcp_state_name(*w.tcp_state)) + " (ctnetlink)");
    const Tuple& t = w.ct.orig;
    r.fix = Fix{"conntrack -D" + std::string(t.src.family == 10 ? " -f ipv6" : "") + " -p " + (t.proto == 6 ? "tcp" : "udp") +
                    " --orig-src " + t.src.str() + " --orig-dst " + t.dst.str() + " --orig-port-src " +
                    std::to_string(t.sport) + " --orig-port-dst " + std::to_string(t.dport),
                "deletes the " + std::string(tcp_state_name(*w.tcp_state)) +
                    " entry holding the tuple; the retransmitted SYN then gets it",
                ""};
    return;
  }

  bool exhausted = false;
  auto cap = f.nat ? f.nat->capacity() : std::nullopt;
  if (cap && f.range_used && *f.range_used >= *cap) exhausted = true;
  if (f.alloc && f.alloc->attempts > 0 && f.alloc->taken == f.alloc->attempts &&
      (!cap || f.alloc->attempts >= std::min<uint64_t>(*cap, 128)))
    exhausted = true;
  if (loser_snat(loser) && exhausted && f.nat && cap) {
    r.cause = ClashCause::RangeExhausted;
    uint64_t size_n = cap.value_or(0);
    std::string what = f.nat->kind == "masquerade" ? "Masquerade range " : "SNAT range ";
    std::string size = f.nat->addresses() > 1 ? plural(size_n, "address:port pair", "address:port pairs")
                                              : plural(f.nat->ports().value_or(0), "port", "ports");
    std::string used = size_n == 1 ? "already used by " + winner_flow
                                 : "all in use towards " + dest + " (this tuple by " + winner_flow + ")";
    r.explanation = what + f.nat->range_str() + " has " + size + ", " + used + "; every new connection to " + dest +
                    " is dropped at conntrack confirm; widen the range or add random-fully";
    if (f.range_used) r.fix = widen_range_fix(*f.nat, *f.range_used, "");
    return;
  }
  if (loser_snat(loser) || (w.ct.status & (ips::kSrcNat | ips::kDstNat))) {
    r.cause = ClashCause::NatPortRace;
    r.explanation = flow(loser.orig) + " and " + winner_flow + " were given the same NAT mapping " +
                    endpoint(loser.reply.dst, loser.reply.dport) +
                    " at the same time (the port search cannot see entries that are not confirmed yet); the later "
                    "one was dropped at conntrack confirm; add random-fully (nft: fully-random) to the rule";
    if (f.alloc && f.alloc->taken == 0) ev.push_back("the port looked free during allocation (0 taken)");
    return;
  }
  r.cause = ClashCause::Unknown;
  r.explanation = flow(loser.orig) + " collided with " + winner_flow + " at conntrack confirm and was dropped";
  return;
}

// One losing packet: resolved, chain too long, no winner, or a collision.
void diagnose_loser(const ClashFacts& f, ClashReport& r) {
  auto& ev = r.evidence;
  const CtEntry& loser = *f.loser;
  loser_evidence(f, r);
  if (f.outcome == ClashOutcome::Resolved) {
    r.cause = ClashCause::SameTupleRace;
    r.explanation = "two packets of " + flow(loser.orig) +
                    " created conntrack entries on two CPUs at once; the kernel resolved the clash (clash_resolve): "
                    "the later packet was " +
                    std::string(loser.status & ips::kNatClash ? "inserted reply-only (NAT_CLASH, 1 s timeout)"
                                                              : "attached to the existing entry") +
                    ", no packet was lost";
    return;
  }

  if (f.chaintoolong_on_cpu || (!f.winner && f.counters && f.counters->chaintoolong)) {
    r.cause = ClashCause::ChainTooLong;
    r.explanation = "conntrack could not insert " + flow(loser.orig) +
                    ": its hash chain was too long (chaintoolong), so the packet was dropped at confirm; "
                    "raise net.netfilter.nf_conntrack_buckets (the table has too few buckets for its entries)";
    std::string cpu = std::to_string(f.chaintoolong_cpu);
    if (f.chaintoolong_cpu != f.cpu) cpu += " (the record's cpu " + std::to_string(f.cpu) + " had no unclaimed rise)";
    ev.push_back(f.chaintoolong_on_cpu ? "chaintoolong rose on cpu " + cpu + " and no clash was resolved for this packet"
                                       : "chaintoolong counter");
    r.fix = buckets_fix(f);
    return;
  }
  if (!f.winner) {
    if (f.ct_count && f.ct_max && *f.ct_count >= *f.ct_max) {
      r.cause = ClashCause::TableFull;
      r.explanation = "the conntrack table is full (" + std::to_string(*f.ct_count) + "/" +
                      std::to_string(*f.ct_max) + "); raise net.netfilter.nf_conntrack_max";
      r.fix = table_full_fix(*f.ct_max);
    } else if (f.confirm_without_clash) {
      r.cause = ClashCause::Unknown;
      r.explanation = "conntrack confirm dropped the packet of " + flow(loser.orig) +
                      " without a clash (nf_ct_resolve_clash did not run) and no chaintoolong rise is left to "
                      "explain it: the entry may have been dying, or its extensions could not be added";
    } else {
      r.cause = ClashCause::Unknown;
      r.explanation = "the packet of " + flow(loser.orig) +
                      " was dropped at conntrack confirm, but no entry holds its tuples any more (the winner may "
                      "have expired before natbpf looked it up)";
    }
    return;
  }
  diagnose_winner(f, r);
}

}  // namespace

std::optional<Fix> widen_range_fix(const NatFacts& nat, uint64_t used, const std::string& netns) {
  if (!nat.rule_text || !nat.rule_backend || nat.rule_chain.empty() || !nat.rule_number || !nat.min_port ||
      !nat.max_port || *nat.max_port < *nat.min_port)
    return std::nullopt;
  uint64_t addresses = std::max<uint64_t>(nat.addresses(), 1);
  uint64_t ports = *nat.max_port - *nat.min_port + 1;
  // Twice the connections seen (those holding the range and this one), at least twice the range.
  uint64_t want = std::max<uint64_t>(ports * 2, ((used + 1) * 2 + addresses - 1) / addresses);
  uint64_t new_max = *nat.min_port + want - 1;
  if (new_max > 65535) return std::nullopt;
  std::string old_range = std::to_string(*nat.min_port) + (ports > 1 ? "-" + std::to_string(*nat.max_port) : "");
  std::string new_range = std::to_string(*nat.min_port) + "-" + std::to_string(new_max);
  std::string text = *nat.rule_text;
  // The range as the rule writes it: "addr:40000-40001", ":40000-40001", "--to-ports 40000-40001".
  size_t at = std::string::npos;
  for (size_t pos = text.find(old_range); pos != std::string::npos; pos = text.find(old_range, pos + 1)) {
    char before = pos ? text[pos - 1] : ' ';
    size_t end = pos + old_range.size();
    char after = end < text.size() ? text[end] : ' ';
    if ((before == ':' || before == ' ') && (after == ' ' || after == '\0')) {
      if (at != std::string::npos) return std::nullopt;  // twice: which one is the range?
      at = pos;
    }
  }
  if (at == std::string::npos) return std::nullopt;
  text.replace(at, old_range.size(), new_range);
  std::string command;
  if (*nat.rule_backend == "nftables") {
    if (nat.rule_table.empty()) return std::nullopt;
    command = "nft replace rule " + nat.rule_table + " " + nat.rule_chain + " handle " +
              std::to_string(nat.rule_number) + " " + text;
  } else {
    // "iptables -t nat -A CHAIN rest" -> "iptables-nft -t nat -R CHAIN N rest"
    std::string head = " -t nat -A " + nat.rule_chain + " ";
    size_t h = text.find(head);
    if (h == std::string::npos) return std::nullopt;
    std::string tool = text.substr(0, h) + (*nat.rule_backend == "iptables-legacy" ? "-legacy" : "-nft");
    command = tool + " -t nat -R " + nat.rule_chain + " " + std::to_string(nat.rule_number) + " " +
              text.substr(h + head.size());
  }
  std::string what = nat.kind == "masquerade" ? "masquerade" : "SNAT";
  return Fix{command,
             "the " + what + " range " + old_range + " has " + std::to_string(ports) + " port" + (ports == 1 ? "" : "s") +
                 (addresses > 1 ? " per address" : "") + "; " + std::to_string(used + 1) +
                 " connections to one destination wanted a port from it (those holding it and this one): " +
                 new_range + " leaves room for twice that",
             netns};
}

ClashReport diagnose(const ClashFacts& f) {
  ClashReport r;
  r.facts = f;
  if (!f.seen_by.empty()) r.evidence.push_back(f.seen_by);
  if (f.counters) r.evidence.push_back("ctnetlink statistics since the previous report: " + counters_str(*f.counters));
  if (f.loser) diagnose_loser(f, r);
  else diagnose_counter_only(f, r);
  return r;
}

void ClashSummary::add(const ClashReport& r) {
  std::string key = std::string(to_string(r.cause)) + "/" + to_string(r.facts.outcome);
  by_cause_outcome[key] += r.facts.count;
  (r.facts.outcome == ClashOutcome::Dropped ? dropped : resolved) += r.facts.count;
}

}  // namespace natbpf
