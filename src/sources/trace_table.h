// The temporary nftables table that marks the user's packets for tracing.
// Created with NFT_TABLE_F_OWNER (5.12+): the kernel deletes it when our
// netlink socket closes, even after SIGKILL. Without the flag the destructor
// deletes it, and the next start removes tables of dead natbpf processes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "sources/events.h"
#include "sources/nft.h"
#include "sources/packet_queue.h"
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

// Tracing is armed by the first packet: any `meta nftrace set` rule on the
// host turns on nf_tables' trace static key, and then every packet at every
// nftables chain of every namespace pays for a trace id (KERNEL-NOTES 4.2).
// So while nothing matches, the marking rules send a matching packet to an
// NFQUEUE queue of natbpf's instead (Hold). A thread of the table's own
// waits on that queue: the first packet there swaps the rules for
// `meta nftrace set 1` and is let go with NF_REPEAT, so its hook runs again
// from natbpf's rule and the packet is traced from there. It is held for
// about a millisecond, whatever the event loop is doing. disarm() puts the
// queue rules back once the flow is quiet. Where no queue can be used (or
// with --no-hold) the rules trace from the start.
class TraceTable {
 public:
  enum class Hold { None, NftQueue, XtQueue };

  // In the current network namespace; hold: arm at the first packet where
  // this kernel can queue one.
  static Result<TraceTable> create(const TraceMatch& match, bool hold);
  TraceTable(TraceTable&&) noexcept;
  TraceTable& operator=(TraceTable&&) = delete;
  ~TraceTable();

  const std::string& name() const { return name_; }
  bool owner_flag() const { return owner_; }
  Hold hold() const;
  // Why the table traces from the start although a hold was asked for.
  const std::string& no_hold_reason() const { return no_hold_reason_; }
  uint16_t queue_number() const;
  bool armed() const;  // the marking rules trace
  uint64_t last_held_ns() const;  // monotonic time a packet was last held (0: never)
  // Why a held packet could not turn tracing on (it went on untraced, and
  // the hold ended): the run cannot trace.
  std::optional<Error> failure() const;
  // Back to holding the first packet (tracing off) if quiet() still says so
  // once no arming is under way (asked with the hold's lock held, after a
  // release's last_held_ns() stamp: one read before may be out of date).
  Status disarm(const std::function<bool()>& quiet);
  // What else goes on and off with tracing: arm runs on the hold's thread
  // before a held packet is let go (its error ends the hold, as failure()),
  // idle after tracing went off, and at once while it is off. What they
  // use must outlive the table.
  void set_arming(std::function<Status()> arm, std::function<void()> idle);
  // The nftables generation the table's own swaps of its marking rules
  // since generation g lead to (g when none followed it).
  uint32_t follow_own_changes(uint32_t g) const;
  // Chains whose events mark the packet's fate rather than a user decision.
  static bool is_fate_chain(const std::string& chain) { return chain == "fate_out" || chain == "fate_in"; }

 private:
  class Holder;
  TraceTable() = default;

  std::shared_ptr<mnl_socket> nl_;  // the owning socket: open while the table is in use
  std::string name_;
  bool owner_ = false;
  std::string no_hold_reason_;
  std::unique_ptr<Holder> holder_;  // with a hold: the queue, its thread and the marking rules' state
};

}  // namespace natbpf
