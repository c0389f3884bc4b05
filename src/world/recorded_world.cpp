#include "world/recorded_world.h"

#include "util/text.h"
#include "world/codec.h"

namespace natbpf {
namespace {

using json = nlohmann::json;

json tuple_key(uint32_t netns, const Tuple& t, TupleDir dir) {
  return {{"netns", netns}, {"tuple", t}, {"dir", dir == TupleDir::Reply ? "reply" : "orig"}};
}

}  // namespace

template <typename T>
T RecordingWorld::keep(const char* question, const json& key, T answer) {
  writer_.answer(question, key, json(answer));
  return answer;
}

std::string RecordingWorld::symbol(uint64_t addr) {
  auto it = symbols_.find(addr);
  if (it != symbols_.end()) return it->second;
  return symbols_[addr] = keep("symbol", json(addr), live_.symbol(addr));
}

std::string RecordingWorld::drop_reason(uint32_t reason) {
  auto it = reasons_.find(reason);
  if (it != reasons_.end()) return it->second;
  return reasons_[reason] = keep("drop_reason", json(reason), live_.drop_reason(reason));
}

uint64_t RecordingWorld::realtime_ns() { return keep("realtime_ns", nullptr, live_.realtime_ns()); }
SourceCounts RecordingWorld::source_counts() { return keep("source_counts", nullptr, live_.source_counts()); }
std::optional<std::vector<CtCpuStats>> RecordingWorld::ct_stats() {
  return keep("ct_stats", nullptr, live_.ct_stats());
}
std::optional<CtNetlinkEntry> RecordingWorld::ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) {
  return keep("ct_find", tuple_key(netns, tuple, dir), live_.ct_find(netns, tuple, dir));
}
RangeUsage RecordingWorld::ct_range_usage(uint32_t netns, const RangeQuery& q) {
  return keep("ct_range_usage", json{{"netns", netns}, {"query", q}}, live_.ct_range_usage(netns, q));
}
TableSize RecordingWorld::table_size(uint32_t netns) { return keep("table_size", json(netns), live_.table_size(netns)); }
std::vector<NatRule> RecordingWorld::nat_rules(uint32_t netns) {
  return keep("nat_rules", json(netns), live_.nat_rules(netns));
}
std::vector<NamedNetns> RecordingWorld::namespaces() { return keep("namespaces", nullptr, live_.namespaces()); }
NetnsSnapshot RecordingWorld::snapshot(const NamedNetns& ns) {
  return keep("snapshot", json(ns.inode), live_.snapshot(ns));
}

bool RecordedWorld::add_answer(const json& record) {
  auto q = record.find("q");
  if (q == record.end() || !q->is_string() || !record.contains("value")) return false;
  std::string question = q->get<std::string>();
  json key = record.value("key", json());
  const json& value = record.at("value");
  try {
    if (question == "symbol") symbols_[key.get<uint64_t>()] = value.get<std::string>();
    else if (question == "drop_reason") reasons_[key.get<uint32_t>()] = value.get<std::string>();
    else answers_[question].push_back({{"key", key}, {"value", value}});
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

template <typename T>
T RecordedWorld::next(const char* question, const json& key, T fallback) {
  auto& queue = answers_[question];
  if (queue.empty()) {
    mismatches_++;
    return fallback;
  }
  json answer = std::move(queue.front());
  queue.pop_front();
  if (answer.at("key") != key) {
    mismatches_++;
    return fallback;
  }
  try {
    return answer.at("value").get<T>();
  } catch (const json::exception&) {
    mismatches_++;
    return fallback;
  }
}

std::string RecordedWorld::symbol(uint64_t addr) {
  auto it = symbols_.find(addr);
  return it != symbols_.end() ? it->second : hex_address(addr);
}

std::string RecordedWorld::drop_reason(uint32_t reason) {
  auto it = reasons_.find(reason);
  return it != reasons_.end() ? it->second : "reason " + std::to_string(reason);
}

uint64_t RecordedWorld::realtime_ns() { return next<uint64_t>("realtime_ns", nullptr, 0); }
SourceCounts RecordedWorld::source_counts() { return next<SourceCounts>("source_counts", nullptr, {}); }
std::optional<std::vector<CtCpuStats>> RecordedWorld::ct_stats() {
  return next<std::optional<std::vector<CtCpuStats>>>("ct_stats", nullptr, std::nullopt);
}
std::optional<CtNetlinkEntry> RecordedWorld::ct_find(uint32_t netns, const Tuple& tuple, TupleDir dir) {
  return next<std::optional<CtNetlinkEntry>>("ct_find", tuple_key(netns, tuple, dir), std::nullopt);
}
RangeUsage RecordedWorld::ct_range_usage(uint32_t netns, const RangeQuery& q) {
  return next<RangeUsage>("ct_range_usage", json{{"netns", netns}, {"query", q}}, {});
}
TableSize RecordedWorld::table_size(uint32_t netns) { return next<TableSize>("table_size", json(netns), {}); }
std::vector<NatRule> RecordedWorld::nat_rules(uint32_t netns) {
  return next<std::vector<NatRule>>("nat_rules", json(netns), {});
}
std::vector<NamedNetns> RecordedWorld::namespaces() { return next<std::vector<NamedNetns>>("namespaces", nullptr, {}); }
NetnsSnapshot RecordedWorld::snapshot(const NamedNetns& ns) {
  return next<NetnsSnapshot>("snapshot", json(ns.inode), {});
}

}  // namespace natbpf
