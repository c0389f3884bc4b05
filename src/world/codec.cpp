#include "world/codec.h"

namespace natbpf {
namespace {

using json = nlohmann::json;

// std::optional<T> as the value or null.
template <typename T>
json opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Present, as null when absent: the writer always writes every key.
template <typename T>
void get_opt(const json& j, const char* key, std::optional<T>& v) {
  const json& value = j.at(key);
  if (!value.is_null()) v = value.get<T>();
}

}  // namespace

void to_json(json& j, const Addr& a) { j = a.family ? json(a.str()) : json(nullptr); }

void from_json(const json& j, Addr& a) {
  a = Addr{};
  if (j.is_null()) return;
  auto parsed = Addr::parse(j.get<std::string>());
  if (!parsed) throw json::other_error::create(501, "not an address: " + j.get<std::string>(), &j);
  a = *parsed;
}

void to_json(json& j, const Tuple& t) {
  j = {{"src", t.src}, {"dst", t.dst}, {"sport", t.sport}, {"dport", t.dport}, {"proto", t.proto}};
}

void from_json(const json& j, Tuple& t) {
  j.at("src").get_to(t.src);
  j.at("dst").get_to(t.dst);
  j.at("sport").get_to(t.sport);
  j.at("dport").get_to(t.dport);
  j.at("proto").get_to(t.proto);
}

void to_json(json& j, const CtEntry& c) {
  j = {{"ptr", c.ptr},       {"id", opt(c.id)},       {"orig", c.orig},   {"reply", c.reply},
       {"status", c.status}, {"mark", c.mark},        {"netns", c.netns}, {"timeout_s", opt(c.timeout_s)}};
}

void from_json(const json& j, CtEntry& c) {
  j.at("ptr").get_to(c.ptr);
  get_opt(j, "id", c.id);
  j.at("orig").get_to(c.orig);
  j.at("reply").get_to(c.reply);
  j.at("status").get_to(c.status);
  j.at("mark").get_to(c.mark);
  j.at("netns").get_to(c.netns);
  get_opt(j, "timeout_s", c.timeout_s);
}

void to_json(json& j, const CtNetlinkEntry& e) {
  j = {{"ct", e.ct}, {"tcp_state", opt(e.tcp_state)}, {"start_ns", opt(e.start_ns)}};
}

void from_json(const json& j, CtNetlinkEntry& e) {
  j.at("ct").get_to(e.ct);
  get_opt(j, "tcp_state", e.tcp_state);
  get_opt(j, "start_ns", e.start_ns);
}

void to_json(json& j, const CtCpuStats& s) {
  j = {{"cpu", s.cpu},
       {"found", opt(s.found)},
       {"invalid", opt(s.invalid)},
       {"insert", opt(s.insert)},
       {"insert_failed", opt(s.insert_failed)},
       {"drop", opt(s.drop)},
       {"early_drop", opt(s.early_drop)},
       {"error", opt(s.error)},
       {"search_restart", opt(s.search_restart)},
       {"clash_resolve", opt(s.clash_resolve)},
       {"chaintoolong", opt(s.chaintoolong)}};
}

void from_json(const json& j, CtCpuStats& s) {
  j.at("cpu").get_to(s.cpu);
  get_opt(j, "found", s.found);
  get_opt(j, "invalid", s.invalid);
  get_opt(j, "insert", s.insert);
  get_opt(j, "insert_failed", s.insert_failed);
  get_opt(j, "drop", s.drop);
  get_opt(j, "early_drop", s.early_drop);
  get_opt(j, "error", s.error);
  get_opt(j, "search_restart", s.search_restart);
  get_opt(j, "clash_resolve", s.clash_resolve);
  get_opt(j, "chaintoolong", s.chaintoolong);
}

void to_json(json& j, const CtStatsTotals& t) {
  j = {{"found", t.found},
       {"invalid", t.invalid},
       {"insert_failed", t.insert_failed},
       {"drop", t.drop},
       {"early_drop", t.early_drop},
       {"error", t.error},
       {"clash_resolve", t.has_clash_resolve ? json(t.clash_resolve) : json(nullptr)},
       {"chaintoolong", t.has_chaintoolong ? json(t.chaintoolong) : json(nullptr)}};
}

void from_json(const json& j, CtStatsTotals& t) {
  j.at("found").get_to(t.found);
  j.at("invalid").get_to(t.invalid);
  j.at("insert_failed").get_to(t.insert_failed);
  j.at("drop").get_to(t.drop);
  j.at("early_drop").get_to(t.early_drop);
  j.at("error").get_to(t.error);
  std::optional<uint64_t> resolve, toolong;
  get_opt(j, "clash_resolve", resolve);
  get_opt(j, "chaintoolong", toolong);
  t.has_clash_resolve = resolve.has_value();
  t.clash_resolve = resolve.value_or(0);
  t.has_chaintoolong = toolong.has_value();
  t.chaintoolong = toolong.value_or(0);
}

void to_json(json& j, const Prefix& p) { j = {{"addr", p.addr}, {"len", p.len}}; }

void from_json(const json& j, Prefix& p) {
  j.at("addr").get_to(p.addr);
  j.at("len").get_to(p.len);
}

void to_json(json& j, const NatRule& r) {
  j = {{"backend", r.backend},     {"family", r.family},        {"kind", r.kind},
       {"text", r.text},           {"where", r.where},          {"proto", opt(r.proto)},
       {"saddr", opt(r.saddr)},    {"daddr", opt(r.daddr)},     {"dport", opt(r.dport)},
       {"min_addr", opt(r.min_addr)}, {"max_addr", opt(r.max_addr)}, {"min_port", opt(r.min_port)},
       {"max_port", opt(r.max_port)}, {"random", r.random},     {"random_fully", r.random_fully},
       {"persistent", r.persistent}, {"chain", r.chain},       {"table", r.table},
       {"number", r.number}};
}

void from_json(const json& j, NatRule& r) {
  j.at("backend").get_to(r.backend);
  j.at("family").get_to(r.family);
  j.at("kind").get_to(r.kind);
  j.at("text").get_to(r.text);
  j.at("where").get_to(r.where);
  get_opt(j, "proto", r.proto);
  get_opt(j, "saddr", r.saddr);
  get_opt(j, "daddr", r.daddr);
  get_opt(j, "dport", r.dport);
  get_opt(j, "min_addr", r.min_addr);
  get_opt(j, "max_addr", r.max_addr);
  get_opt(j, "min_port", r.min_port);
  get_opt(j, "max_port", r.max_port);
  j.at("random").get_to(r.random);
  j.at("random_fully").get_to(r.random_fully);
  j.at("persistent").get_to(r.persistent);
  // Recordings before the rule's place was kept have none: no fix from them.
  r.chain = j.value("chain", "");
  r.table = j.value("table", "");
  r.number = j.value("number", uint64_t{0});
}

void to_json(json& j, const TableSize& s) {
  j = {{"count", opt(s.count)}, {"max", opt(s.max)}, {"buckets", opt(s.buckets)}};
}

void from_json(const json& j, TableSize& s) {
  get_opt(j, "count", s.count);
  get_opt(j, "max", s.max);
  if (j.contains("buckets")) get_opt(j, "buckets", s.buckets);
}

void to_json(json& j, const NamedNetns& n) { j = {{"name", n.name}, {"path", n.path}, {"inode", n.inode}}; }

void from_json(const json& j, NamedNetns& n) {
  j.at("name").get_to(n.name);
  j.at("path").get_to(n.path);
  j.at("inode").get_to(n.inode);
}

void to_json(json& j, const DropRuleCounter& r) { j = {{"text", r.text}, {"packets", r.packets}}; }

void from_json(const json& j, DropRuleCounter& r) {
  j.at("text").get_to(r.text);
  j.at("packets").get_to(r.packets);
}

void to_json(json& j, const IptRuleCounter& r) {
  j = {{"backend", r.backend}, {"family", r.family}, {"table", r.table},     {"chain", r.chain},
       {"number", r.number},   {"text", r.text},     {"packets", r.packets}};
}

void from_json(const json& j, IptRuleCounter& r) {
  j.at("backend").get_to(r.backend);
  j.at("family").get_to(r.family);
  j.at("table").get_to(r.table);
  j.at("chain").get_to(r.chain);
  j.at("number").get_to(r.number);
  j.at("text").get_to(r.text);
  j.at("packets").get_to(r.packets);
}

void to_json(json& j, const NetnsSnapshot& s) {
  j = {{"drop_rules", s.drop_rules}, {"mark_rules", s.mark_rules}, {"ipt_rules", s.ipt_rules}, {"ct", opt(s.ct)}};
}

void from_json(const json& j, NetnsSnapshot& s) {
  j.at("drop_rules").get_to(s.drop_rules);
  j.at("mark_rules").get_to(s.mark_rules);
  j.at("ipt_rules").get_to(s.ipt_rules);
  get_opt(j, "ct", s.ct);
}

void to_json(json& j, const SourceCounts& c) {
  j = {{"lost", c.lost}, {"malformed", c.malformed}, {"rejected", c.rejected}};
}

void from_json(const json& j, SourceCounts& c) {
  j.at("lost").get_to(c.lost);
  j.at("malformed").get_to(c.malformed);
  c.rejected = j.value("rejected", uint64_t{0});  // recordings before the kernel filter
}

}  // namespace natbpf
