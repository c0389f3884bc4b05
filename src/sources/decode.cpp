#include "sources/decode.h"

#include <arpa/inet.h>

#include <cstring>

extern "C" {
#include "natbpf_events.h"
}

namespace natbpf {

static_assert(sizeof(nb_hdr) == 16);
static_assert(sizeof(nb_pkt) == 64);
static_assert(sizeof(nb_tuple) == 40);
static_assert(sizeof(nb_ct) == 112);
static_assert(sizeof(nb_hook_drop) == 48);
static_assert(sizeof(nb_skb_drop) == 216);
static_assert(sizeof(nb_ct_confirm) == 320);
static_assert(sizeof(nb_ct_clash) == 256);
static_assert(sizeof(nb_nat_setup) == 264);
static_assert(sizeof(nb_nft_trace_id) == 32);
static_assert(sizeof(nb_drop_key) == 24);
static_assert(sizeof(nb_drop_example) == 232);
static_assert(sizeof(nb_drop_count_row) == 32);
static_assert(sizeof(nb_drop_counts) == 40);
static_assert(sizeof(nb_ct_invalid) == 192);

namespace {

constexpr uint32_t kNfAccept = 1;

Addr addr(const uint8_t* bytes, uint8_t family) {
  Addr a;
  a.family = family;
  std::memcpy(a.bytes.data(), bytes, family == 2 ? 4 : 16);
  return a;
}

Tuple tuple(const nb_tuple& t) {
  Tuple o;
  uint8_t family = static_cast<uint8_t>(t.l3num);
  o.src = addr(t.src, family);
  o.dst = addr(t.dst, family);
  o.sport = t.sport;
  o.dport = t.dport;
  o.proto = t.protonum;
  return o;
}

CtEntry ct(const nb_ct& c) {
  CtEntry o;
  o.ptr = c.ptr;
  o.orig = tuple(c.orig);
  o.reply = tuple(c.reply);
  o.status = c.status;
  o.mark = c.mark;
  o.netns = c.netns_ino;
  return o;
}

Packet packet(const nb_pkt& p) {
  Packet o;
  o.family = p.family;
  o.l4proto = p.l4proto;
  o.tcp_flags = p.tcp_flags;
  o.saddr = addr(p.saddr, p.family);
  o.daddr = addr(p.daddr, p.family);
  o.sport = p.sport;
  o.dport = p.dport;
  o.tcp_seq = p.tcp_seq;
  o.ip_id = p.ip_id;
  o.ifindex = p.ifindex;
  o.netns = p.netns_ino;
  o.len = p.len;
  return o;
}

Result<Origin> origin(uint8_t o) {
  switch (o) {
    case NB_ORIGIN_FENTRY: return Origin::Fentry;
    case NB_ORIGIN_KPROBE: return Origin::Kprobe;
    case NB_ORIGIN_TP_BTF: return Origin::TpBtf;
    case NB_ORIGIN_RAW_TP: return Origin::RawTp;
  }
  return Error{"BPF record with unknown origin " + std::to_string(o), ""};
}

template <typename Raw>
Result<Raw> copy_record(const void* data, size_t size) {
  Raw raw;
  if (size < sizeof(Raw)) return Error{"truncated BPF record (" + std::to_string(size) + " bytes)", ""};
  std::memcpy(&raw, data, sizeof(Raw));
  if (raw.hdr.size != sizeof(Raw))
    return Error{"BPF record size " + std::to_string(raw.hdr.size) + " does not match its kind", ""};
  return raw;
}

template <typename Ev, typename Raw>
Result<Ev> with_base(const Raw& raw) {
  auto o = origin(raw.hdr.origin);
  if (!o) return o.error();
  Ev ev;
  ev.ts_ns = raw.hdr.ts_ns;
  ev.cpu = raw.hdr.cpu;
  ev.origin = *o;
  return ev;
}

// The fields of each record kind, after its size, version and origin were checked.
void fill(HookDropEvent& ev, const nb_hook_drop& raw) {
  ev.skb = raw.skb;
  ev.ret = raw.ret;
  ev.hook = raw.hook;
  ev.pf = raw.pf;
  ev.num_hook_entries = raw.num_hook_entries;
  ev.in_ifindex = raw.in_ifindex;
  ev.out_ifindex = raw.out_ifindex;
  ev.netns = raw.netns_ino;
}

void fill(SkbDropEvent& ev, const nb_skb_drop& raw) {
  ev.skb = raw.skb;
  ev.location = raw.location;
  if (raw.has_reason) ev.reason = raw.reason;
  ev.pkt = packet(raw.pkt);
  if (raw.has_ct) ev.ct = ct(raw.ct);
}

void fill(CtConfirmEvent& ev, const nb_ct_confirm& raw) {
  ev.skb = raw.skb;
  ev.pkt = packet(raw.pkt);
  ev.loser = ct(raw.loser);
  if (raw.flags & NB_CONFIRM_MERGED) ev.winner = ct(raw.winner);
  ev.accepted = raw.ret == kNfAccept;
  ev.nat_clash = raw.flags & NB_CONFIRM_NAT_CLASH;
}

void fill(CtClashEvent& ev, const nb_ct_clash& raw) {
  ev.skb = raw.skb;
  ev.loser = ct(raw.loser);
  ev.winner = ct(raw.winner);
  ev.resolved = raw.ret == kNfAccept;
}

void fill(NatSetupEvent& ev, const nb_nat_setup& raw) {
  ev.ct = ct(raw.ct);
  ev.before = tuple(raw.before);
  uint8_t family = static_cast<uint8_t>(raw.before.l3num);
  ev.range.flags = raw.range.flags;
  ev.range.min_addr = addr(raw.range.min_addr, family);
  ev.range.max_addr = addr(raw.range.max_addr, family);
  ev.range.min_port = raw.range.min_port;
  ev.range.max_port = raw.range.max_port;
  ev.snat = raw.maniptype == 0;
  ev.accepted = raw.ret == kNfAccept;
  ev.attempts = raw.attempts;
  ev.taken = raw.taken;
  ev.last_probe = tuple(raw.last_probe);
}

void fill(NftTraceIdEvent& ev, const nb_nft_trace_id& raw) {
  ev.skb = raw.skb;
  // The kernel puts skbid with nla_put_u32 (host order); nft and our
  // nftrace parser print ntohl() of those bytes.
  ev.trace_id = ntohl(raw.skbid);
}

void fill(CtInvalidEvent& ev, const nb_ct_invalid& raw) {
  ev.skb = raw.skb;
  ev.pkt = packet(raw.pkt);
  ev.protonum = raw.protonum;
  // Bounded: a record's string need not be terminated.
  ev.reason.assign(raw.reason, strnlen(raw.reason, sizeof(raw.reason)));
  while (!ev.reason.empty() && ev.reason.back() == ' ') ev.reason.pop_back();
}

DropKey drop_key(const nb_drop_key& raw) {
  DropKey k;
  k.location = raw.location;
  k.netns = raw.netns_ino;
  if (raw.flags & NB_DROP_HAS_REASON) k.reason = raw.reason;
  k.dport = raw.dport;
  k.family = raw.family;
  k.l4proto = raw.l4proto;
  if (raw.hook != NB_HOOK_UNKNOWN) k.hook = raw.hook;
  k.has_ct = raw.flags & NB_DROP_HAS_CT;
  k.ct_confirmed = raw.flags & NB_DROP_CT_CONFIRMED;
  k.ct_nat = raw.flags & NB_DROP_CT_NAT;
  k.confirm_failed = raw.flags & NB_DROP_CONFIRM_FAILED;
  return k;
}

void fill(DropExampleEvent& ev, const nb_drop_example& raw) {
  ev.key = drop_key(raw.key);
  ev.skb = raw.skb;
  ev.pkt = packet(raw.pkt);
  if (raw.has_ct) ev.ct = ct(raw.ct);
}

// A count snapshot record: its header, then hdr.size says how many rows.
Result<BpfEvent> decode_drop_counts(const void* data, size_t size) {
  nb_drop_counts raw;
  if (size < sizeof(raw)) return Error{"truncated BPF record (" + std::to_string(size) + " bytes)", ""};
  std::memcpy(&raw, data, sizeof(raw));
  size_t want = sizeof(raw) + size_t(raw.rows) * sizeof(nb_drop_count_row);
  if (raw.hdr.size != want || size < want || raw.rows > NB_DROP_COUNTS_MAX_ROWS)
    return Error{"drop count record of " + std::to_string(raw.hdr.size) + " bytes does not hold its " +
                     std::to_string(raw.rows) + " rows",
                 ""};
  auto ev = with_base<DropCountsEvent>(raw);
  if (!ev) return ev.error();
  ev->seq = raw.seq;
  ev->last = raw.last;
  ev->unkeyed = raw.unkeyed;
  ev->examples_lost = raw.examples_lost;
  const auto* bytes = static_cast<const uint8_t*>(data) + sizeof(raw);
  for (uint16_t i = 0; i < raw.rows; i++) {
    nb_drop_count_row row;
    std::memcpy(&row, bytes + i * sizeof(row), sizeof(row));
    ev->rows.push_back({drop_key(row.key), row.count});
  }
  return BpfEvent{std::move(*ev)};
}

// One record of kind Raw: size and origin checked, then its fields.
template <typename Ev, typename Raw>
Result<BpfEvent> decode_as(const void* data, size_t size) {
  auto raw = copy_record<Raw>(data, size);
  if (!raw) return raw.error();
  auto ev = with_base<Ev>(*raw);
  if (!ev) return ev.error();
  fill(*ev, *raw);
  return BpfEvent{*ev};
}

}  // namespace

Result<BpfEvent> decode_bpf_record(const void* data, size_t size) {
  nb_hdr hdr;
  if (size < sizeof(hdr)) return Error{"truncated BPF record header", ""};
  std::memcpy(&hdr, data, sizeof(hdr));
  if (hdr.version != NB_EVENT_VERSION)
    return Error{"BPF record version " + std::to_string(hdr.version) + ", expected " +
                     std::to_string(NB_EVENT_VERSION),
                 "the BPF objects and natbpf come from different builds"};

  switch (hdr.kind) {
    case NB_EV_HOOK_DROP: return decode_as<HookDropEvent, nb_hook_drop>(data, size);
    case NB_EV_SKB_DROP: return decode_as<SkbDropEvent, nb_skb_drop>(data, size);
    case NB_EV_CT_CONFIRM: return decode_as<CtConfirmEvent, nb_ct_confirm>(data, size);
    case NB_EV_CT_CLASH: return decode_as<CtClashEvent, nb_ct_clash>(data, size);
    case NB_EV_NAT_SETUP: return decode_as<NatSetupEvent, nb_nat_setup>(data, size);
    case NB_EV_NFT_TRACE_ID: return decode_as<NftTraceIdEvent, nb_nft_trace_id>(data, size);
    case NB_EV_CT_INVALID: return decode_as<CtInvalidEvent, nb_ct_invalid>(data, size);
    case NB_EV_DROP_EXAMPLE: return decode_as<DropExampleEvent, nb_drop_example>(data, size);
    case NB_EV_DROP_COUNTS: return decode_drop_counts(data, size);
  }
  return Error{"BPF record of unknown kind " + std::to_string(hdr.kind), ""};
}

}  // namespace natbpf
