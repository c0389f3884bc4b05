// Loads the BPF objects an attach plan needs, with only the chosen programs
// enabled and the user's filter in .rodata, and reads their ring buffers.
// Everything is owned: destroying the session detaches every link.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "probe/attach_plan.h"
#include "sources/events.h"
#include "util/result.h"

namespace natbpf {

struct BpfFilter {
  uint8_t l4proto = 0;  // 0: any
  uint16_t sport = 0, dport = 0;
  std::optional<Addr> saddr, daddr;
  uint32_t netns = 0;  // namespace inode, 0: any
  bool all_reasons = false;  // also non-netfilter drops of matching flows
  bool batch_wakeups = false;  // no wake-up per record: call consume() periodically
};

class BpfSession {
 public:
  static Result<std::unique_ptr<BpfSession>> start(const Plan& plan, const BpfFilter& filter);
  ~BpfSession();
  BpfSession(const BpfSession&) = delete;
  BpfSession& operator=(const BpfSession&) = delete;

  // An fd that becomes readable when events are waiting (for poll/epoll).
  int epoll_fd() const;
  // Delivers every waiting event; bad records are counted, not delivered.
  Status consume(const std::function<void(BpfEvent&&)>& sink);
  // Sees every record's bytes before it is decoded (for --record).
  void set_tap(std::function<void(std::span<const uint8_t>)> tap);
  // Ring-buffer reservations that failed in the kernel (events lost).
  uint64_t lost() const;
  uint64_t decode_errors() const { return decode_errors_; }

 private:
  BpfSession();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t decode_errors_ = 0;
};

}  // namespace natbpf
