// The BPF programs of an attach plan as a source: records from the shared
// ring buffer, decoded into typed events (sources/decode). It cannot run
// when the plan attaches nothing.
#pragma once

#include <functional>
#include <memory>

#include "probe/attach_plan.h"
#include "probe/loader.h"
#include "sources/source.h"

namespace natbpf {

class BpfSource : public Source {
 public:
  BpfSource(Plan plan, BpfFilter filter, std::function<void(BpfEvent&&)> sink)
      : plan_(std::move(plan)), filter_(std::move(filter)), sink_(std::move(sink)) {}
  std::string name() const override { return "bpf"; }
  std::optional<std::string> cannot_run() override;
  Status start() override;
  void stop() override { session_.reset(); }
  int fd() const override { return session_ ? session_->epoll_fd() : -1; }
  Status read() override { return session_ ? session_->consume(sink_) : Status(Ok{}); }
  uint64_t lost() const override { return session_ ? session_->lost() : 0; }
  uint64_t malformed() const override { return session_ ? session_->decode_errors() : 0; }
  bool set_tap(RawTap tap) override {
    tap_ = std::move(tap);
    return true;
  }

 private:
  Plan plan_;
  BpfFilter filter_;
  std::function<void(BpfEvent&&)> sink_;
  std::unique_ptr<BpfSession> session_;
  RawTap tap_;
};

}  // namespace natbpf
