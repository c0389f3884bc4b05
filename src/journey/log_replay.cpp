#include "journey/log_replay.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "sources/kernel_log.h"
#include "sources/legacy_trace.h"
#include "sources/nflog_file.h"
#include "sources/nft_monitor_text.h"
#include "util/text.h"

namespace natbpf {
namespace {

// A packet's TRACE lines come within microseconds, but syslog stamps whole
// seconds: a packet stays open this long (on the log's clock) after its last line.
constexpr uint64_t kLogIdleNs = 2'000'000'000ULL;
// Lines without a time advance the clock by this much each.
constexpr uint64_t kUntimedLineNs = 1'000'000ULL;
constexpr size_t kHeadBytes = 64 * 1024;

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::string> read_head(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return usage_error("cannot open " + file + ": " + std::strerror(errno), "give the path of a saved log");
  std::string head(kHeadBytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head;
}

// A rule's text without what changes while it runs: counter values
// ("counter packets 2 bytes 120" -> "counter") and a "# handle N" comment.
std::string rule_shape(const std::string& text) {
  auto w = split_words(text);
  std::string out;
  for (size_t i = 0; i < w.size(); i++) {
    if (w[i] == "#") break;
    if ((w[i] == "packets" || w[i] == "bytes") && i + 1 < w.size() && i > 0) {
      i++;
      continue;
    }
    if (!out.empty()) out += ' ';
    out += w[i];
  }
  return out;
}

bool is_iptables_save(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  bool table = false, commit = false;
  while (std::getline(in, line)) {
    if (line.rfind("*", 0) == 0) table = true;
    if (line == "COMMIT") commit = true;
  }
  return table && commit;
}

}  // namespace

Result<LogFormat> parse_log_format(const std::string& name) {
  if (name == "auto") return LogFormat::Auto;
  if (name == "kernel") return LogFormat::Kernel;
  if (name == "nft") return LogFormat::NftMonitor;
  if (name == "pcap") return LogFormat::Pcap;
  if (name == "ulogd") return LogFormat::Ulogd;
  return usage_error("unknown log format '" + name + "'", "use --format auto, kernel, nft, pcap or ulogd");
}

const char* log_format_name(LogFormat f) {
  switch (f) {
    case LogFormat::Kernel: return "kernel log";
    case LogFormat::NftMonitor: return "nft monitor trace";
    case LogFormat::Pcap: return "NFLOG pcap";
    case LogFormat::Ulogd: return "ulogd2 JSON";
    case LogFormat::Auto: break;
  }
  return "auto";
}

std::optional<LogFormat> detect_log_format(const std::string& head) {
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(head.data()), head.size());
  if (looks_like_pcap(bytes)) return LogFormat::Pcap;
  std::istringstream in(head);
  std::string line;
  while (std::getline(in, line)) {
    if (NftMonitorTextParser::looks_like(line)) return LogFormat::NftMonitor;
    if (looks_like_ulogd_json(line)) return LogFormat::Ulogd;
    if (looks_like_kernel_log(line)) return LogFormat::Kernel;
  }
  return std::nullopt;
}

Result<TraceMatch> parse_log_match(const std::string& text) {
  TraceMatch m;
  auto w = split_words(text);
  auto bad = [&](const std::string& what) {
    return usage_error("cannot read --match '" + text + "': " + what,
                       "write it like 'tcp dport 52000', 'ip saddr 10.0.0.1', 'udp sport 53', 'iif eth0'");
  };
  for (size_t i = 0; i < w.size(); i++) {
    const std::string& t = w[i];
    if (t == "ip" || t == "ip6" || t == "th" || t == "meta" || t == "l4proto") continue;
    if (t == "tcp" || t == "udp" || t == "icmp" || t == "icmpv6") {
      m.l4proto = t == "tcp" ? 6 : t == "udp" ? 17 : t == "icmp" ? 1 : 58;
      continue;
    }
    if (i + 1 >= w.size()) return bad("'" + t + "' needs a value");
    const std::string& v = w[++i];
    if (t == "dport" || t == "sport") {
      auto port = parse_uint(v, 65535);
      if (!port || !*port) return bad("'" + v + "' is no port");
      (t == "dport" ? m.dport : m.sport) = static_cast<uint16_t>(*port);
    } else if (t == "saddr" || t == "daddr") {
      auto a = Addr::parse(v);
      if (!a) return bad("'" + v + "' is no address");
      (t == "saddr" ? m.saddr : m.daddr) = *a;
    } else if (t == "iif") {
      m.iif = v.size() >= 2 && v.front() == '"' && v.back() == '"' ? v.substr(1, v.size() - 2) : v;
    } else {
      return bad("unknown word '" + t + "'");
    }
  }
  return m;
}

bool journey_matches(const Journey& j, const TraceMatch& m) {
  if (!m.iif.empty() && j.iif_name != m.iif) return false;
  for (const Packet& p : j.packets()) {
    if (m.l4proto && p.l4proto != *m.l4proto && !(*m.l4proto == 1 && p.l4proto == 58)) continue;
    if (m.sport && p.sport != m.sport) continue;
    if (m.dport && p.dport != m.dport) continue;
    if (m.saddr && !(p.saddr == *m.saddr)) continue;
    if (m.daddr && !(p.daddr == *m.daddr)) continue;
    return true;
  }
  return false;
}

Result<Ruleset> load_saved_rulesets(const std::vector<std::string>& files) {
  std::string nft;
  std::vector<std::pair<std::string, std::string>> saves;  // family, text
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return usage_error("cannot open " + f + ": " + std::strerror(errno), "give the path of a saved ruleset");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (is_iptables_save(text)) {
      bool v6 = text.find("ip6tables") != std::string::npos;
      saves.emplace_back(v6 ? "ip6" : "ip", std::move(text));
    } else if (text.find("table ") != std::string::npos && text.find("chain ") != std::string::npos) {
      nft += text + "\n";
    } else {
      return usage_error(f + " is no saved ruleset natbpf reads",
                         "save one with iptables-save > FILE (or ip6tables-save, iptables-legacy-save) or nft -a list ruleset > FILE");
    }
  }
  Ruleset r = Ruleset::parse(nft);
  for (auto& [family, text] : saves) r.add_legacy_save(std::make_shared<const std::string>(std::move(text)), family);
  return r;
}

uint64_t LogReplay::advance(std::optional<uint64_t> ts) {
  now_ns_ = ts ? std::max(now_ns_, *ts) : now_ns_ + kUntimedLineNs;
  return now_ns_;
}

uint32_t LogReplay::ifindex(const std::string& name) {
  if (name.empty()) return 0;
  auto [it, added] = ifindex_.emplace(name, static_cast<uint32_t>(ifindex_.size() + 1));
  if (added) ifname_[it->second] = name;
  return it->second;
}

StoryWorld LogReplay::world() {
  StoryWorld w;
  w.ruleset = [this]() -> const Ruleset& { return ruleset_; };
  // A saved log has no kernel to ask: no set contents, symbols, sysctls or sockets.
  w.set_has = [](const std::string&, const std::string&, const std::string&, const std::string&) {
    return std::optional<bool>();
  };
  w.symbol = [](uint64_t a) { return hex_address(a); };
  w.drop_reason = [](uint32_t r) { return std::to_string(r); };
  w.ifname = [this](uint32_t index) {
    auto it = ifname_.find(index);
    return it != ifname_.end() ? it->second : "if" + std::to_string(index);
  };
  w.sysctl = [](const std::string&) { return std::optional<std::string>(); };
  w.listeners = [](uint8_t, uint16_t) { return std::vector<Listener>{}; };
  return w;
}

void LogReplay::flush_if_due() {
  if (now_ns_ < last_flush_ns_ + kLogIdleNs / 4) return;
  last_flush_ns_ = now_ns_;
  stories_->flush(now_ns_, false);
  // Forget packets no line can join any more (bounded memory on long logs).
  for (auto* groups : {&groups_, &nft_groups_})
    std::erase_if(*groups, [this](const auto& g) { return g.second.last_ns + 2 * kLogIdleNs < now_ns_; });
}

const LogReplay::TraceLine* LogReplay::trace_line(const std::string& text, uint8_t family) {
  auto& known = trace_lines_[family];
  if (auto it = known.find(text); it != known.end()) return it->second ? &*it->second : nullptr;
  if (known.size() >= kMaxTraceLines) {
    known.clear();
    trace_line_by_id_.clear();
  }
  std::optional<TraceLine> line;
  if (auto prefix = parse_trace_prefix(text)) {
    if (!ruleset_.chain(family_name(family), prefix->table, prefix->chain)) {
      // A log without its ruleset still knows the built-in chains' hooks.
      ChainInfo ci{family_name(family), prefix->table, prefix->chain, {}, {}, {}, {}, {}};
      if (std::string hook = iptables_builtin_hook(prefix->chain); !hook.empty()) ci.hook = hook;
      ruleset_.add_chains({ci});
    }
    auto rules = [this](uint8_t f, const std::string& t, const std::string& ch) {
      return ruleset_.chain(family_name(f), t, ch);
    };
    line = TraceLine{*prefix, legacy_trace_event(*prefix, family, Packet{}, "", rules)};
  }
  auto& kept = known.emplace(text, std::move(line)).first->second;
  return kept ? &*kept : nullptr;
}

const LogReplay::TraceLine* LogReplay::trace_line(const std::string& text, uint8_t family, uint64_t prefix_id) {
  if (!prefix_id) return trace_line(text, family);
  uint64_t key = prefix_id << 8 | family;
  if (auto it = trace_line_by_id_.find(key); it != trace_line_by_id_.end()) return it->second;
  const TraceLine* line = trace_line(text, family);  // may clear trace_line_by_id_
  if (trace_line_by_id_.size() >= kMaxTraceLines) trace_line_by_id_.clear();
  trace_line_by_id_.emplace(key, line);
  return line;
}

// One nf_log record (TRACE line, conntrack INVALID line) of any saved form.
void LogReplay::take(LogRecord&& r, std::string where, uint64_t prefix_id, FileCounts& c) {
  uint64_t now = advance(r.ts_ns);
  if (const TraceLine* line = trace_line(r.prefix, r.family, prefix_id)) {
    const TracePrefix* prefix = &line->prefix;
    std::optional<NftTraceEvent> ev = line->event;
    if (!ev) return;
    ev->packet = r.pkt;
    ev->id = legacy_trace_id(r.pkt);
    // TRACE is set in the raw table, which runs first: a packet's lines
    // start there, and a raw line after lines of other tables is the next
    // packet with the same headers (a retransmission).
    Group& g = groups_[ev->id];
    bool raw = prefix->table == "raw";
    if (!g.id || (raw && !g.raw) || now > g.last_ns + kLogIdleNs) g.id = next_group_++;
    g.raw = raw;
    g.last_ns = now;
    ev->id = g.id;
    ev->recv_ns = now;
    ev->log_ref = std::move(where);
    if (r.iif) ev->iif = r.iif;
    else if (!r.in.empty()) ev->iif = ifindex(r.in);
    if (r.oif) ev->oif = r.oif;
    else if (!r.out.empty()) ev->oif = ifindex(r.out);
    ev->mark = r.mark;
    c.trace++;
    stories_->add(std::move(*ev));
  } else if (uint8_t proto = 0; auto reason = parse_invalid_prefix(r.prefix, &proto)) {
    CtInvalidEvent ev;
    ev.ts_ns = now;
    ev.origin = Origin::Nflog;
    ev.protonum = proto;
    ev.pkt = r.pkt;
    ev.reason = *reason;
    c.invalid++;
    stories_->add(BpfEvent(std::move(ev)));
  } else {
    return;  // an ordinary LOG/NFLOG rule's line: not a trace
  }
  flush_if_due();
}

void LogReplay::take_nft(NftTraceEvent&& ev, const std::string& iif, const std::string& oif,
                         std::optional<uint64_t> ts, std::string where, FileCounts& c) {
  uint64_t now = advance(ts);
  // A log saved while natbpf traced has its marking tables too: not the user's story.
  if (ev.table.rfind(kTraceTablePrefix, 0) == 0) return;
  Group& g = nft_groups_[ev.id];
  if (!g.id || now > g.last_ns + kLogIdleNs) g.id = next_group_++;
  g.last_ns = now;
  ev.id = g.id;
  ev.recv_ns = now;
  ev.log_ref = std::move(where);
  if (!iif.empty()) ev.iif = ifindex(iif);
  if (!oif.empty()) ev.oif = ifindex(oif);
  // The saved line has the rule's text, but near misses and mark origins
  // need its place in the chain: the saved ruleset's rule of the same text.
  if (!ev.rule_handle && !ev.rule_text.empty()) {
    if (const ChainInfo* chain = ruleset_.chain(family_name(ev.family), ev.table, ev.chain)) {
      // The chain's shapes once, not per line (a chain may have thousands of rules).
      auto [known, fresh] = handle_by_shape_.try_emplace(family_name(ev.family) + '\0' + ev.table + '\0' + ev.chain);
      if (fresh)
        for (const auto& r : chain->rules)
          if (r.handle) known->second.emplace(rule_shape(r.text), r.handle);  // the first rule of a shape
      if (auto it = known->second.find(rule_shape(ev.rule_text)); it != known->second.end()) ev.rule_handle = it->second;
    }
  }
  c.trace++;
  stories_->add(std::move(ev));
  flush_if_due();
}

Status LogReplay::read_file(const std::string& file, FileCounts& c) {
  c.file = file;
  auto head = read_head(file);
  if (!head) return head.error();
  c.format = o_.format;
  if (c.format == LogFormat::Auto) {
    auto f = detect_log_format(*head);
    if (!f)
      return usage_error(file + " has no netfilter trace lines natbpf reads (iptables TRACE or conntrack INVALID kernel "
                                "log lines, nft monitor trace, an NFLOG pcap, ulogd2 JSON)",
                         "give the log that holds them, or name its format with --format");
    c.format = *f;
  }
  std::string name = base_name(file);
  if (c.format == LogFormat::Pcap) {
    uint64_t malformed = 0;
    auto st = read_nflog_pcap(
        file,
        [&](LogRecord&& r) {
          c.lines++;
          take(std::move(r), name + ":" + std::to_string(r.line), 0, c);
        },
        malformed);
    c.malformed += malformed;
    return st;
  }
  // Read and parsed on a thread of their own while this one tells the stories.
  ParsedLines in(file, c.format, name);
  if (!in.ok()) return usage_error("cannot open " + file + ": " + std::strerror(errno), "give the path of a saved log");
  std::vector<ParsedLine>* batch = nullptr;
  size_t count = 0;
  while (in.next(batch, count)) {
    for (size_t i = 0; i < count; i++) {
      ParsedLine& p = (*batch)[i];
      c.lines = p.line;
      if (auto* r = std::get_if<LogRecord>(&p.what)) {
        take(std::move(*r), p.where, p.prefix_id, c);
      } else {
        auto& e = std::get<NftMonitorTextEvent>(p.what);
        take_nft(std::move(e.ev), e.iif_name, e.oif_name, kernel_log_time(e.prefix), p.where, c);
      }
    }
  }
  c.lines = in.lines();
  c.malformed += in.malformed();
  return Ok{};
}

Status LogReplay::run(std::unique_ptr<TraceRenderer> renderer, bool quiet) {
  auto rules = load_saved_rulesets(o_.rulesets);
  if (!rules) return rules.error();
  ruleset_ = std::move(*rules);
  stories_.emplace("", 0, std::move(renderer), world());
  stories_->builder().for_saved_log(kLogIdleNs);
  stories_->buffer_output = true;
  if (o_.match) stories_->filter = [m = *o_.match](const Journey& j) { return journey_matches(j, m); };
  std::vector<FileCounts> counts;
  for (const auto& file : o_.logs) {
    FileCounts c;
    if (auto st = read_file(file, c); !st) {
      stories_->write_output();  // the stories of the files before
      return st;
    }
    counts.push_back(c);
  }
  stories_->flush(UINT64_MAX, true);
  stories_->write_output();  // before any line on stderr
  uint64_t told = 0, malformed = 0;
  std::string summary = "from saved logs:";
  for (const auto& c : counts) {
    told += c.trace + c.invalid;
    malformed += c.malformed;
    // Appended piece by piece: GCC 12 at -O2 reports a false -Wrestrict
    // for " " + std::string (as in sources/sock_diag.cpp).
    summary += ' ';
    summary += base_name(c.file);
    summary += " (";
    summary += log_format_name(c.format);
    summary += ", " + std::to_string(c.lines) + " lines: " + std::to_string(c.trace) + " trace, " +
               std::to_string(c.invalid) + " conntrack INVALID, " + std::to_string(c.malformed) + " malformed, skipped)";
  }
  stories_->counters().nftrace_parse_errors += malformed;
  if (!quiet && o_.rulesets.empty())
    std::cerr << "natbpf: no --ruleset given: rules are named by number or the text the log has\n";
  stories_->print_summary(summary);
  if (!told)
    return usage_error("the logs hold no trace or conntrack INVALID line",
                       "save the lines of iptables -j TRACE, nft monitor trace, tcpdump -i nflog or ulogd2");
  return Ok{};
}

}  // namespace natbpf
