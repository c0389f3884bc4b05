// Inside the trace table (trace_table.cpp, trace_hold.cpp): the marking
// rules' action and the hold that swaps it. Not for other code.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "sources/packet_queue.h"
#include "sources/trace_table.h"
#include "util/fd.h"

namespace natbpf {

// The action of the marking rules: tracing, or holding the packet in queue
// `number` (nft's queue expression, else xtables' NFQUEUE through
// nft_compat where the kernel has no nft_queue, as this 6.18 machine). Both
// bypass: with no listener on the queue the packet goes on.
struct MarkAction {
  TraceTable::Hold hold = TraceTable::Hold::None;  // None: meta nftrace set 1
  uint16_t queue = 0;
};

// Replaces the marking rules (and their protocol sets) with ones of
// `action` (none: removes them), in one batch: a packet meets the old rule
// or the new one. Returns the errno of the first refused message.
int replace_mark_rules(mnl_socket* nl, const std::string& name, const TraceMatch& m,
                       const std::optional<MarkAction>& action);

// The hold: natbpf's queue and the thread that serves it. Heap-held, so the
// thread's `this` outlives moves of the table. mu_ orders the marking rules'
// batches (the thread arms, the event loop disarms) on the owning socket.
class TraceTable::Holder {
 public:
  Holder(std::shared_ptr<mnl_socket> nl, std::string table, TraceMatch match, Hold hold, PacketQueue queue);
  // Lets what waits in the queue go on before the queue and the table go.
  ~Holder();
  Status start();

  uint16_t number() const { return queue_.number(); }
  Hold hold() const { return hold_; }
  bool armed() const;
  uint64_t last_held_ns() const { return last_held_ns_.load(); }
  std::optional<Error> failure() const;
  uint32_t follow(uint32_t g) const;
  Status disarm(const std::function<bool()>& quiet);
  void set_arming(std::function<Status()> arm, std::function<void()> idle);

 private:
  Status set_marking(bool trace, std::optional<uint32_t>& before);
  void note_own_move(std::optional<uint32_t> before);
  void serve();

  std::shared_ptr<mnl_socket> nl_;
  std::string table_;
  TraceMatch match_;
  Hold hold_;
  PacketQueue queue_;
  mutable std::mutex mu_;
  // Read without mu_: the event loop asks both every turn, and must not
  // wait while an arming attaches BPF programs.
  std::atomic<bool> armed_{false}, failed_{false};
  std::optional<Error> failure_;
  std::map<uint32_t, uint32_t> own_moves_;  // generation before -> after a swap
  std::function<Status()> arm_;             // before tracing turns on
  std::function<void()> idle_;              // after it turned off
  std::atomic<uint64_t> last_held_ns_{0};
  Fd stop_;
  std::thread thread_;
};

}  // namespace natbpf
