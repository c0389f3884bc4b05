// iptables-legacy tracing, automated: ip_tables logs "TRACE:
// table:chain:type:N" for every rule a traced packet (nf_trace, which our
// nftables marking rule sets) meets; with net.netfilter.nf_log.<pf> set to
// nfnetlink_log (restored on exit) the lines arrive over NFLOG group 0 with
// the packet, and the rule numbers are resolved against iptables-legacy-save.
// A rule of ours first in raw PREROUTING and OUTPUT, matching the flow, with
// a natbpf_<pid> comment and no target (removed on exit, stale ones removed
// at start), gives each pass of a traced packet its first line. Events come
// out as NftTraceEvent with origin Nflog and no trace id (starts_packet
// marks a new packet).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sources/events.h"
#include "sources/kept_setting.h"
#include "sources/nftrace_message.h"
#include "sources/ruleset.h"
#include "sources/source.h"
#include "sources/trace_table.h"
#include "util/result.h"

struct mnl_socket;

namespace natbpf {

struct TracePrefix {
  std::string table, chain, type;  // type: "rule", "return", "policy"
  uint64_t number = 0;
};
// Why the iptables-legacy TRACE source does not run where legacy tables are
// empty: the normal case, not a degradation worth a warning.
inline constexpr const char* kLegacyNotInUse = "iptables-legacy has no rules in this namespace";

// The --comment of an iptables-save rule line ("" when it has none).
std::string rule_comment(const std::string& save_line);

// "TRACE: raw:PREROUTING:rule:1 " -> {raw, PREROUTING, rule, 1}; nullopt
// also for a rule number beyond 32 bits and a prefix longer than the
// kernel's (NF_LOG_PREFIXLEN).
std::optional<TracePrefix> parse_trace_prefix(const std::string& prefix);

// Chains of an iptables-legacy-save dump as Ruleset chains (see
// Ruleset::add_legacy_save).
std::vector<ChainInfo> parse_legacy_save(const std::string& save, const std::string& family);

// What a rule's target does to the packet, for verdicts TRACE does not report.
std::optional<NftVerdict> legacy_target_verdict(const std::string& rule, std::string* jump_target);

// The iptables matches for the user's flow, e.g. {"-d 10.1.2.3 -p tcp --dport 1222"}:
// ports need a protocol, so a port without --proto gives a tcp and a udp rule.
std::vector<std::vector<std::string>> legacy_match_args(const TraceMatch& m);

// The current legacy chains by (family, table, chain), to infer verdicts.
using LegacyRules = std::function<const ChainInfo*(uint8_t family, const std::string& table, const std::string& chain)>;

// "invalid tcp flag combination" of conntrack's INVALID log prefix
// "nf_ct_proto_6: invalid tcp flag combination " (protonum in *proto).
std::optional<std::string> parse_invalid_prefix(const std::string& prefix, uint8_t* proto);

// The id legacy_trace_event gives a packet's TRACE lines, which carry none:
// a hash of what stays while one skb crosses the tables (source, IP id, TCP
// sequence; DNAT changes only the destination).
uint32_t legacy_trace_id(const Packet& p);

// One TRACE line as a trace event: the rule it names (its verdict inferred
// from the rule's target), a chain's policy or a user chain's return.
// nullopt for a line of a chain holding only natbpf's own raw rules
// (marked by comment; "" for a saved log, which has none).
std::optional<NftTraceEvent> legacy_trace_event(const TracePrefix& prefix, uint8_t family, const Packet& pkt,
                                                const std::string& comment, const LegacyRules& rules);

// The messages of one NFLOG datagram: TRACE lines as trace events (comment
// marks natbpf's own raw rules), conntrack's INVALID lines as
// CtInvalidEvent to `invalid` (when given). Used by LegacyTrace and to
// replay a recording.
void parse_nflog_datagram(std::span<const uint8_t> datagram, uint64_t recv_ns, const std::string& comment,
                          const LegacyRules& rules, const std::function<void(NftTraceEvent&&)>& sink,
                          const std::function<void(BpfEvent&&)>& invalid = nullptr);

class LegacyTrace {
 public:
  // The families ("ip", "ip6") whose legacy tables have rules in this
  // namespace; removes the rules of natbpf processes that died.
  static std::vector<std::string> families_in_use(const TraceMatch& match);
  // Installs our starting rules for those families and binds NFLOG group 0; with
  // log_invalid, also has conntrack log INVALID packets of the match's
  // protocol there (net.netfilter.nf_conntrack_log_invalid, nf_log of both
  // families), restored on exit.
  static Result<LegacyTrace> start(const TraceMatch& match, const std::vector<std::string>& families,
                                   bool log_invalid = false);
  LegacyTrace(LegacyTrace&&) noexcept;
  LegacyTrace& operator=(LegacyTrace&&) = delete;
  ~LegacyTrace();

  int fd() const;
  // Each datagram waiting, from the kernel, with its receive time.
  Status drain(const HeldDatagrams::Parse& datagram);
  uint64_t lost() const { return lost_; }
  uint64_t foreign() const { return foreign_; }  // datagrams not from the kernel, dropped
  std::vector<std::string> families() const;  // "ip", "ip6"
  const std::string& comment() const { return comment_; }

 private:
  LegacyTrace() = default;
  struct Family {
    std::string family;    // "ip" / "ip6"
    std::string iptables;  // iptables-legacy / ip6tables-legacy
    bool traced = false;   // our rules installed (else nf_log routed for INVALID lines only)
    KeptSetting nf_log;    // /proc/sys/net/netfilter/nf_log/2 or /10
  };
  void remove_rules();
  std::vector<Family> families_;
  std::optional<KeptSetting> log_invalid_;
  std::string comment_;
  std::shared_ptr<mnl_socket> nl_;
  uint64_t lost_ = 0;
  uint64_t foreign_ = 0;
  std::vector<uint8_t> buf_;
};

// NFLOG group 0 as a source: iptables-legacy TRACE lines where legacy
// tables have rules, and conntrack's INVALID lines when `invalid` is given
// (then it runs everywhere; without it, not where legacy tables are empty).
class LegacyTraceSource : public Source {
 public:
  using Rules = LegacyRules;
  LegacyTraceSource(TraceMatch match, Rules rules, std::function<void(NftTraceEvent&&)> sink,
                    std::function<void(BpfEvent&&)> invalid = nullptr)
      : match_(std::move(match)), rules_(std::move(rules)), sink_(std::move(sink)), invalid_(std::move(invalid)) {}
  std::string name() const override { return invalid_ ? "NFLOG (iptables-legacy TRACE, conntrack INVALID log)" : "iptables-legacy TRACE"; }
  std::optional<std::string> cannot_run() override;
  Status start() override;
  void stop() override { trace_.reset(); }
  int fd() const override { return trace_ ? trace_->fd() : -1; }
  Status read() override;
  uint64_t lost() const override { return trace_ ? trace_->lost() : 0; }
  uint64_t malformed() const override { return trace_ ? trace_->foreign() : 0; }
  std::vector<std::string> families() const { return trace_ ? trace_->families() : std::vector<std::string>{}; }
  std::string comment() const { return trace_ ? trace_->comment() : ""; }
  // Datagrams are held, not parsed, until rules_ready() (the first ruleset
  // snapshot is in); release() parses them then, or at once with force.
  void set_rules_ready(std::function<bool()> rules_ready);
  void release(bool force);
  // What is read before lines are parsed (by read(), release(), or a full
  // hold): the source whose events open the stories these lines join. Its
  // error is read()'s.
  void set_read_first(std::function<Status()> read_first);
  bool holding() const { return trace_ && !held_.empty(); }
  bool set_tap(RawTap tap) override {
    tap_ = std::move(tap);
    return true;
  }

 private:
  TraceMatch match_;
  Rules rules_;
  std::function<void(NftTraceEvent&&)> sink_;
  std::function<void(BpfEvent&&)> invalid_;
  std::vector<std::string> families_;
  std::optional<LegacyTrace> trace_;
  RawTap tap_;
  std::optional<Error> read_first_error_;  // from the last read first, for read() to return
  // 4 MB: many seconds of TRACE lines at trace's default rate limit; the first read takes less than one.
  static constexpr size_t kMaxHeldBytes = 4u << 20;
  HeldDatagrams held_{nullptr, kMaxHeldBytes};  // parsed at the end of each read(), once set_rules_ready says so
  void parse(std::span<const uint8_t> datagram, uint64_t recv_ns);
};

}  // namespace natbpf
