// docs/json.md against the renderers: every JSON record type is rendered
// from explanations built here (a full one and one where every fact is
// unknown), every key path it emits is collected with its type, and the
// doc's `fields` blocks must list exactly those paths, with those types.
// A fact documented as possibly absent (null) is never "".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "output/clash_render.h"
#include "output/drops_render.h"
#include "output/probe_render.h"
#include "output/trace_render.h"

using namespace natbpf;
using json = nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace {

// ---- the doc's field lists

// Block name ("trace packet", "shape tuple") -> path -> the types allowed.
using DocFields = std::map<std::string, std::map<std::string, std::set<std::string>>>;

const std::set<std::string> kBasicTypes{"string", "number", "bool", "object", "array", "null"};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The ```fields NAME blocks, one "path: type|type" per line. Malformed
// lines and types that are neither basic nor a shape go to problems.
DocFields parse_doc(const std::string& text, std::vector<std::string>& problems) {
  DocFields doc;
  std::istringstream in(text);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside) {
      if (line.rfind("```fields ", 0) == 0) {
        block = trim(line.substr(10));
        inside = true;
        if (doc.count(block)) problems.push_back("block listed twice: " + block);
        doc[block];
      }
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      inside = false;
      continue;
    }
    if (trim(line).empty()) continue;
    auto colon = line.find(": ");
    std::string path = trim(line.substr(0, colon));
    if (colon == std::string::npos || path.empty() || path.find(' ') != std::string::npos) {
      problems.push_back(block + ": not \"path: type\": " + line);
      continue;
    }
    std::set<std::string> types;
    std::istringstream t(line.substr(colon + 2));
    for (std::string type; std::getline(t, type, '|');) types.insert(trim(type));
    if (!doc[block].emplace(path, types).second) problems.push_back(block + ": listed twice: " + path);
  }
  if (inside) problems.push_back("unterminated fields block " + block);
  for (const auto& [name, paths] : doc)
    for (const auto& [path, types] : paths)
      for (const auto& type : types)
        if (!kBasicTypes.count(type) && !doc.count("shape " + type))
          problems.push_back(name + " " + path + ": unknown type " + type);
  return doc;
}

// ---- the records' key paths

struct Emitted {
  std::map<std::string, std::map<std::string, std::set<std::string>>> types;  // block -> path -> types seen
  std::vector<std::string> empty_nullable;  // "" where the doc allows null
};

std::string type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_number()) return "number";
  if (v.is_array()) return "array";
  return "object";
}

std::string child(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

const std::set<std::string>* documented(const DocFields& doc, const std::string& block, const std::string& path) {
  auto b = doc.find(block);
  if (b == doc.end()) return nullptr;
  auto p = b->second.find(path);
  return p == b->second.end() ? nullptr : &p->second;
}

// An object documented as a shape is walked in the shape's block, except for
// the keys the record lists itself (trace's packet.iif, clash's winner.found_by).
void walk(const DocFields& doc, const std::string& block, const std::string& path, const json& v, Emitted& out) {
  const auto* types = documented(doc, block, path);
  std::string type = type_of(v);
  std::string shape;
  if (type == "object" && types)
    for (const auto& t : *types)
      if (!kBasicTypes.count(t)) shape = t;
  out.types[block][path].insert(shape.empty() ? type : shape);
  if (v.is_string() && v.get<std::string>().empty() && types && types->count("null"))
    out.empty_nullable.push_back(block + " " + path);
  if (v.is_array()) {
    for (const auto& e : v) walk(doc, block, path + "[]", e, out);
  } else if (v.is_object()) {
    bool map = documented(doc, block, path + "{}") != nullptr;
    for (const auto& [k, e] : v.items()) {
      if (map) walk(doc, block, path + "{}", e, out);
      else if (!shape.empty() && !documented(doc, block, child(path, k))) walk(doc, "shape " + shape, k, e, out);
      else walk(doc, block, child(path, k), e, out);
    }
  }
}

// Every difference between the records and the doc, in words.
std::vector<std::string> compare(const DocFields& doc, const Emitted& out) {
  std::vector<std::string> problems;
  for (const auto& [block, paths] : out.types)
    for (const auto& [path, types] : paths) {
      const auto* allowed = documented(doc, block, path);
      if (!allowed) {
        problems.push_back("emitted but not documented: " + block + " " + path);
        continue;
      }
      for (const auto& t : types)
        if (!allowed->count(t)) problems.push_back("emitted as " + t + ", not documented so: " + block + " " + path);
    }
  for (const auto& [block, paths] : doc)
    for (const auto& [path, types] : paths)
      if (!out.types.count(block) || !out.types.at(block).count(path))
        problems.push_back("documented but never emitted: " + block + " " + path);
  for (const auto& p : out.empty_nullable) problems.push_back("\"\" where null is documented: " + p);
  return problems;
}

// ---- representative records, from explanations built here

Packet tcp_syn() {
  Packet p;
  p.family = 2;
  p.l4proto = 6;
  p.tcp_flags = 0x02;
  p.saddr = *Addr::parse("10.2.1.2");
  p.daddr = *Addr::parse("10.1.2.3");
  p.sport = 38484;
  p.dport = 1222;
  return p;
}

Tuple tcp(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  return Tuple{*Addr::parse(s), *Addr::parse(d), sp, dp, 6};
}

// Seed 001: dropped in allowed_dnats after the DNAT, every fact known.
Journey full_story() {
  Journey j;
  j.number = 2;
  j.trace_id = 0x1a2b3c4d;
  j.packet = tcp_syn();
  j.iif_name = "enp0";
  j.oif_name = "veth21";
  Step s;
  s.family = 1;
  s.table = "filter";
  s.chain = "allowed_dnats";
  s.hook = "forward";
  s.handle = 7;
  s.rule = "drop";
  s.verdict = NftVerdict::Drop;
  j.steps = {s};
  j.nat = {NatChange{.kind = "dnat", .from = "10.1.2.3:1222", .to = "192.168.70.10:22",
                     .rule = "ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22", .handle = 4,
                     .table_chain = "inet nat prerouting", .evidence = "nftrace headers"}};
  j.ct_id = 12;
  j.ct_state = 8;
  j.ct_status = ips::kDstNat;
  j.bpf.push_back(SkbDropEvent{});
  j.joined_by_trace_id = true;
  j.fate = Fate::Dropped;
  j.drop = DropPoint{.family = "inet", .table = "filter", .chain = "allowed_dnats", .rule = "drop", .handle = 7,
                     .hook = "forward", .cause = "rule drop", .location = "nft_do_chain+0x3e8",
                     .reason = "NETFILTER_DROP", .evidence = {"nftrace"}};
  j.near_misses = {NearMiss{5, "ip daddr . tcp dport @allow_in accept", "did not match"}};
  j.mark_origins = {StepMarkOrigin{"0x8000/0x8000", "-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP",
                                   "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000", "ip nat KUBE-MARK-DROP",
                                   "-A KUBE-XLB-WEB -j KUBE-MARK-DROP", "demo/web:http has no local endpoints"}};
  j.invalid = CtInvalid{"invalid tcp flag combination", "conntrack's INVALID log", false};
  j.listeners = {Listener{"0.0.0.0:1222", 42, "socat"}};
  j.fix = Fix{"nft add element inet filter allow_in { 192.168.70.10 . 22 }", "the set lacks it", "host"};
  j.explanation = "dropped by rule \"drop\"";
  j.repeat_of = 1;
  return j;
}

// Every fact the explanation keeps as "" or leaves unset: no headers, no
// interfaces, a policy step under an unknown hook, a NAT without its rule,
// a drop outside nftables with no location or reason.
Journey sparse_story() {
  Journey j;
  j.number = 1;
  Step s;
  s.family = 1;
  s.table = "filter";
  s.chain = "input";
  s.type = NftTraceType::Policy;
  j.steps = {s};
  j.nat = {NatChange{.kind = "snat", .evidence = "conntrack entry (kfree_skb)"}};
  j.ct_state = 2;
  j.invalid = CtInvalid{"", "the story matched ct state invalid; conntrack logged no reason", true};
  j.mark_origins = {StepMarkOrigin{"0x1", "meta mark 0x00000001 drop", "meta mark set 0x00000001", "inet t c", "", ""}};
  j.listeners = {Listener{"[::]:53", 0, ""}};
  j.fix = Fix{"sysctl -w net.netfilter.nf_conntrack_tcp_loose=1", "loose", ""};
  j.fate = Fate::Dropped;
  j.drop = DropPoint{};
  return j;
}

CtStatsTotals counters(bool all) {
  CtStatsTotals c;
  c.insert_failed = 1;
  c.drop = 1;
  c.has_clash_resolve = c.has_chaintoolong = all;
  return c;
}

// Seed 004 on a fentry kernel: loser, winner, NAT and allocation known.
ClashReport full_clash() {
  ClashFacts f;
  f.ts_ns = 5'000'000;
  f.cpu = 1;
  f.netns = 4026532000U;
  f.netns_name = "seed004";
  CtEntry loser;
  loser.orig = tcp("127.0.0.1", 38486, "127.0.0.1", 8080);
  loser.reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
  loser.status = ips::kSrcNat | ips::kSrcNatDone;
  loser.id = 3;
  loser.timeout_s = 120;
  f.loser = loser;
  WinnerFacts w;
  w.ct.orig = tcp("127.0.0.1", 38484, "127.0.0.1", 8080);
  w.ct.reply = loser.reply;
  w.ct.status = ips::kConfirmed | ips::kSrcNat;
  w.ct.id = 2;
  w.ct.timeout_s = 431999;
  w.tcp_state = 3;
  w.age_s = 12;
  w.found_by = "nf_ct_resolve_clash (fentry)";
  f.winner = w;
  NatFacts n;
  n.source = "nf_nat_setup_info (fentry)";
  n.min_addr = n.max_addr = *Addr::parse("127.0.0.1");
  n.min_port = n.max_port = 40000;
  n.flags = {"random"};
  n.rule_text = "ip daddr 127.0.0.1 tcp dport 8080 snat to 127.0.0.1:40000";
  n.rule_where = "ip nat postrouting handle 3";
  n.rule_backend = "nftables";
  n.rule_chain = "postrouting";
  n.rule_table = "ip nat";
  n.rule_number = 3;
  f.nat = n;
  AllocationFacts a;
  a.before = loser.orig;
  a.chosen = tcp("127.0.0.1", 40000, "127.0.0.1", 8080);
  a.attempts = a.taken = 1;
  a.last_probe = loser.reply;
  f.alloc = a;
  f.range_used = 1;
  f.counters = counters(true);
  ClashReport r = diagnose(f);
  EXPECT_TRUE(r.fix.has_value()) << "the full clash should carry a fix";
  if (r.fix) r.fix->netns = "host";
  return r;
}

// Table full: the packet without an entry; and the facts clash leaves as ""
// or unset (a rule without where or backend, an unnamed finder, no netns).
ClashReport sparse_clash() {
  ClashFacts f;
  f.packet = tcp_syn();
  WinnerFacts w;
  w.ct.orig = tcp("127.0.0.1", 38484, "127.0.0.1", 8080);
  f.winner = w;
  NatFacts n;
  n.kind = "masquerade";
  n.rule_text = "-A POSTROUTING -j MASQUERADE";
  f.nat = n;
  f.alloc = AllocationFacts{};
  f.alloc->observed = false;  // the probes were not hooked: attempts and taken are null
  f.counters = counters(false);
  return diagnose(f);
}

DropsReport drops_report() {
  DropsReport r;
  r.seconds = 5;
  r.counted = true;
  r.drops = r.netfilter_drops = 6;
  r.plan_summary = "attached 2/2 hooks";
  DropCause c;
  c.layer = kLayerNetfilter;
  c.cause = "nftables rule or chain policy drop";
  c.where = "nft_do_chain at output";
  c.netns = 7;
  c.netns_name = "node";
  c.count = 6;
  c.flows = {{"udp -> 127.0.0.1:9999", 6}};
  c.examples = {"udp 127.0.0.1:40000 -> 127.0.0.1:9999"};
  c.evidence = {"kfree_skb NETFILTER_DROP at nft_do_chain"};
  c.rules = {{"inet filter output: rule \"udp dport 9999 counter drop\" (handle 2)", 6}};
  RuleHit set_by{"iptables-nft -t nat KUBE-MARK-DROP rule 1", "-A KUBE-MARK-DROP -j MARK", 6};
  RuleHit via{"iptables-nft -t nat KUBE-SERVICES rule 2", "-A KUBE-SERVICES -j KUBE-MARK-DROP", 6};
  c.mark_origins = {MarkOrigin{"0x8000/0x8000", "iptables-nft -t filter KUBE-FIREWALL rule 1", set_by, {via}}};
  DropCause outside = c;
  outside.layer = kLayerOutside;
  outside.cause = "NO_SOCKET: nothing listens on the port";
  outside.fix = "start the service on port 9999";
  outside.rules.clear();
  outside.mark_origins.clear();
  r.causes = {c, outside};
  r.conntrack = {{"node", counters(false)}};
  return r;
}

ProbeReport probe_report() {
  ProbeReport p;
  p.kernel_release = "6.1.0-26-amd64";
  p.vmlinux_btf = true;
  p.module_btf = {"nf_conntrack"};
  p.capabilities = {{"CAP_BPF", true}};
  p.functions = {FunctionReport{"nf_hook_slow",
                                true,
                                {{"fentry", {true, ""}},
                                 {"fexit", {false, "program load refused (EPERM)"}},
                                 {"kprobe", {true, "via kprobe_multi"}},
                                 {"kretprobe", {true, ""}}}}};
  p.tp_btf_kfree_skb = p.raw_tp_kfree_skb = p.kfree_skb_reason = {true, ""};
  p.nftrace_netlink = p.ctnetlink = p.conntrack_stats = {false, "needs CAP_NET_ADMIN"};
  Variant tp;
  tp.label = "tp_btf";
  p.plan.choices = {HookChoice{"kfree_skb", tp, {}, ""},
                    HookChoice{"nf_ct_resolve_clash", std::nullopt, {"fexit: program load refused (EPERM)"},
                               "kfree_skb + conntrack stats"}};
  return p;
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

// (block, record) for every record type natbpf prints.
std::vector<std::pair<std::string, json>> every_record() {
  std::vector<std::pair<std::string, json>> r;
  for (const Journey& j : {full_story(), sparse_story()}) r.push_back({"trace packet", journey_to_json(j)});
  TraceCounters tc;
  tc.drop_points = {{"in inet filter allowed_dnats by rule \"drop\" (handle 7)", 1}};
  r.push_back({"trace summary", json::parse(make_json_renderer()->summary(tc, "attached 5/7 hooks"))});
  for (const ClashReport& c : {full_clash(), sparse_clash()}) r.push_back({"clash clash", clash_to_json(c)});
  ClashSummary s;
  s.add(full_clash());
  s.counters = counters(true);
  r.push_back({"clash summary", summary_to_json(s, true)});
  r.push_back({"clash summary", summary_to_json(ClashSummary{}, false)});
  for (const json& j : json_lines(drops_to_json_lines(drops_report(), 10)))
    r.push_back({j.at("type") == "summary" ? "drops summary" : "drops drop_cause", j});
  r.push_back({"probe probe", probe_to_json(probe_report())});
  return r;
}

std::string read_doc() {
  std::ifstream in(NATBPF_SOURCE_DIR "/docs/json.md");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> check(const std::string& doc_text) {
  std::vector<std::string> problems;
  DocFields doc = parse_doc(doc_text, problems);
  Emitted out;
  for (const auto& [block, record] : every_record())
    for (const auto& [k, v] : record.items()) walk(doc, block, k, v, out);
  for (const auto& p : compare(doc, out)) problems.push_back(p);
  return problems;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

}  // namespace

TEST(JsonDoc, EveryEmittedFieldIsDocumentedAndEveryDocumentedFieldEmitted) {
  std::string doc = read_doc();
  ASSERT_THAT(doc, HasSubstr("```fields trace packet")) << "docs/json.md not found or without field lists";
  EXPECT_THAT(check(doc), IsEmpty());
}

// The check can fail: a field dropped from the doc, one the renderers do not
// emit, a type the doc does not allow.
TEST(JsonDoc, CheckFindsEachKindOfMismatch) {
  std::string doc = read_doc();
  EXPECT_THAT(check(replaced(doc, "steps[].hook: string|null\n", "")),
              Contains("emitted but not documented: trace packet steps[].hook"));
  EXPECT_THAT(check(replaced(doc, "netns_inode: number|null\n", "netns_inode: number|null\nnetns_id: number\n")),
              Contains("documented but never emitted: clash clash netns_id"));
  EXPECT_THAT(check(replaced(doc, "packet.iif: string|null", "packet.iif: string")),
              Contains("emitted as null, not documented so: trace packet packet.iif"));
  EXPECT_THAT(check(replaced(doc, "tcp_flags: string|null", "tcp_flags: string|null\nttl: number")),
              Contains("documented but never emitted: shape packet ttl"));
}

// The sparse explanations keep unknown texts as "": none reaches JSON.
TEST(JsonDoc, AbsentFactsAreNullNeverEmptyStrings) {
  std::vector<std::string> problems;
  DocFields doc = parse_doc(read_doc(), problems);
  Emitted out;
  for (const auto& [block, record] : every_record())
    for (const auto& [k, v] : record.items()) walk(doc, block, k, v, out);
  EXPECT_THAT(out.empty_nullable, IsEmpty());
  // And the check sees one: an iif kept as "" by the renderer would be caught.
  json story = journey_to_json(sparse_story());
  story["packet"]["iif"] = "";
  Emitted bad;
  for (const auto& [k, v] : story.items()) walk(doc, "trace packet", k, v, bad);
  EXPECT_THAT(bad.empty_nullable, Contains("trace packet packet.iif"));
  // The sparse records do have the nulls the doc promises.
  EXPECT_TRUE(story["drop"]["reason"].is_null());
  EXPECT_TRUE(story["steps"][0]["hook"].is_null());
  EXPECT_TRUE(story["oif"].is_null());
  EXPECT_TRUE(story["repeat_of"].is_null());
  json clash = clash_to_json(sparse_clash());
  EXPECT_TRUE(clash["netns"].is_null());
  EXPECT_TRUE(clash["nat"]["rule"]["where"].is_null());
  EXPECT_TRUE(clash["winner"]["found_by"].is_null());
  EXPECT_TRUE(clash["winner"]["id"].is_null());
}
