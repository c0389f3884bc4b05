#include "sources/trace_hold.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sources/nft.h"
#include "util/libbpf_quiet.h"
#include "util/runtime.h"

namespace natbpf {

TraceTable::Holder::Holder(std::shared_ptr<mnl_socket> nl, std::string table, TraceMatch match, Hold hold,
                           PacketQueue queue)
    : nl_(std::move(nl)), table_(std::move(table)), match_(std::move(match)), hold_(hold), queue_(std::move(queue)) {}

Status TraceTable::Holder::start() {
  stop_ = Fd(eventfd(0, EFD_CLOEXEC));
  if (stop_.get() < 0) return Error{"eventfd: " + errno_name(errno), ""};
  thread_ = std::thread([this] { serve(); });
  return Ok{};
}

// Closing the queue would drop what waits there, and deleting the table
// too (unregistering a hook flushes the namespace's queues): the marking
// rules go first, so nothing more is queued, then what waits goes on,
// untraced, also a packet a CPU was queueing meanwhile.
TraceTable::Holder::~Holder() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_.get(), &one, sizeof(one));
    thread_.join();
  }
  std::lock_guard lock(mu_);
  (void)replace_mark_rules(nl_.get(), table_, match_, std::nullopt);
  for (int quiet = 0; quiet < 3;) {
    auto id = queue_.read();
    if (id && *id) {
      (void)queue_.let_go_through(**id, /*repeat=*/false);
      quiet = 0;
    } else {
      quiet++;
    }
    pollfd p{queue_.fd(), POLLIN, 0};
    (void)poll(&p, 1, 2);
  }
}

bool TraceTable::Holder::armed() const { return armed_; }

std::optional<Error> TraceTable::Holder::failure() const {
  if (!failed_) return std::nullopt;
  std::lock_guard lock(mu_);
  return failure_;
}

uint32_t TraceTable::Holder::follow(uint32_t g) const {
  std::lock_guard lock(mu_);
  for (auto it = own_moves_.find(g); it != own_moves_.end(); it = own_moves_.find(g)) g = it->second;
  return g;
}

Status TraceTable::Holder::disarm(const std::function<bool()>& quiet) {
  std::lock_guard lock(mu_);
  if (!armed_ || failure_ || !quiet()) return Ok{};
  std::optional<uint32_t> before;
  Status st = set_marking(false, before);
  if (st && idle_) idle_();
  note_own_move(before);
  return st;
}

void TraceTable::Holder::set_arming(std::function<Status()> arm, std::function<void()> idle) {
  std::lock_guard lock(mu_);
  arm_ = std::move(arm);
  idle_ = std::move(idle);
  if (!armed_ && idle_) idle_();
}

// With mu_ held. `before`: the generation before the commit, for
// note_own_move().
Status TraceTable::Holder::set_marking(bool trace, std::optional<uint32_t>& before) {
  MarkAction action;
  if (!trace) action = {hold_, queue_.number()};
  if (auto g = nft_generation()) before = *g;
  if (int err = replace_mark_rules(nl_.get(), table_, match_, action)) {
    before.reset();
    return Error{std::string("cannot turn nftables tracing ") + (trace ? "on" : "off") + " (" + errno_name(err) + ")",
                 "run it again with --no-hold"};
  }
  armed_ = trace;
  return Ok{};
}

// With mu_ held, after the held packets went on: asking for the generation
// closes a netfilter socket, and a close right after a commit waits for
// the commit's destroy work (nft_rcv_nl_event flushes it: a
// synchronize_rcu, 10 ms here), which held the first packet 12-21 ms.
void TraceTable::Holder::note_own_move(std::optional<uint32_t> before) {
  if (!before) return;  // no swap, or a failed one
  // Exactly one commit since `before`: natbpf's.
  if (auto after = nft_generation(); after && *after == *before + 1) own_moves_[*before] = *after;
}

void TraceTable::Holder::serve() {
  pollfd fds[2] = {{queue_.fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  for (;;) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents) return;
    auto id = queue_.read();
    std::lock_guard lock(mu_);
    if (!id) {
      failure_ = id.error();
      failed_ = true;
      return;  // the destructor lets what waits go
    }
    if (!*id) continue;
    std::optional<uint32_t> before;
    if (!armed_ && !failure_) {
      Status on = arm_ ? arm_() : Status(Ok{});
      if (on) on = set_marking(true, before);
      if (!on) {
        failure_ = on.error();
        failed_ = true;
      }
    }
    // Repeated, the hook runs again and traces them; if tracing could not
    // be turned on they go on to the next hook instead (else they would
    // be queued again).
    (void)queue_.let_go_through(**id, /*repeat=*/armed_);
    // After the verdict: arming may take seconds (fentry attach in an
    // emulated VM), and the quiet while counts from the packet's release.
    last_held_ns_ = monotonic_ns();
    note_own_move(before);
  }
}

}  // namespace natbpf
