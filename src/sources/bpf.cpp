#include "sources/bpf.h"

namespace natbpf {

std::optional<std::string> BpfSource::cannot_run() {
  if (plan_.attached() == 0) return "nothing to attach: " + plan_.summary();
  return std::nullopt;
}

Status BpfSource::start() {
  auto s = BpfSession::start(plan_, filter_);
  if (!s) return s.error();
  session_ = std::move(*s);
  if (tap_) session_->set_tap([this](std::span<const uint8_t> b) { tap_(b, monotonic_ns()); });
  return Ok{};
}

}  // namespace natbpf
