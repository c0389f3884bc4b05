// Throughput of the user-space pipeline: ring-buffer record decoding,
// nftables trace parsing and journey building, per event. Results go to
// docs/benchmarks.md (scripts/bench.sh).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>
#include <vector>

#include "journey/journey.h"
#include "sources/decode.h"
#include "sources/nftrace.h"

extern "C" {
#include "natbpf_events.h"
}

namespace natbpf {
namespace {

nb_skb_drop make_drop(uint32_t i) {
  nb_skb_drop r;
  std::memset(&r, 0, sizeof(r));
  r.hdr = {NB_EV_SKB_DROP, NB_EVENT_VERSION, sizeof(r), NB_ORIGIN_TP_BTF, 0, 1000 + i};
  r.has_reason = 1;
  r.reason = 12;
  r.pkt.family = 2;
  r.pkt.l4proto = 6;
  r.pkt.sport = static_cast<uint16_t>(1024 + i % 60000);
  r.pkt.dport = 22;
  r.has_ct = 1;
  r.ct.orig.l3num = 2;
  r.ct.orig.protonum = 6;
  return r;
}

void BM_DecodeSkbDrop(benchmark::State& state) {
  auto r = make_drop(1);
  for (auto _ : state) {
    auto ev = decode_bpf_record(&r, sizeof(r));
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeSkbDrop);

std::vector<char> trace_message(uint32_t id, uint64_t handle) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = 1;
  nfg->version = NFNETLINK_V0;
  mnl_attr_put_strz(nlh, NFTA_TRACE_TABLE, "filter");
  mnl_attr_put_strz(nlh, NFTA_TRACE_CHAIN, "allowed_dnats");
  mnl_attr_put_u32(nlh, NFTA_TRACE_ID, htonl(id));
  mnl_attr_put_u32(nlh, NFTA_TRACE_TYPE, htonl(NFT_TRACETYPE_RULE));
  mnl_attr_put_u64(nlh, NFTA_TRACE_RULE_HANDLE, htobe64(handle));
  nlattr* v = mnl_attr_nest_start(nlh, NFTA_TRACE_VERDICT);
  mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(0 /* NF_DROP */));
  mnl_attr_nest_end(nlh, v);
  uint8_t ip[20] = {0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 2, 1, 2, 192, 168, 70, 10};
  uint8_t tcp[20] = {0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02};
  mnl_attr_put(nlh, NFTA_TRACE_NETWORK_HEADER, sizeof(ip), ip);
  mnl_attr_put(nlh, NFTA_TRACE_TRANSPORT_HEADER, sizeof(tcp), tcp);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

void BM_ParseNftrace(benchmark::State& state) {
  auto msg = trace_message(0x1a2b3c4d, 7);
  for (auto _ : state) {
    auto ev = parse_nftrace_message(reinterpret_cast<const nlmsghdr*>(msg.data()), msg.size());
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseNftrace);

// A packet's typical trace: marking chain, NAT rule, jump, drop, plus its
// kfree_skb event; then the journey is completed.
void BM_JourneyPerPacket(benchmark::State& state) {
  JourneyBuilder b("natbpf_1", 1000);
  uint64_t t = 0;
  uint32_t id = 1;
  size_t done = 0;
  auto msg = trace_message(1, 7);
  auto base = parse_nftrace_message(reinterpret_cast<const nlmsghdr*>(msg.data()), msg.size()).value();
  for (auto _ : state) {
    for (const char* chain : {"mark_pre", "prerouting", "forward", "allowed_dnats"}) {
      NftTraceEvent ev = base;
      ev.id = id;
      ev.recv_ns = ++t;
      ev.chain = chain;
      if (std::string(chain) == "mark_pre") ev.table = "natbpf_1";
      b.add(std::move(ev));
    }
    auto r = make_drop(id);
    r.hdr.ts_ns = ++t;
    b.add(std::move(decode_bpf_record(&r, sizeof(r)).value()));
    b.flush(t + 2000, false, [&](Journey&& j) { done += j.steps.size(); });
    id++;
  }
  benchmark::DoNotOptimize(done);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JourneyPerPacket);

}  // namespace
}  // namespace natbpf
