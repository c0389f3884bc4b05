#include "sources/trace_table.h"

#include "util/text.h"

#include <linux/netfilter.h>
#include <signal.h>
#include <unistd.h>

#include <regex>
#include <sstream>

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
    if (!pid || *pid == getpid() || kill(*pid, 0) == 0) continue;
    (void)nft_delete_table(NFPROTO_INET, name);
  }
}

std::string table_body(const std::string& match, const std::string& rate, bool owner, bool has_iif) {
  std::string mark = (match.empty() ? "" : match + " ") + "limit rate " + rate + " meta nftrace set 1";
  std::ostringstream t;
  t << "{\n";
  if (owner) t << "  flags owner;\n";
  // Before conntrack (-200) and everything else, so the whole path is traced.
  t << "  chain mark_pre { type filter hook prerouting priority -200000; policy accept; " << mark << "; }\n";
  if (!has_iif)
    t << "  chain mark_out { type filter hook output priority -200000; policy accept; " << mark << "; }\n";
  // Last in postrouting and input: a traced packet that reaches them left
  // through an interface or was delivered locally. Empty on purpose: the
  // policy verdict of a traced packet is reported with its headers and oif.
  t << "  chain fate_out { type filter hook postrouting priority 2147483647; policy accept; }\n";
  t << "  chain fate_in { type filter hook input priority 2147483647; policy accept; }\n";
  t << "}\n";
  return t.str();
}

}  // namespace

Result<TraceTable> TraceTable::create(const TraceMatch& match) {
  auto nft = NftContext::create();
  if (!nft) return nft.error();
  remove_stale_tables();
  TraceTable t;
  t.name_ = std::string(kTraceTablePrefix) + std::to_string(getpid());
  std::string expr = trace_match_expression(match);
  auto r = nft->run("add table inet " + t.name_ + " " + table_body(expr, match.rate, true, !match.iif.empty()));
  t.owner_ = true;
  if (!r) {
    // Kernels before 5.12 reject the owner flag: fall back to delete-on-exit.
    auto again = nft->run("add table inet " + t.name_ + " " + table_body(expr, match.rate, false, !match.iif.empty()));
    if (!again)
      return Error{"cannot create the trace table: " + r.error().message,
                   "is nf_tables available here (modprobe nf_tables)?"};
    t.owner_ = false;
  }
  // libnftables filled its cache with every table's chains and sets to
  // evaluate the rules (on a node of 100000 iptables-nft rules, 30 MB) and
  // keeps it in the context, which must live (it owns the table). The add
  // moved the generation, so the next command refreshes the cache, with
  // only what that command needs: our own table's (1.0.6's `list tables`
  // would fetch everything).
  (void)nft->run("list chain inet " + t.name_ + " fate_in");
  t.nft_.emplace(std::move(*nft));
  return t;
}

TraceTable::TraceTable(TraceTable&& o) noexcept : nft_(std::move(o.nft_)), name_(std::move(o.name_)), owner_(o.owner_) {
  o.nft_.reset();
  o.name_.clear();
}

TraceTable::~TraceTable() {
  if (!nft_ || name_.empty()) return;
  // With the owner flag closing the socket is enough; deleting explicitly is
  // harmless and covers kernels without it.
  (void)nft_delete_table(NFPROTO_INET, name_);
}

}  // namespace natbpf
