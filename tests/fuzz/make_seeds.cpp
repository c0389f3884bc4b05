// Writes the seed corpora of tests/fuzz/corpus/<target>/ from the unit
// tests' message builders and natbpf's own recording writer, so a seed is
// what natbpf really reads. Run by hand when a format changes:
//   build-fuzz/natbpf_fuzz_seeds tests/fuzz/corpus
// The text seeds (rulesets, save output, log lines) are files kept as they are.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "nftrace_builders.h"
#include "world/recording.h"

extern "C" {
#include "natbpf_events.h"
}

namespace natbpf {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void save(const fs::path& dir, const std::string& name, const Bytes& b) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

Bytes bytes_of(const nlmsghdr* nlh) {
  auto* p = reinterpret_cast<const uint8_t*>(nlh);
  return Bytes(p, p + nlh->nlmsg_len);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes nftrace_rule(uint32_t id, int32_t verdict, const char* jump = nullptr) {
  TraceMsg m;
  m.basics(NFT_TRACETYPE_RULE, id, "nat", "prerouting").be64(NFTA_TRACE_RULE_HANDLE, 7).verdict(verdict, jump);
  m.be32(NFTA_TRACE_IIF, 2).be16(NFTA_TRACE_IIFTYPE, 1).be32(NFTA_TRACE_MARK, 0x8000);
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv4_header(6, "10.0.0.1", "10.0.0.2", 60, 4242));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, tcp_header(40000, 52000, 1000, 0x02));
  m.be32(kCtId, 42).u8(kCtDirection, 0).be32(kCtStatus, 0x188).be32(kCtState, 8);
  return bytes_of(m.nlh());
}

Bytes nftrace_policy(uint32_t id) {
  TraceMsg m(NFPROTO_IPV6);
  m.basics(NFT_TRACETYPE_POLICY, id, "filter", "forward").be32(NFTA_TRACE_POLICY, NF_DROP);
  m.raw(NFTA_TRACE_NETWORK_HEADER, ipv6_header(17, "fd00::1", "fd00::2", 8));
  m.raw(NFTA_TRACE_TRANSPORT_HEADER, udp_header(5353, 53, 8));
  return bytes_of(m.nlh());
}

Bytes nflog(const char* prefix, const Bytes& packet) { return nflog_message(prefix, packet); }

Bytes ipv4_tcp() { return concat({ipv4_header(6, "10.0.0.1", "10.0.0.2", 40, 7), tcp_header(1, 52000, 9, 0x02)}); }

// A conntrack entry as ctnetlink sends it (the shape of test_clash's).
Bytes ct_entry(uint8_t family, bool v6) {
  alignas(nlmsghdr) char buf[4096] = {};
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  auto put_tuple = [&](uint16_t type, uint16_t sp, uint16_t dp) {
    nlattr* t = mnl_attr_nest_start(nlh, type);
    nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    if (v6) {
      uint8_t a[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
      mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, a);
      a[15] = 2;
      mnl_attr_put(nlh, CTA_IP_V6_DST, 16, a);
    } else {
      mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, inet_addr("10.0.0.1"));
      mnl_attr_put_u32(nlh, CTA_IP_V4_DST, inet_addr("10.0.0.2"));
    }
    mnl_attr_nest_end(nlh, ip);
    nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, 6);
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sp));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dp));
    mnl_attr_nest_end(nlh, p);
    mnl_attr_nest_end(nlh, t);
  };
  put_tuple(CTA_TUPLE_ORIG, 38484, 8080);
  put_tuple(CTA_TUPLE_REPLY, 8080, 40000);
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(0x1ba));
  mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(431999));
  mnl_attr_put_u32(nlh, CTA_ID, htonl(42));
  mnl_attr_put_u32(nlh, CTA_MARK, htonl(1));
  nlattr* pi = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
  nlattr* pt = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
  mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3);
  mnl_attr_nest_end(nlh, pt);
  mnl_attr_nest_end(nlh, pi);
  nlattr* ts = mnl_attr_nest_start(nlh, CTA_TIMESTAMP);
  mnl_attr_put_u64(nlh, CTA_TIMESTAMP_START, htobe64(1700000000000000000ULL));
  mnl_attr_nest_end(nlh, ts);
  return bytes_of(nlh);
}

Bytes ct_stats(uint16_t cpu) {
  alignas(nlmsghdr) char buf[4096] = {};
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->res_id = htons(cpu);
  for (uint16_t a = CTA_STATS_FOUND; a <= CTA_STATS_MAX; a++) mnl_attr_put_u32(nlh, a, htonl(a * 10u));
  return bytes_of(nlh);
}

template <typename Raw>
Bytes record(uint16_t kind, void (*fill)(Raw&) = nullptr) {
  Raw r{};
  r.hdr.kind = kind;
  r.hdr.version = NB_EVENT_VERSION;
  r.hdr.size = sizeof(Raw);
  r.hdr.origin = NB_ORIGIN_TP_BTF;
  r.hdr.ts_ns = 1000000;
  if (fill) fill(r);
  auto* p = reinterpret_cast<const uint8_t*>(&r);
  return Bytes(p, p + sizeof(r));
}

void v4_pkt(nb_pkt& p) {
  p.family = 2;
  p.l4proto = 17;
  p.sport = 40000;
  p.dport = 53;
  p.saddr[0] = 10, p.saddr[3] = 1;
  p.daddr[0] = 10, p.daddr[3] = 2;
  p.ifindex = 2;
  p.len = 60;
}

void v4_ct(nb_ct& c) {
  c.ptr = 0xffff888001234560ULL;
  c.orig.l3num = 2, c.orig.protonum = 17, c.orig.sport = 40000, c.orig.dport = 53;
  c.orig.src[0] = 10, c.orig.src[3] = 1, c.orig.dst[0] = 10, c.orig.dst[3] = 2;
  c.reply = c.orig;
  std::swap(c.reply.sport, c.reply.dport);
  c.status = 0x188;
}

Bytes drop_counts(uint16_t rows) {
  nb_drop_counts h{};
  h.hdr = {NB_EV_DROP_COUNTS, NB_EVENT_VERSION, uint16_t(sizeof(h) + rows * sizeof(nb_drop_count_row)),
           NB_ORIGIN_TP_BTF, 0, 2000000};
  h.seq = 1, h.rows = rows, h.last = 1;
  auto* p = reinterpret_cast<const uint8_t*>(&h);
  Bytes out(p, p + sizeof(h));
  for (uint16_t i = 0; i < rows; i++) {
    nb_drop_count_row row{};
    row.key.location = 0xffffffff81000000ULL + i;
    row.key.reason = 2, row.key.family = 2, row.key.l4proto = 17, row.key.hook = 1, row.key.flags = 3;
    row.count = 100 + i;
    auto* q = reinterpret_cast<const uint8_t*>(&row);
    out.insert(out.end(), q, q + sizeof(row));
  }
  return out;
}

std::vector<std::pair<std::string, Bytes>> bpf_records() {
  return {
      {"hook_drop", record<nb_hook_drop>(NB_EV_HOOK_DROP, [](nb_hook_drop& r) { r.skb = 1, r.hook = 1, r.pf = 2; })},
      {"skb_drop", record<nb_skb_drop>(NB_EV_SKB_DROP, [](nb_skb_drop& r) {
         r.skb = 1, r.reason = 2, r.has_reason = 1, r.has_ct = 1;
         v4_pkt(r.pkt), v4_ct(r.ct);
       })},
      {"ct_confirm", record<nb_ct_confirm>(NB_EV_CT_CONFIRM, [](nb_ct_confirm& r) {
         v4_pkt(r.pkt), v4_ct(r.loser), v4_ct(r.winner);
         r.ret = 0, r.flags = 1;
       })},
      {"ct_clash", record<nb_ct_clash>(NB_EV_CT_CLASH, [](nb_ct_clash& r) { v4_ct(r.loser), v4_ct(r.winner), r.ret = 0; })},
      {"nat_setup", record<nb_nat_setup>(NB_EV_NAT_SETUP, [](nb_nat_setup& r) {
         v4_ct(r.ct);
         r.before = r.ct.orig, r.last_probe = r.ct.reply;
         r.range.flags = 3, r.range.min_port = htons(40000), r.range.max_port = htons(40010);
         r.range.min_addr[0] = r.range.max_addr[0] = 192;
         r.attempts = 3, r.taken = 2, r.ret = 1;
       })},
      {"nft_trace_id", record<nb_nft_trace_id>(NB_EV_NFT_TRACE_ID, [](nb_nft_trace_id& r) { r.skb = 1, r.skbid = 7; })},
      {"drop_example", record<nb_drop_example>(NB_EV_DROP_EXAMPLE, [](nb_drop_example& r) {
         r.key.reason = 2, r.key.family = 2, r.key.l4proto = 17, r.key.dport = 53, r.key.hook = 1;
         r.skb = 1, r.has_ct = 1;
         v4_pkt(r.pkt), v4_ct(r.ct);
       })},
      {"drop_counts", drop_counts(3)},
  };
}

// A recording written by natbpf's own writer, read back as the seed's bytes.
Bytes recording(const nlohmann::json& header, const std::vector<nlohmann::json>& records) {
  std::string path = fs::temp_directory_path() / "natbpf-seed.jsonl";
  {
    auto w = RecordingWriter::create(path, header);
    if (!w) return {};
    for (const auto& r : records) w->write(r);
  }
  std::ifstream in(path, std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  return b;
}

nlohmann::json raw(const char* kind, const Bytes& b, uint64_t ns) {
  return {{"t", kind}, {"ns", ns}, {"hex", to_hex(b)}};
}

nlohmann::json plan() {
  return {{"t", "plan"}, {"summary", "attached 5/7 hooks"}, {"hooks", {"kfree_skb", "nf_ct_resolve_clash"}},
          {"own_netns", 4026531840u}};
}

void recordings(const fs::path& dir, const std::string& nft_ruleset, const std::string& iptables_save) {
  auto bpf = bpf_records();
  std::vector<nlohmann::json> trace{
      {{"t", "setup"}, {"own_table", "natbpf_1"}, {"legacy_comment", "natbpf_1"}, {"plan", "attached 5/7 hooks"},
       {"drop_reasons", {{"2", "NOT_SPECIFIED"}, {"5", "NETFILTER_DROP"}}}},
      {{"t", "ruleset"}, {"nft", nft_ruleset}, {"iptables_nft", {{"ip", iptables_save}}}, {"iptables_legacy", {{"ip", iptables_save}}}},
      {{"t", "ifname"}, {"index", 2}, {"name", "eth0"}},
      {{"t", "symbol"}, {"addr", 0xffffffff81000000ULL}, {"name", "nf_hook_slow+0x9c"}},
      raw("nftrace", concat({nftrace_rule(7, NFT_JUMP, "allowed_dnats"), nftrace_rule(7, NF_ACCEPT)}), 10),
      raw("nftrace", nftrace_policy(8), 11),
      raw("nflog", nflog("TRACE: nat:KUBE-NODEPORTS:rule:1 ", ipv4_tcp()), 12),
      raw("bpf", bpf[1].second, 13),
      {{"t", "flush"}, {"ns", 20}, {"all", false}},
      {{"t", "set"}, {"family", "ip"}, {"table", "nat"}, {"set", "allowed"}, {"key", "10.0.0.2"}, {"has", true}},
      {{"t", "flush"}, {"ns", 30}, {"all", true}},
      {{"t", "end"}, {"lost", {{"nftrace", 1}, {"bpf", 0}}}, {"parse_errors", 0}}};
  save(dir, "trace", recording({{"command", "trace"}, {"kernel", "6.1.0"}, {"match", "tcp dport 52000"}, {"count", 0}}, trace));

  std::vector<nlohmann::json> clash{plan(), {{"t", "start"}, {"ns", 1}}};
  for (const char* k : {"ct_confirm", "ct_clash", "nat_setup", "skb_drop"})
    for (const auto& [name, b] : bpf)
      if (name == k) clash.push_back(raw("bpf", b, 2));
  clash.push_back({{"t", "answer"}, {"q", "ct_find"}, {"key", {{"netns", 0}}}, {"value", nullptr}});
  clash.push_back({{"t", "tick"}, {"ns", 3}, {"final", true}});
  clash.push_back({{"t", "end"}});
  save(dir, "clash", recording(clash_record_header(0, 1000000000), clash));

  std::vector<nlohmann::json> drops{plan(), {{"t", "drops"}, {"only_netns", 0}}, {{"t", "start"}, {"ns", 1}}};
  for (const char* k : {"drop_example", "hook_drop", "skb_drop", "drop_counts"})
    for (const auto& [name, b] : bpf)
      if (name == k) drops.push_back(raw("bpf", b, 2));
  drops.push_back(drops_report_record("report", 1.0, 0));
  drops.push_back(drops_report_record("end", 2.0, 1));
  save(dir, "drops", recording({{"command", "drops"}}, drops));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace
}  // namespace natbpf

int main(int argc, char** argv) {
  using namespace natbpf;
  if (argc != 2) {
    std::cerr << "usage: natbpf_fuzz_seeds CORPUS_DIR\n";
    return 2;
  }
  fs::path out = argv[1];
  save(out / "fuzz_nftrace", "rule_jump_accept", concat({nftrace_rule(7, NFT_JUMP, "allowed_dnats"), nftrace_rule(7, NF_ACCEPT)}));
  save(out / "fuzz_nftrace", "policy_drop_ipv6", nftrace_policy(8));
  save(out / "fuzz_nftrace", "rule_drop", nftrace_rule(9, NF_DROP));
  save(out / "fuzz_nflog", "trace_rule", nflog("TRACE: nat:KUBE-NODEPORTS:rule:1 ", ipv4_tcp()));
  save(out / "fuzz_nflog", "trace_policy", nflog("TRACE: filter:FORWARD:policy:2 ", ipv4_tcp()));
  save(out / "fuzz_nflog", "trace_own_and_return",
       concat({nflog("TRACE: raw:PREROUTING:rule:1 ", ipv4_tcp()), nflog("TRACE: nat:PREROUTING:return:3 ", ipv4_tcp())}));
  save(out / "fuzz_ctnetlink", "entry_v4", ct_entry(2, false));
  save(out / "fuzz_ctnetlink", "dump_v4_v6", concat({ct_entry(2, false), ct_entry(10, true)}));
  save(out / "fuzz_ctnetlink", "stats_2cpu", concat({ct_stats(0), ct_stats(1)}));
  for (const auto& [name, b] : bpf_records()) save(out / "fuzz_bpf_record", name, b);
  recordings(out / "fuzz_recording", read_text(out / "fuzz_nft_ruleset" / "k8s_nat"),
             read_text(out / "fuzz_iptables_save" / "kube_nat_counters"));
  return 0;
}
