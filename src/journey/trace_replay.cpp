#include "journey/trace_replay.h"

#include <cstdio>
#include <iostream>

#include "probe/drop_reasons.h"
#include "sources/decode.h"
#include "sources/legacy_trace.h"
#include "sources/nftrace.h"
#include "util/text.h"

namespace natbpf {

namespace {
constexpr uint64_t kUnflushedNs = 2'000'000'000ULL;
}  // namespace

uint64_t header_number(const nlohmann::json& header, const char* key) {
  auto it = header.find(key);
  return it != header.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string header_text(const nlohmann::json& header, const char* key, const char* fallback) {
  auto it = header.find(key);
  return it != header.end() && it->is_string() ? it->get<std::string>() : fallback;
}

StoryWorld TraceReplay::recorded_world() {
  StoryWorld w;
  w.ruleset = [this]() -> const Ruleset& { return ruleset_; };
  w.set_has = [this](const std::string& f, const std::string& t, const std::string& s, const std::string& k) {
    auto it = sets_.find(f + "|" + t + "|" + s + "|" + k);
    return it == sets_.end() ? std::nullopt : it->second;
  };
  w.symbol = [this](uint64_t a) {
    auto it = symbols_.find(a);
    return it != symbols_.end() ? it->second : hex_address(a);
  };
  w.ifname = [this](uint32_t index) {
    auto it = ifnames_.find(index);
    return it != ifnames_.end() ? it->second : "if" + std::to_string(index);
  };
  w.drop_reason = [this](uint32_t r) { return drop_reason_name(reasons_, r); };
  w.sysctl = [this](const std::string& name) {
    auto it = sysctls_.find(name);
    return it == sysctls_.end() ? std::nullopt : it->second;
  };
  w.listeners = [this](uint8_t proto, uint16_t port) {
    auto it = listeners_.find({proto, port});
    return it == listeners_.end() ? std::vector<Listener>{} : it->second;
  };
  w.netns = header_text(header_, "netns", "");
  return w;
}

// natbpf's own trace table (its chains mark where a packet ended) and the
// names of drop reasons, from the run's setup record; interface names and
// kernel symbols, which do not change during a run (the live run asked for
// them while events arrived, so they are taken first). A first pass over
// the file, which also finds a damaged line before anything is told.
Status TraceReplay::setup() {
  auto reader = RecordingReader::open(path_);
  if (!reader) return reader.error();
  header_ = reader->header();
  bool seen_setup = false;
  while (true) {
    auto next = reader->next();
    if (!next) return next.error();
    if (!*next) break;
    const auto& j = **next;
    try {
      std::string t = j.value("t", "");
      if (t == "setup" && !seen_setup) {
        seen_setup = true;
        own_table_ = j.value("own_table", "");
        legacy_comment_ = j.value("legacy_comment", "");
        plan_ = j.value("plan", "");
        apply(j);
      } else if (t == "ifname" || t == "symbol") {
        apply(j);
      }
    } catch (const nlohmann::json::exception&) {
      if (!seen_setup) throw;  // the setup record itself is malformed
      // counted when the record is met again in order
    }
  }
  if (own_table_.empty())
    return usage_error("the recording has no setup record (natbpf stopped before tracing began)",
                       "record a run that got ready: natbpf trace --record FILE ...");
  return Ok{};
}

Status TraceReplay::run(std::unique_ptr<TraceRenderer> renderer, bool quiet) {
  try {
    if (auto st = setup(); !st) return st;
  } catch (const nlohmann::json::exception&) {
    return usage_error("the recording's setup record is malformed", "record the run again: natbpf trace --record FILE ...");
  }
  auto reader = RecordingReader::open(path_);
  if (!reader) return reader.error();
  // A run stopped by --count told only that many stories: so does its replay.
  stories_.emplace(own_table_, header_number(header_, "count"), std::move(renderer), recorded_world());
  if (!quiet)
    std::cerr << "natbpf: explaining a recording of kernel " << header_text(header_, "kernel", "?") << " ("
              << header_text(header_, "match", "all packets") << ")\n";
  std::optional<nlohmann::json> next;
  while (true) {
    nlohmann::json r;
    if (next) {
      r = std::move(*next);
      next.reset();
    } else {
      auto read = reader->next();
      if (!read) return read.error();
      if (!*read) break;
      r = std::move(**read);
    }
    try {
      if (auto st = take(r, *reader, next); !st) return st;
    } catch (const nlohmann::json::exception&) {
      stories_->counters().nftrace_parse_errors++;  // a record of the wrong shape: counted, never fatal
    }
  }
  stories_->flush(UINT64_MAX, true);
  stories_->print_summary(plan_.empty() ? "recorded" : "recorded with " + plan_);
  return Ok{};
}

Status TraceReplay::take(const nlohmann::json& r, RecordingReader& reader, std::optional<nlohmann::json>& next) {
  std::string t = r.value("t", "");
  if (t == "nftrace" || t == "bpf" || t == "nflog") {
    feed(t, r);
  } else if (t == "flush") {
    // The live run asked the system while it explained these journeys:
    // those answers follow the flush record, so they are taken first.
    while (true) {
      auto read = reader.next();
      if (!read) return read.error();
      if (!*read) break;
      if (!is_answer(**read)) {
        next = std::move(**read);
        break;
      }
      try {
        apply(**read);
      } catch (const nlohmann::json::exception&) {
        stories_->counters().nftrace_parse_errors++;
      }
    }
    last_flush_ns_ = r.value("ns", uint64_t{0});
    flush_recorded_ = true;
    stories_->flush(last_flush_ns_, r.value("all", false));
  } else if (t == "end") {
    TraceCounters& c = stories_->counters();
    auto lost = r.value("lost", nlohmann::json::object());
    c.nftrace_lost = lost.value("nftrace", uint64_t{0});
    c.bpf_lost = lost.value("bpf", uint64_t{0});
  } else {
    apply(r);
  }
  return Ok{};
}

// One recorded datagram or ring-buffer record, decoded as the live run did.
void TraceReplay::feed(const std::string& kind, const nlohmann::json& record) {
  std::string hex = record.value("hex", "");
  auto bytes = from_hex(hex);
  if (bytes.empty() && !hex.empty()) {
    stories_->counters().nftrace_parse_errors++;  // not hex: a damaged recording
    return;
  }
  uint64_t ns = record.value("ns", uint64_t{0});
  // The live run closes stories on its 100 ms tick and records each flush;
  // a recording without them (cut, or edited) still closes them by time.
  // One with them is followed as it is: a gap between its flushes is the
  // live loop stalling (stopped, or starved), and events read after it were
  // joined as one batch.
  if (!flush_recorded_ && ns > last_flush_ns_ + kUnflushedNs) {
    if (last_flush_ns_) stories_->flush(ns, false);
    last_flush_ns_ = ns;
  }
  auto to_stories = [this](NftTraceEvent&& e) { stories_->add(std::move(e)); };
  if (kind == "nflog") {
    auto chain = [this](uint8_t f, const std::string& tb, const std::string& c) {
      return ruleset_.chain(family_name(f), tb, c);
    };
    parse_nflog_datagram(bytes, ns, legacy_comment_, chain, to_stories,
                         [this](BpfEvent&& e) { stories_->add(std::move(e)); });
  } else if (kind == "nftrace") {
    parse_nftrace_datagram(bytes, ns, to_stories, [this](std::string) { stories_->counters().nftrace_parse_errors++; });
  } else if (auto ev = decode_bpf_record(bytes.data(), bytes.size())) {
    stories_->add(std::move(*ev));
  } else {
    stories_->counters().bpf_decode_errors++;
  }
}

bool TraceReplay::is_answer(const nlohmann::json& j) {
  std::string t = j.value("t", "");
  return t == "ruleset" || t == "set" || t == "symbol" || t == "ifname" || t == "sysctl" || t == "listeners";
}

void TraceReplay::apply(const nlohmann::json& j) {
  std::string t = j.value("t", "");
  if (t == "ruleset") {
    ruleset_ = RulesetTexts::from_json(j).build();
  } else if (t == "set") {
    std::string key = j.value("family", "") + "|" + j.value("table", "") + "|" + j.value("set", "") + "|" +
                      j.value("key", "");
    auto has = j.value("has", nlohmann::json());
    sets_[key] = has.is_boolean() ? std::optional<bool>(has.get<bool>()) : std::nullopt;
  } else if (t == "sysctl") {
    auto v = j.value("value", nlohmann::json());
    sysctls_[j.value("name", "")] = v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
  } else if (t == "listeners") {
    std::vector<Listener> found;
    auto list = j.value("sockets", nlohmann::json::array());
    if (list.is_array())
      for (const auto& l : list)
        if (l.is_object())
          found.push_back({l.value("address", ""), l.value("pid", uint32_t{0}), l.value("comm", "")});
    listeners_[{j.value("proto", uint8_t{0}), j.value("port", uint16_t{0})}] = std::move(found);
  } else if (t == "ifname") {
    ifnames_[j.value("index", uint32_t{0})] = j.value("name", "");
  } else if (t == "symbol") {
    symbols_[j.value("addr", uint64_t{0})] = j.value("name", "");
  } else if (t == "setup") {
    if (!j.contains("drop_reasons") || !j.at("drop_reasons").is_object()) return;
    for (const auto& [code, name] : j.at("drop_reasons").items())
      if (name.is_string()) reasons_[std::strtoul(code.c_str(), nullptr, 10)] = name.get<std::string>();
  }
}

}  // namespace natbpf
