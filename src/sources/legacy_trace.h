// iptables-legacy tracing, automated: the TRACE target (installed with a
// natbpf_<pid> comment, removed on exit, stale ones removed at start) makes
// ip_tables log "TRACE: table:chain:type:N" for every rule a packet meets;
// with net.netfilter.nf_log.<pf> set to nfnetlink_log (restored on exit) the
// lines arrive over NFLOG group 0 with the packet, and the rule numbers are
// resolved against iptables-legacy-save. Events come out as NftTraceEvent
// with origin Nflog and no trace id (starts_packet marks a new packet).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sources/nftrace.h"
#include "sources/ruleset.h"
#include "sources/trace_table.h"
#include "util/result.h"

struct mnl_socket;

namespace natbpf {

struct TracePrefix {
  std::string table, chain, type;  // type: "rule", "return", "policy"
  uint64_t number = 0;
};
// "TRACE: raw:PREROUTING:rule:1 " -> {raw, PREROUTING, rule, 1}
std::optional<TracePrefix> parse_trace_prefix(const std::string& prefix);

// Chains of an iptables-legacy-save dump as Ruleset chains: rule "handles"
// are the rule numbers TRACE reports, text and iptables are the -A lines,
// builtin chains get their hook and policy.
std::vector<ChainInfo> parse_legacy_save(const std::string& save, const std::string& family);

// What a rule's target does to the packet, for verdicts TRACE does not report.
std::optional<NftVerdict> legacy_target_verdict(const std::string& rule, std::string* jump_target);

// The iptables matches for the user's flow, e.g. {"-d 10.1.2.3 -p tcp --dport 1222"}:
// ports need a protocol, so a port without --proto gives a tcp and a udp rule.
std::vector<std::vector<std::string>> legacy_match_args(const TraceMatch& m);

class LegacyTrace {
 public:
  // Installs TRACE rules for the families whose legacy tables have rules in
  // this namespace; returns nullopt when iptables-legacy is not in use.
  static Result<std::optional<LegacyTrace>> start(const TraceMatch& match);
  LegacyTrace(LegacyTrace&&) noexcept;
  LegacyTrace& operator=(LegacyTrace&&) = delete;
  ~LegacyTrace();

  int fd() const;
  // rules: the current legacy chains, to infer verdicts and mark starts.
  Status drain(const std::function<const ChainInfo*(uint8_t family, const std::string& table, const std::string& chain)>& rules,
               const std::function<void(NftTraceEvent&&)>& sink);
  uint64_t lost() const { return lost_; }
  std::vector<std::string> families() const;  // "ip", "ip6"

 private:
  LegacyTrace() = default;
  struct Family {
    std::string family;  // "ip" / "ip6"
    std::string iptables;  // iptables-legacy / ip6tables-legacy
    std::string sysctl;    // /proc/sys/net/netfilter/nf_log/2 or /10
    std::string old_logger;
  };
  void remove_rules();
  std::vector<Family> families_;
  std::string comment_;
  std::shared_ptr<mnl_socket> nl_;
  uint64_t lost_ = 0;
  std::vector<uint8_t> buf_;
};

}  // namespace natbpf
