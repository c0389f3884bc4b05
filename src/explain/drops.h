// Drop attribution: every netfilter drop of a bounded run, grouped by cause
// and ranked. Causes come from where the kernel freed the packet (kfree_skb
// location and reason), the hook (nf_hook_slow, where it attaches), the
// conntrack entry the packet carried, and conntrack confirm failures; rule
// counters of the namespace name the nftables rules that dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sources/events.h"

namespace natbpf {

struct DropCause {
  std::string cause;     // "nftables rule or chain policy drop", ...
  std::string where;     // "nft_do_chain", "nf_hook_slow at postrouting"
  uint32_t netns = 0;
  std::string netns_name;
  uint64_t count = 0;
  std::map<std::string, uint64_t> flows;  // "tcp -> 192.168.70.10:22" -> count
  std::vector<std::string> evidence;
  std::vector<std::pair<std::string, uint64_t>> rules;  // nftables rules whose drop counters rose
};

class DropAggregator {
 public:
  // symbol: kernel address -> "fn+0xoff"; reason: value -> name.
  DropAggregator(std::function<std::string(uint64_t)> symbol, std::function<std::string(uint32_t)> reason);
  void add(const BpfEvent& ev);
  // Causes, most frequent first.
  std::vector<DropCause> ranked() const;
  uint64_t total() const { return total_; }

 private:
  std::function<std::string(uint64_t)> symbol_;
  std::function<std::string(uint32_t)> reason_;
  std::map<uint64_t, uint8_t> hook_by_skb_;        // from nf_hook_slow exits
  std::map<uint64_t, bool> confirm_failed_skb_;    // from __nf_conntrack_confirm
  std::map<std::string, DropCause> causes_;
  std::deque<SkbDropEvent> pending_;
  uint64_t total_ = 0;
  void account(const SkbDropEvent& d);
 public:
  // Accounts drops whose hook/confirm events may have arrived after them.
  void finish();
};

}  // namespace natbpf
