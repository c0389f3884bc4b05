// natbpf explain FILE: what a recorded run (`natbpf trace|clash|drops
// --record FILE`) found, told again without the kernel: the recorded events
// go through the same decoders, joins and explanations, and every question
// is answered from the recording. Needs no root, so a recording from a
// production host can be explained anywhere.
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "journey/log_replay.h"
#include "journey/trace_replay.h"
#include "output/trace_render.h"
#include "sources/decode.h"
#include "world/recording.h"
#include "world/replay.h"

namespace natbpf {
namespace {

struct ExplainOptions {
  std::string file;
  std::vector<std::string> logs, rulesets;
  std::string format = "auto", match;
  bool json = false;
  size_t top = 10;
};

// explain --log: saved logs instead of a recording.
Status explain_logs(const ExplainOptions& o) {
  if (!o.file.empty())
    return usage_error("give either a recording or --log files, not both",
                       "natbpf explain RECORDING, or natbpf explain --log FILE [--ruleset FILE]");
  LogReplayOptions lo;
  lo.logs = o.logs;
  lo.rulesets = o.rulesets;
  auto format = parse_log_format(o.format);
  if (!format) return format.error();
  lo.format = *format;
  if (!o.match.empty()) {
    auto m = parse_log_match(o.match);
    if (!m) return m.error();
    lo.match = *m;
  }
  LogReplay replay(std::move(lo));
  return replay.run(o.json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO)), o.json);
}

// A replay that met malformed records, or questions its recording did not
// answer, may differ from the live run: it says so, on stderr, and still prints.
Status replay_verdict(uint64_t bad_records, uint64_t unanswered) {
  if (bad_records || unanswered)
    std::cerr << "natbpf: the recording had " << bad_records << " malformed records and " << unanswered
              << " unanswered questions: this output may differ from the live run's\n";
  return Ok{};
}

// The recorded BPF records of one session ("bpf", or "bpf-clash" for drops
// --clash's second one), decoded as the live run decoded them, into sink
// with the moment they were read; a record that does not decode is counted.
decltype(ReplayHandlers::raw) bpf_records(std::function<void(BpfEvent&&, uint64_t)> sink, uint64_t& decode_errors,
                                          std::string session = "bpf") {
  return [sink = std::move(sink), &decode_errors, session = std::move(session)](
             const std::string& kind, std::span<const uint8_t> bytes, uint64_t ns) {
    if (kind != session) return;
    if (auto ev = decode_bpf_record(bytes.data(), bytes.size())) sink(std::move(*ev), ns);
    else decode_errors++;
  };
}

// A clash recording through the same join and printers as the live run.
Status replay_clash(RecordingReader& reader, bool json) {
  auto plan = read_plan_record(reader);
  if (!plan) return plan.error();
  RecordedWorld world(plan->own_netns);
  const auto& h = reader.header();
  uint64_t interval_ns = header_number(h, "interval_ns");
  ClashJoinOptions jo{header_number(h, "count"), interval_ns ? interval_ns : 10'000'000'000ULL, plan->hooks};
  ClashJoin join(jo, world, clash_printer(json));
  uint64_t decode_errors = 0;
  ReplayHandlers handlers;
  handlers.raw = bpf_records([&](BpfEvent&& ev, uint64_t ns) { join.on_event(std::move(ev), ns); }, decode_errors);
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
  // The second record: the namespace the report was limited to (--netns).
  auto scope = reader.next();
  if (!scope) return scope.error();
  nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& r = *scope ? **scope : none;
  auto t = r.find("t"), only = r.find("only_netns");
  if (t == r.end() || *t != "drops" || only == r.end() || !only->is_number_unsigned())
    return usage_error("the drops recording has no scope record", "record it again: natbpf drops --record FILE");
  RecordedWorld world(plan->own_netns);
  DropsRun run(world, only->get<uint32_t>());
  bool ended = false;
  uint64_t decode_errors = 0;
  // drops --clash: the clash join asked its questions too; replayed to the
  // same metrics, which explain does not print.
  DropMetrics metrics(build_info());
  std::optional<ClashJoin> clash;
  if (r.value("clash", false)) clash.emplace(drops_clash_options(plan->hooks), world, clash_metrics(metrics));
  auto to_run = bpf_records([&](BpfEvent&& ev, uint64_t) { run.add(ev); }, decode_errors);
  auto to_join = bpf_records([&](BpfEvent&& ev, uint64_t ns) { clash->on_event(std::move(ev), ns); }, decode_errors,
                             "bpf-clash");
  ReplayHandlers handlers;
  handlers.raw = [&](const std::string& kind, std::span<const uint8_t> bytes, uint64_t ns) {
    to_run(kind, bytes, ns);
    if (clash) to_join(kind, bytes, ns);
  };
  handlers.start = [&](uint64_t ns) {
    run.start();
    if (clash) (void)clash->start(ns);
  };
  handlers.tick = [&](uint64_t ns, bool final) {
    if (clash) clash->tick(ns, final);
  };
  // Each --interval report and the last one, where the live run printed
  // them; a scrape's report (--prometheus) only moved where the next began.
  handlers.other = [&](const nlohmann::json& r) {
    std::string t = r.value("t", "");
    if (t != "report" && t != "end" && t != "scrape") return;
    auto report = run.report(r.at("seconds").get<double>(), r.at("lost").get<uint64_t>(), plan->summary);
    if (t != "scrape") print_drops(report, top, json);
    ended = ended || t == "end";
  };
  auto counts = replay(reader, world, handlers);
  if (!counts) return counts.error();
  if (!ended)
    return usage_error("the drops recording ends before the run did", "record a run that finished: natbpf drops --record FILE");
  return replay_verdict(counts->bad_records + decode_errors, world.mismatches());
}

}  // namespace

Status explain_recording(const std::string& file, bool json, size_t top) {
  auto reader = RecordingReader::open(file);
  if (!reader) return reader.error();
  std::string command = reader->command();
  if (command == "clash") return replay_clash(*reader, json);
  if (command == "drops") return replay_drops(*reader, json, top);
  if (command != "trace")
    return usage_error(file + " is a recording of an unknown command '" + command + "'",
                       "explain recordings of natbpf trace, clash or drops");
  TraceReplay replay(file);
  return replay.run(json ? make_json_renderer() : make_text_renderer(isatty(STDOUT_FILENO)), json);
}

void register_explain_command(CLI::App& app, CommandContext& ctx) {
  static ExplainOptions o;
  auto* cmd = app.add_subcommand("explain",
                                 "tell again, offline, what a recorded run (natbpf trace|clash|drops --record FILE) "
                                 "found, or the packets of saved logs (--log)");
  cmd->add_option("file", o.file, "the recording")->type_name("FILE");
  cmd->add_option("--log", o.logs,
                  "a saved log: kernel log lines of iptables TRACE / conntrack INVALID (syslog, dmesg, journalctl -k), "
                  "nft monitor trace output, an NFLOG pcap (tcpdump -i nflog:N -w) or ulogd2 JSON; repeatable")
      ->type_name("FILE");
  cmd->add_option("--ruleset", o.rulesets,
                  "the ruleset saved beside the log (iptables-save, ip6tables-save, nft -a list ruleset); repeatable")
      ->type_name("FILE");
  cmd->add_option("--format", o.format, "the logs' format: auto (from content), kernel, nft, pcap or ulogd")
      ->type_name("auto|kernel|nft|pcap|ulogd");
  cmd->add_option("--match", o.match, "--log: only packets like 'tcp dport 52000', 'ip saddr 10.0.0.1', 'iif eth0'")->type_name("EXPR");
  cmd->add_flag("--json", o.json, "JSON Lines, as the recorded command prints them with --json");
  cmd->add_option("--top", o.top, "drops recordings: show this many causes (default 10)")->type_name("N");
  cmd->callback([&ctx]() {
    if (!o.logs.empty()) {
      ctx.status = explain_logs(o);
    } else if (o.file.empty()) {
      ctx.status = usage_error("explain needs a recording or --log FILE",
                               "natbpf explain RECORDING, or natbpf explain --log FILE [--ruleset FILE]");
    } else if (!o.rulesets.empty() || !o.match.empty() || o.format != "auto") {
      ctx.status = usage_error("--ruleset, --match and --format go with --log",
                               "natbpf explain --log FILE [--ruleset FILE] [--match EXPR]");
    } else {
      ctx.status = explain_recording(o.file, o.json, o.top);
    }
  });
}

}  // namespace natbpf
