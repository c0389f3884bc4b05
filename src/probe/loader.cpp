#include "probe/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "conntrack.skel.h"
#include "hooks.skel.h"
#include "nat.skel.h"
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

// Opens one skeleton, keeps only the plan's programs, loads and attaches.
template <typename Skel>
Status load_object(SkelPtr<Skel>& skel, const Plan& plan, const BpfFilter& filter, const char* what) {
  skel.p = Skel::open();
  if (!skel.p) return Error{std::string("cannot open BPF object ") + what + " (" + errno_name(errno) + ")", ""};
  write_filter(skel.p->rodata, filter);
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
  ring_buffer* rb = nullptr;
  const std::function<void(BpfEvent&&)>* sink = nullptr;
  BpfSession* owner = nullptr;

  ~Impl() {
    if (rb) ring_buffer__free(rb);
  }

  static int on_record(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    auto ev = decode_bpf_record(data, size);
    if (!ev) {
      self->owner->decode_errors_++;
      return 0;
    }
    if (self->sink) (*self->sink)(std::move(*ev));
    return 0;
  }

  Status add_ring(bpf_map* map) {
    int fd = bpf_map__fd(map);
    if (!rb) {
      rb = ring_buffer__new(fd, on_record, this, nullptr);
      if (!rb) return Error{"cannot create ring buffer (" + errno_name(errno) + ")", ""};
      return Ok{};
    }
    if (ring_buffer__add(rb, fd, on_record, this) != 0)
      return Error{"cannot add ring buffer (" + errno_name(errno) + ")", ""};
    return Ok{};
  }
};

BpfSession::BpfSession() : impl_(std::make_unique<Impl>()) { impl_->owner = this; }
BpfSession::~BpfSession() = default;

Result<std::unique_ptr<BpfSession>> BpfSession::start(const Plan& plan, const BpfFilter& filter) {
  std::unique_ptr<BpfSession> s(new BpfSession());
  auto& i = *s->impl_;
  if (plan.uses(BpfObject::Hooks)) {
    if (auto st = load_object(i.hooks, plan, filter, "hooks"); !st) return st.error();
    if (auto st = i.add_ring(i.hooks.p->maps.events); !st) return st.error();
  }
  if (plan.uses(BpfObject::Conntrack)) {
    if (auto st = load_object(i.conntrack, plan, filter, "conntrack"); !st) return st.error();
    if (auto st = i.add_ring(i.conntrack.p->maps.events); !st) return st.error();
  }
  if (plan.uses(BpfObject::Nat)) {
    if (auto st = load_object(i.nat, plan, filter, "nat"); !st) return st.error();
    if (auto st = i.add_ring(i.nat.p->maps.events); !st) return st.error();
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

uint64_t BpfSession::lost() const {
  uint64_t total = 0;
  if (impl_->hooks.p) total += sum_lost(impl_->hooks.p->maps.nb_stats);
  if (impl_->conntrack.p) total += sum_lost(impl_->conntrack.p->maps.nb_stats);
  if (impl_->nat.p) total += sum_lost(impl_->nat.p->maps.nb_stats);
  return total;
}

}  // namespace natbpf
