// An NFQUEUE queue of the current network namespace, bound by natbpf: the
// trace table sends the first matching packet of an idle trace here, so
// nftables tracing (whose static key costs every nftables chain on the
// host, KERNEL-NOTES 4.2) is turned on only when a packet needs it. The
// packets are let go with NF_REPEAT: the hook that queued them runs again,
// now tracing them. Closing the socket drops what is still queued
// (nfqnl_flush), as for any queue whose listener is gone.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "sources/nft_netlink.h"
#include "util/result.h"

namespace natbpf {

// The highest packet id of the NFQNL_MSG_PACKET messages of a datagram of
// queue `queue` (exposed for tests); nullopt when it holds none.
std::optional<uint32_t> highest_queued_id(std::span<const uint8_t> datagram, uint16_t queue);

class PacketQueue {
 public:
  // Binds the first queue number from `first` on that no other socket
  // holds, trying `tries` numbers.
  static Result<PacketQueue> bind(uint16_t first, int tries);

  uint16_t number() const { return number_; }
  int fd() const;
  // The highest id of the packets waiting (nullopt: none), without blocking.
  Result<std::optional<uint32_t>> read();
  // Every packet up to `id` goes on: with repeat its hook runs again from
  // natbpf's rule; else the hooks after natbpf's run.
  Status let_go_through(uint32_t id, bool repeat);

 private:
  PacketQueue() = default;
  MnlSocket nl_;
  uint16_t number_ = 0;
};

}  // namespace natbpf
