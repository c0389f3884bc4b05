#include "sources/bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <type_traits>
#include <vector>

#include "conntrack.skel.h"
#include "hooks.skel.h"
#include "nat.skel.h"
#include "nftrace.skel.h"
#include "sources/decode.h"
#include "util/libbpf_quiet.h"
#include "util/runtime.h"

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
void write_filter(Rodata* ro, const BpfFilter& f, const Plan& plan) {
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
  ro->cfg_traced_only = f.traced_only;
  ro->cfg_rb_flags = f.batch_wakeups ? BPF_RB_NO_WAKEUP : 0;
  ro->cfg_count_drops = f.count_drops;
  ro->cfg_clash_only = f.clash_only;
  ro->cfg_hook_exit = f.count_drops && plan.has("nf_hook_slow");
  ro->cfg_confirm_exit = f.count_drops && plan.has("__nf_conntrack_confirm");
}

// The objects share one ring buffer and one stats map: records of one packet
// from different objects (nf_ct_resolve_clash's exit, then kfree_skb) must
// reach user space in the order the kernel wrote them, which separate ring
// buffers do not guarantee.
struct SharedMaps {
  int events_fd = -1;
  int stats_fd = -1;
  int confirm_drop_fd = -1;
};

// Attaches the object's loaded programs that have no link yet: at start,
// and again after detach() (`when`: "" or " again", for the error).
template <typename Skel>
Status attach_object(SkelPtr<Skel>& skel, const char* what, const char* when) {
  if (!skel.p) return Ok{};
  LibbpfQuiet quiet;
  if (int err = Skel::attach(skel.p))
    return Error{std::string("attaching BPF object ") + what + when + " failed (" + errno_name(-err) + ")",
                 LibbpfQuiet::last_message()};
  return Ok{};
}

// Opens one skeleton, keeps only the plan's programs, loads and attaches.
template <typename Skel>
Status load_object(SkelPtr<Skel>& skel, const Plan& plan, const BpfFilter& filter, const char* what,
                   SharedMaps& shared) {
  skel.p = Skel::open();
  if (!skel.p) return Error{std::string("cannot open BPF object ") + what + " (" + errno_name(errno) + ")", ""};
  write_filter(skel.p->rodata, filter, plan);
  // Only `natbpf drops` counts: elsewhere its per-CPU hash would be
  // allocated (16384 entries per CPU) for nothing.
  if constexpr (std::is_same_v<Skel, hooks_bpf>)
    if (!filter.count_drops) bpf_map__set_max_entries(skel.p->maps.drop_counts, 1);
  if (shared.events_fd >= 0 && (bpf_map__reuse_fd(skel.p->maps.events, shared.events_fd) != 0 ||
                                bpf_map__reuse_fd(skel.p->maps.nb_stats, shared.stats_fd) != 0 ||
                                bpf_map__reuse_fd(skel.p->maps.nb_confirm_drop, shared.confirm_drop_fd) != 0))
    return Error{std::string("cannot share the ring buffer with BPF object ") + what + " (" + errno_name(errno) + ")", ""};
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel.p->obj) {
    bpf_program__set_autoload(prog, plan.enables(bpf_program__name(prog)));
  }
  LibbpfQuiet quiet;
  if (int err = Skel::load(skel.p))
    return Error{std::string("loading BPF object ") + what + " failed (" + errno_name(-err) + ")",
                 LibbpfQuiet::last_message()};
  if (auto st = attach_object(skel, what, ""); !st) return st;
  if (shared.events_fd < 0) {
    shared.events_fd = bpf_map__fd(skel.p->maps.events);
    shared.stats_fd = bpf_map__fd(skel.p->maps.nb_stats);
    shared.confirm_drop_fd = bpf_map__fd(skel.p->maps.nb_confirm_drop);
  }
  return Ok{};
}

uint64_t sum_stat(bpf_map* stats, uint32_t key) {
  if (!stats) return 0;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return 0;
  std::vector<uint64_t> values(ncpu);
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
  uint32_t count_seq = 0;

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

void BpfSession::detach() {
  if (impl_->hooks.p) hooks_bpf::detach(impl_->hooks.p);
  if (impl_->conntrack.p) conntrack_bpf::detach(impl_->conntrack.p);
  if (impl_->nat.p) nat_bpf::detach(impl_->nat.p);
  if (impl_->nftrace.p) nftrace_bpf::detach(impl_->nftrace.p);
}

Status BpfSession::attach() {
  Status st = attach_object(impl_->hooks, "hooks", " again");
  if (st) st = attach_object(impl_->conntrack, "conntrack", " again");
  if (st) st = attach_object(impl_->nat, "nat", " again");
  if (st) st = attach_object(impl_->nftrace, "nftrace", " again");
  return st;
}

uint64_t BpfSession::lost() const { return sum_stat(impl_->stats, NB_STAT_RB_LOST); }

uint64_t BpfSession::clash_rejected() const {
  int ncpu = libbpf_num_possible_cpus();
  if (!impl_->hooks.p || ncpu <= 0) return 0;
  std::vector<nb_ct_seen> seen(ncpu);
  uint32_t zero = 0;
  if (bpf_map__lookup_elem(impl_->hooks.p->maps.ct_seen, &zero, sizeof(zero), seen.data(),
                           sizeof(nb_ct_seen) * ncpu, 0) != 0)
    return 0;
  uint64_t total = 0;
  for (const auto& s : seen) total += s.rejected;
  return total;
}

namespace {

// The count map summed over CPUs, plus the drops still waiting in a
// CPU's stash for nf_hook_slow's exit (counted without their hook).
using DropKeyBytes = std::array<uint8_t, sizeof(nb_drop_key)>;

std::map<DropKeyBytes, uint64_t> read_drop_counts(bpf_map* counts, bpf_map* stash) {
  std::map<DropKeyBytes, uint64_t> out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  auto key_bytes = [](const nb_drop_key& k) {
    DropKeyBytes b;
    std::memcpy(b.data(), &k, sizeof(k));
    return b;
  };
  std::vector<nb_drop_value> values(ncpu);
  nb_drop_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(bpf_map__fd(counts), prev, &next) == 0) {
    if (bpf_map_lookup_elem(bpf_map__fd(counts), &next, values.data()) == 0) {
      uint64_t sum = 0;
      for (const auto& v : values) sum += v.count;
      if (sum) out[key_bytes(next)] += sum;
    }
    key = next;
    prev = &key;
  }
  std::vector<nb_drop_stash> waiting(ncpu);
  uint32_t zero = 0;
  if (stash && bpf_map_lookup_elem(bpf_map__fd(stash), &zero, waiting.data()) == 0)
    for (const auto& w : waiting)
      if (w.skb) out[key_bytes(w.key)]++;
  return out;
}

}  // namespace

Status BpfSession::emit_drop_counts(const std::function<void(BpfEvent&&)>& sink) {
  if (!impl_->hooks.p) return Ok{};
  auto counts = read_drop_counts(impl_->hooks.p->maps.drop_counts, impl_->hooks.p->maps.drop_stash);
  uint64_t unkeyed = sum_stat(impl_->stats, NB_STAT_DROP_UNKEYED);
  uint64_t examples_lost = sum_stat(impl_->stats, NB_STAT_EXAMPLE_LOST);
  uint32_t seq = ++impl_->count_seq;
  uint64_t now = monotonic_ns();
  auto it = counts.begin();
  // One record per NB_DROP_COUNTS_MAX_ROWS rows; an empty map is one record too.
  do {
    nb_drop_counts head{};
    std::vector<uint8_t> rows;
    while (it != counts.end() && head.rows < NB_DROP_COUNTS_MAX_ROWS) {
      nb_drop_count_row row{};
      std::memcpy(&row.key, it->first.data(), sizeof(row.key));
      row.count = it->second;
      const auto* b = reinterpret_cast<const uint8_t*>(&row);
      rows.insert(rows.end(), b, b + sizeof(row));
      head.rows++;
      ++it;
    }
    head.hdr.kind = NB_EV_DROP_COUNTS;
    head.hdr.version = NB_EVENT_VERSION;
    head.hdr.size = static_cast<uint16_t>(sizeof(head) + rows.size());
    head.hdr.origin = NB_ORIGIN_TP_BTF;
    head.hdr.ts_ns = now;
    head.seq = seq;
    head.last = it == counts.end();
    head.unkeyed = unkeyed;
    head.examples_lost = examples_lost;
    std::vector<uint8_t> record(sizeof(head));
    std::memcpy(record.data(), &head, sizeof(head));
    record.insert(record.end(), rows.begin(), rows.end());
    impl_->sink = &sink;
    Impl::on_record(impl_.get(), record.data(), record.size());
    impl_->sink = nullptr;
  } while (it != counts.end());
  return Ok{};
}

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
