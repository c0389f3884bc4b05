// The temporary nftables table that marks the user's packets for tracing.
// Created with NFT_TABLE_F_OWNER (5.12+): the kernel deletes it when our
// netlink socket closes, even after SIGKILL. Without the flag the destructor
// deletes it, and the next start removes tables of dead natbpf processes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "sources/events.h"
#include "sources/nft.h"
#include "util/result.h"

struct mnl_socket;

namespace natbpf {

struct TraceMatch {
  std::optional<uint8_t> l4proto;  // 6, 17, 1 (icmp: also icmpv6)
  uint16_t sport = 0, dport = 0;
  std::optional<Addr> saddr, daddr;
  std::string iif;
  std::string rate = "10/second";  // nft limit rate
};

// The nft expression selecting the packets, e.g.
// "th dport 1222 meta l4proto tcp ip daddr 10.1.2.3" (exposed for tests).
std::string trace_match_expression(const TraceMatch& m);
// Validates "N/second" (second, minute, hour, day); returns nft's form.
Result<std::string> parse_rate(const std::string& text);

inline constexpr const char* kTraceTablePrefix = "natbpf_";

class TraceTable {
 public:
  // In the current network namespace.
  static Result<TraceTable> create(const TraceMatch& match);
  TraceTable(TraceTable&&) noexcept;
  TraceTable& operator=(TraceTable&&) = delete;
  ~TraceTable();

  const std::string& name() const { return name_; }
  bool owner_flag() const { return owner_; }
  // Chains whose events mark the packet's fate rather than a user decision.
  static bool is_fate_chain(const std::string& chain) { return chain == "fate_out" || chain == "fate_in"; }

 private:
  TraceTable() = default;
  std::shared_ptr<mnl_socket> nl_;  // the owning socket: open while the table is in use
  std::string name_;
  bool owner_ = false;
};

}  // namespace natbpf
