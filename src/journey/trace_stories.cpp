#include "journey/trace_stories.h"

#include <iostream>

#include "explain/trace_explain.h"
#include "sources/legacy_trace.h"

namespace natbpf {
// Same flow, TCP flags, decisions and end: a retransmission (or the next
// packet of a flow taking the same path), shown in one line. A TCP
// retransmission also repeats its sequence and acknowledgment numbers: the
// last ACK of a close is not the handshake ACK again.
std::string path_signature(const Journey& j) {
  const Packet& p = j.packet;
  std::string s = std::to_string(p.l4proto) + "/" + std::to_string(p.tcp_flags) + "/" + p.saddr.str() + ":" +
                  std::to_string(p.sport) + ">" + p.daddr.str() + ":" + std::to_string(p.dport) + "|";
  if (p.l4proto == 6) s += std::to_string(p.tcp_seq) + "/" + std::to_string(p.tcp_ack) + "|";
  s.reserve(s.size() + 64 * j.steps.size() + 128);  // built for every story: appended, not concatenated
  for (const auto& st : j.steps) {
    s += st.table;
    s += '/';
    s += st.chain;
    s += '/';
    s += st.handle ? std::to_string(*st.handle) : "-";
    s += '/';
    s += st.verdict_str();
    s += ';';
  }
  s += j.drop ? drop_point_str(*j.drop) : std::to_string(static_cast<int>(j.fate));
  return s;
}


Ruleset RulesetTexts::build() const {
  Ruleset r = Ruleset::parse(nft);
  for (const auto& [family, save] : iptables_nft) r.add_iptables_syntax(family, save);
  for (const auto& [family, save] : iptables_legacy) r.add_chains(parse_legacy_save(save, family));
  return r;
}

nlohmann::json RulesetTexts::to_json() const {
  return {{"t", "ruleset"}, {"nft", nft}, {"iptables_nft", iptables_nft}, {"iptables_legacy", iptables_legacy}};
}

RulesetTexts RulesetTexts::from_json(const nlohmann::json& j) {
  RulesetTexts t;
  t.nft = j.value("nft", "");
  t.iptables_nft = j.value("iptables_nft", std::map<std::string, std::string>{});
  t.iptables_legacy = j.value("iptables_legacy", std::map<std::string, std::string>{});
  return t;
}

TraceStories::TraceStories(std::string own_table, uint64_t count, std::unique_ptr<TraceRenderer> renderer,
                           StoryWorld world)
    : count_(count), renderer_(std::move(renderer)), world_(std::move(world)), builder_(std::move(own_table)) {
  builder_.hook_of = [this](const std::string& f, const std::string& t, const std::string& c) {
    const ChainInfo* ch = world_.ruleset().chain(f, t, c);
    return ch ? ch->hook : std::nullopt;
  };
  builder_.ifname = world_.ifname;
}

void TraceStories::flush(uint64_t now_ns, bool all) {
  builder_.flush(now_ns, all, [this](Journey&& j) { emit(std::move(j)); });
}

void TraceStories::emit(Journey&& j) {
  if (done()) return;
  if (filter && !filter(j)) return;
  if (world_.before_explain) world_.before_explain(j);
  ExplainContext ctx;
  ctx.ruleset = &world_.ruleset();
  ctx.set_has = world_.set_has;
  ctx.symbol = world_.symbol;
  ctx.drop_reason = world_.drop_reason;
  ctx.causes = CauseContext{world_.sysctl, world_.listeners, world_.netns};
  explain_journey(j, ctx);
  j.number = ++counters_.packets;
  uint64_t sig = std::hash<std::string>{}(path_signature(j));
  if (auto it = first_of_path_.find(sig); it != first_of_path_.end()) {
    j.repeat_of = it->second;
    counters_.retransmissions++;
  } else {
    if (path_order_.size() == kMaxPaths) {
      first_of_path_.erase(path_order_.front());
      path_order_.pop_front();
    }
    first_of_path_[sig] = j.number;
    path_order_.push_back(sig);
  }
  if (j.drop) {
    counters_.dropped++;
    counters_.drop_points[drop_point_str(*j.drop)]++;
  } else if (j.fate == Fate::Unknown) {
    counters_.unknown++;
  } else {
    counters_.accepted++;
  }
  std::cout << renderer_->packet(j) << std::flush;
}

void TraceStories::print_summary(const std::string& plan_summary) {
  std::cout << renderer_->summary(counters_, plan_summary) << std::flush;
}

}  // namespace natbpf
