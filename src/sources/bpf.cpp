#include "sources/bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "conntrack.skel.h"
#include "hooks.skel.h"
#include "nat.skel.h"
#include "nftrace.skel.h"
#include "sources/decode.h"
#include "util/libbpf_quiet.h"

extern "C" {
#include "natbpf_events.h"
}

namespace natbpf {
namespace {

template <typename Skel>
struct SkelPtr {
  Skel* p = nullptr;
  ~SkelPtr() {
    if (p) Skel::destroy(p);
  }
};

template <typename Rodata>
void write_filter(Rodata* ro, const BpfFilter& f) {
  ro->cfg_l4proto = f.l4proto;
  ro->cfg_sport = f.sport;
  ro->cfg_dport = f.dport;
  uint8_t family = 0;
  if (f.saddr) {
    ro->cfg_match_saddr = 1;
    std::memcpy((void*)ro->cfg_saddr, f.saddr->bytes.data(), 16);
    family = f.saddr->family;
  }
  if (f.daddr) {
    ro->cfg_match_daddr = 1;
    std::memcpy((void*)ro->cfg_daddr, f.daddr->bytes.data(), 16);
    family = f.daddr->family;
  }
  ro->cfg_family = family;
  ro->cfg_netns = f.netns;
  ro->cfg_all_reasons = f.all_reasons;
  ro->cfg_rb_flags = f.batch_wakeups ? BPF_RB_NO_WAKEUP : 0;
}

// The objects share one ring buffer and one stats map: records of one packet
// from different objects (nf_ct_resolve_clash's exit, then kfree_skb) must
// reach user space in the order the kernel wrote them, which separate ring
// buffers do not guarantee.
struct SharedMaps {
  int events_fd = -1;
  int stats_fd = -1;
};

// Opens one skeleton, keeps only the plan's programs, loads and attaches.
template <typename Skel>
Status load_object(SkelPtr<Skel>& skel, const Plan& plan, const BpfFilter& filter, const char* what,
                   SharedMaps& shared) {
  skel.p = Skel::open();
  if (!skel.p) return Error{std::string("cannot open BPF object ") + what + " (" + errno_name(errno) + ")", ""};
  write_filter(skel.p->rodata, filter);
  if (shared.events_fd >= 0 && (bpf_map__reuse_fd(skel.p->maps.events, shared.events_fd) != 0 ||
                                bpf_map__reuse_fd(skel.p->maps.nb_stats, shared.stats_fd) != 0))
    return Error{std::string("cannot share the ring buffer with BPF object ") + what + " (" + errno_name(errno) + ")", ""};
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel.p->obj) {
    bpf_program__set_autoload(prog, plan.enables(bpf_program__name(prog)));
  }
  LibbpfQuiet quiet;
  if (int err = Skel::load(skel.p))
    return Error{std::string("loading BPF object ") + what + " failed (" + errno_name(-err) + ")",
                 LibbpfQuiet::last_message()};
  if (int err = Skel::attach(skel.p))
    return Error{std::string("attaching BPF object ") + what + " failed (" + errno_name(-err) + ")",
                 LibbpfQuiet::last_message()};
  if (shared.events_fd < 0) {
    shared.events_fd = bpf_map__fd(skel.p->maps.events);
    shared.stats_fd = bpf_map__fd(skel.p->maps.nb_stats);
  }
  return Ok{};
}

uint64_t sum_lost(bpf_map* stats) {
  if (!stats) return 0;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return 0;
  std::vector<uint64_t> values(ncpu);
  uint32_t key = NB_STAT_RB_LOST;
  if (bpf_map__lookup_elem(stats, &key, sizeof(key), values.data(), sizeof(uint64_t) * ncpu, 0) != 0) return 0;
  uint64_t total = 0;
  for (auto v : values) total += v;
  return total;
}

}  // namespace

struct BpfSession::Impl {
  SkelPtr<hooks_bpf> hooks;
  SkelPtr<conntrack_bpf> conntrack;
  SkelPtr<nat_bpf> nat;
  SkelPtr<nftrace_bpf> nftrace;
  ring_buffer* rb = nullptr;
  bpf_map* stats = nullptr;  // shared by every object
  const std::function<void(BpfEvent&&)>* sink = nullptr;
  std::function<void(std::span<const uint8_t>)> tap;
  BpfSession* owner = nullptr;

  ~Impl() {
    if (rb) ring_buffer__free(rb);
  }

  static int on_record(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (self->tap) self->tap({static_cast<const uint8_t*>(data), size});
    auto ev = decode_bpf_record(data, size);
    if (!ev) {
      self->owner->decode_errors_++;
      return 0;
    }
    if (self->sink) (*self->sink)(std::move(*ev));
    return 0;
  }

  Status add_ring(bpf_map* map) {
    rb = ring_buffer__new(bpf_map__fd(map), on_record, this, nullptr);
    if (!rb) return Error{"cannot create ring buffer (" + errno_name(errno) + ")", ""};
    return Ok{};
  }
};

BpfSession::BpfSession() : impl_(std::make_unique<Impl>()) { impl_->owner = this; }
BpfSession::~BpfSession() = default;
void BpfSession::set_tap(std::function<void(std::span<const uint8_t>)> tap) { impl_->tap = std::move(tap); }

Result<std::unique_ptr<BpfSession>> BpfSession::start(const Plan& plan, const BpfFilter& filter) {
  std::unique_ptr<BpfSession> s(new BpfSession());
  auto& i = *s->impl_;
  SharedMaps shared;
  bpf_map* ring = nullptr;
  auto first = [&](bpf_map* events, bpf_map* stats) {
    if (ring) return;
    ring = events;
    i.stats = stats;
  };
  if (plan.uses(BpfObject::Hooks)) {
    if (auto st = load_object(i.hooks, plan, filter, "hooks", shared); !st) return st.error();
    first(i.hooks.p->maps.events, i.hooks.p->maps.nb_stats);
  }
  if (plan.uses(BpfObject::Conntrack)) {
    if (auto st = load_object(i.conntrack, plan, filter, "conntrack", shared); !st) return st.error();
    first(i.conntrack.p->maps.events, i.conntrack.p->maps.nb_stats);
  }
  if (plan.uses(BpfObject::Nat)) {
    if (auto st = load_object(i.nat, plan, filter, "nat", shared); !st) return st.error();
    first(i.nat.p->maps.events, i.nat.p->maps.nb_stats);
  }
  if (plan.uses(BpfObject::NftTrace)) {
    if (auto st = load_object(i.nftrace, plan, filter, "nftrace", shared); !st) return st.error();
    first(i.nftrace.p->maps.events, i.nftrace.p->maps.nb_stats);
  }
  if (ring) {
    if (auto st = i.add_ring(ring); !st) return st.error();
  }
  return s;
}

int BpfSession::epoll_fd() const { return impl_->rb ? ring_buffer__epoll_fd(impl_->rb) : -1; }

Status BpfSession::consume(const std::function<void(BpfEvent&&)>& sink) {
  if (!impl_->rb) return Ok{};
  impl_->sink = &sink;
  int n = ring_buffer__consume(impl_->rb);
  impl_->sink = nullptr;
  if (n < 0 && n != -EINTR) return Error{"reading BPF ring buffer failed (" + errno_name(-n) + ")", ""};
  return Ok{};
}

uint64_t BpfSession::lost() const { return sum_lost(impl_->stats); }

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
