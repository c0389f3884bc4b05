// JSON forms of the world's answers, as a recording keeps them. Reading
// throws nlohmann::json::exception on a value of the wrong shape; the
// recorded world turns that into a counted bad record.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "world/world.h"

// std::optional<T> as the value or null (nlohmann 3.11 has no such mapping).
namespace nlohmann {
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& v) {
    if (v) j = *v;
    else j = nullptr;
  }
  static void from_json(const json& j, std::optional<T>& v) {
    if (j.is_null()) v.reset();
    else v = j.get<T>();
  }
};
}  // namespace nlohmann

namespace natbpf {

void to_json(nlohmann::json& j, const Addr& a);
void from_json(const nlohmann::json& j, Addr& a);
void to_json(nlohmann::json& j, const Tuple& t);
void from_json(const nlohmann::json& j, Tuple& t);
void to_json(nlohmann::json& j, const CtEntry& c);
void from_json(const nlohmann::json& j, CtEntry& c);
void to_json(nlohmann::json& j, const CtNetlinkEntry& e);
void from_json(const nlohmann::json& j, CtNetlinkEntry& e);
void to_json(nlohmann::json& j, const CtCpuStats& s);
void from_json(const nlohmann::json& j, CtCpuStats& s);
void to_json(nlohmann::json& j, const CtStatsTotals& t);
void from_json(const nlohmann::json& j, CtStatsTotals& t);
void to_json(nlohmann::json& j, const Prefix& p);
void from_json(const nlohmann::json& j, Prefix& p);
void to_json(nlohmann::json& j, const NatRule& r);
void from_json(const nlohmann::json& j, NatRule& r);
void to_json(nlohmann::json& j, const TableSize& s);
void from_json(const nlohmann::json& j, TableSize& s);
void to_json(nlohmann::json& j, const NamedNetns& n);
void from_json(const nlohmann::json& j, NamedNetns& n);
void to_json(nlohmann::json& j, const DropRuleCounter& r);
void from_json(const nlohmann::json& j, DropRuleCounter& r);
void to_json(nlohmann::json& j, const IptRuleCounter& r);
void from_json(const nlohmann::json& j, IptRuleCounter& r);
void to_json(nlohmann::json& j, const NetnsSnapshot& s);
void from_json(const nlohmann::json& j, NetnsSnapshot& s);
void to_json(nlohmann::json& j, const SourceCounts& c);
void from_json(const nlohmann::json& j, SourceCounts& c);
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RangeQuery, proto, dst, dport, min_addr, max_addr, min_port, max_port)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RangeUsage, used, how)

}  // namespace natbpf
