// The nftables trace stream as a source: a netlink socket joined to
// NFNLGRP_NFTRACE that hands every message it reads to the parser of
// sources/nftrace_message.h. Receive-buffer overruns (ENOBUFS) and malformed
// messages are counted, never fatal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sources/nftrace_message.h"
#include "sources/source.h"
#include "util/result.h"

struct mnl_socket;

namespace natbpf {

// A NETLINK_NETFILTER socket joined to NFNLGRP_NFTRACE in the network
// namespace of the thread that called open(). The kernel only builds trace
// messages while such a listener exists (nfnetlink_has_listeners).
class NftraceListener {
 public:
  // Asks for rcvbuf_bytes with SO_RCVBUFFORCE, falling back to SO_RCVBUF
  // (capped by net.core.rmem_max) without CAP_NET_ADMIN.
  static Result<NftraceListener> open(int rcvbuf_bytes = 8 << 20);

  NftraceListener(NftraceListener&&) noexcept = default;
  NftraceListener& operator=(NftraceListener&&) noexcept = default;
  NftraceListener(const NftraceListener&) = delete;
  NftraceListener& operator=(const NftraceListener&) = delete;
  ~NftraceListener() = default;

  int fd() const;

  // Reads everything queued without blocking and passes each good event to
  // sink. Bad messages are counted, not fatal. ENOBUFS means the kernel
  // dropped messages: counted in lost_overruns() and reading goes on.
  Status drain(const std::function<void(NftTraceEvent&&)>& sink);
  void set_tap(RawTap tap) { tap_ = std::move(tap); }

  uint64_t lost_overruns() const { return lost_overruns_; }
  uint64_t parse_errors() const { return parse_errors_; }
  std::string last_parse_error() const { return last_parse_error_; }

 private:
  struct SocketCloser {
    void operator()(mnl_socket* socket) const;
  };

  explicit NftraceListener(mnl_socket* socket);
  void note_parse_error(std::string message);

  std::unique_ptr<mnl_socket, SocketCloser> socket_;
  std::vector<uint8_t> buffer_;
  RawTap tap_;
  uint64_t lost_overruns_ = 0;
  uint64_t parse_errors_ = 0;
  std::string last_parse_error_;
};

// The nftables trace stream as a source.
class NftraceSource : public Source {
 public:
  explicit NftraceSource(std::function<void(NftTraceEvent&&)> sink) : sink_(std::move(sink)) {}
  std::string name() const override { return "nftables trace"; }
  std::optional<std::string> cannot_run() override { return std::nullopt; }  // open() says why
  Status start() override;
  void stop() override { listener_.reset(); }
  int fd() const override { return listener_ ? listener_->fd() : -1; }
  Status read() override { return listener_ ? listener_->drain(sink_) : Status(Ok{}); }
  uint64_t lost() const override { return listener_ ? listener_->lost_overruns() : 0; }
  uint64_t malformed() const override { return listener_ ? listener_->parse_errors() : 0; }
  bool set_tap(RawTap tap) override {
    tap_ = std::move(tap);
    return true;
  }

 private:
  std::function<void(NftTraceEvent&&)> sink_;
  std::optional<NftraceListener> listener_;
  RawTap tap_;
};

}  // namespace natbpf
