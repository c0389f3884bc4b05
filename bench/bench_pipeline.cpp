// Throughput of the user-space pipeline: ring-buffer record decoding,
// nftables trace parsing and journey building, per event, and the whole
// path of a traced packet (parse, join, explain, render). Results go to
// docs/benchmarks.md (scripts/bench.sh).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <sstream>
#include <vector>

#include "journey/journey.h"
#include "journey/trace_stories.h"
#include "output/trace_render.h"
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

std::vector<char> trace_message(uint32_t id, uint64_t handle, const char* table = "filter",
                                const char* chain = "allowed_dnats", int32_t verdict = 0 /* NF_DROP */) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = 1;
  nfg->version = NFNETLINK_V0;
  mnl_attr_put_strz(nlh, NFTA_TRACE_TABLE, table);
  mnl_attr_put_strz(nlh, NFTA_TRACE_CHAIN, chain);
  mnl_attr_put_u32(nlh, NFTA_TRACE_ID, htonl(id));
  mnl_attr_put_u32(nlh, NFTA_TRACE_TYPE, htonl(NFT_TRACETYPE_RULE));
  mnl_attr_put_u64(nlh, NFTA_TRACE_RULE_HANDLE, htobe64(handle));
  nlattr* v = mnl_attr_nest_start(nlh, NFTA_TRACE_VERDICT);
  mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(static_cast<uint32_t>(verdict)));
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

// The whole path of `natbpf trace` per packet: its four nftables trace
// messages parsed and its kfree_skb record decoded, joined into a journey,
// explained against a ruleset (rule texts, near misses, the fix) and
// rendered as text (written to a null stream).
void BM_TraceStoryPerPacket(benchmark::State& state) {
  static const Ruleset ruleset = Ruleset::parse(R"(table inet filter { # handle 1
	chain forward { # handle 1
		type filter hook forward priority filter; policy accept;
		ct state established,related accept # handle 3
		jump allowed_dnats # handle 4
	}
	chain allowed_dnats { # handle 2
		ip daddr 192.168.70.9 tcp dport 22 accept # handle 6
		tcp dport 22 drop # handle 7
	}
}
)");
  StoryWorld world;
  world.ruleset = [&]() -> const Ruleset& { return ruleset; };
  world.set_has = [](const std::string&, const std::string&, const std::string&, const std::string&) {
    return std::optional<bool>{};
  };
  world.symbol = [](uint64_t) { return std::string("nf_hook_slow+0x9b"); };
  world.drop_reason = [](uint32_t) { return std::string("NETFILTER_DROP"); };
  world.ifname = [](uint32_t) { return std::string("eth0"); };
  world.sysctl = [](const std::string&) { return std::optional<std::string>{}; };
  world.listeners = [](uint8_t, uint16_t) { return std::vector<Listener>{}; };
  TraceStories stories("natbpf_1", 0, make_text_renderer(false), std::move(world));
  std::vector<std::vector<char>> msgs = {
      trace_message(1, 2, "natbpf_1", "mark_pre", -1 /* NFT_CONTINUE */),
      trace_message(1, 3, "filter", "forward", -1), trace_message(1, 4, "filter", "forward", -3 /* NFT_JUMP */),
      trace_message(1, 7)};
  // Each packet its own source port, so each is a new path told in full
  // (a repeat is told in one line): where the port is in each message.
  std::vector<size_t> sport_at;
  for (const auto& m : msgs) {
    static constexpr char kPorts[4] = {'\x9c', '\x40', 0, 22};  // 40000 -> 22, as trace_message writes them
    sport_at.push_back(static_cast<size_t>(std::search(m.begin(), m.end(), kPorts, kPorts + 4) - m.begin()));
  }
  static constexpr uint8_t kSaddr[4] = {10, 2, 1, 2}, kDaddr[4] = {192, 168, 70, 10};
  std::ostringstream sink;
  std::streambuf* cout_buf = std::cout.rdbuf(sink.rdbuf());
  // Packets 10 s apart, each flushed 5 s after it: every journey is
  // complete then (the join waits up to its idle window for late events).
  constexpr uint64_t kApartNs = 10'000'000'000ULL;
  uint64_t t = 0;
  uint32_t id = 1;
  for (auto _ : state) {
    t = id * kApartNs;
    const uint16_t sport = static_cast<uint16_t>(1024 + id % 60000);
    for (size_t i = 0; i < msgs.size(); i++) {
      auto& m = msgs[i];
      m[sport_at[i]] = static_cast<char>(sport >> 8);
      m[sport_at[i] + 1] = static_cast<char>(sport & 0xff);
      auto ev = parse_nftrace_message(reinterpret_cast<const nlmsghdr*>(m.data()), m.size());
      if (!ev) continue;
      ev->id = id;
      ev->recv_ns = ++t;
      stories.add(std::move(*ev));
    }
    // The kfree_skb record of the same packet (as the trace messages' headers say).
    auto r = make_drop(id);
    r.hdr.ts_ns = ++t;
    r.pkt.sport = sport;
    r.pkt.tcp_flags = 0x02;
    r.pkt.tcp_seq = 1;
    r.pkt.ip_id = 1;
    std::memcpy(r.pkt.saddr, kSaddr, sizeof(kSaddr));
    std::memcpy(r.pkt.daddr, kDaddr, sizeof(kDaddr));
    stories.add(std::move(decode_bpf_record(&r, sizeof(r)).value()));
    stories.flush(t + kApartNs / 2, false);
    id++;
    if (sink.tellp() > (1 << 20)) sink.str("");
  }
  std::cout.rdbuf(cout_buf);
  if (stories.counters().packets == 0) state.SkipWithError("no story was told");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TraceStoryPerPacket);

}  // namespace
}  // namespace natbpf
