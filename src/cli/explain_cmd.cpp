// natbpf explain FILE: the stories of a recorded trace run (`natbpf trace
// --record FILE`), told again without the kernel: the recorded datagrams and
// ring-buffer records go through the same decoders, journeys and
// explanations; rule texts, set lookups and symbols are the answers the live
// run got. Needs no root, so a recording from a production host can be
// explained anywhere.
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/trace_stories.h"
#include "probe/drop_reasons.h"
#include "sources/decode.h"
#include "sources/legacy_trace.h"
#include "sources/nftrace.h"
#include "world/recording.h"
#include "world/replay.h"

namespace natbpf {
namespace {

struct ExplainOptions {
  std::string file;
  bool json = false;
  size_t top = 10;
};

// A replay that met malformed records, or questions its recording did not
// answer, may differ from the live run: it says so, on stderr, and still prints.
Status replay_verdict(uint64_t bad_records, uint64_t unanswered) {
  if (bad_records || unanswered)
    std::cerr << "natbpf: the recording had " << bad_records << " malformed records and " << unanswered
              << " unanswered questions: this output may differ from the live run's\n";
  return Ok{};
}

class Replay {
 public:
  explicit Replay(const Recording& r) : rec_(r) {}

  Status run(bool json) {
    StoryWorld w;
    w.ruleset = [this]() -> const Ruleset& { return ruleset_; };
    w.set_has = [this](const std::string& f, const std::string& t, const std::string& s, const std::string& k) {
      auto it = sets_.find(f + "|" + t + "|" + s + "|" + k);
      return it == sets_.end() ? std::nullopt : it->second;
    };
    w.symbol = [this](uint64_t a) {
      auto it = symbols_.find(a);
      if (it != symbols_.end()) return it->second;
      char buf[24];
      std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(a));
      return std::string(buf);
    };
    w.ifname = [this](uint32_t index) {
      auto it = ifnames_.find(index);
      return it != ifnames_.end() ? it->second : "if" + std::to_string(index);
    };
    w.drop_reason = [this](uint32_t r) { return drop_reason_name(reasons_, r); };
    // natbpf's own trace table (its chains mark where a packet ended) and
    // the names of drop reasons, from the run's setup record.
    std::string own_table, plan;
    for (const auto& j : rec_.records)
      if (j.value("t", "") == "setup") {
        own_table = j.value("own_table", "");
        legacy_comment_ = j.value("legacy_comment", "");
        plan = j.value("plan", "");
        apply(j);
        break;
      }
    // Interface names and kernel symbols do not change during a run; the
    // live run asked for them while events arrived, so they are taken first.
    for (const auto& j : rec_.records) {
      std::string t = j.value("t", "");
      if (t == "ifname" || t == "symbol") apply(j);
    }
    if (own_table.empty())
      return usage_error("the recording has no setup record (natbpf stopped before tracing began)",
                         "record a run that got ready: natbpf trace --record FILE ...");
    // A run stopped by --count told only that many stories: so does its replay.
    stories_.emplace(own_table, rec_.header.value("count", uint64_t{0}),
                     json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO)), std::move(w));
    if (!json)
      std::cerr << "natbpf: explaining a recording of kernel " << rec_.header.value("kernel", "?") << " ("
                << rec_.header.value("match", "all packets") << ")\n";
    const auto& r = rec_.records;
    for (size_t i = 0; i < r.size(); i++) {
      std::string t = r[i].value("t", "");
      if (t == "nftrace" || t == "bpf" || t == "nflog") {
        auto bytes = from_hex(r[i].value("hex", ""));
        uint64_t ns = r[i].value("ns", uint64_t{0});
        if (t == "nflog") {
          parse_nflog_datagram(
              bytes, ns, legacy_comment_,
              [this](uint8_t f, const std::string& tb, const std::string& c) { return ruleset_.chain(family_name(f), tb, c); },
              [this](NftTraceEvent&& e) { stories_->add(std::move(e)); });
        } else if (t == "nftrace") {
          parse_nftrace_datagram(bytes, ns, [this](NftTraceEvent&& e) { stories_->add(std::move(e)); },
                                 [this](std::string) { stories_->counters().nftrace_parse_errors++; });
        } else if (auto ev = decode_bpf_record(bytes.data(), bytes.size())) {
          stories_->add(std::move(*ev));
        } else {
          stories_->counters().bpf_decode_errors++;
        }
      } else if (t == "flush") {
        // The live run asked the system while it explained these journeys:
        // those answers follow the flush record, so they are taken first.
        for (size_t k = i + 1; k < r.size() && is_answer(r[k]); k++) apply(r[k]);
        stories_->flush(r[i].value("ns", uint64_t{0}), r[i].value("all", false));
      } else if (t == "end") {
        TraceCounters& c = stories_->counters();
        auto lost = r[i].value("lost", nlohmann::json::object());
        c.nftrace_lost = lost.value("nftrace", uint64_t{0});
        c.bpf_lost = lost.value("bpf", uint64_t{0});
      } else {
        apply(r[i]);
      }
    }
    stories_->flush(UINT64_MAX, true);
    stories_->print_summary(plan.empty() ? "recorded" : "recorded with " + plan);
    return Ok{};
  }

 private:
  static bool is_answer(const nlohmann::json& j) {
    std::string t = j.value("t", "");
    return t == "ruleset" || t == "set" || t == "symbol" || t == "ifname";
  }

  void apply(const nlohmann::json& j) {
    std::string t = j.value("t", "");
    if (t == "ruleset") {
      ruleset_ = RulesetTexts::from_json(j).build();
    } else if (t == "set") {
      std::string key = j.value("family", "") + "|" + j.value("table", "") + "|" + j.value("set", "") + "|" +
                        j.value("key", "");
      auto has = j.value("has", nlohmann::json());
      sets_[key] = has.is_boolean() ? std::optional<bool>(has.get<bool>()) : std::nullopt;
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

  const Recording& rec_;
  std::optional<TraceStories> stories_;
  Ruleset ruleset_;
  std::map<std::string, std::optional<bool>> sets_;
  std::map<uint64_t, std::string> symbols_;
  std::map<uint32_t, std::string> ifnames_;
  std::string legacy_comment_;  // marks natbpf's own TRACE rules
  std::map<uint32_t, std::string> reasons_;
};

// A clash recording through the same join and printers as the live run.
Status replay_clash(RecordingReader& reader, bool json) {
  auto plan = read_plan_record(reader);
  if (!plan) return plan.error();
  RecordedWorld world(plan->own_netns);
  const auto& h = reader.header();
  ClashJoinOptions jo{h.value("count", uint64_t{0}), h.value("interval_ns", uint64_t{10'000'000'000ULL}), plan->hooks};
  ClashJoin join(jo, world, clash_printer(json));
  uint64_t decode_errors = 0;
  ReplayHandlers handlers;
  handlers.raw = [&](const std::string& kind, std::span<const uint8_t> bytes, uint64_t ns) {
    if (kind != "bpf") return;
    if (auto ev = decode_bpf_record(bytes.data(), bytes.size())) join.on_event(std::move(*ev), ns);
    else decode_errors++;
  };
  handlers.start = [&](uint64_t ns) { (void)join.start(ns); };
  handlers.tick = [&](uint64_t ns, bool final) { join.tick(ns, final); };
  auto counts = replay(reader, world, handlers);
  if (!counts) return counts.error();
  return replay_verdict(counts->bad_records + decode_errors, world.mismatches());
}

// A drops recording: the same counting and attribution as the live run.
Status replay_drops(RecordingReader& reader, bool json, size_t top) {
  auto plan = read_plan_record(reader);
  if (!plan) return plan.error();
  RecordedWorld world(plan->own_netns);
  DropsRun run(world);
  std::optional<DropsReport> report;
  uint64_t decode_errors = 0;
  ReplayHandlers handlers;
  handlers.raw = [&](const std::string& kind, std::span<const uint8_t> bytes, uint64_t) {
    if (kind != "bpf") return;
    if (auto ev = decode_bpf_record(bytes.data(), bytes.size())) run.add(*ev);
    else decode_errors++;
  };
  handlers.start = [&](uint64_t) { run.start(); };
  handlers.other = [&](const nlohmann::json& r) {
    if (r.value("t", "") != "end") return;
    report = run.finish(r.at("seconds").get<double>(), r.at("lost").get<uint64_t>(), plan->summary);
  };
  auto counts = replay(reader, world, handlers);
  if (!counts) return counts.error();
  if (!report)
    return usage_error("the drops recording ends before the run did", "record a run that finished: natbpf drops --record FILE");
  print_drops(*report, top, json);
  return replay_verdict(counts->bad_records + decode_errors, world.mismatches());
}

Status run_explain(const ExplainOptions& o) {
  auto reader = RecordingReader::open(o.file);
  if (!reader) return reader.error();
  std::string command = reader->command();
  if (command == "clash") return replay_clash(*reader, o.json);
  if (command == "drops") return replay_drops(*reader, o.json, o.top);
  if (command != "trace")
    return usage_error(o.file + " is a recording of an unknown command '" + command + "'",
                       "explain recordings of natbpf trace, clash or drops");
  auto rec = read_recording(o.file);
  if (!rec) return rec.error();
  Replay replay(*rec);
  return replay.run(o.json);
}

}  // namespace

void register_explain_command(CLI::App& app, CommandContext& ctx) {
  static ExplainOptions o;
  auto* cmd = app.add_subcommand("explain", "tell again, offline, what a recorded run (natbpf trace|clash|drops --record FILE) found");
  cmd->add_option("file", o.file, "the recording")->required();
  cmd->add_flag("--json", o.json, "JSON Lines, as the recorded command prints them with --json");
  cmd->add_option("--top", o.top, "drops recordings: show this many causes (default 10)");
  cmd->callback([&ctx]() { ctx.status = run_explain(o); });
}

}  // namespace natbpf
