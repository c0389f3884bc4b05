#include "journey/trace_stories.h"

#include <iostream>

#include "explain/trace_explain.h"
#include "sources/legacy_trace.h"
#include "util/names.h"
#include "util/text.h"

namespace natbpf {
namespace {

// Same flow, TCP flags, decisions and end: a retransmission (or the next
// packet of a flow taking the same path), shown in one line. A TCP
// retransmission also repeats its sequence and acknowledgment numbers: the
// last ACK of a close is not the handshake ACK again. Appended piece by
// piece to a buffer the caller reuses: it is built for every story.
// drop_point: drop_point_str(*j.drop), "" when it was not dropped.
void append_path_signature(const Journey& j, const std::string& drop_point, std::string& s) {
  const Packet& p = j.packet;
  append_number(s, p.l4proto);
  s += '/';
  append_number(s, p.tcp_flags);
  s += '/';
  s += p.saddr.str();
  s += ':';
  append_number(s, p.sport);
  s += '>';
  s += p.daddr.str();
  s += ':';
  append_number(s, p.dport);
  s += '|';
  if (p.l4proto == 6) {
    append_number(s, p.tcp_seq);
    s += '/';
    append_number(s, p.tcp_ack);
    s += '|';
  }
  for (const auto& st : j.steps) {
    s += st.table;
    s += '/';
    s += st.chain;
    s += '/';
    if (st.handle) append_number(s, *st.handle);
    else s += '-';
    s += '/';
    st.append_verdict(s);
    s += ';';
  }
  if (j.drop) s += drop_point;
  else append_number(s, static_cast<uint64_t>(static_cast<int>(j.fate)));
}

}  // namespace

std::string path_signature(const Journey& j) {
  std::string s;
  append_path_signature(j, j.drop ? drop_point_str(*j.drop) : "", s);
  return s;
}

Ruleset RulesetTexts::build() const { return build(Ruleset::parse(nft)); }

Ruleset RulesetTexts::build(Ruleset r) const {
  for (const auto& [family, save] : iptables_nft) r.add_iptables_syntax(family, save);
  for (const auto& [family, save] : iptables_legacy) r.add_legacy_save(save, family);
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
  builder_.ifname = world_.ifname;
}

void TraceStories::flush(uint64_t now_ns, bool all) {
  builder_.flush(now_ns, all, [this](Journey&& j) { complete_.push_back(std::move(j)); });
  for (; !complete_.empty(); complete_.pop_front()) {
    if (done()) {  // --count reached: nothing more is told, or read for a story
      complete_.clear();
      return;
    }
    if (!all && world_.ready && !world_.ready()) return;
    if (!all && world_.prepare && !world_.prepare(complete_.front())) return;
    emit(std::move(complete_.front()));
  }
}

void TraceStories::emit(Journey&& j) {
  if (done()) return;
  if (filter && !filter(j)) return;
  if (world_.before_explain) world_.before_explain(j);
  assign_hooks(j, [this](const std::string& f, const std::string& t, const std::string& c) {
    const ChainInfo* ch = world_.ruleset().chain(f, t, c);
    return ch ? ch->hook : std::nullopt;
  });
  ExplainContext ctx;
  ctx.ruleset = &world_.ruleset();
  ctx.set_has = world_.set_has;
  ctx.symbol = world_.symbol;
  ctx.drop_reason = world_.drop_reason;
  ctx.causes = CauseContext{world_.sysctl, world_.listeners, world_.netns};
  explain_journey(j, ctx);
  j.number = ++counters_.packets;
  std::string drop_point = j.drop ? drop_point_str(*j.drop) : "";  // once: long, and needed twice
  signature_.clear();
  append_path_signature(j, drop_point, signature_);
  uint64_t sig = std::hash<std::string>{}(signature_);
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
    counters_.drop_points[drop_point]++;
  } else if (j.fate == Fate::Unknown) {
    counters_.unknown++;
  } else {
    counters_.accepted++;
  }
  if (buffer_output) {
    if (!writer_) writer_ = std::make_unique<StoryWriter>(*renderer_);
    writer_->push(std::move(j));
    return;
  }
  renderer_->packet(j, out_);
  write_output();
}

void TraceStories::write_output() {
  if (writer_) {
    writer_->finish();
    writer_.reset();
  }
  std::cout.write(out_.data(), static_cast<std::streamsize>(out_.size()));
  std::cout.flush();
  out_.clear();
}

void TraceStories::print_summary(const std::string& plan_summary) {
  write_output();
  std::cout << renderer_->summary(counters_, plan_summary) << std::flush;
}

}  // namespace natbpf
