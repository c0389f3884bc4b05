// The BPF programs of an attach plan as a source. BpfSession loads the BPF
// objects the plan needs, with only the chosen programs enabled and the
// user's filter in .rodata, and reads their shared ring buffer; records are
// decoded into typed events (sources/decode). Everything is owned:
// destroying the session detaches every link. BpfSource gives the session
// the lifecycle of every source; it cannot run when the plan attaches nothing.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "probe/attach_plan.h"
#include "sources/events.h"
#include "sources/source.h"
#include "util/result.h"

namespace natbpf {

struct BpfFilter {
  uint8_t l4proto = 0;  // 0: any
  uint16_t sport = 0, dport = 0;
  std::optional<Addr> saddr, daddr;
  uint32_t netns = 0;  // namespace inode, 0: any
  bool all_reasons = false;  // also non-netfilter drops of matching flows
  bool traced_only = false;  // only skbs with nf_trace set (natbpf trace's marked packets)
  bool batch_wakeups = false;  // no wake-up per record: call consume() periodically
  // natbpf clash: only drops a conntrack counter explains (insert_failed or
  // drop rose on the CPU in the packet's namespace); the rest are rejected
  // and counted in the kernel (clash_rejected()).
  bool clash_only = false;
  // natbpf drops: count every drop in the kernel, send examples only; the
  // counts come as DropCountsEvent from emit_drop_counts().
  bool count_drops = false;
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
  // Reads the in-kernel drop counts (count_drops) and delivers them to sink
  // as DropCountsEvent records, through the tap like every record.
  Status emit_drop_counts(const std::function<void(BpfEvent&&)>& sink);
  // Detaches every program (they stay loaded, the ring buffer stays) and
  // attaches them again: natbpf trace, idle while nothing is traced, has
  // nothing for its programs to see. Not thread-safe with each other.
  void detach();
  Status attach();
  // Ring-buffer reservations that failed in the kernel (events lost).
  uint64_t lost() const;
  // clash_only: netfilter drops the kernel rejected (no conntrack counter rose).
  uint64_t clash_rejected() const;
  uint64_t decode_errors() const { return decode_errors_; }

 private:
  BpfSession();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t decode_errors_ = 0;
};

class BpfSource : public Source {
 public:
  BpfSource(Plan plan, BpfFilter filter, std::function<void(BpfEvent&&)> sink, std::string name = "bpf")
      : plan_(std::move(plan)), filter_(std::move(filter)), sink_(std::move(sink)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::optional<std::string> cannot_run() override;
  Status start() override;
  void stop() override { session_.reset(); }
  int fd() const override { return session_ ? session_->epoll_fd() : -1; }
  Status read() override { return session_ ? session_->consume(sink_) : Status(Ok{}); }
  uint64_t lost() const override { return session_ ? session_->lost() : 0; }
  Status emit_drop_counts() { return session_ ? session_->emit_drop_counts(sink_) : Status(Ok{}); }
  void detach() {
    if (session_) session_->detach();
  }
  Status attach() { return session_ ? session_->attach() : Status(Ok{}); }
  uint64_t malformed() const override { return session_ ? session_->decode_errors() : 0; }
  uint64_t rejected() const override { return session_ ? session_->clash_rejected() : 0; }
  bool set_tap(RawTap tap) override {
    tap_ = std::move(tap);
    return true;
  }

 private:
  Plan plan_;
  BpfFilter filter_;
  std::function<void(BpfEvent&&)> sink_;
  std::unique_ptr<BpfSession> session_;
  std::string name_;
  RawTap tap_;
};

}  // namespace natbpf
